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
	if k, ok := parseKeyFast(data); ok {
		return k, nil
	}
	item, err := ParseItem(data)
	if err != nil {
		return nil, err
	}
	return KeyFromItem(item)
}

// parseKeyFast parses the keys stream records carry, one or two S or N
// attributes with plain ASCII names and values ({"pk":{"S":"t1"}}), about
// five times faster than the general decoder (BenchmarkParseKey), which
// was 7% of an ingest's CPU. It reports false for anything else (escapes, other types,
// bytes outside printable ASCII, a duplicate name, bad numbers, any
// syntax error), which ParseKey then gives to the general decoder: what it
// accepts, the general decoder accepts as the same key.
func parseKeyFast(data []byte) (Key, bool) {
	// One copy of the bytes: the names and values are its substrings.
	p := keyScanner{b: string(data)}
	if !p.take('{') {
		return nil, false
	}
	var attrs [2]KeyAttr
	n := 0
	for {
		if n == len(attrs) {
			return nil, false
		}
		name, ok := p.str()
		if !ok || name == "" || !p.take(':') || !p.take('{') {
			return nil, false
		}
		typ, ok := p.str()
		if !ok || len(typ) != 1 || (typ[0] != 'S' && typ[0] != 'N') || !p.take(':') {
			return nil, false
		}
		v, ok := p.str()
		if !ok || !p.take('}') {
			return nil, false
		}
		a := KeyAttr{Name: name, Type: typ[0], Value: v}
		if a.Type == 'N' {
			norm, err := NormalizeNumber(v)
			if err != nil {
				return nil, false
			}
			a.Value = norm
		}
		attrs[n] = a
		n++
		if p.take(',') {
			continue
		}
		if !p.take('}') || !p.end() {
			return nil, false
		}
		break
	}
	if n == 2 {
		switch strings.Compare(attrs[0].Name, attrs[1].Name) {
		case 0:
			return nil, false // a duplicate name: the general decoder's error
		case 1:
			attrs[0], attrs[1] = attrs[1], attrs[0]
		}
	}
	return slices.Clone(attrs[:n]), true
}

// keyScanner reads the few tokens parseKeyFast accepts.
type keyScanner struct {
	b string
	i int
}

func (p *keyScanner) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// take consumes c, after any white space.
func (p *keyScanner) take(c byte) bool {
	p.space()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// str consumes a string of printable ASCII without escapes.
func (p *keyScanner) str() (string, bool) {
	if !p.take('"') {
		return "", false
	}
	start := p.i
	for ; p.i < len(p.b); p.i++ {
		switch c := p.b[p.i]; {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			return s, true
		case c == '\\' || c < 0x20 || c >= 0x7f:
			return "", false
		}
	}
	return "", false
}

// end reports whether only white space is left.
func (p *keyScanner) end() bool {
	p.space()
	return p.i == len(p.b)
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
