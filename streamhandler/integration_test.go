package streamhandler_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/internal/localaws"
	"github.com/ddbrewind/rewind/internal/localaws/lambdart"
	"github.com/ddbrewind/rewind/internal/localaws/streampoller"
	"github.com/ddbrewind/rewind/internal/traffic"
	"github.com/ddbrewind/rewind/streamhandler"
	"github.com/parquet-go/parquet-go"
)

// stack is one test's tables, bucket and handler on the local stack.
type stack struct {
	ddb       *localaws.DynamoDBEnv
	s3        *localaws.S3Env
	streamARN string
	cfg       streamhandler.Config
}

func newStack(t *testing.T) *stack {
	t.Helper()
	ctx := context.Background()
	st := &stack{ddb: localaws.DynamoDBForTest(t), s3: localaws.S3ForTest(t)}
	st.createOrders(t)
	if err := streamhandler.CreateAuditTable(ctx, st.ddb.DynamoDB, "audit"); err != nil {
		t.Fatal(err)
	}
	st.cfg = streamhandler.Config{
		AuditTable: "audit",
		Bucket:     st.s3.Bucket,
		Tenant:     rewind.TenantRule{Regex: regexp.MustCompile(traffic.TenantRegex)},
	}
	return st
}

// createOrders creates the orders table with a NEW_AND_OLD_IMAGES stream.
func (st *stack) createOrders(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	out, err := st.ddb.DynamoDB.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String("orders"),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}, {AttributeName: aws.String("sk"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}, {AttributeName: aws.String("sk"), KeyType: types.KeyTypeRange}},
		StreamSpecification:  &types.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: types.StreamViewTypeNewAndOldImages},
	})
	if err != nil {
		t.Fatal(err)
	}
	st.streamARN = aws.ToString(out.TableDescription.LatestStreamArn)
}

func (st *stack) handler(t *testing.T, s3c streamhandler.ObjectPutter) *streamhandler.Handler {
	t.Helper()
	if s3c == nil {
		s3c = st.s3.Client
	}
	h, err := streamhandler.New(st.cfg, st.ddb.DynamoDB, s3c, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (st *stack) poller(t *testing.T, inv streampoller.Invoker, batch int) *streampoller.Poller {
	t.Helper()
	p, err := streampoller.New(streampoller.Config{
		StreamARN: st.streamARN, Streams: st.ddb.Streams, Invoker: inv, BatchSize: batch, Logf: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// rows reads every Parquet row under the bucket, with the object keys.
func (st *stack) rows(t *testing.T) ([]rewind.ParquetRow, []string) {
	t.Helper()
	ctx := context.Background()
	var rows []rewind.ParquetRow
	var keys []string
	pg := s3.NewListObjectsV2Paginator(st.s3.Client, &s3.ListObjectsV2Input{Bucket: &st.s3.Bucket})
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			keys = append(keys, *o.Key)
			obj, err := st.s3.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: &st.s3.Bucket, Key: o.Key})
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(obj.Body)
			obj.Body.Close()
			r, err := parquet.Read[rewind.ParquetRow](bytes.NewReader(body), int64(len(body)))
			if err != nil {
				t.Fatalf("%s: %v", *o.Key, err)
			}
			rows = append(rows, r...)
		}
	}
	return rows, keys
}

func (st *stack) auditItems(t *testing.T) []map[string]types.AttributeValue {
	t.Helper()
	var items []map[string]types.AttributeValue
	pg := dynamodb.NewScanPaginator(st.ddb.DynamoDB, &dynamodb.ScanInput{TableName: aws.String("audit"), ConsistentRead: aws.Bool(true)})
	for pg.HasMorePages() {
		page, err := pg.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, page.Items...)
	}
	return items
}

// checkCaptured asserts the Parquet rows hold exactly the changes, once
// each, in order per item, with the images DynamoDB returned.
func checkCaptured(t *testing.T, gen *traffic.Generator, rows []rewind.ParquetRow) {
	t.Helper()
	evs := make([]rewind.ChangeEvent, 0, len(rows))
	for _, r := range rows {
		ev, err := r.ChangeEvent()
		if err != nil {
			t.Fatalf("row %s: %v", r.EventID, err)
		}
		evs = append(evs, ev)
	}
	if err := gen.Compare("orders", evs); err != nil {
		t.Fatal(err)
	}
}

func TestCaptureIntegration(t *testing.T) {
	st := newStack(t)
	ctx := context.Background()
	gen := traffic.New(st.ddb.DynamoDB, "orders", []string{"acme", "globex", "initech", "umbrella", "hooli"}, 1)
	gen.TTLFraction = 0.1
	if err := gen.Run(ctx, 2000); err != nil {
		t.Fatal(err)
	}
	h := st.handler(t, nil)
	p := st.poller(t, h, 100)
	stats, err := p.PollOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Delivered < len(gen.Changes) || stats.Retries != 0 {
		t.Fatalf("poller delivered %d records with %d retries; %d changes made", stats.Delivered, stats.Retries, len(gen.Changes))
	}
	rows, keys := st.rows(t)
	checkCaptured(t, gen, rows)
	audit := st.auditItems(t)
	if len(audit) != len(rows) {
		t.Fatalf("audit table has %d items, Parquet %d rows", len(audit), len(rows))
	}

	// A tenant's window is a Query over its partitions, and it finds
	// exactly that tenant's changes.
	cfg := st.cfg
	cfg.EnsureDefaults()
	from, to := rows[0], rows[0]
	for _, r := range rows {
		if r.EventTime < from.EventTime {
			from = r
		}
		if r.EventTime > to.EventTime {
			to = r
		}
	}
	start, end := time.UnixMicro(from.EventTime), time.UnixMicro(to.EventTime).Add(time.Second)
	n := 0
	for _, pk := range streamhandler.AuditPartitions("acme", start, end, cfg.AuditShards) {
		pg := dynamodb.NewQueryPaginator(st.ddb.DynamoDB, &dynamodb.QueryInput{
			TableName:                 aws.String("audit"),
			KeyConditionExpression:    aws.String("pk = :pk AND sk BETWEEN :a AND :b"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: pk}, ":a": &types.AttributeValueMemberS{Value: streamhandler.AuditSortKeyPrefix(start)}, ":b": &types.AttributeValueMemberS{Value: streamhandler.AuditSortKeyPrefix(end)}},
		})
		for pg.HasMorePages() {
			page, err := pg.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range page.Items {
				if it["tenant"].(*types.AttributeValueMemberS).Value != "acme" {
					t.Fatalf("tenant query returned %v", it["tenant"])
				}
			}
			n += len(page.Items)
		}
	}
	want := 0
	for _, c := range gen.Changes {
		if c.Tenant == "acme" {
			want++
		}
	}
	if n != want {
		t.Fatalf("tenant query found %d changes of acme, want %d", n, want)
	}

	// One item's history is a Query on the item-history index.
	c := gen.Changes[len(gen.Changes)/2]
	hist, err := st.ddb.DynamoDB.Query(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String("audit"),
		IndexName:                 aws.String(streamhandler.AuditItemHistoryIndex),
		KeyConditionExpression:    aws.String("#i = :i"),
		ExpressionAttributeNames:  map[string]string{"#i": "item"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":i": &types.AttributeValueMemberS{Value: streamhandler.AuditItemID("orders", c.Key)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var wantActions, gotActions []string
	for _, x := range gen.Changes {
		if x.Key.Equal(c.Key) {
			wantActions = append(wantActions, string(x.Action))
		}
	}
	for _, it := range hist.Items {
		gotActions = append(gotActions, it["action"].(*types.AttributeValueMemberS).Value)
	}
	if strings.Join(gotActions, ",") != strings.Join(wantActions, ",") {
		t.Fatalf("history of %s: %v, want %v", c.Key, gotActions, wantActions)
	}

	// Redelivering a batch adds nothing anywhere.
	payloads := p.Payloads()
	if _, err := h.Invoke(ctx, payloads[len(payloads)/2]); err != nil {
		t.Fatal(err)
	}
	rows2, keys2 := st.rows(t)
	if len(rows2) != len(rows) || len(keys2) != len(keys) || len(st.auditItems(t)) != len(audit) {
		t.Fatalf("redelivery: %d rows in %d objects, %d audit items; was %d, %d, %d", len(rows2), len(keys2), len(st.auditItems(t)), len(rows), len(keys), len(audit))
	}
}

// flakyS3 fails the first PutObject it sees, then passes everything on.
type flakyS3 struct {
	next   streamhandler.ObjectPutter
	failed atomic.Bool
}

func (f *flakyS3) PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if f.failed.CompareAndSwap(false, true) {
		return nil, &smithy.GenericAPIError{Code: "InternalError", Message: "We encountered an internal error. Please try again."}
	}
	return f.next.PutObject(ctx, in, opts...)
}

func TestCaptureS3FailureIsRetried(t *testing.T) {
	st := newStack(t)
	ctx := context.Background()
	gen := traffic.New(st.ddb.DynamoDB, "orders", []string{"acme", "globex"}, 2)
	if err := gen.Run(ctx, 250); err != nil {
		t.Fatal(err)
	}
	h := st.handler(t, &flakyS3{next: st.s3.Client})
	p := st.poller(t, h, 100)
	stats, err := p.PollOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Retries != 1 || stats.Delivered < len(gen.Changes) {
		t.Fatalf("stats %+v, want one retry and %d delivered", stats, len(gen.Changes))
	}
	inv := p.Invocations()
	first := inv[0]
	wantResp := fmt.Sprintf(`{"batchItemFailures":[{"itemIdentifier":"%s"}]}`, first.FirstSequence)
	if string(first.Response) != wantResp {
		t.Fatalf("first response %s, want %s", first.Response, wantResp)
	}
	if inv[1].Attempt != 2 || inv[1].FirstSequence != first.FirstSequence {
		t.Fatalf("second invocation %+v is not the retry of the first", inv[1])
	}
	rows, _ := st.rows(t)
	checkCaptured(t, gen, rows)
}

// TestCaptureThroughBootstrap runs the real Lambda bootstrap binary under
// the Runtime API harness, fed by the poller.
func TestCaptureThroughBootstrap(t *testing.T) {
	st := newStack(t)
	ctx := context.Background()
	bin := filepath.Join(t.TempDir(), "bootstrap")
	build := exec.Command("go", "build", "-tags", "lambda.norpc", "-o", bin, "../cmd/streamhandler")
	build.Env = append(build.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build bootstrap: %v\n%s", err, out)
	}
	creds, err := st.ddb.Config.Credentials.Retrieve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := lambdart.Start(ctx, lambdart.Config{
		Bootstrap: bin,
		Timeout:   60 * time.Second,
		Env: []string{
			"REWIND_AUDIT_TABLE=audit",
			"REWIND_BUCKET=" + st.s3.Bucket,
			"REWIND_TENANT_REGEX=" + traffic.TenantRegex,
			"REWIND_S3_PATH_STYLE=true",
			"AWS_ENDPOINT_URL_DYNAMODB=" + st.ddb.Endpoint,
			"AWS_ENDPOINT_URL_S3=" + st.s3.Endpoint,
			"AWS_ACCESS_KEY_ID=" + creds.AccessKeyID,
			"AWS_SECRET_ACCESS_KEY=" + creds.SecretAccessKey,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	gen := traffic.New(st.ddb.DynamoDB, "orders", []string{"acme", "globex", "initech"}, 3)
	if err := gen.Run(ctx, 300); err != nil {
		t.Fatal(err)
	}
	p := st.poller(t, rt, 100)
	if _, err := p.PollOnce(ctx); err != nil {
		var fe *lambdart.FunctionError
		if errors.As(err, &fe) {
			t.Fatalf("function error %v\nlogs:\n%s", fe, rt.Logs())
		}
		t.Fatalf("%v\nlogs:\n%s", err, rt.Logs())
	}
	rows, _ := st.rows(t)
	checkCaptured(t, gen, rows)
	if !strings.Contains(rt.Logs(), `"msg":"stream batch"`) {
		t.Fatalf("no JSON batch log line from the bootstrap:\n%s", rt.Logs())
	}
}
