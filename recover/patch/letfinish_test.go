package patch

import (
	"context"
	"testing"
	"time"
)

// TestLetFinish: the context outlives its parent by the grace only, and
// no grace bounds it while the parent lives.
func TestLetFinish(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	lctx, stop := letFinish(parent, 100*time.Millisecond)
	defer stop()
	time.Sleep(300 * time.Millisecond)
	if lctx.Err() != nil {
		t.Fatal("cancelled while the parent lives")
	}
	cancel()
	time.Sleep(30 * time.Millisecond)
	if lctx.Err() != nil {
		t.Fatal("cancelled with the parent, before the grace")
	}
	select {
	case <-lctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("not cancelled after the grace")
	}

	lctx2, stop2 := letFinish(context.Background(), time.Hour)
	stop2()
	if lctx2.Err() == nil {
		t.Fatal("stop does not cancel")
	}
}
