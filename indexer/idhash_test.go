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

// collidingIDs returns two event IDs with the same idHash.
func collidingIDs(t *testing.T) (string, string) {
	seen := map[uint32]string{}
	for i := 0; i < 1<<22; i++ {
		id := fmt.Sprintf("evt-%08d", i)
		h := idHash(id)
		if o, ok := seen[h]; ok {
			return o, id
		}
		seen[h] = id
	}
	t.Fatal("no idHash collision found")
	return "", ""
}

// TestIDHashClashIsAnError: two different events with the same time,
// sequence number and ID hash get the same keys. The ingester must not
// take the second for a duplicate of the first (a lost event, a wrong
// answer): it refuses the batch, naming both event IDs, whether the two
// meet in one batch or the first is already stored.
func TestIDHashClashIsAnError(t *testing.T) {
	a, b := collidingIDs(t)
	evs := indextest.NewGen(31).Events(2)
	evs[0].EventID, evs[1].EventID = a, b
	evs[1].Time, evs[1].SequenceNumber = evs[0].Time, evs[0].SequenceNumber
	evs[1].Table = evs[0].Table
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
		for _, want := range []string{a, b, "sequence number", "hash"} {
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
