package query

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer"
)

// Missing is what a query names that the store does not hold: a table or
// tenant it has no event of, a window outside its events. A query that
// names such a thing and matches nothing most likely has a typo in it
// ("Orders" for "orders"), not an answer; the CLI warns and exits 3.
type Missing struct {
	// Tables named that the store holds no event of, and the tables it
	// holds (set when Tables is not empty).
	Tables      []string
	StoreTables []string
	// Tenants named that the store holds no event of; StoreTenants is how
	// many tenants it holds and Close, for each missing tenant, up to
	// five of them with close names (set when Tenants is not empty).
	Tenants      []string
	StoreTenants int
	Close        map[string][]string
	// Window is set when the query's window holds none of the store's
	// events: it ends before First or starts after Last, the times of the
	// store's first and last decodable events.
	Window      bool
	First, Last time.Time
	// Empty is set when the store holds no decodable event at all.
	Empty bool
	// Item is set by FindMissingItem when the store holds no change of
	// the item.
	Item bool
}

// Any reports whether anything named is missing.
func (m *Missing) Any() bool {
	return len(m.Tables) > 0 || len(m.Tenants) > 0 || m.Window || m.Empty || m.Item
}

// FindMissing looks up the tables, tenants and window q names in the
// store. It costs a few seeks: the store's table list, one seek per named
// tenant and two for the time range. Only when a tenant is missing does it
// list the store's tenants, for close names.
func FindMissing(st *indexer.Store, q Query) (*Missing, error) {
	m := &Missing{}
	if err := m.findTables(st, q.Tables); err != nil {
		return nil, err
	}
	if err := m.findWindow(st, q.Window()); err != nil {
		return nil, err
	}
	if m.Empty {
		return m, nil
	}
	if err := m.findTenants(st, sortedUnique(q.Tenants)); err != nil {
		return nil, err
	}
	return m, nil
}

// findTenants sets Tenants to those of named (sorted, unique) the store
// holds no event of, and then StoreTenants and Close.
func (m *Missing) findTenants(st *indexer.Store, named []string) error {
	for _, t := range named {
		ok, err := st.HasTenant(t)
		if err != nil {
			return err
		}
		if !ok {
			m.Tenants = append(m.Tenants, t)
		}
	}
	if len(m.Tenants) == 0 {
		return nil
	}
	var held []string
	if err := st.Tenants(func(t string) error { held = append(held, t); return nil }); err != nil {
		return err
	}
	m.StoreTenants = len(held)
	m.Close = map[string][]string{}
	for _, t := range m.Tenants {
		m.Close[t] = closeNames(t, held, 5)
	}
	return nil
}

// FindMissingAnswered is FindMissing once the answer is known to hold a
// decodable change (matched: a key set with an item, stats with an event). Such a change already says what
// FindMissing would read the store for: the store is not empty, the window
// holds one of its events, and a table or tenant q names alone is held.
// It reads only the rest (the tables when q names several, one seek per
// tenant when it names several): a cold query then opens no sstable the
// answer did not need (the time ordering's first and last, for the time
// range). With matched false it is FindMissing.
func FindMissingAnswered(st *indexer.Store, q Query, matched bool) (*Missing, error) {
	if !matched {
		return FindMissing(st, q)
	}
	m := &Missing{}
	if tables := sortedUnique(q.Tables); len(tables) > 1 {
		if err := m.findTables(st, tables); err != nil {
			return nil, err
		}
	}
	tenants := sortedUnique(q.Tenants)
	if len(tenants) < 2 {
		return m, nil
	}
	return m, m.findTenants(st, tenants)
}

// FindMissingItem is FindMissing for one item's history: its table, the
// window, and whether the store holds any change of the item.
func FindMissingItem(st *indexer.Store, table string, key rewind.Key, from, to time.Time) (*Missing, error) {
	m := &Missing{}
	if err := m.findTables(st, []string{table}); err != nil {
		return nil, err
	}
	q := Query{From: from, To: to}
	if err := m.findWindow(st, q.Window()); err != nil {
		return nil, err
	}
	if m.Empty || len(m.Tables) > 0 {
		return m, nil
	}
	ok, err := st.HasItem(table, key)
	if err != nil {
		return nil, err
	}
	m.Item = !ok
	return m, nil
}

func (m *Missing) findTables(st *indexer.Store, named []string) error {
	if len(named) == 0 {
		return nil
	}
	held, err := st.Tables()
	if err != nil {
		return fmt.Errorf("store %s: tables: %w", st.Dir(), err)
	}
	for _, t := range sortedUnique(named) {
		if _, ok := slices.BinarySearch(held, t); !ok {
			m.Tables = append(m.Tables, t)
		}
	}
	if len(m.Tables) > 0 {
		m.StoreTables = held
	}
	return nil
}

func (m *Missing) findWindow(st *indexer.Store, w indexer.Window) error {
	first, last, ok, err := st.TimeRange()
	if err != nil {
		return err
	}
	if !ok {
		m.Empty = true
		return nil
	}
	m.First, m.Last = first, last
	m.Window = (w.HasFrom && w.From > last.UnixMicro()) || (w.HasTo && w.To <= first.UnixMicro())
	return nil
}

func sortedUnique(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

// closeNames returns up to n of held whose names are close to name: the
// same but for case, one inside the other, or a few edits apart, closest
// first.
func closeNames(name string, held []string, n int) []string {
	type cand struct {
		name  string
		score int
	}
	var cs []cand
	lower := strings.ToLower(name)
	for _, h := range held {
		hl := strings.ToLower(h)
		score := -1
		switch {
		case hl == lower:
			score = 0
		case lower != "" && hl != "" && (strings.Contains(hl, lower) || strings.Contains(lower, hl)):
			score = 1
		default:
			limit := max(1, min(len(lower), len(hl))/3)
			if d := editDistance(lower, hl, limit); d <= limit {
				score = 1 + d
			}
		}
		if score >= 0 {
			cs = append(cs, cand{h, score})
		}
	}
	slices.SortFunc(cs, func(a, b cand) int {
		if c := cmp.Compare(a.score, b.score); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	var out []string
	for _, c := range cs[:min(n, len(cs))] {
		out = append(out, c.name)
	}
	return out
}

// editDistance is the Levenshtein distance of a and b in bytes, or
// limit+1 as soon as it is sure to exceed limit.
func editDistance(a, b string, limit int) int {
	if d := len(a) - len(b); d > limit || -d > limit {
		return limit + 1
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		best := cur[0]
		for j := 1; j <= len(b); j++ {
			sub := prev[j-1]
			if a[i-1] != b[j-1] {
				sub++
			}
			cur[j] = min(sub, prev[j]+1, cur[j-1]+1)
			best = min(best, cur[j])
		}
		if best > limit {
			return limit + 1
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// FindCaptureGaps returns the capture failures the store knows of but does
// not hold whose window overlaps q's: failure records that `rewind index
// --failures` listed but could not ingest (see indexer.Store.CaptureGaps).
// An answer over such a window may lack changes the table had.
func FindCaptureGaps(st *indexer.Store, q Query) ([]indexer.CaptureGap, error) {
	return st.CaptureGaps(q.Window())
}

// FindCaptureGapsBefore is FindCaptureGaps for a state rebuilt as of at
// (patch --from-history): any gap up to at may hide a change the state
// depends on.
func FindCaptureGapsBefore(st *indexer.Store, at time.Time) ([]indexer.CaptureGap, error) {
	return st.CaptureGaps(indexer.Window{To: at.UnixMicro() + 1, HasTo: true})
}
