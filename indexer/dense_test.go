package indexer_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ddbrewind/rewind/indexer"
	"github.com/ddbrewind/rewind/indexer/indextest"
)

// ScanTimeOf must yield exactly the events the tenants' own scans yield,
// in time order, and DenseTenants must pick it only for tenants that hold
// a large share of the window.
func TestScanTimeOfMatchesTenantScans(t *testing.T) {
	g := indextest.NewGen(41)
	g.Tenants = []string{""}
	for i := range 20 {
		g.Tenants = append(g.Tenants, fmt.Sprintf("small%d", i))
	}
	for range 12 {
		g.Tenants = append(g.Tenants, "big")
	}
	evs := g.Events(20000)
	dir := t.TempDir()
	writeEvents(t, dir, evs, 2000)
	s := openStore(t, t.TempDir())
	if _, err := ingestDir(t, s, dir, indexer.Config{}); err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, e := range evs {
		count[e.Tenant]++
	}
	if count["big"] < len(evs)/4 {
		t.Fatalf("big has %d of %d events: the test needs a dense tenant", count["big"], len(evs))
	}

	read := func(it *indexer.Iter, err error) []string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer it.Close()
		var out []string
		last := int64(-1 << 63)
		for it.Next() {
			e := it.Entry()
			if e.Micros < last {
				t.Fatalf("event %s at %d after one at %d: not in time order", e.EventID, e.Micros, last)
			}
			last = e.Micros
			out = append(out, fmt.Sprintf("%s %d %s %s %x %s", e.EventID, e.Micros, e.Tenant, e.Table, e.Key, e.Action))
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	mid := evs[len(evs)/2].Time
	windows := map[string]indexer.Window{
		"all":      {},
		"20 min":   win(mid, mid.Add(20*time.Minute)),
		"no event": win(mid.Add(24*time.Hour), mid.Add(25*time.Hour)),
		"1 min":    win(mid, mid.Add(time.Minute)), // big has fewer than 256 events: sparse
	}
	for name, w := range windows {
		for _, ts := range [][]string{{"big"}, {"small3"}, {"small3", "small7"}, {"big", "small3"}, {"nobody"}} {
			var want []string
			for _, tn := range ts {
				want = append(want, read(s.ScanTenant(tn, w))...)
			}
			got := read(s.ScanTimeOf(ts, w))
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("%s, tenants %v: ScanTimeOf gave %d events, the tenant scans %d", name, ts, len(got), len(want))
			}
			dense, _, err := s.DenseTenants(ts, w)
			if err != nil {
				t.Fatal(err)
			}
			wantDense := name != "no event" && name != "1 min" && slices.Contains(ts, "big")
			if dense != wantDense {
				t.Errorf("%s, tenants %v (%d events): DenseTenants = %v, want %v", name, ts, len(want), dense, wantDense)
			}
		}
	}
	if dense, _, err := s.DenseTenants([]string{""}, indexer.Window{}); err != nil || dense {
		t.Errorf("DenseTenants(\"\") = %v, %v: events without a tenant are in no tenant scan", dense, err)
	}
	if _, err := s.ScanTimeOf([]string{""}, indexer.Window{}); err == nil || !strings.Contains(err.Error(), "needs a tenant") {
		t.Errorf("ScanTimeOf(\"\") = %v, want an error", err)
	}
}
