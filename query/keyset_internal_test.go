package query

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer"
	"github.com/ddbrewind/rewind/indexer/indextest"
)

// The fast paths must write what rewind's key-set writer writes.
func TestAppendTimeAndStringMatchTheSlowPath(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var hours hourCache
	for i := range 200000 {
		var µs int64
		switch i % 4 {
		case 0:
			µs = rng.Int64N(1e17) - 5e16 // years 386 to 3554
		case 1:
			µs = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC).UnixMicro() + rng.Int64N(1e11)
		case 2:
			µs = rng.Int64N(1e12) * 1e6 // whole seconds
		default:
			µs = -rng.Int64N(1e12)
		}
		want := time.UnixMicro(µs).UTC().AppendFormat(nil, time.RFC3339Nano)
		if got := appendTime(nil, µs); string(got) != string(want) {
			t.Fatalf("appendTime(%d) = %s, want %s", µs, got, want)
		}
		// The hour cache, on a fresh hour and again within it.
		for _, d := range []int64{0, rng.Int64N(3600e6) - 1800e6, 1} {
			µs += d
			want := time.UnixMicro(µs).UTC().AppendFormat(nil, time.RFC3339Nano)
			if got := hours.appendTime(nil, µs); string(got) != string(want) {
				t.Fatalf("hourCache.appendTime(%d) = %s, want %s", µs, got, want)
			}
		}
	}
	for _, s := range []string{"", "plain", `q"uote`, `back\slash`, "tab\t", "del\x7f", "ünï", "\xff\xfe", "<&>", "\u2028"} {
		want, _ := jsontext.AppendQuote(nil, s)
		if got := appendJSONString(nil, s); string(got) != string(want) {
			t.Errorf("appendJSONString(%q) = %s, want %s", s, got, want)
		}
	}
}

// The aggregator keeps items and ids in fixed-size chunks: a key set of
// several item chunks, with ids that fill arena chunks unevenly and one id
// longer than a chunk, must come out as rewind's key-set writer writes the
// same events.
func TestAggregatorChunksMatchTheKeySetWriter(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	base := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC).UnixMicro()
	keys := make([]rewind.Key, 3*itemChunk+17)
	for i := range keys {
		n := 1 + rng.IntN(600)
		if i == 5 {
			n = arenaChunk + 1000
		}
		k, err := rewind.KeyFromItem(rewind.Item{"pk": &types.AttributeValueMemberS{Value: fmt.Sprintf("%06d%s", i, strings.Repeat("x", n))}})
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = k
	}
	defer func(n int) { writeLines = n }(writeLines)
	writeLines = 100
	for _, o := range []KeySetOptions{{MaxItems: 1 << 20}, {MaxItems: 700}, {MaxItems: 1 << 20, Workers: 3}} {
		maxItems := o.MaxItems
		var got, want bytes.Buffer
		a := newAggregator(o, &got)
		kw := rewind.NewKeySetWriter(&want)
		actions := []rewind.Action{rewind.ActionInsert, rewind.ActionModify, rewind.ActionRemove}
		for range 2 * len(keys) {
			i := rng.IntN(len(keys))
			table := []string{"orders", "users"}[i%2]
			tenant := fmt.Sprintf("t%d", i%7)
			µs := base + rng.Int64N(3600e6)
			act := actions[rng.IntN(3)]
			e := indexer.Entry{Micros: µs, Table: []byte(table), Tenant: []byte(tenant), Key: keys[i].Encode(), Action: act}
			if err := a.add(&e); err != nil {
				t.Fatal(err)
			}
			tm := time.UnixMicro(µs).UTC()
			if err := kw.Add(rewind.KeySetEntry{Table: table, Key: keys[i], Tenant: tenant, First: tm, Last: tm, Count: 1, Actions: []rewind.Action{act}}); err != nil {
				t.Fatal(err)
			}
		}
		if maxItems > len(keys) && (a.n <= 2*itemChunk || len(a.arena) < 3) {
			t.Fatalf("%d items in %d arena chunks: the test needs several of each", a.n, len(a.arena))
		}
		n, err := a.write()
		if err != nil {
			t.Fatal(err)
		}
		if err := kw.Close(); err != nil {
			t.Fatal(err)
		}
		if n != kw.Written() {
			t.Errorf("aggregator wrote %d items, the key-set writer %d", n, kw.Written())
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			g, w := strings.Split(got.String(), "\n"), strings.Split(want.String(), "\n")
			for i := range min(len(g), len(w)) {
				if g[i] != w[i] {
					t.Fatalf("%+v: line %d differs:\n got %.200s\nwant %.200s", o, i+1, g[i], w[i])
				}
			}
			t.Fatalf("%+v: %d lines, want %d", o, len(g), len(w))
		}
	}
}

// A key set scanned in parts at once (KeySetOptions.Workers) must be the
// one-pass key set, byte for byte, with the same counts: windows closed
// and open, with and without tenants (dense ones, so the time ordering is
// split, and sparse ones, which are not), with filters and with a
// MaxItems that makes the merge spill.
func TestKeySetInPartsMatchesOnePass(t *testing.T) {
	defer func(n int64) { partEvents = n }(partEvents)
	partEvents = 40
	st, g, evs := denseStore(t)
	rng := rand.New(rand.NewPCG(5, 6))
	first, last := evs[0].Time, evs[len(evs)-1].Time
	split := 0
	for i := range 120 {
		var q Query
		if rng.IntN(4) > 0 {
			q.From = first.Add(time.Duration(rng.Int64N(int64(last.Sub(first)))))
		}
		if rng.IntN(4) > 0 {
			q.To = q.From.Add(time.Duration(1 + rng.Int64N(int64(last.Sub(first)))))
			if q.From.IsZero() {
				q.To = first.Add(time.Duration(1 + rng.Int64N(int64(last.Sub(first)))))
			}
		}
		if rng.IntN(2) == 0 {
			// Parts then split on whole minutes, where many events are.
			q.From, q.To = q.From.Truncate(time.Minute), q.To.Truncate(time.Minute)
			if !q.To.IsZero() && !q.To.After(q.From) {
				q.To = q.From.Add(time.Hour)
			}
		}
		switch rng.IntN(4) {
		case 1:
			q.Tenants = []string{"big"}
		case 2:
			q.Tenants = []string{"big", g.Tenants[rng.IntN(len(g.Tenants))]}
		case 3:
			q.Tenants = []string{g.Tenants[rng.IntN(len(g.Tenants))]}
		}
		if rng.IntN(3) == 0 {
			q.Actions = []rewind.Action{rewind.ActionModify}
		}
		if rng.IntN(3) == 0 {
			q.Tables = []string{"orders", "ledger"}
		}
		maxItems := 1 << 20
		if i%5 == 0 {
			maxItems = 3000 // the merge spills, the parts do not
		}
		var one, parts bytes.Buffer
		r1, err1 := KeySet(t.Context(), st, q, &one, KeySetOptions{Workers: 1, MaxItems: maxItems})
		r4, err4 := KeySet(t.Context(), st, q, &parts, KeySetOptions{Workers: 4, MaxItems: maxItems})
		if err1 != nil || err4 != nil {
			t.Fatalf("query %d %+v: %v / %v", i, q, err1, err4)
		}
		if ws, err := keySetParts(st, &q, KeySetOptions{Workers: 4, MaxItems: maxItems}); err != nil {
			t.Fatal(err)
		} else if len(ws) > 1 {
			split++
		}
		if r1 != r4 || !bytes.Equal(one.Bytes(), parts.Bytes()) {
			t.Fatalf("query %d %+v: in parts %+v, %d bytes; in one pass %+v, %d bytes", i, q, r4, parts.Len(), r1, one.Len())
		}
	}
	if split < 30 {
		t.Fatalf("only %d of 120 queries were split: the test does not exercise the parts", split)
	}
}

// denseStore is a store of 4,000 events in which tenant "big" has about
// two fifths of them, and 3% are undecodable.
func denseStore(t *testing.T) (*indexer.Store, *indextest.Gen, []rewind.ChangeEvent) {
	t.Helper()
	g := indextest.NewGen(51)
	g.Tenants = append(g.Tenants, "big", "big", "big", "big", "big", "big")
	g.UndecodableFraction = 0.03
	evs := g.Events(4000)
	dir := t.TempDir()
	if err := indextest.WriteDir(dir, indextest.Objects("capture", evs, 400)); err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := indexer.Open(t.TempDir(), indexer.Options{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	src, _ := indexer.NewDirSource(dir)
	if _, err := st.Ingest(t.Context(), src, indexer.Config{Log: quiet}); err != nil {
		t.Fatal(err)
	}
	return st, g, evs
}

// Read through the time ordering (dense) or the tenants' orderings
// (sparse), a query must yield the same events in the same order, with
// the same counts, undecodable events included.
func TestDenseAndSparseScansAgree(t *testing.T) {
	st, g, evs := denseStore(t)
	rng := rand.New(rand.NewPCG(7, 8))
	first, last := evs[0].Time, evs[len(evs)-1].Time
	tenants := append(slices.Clone(g.Tenants), "nobody")
	for i := range 60 {
		q := Query{Tenants: []string{"big"}}
		if i%3 > 0 {
			q.Tenants = append(q.Tenants, tenants[rng.IntN(len(tenants))])
		}
		if i%3 == 2 {
			q.Tenants = []string{tenants[rng.IntN(len(tenants))], tenants[rng.IntN(len(tenants))]}
		}
		if rng.IntN(3) > 0 {
			q.From = first.Add(time.Duration(rng.Int64N(int64(last.Sub(first)))))
			q.To = q.From.Add(time.Duration(1 + rng.Int64N(int64(last.Sub(first)))))
		}
		if rng.IntN(3) == 0 {
			q.Actions = []rewind.Action{rewind.ActionRemove, rewind.ActionInsert}
		}
		if err := q.Validate(); err != nil {
			t.Fatal(err)
		}
		read := func(dense bool) ([]string, Counts) {
			var out []string
			c, err := events(t.Context(), st, &q, scan{w: q.Window(), known: true, dense: dense}, func(ev *Event) error {
				out = append(out, fmt.Sprintf("%s %d %s %x %s", ev.EventID, ev.Micros, ev.Tenant, ev.Key, ev.Action))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			return out, c
		}
		if slices.Contains(q.Tenants, "") {
			continue // a tenant "" is never read through the time ordering
		}
		d, dc := read(true)
		sp, sc := read(false)
		if dc != sc || !slices.Equal(d, sp) {
			t.Fatalf("query %d %+v: dense %d events %+v, sparse %d events %+v", i, q, len(d), dc, len(sp), sc)
		}
	}
}
