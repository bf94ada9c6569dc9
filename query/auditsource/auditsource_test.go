package auditsource

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/query"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// pager answers each partition with pages of one item, then fails the
// partition named fail.
type pager struct {
	mu    sync.Mutex
	calls []string
	fail  string
	pages int
}

func (p *pager) Query(ctx context.Context, in *dynamodb.QueryInput, _ ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	if _, ok := ctx.Deadline(); !ok {
		return nil, errors.New("a Query without a deadline")
	}
	v := in.ExpressionAttributeValues[":p"].(*types.AttributeValueMemberS).Value
	p.mu.Lock()
	p.calls = append(p.calls, aws.ToString(in.IndexName)+" "+v)
	p.mu.Unlock()
	if v == p.fail {
		return nil, errors.New("boom")
	}
	page := 0
	if in.ExclusiveStartKey != nil {
		page = len(in.ExclusiveStartKey["n"].(*types.AttributeValueMemberS).Value)
	}
	out := &dynamodb.QueryOutput{ConsumedCapacity: &types.ConsumedCapacity{CapacityUnits: aws.Float64(0.5)}}
	if page < p.pages {
		t := time.Date(2026, 11, 20, 10, 0, page, 0, time.UTC)
		out.Items = []map[string]types.AttributeValue{{
			"pk": &types.AttributeValueMemberS{Value: v}, "sk": &types.AttributeValueMemberS{Value: "x"},
			"eventId": &types.AttributeValueMemberS{Value: v + strings.Repeat("!", page)}, "eventTime": &types.AttributeValueMemberS{Value: t.Format(time.RFC3339Nano)},
			"table": &types.AttributeValueMemberS{Value: "orders"}, "tenant": &types.AttributeValueMemberS{Value: "acme"},
			"action": &types.AttributeValueMemberS{Value: "INSERT"}, "sequenceNumber": &types.AttributeValueMemberS{Value: "1"},
			"keys": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: v}}},
		}}
		out.LastEvaluatedKey = map[string]types.AttributeValue{"n": &types.AttributeValueMemberS{Value: strings.Repeat("x", page+1)}}
	}
	return out, nil
}

func TestLoadPagesAndSums(t *testing.T) {
	p := &pager{pages: 3}
	q := query.Query{From: time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC), To: time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)}
	l, err := Load(t.Context(), p, Config{Table: "audit", Shards: 2, Log: quiet, TempDir: t.TempDir()}, q)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// 2 hours × 2 shards of the hour index, 3 items each, one page more.
	if l.Index != "hour" || l.Partitions != 4 || l.Pages != 16 || l.Items != 12 || l.CapacityUnits != 8 || l.Tenants["acme"] != 12 {
		t.Fatalf("summary %+v", l.Summary)
	}
	n, err := l.Store.Count()
	if err != nil || n != 12 {
		t.Fatalf("store holds %d events (%v), want 12", n, err)
	}
	for _, c := range p.calls {
		if !strings.HasPrefix(c, "hour 2026-11-20T1") {
			t.Errorf("call %q: not the hour index", c)
		}
	}
}

func TestLoadNamesThePartitionThatFailed(t *testing.T) {
	p := &pager{pages: 1, fail: "acme#2026-11-20T10#1"}
	q := query.Query{From: time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC), To: time.Date(2026, 11, 20, 11, 0, 0, 0, time.UTC), Tenants: []string{"acme"}}
	_, err := Load(t.Context(), p, Config{Table: "audit", Shards: 2, Log: quiet, TempDir: t.TempDir()}, q)
	if err == nil || !strings.Contains(err.Error(), `audit table audit: pk acme#2026-11-20T10#1: query (page 1): boom`) {
		t.Fatalf("error %v, want one naming the table, partition and page", err)
	}
	if _, err := Load(t.Context(), p, Config{Table: "audit", Log: quiet}, query.Query{From: q.From}); err == nil || !strings.Contains(err.Error(), "both ends") {
		t.Fatalf("open window: %v", err)
	}
}

func TestDecodeItemErrors(t *testing.T) {
	base := func() map[string]types.AttributeValue {
		return map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: "acme#2026-11-20T10#0"}, "sk": &types.AttributeValueMemberS{Value: "s"},
			"eventId": &types.AttributeValueMemberS{Value: "e"}, "eventTime": &types.AttributeValueMemberS{Value: "2026-11-20T10:00:00Z"},
		}
	}
	for name, mod := range map[string]func(map[string]types.AttributeValue){
		"no eventId":    func(m map[string]types.AttributeValue) { delete(m, "eventId") },
		"bad eventTime": func(m map[string]types.AttributeValue) { m["eventTime"] = &types.AttributeValueMemberS{Value: "noon"} },
		"bad snappy": func(m map[string]types.AttributeValue) {
			m["imageEncoding"] = &types.AttributeValueMemberS{Value: imageEncoding}
			m["newImage"] = &types.AttributeValueMemberB{Value: []byte{0xff, 0xff}}
		},
		"other encoding": func(m map[string]types.AttributeValue) {
			m["imageEncoding"] = &types.AttributeValueMemberS{Value: "zstd"}
			m["newImage"] = &types.AttributeValueMemberB{Value: []byte{1}}
		},
	} {
		m := base()
		mod(m)
		if _, _, err := DecodeItem(m); err == nil || !strings.Contains(err.Error(), `pk "acme#2026-11-20T10#0" sk "s"`) {
			t.Errorf("%s: error %v, want one naming the item", name, err)
		}
	}
	m := base()
	m["imagesOmitted"] = &types.AttributeValueMemberBOOL{Value: true}
	if ev, omitted, err := DecodeItem(m); err != nil || !omitted || ev.NewImage != nil {
		t.Errorf("imagesOmitted: %v %v %v", err, omitted, ev.NewImage)
	}
	o := Omitted{Table: "orders", Time: time.Date(2026, 11, 20, 9, 5, 0, 0, time.UTC), Key: rewind.Key{{Name: "pk", Type: 'S', Value: "a"}}}
	if got := o.ParquetPrefix(); got != "table=orders/dt=2026-11-20/hour=09/" {
		t.Errorf("ParquetPrefix %q", got)
	}
}
