package rewind

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/go-json-experiment/json/jsontext"
)

// Item is a DynamoDB item: attribute name to value. Values are the SDK's
// types, kept exactly as DynamoDB returns them.
type Item = map[string]types.AttributeValue

// Image is an item in DynamoDB JSON, the wire format of the DynamoDB API and
// of stream records: {"pk":{"S":"t1"},"n":{"N":"42"}}. Binary values are
// base64 strings, numbers are decimal strings. Image means these bytes
// everywhere in rewind; which of a change's two images a filter reads is
// a query.ImageSide.
type Image []byte

// Item decodes the image.
func (im Image) Item() (Item, error) {
	if im == nil {
		return nil, nil
	}
	return ParseItem(im)
}

// decoders pools JSON decoders: a new one costs a few KB, and stream
// handlers parse keys and attribute values by the thousand.
var decoders = sync.Pool{New: func() any { return jsontext.NewDecoder(bytes.NewReader(nil)) }}

func getDecoder(data []byte) *jsontext.Decoder {
	dec := decoders.Get().(*jsontext.Decoder)
	dec.Reset(bytes.NewBuffer(data))
	return dec
}

func putDecoder(dec *jsontext.Decoder) {
	dec.Reset(bytes.NewReader(nil))
	decoders.Put(dec)
}

// ParseItem decodes a DynamoDB JSON object of attributes.
func ParseItem(data []byte) (Item, error) {
	dec := getDecoder(data)
	defer putDecoder(dec)
	item, err := readItem(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.ReadToken(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data after item")
	}
	return item, nil
}

// ParseAttributeValue decodes one DynamoDB JSON attribute value such as
// {"S":"x"}.
func ParseAttributeValue(data []byte) (types.AttributeValue, error) {
	dec := getDecoder(data)
	defer putDecoder(dec)
	av, err := readAV(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.ReadToken(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data after attribute value")
	}
	return av, nil
}

func readItem(dec *jsontext.Decoder, depth int) (Item, error) {
	tok, err := dec.ReadToken()
	if err != nil {
		return nil, err
	}
	if tok.Kind() != '{' {
		return nil, fmt.Errorf("want an object of attributes, got %v", tok.Kind())
	}
	item := make(Item)
	for dec.PeekKind() != '}' {
		tok, err := dec.ReadToken()
		if err != nil {
			return nil, err
		}
		if tok.Kind() != '"' {
			return nil, fmt.Errorf("want an attribute name, got %v", tok.Kind())
		}
		name := tok.String() // before the next read invalidates tok
		av, err := readAV(dec, depth)
		if err != nil {
			return nil, fmt.Errorf("attribute %q: %w", name, err)
		}
		item[name] = av
	}
	if _, err := dec.ReadToken(); err != nil {
		return nil, err
	}
	return item, nil
}

func readAV(dec *jsontext.Decoder, depth int) (types.AttributeValue, error) {
	if depth > MaxNestingDepth {
		return nil, fmt.Errorf("nested deeper than %d levels", MaxNestingDepth)
	}
	tok, err := dec.ReadToken()
	if err != nil {
		return nil, err
	}
	if tok.Kind() != '{' {
		return nil, fmt.Errorf("want an attribute value object, got %v", tok.Kind())
	}
	if dec.PeekKind() == '}' {
		return nil, errors.New("attribute value has no type")
	}
	typTok, err := dec.ReadToken()
	if err != nil {
		return nil, err
	}
	typ, err := ParseAttributeType(typTok.String())
	if err != nil {
		return nil, err
	}
	var av types.AttributeValue
	switch typ {
	case TypeS:
		s, err := readString(dec)
		if err != nil {
			return nil, fmt.Errorf("S: %w", err)
		}
		av = &types.AttributeValueMemberS{Value: s}
	case TypeN:
		s, err := readString(dec)
		if err != nil {
			return nil, fmt.Errorf("N: %w", err)
		}
		if err := CheckNumber(s); err != nil {
			return nil, fmt.Errorf("N: %w", err)
		}
		av = &types.AttributeValueMemberN{Value: s}
	case TypeB:
		b, err := readBinary(dec)
		if err != nil {
			return nil, fmt.Errorf("B: %w", err)
		}
		av = &types.AttributeValueMemberB{Value: b}
	case TypeBOOL:
		t, err := dec.ReadToken()
		if err != nil {
			return nil, err
		}
		if k := t.Kind(); k != 't' && k != 'f' {
			return nil, fmt.Errorf("BOOL: want true or false, got %v", k)
		}
		av = &types.AttributeValueMemberBOOL{Value: t.Bool()}
	case TypeNULL:
		t, err := dec.ReadToken()
		if err != nil {
			return nil, err
		}
		if t.Kind() != 't' {
			return nil, fmt.Errorf("NULL: want true, got %v", t.Kind())
		}
		av = &types.AttributeValueMemberNULL{Value: true}
	case TypeSS, TypeNS, TypeBS:
		if err := expect(dec, '['); err != nil {
			return nil, fmt.Errorf("%s: %w", typ, err)
		}
		var ss []string
		var bs [][]byte
		for dec.PeekKind() != ']' {
			if typ == TypeBS {
				b, err := readBinary(dec)
				if err != nil {
					return nil, fmt.Errorf("BS[%d]: %w", len(bs), err)
				}
				bs = append(bs, b)
				continue
			}
			s, err := readString(dec)
			if err != nil {
				return nil, fmt.Errorf("%s[%d]: %w", typ, len(ss), err)
			}
			if typ == TypeNS {
				if err := CheckNumber(s); err != nil {
					return nil, fmt.Errorf("NS[%d]: %w", len(ss), err)
				}
			}
			ss = append(ss, s)
		}
		if _, err := dec.ReadToken(); err != nil {
			return nil, err
		}
		switch typ {
		case TypeSS:
			av = &types.AttributeValueMemberSS{Value: nonNil(ss)}
		case TypeNS:
			av = &types.AttributeValueMemberNS{Value: nonNil(ss)}
		default:
			if bs == nil {
				bs = [][]byte{}
			}
			av = &types.AttributeValueMemberBS{Value: bs}
		}
	case TypeL:
		if err := expect(dec, '['); err != nil {
			return nil, fmt.Errorf("L: %w", err)
		}
		l := []types.AttributeValue{}
		for dec.PeekKind() != ']' {
			v, err := readAV(dec, depth+1)
			if err != nil {
				return nil, fmt.Errorf("L[%d]: %w", len(l), err)
			}
			l = append(l, v)
		}
		if _, err := dec.ReadToken(); err != nil {
			return nil, err
		}
		av = &types.AttributeValueMemberL{Value: l}
	case TypeM:
		m, err := readItem(dec, depth+1)
		if err != nil {
			return nil, fmt.Errorf("M: %w", err)
		}
		av = &types.AttributeValueMemberM{Value: m}
	}
	end, err := dec.ReadToken()
	if err != nil {
		return nil, err
	}
	if end.Kind() != '}' {
		return nil, fmt.Errorf("attribute value has more than one type (%s and more)", typ)
	}
	return av, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func expect(dec *jsontext.Decoder, kind jsontext.Kind) error {
	t, err := dec.ReadToken()
	if err != nil {
		return err
	}
	if t.Kind() != kind {
		return fmt.Errorf("want %v, got %v", kind, t.Kind())
	}
	return nil
}

func readString(dec *jsontext.Decoder) (string, error) {
	t, err := dec.ReadToken()
	if err != nil {
		return "", err
	}
	if t.Kind() != '"' {
		return "", fmt.Errorf("want a string, got %v", t.Kind())
	}
	return t.String(), nil
}

func readBinary(dec *jsontext.Decoder) ([]byte, error) {
	s, err := readString(dec)
	if err != nil {
		return nil, err
	}
	bin, err := DecodeBinary(nil, []byte(s))
	if bin == nil && err == nil {
		// An empty B stays a non-nil empty value, as the SDK sends it.
		bin = []byte{}
	}
	return bin, err
}

// AppendItemJSON appends item as DynamoDB JSON with attribute names sorted,
// so equal items encode to equal bytes.
func AppendItemJSON(dst []byte, item Item) []byte {
	names := make([]string, 0, len(item))
	for n := range item {
		names = append(names, n)
	}
	slices.Sort(names)
	dst = append(dst, '{')
	for i, n := range names {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, n)
		dst = append(dst, ':')
		dst = AppendAttributeValueJSON(dst, item[n])
	}
	return append(dst, '}')
}

// ItemJSON returns item as DynamoDB JSON (see AppendItemJSON).
func ItemJSON(item Item) Image {
	if item == nil {
		return nil
	}
	return AppendItemJSON(nil, item)
}

// AppendAttributeValueJSON appends av as DynamoDB JSON.
func AppendAttributeValueJSON(dst []byte, av types.AttributeValue) []byte {
	switch v := av.(type) {
	case *types.AttributeValueMemberS:
		dst = append(dst, `{"S":`...)
		dst = appendJSONString(dst, v.Value)
	case *types.AttributeValueMemberN:
		dst = append(dst, `{"N":`...)
		dst = appendJSONString(dst, v.Value)
	case *types.AttributeValueMemberB:
		dst = append(dst, `{"B":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, v.Value)
		dst = append(dst, '"')
	case *types.AttributeValueMemberBOOL:
		dst = append(dst, `{"BOOL":`...)
		dst = strconv.AppendBool(dst, v.Value)
	case *types.AttributeValueMemberNULL:
		dst = append(dst, `{"NULL":true`...)
	case *types.AttributeValueMemberSS:
		dst = appendStringList(append(dst, `{"SS":`...), v.Value)
	case *types.AttributeValueMemberNS:
		dst = appendStringList(append(dst, `{"NS":`...), v.Value)
	case *types.AttributeValueMemberBS:
		dst = append(dst, `{"BS":[`...)
		for i, b := range v.Value {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, '"')
			dst = base64.StdEncoding.AppendEncode(dst, b)
			dst = append(dst, '"')
		}
		dst = append(dst, ']')
	case *types.AttributeValueMemberL:
		dst = append(dst, `{"L":[`...)
		for i, e := range v.Value {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendAttributeValueJSON(dst, e)
		}
		dst = append(dst, ']')
	case *types.AttributeValueMemberM:
		dst = append(dst, `{"M":`...)
		dst = AppendItemJSON(dst, v.Value)
	default:
		// A nil or unknown value has no DynamoDB JSON form; NULL is the
		// closest thing that still parses.
		dst = append(dst, `{"NULL":true`...)
	}
	return append(dst, '}')
}

func appendStringList(dst []byte, ss []string) []byte {
	dst = append(dst, '[')
	for i, s := range ss {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, s)
	}
	return append(dst, ']')
}

func appendJSONString(dst []byte, s string) []byte {
	out, err := jsontext.AppendQuote(dst, s)
	if err != nil {
		// Invalid UTF-8: AppendQuote still wrote the string with
		// replacement characters; DynamoDB strings are UTF-8, so this
		// only happens for values that never came from DynamoDB.
		return out
	}
	return out
}

// EqualAttributeValues reports whether a and b hold the same value as
// DynamoDB compares them: numbers by value, sets regardless of order.
func EqualAttributeValues(a, b types.AttributeValue) bool {
	switch x := a.(type) {
	case *types.AttributeValueMemberS:
		y, ok := b.(*types.AttributeValueMemberS)
		return ok && x.Value == y.Value
	case *types.AttributeValueMemberN:
		y, ok := b.(*types.AttributeValueMemberN)
		return ok && equalNumbers(x.Value, y.Value)
	case *types.AttributeValueMemberB:
		y, ok := b.(*types.AttributeValueMemberB)
		return ok && bytes.Equal(x.Value, y.Value)
	case *types.AttributeValueMemberBOOL:
		y, ok := b.(*types.AttributeValueMemberBOOL)
		return ok && x.Value == y.Value
	case *types.AttributeValueMemberNULL:
		_, ok := b.(*types.AttributeValueMemberNULL)
		return ok
	case *types.AttributeValueMemberSS:
		y, ok := b.(*types.AttributeValueMemberSS)
		return ok && equalSets(x.Value, y.Value, func(s string) string { return s })
	case *types.AttributeValueMemberNS:
		y, ok := b.(*types.AttributeValueMemberNS)
		return ok && equalSets(x.Value, y.Value, func(s string) string {
			if n, err := NormalizeNumber(s); err == nil {
				return n
			}
			return s
		})
	case *types.AttributeValueMemberBS:
		y, ok := b.(*types.AttributeValueMemberBS)
		if !ok {
			return false
		}
		xs := make([]string, len(x.Value))
		for i, v := range x.Value {
			xs[i] = string(v)
		}
		ys := make([]string, len(y.Value))
		for i, v := range y.Value {
			ys[i] = string(v)
		}
		return equalSets(xs, ys, func(s string) string { return s })
	case *types.AttributeValueMemberL:
		y, ok := b.(*types.AttributeValueMemberL)
		if !ok || len(x.Value) != len(y.Value) {
			return false
		}
		for i := range x.Value {
			if !EqualAttributeValues(x.Value[i], y.Value[i]) {
				return false
			}
		}
		return true
	case *types.AttributeValueMemberM:
		y, ok := b.(*types.AttributeValueMemberM)
		return ok && EqualItems(x.Value, y.Value)
	}
	return a == nil && b == nil
}

// EqualItems reports whether two items hold the same attributes with equal
// values (see EqualAttributeValues). A nil item equals only a nil item: an
// absent item is not an item with no attributes.
func EqualItems(a, b Item) bool {
	if (a == nil) != (b == nil) || len(a) != len(b) {
		return false
	}
	for n, av := range a {
		bv, ok := b[n]
		if !ok || !EqualAttributeValues(av, bv) {
			return false
		}
	}
	return true
}

func equalNumbers(a, b string) bool {
	if a == b {
		return true
	}
	na, err1 := NormalizeNumber(a)
	nb, err2 := NormalizeNumber(b)
	return err1 == nil && err2 == nil && na == nb
}

func equalSets(a, b []string, norm func(string) string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := make(map[string]int, len(a))
	for _, s := range a {
		seen[norm(s)]++
	}
	for _, s := range b {
		k := norm(s)
		if seen[k] == 0 {
			return false
		}
		seen[k]--
	}
	return true
}

// NormalizeNumber returns the canonical form of a DynamoDB number: no
// leading or trailing zeros, no plus sign, no exponent unless the plain form
// would be longer than 40 characters, "0" for every zero. It works on the
// decimal digits, never through a float, so 38-digit numbers stay exact.
// It refuses what CheckNumber refuses: a number DynamoDB cannot store.
func NormalizeNumber(s string) (string, error) {
	d, err := scanNumber(s)
	if err != nil {
		return "", err
	}
	if d.zero {
		return "0", nil
	}
	var b strings.Builder
	b.Grow(d.sig + 8)
	if d.neg {
		b.WriteByte('-')
	}
	// digits × 10^exp, the significant digits as an integer.
	digits := make([]byte, 0, d.sig)
	for i := d.first; i <= d.last; i++ {
		if s[i] != '.' {
			digits = append(digits, s[i])
		}
	}
	exp := d.adj - (d.sig - 1)
	switch {
	case exp >= 0 && len(digits)+exp <= 40:
		b.Write(digits)
		b.WriteString(strings.Repeat("0", exp))
	case exp < 0 && -exp < len(digits):
		b.Write(digits[:len(digits)+exp])
		b.WriteByte('.')
		b.Write(digits[len(digits)+exp:])
	case exp < 0 && -exp-len(digits) <= 40:
		b.WriteString("0.")
		b.WriteString(strings.Repeat("0", -exp-len(digits)))
		b.Write(digits)
	default:
		// Scientific: d.ddd E±n
		b.WriteByte(digits[0])
		if len(digits) > 1 {
			b.WriteByte('.')
			b.Write(digits[1:])
		}
		b.WriteByte('E')
		if d.adj >= 0 {
			b.WriteByte('+')
		}
		b.WriteString(strconv.Itoa(d.adj))
	}
	return b.String(), nil
}
