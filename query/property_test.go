package query_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer"
	"github.com/ddbrewind/rewind/indexer/indextest"
	"github.com/ddbrewind/rewind/internal/localaws"
	"github.com/ddbrewind/rewind/query"
	"github.com/ddbrewind/rewind/query/auditsource"
	"github.com/ddbrewind/rewind/streamhandler"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fixture is a store holding evs, ingested from Parquet objects that
// overlap (some events are in two objects).
type fixture struct {
	st  *indexer.Store
	evs []rewind.ChangeEvent // unique, in stream order
}

func newFixture(t *testing.T, seed uint64, n int) *fixture {
	t.Helper()
	g := indextest.NewGen(seed)
	evs := g.Events(n)
	dir := t.TempDir()
	objs := indextest.Objects("capture", evs, 83)
	// A retried batch: the same records again under other keys.
	rng := rand.New(rand.NewPCG(seed, 7))
	var again []rewind.ChangeEvent
	for range 5 {
		i := rng.IntN(len(evs) - 40)
		again = append(again, evs[i:i+40]...)
	}
	for k, v := range indextest.Objects("capture-retry", again, 1000) {
		objs[k] = v
	}
	if err := indextest.WriteDir(dir, objs); err != nil {
		t.Fatal(err)
	}
	st, err := indexer.Open(t.TempDir(), indexer.Options{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	src, err := indexer.NewDirSource(dir)
	if err != nil {
		t.Fatal(err)
	}
	res, err := st.Ingest(context.Background(), src, indexer.Config{BatchObjects: 7, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != int64(len(evs)) || res.Duplicates != int64(len(again)) {
		t.Fatalf("ingest: %d events, %d duplicates; want %d, %d", res.Events, res.Duplicates, len(evs), len(again))
	}
	return &fixture{st: st, evs: evs}
}

// want is the brute-force answer: every event checked against the query
// by code that shares nothing with the store.
func (f *fixture) want(q query.Query) (keySet []byte, ids []string) {
	var buf bytes.Buffer
	kw := rewind.NewKeySetWriter(&buf)
	var matched []rewind.ChangeEvent
	for _, ev := range f.evs {
		if !bruteMatch(&ev, &q) {
			continue
		}
		matched = append(matched, ev)
		kw.Add(rewind.KeySetEntry{Table: ev.Table, Key: ev.Keys, Tenant: ev.Tenant, First: ev.Time, Last: ev.Time, Count: 1, Actions: []rewind.Action{ev.Action}})
	}
	if err := kw.Close(); err != nil {
		panic(err)
	}
	slices.SortFunc(matched, func(a, b rewind.ChangeEvent) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		if c := rewind.CompareSequenceNumbers(a.SequenceNumber, b.SequenceNumber); c != 0 {
			return c
		}
		return strings.Compare(a.EventID, b.EventID)
	})
	for _, ev := range matched {
		ids = append(ids, ev.EventID)
	}
	return buf.Bytes(), ids
}

func bruteMatch(ev *rewind.ChangeEvent, q *query.Query) bool {
	if ev.DecodeError != "" {
		return false
	}
	if !q.From.IsZero() && ev.Time.Before(q.From) {
		return false
	}
	if !q.To.IsZero() && !ev.Time.Before(q.To) {
		return false
	}
	if len(q.Tenants) > 0 && !slices.Contains(q.Tenants, ev.Tenant) {
		return false
	}
	if len(q.Tables) > 0 && !slices.Contains(q.Tables, ev.Table) {
		return false
	}
	if len(q.Actions) > 0 && !slices.Contains(q.Actions, ev.Action) {
		return false
	}
	if q.TTL == query.TTLExclude && ev.TTLExpiry || q.TTL == query.TTLOnly && !ev.TTLExpiry {
		return false
	}
	for _, p := range q.KeyPrefixes {
		a, ok := ev.Keys.Get(p.Attr)
		if !ok || !strings.HasPrefix(a.Value, p.Prefix) {
			return false
		}
	}
	if len(q.Changed) > 0 && !slices.ContainsFunc(q.Changed, func(s string) bool { return slices.Contains(ev.ChangedAttributes, s) }) {
		return false
	}
	for _, m := range q.Matches {
		im := ev.OldImage
		if m.Side == query.NewSide {
			im = ev.NewImage
		}
		item, _ := im.Item()
		got, ok := "", false
		if av, present := item[m.Attr]; present {
			ok = true
			switch v := av.(type) {
			case *types.AttributeValueMemberS:
				got = v.Value
			case *types.AttributeValueMemberN:
				got, _ = rewind.NormalizeNumber(v.Value)
			case *types.AttributeValueMemberBOOL:
				got = fmt.Sprint(v.Value)
			case *types.AttributeValueMemberB:
				got = indextest.B64(string(v.Value))
			case *types.AttributeValueMemberNULL:
				got = "null"
			default:
				got = string(rewind.AppendAttributeValueJSON(nil, av))
			}
		}
		want := m.Value
		if n, err := rewind.NormalizeNumber(want); err == nil {
			if _, isN := item[m.Attr].(*types.AttributeValueMemberN); isN {
				want = n
			}
		}
		if (ok && got == want) == m.Not {
			return false
		}
	}
	return true
}

// randomQuery draws a query whose bounds often fall exactly on event
// times, where off-by-one mistakes show.
func (f *fixture) randomQuery(rng *rand.Rand) query.Query {
	var q query.Query
	pick := func() time.Time { return f.evs[rng.IntN(len(f.evs))].Time }
	switch rng.IntN(4) {
	case 0: // unbounded
	case 1:
		a, b := pick(), pick()
		if b.Before(a) {
			a, b = b, a
		}
		q.From, q.To = a, b.Add(time.Duration(rng.IntN(2)))
		if !q.To.After(q.From) {
			q.To = q.From.Add(time.Microsecond)
		}
	case 2:
		q.From = pick()
	case 3:
		q.To = pick()
	}
	tenants := []string{"acme", "globex", "initech", "umbrella", "hooli", "", "ünïcødé", "a#b", "acme2", "nobody"}
	for range rng.IntN(3) {
		q.Tenants = append(q.Tenants, tenants[rng.IntN(len(tenants))])
	}
	if rng.IntN(3) == 0 {
		q.Tables = []string{[]string{"orders", "users", "ledger"}[rng.IntN(3)]}
	}
	if rng.IntN(3) == 0 {
		q.Actions = []rewind.Action{[]rewind.Action{rewind.ActionInsert, rewind.ActionModify, rewind.ActionRemove}[rng.IntN(3)]}
		if rng.IntN(2) == 0 {
			q.Actions = append(q.Actions, rewind.ActionRemove)
		}
	}
	q.TTL = query.TTLFilter(rng.IntN(3))
	if rng.IntN(5) == 0 {
		q.KeyPrefixes = []query.KeyPrefix{{Attr: "pk", Prefix: []string{"TENANT#a", "TENANT#", "TENANT#acme#"}[rng.IntN(3)]}}
	}
	if rng.IntN(3) == 0 {
		q.Changed = []string{[]string{"status", "deployVersion", "amount", "paid"}[rng.IntN(4)]}
	}
	matches := []string{"new.blob=AAA=", "new.deployVersion=v42", "old.deployVersion=v41", "new.status!=paid", "old.status=paid", "new.amount=12.5", "new.paid=true", "old.paid!=false", "new.nope=x"}
	for range rng.IntN(3) {
		m, err := query.ParseMatch(matches[rng.IntN(len(matches))])
		if err != nil {
			panic(err)
		}
		q.Matches = append(q.Matches, m)
	}
	return q
}

func TestQueryMatchesBruteForce(t *testing.T) {
	f := newFixture(t, 42, 1500)
	rng := rand.New(rand.NewPCG(1, 2))
	ctx := context.Background()
	nonEmpty := 0
	for i := range 200 {
		q := f.randomQuery(rng)
		wantKS, wantIDs := f.want(q)
		var got bytes.Buffer
		opts := query.KeySetOptions{}
		if i%5 == 0 {
			opts.MaxItems = 1 + rng.IntN(20) // the spilling path
		}
		res, err := query.KeySet(ctx, f.st, q, &got, opts)
		if err != nil {
			t.Fatalf("query %d %+v: %v", i, q, err)
		}
		if !bytes.Equal(got.Bytes(), wantKS) {
			t.Fatalf("query %d %+v:\nkey set\n%s\nwant\n%s", i, q, got.Bytes(), wantKS)
		}
		if res.Items != int64(bytes.Count(wantKS, []byte("\n"))) || res.Matched != int64(len(wantIDs)) {
			t.Fatalf("query %d: result %+v, want %d items from %d events", i, res, bytes.Count(wantKS, []byte("\n")), len(wantIDs))
		}
		var gotIDs []string
		if _, err := query.Events(ctx, f.st, q, func(ev *query.Event) error {
			gotIDs = append(gotIDs, string(ev.EventID))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(gotIDs, wantIDs) {
			t.Fatalf("query %d %+v: events\n%v\nwant\n%v", i, q, gotIDs, wantIDs)
		}
		if len(wantIDs) > 0 {
			nonEmpty++
		}
	}
	// The queries must not be trivially empty.
	if nonEmpty < 60 {
		t.Fatalf("only %d of 200 random queries matched anything", nonEmpty)
	}
}

// TestAuditSourceMatchesIndex: the same random questions, asked of the
// audit table the stream handler's writer filled (auditsource.Load, on
// DynamoDB Local) and of the index of the same events, give the same key
// sets and the same events, in the same order.
func TestAuditSourceMatchesIndex(t *testing.T) {
	ddb := localaws.DynamoDBForTest(t)
	f := newFixture(t, 43, 1500)
	ctx := t.Context()
	const table = "rewind-audit"
	if err := streamhandler.CreateAuditTable(ctx, ddb.DynamoDB, table); err != nil {
		t.Fatal(err)
	}
	if _, err := streamhandler.WriteAudit(ctx, streamhandler.Config{AuditTable: table, AuditShards: 3}, ddb.DynamoDB, f.evs); err != nil {
		t.Fatal(err)
	}
	first, last := f.evs[0].Time, f.evs[len(f.evs)-1].Time
	rng := rand.New(rand.NewPCG(3, 4))
	nonEmpty := 0
	for i := range 40 {
		q := f.randomQuery(rng)
		// The audit table is read by window: close an open side just
		// beyond the events.
		if q.From.IsZero() {
			q.From = first.Add(-time.Duration(rng.IntN(3)) * time.Hour)
		}
		if q.To.IsZero() {
			q.To = last.Add(time.Microsecond)
		}
		var want bytes.Buffer
		if _, err := query.KeySet(ctx, f.st, q, &want, query.KeySetOptions{}); err != nil {
			t.Fatal(err)
		}
		l, err := auditsource.Load(ctx, ddb.DynamoDB, auditsource.Config{Table: table, Shards: 3, PageLimit: int32(rng.IntN(3) * 50), Log: quiet}, q)
		if err != nil {
			t.Fatalf("query %d %+v: %v", i, q, err)
		}
		var got bytes.Buffer
		if _, err := query.KeySet(ctx, l.Store, q, &got, query.KeySetOptions{}); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("query %d %+v:\naudit table key set\n%s\nindex key set\n%s", i, q, got.Bytes(), want.Bytes())
		}
		var gotEv, wantEv []byte
		for _, side := range []struct {
			st  *indexer.Store
			out *[]byte
		}{{f.st, &wantEv}, {l.Store, &gotEv}} {
			if _, err := query.Events(ctx, side.st, q, func(ev *query.Event) error {
				full, err := ev.Full()
				if err != nil {
					return err
				}
				*side.out, err = query.AppendEventJSON(*side.out, &full)
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(gotEv, wantEv) {
			t.Fatalf("query %d %+v: events differ\naudit table\n%.2000s\nindex\n%.2000s", i, q, gotEv, wantEv)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if want.Len() > 0 {
			nonEmpty++
		}
	}
	if nonEmpty < 10 {
		t.Fatalf("only %d of 40 random queries matched anything", nonEmpty)
	}
}
