package indexer

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer/indextest"
)

// TestEventKeyClashIsAnError: the store keys an event by time, sequence
// number and its stream (a hash of table and shard), not by its event ID.
// Two events with different IDs and the same time, sequence number, table
// and shard get the same keys: the ingester must not take the second for a
// duplicate of the first (a lost event, a wrong answer). It refuses the
// batch, naming both event IDs, whether the two meet in one batch or the
// first is already stored.
func TestEventKeyClashIsAnError(t *testing.T) {
	a, b := "evt-a", "evt-b"
	evs := indextest.NewGen(31).Events(2)
	evs[0].EventID, evs[1].EventID = a, b
	evs[1].Time, evs[1].SequenceNumber = evs[0].Time, evs[0].SequenceNumber
	evs[1].Table, evs[1].ShardID = evs[0].Table, evs[0].ShardID
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ingest := func(s *Store, objs map[string][]rewind.ChangeEvent) error {
		dir := t.TempDir()
		if err := indextest.WriteDir(dir, objs); err != nil {
			t.Fatal(err)
		}
		src, _ := NewDirSource(dir)
		_, err := s.Ingest(context.Background(), src, Config{Log: log})
		return err
	}
	wantClash := func(err error) {
		t.Helper()
		if err == nil {
			t.Fatal("two events with one key were both taken (or one dropped as a duplicate) without an error")
		}
		for _, want := range []string{a, b, "sequence number", "stream"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %q", err, want)
			}
		}
	}

	// One object, one batch.
	s, err := Open(t.TempDir(), Options{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	wantClash(ingest(s, map[string][]rewind.ChangeEvent{"capture/x.parquet": evs}))
	if n, _ := s.Count(); n != 0 {
		t.Fatalf("store holds %d events after the refused batch, want 0", n)
	}

	// The first already stored.
	s2, err := Open(t.TempDir(), Options{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := ingest(s2, map[string][]rewind.ChangeEvent{"capture/a.parquet": evs[:1]}); err != nil {
		t.Fatal(err)
	}
	wantClash(ingest(s2, map[string][]rewind.ChangeEvent{"capture/b.parquet": evs[1:]}))
	if n, _ := s2.Count(); n != 1 {
		t.Fatalf("store holds %d events, want the first one only", n)
	}

	// The same event delivered twice is still one event.
	if err := ingest(s2, map[string][]rewind.ChangeEvent{"capture/c.parquet": evs[:1]}); err != nil {
		t.Fatal(err)
	}
	if n, _ := s2.Count(); n != 1 {
		t.Fatalf("store holds %d events after a redelivery, want 1", n)
	}
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
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := Open(t.TempDir(), Options{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	src, _ := NewDirSource(dir)
	if _, err := s.Ingest(context.Background(), src, Config{Log: log}); err != nil {
		t.Fatal(err)
	}
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
