package indexer_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer"
	"github.com/ddbrewind/rewind/indexer/indextest"
	"github.com/google/go-cmp/cmp"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func openStore(t *testing.T, dir string) *indexer.Store {
	t.Helper()
	s, err := indexer.Open(dir, indexer.Options{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func ingestDir(t *testing.T, s *indexer.Store, dir string, cfg indexer.Config) (indexer.Result, error) {
	t.Helper()
	src, err := indexer.NewDirSource(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Log = quiet
	return s.Ingest(context.Background(), src, cfg)
}

// writeEvents writes events as objects of at most per events under dir.
func writeEvents(t *testing.T, dir string, evs []rewind.ChangeEvent, per int) map[string][]rewind.ChangeEvent {
	t.Helper()
	objs := indextest.Objects("capture", evs, per)
	if err := indextest.WriteDir(dir, objs); err != nil {
		t.Fatal(err)
	}
	return objs
}

// allEvents reads every event back in time order, with images.
func allEvents(t *testing.T, s *indexer.Store) []rewind.ChangeEvent {
	t.Helper()
	it, err := s.ScanTime(indexer.Window{})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out []rewind.ChangeEvent
	for it.Next() {
		ev, err := s.Event(it.Entry())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// sortEvents orders events as the time space does: time, then sequence
// number, then event ID.
func sortEvents(evs []rewind.ChangeEvent) {
	slices.SortFunc(evs, func(a, b rewind.ChangeEvent) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		if c := rewind.CompareSequenceNumbers(a.SequenceNumber, b.SequenceNumber); c != 0 {
			return c
		}
		return strings.Compare(a.EventID, b.EventID)
	})
}

// checkEvents compares cheaply and diffs only on failure: cmp is slow on
// thousands of events.
func checkEvents(t *testing.T, want, got []rewind.ChangeEvent) {
	t.Helper()
	if !reflect.DeepEqual(want, got) {
		t.Fatalf("events read back differ (-want +got):\n%s", cmp.Diff(want, got))
	}
}

func TestIngestRoundTrip(t *testing.T) {
	src := t.TempDir()
	g := indextest.NewGen(1)
	evs := g.Events(3000)
	objs := writeEvents(t, src, evs, 97)

	s := openStore(t, t.TempDir())
	res, err := ingestDir(t, s, src, indexer.Config{BatchBytes: 200 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ingested != len(objs) || res.Events != int64(len(evs)) || res.Duplicates != 0 || res.Batches < 2 {
		t.Fatalf("ingest: %+v; want %d objects, %d events, several batches", res.Progress, len(objs), len(evs))
	}
	if n, err := s.Count(); err != nil || n != int64(len(evs)) {
		t.Fatalf("Count = %d, %v; want %d", n, err, len(evs))
	}
	got := allEvents(t, s)
	want := slices.Clone(evs)
	sortEvents(want)
	checkEvents(t, want, got)
	tables, err := s.Tables()
	if err != nil || !slices.Equal(tables, []string{"ledger", "orders", "users"}) {
		t.Fatalf("Tables = %v, %v", tables, err)
	}
	srcs, err := s.Sources()
	if abs, _ := filepath.Abs(src); err != nil || !slices.Equal(srcs, []string{abs}) {
		t.Fatalf("Sources = %v, %v; want [%s]", srcs, err, abs)
	}

	// A rerun finds nothing new.
	res, err = ingestDir(t, s, src, indexer.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ingested != 0 || res.Skipped != len(objs) || res.Listed != len(objs) {
		t.Fatalf("rerun: %+v; want every object skipped", res.Progress)
	}
}

func TestIngestIncrementalAndDuplicates(t *testing.T) {
	src := t.TempDir()
	g := indextest.NewGen(2)
	first := g.Events(1000)
	writeEvents(t, src, first, 50)
	s := openStore(t, t.TempDir())
	if _, err := ingestDir(t, s, src, indexer.Config{}); err != nil {
		t.Fatal(err)
	}

	// New objects, plus one that overlaps already ingested events (a
	// retried batch written under another key) and repeats one of its own.
	g.Start = g.Start.Add(g.Span)
	second := g.Events(500)
	writeEvents(t, src, second, 50)
	overlap := append(slices.Clone(first[100:130]), second[10], second[10])
	dupObjs := indextest.Objects("retried", overlap, 1000)
	if err := indextest.WriteDir(src, dupObjs); err != nil {
		t.Fatal(err)
	}
	res, err := ingestDir(t, s, src, indexer.Config{BatchObjects: 3})
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != int64(len(second)) || res.Duplicates != int64(len(overlap)) {
		t.Fatalf("second ingest: %d new, %d duplicates; want %d, %d", res.Events, res.Duplicates, len(second), len(overlap))
	}
	if n, _ := s.Count(); n != int64(len(first)+len(second)) {
		t.Fatalf("Count = %d, want %d", n, len(first)+len(second))
	}
	want := append(slices.Clone(first), second...)
	sortEvents(want)
	checkEvents(t, want, allEvents(t, s))
	var objects, dups int64
	if err := s.Objects(func(o indexer.ObjectInfo) error {
		objects++
		dups += o.Duplicates
		if o.Rows != o.New+o.Duplicates || o.ETag == "" || o.Size == 0 || o.First > o.Last {
			t.Errorf("manifest entry %+v is inconsistent", o)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if dups != int64(len(overlap)) {
		t.Fatalf("manifest counts %d duplicates, want %d", dups, len(overlap))
	}

	// Rewriting an object (new mtime) re-reads it and adds nothing.
	var rel string
	for k := range dupObjs {
		rel = k
	}
	some := filepath.Join(src, filepath.FromSlash(rel))
	data, _ := os.ReadFile(some)
	os.Remove(some)
	if err := os.WriteFile(some, data, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err = ingestDir(t, s, src, indexer.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ingested != 1 || res.Events != 0 || res.Duplicates != int64(len(dupObjs[rel])) {
		t.Fatalf("re-uploaded object: %+v; want 1 object, 0 new events", res.Progress)
	}
}

func TestIngestCorruptObjects(t *testing.T) {
	src := t.TempDir()
	evs := indextest.NewGen(3).Events(800)
	objs := writeEvents(t, src, evs, 100)
	var keys []string
	for k := range objs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	// One object truncated, one replaced by garbage.
	truncated := filepath.Join(src, filepath.FromSlash(keys[1]))
	data, _ := os.ReadFile(truncated)
	os.WriteFile(truncated, data[:len(data)/2], 0o644)
	garbage := filepath.Join(src, filepath.FromSlash(keys[3]))
	os.WriteFile(garbage, []byte("PAR1 this is not parquet PAR1"), 0o644)
	lost := int64(len(objs[keys[1]]) + len(objs[keys[3]]))

	s := openStore(t, t.TempDir())
	res, err := ingestDir(t, s, src, indexer.Config{BatchObjects: 2})
	var pe *indexer.PartialError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want a PartialError", err)
	}
	if len(pe.Failed) != 2 || pe.Failed[0].Object != truncated || pe.Failed[1].Object != garbage {
		t.Fatalf("failed objects: %v; want %s and %s", err, truncated, garbage)
	}
	if !strings.Contains(err.Error(), truncated) || !strings.Contains(err.Error(), garbage) {
		t.Fatalf("error does not name the objects: %v", err)
	}
	if res.Events != int64(len(evs))-lost || res.Ingested != len(objs)-2 || res.Failed != 2 {
		t.Fatalf("ingest: %+v; want %d events from %d objects", res.Progress, int64(len(evs))-lost, len(objs)-2)
	}
	// The failed objects are not in the manifest: fixed, they are ingested.
	if err := indextest.WriteDir(src, map[string][]rewind.ChangeEvent{keys[1]: objs[keys[1]], keys[3]: objs[keys[3]]}); err != nil {
		t.Fatal(err)
	}
	res, err = ingestDir(t, s, src, indexer.Config{})
	if err != nil || res.Events != lost || res.Ingested != 2 {
		t.Fatalf("after repair: %+v, %v; want %d events from 2 objects", res.Progress, err, lost)
	}
}

func TestStoreLocked(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	_, err := indexer.Open(dir, indexer.Options{Log: quiet})
	if !errors.Is(err, indexer.ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), "store is locked by another process (pid ") {
		t.Fatalf("message does not say who holds the lock: %v", err)
	}
	_, err = indexer.Open(dir, indexer.Options{ReadOnly: true, Log: quiet})
	if !errors.Is(err, indexer.ErrLocked) {
		t.Fatalf("read-only Open while locked: %v, want ErrLocked", err)
	}
	s.Close()
	s2, err := indexer.Open(dir, indexer.Options{ReadOnly: true, Log: quiet})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	s2.Close()
	if _, err := indexer.Open(t.TempDir(), indexer.Options{ReadOnly: true, Log: quiet}); !errors.Is(err, indexer.ErrNoStore) {
		t.Fatalf("read-only Open of an empty directory: %v, want ErrNoStore", err)
	}
}

// TestIngestConsolidates checks that the batches' sstables of the time
// ordering do not pile up: each batch ingests one per key space, which
// never overlap one another, and a read-only Open replays one MANIFEST
// entry per file. After many batches, the store holds the records' files
// (one per batch) and a few others, not two or more per batch.
func TestIngestConsolidates(t *testing.T) {
	src := t.TempDir()
	g := indextest.NewGen(7)
	evs := g.Events(3000)
	// In time order, as a capture writes them: each batch's events come
	// after the last batch's, and the time ordering's sstables never
	// overlap.
	sortEvents(evs)
	writeEvents(t, src, evs, 100)

	dir := t.TempDir()
	s := openStore(t, dir)
	res, err := ingestDir(t, s, src, indexer.Config{BatchObjects: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Batches < 20 {
		t.Fatalf("ingest: %d batches; the test needs many", res.Batches)
	}
	got := allEvents(t, s)
	want := slices.Clone(evs)
	sortEvents(want)
	checkEvents(t, want, got)
	if n, err := s.SpaceFiles('t'); err != nil || n != 1 {
		t.Fatalf("the time ordering is in %d sstable(s) after %d batches (%v); want 1", n, res.Batches, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ssts, err := filepath.Glob(filepath.Join(dir, "*.sst"))
	if err != nil {
		t.Fatal(err)
	}
	// The records' sstables stay one per batch (their block size is the
	// ingester's); everything else is merged into a handful.
	t.Logf("%d sstables after %d batches", len(ssts), res.Batches)
	if limit := res.Batches + 8; len(ssts) > limit {
		t.Fatalf("%d sstables after %d batches; want at most %d (records one per batch, the rest merged)", len(ssts), res.Batches, limit)
	}
	// The merged store reads back the same, read-only.
	ro, err := indexer.Open(dir, indexer.Options{ReadOnly: true, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	checkEvents(t, want, allEvents(t, ro))
}
