package rewind

import (
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

func TestParseAttributeType(t *testing.T) {
	for typ := TypeS; typ <= TypeM; typ++ {
		got, err := ParseAttributeType(typ.String())
		if err != nil || got != typ {
			t.Errorf("ParseAttributeType(%q) = %v, %v", typ.String(), got, err)
		}
		if got, err := ParseAttributeType([]byte(typ.String())); err != nil || got != typ {
			t.Errorf("ParseAttributeType([]byte %q) = %v, %v", typ.String(), got, err)
		}
	}
	for _, bad := range []string{"", "s", "SSS", "bool", "Bool", "NULL ", "X", "LS", "MS", "BOOLEAN"} {
		if _, err := ParseAttributeType(bad); err == nil || !strings.Contains(err.Error(), "unknown attribute type") {
			t.Errorf("ParseAttributeType(%q) = %v, want unknown attribute type", bad, err)
		}
	}
	b := []byte("BOOL")
	if n := testing.AllocsPerRun(100, func() { ParseAttributeType(b) }); n != 0 {
		t.Errorf("ParseAttributeType allocates %v times", n)
	}
}

func TestDecodeBinary(t *testing.T) {
	buf, err := DecodeBinary(nil, []byte("AP8="))
	if err != nil || string(buf) != "\x00\xff" {
		t.Fatalf("DecodeBinary = %q, %v", buf, err)
	}
	again, err := DecodeBinary(buf, []byte("AQ=="))
	if err != nil || string(again) != "\x01" || &again[0] != &buf[0] {
		t.Errorf("DecodeBinary did not reuse dst: %q, %v", again, err)
	}
	for _, bad := range []string{"AP8", "A===", "not base64", "AP8=AP8"} {
		if _, err := DecodeBinary(nil, []byte(bad)); err == nil || !strings.Contains(err.Error(), "not base64") {
			t.Errorf("DecodeBinary(%q) = %v, want not base64", bad, err)
		}
	}
}

func TestParseItemGrammarEdges(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{`{"n":{"N":"1e999999"}}`, false},
		{`{"n":{"N":"123456789012345678901234567890123456789"}}`, false},
		{`{"n":{"N":"-0"}}`, true},
		{`{"n":{"N":"007"}}`, true},
		{`{"n":{"NS":["1","1e999999"]}}`, false},
		{`{"x":{"\u0053":"escaped S"}}`, true},
		{`{"x":{"BOOLEAN":true}}`, false},
		{`{"x":{"NS":[]}}`, true},
		{`{"l":` + strings.Repeat(`{"L":[`, 32) + `{"S":"x"}` + strings.Repeat(`]}`, 32) + `}`, true},
		{`{"l":` + strings.Repeat(`{"L":[`, 33) + `{"S":"x"}` + strings.Repeat(`]}`, 33) + `}`, false},
	} {
		_, err := ParseItem([]byte(tc.in))
		if (err == nil) != tc.ok {
			t.Errorf("ParseItem(%s): %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
	item, err := ParseItem([]byte(`{"b":{"B":""}}`))
	if err != nil {
		t.Fatal(err)
	}
	if b := item["b"].(*types.AttributeValueMemberB).Value; b == nil {
		t.Error("empty B parsed to a nil value; the SDK sends a nil B as no value")
	}
}

// FuzzParseItem: an item ParseItem accepts has numbers DynamoDB stores,
// encodes (AppendItemJSON) to JSON that parses back to the same item, and
// equals itself; nothing panics.
func FuzzParseItem(f *testing.F) {
	for _, s := range []string{
		`{"pk":{"S":"a"},"n":{"N":"1e999999"}}`,
		`{"n":{"N":"123456789012345678901234567890123456789"}}`,
		`{"n":{"N":"12345678901234567890123456789012345678"}}`,
		`{"n":{"N":"-0"}}`, `{"n":{"N":"0e999999"}}`, `{"n":{"N":"00012.3400"}}`,
		`{"n":{"N":"1e-99999999999999999999"}}`, `{"n":{"N":"9.9999999999999999999999999999999999999E+125"}}`,
		`{"s":{"SS":[]},"n":{"NS":[]},"b":{"BS":[]}}`,
		`{"m":{"M":{"a":{"M":{"b":{"L":[{"N":"1"},{"M":{}},{"NULL":true},{"BOOL":false}]}}}}}}`,
		`{"x":{"\u0053":"escaped"}}`, `{"b":{"B":"AP8="},"bs":{"BS":["AP8=",""]}}`,
		`{}`, `null`, `{"a":{"S":"x","N":"1"}}`, `{"a":{}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		item, err := ParseItem(data)
		if err != nil {
			return
		}
		var walk func(av types.AttributeValue)
		walk = func(av types.AttributeValue) {
			switch v := av.(type) {
			case *types.AttributeValueMemberN:
				if err := CheckNumber(v.Value); err != nil {
					t.Fatalf("accepted number fails CheckNumber: %v", err)
				}
			case *types.AttributeValueMemberNS:
				for _, n := range v.Value {
					if err := CheckNumber(n); err != nil {
						t.Fatalf("accepted number fails CheckNumber: %v", err)
					}
				}
			case *types.AttributeValueMemberL:
				for _, e := range v.Value {
					walk(e)
				}
			case *types.AttributeValueMemberM:
				for _, e := range v.Value {
					walk(e)
				}
			}
		}
		for _, av := range item {
			walk(av)
		}
		enc := AppendItemJSON(nil, item)
		back, err := ParseItem(enc)
		if err != nil {
			t.Fatalf("encoding %s of an accepted item does not parse: %v", enc, err)
		}
		if !reflect.DeepEqual(back, item) {
			t.Fatalf("round trip changed the item: %s", enc)
		}
		if !EqualItems(item, back) {
			t.Fatalf("item does not equal itself: %s", enc)
		}
	})
}
