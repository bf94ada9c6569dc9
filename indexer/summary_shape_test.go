package indexer

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ddbrewind/rewind/indexer/indextest"
)

// TestOneSummaryCopy: the summary and the event ID are kept once, in the
// 't' value: the tenant and item orderings are keys only (empty values,
// no event ID in any key), every one of their keys points at a 't' entry
// of the same tenant, table and item key, and a tenant or item scan
// decodes every entry to the same fields as the time scan.
func TestOneSummaryCopy(t *testing.T) {
	src := t.TempDir()
	if err := indextest.WriteDir(src, indextest.Objects("capture", indextest.NewGen(21).Events(400), 30)); err != nil {
		t.Fatal(err)
	}
	s := ingestedStore(t, src)
	type full struct {
		value []byte
		e     Entry
	}
	byEv := map[string]full{}
	scan := func(space byte, fn func(k, v []byte)) {
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{space}, UpperBound: []byte{space + 1}})
		if err != nil {
			t.Fatal(err)
		}
		defer it.Close()
		for ok := it.First(); ok; ok = it.Next() {
			v, _ := it.ValueAndErr()
			fn(bytes.Clone(it.Key()), bytes.Clone(v))
		}
	}
	scan(spaceTime, func(k, v []byte) {
		var e Entry
		if err := decodeEntry(&e, k[1:], v); err != nil {
			t.Fatal(err)
		}
		byEv[string(k[1:])] = full{v, e}
	})
	same := func(space string, e *Entry, want *Entry) {
		t.Helper()
		if string(e.Table) != string(want.Table) || string(e.Tenant) != string(want.Tenant) || !bytes.Equal(e.Key, want.Key) ||
			e.Action != want.Action || e.TTLExpiry != want.TTLExpiry || e.Undecodable != want.Undecodable ||
			!bytes.Equal(e.changed, want.changed) || !bytes.Equal(e.EventID, want.EventID) {
			t.Fatalf("%s entry of event %s decodes to %+v, the time entry to %+v", space, want.EventID, e, want)
		}
	}
	var n, i int
	scan(spaceTenant, func(k, v []byte) {
		ev, err := evOf(k)
		if err != nil {
			t.Fatal(err)
		}
		f, ok := byEv[string(ev)]
		if !ok {
			t.Fatalf("tenant entry %q has no time entry", k)
		}
		if len(v) != 0 {
			t.Fatalf("tenant entry of %s has a %d-byte value, want none (the summary is in 't')", f.e.EventID, len(v))
		}
		if bytes.Contains(k, f.e.EventID) {
			t.Fatalf("tenant key %q holds the event ID %s", k, f.e.EventID)
		}
		if got := unescapeStr(k[1 : len(k)-len(ev)]); got != string(f.e.Tenant) {
			t.Fatalf("tenant entry of %s is under tenant %q, its summary says %q", f.e.EventID, got, f.e.Tenant)
		}
		n++
	})
	scan(spaceItem, func(k, v []byte) {
		ev, err := evOf(k)
		if err != nil {
			t.Fatal(err)
		}
		f, ok := byEv[string(ev)]
		if !ok {
			t.Fatalf("item entry %q has no time entry", k)
		}
		if len(v) != 0 {
			t.Fatalf("item entry of %s has a %d-byte value, want none", f.e.EventID, len(v))
		}
		if want := append(appendStr([]byte{spaceItem}, string(f.e.Table)), f.e.Key...); !bytes.HasPrefix(k, want) || len(k) != len(want)+len(ev) {
			t.Fatalf("item key %q of %s, want table and key %q then the ev", k, f.e.EventID, want)
		}
		i++
	})
	scan(spaceRecord, func(k, v []byte) {
		// The value may hold the ID inside the raw stream record.
		if f, ok := byEv[string(k[1:])]; !ok || bytes.Contains(k, f.e.EventID) {
			t.Fatalf("record %q: time entry %v, or the event ID in its key", k, ok)
		}
	})
	// The scans the query package uses decode the same entries.
	for _, f := range byEv {
		if f.e.Undecodable || len(f.e.Key) == 0 {
			continue
		}
		key, err := f.e.ItemKey()
		if err != nil {
			t.Fatal(err)
		}
		for name, open := range map[string]func() (*Iter, error){
			"tenant": func() (*Iter, error) { return s.ScanTenant(string(f.e.Tenant), Window{}) },
			"item":   func() (*Iter, error) { return s.ScanItem(string(f.e.Table), key, Window{}) },
		} {
			it, err := open()
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for it.Next() {
				if bytes.Equal(it.Entry().ev, f.e.ev) {
					same(name, it.Entry(), &f.e)
					found = true
				}
			}
			if err := it.Close(); err != nil || !found {
				t.Fatalf("%s scan: event %s found %v, error %v", name, f.e.EventID, found, err)
			}
		}
	}
	if n == 0 || i == 0 || n > len(byEv) || i > len(byEv) {
		t.Fatalf("%d time, %d tenant, %d item entries", len(byEv), n, i)
	}
}

// ingestedStore returns a new store (closed when the test ends) holding
// the capture Parquet under dir.
func ingestedStore(t *testing.T, dir string) *Store {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := Open(t.TempDir(), Options{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	src, err := NewDirSource(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Ingest(context.Background(), src, Config{Log: log}); err != nil {
		t.Fatal(err)
	}
	return s
}
