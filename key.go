package rewind

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// KeyAttr is one attribute of a primary key. Key attributes are scalars:
// string, number or binary.
type KeyAttr struct {
	Name string
	// Type is 'S', 'N' or 'B'.
	Type byte
	// Value is the string for S, the normalized decimal (NormalizeNumber)
	// for N and the raw bytes for B.
	Value string
}

// Key is an item's primary key: its partition key attribute and, for tables
// with a sort key, the sort key attribute, sorted by name.
//
// Its canonical encoding (Encode) is deterministic: the same key always
// encodes to the same bytes, whatever the order or number format it was
// read in, so it identifies an item in indexes and key sets.
type Key []KeyAttr

// KeyFromItem builds a Key from the key attributes of an item, such as a
// stream record's Keys. Every attribute in the map is taken as a key
// attribute.
func KeyFromItem(item Item) (Key, error) {
	if len(item) == 0 {
		return nil, errors.New("key has no attributes")
	}
	if len(item) > 2 {
		return nil, fmt.Errorf("key has %d attributes; a primary key has one or two", len(item))
	}
	k := make(Key, 0, len(item))
	for name, av := range item {
		a, err := keyAttr(name, av)
		if err != nil {
			return nil, err
		}
		k = append(k, a)
	}
	slices.SortFunc(k, func(a, b KeyAttr) int { return strings.Compare(a.Name, b.Name) })
	return k, nil
}

// KeyFromItemSchema builds a Key from the named attributes of a full item,
// checking that each is present and scalar.
func KeyFromItemSchema(item Item, names ...string) (Key, error) {
	k := make(Key, 0, len(names))
	for _, name := range names {
		av, ok := item[name]
		if !ok {
			return nil, fmt.Errorf("item has no key attribute %q", name)
		}
		a, err := keyAttr(name, av)
		if err != nil {
			return nil, err
		}
		k = append(k, a)
	}
	slices.SortFunc(k, func(a, b KeyAttr) int { return strings.Compare(a.Name, b.Name) })
	return k, nil
}

func keyAttr(name string, av types.AttributeValue) (KeyAttr, error) {
	if name == "" {
		return KeyAttr{}, errors.New("key attribute has an empty name")
	}
	switch v := av.(type) {
	case *types.AttributeValueMemberS:
		return KeyAttr{Name: name, Type: 'S', Value: v.Value}, nil
	case *types.AttributeValueMemberN:
		n, err := NormalizeNumber(v.Value)
		if err != nil {
			return KeyAttr{}, fmt.Errorf("key attribute %q: %w", name, err)
		}
		return KeyAttr{Name: name, Type: 'N', Value: n}, nil
	case *types.AttributeValueMemberB:
		return KeyAttr{Name: name, Type: 'B', Value: string(v.Value)}, nil
	}
	return KeyAttr{}, fmt.Errorf("key attribute %q is a %s; key attributes are S, N or B", name, typeName(av))
}

func typeName(av types.AttributeValue) string {
	switch av.(type) {
	case *types.AttributeValueMemberS:
		return "S"
	case *types.AttributeValueMemberN:
		return "N"
	case *types.AttributeValueMemberB:
		return "B"
	case *types.AttributeValueMemberBOOL:
		return "BOOL"
	case *types.AttributeValueMemberNULL:
		return "NULL"
	case *types.AttributeValueMemberSS:
		return "SS"
	case *types.AttributeValueMemberNS:
		return "NS"
	case *types.AttributeValueMemberBS:
		return "BS"
	case *types.AttributeValueMemberL:
		return "L"
	case *types.AttributeValueMemberM:
		return "M"
	}
	return "nil"
}

// ParseKey decodes a key written as DynamoDB JSON, the form
// `aws dynamodb get-item --key` takes: {"pk":{"S":"t1"},"sk":{"N":"42"}}.
func ParseKey(data []byte) (Key, error) {
	item, err := ParseItem(data)
	if err != nil {
		return nil, err
	}
	return KeyFromItem(item)
}

// Item returns the key as SDK attribute values, ready for GetItem.
func (k Key) Item() Item {
	item := make(Item, len(k))
	for _, a := range k {
		switch a.Type {
		case 'S':
			item[a.Name] = &types.AttributeValueMemberS{Value: a.Value}
		case 'N':
			item[a.Name] = &types.AttributeValueMemberN{Value: a.Value}
		case 'B':
			item[a.Name] = &types.AttributeValueMemberB{Value: []byte(a.Value)}
		}
	}
	return item
}

// Get returns the attribute called name.
func (k Key) Get(name string) (KeyAttr, bool) {
	for _, a := range k {
		if a.Name == name {
			return a, true
		}
	}
	return KeyAttr{}, false
}

// Names returns the key's attribute names, sorted.
func (k Key) Names() []string {
	names := make([]string, len(k))
	for i, a := range k {
		names[i] = a.Name
	}
	return names
}

// Equal reports whether two keys are the same.
func (k Key) Equal(o Key) bool { return slices.Equal(k, o) }

// Compare orders keys by their canonical encoding.
func (k Key) Compare(o Key) int {
	return strings.Compare(string(k.Encode()), string(o.Encode()))
}

// AppendJSON appends the key as DynamoDB JSON, attribute names sorted.
func (k Key) AppendJSON(dst []byte) []byte {
	return AppendItemJSON(dst, k.Item())
}

// String returns the key as DynamoDB JSON, for messages.
func (k Key) String() string { return string(k.AppendJSON(nil)) }

// MarshalJSON implements json.Marshaler with DynamoDB JSON.
func (k Key) MarshalJSON() ([]byte, error) {
	if len(k) == 0 {
		return nil, errors.New("empty key")
	}
	return k.AppendJSON(nil), nil
}

// UnmarshalJSON implements json.Unmarshaler with DynamoDB JSON.
func (k *Key) UnmarshalJSON(data []byte) error {
	key, err := ParseKey(data)
	if err != nil {
		return err
	}
	*k = key
	return nil
}

// Encode returns the canonical byte encoding of the key: for each
// attribute in name order, uvarint(len(name)) name, the type byte,
// uvarint(len(value)) value. Keys that are equal encode to equal bytes, and
// a key's encoding is never a prefix of another key's.
func (k Key) Encode() []byte { return k.AppendEncode(nil) }

// AppendEncode appends the canonical encoding of the key to dst.
func (k Key) AppendEncode(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(k)))
	for _, a := range k {
		dst = binary.AppendUvarint(dst, uint64(len(a.Name)))
		dst = append(dst, a.Name...)
		dst = append(dst, a.Type)
		dst = binary.AppendUvarint(dst, uint64(len(a.Value)))
		dst = append(dst, a.Value...)
	}
	return dst
}

// DecodeKey decodes a canonical key encoding and returns the key and the
// number of bytes it used.
func DecodeKey(b []byte) (Key, int, error) {
	n, off := binary.Uvarint(b)
	if off <= 0 || n == 0 || n > 2 {
		return nil, 0, errors.New("bad key encoding: attribute count")
	}
	k := make(Key, 0, n)
	for i := uint64(0); i < n; i++ {
		var a KeyAttr
		l, m := binary.Uvarint(b[off:])
		if m <= 0 || uint64(len(b)-off-m) < l {
			return nil, 0, errors.New("bad key encoding: name")
		}
		off += m
		a.Name = string(b[off : off+int(l)])
		off += int(l)
		if off >= len(b) {
			return nil, 0, errors.New("bad key encoding: type")
		}
		a.Type = b[off]
		off++
		if a.Type != 'S' && a.Type != 'N' && a.Type != 'B' {
			return nil, 0, fmt.Errorf("bad key encoding: type %q", a.Type)
		}
		l, m = binary.Uvarint(b[off:])
		if m <= 0 || uint64(len(b)-off-m) < l {
			return nil, 0, errors.New("bad key encoding: value")
		}
		off += m
		a.Value = string(b[off : off+int(l)])
		off += int(l)
		k = append(k, a)
	}
	return k, off, nil
}
