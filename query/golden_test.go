package query_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/query"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs (go test -run %s -update rewrites it):\n--- got\n%s\n--- want\n%s", path, t.Name(), got, want)
	}
}

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestGoldenHistory(t *testing.T) {
	f := newFixture(t, 7, 400)
	// The item with the most changes, to show inserts, modifies and
	// removes.
	counts := map[string]int{}
	var best *rewind.ChangeEvent
	for i := range f.evs {
		ev := &f.evs[i]
		if ev.DecodeError != "" {
			continue
		}
		id := ev.ItemID()
		counts[id]++
		if best == nil || counts[id] > counts[best.ItemID()] {
			best = ev
		}
	}
	ctx := context.Background()
	changes, err := query.History(ctx, f.st, best.Table, best.Keys, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != counts[best.ItemID()] {
		t.Fatalf("history has %d changes, the item had %d", len(changes), counts[best.ItemID()])
	}
	var tbl, js bytes.Buffer
	if err := query.WriteHistoryTable(&tbl, best.Table, best.Keys, changes); err != nil {
		t.Fatal(err)
	}
	if err := query.WriteHistoryJSON(&js, changes); err != nil {
		t.Fatal(err)
	}
	golden(t, "history.txt", tbl.Bytes())
	golden(t, "history.jsonl", js.Bytes())

	// A window keeps the changes inside it, in the same order.
	from, to := changes[1].Time, changes[len(changes)-1].Time
	part, err := query.History(ctx, f.st, best.Table, best.Keys, from, to)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, c := range changes {
		if !c.Time.Before(from) && c.Time.Before(to) {
			want = append(want, c.EventID)
		}
	}
	var got []string
	for _, c := range part {
		got = append(got, c.EventID)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") || len(got) == 0 {
		t.Fatalf("windowed history %v, want %v", got, want)
	}
}

func TestGoldenStats(t *testing.T) {
	f := newFixture(t, 7, 400)
	ctx := context.Background()
	q := query.Query{From: mustTime("2026-11-20T10:00:00Z"), To: mustTime("2026-11-20T10:30:00Z")}
	s, err := query.ComputeStats(ctx, f.st, q, 0)
	if err != nil {
		t.Fatal(err)
	}
	var want int64
	for _, ev := range f.evs {
		if ev.DecodeError == "" && !ev.Time.Before(q.From) && ev.Time.Before(q.To) {
			want++
		}
	}
	var sum int64
	for _, b := range s.Timeline {
		sum += b.Events
	}
	if s.Events != want || sum != want || len(s.Timeline) != 30 || s.Bucket != time.Minute {
		t.Fatalf("stats: %d events, timeline sums to %d in %d buckets of %s; want %d in 30 minutes", s.Events, sum, len(s.Timeline), s.Bucket, want)
	}
	var tbl, js bytes.Buffer
	if err := query.WriteStatsTable(&tbl, s, query.StatsTableOptions{Top: 5}); err != nil {
		t.Fatal(err)
	}
	if err := query.WriteStatsJSON(&js, s); err != nil {
		t.Fatal(err)
	}
	golden(t, "stats.txt", tbl.Bytes())
	golden(t, "stats.json", js.Bytes())

	// The whole history, by hour.
	all, err := query.ComputeStats(ctx, f.st, query.Query{TTL: query.TTLExclude}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tbl.Reset()
	if err := query.WriteStatsTable(&tbl, all, query.StatsTableOptions{Width: 30}); err != nil {
		t.Fatal(err)
	}
	golden(t, "stats-all.txt", tbl.Bytes())
}

func TestGoldenAthena(t *testing.T) {
	m1, _ := query.ParseMatch("new.deployVersion=v42")
	m2, _ := query.ParseMatch("old.status!=it's")
	for _, tc := range []struct {
		name string
		q    query.Query
	}{
		{"athena-window.sql", query.Query{From: mustTime("2026-11-20T10:00:00Z"), To: mustTime("2026-11-20T11:00:00Z"), Tenants: []string{"acme"}}},
		{"athena-filters.sql", query.Query{
			From: mustTime("2026-11-19T22:15:00Z"), To: mustTime("2026-11-21T03:00:00.5Z"),
			Tenants: []string{"acme", "globex"}, Tables: []string{"orders"},
			Actions: []rewind.Action{rewind.ActionModify, rewind.ActionRemove}, TTL: query.TTLExclude,
			KeyPrefixes: []query.KeyPrefix{{Attr: "pk", Prefix: "TENANT#acme"}},
			Matches:     []query.Match{m1, m2}, Changed: []string{"status", "amount"},
		}},
		{"athena-open.sql", query.Query{From: mustTime("2026-11-20T10:00:00Z"), TTL: query.TTLOnly}},
	} {
		sql, err := query.Athena(tc.q, query.AthenaOptions{
			Location: "s3://acme-rewind/capture/", Tables: []string{"users", "orders"},
			Since: mustTime("2026-11-01T00:00:00Z"),
		})
		if err != nil {
			t.Fatal(err)
		}
		golden(t, tc.name, []byte(sql))
	}
	if _, err := query.Athena(query.Query{}, query.AthenaOptions{Location: "/local/dir", Tables: []string{"t"}}); err == nil {
		t.Fatal("Athena accepted a local location")
	}
}
