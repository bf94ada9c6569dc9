package cli

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/ddbrewind/rewind/indexer/indextest"
)

// TestStatsTimelineOpenWindow: with one end of the window given (--from
// -2h), the timeline spans the events, as rewind stats -h says; with both
// ends it spans the window, quiet buckets included.
func TestStatsTimelineOpenWindow(t *testing.T) {
	gen := indextest.NewGen(5)
	now := time.Now().UTC()
	gen.Start, gen.Span = now.Add(-5*time.Minute).Truncate(time.Minute), 2*time.Minute
	evs := gen.Events(30)
	src := t.TempDir()
	if err := indextest.WriteDir(src, indextest.Objects("capture", evs, 10)); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(t.TempDir(), "store")
	if code, _, stderr := runIndexCLI(t, "index", "--source", src, "--store", store); code != exitOK {
		t.Fatalf("index: exit %d\n%s", code, stderr)
	}
	timeline := func(args ...string) []time.Time {
		t.Helper()
		code, out, stderr := runIndexCLI(t, append([]string{"stats", "--store", store, "--bucket", "1m", "--format", "json"}, args...)...)
		if code != exitOK {
			t.Fatalf("stats %v: exit %d\n%s", args, code, stderr)
		}
		var s struct {
			Timeline []struct {
				Start  time.Time `json:"start"`
				Events int64     `json:"events"`
			} `json:"timeline"`
		}
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			t.Fatalf("stats %v: %v\n%s", args, err, out)
		}
		var starts []time.Time
		for _, b := range s.Timeline {
			starts = append(starts, b.Start)
		}
		return starts
	}
	first, last := evs[0].Time.Truncate(time.Minute), evs[len(evs)-1].Time.Truncate(time.Minute)
	for _, args := range [][]string{{"--from", "-2h"}, {"--to", now.Add(time.Hour).Format(time.RFC3339)}, nil} {
		got := timeline(args...)
		if len(got) == 0 || !got[0].Equal(first) || !got[len(got)-1].Equal(last) || len(got) > 3 {
			t.Errorf("stats %v: timeline %v; want the minutes from the first event (%s) to the last (%s)", args, got, first, last)
		}
	}
	from := now.Add(-2 * time.Hour).Truncate(time.Minute)
	got := timeline("--from", from.Format(time.RFC3339), "--to", now.Add(time.Minute).Truncate(time.Minute).Format(time.RFC3339))
	if len(got) != 121 || !got[0].Equal(from) {
		t.Errorf("stats over a closed window of two hours: %d buckets from %v; want 121 from %s", len(got), got[:min(1, len(got))], from)
	}
}
