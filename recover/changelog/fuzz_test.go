package changelog

import (
	"testing"
	"time"
)

// FuzzParse: Parse never panics, a change line it accepts has every field,
// and the event it stands for carries no images.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"time":"2026-12-02T00:00:00Z","operation":"itemChange","id":"1","table":"t","key":{"pk":{"S":"a"}},"tenant":"a","action":"REMOVE"}`))
	f.Add([]byte(`2026-12-02T00:00:00.000Z {"operation":"itemChange","id":"1","table":"t","key":{"pk":{"N":"1e3"},"sk":{"B":"AA=="}},"tenant":"","action":"INSERT","time":"2026-12-02T00:00:00.5+01:00"}`))
	f.Add([]byte(`START RequestId: 1 itemChange`))
	f.Add([]byte(`{"operation":"itemChange"`))
	f.Fuzz(func(t *testing.T, msg []byte) {
		rec, ok, err := Parse(msg)
		if !ok && err != nil {
			t.Fatalf("not a change line, yet an error: %v", err)
		}
		if !ok || err != nil {
			return
		}
		if rec.ID == "" || rec.Table == "" || len(rec.Key) == 0 || rec.Action == "" || rec.Time.Location() != time.UTC {
			t.Fatalf("accepted an incomplete record %+v from %q", rec, msg)
		}
		ev := rec.Event()
		if ev.OldImage != nil || ev.NewImage != nil || ev.EventID != "changelog:"+rec.ID {
			t.Fatalf("event %+v", ev)
		}
	})
}
