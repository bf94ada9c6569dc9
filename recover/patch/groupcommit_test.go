package patch

import (
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ddbrewind/rewind/recover/patch/patchtest"
)

// TestJournalingGoesOnDuringFsync: while the fsync that makes the first
// chunk's intents durable is under way (held here, as a slow disk holds
// it), the dispatcher goes on appending the next chunks' intents, and the
// next fsync makes all of them durable at once; no write is sent before
// the fsync that covers its intent. The table ends exactly restored.
func TestJournalingGoesOnDuringFsync(t *testing.T) {
	o := patchtest.ScenarioOptions{Items: 90, Modify: 60, Delete: 20, Seed: 3}
	env, s, keys := scenario(t, o)
	jpath := filepath.Join(t.TempDir(), "j.journal")

	var mu sync.Mutex
	var (
		held  bool // the first fsync of intents was held
		grew  bool // records were appended while it was held
		early int  // writes sent before the first fsync of intents
	)
	seqNow := func(j *journal) int64 {
		j.mu.Lock()
		defer j.mu.Unlock()
		return j.seq
	}
	testHookSync = func(j *journal, seq int64) {
		if seq <= 1 { // the start record
			return
		}
		mu.Lock()
		first := !held
		held = true
		mu.Unlock()
		if !first {
			return
		}
		// Hold the fsync until more records arrive (bounded: on a
		// dispatcher that waits for this very fsync, none ever do).
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if seqNow(j) > seq {
				mu.Lock()
				grew = true
				mu.Unlock()
				return
			}
		}
	}
	testHookBeforeWrite = func(*Step) {
		mu.Lock()
		defer mu.Unlock()
		if !held {
			early++
		}
	}
	defer func() { testHookSync, testHookBeforeWrite = nil, nil }()

	sum, err := Patch(t.Context(), env.DynamoDB, Config{Keys: keys, From: "orders-restored", To: "orders", Apply: true, Journal: jpath,
		Options: Options{BatchSize: 10, Readers: 4}})
	if err != nil {
		t.Fatal(err)
	}
	testHookSync, testHookBeforeWrite = nil, nil
	if want := int64(o.Modify + o.Delete); sum.Written != want {
		t.Errorf("written %d, want %d (%+v)", sum.Written, want, sum.Counts)
	}
	mu.Lock()
	defer mu.Unlock()
	if !grew {
		t.Errorf("no record was appended while the first fsync of intents was under way: the dispatcher waits for each chunk's fsync before journaling the next")
	}
	if early > 0 {
		t.Errorf("%d writes were sent before any fsync of intents", early)
	}
	assertTable(t, env.DynamoDB, "orders", s.Expected, "after the patch")
}
