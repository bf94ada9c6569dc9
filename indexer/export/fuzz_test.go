package export

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ddbrewind/rewind"
)

// FuzzDecodeLine feeds data lines to the decoder: it must not panic, and a
// line it accepts must make an event with a key and an action that
// matches its images.
func FuzzDecodeLine(f *testing.F) {
	srcs, _ := filepath.Glob(filepath.Join(fixtureRoot, "*", "source", "*.jsonl"))
	for _, s := range srcs {
		b, _ := os.ReadFile(s)
		for _, l := range bytes.Split(b, []byte("\n")) {
			f.Add(l)
		}
	}
	f.Add([]byte(`{"Keys":{"pk":{"S":"a"}},"Metadata":{"WriteTimestampMicros":1}}`))
	f.Add([]byte(`{"Keys":{"pk":{"B":"AAE="}},"OldImage":null,"NewImage":{}}`))
	e := &Export{ID: "x", Table: "t", Region: "r", To: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), View: ViewNewAndOld}
	f.Fuzz(func(t *testing.T, line []byte) {
		ev, err := e.decodeLine(line)
		if err != nil {
			return
		}
		if len(ev.Keys) == 0 || ev.EventID == "" {
			t.Fatalf("accepted %q without a key or id", line)
		}
		switch {
		case ev.NewImage == nil && ev.Action != rewind.ActionRemove,
			ev.NewImage != nil && ev.OldImage == nil && ev.Action != rewind.ActionInsert,
			ev.NewImage != nil && ev.OldImage != nil && ev.Action != rewind.ActionModify:
			t.Fatalf("%q: action %s with old %v new %v", line, ev.Action, ev.OldImage != nil, ev.NewImage != nil)
		}
		for _, im := range []rewind.Image{ev.OldImage, ev.NewImage} {
			if im != nil {
				if _, err := im.Item(); err != nil {
					t.Fatalf("%q: stored image does not parse: %v", line, err)
				}
			}
		}
	})
}

// FuzzManifests feeds both manifests to their parsers: no panics, and an
// accepted summary names a table and a window.
func FuzzManifests(f *testing.F) {
	sums, _ := filepath.Glob(filepath.Join(fixtureRoot, "*", "AWSDynamoDB", "*", "manifest-summary.json"))
	for _, s := range sums {
		b, _ := os.ReadFile(s)
		files, _ := os.ReadFile(filepath.Join(filepath.Dir(s), "manifest-files.json"))
		f.Add(b, files)
	}
	f.Fuzz(func(t *testing.T, summary, files []byte) {
		if _, in, err := parseSummary(summary); err == nil && (in.table == "" || in.id == "" || !in.to.After(in.from)) {
			t.Fatalf("accepted summary %q: %+v", summary, in)
		}
		entries, err := parseFiles(bytes.NewReader(files))
		if err == nil {
			for _, e := range entries {
				if e.DataFileS3Key == "" || e.ItemCount < 0 {
					t.Fatalf("accepted entry %+v", e)
				}
			}
		}
	})
}
