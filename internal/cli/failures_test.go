package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer"
	"github.com/ddbrewind/rewind/internal/localaws"
	"github.com/ddbrewind/rewind/internal/localaws/streampoller"
	"github.com/ddbrewind/rewind/query"
	"github.com/ddbrewind/rewind/streamhandler"
)

// faultyPutter fails the handler's Parquet writes while failing is set.
type faultyPutter struct {
	streamhandler.ObjectPutter
	mu      sync.Mutex
	failing bool
}

func (f *faultyPutter) PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	f.mu.Lock()
	failing := f.failing
	f.mu.Unlock()
	if failing {
		return nil, errors.New("injected: S3 unavailable")
	}
	return f.ObjectPutter.PutObject(ctx, in, opts...)
}

// TestIndexFailuresCLI: a batch whose Parquet write keeps failing exhausts
// its retries; the local event source mapping writes its failure record to
// the on-failure bucket in the documented layout; `rewind index --failures`
// stores its events, so the store holds exactly what the stream had; a
// second run, and the capture of a later successful retry, add nothing. A
// failure record that cannot be indexed makes query, stats and patch
// --from-history warn and exit 3 until it is indexed or removed.
func TestIndexFailuresCLI(t *testing.T) {
	ctx := context.Background()
	ddb := localaws.DynamoDBForTest(t)
	s3env := localaws.S3ForTest(t)
	failBucket := "failures"
	if _, err := s3env.Client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(failBucket)}); err != nil {
		t.Fatal(err)
	}
	out, err := ddb.DynamoDB.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String("orders"),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
		StreamSpecification:  &types.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: types.StreamViewTypeNewAndOldImages},
	})
	if err != nil {
		t.Fatal(err)
	}
	streamARN := aws.ToString(out.TableDescription.LatestStreamArn)
	if err := streamhandler.CreateAuditTable(ctx, ddb.DynamoDB, "audit"); err != nil {
		t.Fatal(err)
	}
	const writes = 30
	for i := range writes {
		if _, err := ddb.DynamoDB.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("orders"), Item: map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: fmt.Sprintf("t%d#%d", i%3, i)},
			"v":  &types.AttributeValueMemberN{Value: strconv.Itoa(i)},
		}}); err != nil {
			t.Fatal(err)
		}
	}

	putter := &faultyPutter{ObjectPutter: s3env.Client}
	h, err := streamhandler.New(streamhandler.Config{AuditTable: "audit", Bucket: s3env.Bucket, Prefix: "capture"},
		ddb.DynamoDB, putter, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	// The second batch (by its first record) fails on every attempt.
	var firsts []string
	var failedPayload []byte
	invoker := streampoller.InvokerFunc(func(ctx context.Context, payload []byte) ([]byte, error) {
		var ev events.DynamoDBEvent
		if err := json.Unmarshal(payload, &ev); err != nil {
			return nil, err
		}
		first := ev.Records[0].Change.SequenceNumber
		if !slices.Contains(firsts, first) {
			firsts = append(firsts, first)
		}
		fail := first == firsts[min(1, len(firsts)-1)] && len(firsts) >= 2
		if fail {
			failedPayload = payload
		}
		putter.mu.Lock()
		putter.failing = fail
		putter.mu.Unlock()
		return h.Invoke(ctx, payload)
	})
	p, err := streampoller.New(streampoller.Config{
		StreamARN: streamARN, Streams: ddb.Streams, Invoker: invoker, BatchSize: 10, MaxRetries: 2,
		Failures: s3env.Client, FailureBucket: failBucket, MappingUUID: "a1b2c3d4-0000-4000-8000-000000000001", Logf: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	stats, err := p.PollOnce(ctx)
	if !errors.Is(err, streampoller.ErrRetriesExhausted) || stats.Discarded != 10 || stats.Delivered != writes-10 {
		t.Fatalf("poll: %+v, %v; want one batch of 10 given up on", stats, err)
	}
	fails := p.Failures()
	if len(fails) != 1 || fails[0].Object == "" || fails[0].Attempts != 3 {
		t.Fatalf("failures %+v; want one, written to the bucket after 3 attempts", fails)
	}

	// The failure record, as AWS documents it.
	got, err := s3env.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(failBucket), Key: aws.String(fails[0].Object)})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(got.Body)
	got.Body.Close()
	k, err := rewind.ParseFailureKey(fails[0].Object)
	if err != nil || k.MappingUUID != "a1b2c3d4-0000-4000-8000-000000000001" || k.ShardID != fails[0].ShardID ||
		!strings.HasPrefix(fails[0].Object, "aws/lambda/a1b2c3d4-0000-4000-8000-000000000001/"+fails[0].ShardID+"/"+k.Written.Format("2006/01/02")+"/"+k.Written.Format("2006-01-02T15.04.05")+"-") {
		t.Fatalf("key %s: %+v, %v", fails[0].Object, k, err)
	}
	rec, err := rewind.ParseFailureRecord(body)
	if err != nil {
		t.Fatal(err)
	}
	if rec.RequestContext.Condition != "RetryAttemptsExhausted" || rec.RequestContext.ApproximateInvokeCount != 3 || rec.Version != "1.0" ||
		rec.BatchInfo.BatchSize != 10 || rec.BatchInfo.StreamARN != streamARN || rec.BatchInfo.StartSequenceNumber != fails[0].FirstSequence ||
		rec.BatchInfo.EndSequenceNumber != fails[0].LastSequence || rec.ResponseContext.FunctionError != "Unhandled" {
		t.Fatalf("failure record %s", body)
	}
	if event, err := rec.Event(); err != nil || !bytes.Equal(event, failedPayload) {
		t.Fatalf("failure record payload %.200s, %v; want the invocation's", event, err)
	}

	// What the stream had: every record, decoded as the handler does.
	var want []string
	for _, inv := range p.Invocations() {
		if inv.Attempt != 1 {
			continue
		}
		evs, err := streamhandler.DecodeEvent(streamhandler.Config{}, inv.Payload)
		if err != nil {
			t.Fatal(err)
		}
		for i := range evs {
			want = append(want, eventLine(t, &evs[i]))
		}
	}
	slices.Sort(want)
	if len(want) != writes {
		t.Fatalf("%d records in the first attempts, want %d", len(want), writes)
	}

	setS3Env(t, s3env.Endpoint)
	store := filepath.Join(t.TempDir(), "store")
	run := func(args ...string) (int, string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		env := &Env{Stdout: &out, Stderr: &errb, Log: slog.New(slog.NewTextHandler(&errb, nil)), Getenv: pathStyle}
		return Run(ctx, env, args), out.String(), errb.String()
	}
	if code, _, errs := run("index", "--source", "s3://"+s3env.Bucket+"/capture", "--store", store); code != exitOK {
		t.Fatalf("index --source: exit %d\n%s", code, errs)
	}
	if n := storeEvents(t, store); len(n) != writes-10 {
		t.Fatalf("capture alone: %d events, want %d", len(n), writes-10)
	}
	code, stdout, errs := run("index", "--failures", "s3://"+failBucket, "--store", store)
	if code != exitOK || !strings.Contains(stdout, `"events":10`) {
		t.Fatalf("index --failures: exit %d\n%s%s", code, stdout, errs)
	}
	if got := storeEvents(t, store); !slices.Equal(got, want) {
		t.Fatalf("store after --failures:\n%s\nwant (the stream):\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Again, and after a later successful retry lands in the capture
	// bucket: nothing changes.
	code, stdout, errs = run("index", "--failures", "s3://"+failBucket, "--store", store)
	if code != exitOK || !strings.Contains(stdout, `"skipped":1`) || !strings.Contains(stdout, `"events":0`) {
		t.Fatalf("index --failures again: exit %d\n%s%s", code, stdout, errs)
	}
	putter.failing = false
	if _, err := h.Invoke(ctx, failedPayload); err != nil {
		t.Fatal(err)
	}
	code, stdout, errs = run("index", "--source", "s3://"+s3env.Bucket+"/capture", "--failures", "s3://"+failBucket, "--store", store)
	if code != exitOK || !strings.Contains(stdout, `"duplicates":10`) {
		t.Fatalf("index the retry: exit %d\n%s%s", code, stdout, errs)
	}
	if got := storeEvents(t, store); !slices.Equal(got, want) {
		t.Fatalf("store after the retry:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if code, stdout, errs := run("query", "--store", store, "--format", "json"); code != exitOK || strings.Contains(stdout, `"kind":"warning"`) {
		t.Fatalf("query with every failure indexed: exit %d\n%s%s", code, stdout, errs)
	}

	// A failure record that cannot be indexed is a gap the store knows.
	badKey := rewind.FailureKey("a1b2c3d4-0000-4000-8000-000000000001", fails[0].ShardID, k.Written, "00000000-0000-4000-8000-00000000dead")
	if _, err := s3env.Client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(failBucket), Key: aws.String(badKey), Body: strings.NewReader(`{"version":"1.0"`)}); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := run("index", "--failures", "s3://"+failBucket, "--store", store); code != exitPartial || !strings.Contains(errs, badKey) {
		t.Fatalf("index a bad failure record: exit %d, want 3 naming it\n%s", code, errs)
	}
	code, stdout, errs = run("query", "--store", store, "--format", "json")
	if code != exitPartial || !strings.Contains(errs, "query: WARNING: capture failure s3://"+failBucket+"/"+badKey) ||
		!strings.Contains(stdout, `{"kind":"warning","message":"capture failure s3://`+failBucket+"/"+badKey) {
		t.Fatalf("query over a gap: exit %d, want 3 with a warning\n%s%s", code, stdout, errs)
	}
	if code, _, errs := run("stats", "--store", store); code != exitPartial || !strings.Contains(errs, "stats: WARNING: capture failure") {
		t.Fatalf("stats over a gap: exit %d, want 3\n%s", code, errs)
	}
	// A patch from that history is refused before it writes anything,
	// unless told to write anyway; the production table is untouched.
	keyFile := filepath.Join(t.TempDir(), "keys.jsonl")
	if err := os.WriteFile(keyFile, []byte(`{"table":"orders","key":{"pk":{"S":"t1#1"}}}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	prodBefore := scanAll(t, ddb.DynamoDB, "orders")
	code, _, errs = run("patch", "--keys", keyFile, "--from-history", "--at", k.Written.Format(time.RFC3339Nano), "--store", store,
		"--to", "orders", "--yes", "--journal", filepath.Join(t.TempDir(), "j"), "--progress", "0")
	if code != exitError || !strings.Contains(errs, "patch: WARNING: capture failure") || !strings.Contains(errs, "refusing to write") || !strings.Contains(errs, "--accept-capture-gaps") {
		t.Fatalf("patch --from-history --yes over a gap: exit %d, want 1 refusing\n%s", code, errs)
	}
	if after := scanAll(t, ddb.DynamoDB, "orders"); !reflect.DeepEqual(after, prodBefore) {
		t.Fatalf("the refused patch changed the production table")
	}
	// A window that ends a day before the failure record holds no gap.
	before := k.Written.Add(-25 * 60 * 60e9).Format("2006-01-02T15:04:05Z")
	if code, _, errs := run("stats", "--store", store, "--to", before); strings.Contains(errs, "WARNING") || code == exitError {
		t.Fatalf("stats before the gap: exit %d\n%s", code, errs)
	}
	st, err := indexer.Open(store, indexer.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	gaps, err := query.FindCaptureGapsBefore(st, k.Written)
	st.Close()
	if err != nil || len(gaps) != 1 || gaps[0].Object != "s3://"+failBucket+"/"+badKey {
		t.Fatalf("gaps before %s: %+v, %v", k.Written, gaps, err)
	}
	// Removing it from the bucket (its changes recovered otherwise)
	// closes the gap at the next index.
	if _, err := s3env.Client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(failBucket), Key: aws.String(badKey)}); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := run("index", "--failures", "s3://"+failBucket, "--store", store); code != exitOK {
		t.Fatalf("index after removing the bad record: exit %d\n%s", code, errs)
	}
	if code, _, errs := run("stats", "--store", store); code != exitOK || strings.Contains(errs, "WARNING") {
		t.Fatalf("stats after the gap closed: exit %d\n%s", code, errs)
	}
}

// eventLine is an event as the test compares it.
func eventLine(t *testing.T, ev *rewind.ChangeEvent) string {
	t.Helper()
	b, err := query.AppendEventJSON(nil, ev)
	if err != nil {
		t.Fatal(err)
	}
	return string(bytes.TrimSpace(b))
}

// storeEvents returns every event in the store, sorted.
func storeEvents(t *testing.T, dir string) []string {
	t.Helper()
	st, err := indexer.Open(dir, indexer.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	it, err := st.ScanTime(indexer.Window{})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out []string
	for it.Next() {
		ev, err := st.Event(it.Entry())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, eventLine(t, &ev))
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func setS3Env(t *testing.T, endpoint string) {
	t.Setenv("AWS_ENDPOINT_URL_S3", endpoint)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
}

func pathStyle(k string) string {
	if k == "REWIND_S3_PATH_STYLE" {
		return "true"
	}
	return ""
}
