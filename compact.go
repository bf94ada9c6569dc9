package rewind

import (
	"bytes"
	"fmt"

	"github.com/go-json-experiment/json/jsontext"
)

// Images are kept and printed as compact JSON, whatever the whitespace of
// the stream record they came from: a pretty-printed payload would
// otherwise carry its newlines into Parquet and break JSON Lines output.

// compactOpts remove whitespace and change nothing else: strings and
// numbers keep their bytes.
var compactOpts = []jsontext.Options{
	jsontext.AllowDuplicateNames(true),
	jsontext.AllowInvalidUTF8(true),
	jsontext.PreserveRawStrings(true),
}

// Compact returns the image without whitespace between tokens. An image
// that has none, the usual case, is returned as is, without a copy.
func (im Image) Compact() (Image, error) {
	if im == nil || !hasSpaceBetweenTokens(im) {
		return im, nil
	}
	out, err := jsontext.AppendFormat(make([]byte, 0, len(im)), im, compactOpts...)
	if err != nil {
		return im, fmt.Errorf("compact image: %w", err)
	}
	return out, nil
}

// AppendCompactJSON appends the JSON value src to dst without whitespace
// between tokens.
func AppendCompactJSON(dst, src []byte) ([]byte, error) {
	if !hasSpaceBetweenTokens(src) {
		return append(dst, src...), nil
	}
	n := len(dst)
	out, err := jsontext.AppendFormat(dst, src, compactOpts...)
	if err != nil {
		return out[:n], fmt.Errorf("compact JSON: %w", err)
	}
	return out, nil
}

// hasSpaceBetweenTokens reports whether b, a JSON text, has whitespace
// outside its strings. It finds string ends with bytes.IndexByte, so it
// costs little more than a pass of memchr over long values.
func hasSpaceBetweenTokens(b []byte) bool {
	i := 0
	for {
		q := bytes.IndexByte(b[i:], '"')
		outside := b[i:]
		if q >= 0 {
			outside = b[i : i+q]
		}
		for _, c := range outside {
			if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
				return true
			}
		}
		if q < 0 {
			return false
		}
		i += q + 1
		// Find the closing quote: one not escaped by an odd run of
		// backslashes.
		for {
			e := bytes.IndexByte(b[i:], '"')
			if e < 0 {
				return false // unterminated: not ours to judge
			}
			j := i + e
			bs := 0
			for k := j - 1; k >= i && b[k] == '\\'; k-- {
				bs++
			}
			i = j + 1
			if bs%2 == 0 {
				break
			}
		}
	}
}
