package query_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer"
	"github.com/ddbrewind/rewind/internal/localaws"
	"github.com/ddbrewind/rewind/internal/localaws/streampoller"
	"github.com/ddbrewind/rewind/internal/traffic"
	"github.com/ddbrewind/rewind/query"
	"github.com/ddbrewind/rewind/streamhandler"
)

// timedAPI notes when each write returned, so a change's stream time is
// known to lie in [Change.At, done].
type timedAPI struct {
	traffic.API
	done []time.Time
}

func (a *timedAPI) PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	out, err := a.API.PutItem(ctx, in, opts...)
	a.done = append(a.done, time.Now())
	return out, err
}

func (a *timedAPI) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	out, err := a.API.UpdateItem(ctx, in, opts...)
	a.done = append(a.done, time.Now())
	return out, err
}

func (a *timedAPI) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	out, err := a.API.DeleteItem(ctx, in, opts...)
	a.done = append(a.done, time.Now())
	return out, err
}

// TestCapturedKeySets runs the capture pipeline on the local stack
// (DynamoDB Local, its stream, the real handler, the in-process S3), indexes
// the bucket and checks that the key set of each window is the set of items
// written in it.
//
// DynamoDB Local stamps stream records with the time rounded down to the
// minute, so the windows are whole minutes. A change whose write straddled
// a minute boundary may fall in either minute; every other change has one
// right window.
func TestCapturedKeySets(t *testing.T) {
	ddb := localaws.DynamoDBForTest(t)
	s3env := localaws.S3ForTest(t)
	ctx := context.Background()
	out, err := ddb.DynamoDB.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String("orders"),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}, {AttributeName: aws.String("sk"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}, {AttributeName: aws.String("sk"), KeyType: types.KeyTypeRange}},
		StreamSpecification:  &types.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: types.StreamViewTypeNewAndOldImages},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := streamhandler.CreateAuditTable(ctx, ddb.DynamoDB, "audit"); err != nil {
		t.Fatal(err)
	}

	api := &timedAPI{API: ddb.DynamoDB}
	gen := traffic.New(api, "orders", []string{"acme", "globex", "initech", "umbrella"}, 3)
	gen.Attrs = rewind.Item{"deployVersion": &types.AttributeValueMemberS{Value: "v41"}}
	if err := gen.Run(ctx, 300); err != nil {
		t.Fatal(err)
	}
	// The bad deploy: v42 writes to acme's items.
	gen.Attrs = rewind.Item{"deployVersion": &types.AttributeValueMemberS{Value: "v42"}}
	gen.Tenants = []string{"acme"}
	if err := gen.Run(ctx, 60); err != nil {
		t.Fatal(err)
	}
	if len(api.done) != len(gen.Changes) {
		t.Fatalf("%d writes for %d changes: cannot time the changes", len(api.done), len(gen.Changes))
	}

	h, err := streamhandler.New(streamhandler.Config{
		AuditTable: "audit", Bucket: s3env.Bucket, Prefix: "capture",
		Tenant: rewind.TenantRule{Regex: regexp.MustCompile(traffic.TenantRegex)},
	}, ddb.DynamoDB, s3env.Client, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	p, err := streampoller.New(streampoller.Config{
		StreamARN: aws.ToString(out.TableDescription.LatestStreamArn), Streams: ddb.Streams, Invoker: h, BatchSize: 50, Logf: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	if stats, err := p.PollOnce(ctx); err != nil || stats.Delivered != len(gen.Changes) {
		t.Fatalf("poll: %+v, %v; want %d records", stats, err, len(gen.Changes))
	}

	st, err := indexer.Open(t.TempDir(), indexer.Options{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	src, err := indexer.ParseSource("s3://"+s3env.Bucket+"/capture", s3env.Client)
	if err != nil {
		t.Fatal(err)
	}
	src.(*indexer.S3Source).PageSize = 3 // follow continuation tokens
	res, err := st.Ingest(ctx, src, indexer.Config{Log: quiet})
	if err != nil || res.Events != int64(len(gen.Changes)) {
		t.Fatalf("ingest: %+v, %v; want %d events", res.Progress, err, len(gen.Changes))
	}

	keySet := func(q query.Query) map[string]rewind.KeySetEntry {
		t.Helper()
		var buf bytes.Buffer
		if _, err := query.KeySet(ctx, st, q, &buf, query.KeySetOptions{}); err != nil {
			t.Fatal(err)
		}
		got := map[string]rewind.KeySetEntry{}
		r := rewind.NewKeySetReader(&buf, "key set")
		for {
			e, err := r.Next()
			if err == io.EOF {
				return got
			}
			if err != nil {
				t.Fatal(err)
			}
			got[string(e.Key.Encode())] = e
		}
	}

	first := gen.Changes[0].At.Truncate(time.Minute)
	last := api.done[len(api.done)-1].Truncate(time.Minute)
	for m := first.Add(-time.Minute); !m.After(last.Add(time.Minute)); m = m.Add(time.Minute) {
		end := m.Add(time.Minute)
		sure, maybe := map[string]int{}, map[string]bool{}
		for i, c := range gen.Changes {
			id := string(c.Key.Encode())
			if !c.At.Before(m) && api.done[i].Before(end) {
				sure[id]++
			}
			if c.At.Before(end) && !api.done[i].Before(m) {
				maybe[id] = true
			}
		}
		got := keySet(query.Query{From: m, To: end})
		for id, n := range sure {
			e, ok := got[id]
			if !ok {
				t.Fatalf("window %s: item %q written in it is not in the key set", m.Format(time.RFC3339), id)
			}
			if e.Count < int64(n) || e.First.Before(m) || !e.Last.Before(end) || e.Table != "orders" {
				t.Fatalf("window %s: %+v; want at least %d changes inside the window", m.Format(time.RFC3339), e, n)
			}
		}
		for id := range got {
			if !maybe[id] {
				t.Fatalf("window %s: item %q is in the key set but was not written in the window", m.Format(time.RFC3339), id)
			}
		}
	}

	// The whole run: exactly the items written, with their change counts
	// and actions.
	want := map[string]*rewind.KeySetEntry{}
	for _, c := range gen.Changes {
		id := string(c.Key.Encode())
		e := want[id]
		if e == nil {
			e = &rewind.KeySetEntry{Table: "orders", Key: c.Key, Tenant: c.Tenant}
			want[id] = e
		}
		e.Merge(rewind.KeySetEntry{Count: 1, Actions: []rewind.Action{c.Action}})
	}
	all := keySet(query.Query{From: first, To: last.Add(time.Minute)})
	if len(all) != len(want) {
		t.Fatalf("whole run: %d items in the key set, %d written", len(all), len(want))
	}
	for id, w := range want {
		g := all[id]
		if g.Count != w.Count || g.Tenant != w.Tenant || !slicesEqual(g.Actions, w.Actions) {
			t.Fatalf("item %s: %+v, want count %d tenant %q actions %v", w.Key, g, w.Count, w.Tenant, w.Actions)
		}
	}

	// The bad deploy's items: acme, new image v42.
	bad := map[string]bool{}
	for _, c := range gen.Changes {
		if v, ok := c.New["deployVersion"].(*types.AttributeValueMemberS); ok && v.Value == "v42" {
			bad[string(c.Key.Encode())] = true
		}
	}
	m, _ := query.ParseMatch("new.deployVersion=v42")
	hit := keySet(query.Query{Tenants: []string{"acme"}, Matches: []query.Match{m}})
	if len(hit) != len(bad) || len(bad) == 0 {
		t.Fatalf("v42 key set has %d items, want %d", len(hit), len(bad))
	}
	for id := range bad {
		if _, ok := hit[id]; !ok || !strings.Contains(id, "acme") {
			t.Fatalf("v42 item %q missing from the key set", id)
		}
	}
}

func slicesEqual(a, b []rewind.Action) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
