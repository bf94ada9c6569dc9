package streamhandler

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/ddbrewind/rewind"
	"github.com/golang/snappy"
	"github.com/parquet-go/parquet-go"
)

// fakeAudit is an in-memory audit table behind BatchWriteItem.
type fakeAudit struct {
	mu    sync.Mutex
	items map[string]map[string]types.AttributeValue
	calls int
	// unprocessed, when set, decides per call how many requests to hand
	// back as UnprocessedItems.
	unprocessed func(call int, n int) int
	// fail, when set, returns an error for a call.
	fail func(call int, reqs []types.WriteRequest) error
	// delay slows every call.
	delay time.Duration
}

func newFakeAudit() *fakeAudit {
	return &fakeAudit{items: make(map[string]map[string]types.AttributeValue)}
}

func (f *fakeAudit) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	call := f.calls
	out := &dynamodb.BatchWriteItemOutput{UnprocessedItems: map[string][]types.WriteRequest{}}
	for table, reqs := range in.RequestItems {
		if len(reqs) > 25 {
			return nil, fmt.Errorf("ValidationException: %d requests", len(reqs))
		}
		seen := map[string]bool{}
		for _, r := range reqs {
			k := reqKey(r)
			if seen[k] {
				return nil, errors.New("ValidationException: Provided list of item keys contains duplicates")
			}
			seen[k] = true
		}
		if f.fail != nil {
			if err := f.fail(call, reqs); err != nil {
				return nil, err
			}
		}
		n := 0
		if f.unprocessed != nil {
			n = min(f.unprocessed(call, len(reqs)), len(reqs))
		}
		for _, r := range reqs[:len(reqs)-n] {
			f.items[reqKey(r)] = r.PutRequest.Item
		}
		if n > 0 {
			out.UnprocessedItems[table] = reqs[len(reqs)-n:]
		}
	}
	return out, nil
}

// fakeS3 is an in-memory bucket behind PutObject.
type fakeS3 struct {
	mu      sync.Mutex
	objects map[string][]byte
	puts    int
	fail    func(key string) error
}

func newFakeS3() *fakeS3 { return &fakeS3{objects: map[string][]byte{}} }

func (f *fakeS3) PutObject(ctx context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	body, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.puts++
	if f.fail != nil {
		if err := f.fail(*in.Key); err != nil {
			return nil, err
		}
	}
	f.objects[*in.Key] = body
	return &s3.PutObjectOutput{}, nil
}

// rows reads back every Parquet row in the bucket, sorted by sequence.
func (f *fakeS3) rows(t *testing.T) []rewind.ParquetRow {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	var all []rewind.ParquetRow
	for key, body := range f.objects {
		rows, err := parquet.Read[rewind.ParquetRow](bytes.NewReader(body), int64(len(body)))
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		all = append(all, rows...)
	}
	sort.Slice(all, func(i, j int) bool {
		return rewind.CompareSequenceNumbers(all[i].SequenceNumber, all[j].SequenceNumber) < 0
	})
	return all
}

const testARN = "arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-11-20T10:00:00.000"

// genRecord is one stream record to put in a test payload.
type genRecord struct {
	ID, Name   string
	Seq        int
	Time       time.Time
	Tenant     string
	Key        int
	Old, New   map[string]any
	TTLExpired bool
}

func av(v any) map[string]any {
	switch x := v.(type) {
	case string:
		return map[string]any{"S": x}
	case int:
		return map[string]any{"N": fmt.Sprint(x)}
	case []byte:
		return map[string]any{"B": base64.StdEncoding.EncodeToString(x)}
	case bool:
		return map[string]any{"BOOL": x}
	}
	panic(fmt.Sprintf("av %T", v))
}

func image(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := map[string]any{}
	for k, v := range m {
		out[k] = av(v)
	}
	return out
}

// payload builds a Lambda invocation payload in the event source mapping's
// format.
func payload(recs []genRecord) []byte {
	var out []map[string]any
	for _, r := range recs {
		keys := map[string]any{"pk": av(r.Tenant), "sk": av(fmt.Sprintf("item#%d", r.Key))}
		ddb := map[string]any{
			"ApproximateCreationDateTime": r.Time.Unix(),
			"Keys":                        keys,
			"SequenceNumber":              fmt.Sprintf("%021d", r.Seq),
			"SizeBytes":                   100,
			"StreamViewType":              "NEW_AND_OLD_IMAGES",
		}
		if r.Old != nil {
			ddb["OldImage"] = image(r.Old)
		}
		if r.New != nil {
			ddb["NewImage"] = image(r.New)
		}
		rec := map[string]any{
			"eventID": r.ID, "eventName": r.Name, "eventVersion": "1.1", "eventSource": "aws:dynamodb",
			"awsRegion": "us-east-1", "dynamodb": ddb, "eventSourceARN": testARN,
		}
		if r.TTLExpired {
			rec["userIdentity"] = map[string]any{"type": "Service", "principalId": "dynamodb.amazonaws.com"}
		}
		out = append(out, rec)
	}
	b, err := json.Marshal(map[string]any{"Records": out})
	if err != nil {
		panic(err)
	}
	return b
}

// genRecords makes n records over several tenants and items, starting at
// t0, a few seconds apart, so they may span hours.
func genRecords(n int, t0 time.Time, step time.Duration, imageBytes int) []genRecord {
	rng := rand.New(rand.NewPCG(1, uint64(n)))
	state := map[int]map[string]any{}
	var recs []genRecord
	for i := 0; i < n; i++ {
		k := rng.IntN(n/3 + 1)
		tenant := fmt.Sprintf("t%d", k%5)
		cur := state[k]
		r := genRecord{ID: fmt.Sprintf("ev-%06d", i), Seq: 1000 + i, Time: t0.Add(time.Duration(i) * step), Tenant: tenant, Key: k}
		next := map[string]any{"pk": tenant, "sk": fmt.Sprintf("item#%d", k), "n": i, "pad": strings.Repeat("x", imageBytes), "blob": []byte{byte(i), 0, 255}}
		switch {
		case cur == nil:
			r.Name, r.New = "INSERT", next
			state[k] = next
		case rng.IntN(4) == 0:
			r.Name, r.Old = "REMOVE", cur
			r.TTLExpired = rng.IntN(2) == 0
			delete(state, k)
		default:
			r.Name, r.Old, r.New = "MODIFY", cur, next
			state[k] = next
		}
		recs = append(recs, r)
	}
	return recs
}

func newTestHandler(t testing.TB, ddb BatchWriter, s3c ObjectPutter, mutate func(*Config)) *Handler {
	t.Helper()
	cfg := Config{AuditTable: "audit", Bucket: "capture", SafetyMargin: 50 * time.Millisecond}
	if mutate != nil {
		mutate(&cfg)
	}
	h, err := New(cfg, ddb, s3c, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	h.audit.baseDelay = time.Millisecond
	h.audit.maxDelay = 5 * time.Millisecond
	return h
}

func invoke(t *testing.T, h *Handler, ctx context.Context, p []byte) events.DynamoDBEventResponse {
	t.Helper()
	out, err := h.Invoke(ctx, p)
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	var resp events.DynamoDBEventResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("response %s: %v", out, err)
	}
	return resp
}

// checkStored asserts that the audit table and the bucket hold exactly the
// records, once each.
func checkStored(t *testing.T, recs []genRecord, audit *fakeAudit, bucket *fakeS3) {
	t.Helper()
	rows := bucket.rows(t)
	if len(rows) != len(recs) {
		t.Fatalf("parquet holds %d rows, want %d", len(rows), len(recs))
	}
	if len(audit.items) != len(recs) {
		t.Fatalf("audit table holds %d items, want %d", len(audit.items), len(recs))
	}
	byID := map[string]map[string]types.AttributeValue{}
	for _, it := range audit.items {
		byID[it["eventId"].(*types.AttributeValueMemberS).Value] = it
	}
	for i, r := range recs {
		row := rows[i]
		if row.EventID != r.ID || row.Action != r.Name || row.Tenant != r.Tenant || row.TTLExpiry != (r.TTLExpired && r.Name == "REMOVE") {
			t.Fatalf("row %d = %s %s %s ttl=%v, want %s %s %s", i, row.EventID, row.Action, row.Tenant, row.TTLExpiry, r.ID, r.Name, r.Tenant)
		}
		if got, want := time.UnixMicro(row.EventTime), r.Time; !got.Equal(want) {
			t.Fatalf("row %d time %v, want %v", i, got, want)
		}
		ev, err := row.ChangeEvent()
		if err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
		for _, im := range []struct {
			got  rewind.Image
			want map[string]any
		}{{ev.OldImage, r.Old}, {ev.NewImage, r.New}} {
			if (im.got == nil) != (im.want == nil) {
				t.Fatalf("row %d: image presence differs: %s vs %v", i, im.got, im.want)
			}
			if im.want == nil {
				continue
			}
			wantJSON, _ := json.Marshal(image(im.want))
			wantItem, _ := rewind.ParseItem(wantJSON)
			gotItem, err := im.got.Item()
			if err != nil || !rewind.EqualItems(gotItem, wantItem) {
				t.Fatalf("row %d: image %s, want %s (%v)", i, im.got, wantJSON, err)
			}
		}
		it := byID[r.ID]
		if it == nil {
			t.Fatalf("no audit item for %s", r.ID)
		}
		if it["action"].(*types.AttributeValueMemberS).Value != r.Name {
			t.Fatalf("audit item %s action %v", r.ID, it["action"])
		}
	}
}

func TestHandlerStoresEveryRecordOnce(t *testing.T) {
	audit, bucket := newFakeAudit(), newFakeS3()
	h := newTestHandler(t, audit, bucket, nil)
	t0 := time.Date(2026, 11, 20, 9, 58, 0, 0, time.UTC)
	recs := genRecords(300, t0, time.Second, 50) // spans 09:58 to 10:03
	p := payload(recs)
	resp := invoke(t, h, context.Background(), p)
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures %v", resp.BatchItemFailures)
	}
	checkStored(t, recs, audit, bucket)
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range bucket.objects {
			if !yield(k) {
				return
			}
		}
	})
	want := []string{
		"changes/table=orders/dt=2026-11-20/hour=09/2026-11-20T10-00-00-000-000000000000000001000-000000000000000001119.parquet",
		"changes/table=orders/dt=2026-11-20/hour=10/2026-11-20T10-00-00-000-000000000000000001120-000000000000000001299.parquet",
	}
	if !slices.Equal(keys, want) {
		t.Fatalf("objects %v, want %v (one per hour partition)", keys, want)
	}

	// Redelivery of the same batch changes nothing: same audit keys, same
	// object keys.
	resp = invoke(t, h, context.Background(), p)
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures on redelivery %v", resp.BatchItemFailures)
	}
	checkStored(t, recs, audit, bucket)
	if len(bucket.objects) != 2 {
		t.Fatalf("redelivery made %d objects, want 2", len(bucket.objects))
	}
}

func TestHandlerAuditItemDesign(t *testing.T) {
	audit, bucket := newFakeAudit(), newFakeS3()
	h := newTestHandler(t, audit, bucket, func(c *Config) { c.TTLDays = 7; c.AuditShards = 4 })
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	recs := genRecords(200, t0, 10*time.Second, 20)
	invoke(t, h, context.Background(), payload(recs))
	parts := map[string]bool{}
	for _, p := range AuditPartitions("t1", t0, t0.Add(time.Hour), 4) {
		parts[p] = true
	}
	var fromTenant []string
	for _, it := range audit.items {
		pk := it["pk"].(*types.AttributeValueMemberS).Value
		sk := it["sk"].(*types.AttributeValueMemberS).Value
		et, _ := time.Parse(time.RFC3339Nano, it["eventTime"].(*types.AttributeValueMemberS).Value)
		exp := it["expiresAt"].(*types.AttributeValueMemberN).Value
		if want := fmt.Sprint(et.Add(7 * 24 * time.Hour).Unix()); exp != want {
			t.Fatalf("expiresAt %s, want %s", exp, want)
		}
		if !strings.HasPrefix(sk, AuditSortKeyPrefix(et)) {
			t.Fatalf("sk %s does not start with the event time", sk)
		}
		if it["tenant"].(*types.AttributeValueMemberS).Value == "t1" && et.Before(t0.Add(time.Hour)) {
			if !parts[pk] {
				t.Fatalf("t1 item in partition %s, which AuditPartitions does not list", pk)
			}
			fromTenant = append(fromTenant, it["eventId"].(*types.AttributeValueMemberS).Value)
		}
		if _, ok := it["item"]; !ok {
			t.Fatal("audit item has no item-history key")
		}
		if z, ok := it["newImage"].(*types.AttributeValueMemberB); ok {
			raw, err := snappy.Decode(nil, z.Value)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := rewind.ParseItem(raw); err != nil {
				t.Fatalf("newImage does not decompress to DynamoDB JSON: %v", err)
			}
		}
	}
	want := 0
	for _, r := range recs {
		if r.Tenant == "t1" && r.Time.Before(t0.Add(time.Hour)) {
			want++
		}
	}
	if len(fromTenant) != want || want == 0 {
		t.Fatalf("tenant t1 has %d items in its partitions, want %d", len(fromTenant), want)
	}
	// No hot partition: a tenant-hour is spread over all 4 shards.
	used := map[string]bool{}
	for _, it := range audit.items {
		used[it["pk"].(*types.AttributeValueMemberS).Value] = true
	}
	for _, tenant := range []string{"t0", "t1"} {
		for _, p := range AuditPartitions(tenant, t0, t0.Add(time.Minute), 4) {
			if !used[p] {
				t.Errorf("partition %s unused: shards do not spread", p)
			}
		}
	}
}

func TestHandlerRetriesUnprocessedItems(t *testing.T) {
	audit, bucket := newFakeAudit(), newFakeS3()
	// The first 10 calls hand back most of their requests.
	audit.unprocessed = func(call, n int) int {
		if call <= 10 {
			return n - 1
		}
		return 0
	}
	h := newTestHandler(t, audit, bucket, nil)
	recs := genRecords(120, time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC), time.Second, 10)
	resp := invoke(t, h, context.Background(), payload(recs))
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures %v", resp.BatchItemFailures)
	}
	checkStored(t, recs, audit, bucket)
	if audit.calls <= 5 {
		t.Fatalf("only %d calls: unprocessed items were not retried", audit.calls)
	}
}

func TestHandlerS3FailureReportsAndRetryCompletes(t *testing.T) {
	audit, bucket := newFakeAudit(), newFakeS3()
	failing := true
	bucket.fail = func(key string) error {
		if failing && strings.Contains(key, "hour=10") {
			return &smithy.GenericAPIError{Code: "SlowDown", Message: "Please reduce your request rate."}
		}
		return nil
	}
	h := newTestHandler(t, audit, bucket, nil)
	t0 := time.Date(2026, 11, 20, 9, 59, 0, 0, time.UTC)
	recs := genRecords(120, t0, time.Second, 10) // 60 in hour 09, 60 in hour 10
	resp := invoke(t, h, context.Background(), payload(recs))
	want := []events.DynamoDBBatchItemFailure{{ItemIdentifier: fmt.Sprintf("%021d", recs[60].Seq)}}
	if !slices.Equal(resp.BatchItemFailures, want) {
		t.Fatalf("failures %v, want %v (the first record not in S3)", resp.BatchItemFailures, want)
	}
	// Lambda redelivers from the failed record on.
	failing = false
	resp = invoke(t, h, context.Background(), payload(recs[60:]))
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures on retry %v", resp.BatchItemFailures)
	}
	checkStored(t, recs, audit, bucket)
}

func TestHandlerAuditErrorReportsFirstUnstoredRecord(t *testing.T) {
	audit, bucket := newFakeAudit(), newFakeS3()
	// Every request holding ev-000060 fails with a non-retryable error.
	audit.fail = func(call int, reqs []types.WriteRequest) error {
		for _, r := range reqs {
			if r.PutRequest.Item["eventId"].(*types.AttributeValueMemberS).Value == "ev-000060" {
				return &smithy.GenericAPIError{Code: "ValidationException", Message: "Item size has exceeded the maximum allowed size"}
			}
		}
		return nil
	}
	h := newTestHandler(t, audit, bucket, nil)
	recs := genRecords(100, time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC), time.Second, 10)
	resp := invoke(t, h, context.Background(), payload(recs))
	// Chunks are 25 requests: ev-000050..74 is the failed chunk.
	want := []events.DynamoDBBatchItemFailure{{ItemIdentifier: fmt.Sprintf("%021d", recs[50].Seq)}}
	if !slices.Equal(resp.BatchItemFailures, want) {
		t.Fatalf("failures %v, want %v", resp.BatchItemFailures, want)
	}
	rows := bucket.rows(t)
	if len(rows) != 50 {
		t.Fatalf("%d rows in parquet, want the 50 stored before the failure", len(rows))
	}
}

func TestHandlerStopsBeforeDeadline(t *testing.T) {
	audit, bucket := newFakeAudit(), newFakeS3()
	audit.fail = func(call int, reqs []types.WriteRequest) error {
		return &smithy.GenericAPIError{Code: "ProvisionedThroughputExceededException", Message: "throttled"}
	}
	h := newTestHandler(t, audit, bucket, func(c *Config) { c.SafetyMargin = 300 * time.Millisecond })
	recs := genRecords(40, time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC), time.Second, 10)
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	start := time.Now()
	resp := invoke(t, h, ctx, payload(recs))
	// What matters is answering before the invocation's deadline, so
	// Lambda gets the failures instead of a timeout.
	if ctx.Err() != nil {
		t.Fatalf("handler returned after %v, past the invocation deadline", time.Since(start))
	}
	want := []events.DynamoDBBatchItemFailure{{ItemIdentifier: fmt.Sprintf("%021d", recs[0].Seq)}}
	if !slices.Equal(resp.BatchItemFailures, want) {
		t.Fatalf("failures %v, want %v", resp.BatchItemFailures, want)
	}
	if audit.calls < 2 {
		t.Fatalf("%d calls: throttling was not retried", audit.calls)
	}
}

func TestHandlerPoisonRecordDoesNotBlock(t *testing.T) {
	audit, bucket := newFakeAudit(), newFakeS3()
	h := newTestHandler(t, audit, bucket, nil)
	p := []byte(strings.Replace(string(payload(genRecords(3, time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC), time.Second, 5))),
		`"NewImage":{`, `"NewImage":{"bad":{"B":null},`, 1))
	resp := invoke(t, h, context.Background(), p)
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("a poison record blocked the batch: %v", resp.BatchItemFailures)
	}
	rows := bucket.rows(t)
	if len(rows) != 3 || len(rows[0].DecodeError) == 0 || len(rows[0].RawRecord) == 0 || len(rows[1].DecodeError) != 0 {
		t.Fatalf("rows: %d, first error %q", len(rows), rows[0].DecodeError)
	}
	if len(audit.items) != 3 {
		t.Fatalf("%d audit items, want 3", len(audit.items))
	}
}

func TestConfigFromEnv(t *testing.T) {
	env := map[string]string{"REWIND_AUDIT_TABLE": "a", "REWIND_BUCKET": "b", "REWIND_TENANT_REGEX": "^T#([^#]+)"}
	cfg, err := ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Prefix != "changes" || cfg.TTLDays != 35 || cfg.Images != ImagesBoth || cfg.Compression != "zstd" || cfg.Tenant.Attribute != "pk" {
		t.Fatalf("defaults not applied: %+v", cfg)
	}
	for k, v := range map[string]string{
		"REWIND_TTL_DAYS": "36", "REWIND_IMAGES": "some", "REWIND_COMPRESSION": "lzma",
		"REWIND_TENANT_REGEX": "no-group", "REWIND_AUDIT_TABLE": "", "REWIND_PREFIX": "/x",
	} {
		bad := map[string]string{}
		for a, b := range env {
			bad[a] = b
		}
		bad[k] = v
		if _, err := ConfigFromEnv(func(s string) string { return bad[s] }); err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%q: error %v, want one naming %s", k, v, err, k)
		}
	}
}
