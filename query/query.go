// Package query answers rewind's forensic questions from the indexer's
// store: which events match (Events), which items they touched, as a key
// set (KeySet), what happened to one item (History), and how changes spread
// over tenants and time (ComputeStats). Athena prints the same question as
// SQL for histories too large for one machine.
//
// A Query selects events by a half-open time window [From, To): an event
// at exactly To is left out, so consecutive windows never share an event.
// Each kind of filter narrows the result; several values of one filter
// widen it (tenant a OR tenant b), except Matches, which must all hold:
//
//	--from 2026-11-20T10:00:00Z --to 2026-11-20T11:00:00Z --tenants acme,globex
//	    --match new.deployVersion=v42 --changed status
//
// selects the changes to acme's or globex's items made between 10:00 and
// 11:00 UTC whose new image has deployVersion "v42" and whose status
// changed. Every query is a bounded range scan of the store: by time, or by
// tenant then time when tenants are given.
package query

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer"
)

// TTLFilter says what to do with deletions made by DynamoDB's TTL process.
type TTLFilter int

const (
	// TTLInclude keeps TTL expiries with the other events (the default).
	TTLInclude TTLFilter = iota
	// TTLExclude drops them: a bad deploy does not expire items.
	TTLExclude
	// TTLOnly keeps only them.
	TTLOnly
)

// ParseTTLFilter reads include, exclude or only.
func ParseTTLFilter(s string) (TTLFilter, error) {
	switch s {
	case "include", "":
		return TTLInclude, nil
	case "exclude":
		return TTLExclude, nil
	case "only":
		return TTLOnly, nil
	}
	return 0, fmt.Errorf("ttl filter %q: want include, exclude or only", s)
}

func (f TTLFilter) String() string {
	switch f {
	case TTLExclude:
		return "exclude"
	case TTLOnly:
		return "only"
	}
	return "include"
}

// Query selects change events. The zero Query selects every decodable
// event.
type Query struct {
	// From and To bound event times to [From, To). A zero time leaves that
	// side open.
	From, To time.Time
	// Tenants, Tables and Actions keep events with any of the values;
	// empty keeps all.
	Tenants []string
	Tables  []string
	Actions []rewind.Action
	// TTL says whether TTL expiries are kept. Default TTLInclude.
	TTL TTLFilter
	// KeyPrefixes keep events whose key attribute starts with a prefix;
	// all must hold.
	KeyPrefixes []KeyPrefix
	// Matches compare image attributes; all must hold.
	Matches []Match
	// Changed keeps events that changed any of these top-level attributes.
	Changed []string
}

// Validate reports the first bad field.
func (q *Query) Validate() error {
	if !q.From.IsZero() && !q.To.IsZero() && !q.To.After(q.From) {
		return fmt.Errorf("query: empty window: To %s is not after From %s", q.To.Format(time.RFC3339Nano), q.From.Format(time.RFC3339Nano))
	}
	for _, a := range q.Actions {
		if _, err := rewind.ParseAction(string(a)); err != nil {
			return fmt.Errorf("query: Actions: %w", err)
		}
	}
	for _, p := range q.KeyPrefixes {
		if p.Attr == "" {
			return fmt.Errorf("query: KeyPrefixes: empty attribute name")
		}
	}
	for _, m := range q.Matches {
		if m.Attr == "" || (m.Side != OldSide && m.Side != NewSide) {
			return fmt.Errorf("query: Matches: bad match %q", m.String())
		}
	}
	if q.TTL < TTLInclude || q.TTL > TTLOnly {
		return fmt.Errorf("query: TTL: unknown filter %d", q.TTL)
	}
	return nil
}

// Window returns the query's window in the store's terms.
func (q *Query) Window() indexer.Window {
	var w indexer.Window
	if !q.From.IsZero() {
		w.From, w.HasFrom = q.From.UnixMicro(), true
		if time.UnixMicro(w.From).Before(q.From) {
			w.From++ // sub-microsecond From: the first whole microsecond in the window
		}
	}
	if !q.To.IsZero() {
		w.To, w.HasTo = q.To.UnixMicro(), true
		if time.UnixMicro(w.To).Before(q.To) {
			w.To++
		}
	}
	return w
}

// KeyPrefix selects items whose key attribute Attr starts with Prefix:
// for a string the text, for a number its normalized decimal, for binary
// the raw bytes.
type KeyPrefix struct {
	Attr, Prefix string
}

// ParseKeyPrefix reads attr=prefix, such as pk=TENANT#acme.
func ParseKeyPrefix(s string) (KeyPrefix, error) {
	attr, prefix, ok := strings.Cut(s, "=")
	if !ok || attr == "" {
		return KeyPrefix{}, fmt.Errorf("key prefix %q: want attr=prefix, such as pk=TENANT#acme", s)
	}
	return KeyPrefix{Attr: attr, Prefix: prefix}, nil
}

func (p KeyPrefix) String() string { return p.Attr + "=" + p.Prefix }

// ImageSide says which of a change's two images a Match reads: the old
// one (before the change) or the new one (after). The images themselves
// are rewind.Image, DynamoDB JSON.
type ImageSide string

// The two sides, as --match writes them (old.attr=value, new.attr=value).
const (
	OldSide ImageSide = "old"
	NewSide ImageSide = "new"
)

// Match compares one top-level attribute of an image with a value. The
// attribute's value is compared as text: a string as is, a number by
// value (42 equals 42.0), binary as base64, a boolean as true or false,
// NULL as null, and sets, lists and maps as DynamoDB JSON. A missing
// attribute (or image) equals nothing.
type Match struct {
	Side  ImageSide
	Attr  string
	Value string
	// Not inverts the match (!=): it holds when the attribute is missing
	// or differs.
	Not bool
}

// ParseMatch reads new.attr=value, old.attr=value, or the same with !=.
func ParseMatch(s string) (Match, error) {
	im, rest, ok := strings.Cut(s, ".")
	if !ok || (im != "old" && im != "new") {
		return Match{}, fmt.Errorf("match %q: want new.attr=value or old.attr=value", s)
	}
	m := Match{Side: ImageSide(im)}
	if i := strings.Index(rest, "!="); i >= 0 && (strings.IndexByte(rest, '=') == i+1) {
		m.Attr, m.Value, m.Not = rest[:i], rest[i+2:], true
	} else if attr, v, ok := strings.Cut(rest, "="); ok {
		m.Attr, m.Value = attr, v
	} else {
		return Match{}, fmt.Errorf("match %q: want new.attr=value or old.attr=value", s)
	}
	if m.Attr == "" {
		return Match{}, fmt.Errorf("match %q: empty attribute name", s)
	}
	return m, nil
}

func (m Match) String() string {
	op := "="
	if m.Not {
		op = "!="
	}
	return string(m.Side) + "." + m.Attr + op + m.Value
}

// holds reports whether the match holds for an item image (nil when the
// image is absent).
func (m Match) holds(item rewind.Item) bool {
	av, ok := item[m.Attr]
	eq := ok && matchValue(av, m.Value)
	return eq != m.Not
}

func matchValue(av types.AttributeValue, want string) bool {
	switch v := av.(type) {
	case *types.AttributeValueMemberS:
		return v.Value == want
	case *types.AttributeValueMemberN:
		if v.Value == want {
			return true
		}
		a, err1 := rewind.NormalizeNumber(v.Value)
		b, err2 := rewind.NormalizeNumber(want)
		return err1 == nil && err2 == nil && a == b
	case *types.AttributeValueMemberB:
		return base64.StdEncoding.EncodeToString(v.Value) == want
	case *types.AttributeValueMemberBOOL:
		return strconv.FormatBool(v.Value) == want
	case *types.AttributeValueMemberNULL:
		return want == "null"
	}
	return string(rewind.AppendAttributeValueJSON(nil, av)) == want
}

// Event is one event that matched. Entry is valid only during the
// callback.
type Event struct {
	*indexer.Entry
	recs *indexer.Records
	full *rewind.ChangeEvent
}

// Full returns the whole change event, with its images.
func (e *Event) Full() (rewind.ChangeEvent, error) {
	if e.full == nil {
		ev, err := e.recs.Event(e.Entry)
		if err != nil {
			return ev, err
		}
		e.full = &ev
	}
	return *e.full, nil
}

// Counts are what a scan went through.
type Counts struct {
	// Scanned events in the window (and tenants), before the other
	// filters.
	Scanned int64
	// Matched events.
	Matched int64
	// Undecodable events in the window: they have no key, so no filter
	// can place them; they are never matched.
	Undecodable int64
}

// Events calls fn for each event that matches q, in store order: by time,
// then sequence number, then stream (events of one time and sequence
// number, which only different streams have, in an order of their own).
func Events(ctx context.Context, st *indexer.Store, q Query, fn func(*Event) error) (Counts, error) {
	if err := q.Validate(); err != nil {
		return Counts{}, err
	}
	return events(ctx, st, &q, scan{w: q.Window()}, fn)
}

// scan is the part of a query's window one pass reads.
type scan struct {
	w indexer.Window
	// known: whether the query's tenants are dense in w
	// (indexer.Store.DenseTenants) was asked, and dense is the answer:
	// the pass reads the time ordering or the tenants' orderings without
	// counting them again.
	known, dense bool
}

// events is Events over sc, a part of q's window, for a q already
// validated.
func events(ctx context.Context, st *indexer.Store, q *Query, sc scan, fn func(*Event) error) (Counts, error) {
	var c Counts
	f := newFilter(q)
	w := sc.w
	if w.Empty() {
		return c, nil
	}
	next, closeAll, err := open(st, q, sc)
	if err != nil {
		return c, err
	}
	defer closeAll()
	recs, err := st.Records(w)
	if err != nil {
		return c, err
	}
	defer recs.Close()
	ev := Event{recs: recs}
	for n := 0; ; n++ {
		if n&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return c, err
			}
		}
		e, err := next()
		if err != nil {
			return c, err
		}
		if e == nil {
			return c, nil
		}
		c.Scanned++
		if e.Undecodable {
			c.Undecodable++
			continue
		}
		ev.Entry, ev.full = e, nil
		ok, err := f.match(&ev)
		if err != nil {
			return c, err
		}
		if !ok {
			continue
		}
		c.Matched++
		if err := fn(&ev); err != nil {
			return c, err
		}
	}
}

// open returns a function yielding the entries of the scan q needs, in
// store order, nil at the end.
func open(st *indexer.Store, q *Query, sc scan) (func() (*indexer.Entry, error), func(), error) {
	w := sc.w
	tenants := normalTenants(q.Tenants)
	dense := sc.dense
	if len(tenants) > 0 && !sc.known {
		var err error
		if dense, _, err = st.DenseTenants(tenants, w); err != nil {
			return nil, nil, err
		}
	}
	if len(tenants) == 0 || dense {
		// One pass over the time ordering, skipping other tenants.
		var it *indexer.Iter
		var err error
		if dense {
			it, err = st.ScanTimeOf(tenants, w)
		} else {
			it, err = st.ScanTime(w)
		}
		if err != nil {
			return nil, nil, err
		}
		return iterNext(it), func() { it.Close() }, nil
	}
	var its []*indexer.Iter
	closeAll := func() {
		for _, it := range its {
			it.Close()
		}
	}
	for _, t := range tenants {
		it, err := st.ScanTenant(t, w)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		its = append(its, it)
	}
	if len(its) == 1 {
		return iterNext(its[0]), closeAll, nil
	}
	return mergeNext(its), closeAll, nil
}

// normalTenants returns the tenants sorted, each once.
func normalTenants(tenants []string) []string {
	return slices.Compact(slices.Sorted(slices.Values(tenants)))
}

func iterNext(it *indexer.Iter) func() (*indexer.Entry, error) {
	return func() (*indexer.Entry, error) {
		if it.Next() {
			return it.Entry(), nil
		}
		return nil, it.Err()
	}
}

// mergeNext merges tenant scans into one in store order. Tenants are few,
// so a linear pick of the smallest head is enough.
func mergeNext(its []*indexer.Iter) func() (*indexer.Entry, error) {
	heads := make([]*indexer.Iter, 0, len(its))
	started := false
	var last *indexer.Iter
	return func() (*indexer.Entry, error) {
		if !started {
			started = true
			for _, it := range its {
				if it.Next() {
					heads = append(heads, it)
				} else if err := it.Err(); err != nil {
					return nil, err
				}
			}
		} else if last != nil {
			if !last.Next() {
				if err := last.Err(); err != nil {
					return nil, err
				}
				heads = slices.DeleteFunc(heads, func(it *indexer.Iter) bool { return it == last })
			}
		}
		if len(heads) == 0 {
			return nil, nil
		}
		min := heads[0]
		for _, it := range heads[1:] {
			if it.Entry().Compare(min.Entry()) < 0 {
				min = it
			}
		}
		last = min
		return min.Entry(), nil
	}
}

// filter applies the filters a scan does not.
type filter struct {
	q       *Query
	tables  map[string]bool
	actions [4]bool
	anyAct  bool
}

func newFilter(q *Query) *filter {
	f := &filter{q: q}
	if len(q.Tables) > 0 {
		f.tables = map[string]bool{}
		for _, t := range q.Tables {
			f.tables[t] = true
		}
	}
	for _, a := range q.Actions {
		f.anyAct = true
		switch a {
		case rewind.ActionInsert:
			f.actions[1] = true
		case rewind.ActionModify:
			f.actions[2] = true
		case rewind.ActionRemove:
			f.actions[3] = true
		}
	}
	return f
}

func actionIndex(a rewind.Action) int {
	switch a {
	case rewind.ActionInsert:
		return 1
	case rewind.ActionModify:
		return 2
	case rewind.ActionRemove:
		return 3
	}
	return 0
}

func (f *filter) match(ev *Event) (bool, error) {
	e := ev.Entry
	q := f.q
	if f.tables != nil && !f.tables[string(e.Table)] {
		return false, nil
	}
	if f.anyAct && !f.actions[actionIndex(e.Action)] {
		return false, nil
	}
	switch q.TTL {
	case TTLExclude:
		if e.TTLExpiry {
			return false, nil
		}
	case TTLOnly:
		if !e.TTLExpiry {
			return false, nil
		}
	}
	if len(q.KeyPrefixes) > 0 {
		k, err := e.ItemKey()
		if err != nil {
			return false, fmt.Errorf("event %s: %w", e.EventID, err)
		}
		for _, p := range q.KeyPrefixes {
			a, ok := k.Get(p.Attr)
			if !ok || !strings.HasPrefix(a.Value, p.Prefix) {
				return false, nil
			}
		}
	}
	if len(q.Changed) > 0 {
		ok := false
		for _, name := range q.Changed {
			if e.Changed(name) {
				ok = true
				break
			}
		}
		if !ok {
			return false, nil
		}
	}
	if len(q.Matches) > 0 {
		full, err := ev.Full()
		if err != nil {
			return false, err
		}
		var items [2]rewind.Item
		var parsed [2]bool
		for _, m := range q.Matches {
			i, im := 0, full.OldImage
			if m.Side == NewSide {
				i, im = 1, full.NewImage
			}
			if !parsed[i] {
				parsed[i] = true
				it, err := im.Item()
				if err != nil {
					return false, fmt.Errorf("event %s: %s image: %w", e.EventID, m.Side, err)
				}
				items[i] = it
			}
			if !m.holds(items[i]) {
				return false, nil
			}
		}
	}
	return true, nil
}
