package query_test

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer"
	"github.com/ddbrewind/rewind/indexer/indextest"
	"github.com/ddbrewind/rewind/query"
)

// benchStore holds, in one hour, `items` items of tenant "big" changed
// about twice each, and other tenants' traffic around them.
func benchStore(b *testing.B, items int) *indexer.Store {
	b.Helper()
	start := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	var evs []rewind.ChangeEvent
	n := 2 * items
	for i := range n {
		tenant := "big"
		if i%3 == 0 {
			tenant = fmt.Sprintf("other%d", i%50)
		}
		k := rewind.Key{{Name: "pk", Type: 'S', Value: "TENANT#" + tenant}, {Name: "sk", Type: 'S', Value: fmt.Sprintf("ITEM#%07d", (i*7919)%items)}}
		img := k.Item()
		img["status"] = &types.AttributeValueMemberS{Value: "paid"}
		evs = append(evs, rewind.ChangeEvent{
			EventID: fmt.Sprintf("%032x", i), Table: "orders", Tenant: tenant, Action: rewind.ActionModify,
			Time: start.Add(time.Duration(i) * time.Hour / time.Duration(n)), SequenceNumber: fmt.Sprint(1000000 + i),
			Keys: k, NewImage: rewind.ItemJSON(img), OldImage: rewind.ItemJSON(img), ChangedAttributes: []string{"status"},
		})
	}
	dir := b.TempDir()
	if err := indextest.WriteDir(dir, indextest.Objects("capture", evs, 5000)); err != nil {
		b.Fatal(err)
	}
	st, err := indexer.Open(b.TempDir(), indexer.Options{Log: quiet})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	src, _ := indexer.NewDirSource(dir)
	if _, err := st.Ingest(context.Background(), src, indexer.Config{Log: quiet}); err != nil {
		b.Fatal(err)
	}
	return st
}

// BenchmarkKeySet is the key set of one tenant in one hour, warm.
func BenchmarkKeySet(b *testing.B) {
	for _, items := range []int{50, 10_000} {
		b.Run(fmt.Sprintf("items=%d", items), func(b *testing.B) {
			st := benchStore(b, items)
			q := query.Query{From: time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC), To: time.Date(2026, 11, 20, 11, 0, 0, 0, time.UTC), Tenants: []string{"big"}}
			var got int64
			for b.Loop() {
				res, err := query.KeySet(context.Background(), st, q, io.Discard, query.KeySetOptions{})
				if err != nil {
					b.Fatal(err)
				}
				got = res.Items
			}
			if got < int64(items)*9/10 {
				b.Fatalf("%d items, want about %d", got, items)
			}
			b.ReportMetric(float64(got), "items")
		})
	}
}
