package query_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ddbrewind/rewind/indexer"
	"github.com/ddbrewind/rewind/indexer/indextest"
	"github.com/ddbrewind/rewind/query"
)

// A store opened with indexer.ScanCacheSize, far smaller than the blocks a
// scan reads, answers key sets, statistics and event listings with their
// images exactly as it does with the default cache.
func TestScanCacheSizeAnswersAlike(t *testing.T) {
	evs := indextest.NewGen(21).Events(30000)
	st := ingestEvents(t, evs)
	dir := st.Dir()
	counts := map[string]int{}
	for _, e := range evs {
		counts[e.Tenant]++
	}
	var busiest string
	for tn, n := range counts {
		if busiest == "" || n > counts[busiest] {
			busiest = tn
		}
	}
	qs := []query.Query{
		{},
		{Tenants: []string{busiest}},
		{From: evs[len(evs)/3].Time, To: evs[len(evs)/3].Time.Add(time.Hour), Tenants: []string{evs[0].Tenant, busiest}},
	}
	answers := func(st *indexer.Store) []byte {
		var out bytes.Buffer
		for _, q := range qs {
			if _, err := query.KeySet(t.Context(), st, q, &out, query.KeySetOptions{}); err != nil {
				t.Fatal(err)
			}
			s, err := query.ComputeStats(t.Context(), st, q, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if err := query.WriteStatsJSON(&out, s); err != nil {
				t.Fatal(err)
			}
			if _, err := query.Events(t.Context(), st, q, func(ev *query.Event) error {
				full, err := ev.Full()
				if err != nil {
					return err
				}
				out.Write(full.NewImage)
				out.Write(full.OldImage)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		return out.Bytes()
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	open := func(cache int64) *indexer.Store {
		st, err := indexer.Open(dir, indexer.Options{ReadOnly: true, CacheSize: cache, Log: quiet})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	def := open(0)
	want := answers(def)
	def.Close()
	small := open(indexer.ScanCacheSize)
	if got := answers(small); !bytes.Equal(got, want) {
		t.Fatalf("with ScanCacheSize the answers differ (%d bytes, want %d)", len(got), len(want))
	}
	ssts, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	var size int64
	for _, p := range ssts {
		if fi, err := os.Stat(p); err == nil {
			size += fi.Size()
		}
	}
	if size < 2*indexer.ScanCacheSize {
		t.Fatalf("the store's sstables hold %d bytes compressed: too few to overflow the cache", size)
	}
}
