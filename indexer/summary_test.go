package indexer_test

import (
	"slices"
	"testing"
	"time"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer"
	"github.com/ddbrewind/rewind/indexer/indextest"
)

// TestStoreHolds checks the answers about what a store holds against the
// events put in it: its tenants (a NUL in a name included), whether it has
// a tenant or an item, and the range of its decodable events' times.
func TestStoreHolds(t *testing.T) {
	g := indextest.NewGen(31)
	g.UndecodableFraction = 0.05
	evs := g.Events(400)
	// An undecodable event before and after the rest: not in the range.
	early, late := evs[0], evs[len(evs)-1]
	early.EventID, early.Time, early.Keys, early.Action, early.DecodeError = "early-bad", evs[0].Time.Add(-time.Hour), nil, "", "broken"
	late.EventID, late.Time, late.Keys, late.Action, late.DecodeError = "late-bad", late.Time.Add(time.Hour), nil, "", "broken"
	odd := evs[1]
	odd.EventID, odd.Tenant = "odd-tenant", "nul\x00inside"
	evs = append([]rewind.ChangeEvent{early}, evs...)
	evs = append(evs, odd, late)
	slices.SortStableFunc(evs, func(a, b rewind.ChangeEvent) int { return a.Time.Compare(b.Time) })

	dir := t.TempDir()
	writeEvents(t, dir, evs, 60)
	s := openStore(t, t.TempDir())
	if _, err := ingestDir(t, s, dir, indexer.Config{}); err != nil {
		t.Fatal(err)
	}

	wantTenants := map[string]bool{}
	var first, last time.Time
	for _, ev := range evs {
		wantTenants[ev.Tenant] = true
		if ev.DecodeError != "" {
			continue
		}
		if first.IsZero() || ev.Time.Before(first) {
			first = ev.Time
		}
		if ev.Time.After(last) {
			last = ev.Time
		}
	}
	var got []string
	if err := s.Tenants(func(tn string) error { got = append(got, tn); return nil }); err != nil {
		t.Fatal(err)
	}
	want := make([]string, 0, len(wantTenants))
	for tn := range wantTenants {
		want = append(want, tn)
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("Tenants = %q, want %q", got, want)
	}
	for _, tc := range []struct {
		tenant string
		want   bool
	}{{"nul\x00inside", true}, {"nul", false}, {evs[5].Tenant, true}, {"never-seen", false}} {
		if ok, err := s.HasTenant(tc.tenant); err != nil || ok != tc.want {
			t.Errorf("HasTenant(%q) = %v, %v; want %v", tc.tenant, ok, err, tc.want)
		}
	}
	var item rewind.ChangeEvent
	for _, ev := range evs {
		if ev.DecodeError == "" {
			item = ev
			break
		}
	}
	if ok, err := s.HasItem(item.Table, item.Keys); err != nil || !ok {
		t.Errorf("HasItem(%s %s) = %v, %v; want true", item.Table, item.Keys, ok, err)
	}
	if ok, err := s.HasItem(item.Table+"x", item.Keys); err != nil || ok {
		t.Errorf("HasItem of another table = %v, %v; want false", ok, err)
	}
	other := rewind.Key{{Name: "pk", Type: 'S', Value: "no-such-item"}}
	if ok, err := s.HasItem(item.Table, other); err != nil || ok {
		t.Errorf("HasItem(%s) = %v, %v; want false", other, ok, err)
	}
	f, l, ok, err := s.TimeRange()
	if err != nil || !ok || !f.Equal(first) || !l.Equal(last) {
		t.Errorf("TimeRange = %s, %s, %v, %v; want %s, %s (the decodable events)", f, l, ok, err, first, last)
	}

	// An empty store holds nothing.
	empty := openStore(t, t.TempDir())
	if _, _, ok, err := empty.TimeRange(); ok || err != nil {
		t.Errorf("TimeRange of an empty store: ok %v, %v", ok, err)
	}
	n := 0
	empty.Tenants(func(string) error { n++; return nil })
	if n != 0 {
		t.Errorf("an empty store lists %d tenants", n)
	}
}
