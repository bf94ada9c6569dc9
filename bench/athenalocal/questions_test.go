package athenalocal_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer"
	"github.com/ddbrewind/rewind/query"
)

// athenaSetup opens the stack's store and keeps the Glue table over its
// capture.
func (st *stack) athenaSetup(t *testing.T) (*indexer.Store, query.AthenaOptions) {
	t.Helper()
	s, err := indexer.Open(st.store, indexer.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	o, err := query.AthenaDefaults(s, query.AthenaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := query.EnsureAthenaTable(context.Background(), st.glue, o, 0); err != nil {
		t.Fatal(err)
	}
	return s, o
}

// TestAthenaStatsProperty: on random events, random queries and buckets,
// the stats from Athena (the stand-in, through the SDK clients) render
// the local index's bytes, as JSON and as the table.
func TestAthenaStatsProperty(t *testing.T) {
	st := newStack(t, 43, 1500)
	st.ath.PageSize = 5
	ctx := context.Background()
	s, o := st.athenaSetup(t)
	rng := rand.New(rand.NewPCG(5, 6))
	buckets := []time.Duration{0, 0, time.Minute, 5 * time.Minute, time.Hour, 90 * time.Second, 1500 * time.Millisecond}
	nonEmpty, undecodable := 0, 0
	for i := range 40 {
		q := randomQuery(rng, st.evs)
		bucket := buckets[rng.IntN(len(buckets))]
		if bucket == 1500*time.Millisecond && (q.From.IsZero() || q.To.IsZero() || q.To.Sub(q.From) > time.Hour) {
			bucket = time.Minute // a small bucket over the whole capture is too many buckets
		}
		want, err := query.ComputeStats(ctx, s, q, bucket)
		if err != nil {
			t.Fatalf("query %d %+v bucket %s: local: %v", i, q, bucket, err)
		}
		got, res, err := query.AthenaStats(ctx, st.athena, q, bucket, o, query.AthenaRunOptions{Poll: 5 * time.Millisecond})
		if err != nil {
			t.Fatalf("query %d %+v bucket %s: athena: %v", i, q, bucket, err)
		}
		for _, render := range []func(*bytes.Buffer, *query.Stats) error{
			func(b *bytes.Buffer, s *query.Stats) error { return query.WriteStatsJSON(b, s) },
			func(b *bytes.Buffer, s *query.Stats) error {
				return query.WriteStatsTable(b, s, query.StatsTableOptions{Top: 3})
			},
		} {
			var wb, gb bytes.Buffer
			if err := render(&wb, want); err != nil {
				t.Fatal(err)
			}
			if err := render(&gb, got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(gb.Bytes(), wb.Bytes()) {
				t.Fatalf("query %d %+v bucket %s (%d result pages):\nathena\n%s\nlocal\n%s", i, q, bucket, res.Pages, gb.Bytes(), wb.Bytes())
			}
		}
		if want.Events > 0 {
			nonEmpty++
		}
		if want.Undecodable > 0 {
			undecodable++
		}
	}
	if nonEmpty < 15 || undecodable < 5 {
		t.Fatalf("%d of 40 queries counted anything, %d any undecodable event: too few to compare", nonEmpty, undecodable)
	}
}

// TestAthenaHistoryProperty: for random items and windows, the history
// from Athena renders the local index's bytes, as JSON and as the table.
func TestAthenaHistoryProperty(t *testing.T) {
	st := newStack(t, 44, 1200)
	st.ath.PageSize = 3
	ctx := context.Background()
	s, o := st.athenaSetup(t)
	rng := rand.New(rand.NewPCG(7, 8))
	var decoded []rewind.ChangeEvent
	for _, ev := range st.evs {
		if ev.DecodeError == "" {
			decoded = append(decoded, ev)
		}
	}
	long := 0
	for i := range 30 {
		ev := decoded[rng.IntN(len(decoded))]
		var from, to time.Time
		switch rng.IntN(3) {
		case 1:
			from = decoded[rng.IntN(len(decoded))].Time
		case 2:
			a, b := decoded[rng.IntN(len(decoded))].Time, decoded[rng.IntN(len(decoded))].Time
			if b.Before(a) {
				a, b = b, a
			}
			from, to = a, b.Add(time.Microsecond)
		}
		want, err := query.History(ctx, s, ev.Table, ev.Keys, from, to)
		if err != nil {
			t.Fatalf("history %d of %s %s: local: %v", i, ev.Table, ev.Keys, err)
		}
		got, _, err := query.AthenaHistory(ctx, st.athena, ev.Table, ev.Keys, from, to, o, query.AthenaRunOptions{Poll: 5 * time.Millisecond})
		if err != nil {
			t.Fatalf("history %d of %s %s: athena: %v", i, ev.Table, ev.Keys, err)
		}
		var wj, gj, wt, gt bytes.Buffer
		query.WriteHistoryJSON(&wj, want)
		query.WriteHistoryJSON(&gj, got)
		query.WriteHistoryTable(&wt, ev.Table, ev.Keys, want)
		query.WriteHistoryTable(&gt, ev.Table, ev.Keys, got)
		if !bytes.Equal(gj.Bytes(), wj.Bytes()) || !bytes.Equal(gt.Bytes(), wt.Bytes()) {
			t.Fatalf("history %d of %s %s [%v, %v):\nathena\n%s%s\nlocal\n%s%s", i, ev.Table, ev.Keys, from, to, gj.Bytes(), gt.Bytes(), wj.Bytes(), wt.Bytes())
		}
		if len(want) > 2 {
			long++
		}
	}
	if long < 5 {
		t.Fatalf("only %d of 30 histories had more than two changes: too few to compare", long)
	}
}

// TestAthenaStatsHistoryCLI: `rewind stats` and `rewind history` with
// --engine athena through the real SDK clients print the local index's
// stdout byte for byte, with the query's progress and cost on stderr.
func TestAthenaStatsHistoryCLI(t *testing.T) {
	st := newStack(t, 45, 1000)
	from := st.evs[len(st.evs)/5].Time.Format(time.RFC3339Nano)
	to := st.evs[len(st.evs)*3/4].Time.Format(time.RFC3339Nano)
	var keyLine string
	for _, ev := range st.evs[len(st.evs)/2:] {
		if ev.DecodeError == "" {
			keyLine = `{"table":"` + ev.Table + `","key":` + ev.Keys.String() + `}`
			break
		}
	}
	cases := [][]string{
		{"stats"},
		{"stats", "--format", "json"},
		{"stats", "--from", from, "--to", to, "--bucket", "5m"},
		{"stats", "--tenants", "acme,globex", "--actions", "MODIFY", "--format", "json", "--from", from},
		{"stats", "--match", "new.deployVersion=v42", "--ttl", "exclude", "--top", "0"},
		{"history", "--key", keyLine},
		{"history", "--key", keyLine, "--format", "json"},
		{"history", "--key", keyLine, "--from", from, "--to", to},
	}
	for _, c := range cases {
		args := append(append([]string{}, c...), "--store", st.store)
		code, want, errs := st.run(t, args...)
		if code != 0 || want == "" {
			t.Fatalf("%v local: exit %d, %d bytes\n%s", c, code, len(want), errs)
		}
		code, got, errs := st.run(t, append(args, "--engine", "athena", "--athena-poll", "5ms")...)
		if code != 0 {
			t.Fatalf("%v athena: exit %d\n%s", c, code, errs)
		}
		if got != want {
			t.Fatalf("%v: Athena's stdout differs from the local one\nathena:\n%s\nlocal:\n%s\nstderr:\n%s", c, got, want, errs)
		}
		if !strings.Contains(errs, "SUCCEEDED") || !strings.Contains(errs, "from Athena query") {
			t.Errorf("%v: stderr shows no progress or summary:\n%s", c, errs)
		}
	}
	// An item with no change: exit 3, nothing on stdout.
	code, out, errs := st.run(t, "history", "--table", "orders", "--key", `{"pk":{"S":"nobody"}}`, "--store", st.store, "--engine", "athena", "--athena-poll", "5ms")
	if code != 3 || !strings.Contains(errs, "no change") {
		t.Fatalf("history of no item: exit %d\n%s\n%s", code, out, errs)
	}
	// User input reaches Athena as execution parameters only.
	sqls, _ := st.ath.Queries()
	for _, q := range sqls {
		if strings.Contains(q, "acme") || strings.Contains(q, "deployVersion") || strings.Contains(q, "nobody") {
			t.Fatalf("a filter was spliced into the SQL:\n%s", q)
		}
	}
}
