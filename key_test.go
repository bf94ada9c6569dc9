package rewind

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

func TestNormalizeNumber(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"0", "0"}, {"-0", "0"}, {"0.000", "0"}, {"007", "7"}, {"+7", "7"},
		{"1.50", "1.5"}, {"-1.50", "-1.5"}, {".5", "0.5"}, {"5.", "5"},
		{"1e3", "1000"}, {"1.5E+2", "150"}, {"12345e-2", "123.45"}, {"1e-3", "0.001"},
		{"12345678901234567890123456789012345678", "12345678901234567890123456789012345678"},
		{"-0.00000000000000000000000000000000000001", "-0.00000000000000000000000000000000000001"},
		{"1E+100", "1E+100"}, {"1.25E-130", "1.25E-130"}, {"9.9999999999999999999999999999999999999E+125", "9.9999999999999999999999999999999999999E+125"},
		// Leading and trailing zeros are not significant digits, and the
		// exponent may have leading zeros.
		{"1" + strings.Repeat("0", 50), "1E+50"}, {"0.0001e-126", "1E-130"}, {"1e0003", "1000"},
		{"000" + "12345678901234567890123456789012345678" + ".000", "12345678901234567890123456789012345678"},
		{"0E+200", "0"},
	} {
		got, err := NormalizeNumber(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("NormalizeNumber(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "-", ".", "1e", "abc", "1.2.3", "0x10", "1e+", " 1", "NaN", "Infinity", "1e999999",
		// Numbers DynamoDB cannot store: 39 significant digits, out of range.
		"123456789012345678901234567890123456789", "1.23456789012345678901234567890123456789",
		"1e126", "-1E+126", "1e200", "1e-131", "-0.1E-130", "0e100000000000"} {
		if got, err := NormalizeNumber(bad); err == nil {
			t.Errorf("NormalizeNumber(%q) = %q, want an error", bad, got)
		}
	}
}

func TestKeyCanonicalEncoding(t *testing.T) {
	a, err := ParseKey([]byte(`{"sk":{"N":"42.0"},"pk":{"S":"t1"}}`))
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseKey([]byte(`{"pk":{"S":"t1"},"sk":{"N":"42"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Encode(), b.Encode()) {
		t.Fatalf("equal keys encode differently: %q vs %q", a.Encode(), b.Encode())
	}
	if got, want := a.String(), `{"pk":{"S":"t1"},"sk":{"N":"42"}}`; got != want {
		t.Fatalf("String() = %s, want %s", got, want)
	}
	c, err := ParseKey([]byte(`{"pk":{"S":"t1"},"sk":{"N":"43"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.Encode(), c.Encode()) {
		t.Fatal("different keys encode equally")
	}
	bin, err := ParseKey([]byte(`{"id":{"B":"AAEC/w=="}}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []Key{a, c, bin} {
		dec, n, err := DecodeKey(k.Encode())
		if err != nil || n != len(k.Encode()) || !dec.Equal(k) {
			t.Errorf("DecodeKey(Encode(%s)) = %v, %d, %v", k, dec, n, err)
		}
		again, err := ParseKey(k.AppendJSON(nil))
		if err != nil || !again.Equal(k) {
			t.Errorf("JSON round trip of %s = %v, %v", k, again, err)
		}
	}
	if v := bin.Item()["id"].(*types.AttributeValueMemberB).Value; !bytes.Equal(v, []byte{0, 1, 2, 255}) {
		t.Errorf("binary key value = %v", v)
	}
	// Prefix freedom: a key's encoding is never a prefix of another's.
	p1, _ := ParseKey([]byte(`{"pk":{"S":"a"}}`))
	p2, _ := ParseKey([]byte(`{"pk":{"S":"ab"}}`))
	if bytes.HasPrefix(p2.Encode(), p1.Encode()) {
		t.Error("encoding of pk=a is a prefix of pk=ab")
	}
}

func TestKeyRejects(t *testing.T) {
	for _, in := range []string{
		`{}`, `{"a":{"S":"x"},"b":{"S":"y"},"c":{"S":"z"}}`, `{"a":{"BOOL":true}}`,
		`{"a":{"SS":["x"]}}`, `{"a":{"N":"abc"}}`, `{"a":{"B":"!!"}}`, `{"a":{"S":"x","N":"1"}}`,
		`{"a":{"X":"x"}}`, `[1]`, `{"a":{"S":"x"}} trailing`,
	} {
		if k, err := ParseKey([]byte(in)); err == nil {
			t.Errorf("ParseKey(%s) = %v, want an error", in, k)
		}
	}
}

func TestItemJSONRoundTrip(t *testing.T) {
	in := `{"b":{"B":"AAEC"},"bool":{"BOOL":false},"bs":{"BS":["AQ==","Ag=="]},"e":{"S":""},"l":{"L":[{"N":"1"},{"M":{"x":{"NULL":true}}}]},"m":{"M":{}},"n":{"N":"-12345678901234567890123456789012345678"},"ns":{"NS":["1","2.5"]},"null":{"NULL":true},"s":{"S":"héllo \"q\" \u2028"},"ss":{"SS":["a","b"]}}`
	item, err := ParseItem([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	out := ItemJSON(item)
	again, err := ParseItem(out)
	if err != nil {
		t.Fatal(err)
	}
	if !EqualItems(item, again) {
		t.Fatalf("round trip changed the item:\n%s\n%s", in, out)
	}
	var generic map[string]any
	if err := json.Unmarshal(out, &generic); err != nil {
		t.Fatalf("output is not JSON: %v", err)
	}
	// Sets compare as sets, numbers by value.
	x, _ := ParseAttributeValue([]byte(`{"NS":["1","2.50"]}`))
	y, _ := ParseAttributeValue([]byte(`{"NS":["2.5","1.0"]}`))
	if !EqualAttributeValues(x, y) {
		t.Error("equal number sets compare unequal")
	}
	z, _ := ParseAttributeValue([]byte(`{"NS":["2.5","1.1"]}`))
	if EqualAttributeValues(x, z) {
		t.Error("different number sets compare equal")
	}
}

func TestCompareSequenceNumbers(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"9", "10", -1}, {"10", "9", 1}, {"100000000000000000001", "100000000000000000001", 0},
		{"4421584500000000017450439091", "49617000000000000000000000", 1}, {"007", "7", 0},
	} {
		if got := CompareSequenceNumbers(tc.a, tc.b); got != tc.want {
			t.Errorf("CompareSequenceNumbers(%s, %s) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
