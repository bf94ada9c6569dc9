package diff

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/internal/faultproxy"
	"github.com/ddbrewind/rewind/internal/localaws"
	"github.com/ddbrewind/rewind/recover/patch/patchtest"
	"github.com/google/go-cmp/cmp"
)

// TestDiffThrottledLocal reads DynamoDB Local through a proxy that
// throttles (both of DynamoDB's throttling errors), fails and drops a
// share of the Scans: the SDK's retryer plays them again, and the diff
// comes out as without faults.
func TestDiffThrottledLocal(t *testing.T) {
	ddb := localaws.DynamoDBForTest(t)
	ctx := t.Context()
	for _, name := range []string{"prod", "restored"} {
		if err := patchtest.CreateTable(ctx, ddb.DynamoDB, name); err != nil {
			t.Fatal(err)
		}
	}
	var from, to []rewind.Item
	for i := range 400 {
		it := patchtest.Key("t"+strconv.Itoa(i%5), i)
		it["v"] = &types.AttributeValueMemberS{Value: strconv.Itoa(i)}
		if i%9 != 0 {
			from = append(from, it)
		}
		if i%10 != 0 {
			if i%4 == 0 {
				it = patchtest.Key("t"+strconv.Itoa(i%5), i)
				it["v"] = &types.AttributeValueMemberS{Value: "changed"}
			}
			to = append(to, it)
		}
	}
	if err := patchtest.Put(ctx, ddb.DynamoDB, "restored", from); err != nil {
		t.Fatal(err)
	}
	if err := patchtest.Put(ctx, ddb.DynamoDB, "prod", to); err != nil {
		t.Fatal(err)
	}
	cfg := Config{From: "restored", To: "prod", Options: Options{Segments: 4, Workers: 4, PageLimit: 25, MaxAttempts: 30}}
	_, clean, _ := run(t, ddb.DynamoDB, cfg)
	if len(clean) == 0 {
		t.Fatal("no differences found")
	}
	p, err := faultproxy.Start(faultproxy.Config{Upstream: ddb.Endpoint, Seed: 3,
		ProvisionedThroughputExceeded: 0.15, Throttling: 0.15, ServerError: 0.05, DropBeforeForward: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	faulty := dynamodb.NewFromConfig(ddb.Config, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(p.URL) })
	_, got, sum := run(t, faulty, cfg)
	if d := cmp.Diff(clean, got); d != "" {
		t.Fatalf("diff through faults differs (-clean +faulty):\n%s", d)
	}
	if st := p.Stats(); st.Faults() < 5 {
		t.Fatalf("only %d faults injected in %d requests", st.Faults(), st.Requests)
	}
	if sum.FromScanned != int64(len(from)) || sum.ToScanned != int64(len(to)) {
		t.Fatalf("scanned %d and %d items; the tables hold %d and %d", sum.FromScanned, sum.ToScanned, len(from), len(to))
	}
	fmt.Fprint(testWriter{t}, sum)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }

// TestDiffBinaryKeyLocal diffs tables keyed by a binary partition key
// alone, with keys of bytes that are not UTF-8.
func TestDiffBinaryKeyLocal(t *testing.T) {
	ddb := localaws.DynamoDBForTest(t)
	ctx := t.Context()
	for _, name := range []string{"blobs", "blobs-restored"} {
		if err := patchtest.CreateTableHashOnly(ctx, ddb.DynamoDB, name, "id", types.ScalarAttributeTypeB); err != nil {
			t.Fatal(err)
		}
	}
	item := func(id []byte, v string) rewind.Item {
		return rewind.Item{"id": &types.AttributeValueMemberB{Value: id}, "v": &types.AttributeValueMemberS{Value: v}}
	}
	from := []rewind.Item{item([]byte{0xff, 0x00}, "a"), item([]byte{0x00}, "b"), item([]byte{0x80, 0x81}, "c"), item([]byte{0x01}, "d")}
	to := []rewind.Item{item([]byte{0xff, 0x00}, "a"), item([]byte{0x00}, "B"), item([]byte{0x01}, "d"), item([]byte{0xfe}, "e")}
	if err := patchtest.Put(ctx, ddb.DynamoDB, "blobs-restored", from); err != nil {
		t.Fatal(err)
	}
	if err := patchtest.Put(ctx, ddb.DynamoDB, "blobs", to); err != nil {
		t.Fatal(err)
	}
	var got []string
	_, err := Diff(ctx, ddb.DynamoDB, Config{From: "blobs-restored", To: "blobs"}, func(d Difference) error {
		got = append(got, fmt.Sprintf("%s %s %s", d.Table, d.Key, d.Kind.Action()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Canonical order: the encoding puts a value's length before its
	// bytes, so the one-byte keys come first.
	want := []string{
		`blobs {"id":{"B":"AA=="}} MODIFY`,
		`blobs {"id":{"B":"/g=="}} INSERT`,
		`blobs {"id":{"B":"gIE="}} REMOVE`,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("binary-key diff (-want +got):\n%s", d)
	}
}
