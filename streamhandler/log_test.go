package streamhandler

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// steppingClock returns t0 on its first call and t0+step on every later
// one, so a duration measured between two calls is exactly step.
type steppingClock struct {
	mu    sync.Mutex
	t0    time.Time
	step  time.Duration
	calls int
}

func (c *steppingClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if c.calls == 1 {
		return c.t0
	}
	return c.t0.Add(c.step)
}

// TestBatchLogDuration checks the per-batch log line reports how long the
// batch took (it once always said "duration":0).
func TestBatchLogDuration(t *testing.T) {
	var logs bytes.Buffer
	h := newTestHandler(t, newFakeAudit(), newFakeS3(), nil)
	h.log = slog.New(slog.NewJSONHandler(&logs, nil))
	clock := &steppingClock{t0: time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC), step: 1500 * time.Millisecond}
	h.now = clock.now
	recs := genRecords(20, time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC), time.Second, 50)
	invoke(t, h, context.Background(), payload(recs))

	var found bool
	sc := bufio.NewScanner(&logs)
	for sc.Scan() {
		var line struct {
			Msg      string `json:"msg"`
			Records  int    `json:"records"`
			Duration *int64 `json:"duration"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("log line %q: %v", sc.Bytes(), err)
		}
		if line.Msg != "stream batch" {
			continue
		}
		found = true
		if line.Records != len(recs) {
			t.Errorf("batch log line says %d records, want %d", line.Records, len(recs))
		}
		if line.Duration == nil {
			t.Fatalf("batch log line has no duration: %s", sc.Bytes())
		}
		if got := time.Duration(*line.Duration); got != clock.step {
			t.Errorf("batch log line says duration %s, want %s (the clock moved that much during the batch)", got, clock.step)
		}
	}
	if !found {
		t.Fatalf("no \"stream batch\" log line in:\n%s", logs.String())
	}
}
