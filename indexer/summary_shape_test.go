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

// TestOneSummaryCopy: the tenant and item orderings hold only what their
// keys do not say: an 'n' value is the 't' value without the tenant, an
// 'i' value without the table and key; and every entry decodes to the same
// fields from any of the three.
func TestOneSummaryCopy(t *testing.T) {
	src := t.TempDir()
	if err := indextest.WriteDir(src, indextest.Objects("capture", indextest.NewGen(21).Events(400), 30)); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := Open(t.TempDir(), Options{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ds, _ := NewDirSource(src)
	if _, err := s.Ingest(context.Background(), ds, Config{Log: log}); err != nil {
		t.Fatal(err)
	}
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
		if err := decodeEntry(&e, k, v); err != nil {
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
		var e Entry
		if err := decodeEntry(&e, k, v); err != nil {
			t.Fatal(err)
		}
		f, ok := byEv[string(e.ev)]
		if !ok {
			t.Fatalf("tenant entry %q has no time entry", k)
		}
		same("tenant", &e, &f.e)
		if want := len(f.value) - len(appendBytes(nil, f.e.Tenant)); len(v) != want {
			t.Fatalf("tenant entry of %s: value of %d bytes, want %d (the time entry's without the tenant)", f.e.EventID, len(v), want)
		}
		n++
	})
	scan(spaceItem, func(k, v []byte) {
		var e Entry
		if err := decodeEntry(&e, k, v); err != nil {
			t.Fatal(err)
		}
		f, ok := byEv[string(e.ev)]
		if !ok {
			t.Fatalf("item entry %q has no time entry", k)
		}
		same("item", &e, &f.e)
		if want := len(f.value) - len(appendBytes(nil, f.e.Table)) - len(appendBytes(nil, f.e.Key)); len(v) != want {
			t.Fatalf("item entry of %s: value of %d bytes, want %d (without table and key)", f.e.EventID, len(v), want)
		}
		i++
	})
	if n == 0 || i == 0 || n > len(byEv) || i > len(byEv) {
		t.Fatalf("%d time, %d tenant, %d item entries", len(byEv), n, i)
	}
}
