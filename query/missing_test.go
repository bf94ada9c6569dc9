package query_test

import (
	"slices"
	"testing"
	"time"

	"github.com/ddbrewind/rewind/query"
)

// TestFindMissingWindowEdges: the window is half-open, so one ending at the
// store's first event misses it and one starting at its last holds it.
func TestFindMissingWindowEdges(t *testing.T) {
	f := newFixture(t, 9, 200)
	var first, last time.Time
	for _, ev := range f.evs {
		if ev.DecodeError != "" {
			continue
		}
		if first.IsZero() {
			first = ev.Time
		}
		last = ev.Time
	}
	for _, tc := range []struct {
		name     string
		from, to time.Time
		outside  bool
	}{
		{"ends at the first event", time.Time{}, first, true},
		{"ends just after the first event", time.Time{}, first.Add(time.Microsecond), false},
		{"starts at the last event", last, time.Time{}, false},
		{"starts just after the last event", last.Add(time.Microsecond), time.Time{}, true},
		{"open", time.Time{}, time.Time{}, false},
	} {
		m, err := query.FindMissing(f.st, query.Query{From: tc.from, To: tc.to})
		if err != nil {
			t.Fatal(err)
		}
		if m.Window != tc.outside || !m.First.Equal(first) || !m.Last.Equal(last) {
			t.Errorf("%s: Window %v (store %s..%s), want %v (store %s..%s)", tc.name, m.Window, m.First, m.Last, tc.outside, first, last)
		}
	}
	// Tenants: close names by case, containment and a few edits.
	m, err := query.FindMissing(f.st, query.Query{Tenants: []string{"acme", "Globex", "inittech", "nobody-at-all"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.Tenants, []string{"Globex", "inittech", "nobody-at-all"}) {
		t.Fatalf("missing tenants %q", m.Tenants)
	}
	for tenant, want := range map[string][]string{"Globex": {"globex"}, "inittech": {"initech"}, "nobody-at-all": nil} {
		if got := m.Close[tenant]; !slices.Equal(got, want) {
			t.Errorf("close names of %q: %q, want %q", tenant, got, want)
		}
	}
}
