package rewind

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestImageCompact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"a":{"S":"x y"}}`, `{"a":{"S":"x y"}}`},
		{"{\n  \"a\": {\"S\": \"x y\"},\r\n\t\"b\" : {\"L\": [ {\"N\": \"1\"} , {\"NULL\": true} ]}\n}", `{"a":{"S":"x y"},"b":{"L":[{"N":"1"},{"NULL":true}]}}`},
		{`{"a": {"S": "quote \" and space"}}`, `{"a":{"S":"quote \" and space"}}`},
		{`{"a":{"S":"ends in backslash \\"}, "b":{"S":" "}}`, `{"a":{"S":"ends in backslash \\"},"b":{"S":" "}}`},
		{`{"a":{"S":"\u00e9\n"}}`, `{"a":{"S":"\u00e9\n"}}`},
		{`{}`, `{}`},
		{" {} ", `{}`},
	} {
		got, err := Image(tc.in).Compact()
		if err != nil {
			t.Errorf("Compact(%q): %v", tc.in, err)
			continue
		}
		if string(got) != tc.want {
			t.Errorf("Compact(%q) = %q, want %q", tc.in, got, tc.want)
		}
		b, err := AppendCompactJSON([]byte("x"), []byte(tc.in))
		if err != nil || string(b) != "x"+tc.want {
			t.Errorf("AppendCompactJSON(%q) = %q, %v", tc.in, b, err)
		}
	}
	// Already compact: the same bytes, not a copy.
	in := Image(`{"a":{"S":"with spaces inside"}}`)
	if got, _ := in.Compact(); &got[0] != &in[0] {
		t.Errorf("Compact copied an image that was already compact")
	}
	if got, err := Image(nil).Compact(); got != nil || err != nil {
		t.Errorf("Compact(nil) = %q, %v", got, err)
	}
	// Broken JSON with whitespace: an error, dst unchanged.
	b, err := AppendCompactJSON([]byte("x"), []byte(`{"a": `))
	if err == nil || !bytes.Equal(b, []byte("x")) {
		t.Errorf("AppendCompactJSON of broken JSON = %q, %v; want an error and dst unchanged", b, err)
	}
}

// BenchmarkImageCompact measures Compact on an image of about 1.5 KB (the
// handler benchmark's), compact as Lambda sends it and indented.
func BenchmarkImageCompact(b *testing.B) {
	compact := []byte(`{"pk":{"S":"t1"},"sk":{"S":"item#42"},"n":{"N":"42"},"blob":{"B":"KgD/"},"note":{"S":"a value with spaces in it"},"pad":{"S":"` + strings.Repeat("x", 1400) + `"}}`)
	var indented bytes.Buffer
	json.Indent(&indented, compact, "", "  ")
	for _, l := range []struct {
		name string
		im   Image
	}{{"compact", compact}, {"indented", indented.Bytes()}} {
		b.Run("layout="+l.name, func(b *testing.B) {
			b.SetBytes(int64(len(l.im)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := l.im.Compact(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
