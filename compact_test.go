package rewind

import (
	"bytes"
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
