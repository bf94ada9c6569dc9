package query_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer"
	"github.com/ddbrewind/rewind/indexer/indextest"
	"github.com/ddbrewind/rewind/query"
)

// ingestEvents indexes evs in a store of the test's own.
func ingestEvents(tb testing.TB, evs []rewind.ChangeEvent) *indexer.Store {
	tb.Helper()
	dir := tb.TempDir()
	if err := indextest.WriteDir(dir, indextest.Objects("capture", evs, 5000)); err != nil {
		tb.Fatal(err)
	}
	st, err := indexer.Open(tb.TempDir(), indexer.Options{Log: quiet})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	src, _ := indexer.NewDirSource(dir)
	if _, err := st.Ingest(context.Background(), src, indexer.Config{Log: quiet}); err != nil {
		tb.Fatal(err)
	}
	return st
}

// bruteStateAt is StateAt's rule applied to the whole history, read in
// the index's order with History: the newest change at or before at
// decides (its new image, or none after a REMOVE), else the first after
// it (its old image, or none before an INSERT); a missing image, or no
// change at all, is unknown.
func bruteStateAt(t *testing.T, st *indexer.Store, byID map[string]*rewind.ChangeEvent, key rewind.Key, at time.Time) (known bool, v string) {
	t.Helper()
	changes, err := query.History(context.Background(), st, "orders", key, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var last, first *rewind.ChangeEvent
	for _, c := range changes {
		ev := byID[c.EventID]
		if !c.Time.After(at) {
			last = ev
		} else if first == nil {
			first = ev
		}
	}
	image := func(j rewind.Image) (bool, string) {
		if j == nil {
			return false, ""
		}
		item, err := j.Item()
		if err != nil {
			t.Fatal(err)
		}
		return true, item["v"].(*types.AttributeValueMemberS).Value
	}
	switch {
	case last != nil && last.Action == rewind.ActionRemove:
		return true, ""
	case last != nil:
		return image(last.NewImage)
	case first == nil:
		return false, ""
	case first.Action == rewind.ActionInsert:
		return true, ""
	}
	return image(first.OldImage)
}

// TestStateAtMatchesBruteForce checks StateAt, which seeks to the one
// event that decides, against the rule applied to the whole history, on
// random histories: many changes per item, several in the same second,
// images missing at random, removes and re-inserts.
func TestStateAtMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	var evs []rewind.ChangeEvent
	var keys []rewind.Key
	seq := 1000
	for k := range 20 {
		key := rewind.Key{{Name: "pk", Type: 'S', Value: fmt.Sprintf("item%02d", k)}}
		keys = append(keys, key)
		exists := rng.IntN(2) == 0
		cur := key.Item()
		cur["v"] = &types.AttributeValueMemberS{Value: "start"}
		sec := 0
		for i := range rng.IntN(30) {
			sec += rng.IntN(3) // 0: the same second as the change before
			seq++
			ev := rewind.ChangeEvent{EventID: fmt.Sprintf("e%d", seq), Table: "orders", Tenant: "t",
				Time: t0.Add(time.Duration(sec) * time.Second), SequenceNumber: fmt.Sprint(seq), Keys: key, StreamViewType: "NEW_AND_OLD_IMAGES"}
			next := key.Item()
			next["v"] = &types.AttributeValueMemberS{Value: fmt.Sprintf("k%d-%d", k, i)}
			switch {
			case !exists:
				ev.Action, ev.NewImage = rewind.ActionInsert, rewind.ItemJSON(next)
			case rng.IntN(5) == 0:
				ev.Action, ev.OldImage = rewind.ActionRemove, rewind.ItemJSON(cur)
			default:
				ev.Action, ev.OldImage, ev.NewImage = rewind.ActionModify, rewind.ItemJSON(cur), rewind.ItemJSON(next)
			}
			if ev.Action != rewind.ActionRemove {
				cur, exists = next, true
			} else {
				exists = false
			}
			switch rng.IntN(8) { // a capture that kept one image, or none
			case 0:
				ev.OldImage, ev.StreamViewType = nil, "NEW_IMAGE"
			case 1:
				ev.NewImage, ev.StreamViewType = nil, "OLD_IMAGE"
			case 2:
				ev.OldImage, ev.NewImage, ev.StreamViewType = nil, nil, "KEYS_ONLY"
			}
			evs = append(evs, ev)
		}
	}
	st := ingestEvents(t, evs)
	byID := map[string]*rewind.ChangeEvent{}
	for i := range evs {
		byID[evs[i].EventID] = &evs[i]
	}
	checked := 0
	for _, key := range keys {
		for sec := -1; sec <= 62; sec++ {
			at := t0.Add(time.Duration(sec) * time.Second)
			s, err := query.StateAt(context.Background(), st, "orders", key, at)
			if err != nil {
				t.Fatal(err)
			}
			known, v := bruteStateAt(t, st, byID, key, at)
			got := ""
			if s.Item != nil {
				got = s.Item["v"].(*types.AttributeValueMemberS).Value
			}
			if s.Known != known || got != v {
				t.Fatalf("%s at +%ds: StateAt known=%v item %q (%s, %s); the whole history says known=%v item %q", key, sec, s.Known, got, s.From, s.Reason, known, v)
			}
			checked++
		}
	}
	t.Logf("%d states checked over %d events", checked, len(evs))
}

// BenchmarkStateAt is the state of one item with a long history, at its
// end (the worst case for a walk from the start). StateAt seeks to the
// event that decides, so the time per call stays flat as the history
// grows.
func BenchmarkStateAt(b *testing.B) {
	for _, n := range []int{10, 1_000, 100_000} {
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) {
			t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
			key := rewind.Key{{Name: "pk", Type: 'S', Value: "hot"}}
			evs := make([]rewind.ChangeEvent, n)
			img := key.Item()
			img["v"] = &types.AttributeValueMemberS{Value: "x"}
			for i := range evs {
				evs[i] = rewind.ChangeEvent{EventID: fmt.Sprintf("%032x", i), Table: "orders", Tenant: "t", Action: rewind.ActionModify,
					Time: t0.Add(time.Duration(i) * time.Millisecond), SequenceNumber: fmt.Sprint(1000000 + i), Keys: key,
					OldImage: rewind.ItemJSON(img), NewImage: rewind.ItemJSON(img), StreamViewType: "NEW_AND_OLD_IMAGES"}
			}
			st := ingestEvents(b, evs)
			at := t0.Add(time.Duration(n) * time.Millisecond)
			b.ResetTimer()
			for range b.N {
				s, err := query.StateAt(context.Background(), st, "orders", key, at)
				if err != nil || !s.Known {
					b.Fatal(err, s.Reason)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "states/s")
		})
	}
}
