package streamhandler

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ddbrewind/rewind"
	"github.com/go-json-experiment/json/jsontext"
)

// layouts returns a payload in several whitespace layouts: as captured
// (the fixtures are indented), single-line with a space after every colon
// and comma (Python's json.dumps), indented with tabs and CRLF line ends,
// and compact, which the others are compared against.
func layouts(t *testing.T, payload []byte) (compact []byte, variants map[string][]byte) {
	t.Helper()
	format := func(opts ...jsontext.Options) []byte {
		b, err := jsontext.AppendFormat(nil, payload, append([]jsontext.Options{jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true), jsontext.PreserveRawStrings(true)}, opts...)...)
		if err != nil {
			t.Fatalf("reformat payload: %v", err)
		}
		return b
	}
	compact = format()
	tabs := format(jsontext.Multiline(true), jsontext.WithIndent("\t"))
	variants = map[string][]byte{
		"as-captured": payload,
		"spaced":      format(jsontext.SpaceAfterColon(true), jsontext.SpaceAfterComma(true)),
		// JSON strings cannot hold a raw newline, so this only touches
		// the layout.
		"tabs-crlf": bytes.ReplaceAll(tabs, []byte("\n"), []byte("\r\n")),
	}
	return compact, variants
}

// TestDecodeCompactsImages decodes every fixture in every layout and checks
// that each image is compact JSON, byte for byte the image decoded from the
// compact payload: images go to Parquet and to query --format json as one
// line each.
func TestDecodeCompactsImages(t *testing.T) {
	files, err := filepath.Glob("../testdata/streams/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	var checked int
	for _, f := range files {
		payload, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid(payload) {
			continue // the fixture of a broken payload
		}
		compact, variants := layouts(t, payload)
		want, err := testDecoder(t, nil).decode(compact, nil)
		if err != nil {
			t.Fatalf("%s compact: %v", f, err)
		}
		for name, p := range variants {
			t.Run(filepath.Base(f)+"/"+name, func(t *testing.T) {
				got, err := testDecoder(t, nil).decode(p, nil)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(want) {
					t.Fatalf("%d events, want %d", len(got), len(want))
				}
				for i := range got {
					if (got[i].DecodeError == "") != (want[i].DecodeError == "") {
						t.Fatalf("event %d: decode error %q, compact payload gives %q", i, got[i].DecodeError, want[i].DecodeError)
					}
					for _, im := range []struct {
						name      string
						got, want rewind.Image
					}{{"old", got[i].OldImage, want[i].OldImage}, {"new", got[i].NewImage, want[i].NewImage}} {
						if !bytes.Equal(im.got, im.want) {
							t.Errorf("event %d (%s): %s image\n got %q\nwant %q", i, got[i].EventID, im.name, im.got, im.want)
						}
						if im.got == nil {
							continue
						}
						checked++
						var c bytes.Buffer
						if err := json.Compact(&c, im.got); err != nil || !bytes.Equal(c.Bytes(), im.got) || strings.ContainsAny(string(im.got), "\r\n\t") {
							t.Errorf("event %d: %s image is not compact JSON (%v): %q", i, im.name, err, im.got)
						}
					}
					if !slices.Equal(got[i].ChangedAttributes, want[i].ChangedAttributes) {
						t.Errorf("event %d: changed %v, compact payload gives %v", i, got[i].ChangedAttributes, want[i].ChangedAttributes)
					}
				}
			})
		}
	}
	if checked == 0 {
		t.Fatal("no image checked")
	}
}
