package indexer

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer/indextest"
)

// TestEventKeyClashKeepsBoth: the store keys an event by time, sequence
// number and its stream (a hash of table and shard), not by its event ID.
// Two events with different IDs and the same time, sequence number, table
// and shard get the same key: the ingester must not take the second for a
// duplicate of the first (a lost event, a wrong answer). Both are kept,
// each with its own images and under its tenant and item, whether they
// meet in one batch or one is already stored, and each delivered again is
// still a duplicate.
func TestEventKeyClashKeepsBoth(t *testing.T) {
	evs := indextest.NewGen(31).Events(4)
	for i := range evs {
		evs[i].EventID = fmt.Sprintf("evt-%c", 'd'-i) // later ones sort first
		evs[i].Time, evs[i].SequenceNumber = evs[0].Time, evs[0].SequenceNumber
		evs[i].Table, evs[i].ShardID = evs[0].Table, evs[0].ShardID
		evs[i].NewImage = rewind.Image(fmt.Sprintf(`{"n":{"N":"%d"}}`, i))
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	n := 0
	ingest := func(s *Store, evs ...rewind.ChangeEvent) {
		t.Helper()
		dir := t.TempDir()
		n++
		if err := indextest.WriteDir(dir, map[string][]rewind.ChangeEvent{fmt.Sprintf("capture/%d.parquet", n): evs}); err != nil {
			t.Fatal(err)
		}
		src, _ := NewDirSource(dir)
		if _, err := s.Ingest(context.Background(), src, Config{Log: log}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(s *Store, want ...rewind.ChangeEvent) {
		t.Helper()
		if c, _ := s.Count(); c != int64(len(want)) {
			t.Fatalf("count %d, want %d", c, len(want))
		}
		scans := map[string]func(ev *rewind.ChangeEvent) (*Iter, error){
			"time":   func(*rewind.ChangeEvent) (*Iter, error) { return s.ScanTime(Window{}) },
			"tenant": func(ev *rewind.ChangeEvent) (*Iter, error) { return s.ScanTenant(ev.Tenant, Window{}) },
			"item":   func(ev *rewind.ChangeEvent) (*Iter, error) { return s.ScanItem(ev.Table, ev.Keys, Window{}) },
		}
		for _, w := range want {
			for name, scan := range scans {
				it, err := scan(&w)
				if err != nil {
					t.Fatal(err)
				}
				found := 0
				for it.Next() {
					if string(it.Entry().EventID) != w.EventID {
						continue
					}
					found++
					ev, err := s.Event(it.Entry())
					if err != nil {
						t.Fatal(err)
					}
					if string(ev.NewImage) != string(w.NewImage) {
						t.Errorf("%s scan: event %s has new image %s, want %s", name, w.EventID, ev.NewImage, w.NewImage)
					}
				}
				if err := it.Close(); err != nil || found != 1 {
					t.Errorf("%s scan: event %s found %d times (error %v), want once", name, w.EventID, found, err)
				}
			}
		}
	}

	// One batch, with a redelivery of one of them in it.
	s, err := Open(t.TempDir(), Options{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ingest(s, evs[0], evs[1], evs[2], evs[1])
	check(s, evs[:3]...)
	// Across batches: one already stored, a new one, and redeliveries of
	// the owner of the key and of one that got a key of its own.
	ingest(s, evs[3], evs[0], evs[2])
	check(s, evs...)

	s2, err := Open(t.TempDir(), Options{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	ingest(s2, evs[2])
	ingest(s2, evs[1], evs[2], evs[0])
	ingest(s2, evs[0], evs[3], evs[1])
	check(s2, evs...)
}

// TestSameTimeAndSequenceOtherStream: events of different streams (another
// table, another shard) may share a time and a sequence number, and events
// without a sequence number (an export's) may share a time: all are kept,
// each readable with its own images.
func TestSameTimeAndSequenceOtherStream(t *testing.T) {
	base := indextest.NewGen(32).Events(1)[0]
	if streamHash("orders", base.ShardID) == streamHash("customers", base.ShardID) || streamHash("orders", "shard-1") == streamHash("orders", "shard-2") {
		t.Fatal("test streams hash alike: pick others")
	}
	var evs []rewind.ChangeEvent
	for i, v := range []struct{ table, shard, seq string }{
		{"orders", "shard-1", "42"}, {"customers", "shard-1", "42"}, {"orders", "shard-2", "42"},
		{"orders", "", ""}, {"orders", "", ""}, {"customers", "", ""},
	} {
		ev := base
		ev.EventID = fmt.Sprintf("evt-%d", i)
		ev.Table, ev.ShardID, ev.SequenceNumber = v.table, v.shard, v.seq
		ev.NewImage = rewind.Image(fmt.Sprintf(`{"n":{"N":"%d"}}`, i))
		evs = append(evs, ev)
	}
	dir := t.TempDir()
	if err := indextest.WriteDir(dir, map[string][]rewind.ChangeEvent{"capture/x.parquet": evs}); err != nil {
		t.Fatal(err)
	}
	s := ingestedStore(t, dir)
	it, err := s.ScanTime(Window{})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	got := map[string]string{}
	for it.Next() {
		ev, err := s.Event(it.Entry())
		if err != nil {
			t.Fatal(err)
		}
		got[ev.EventID] = string(ev.NewImage)
	}
	if len(got) != len(evs) {
		t.Fatalf("stored %d of %d events: %v", len(got), len(evs), got)
	}
	for _, ev := range evs {
		if got[ev.EventID] != string(ev.NewImage) {
			t.Errorf("event %s: new image %q, want %q", ev.EventID, got[ev.EventID], ev.NewImage)
		}
	}
}

// TestSortPending: the batch sort orders keys as bytes.Compare does, the
// first object first among equal keys, whatever their lengths (keys that
// are prefixes of others, keys shorter than the integers it compares
// first).
func TestSortPending(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for round := 0; round < 200; round++ {
		var ps []*pending
		for i := 0; i < 1+rng.IntN(60); i++ {
			k := []byte("n\x00pfx")
			for j := rng.IntN(24); j > 0; j-- {
				k = append(k, byte(rng.IntN(3)))
			}
			ps = append(ps, &pending{t: k, obj: int32(rng.IntN(4))})
		}
		want := slices.Clone(ps)
		slices.SortStableFunc(want, func(a, b *pending) int {
			if c := bytes.Compare(a.t, b.t); c != 0 {
				return c
			}
			return cmp.Compare(a.obj, b.obj)
		})
		sortPending(ps, func(p *pending) []byte { return p.t })
		for i := range ps {
			if !bytes.Equal(ps[i].t, want[i].t) || ps[i].obj != want[i].obj {
				t.Fatalf("round %d: position %d is %q (object %d), want %q (object %d)", round, i, ps[i].t, ps[i].obj, want[i].t, want[i].obj)
			}
		}
	}
}
