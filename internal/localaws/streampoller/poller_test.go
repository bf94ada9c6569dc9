package streampoller_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/ddbrewind/rewind/internal/localaws"
	"github.com/ddbrewind/rewind/internal/localaws/streampoller"
)

// createStreamTable creates a table with key pk (S) and sk (N) and a
// NEW_AND_OLD_IMAGES stream, and returns the stream ARN.
func createStreamTable(t *testing.T, env *localaws.DynamoDBEnv, name string) string {
	t.Helper()
	out, err := env.DynamoDB.CreateTable(t.Context(), &dynamodb.CreateTableInput{
		TableName: aws.String(name),
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String("sk"), AttributeType: types.ScalarAttributeTypeN},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String("sk"), KeyType: types.KeyTypeRange},
		},
		BillingMode: types.BillingModePayPerRequest,
		StreamSpecification: &types.StreamSpecification{
			StreamEnabled:  aws.Bool(true),
			StreamViewType: types.StreamViewTypeNewAndOldImages,
		},
	})
	if err != nil {
		t.Fatalf("CreateTable %s: %v", name, err)
	}
	return aws.ToString(out.TableDescription.LatestStreamArn)
}

func put(t *testing.T, env *localaws.DynamoDBEnv, table, pk string, sk int, v string) {
	t.Helper()
	_, err := env.DynamoDB.PutItem(t.Context(), &dynamodb.PutItemInput{
		TableName: aws.String(table),
		Item: map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: pk},
			"sk": &types.AttributeValueMemberN{Value: strconv.Itoa(sk)},
			"v":  &types.AttributeValueMemberS{Value: v},
		},
	})
	if err != nil {
		t.Fatalf("PutItem: %v", err)
	}
}

// recorder is an Invoker that decodes every payload into the aws-lambda-go
// event type, as a Go handler would, and answers with respond.
type recorder struct {
	mu      sync.Mutex
	events  []events.DynamoDBEvent
	respond func(n int, ev events.DynamoDBEvent) ([]byte, error)
}

func (r *recorder) Invoke(_ context.Context, payload []byte) ([]byte, error) {
	var ev events.DynamoDBEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, fmt.Errorf("payload does not decode as events.DynamoDBEvent: %v", err)
	}
	r.mu.Lock()
	r.events = append(r.events, ev)
	n := len(r.events)
	r.mu.Unlock()
	if r.respond != nil {
		return r.respond(n, ev)
	}
	return []byte(`{"batchItemFailures":[]}`), nil
}

// records returns every record received, in order, retries included.
func (r *recorder) records() []events.DynamoDBEventRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []events.DynamoDBEventRecord
	for _, ev := range r.events {
		out = append(out, ev.Records...)
	}
	return out
}

func seqNum(t *testing.T, r events.DynamoDBEventRecord) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(r.Change.SequenceNumber, 10, 64)
	if err != nil {
		t.Fatalf("sequence number %q: %v", r.Change.SequenceNumber, err)
	}
	return n
}

func TestPollerDeliversStreamAsLambdaEvents(t *testing.T) {
	env := localaws.DynamoDBForTest(t)
	ctx := t.Context()
	arn := createStreamTable(t, env, "events")

	put(t, env, "events", "t1#a", 1, "one")
	put(t, env, "events", "t1#a", 2, "two")
	put(t, env, "events", "t2#b", 1, "three")
	put(t, env, "events", "t1#a", 1, "one-updated")
	if _, err := env.DynamoDB.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName: aws.String("events"),
		Key: map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: "t1#a"},
			"sk": &types.AttributeValueMemberN{Value: "2"},
		},
	}); err != nil {
		t.Fatal(err)
	}

	rec := &recorder{}
	p, err := streampoller.New(streampoller.Config{
		StreamARN: arn, Streams: env.Streams, Invoker: rec, BatchSize: 2, Logf: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	stats, err := p.PollOnce(ctx)
	if err != nil {
		t.Fatalf("PollOnce: %v", err)
	}
	if stats.Delivered != 5 || stats.Invocations != 3 || stats.Retries != 0 {
		t.Errorf("stats %+v, want 5 delivered in 3 invocations", stats)
	}
	for i, ev := range rec.events {
		if len(ev.Records) > 2 {
			t.Errorf("invocation %d has %d records, BatchSize is 2", i, len(ev.Records))
		}
	}

	got := rec.records()
	want := []struct {
		name     string
		pk, sk   string
		old, new string // v in the images; "" when the image is absent
	}{
		{"INSERT", "t1#a", "1", "", "one"},
		{"INSERT", "t1#a", "2", "", "two"},
		{"INSERT", "t2#b", "1", "", "three"},
		{"MODIFY", "t1#a", "1", "one", "one-updated"},
		{"REMOVE", "t1#a", "2", "two", ""},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	var prev uint64
	for i, w := range want {
		r := got[i]
		if r.EventName != w.name || r.Change.Keys["pk"].String() != w.pk || r.Change.Keys["sk"].Number() != w.sk {
			t.Errorf("record %d: %s %v, want %s pk=%s sk=%s", i, r.EventName, r.Change.Keys, w.name, w.pk, w.sk)
		}
		image := func(im map[string]events.DynamoDBAttributeValue) string {
			if im == nil {
				return ""
			}
			return im["v"].String()
		}
		if image(r.Change.OldImage) != w.old || image(r.Change.NewImage) != w.new {
			t.Errorf("record %d: images old %v new %v, want v=%q and v=%q", i, r.Change.OldImage, r.Change.NewImage, w.old, w.new)
		}
		if r.EventSourceArn != arn || r.AWSRegion != "ddblocal" || r.EventSource != "aws:dynamodb" || r.EventVersion != "1.1" {
			t.Errorf("record %d: source %q region %q eventSource %q version %q", i, r.EventSourceArn, r.AWSRegion, r.EventSource, r.EventVersion)
		}
		if r.Change.StreamViewType != "NEW_AND_OLD_IMAGES" || r.Change.SizeBytes <= 0 || r.Change.ApproximateCreationDateTime.IsZero() {
			t.Errorf("record %d: view %q size %d time %v", i, r.Change.StreamViewType, r.Change.SizeBytes, r.Change.ApproximateCreationDateTime)
		}
		if r.UserIdentity != nil {
			t.Errorf("record %d: userIdentity %+v on a user's write", i, r.UserIdentity)
		}
		if n := seqNum(t, r); n <= prev {
			t.Errorf("record %d: sequence number %d not above %d", i, n, prev)
		} else {
			prev = n
		}
	}

	// Nothing new: no invocation. Then only the new record.
	if stats, err := p.PollOnce(ctx); err != nil || stats.Invocations != 0 {
		t.Errorf("second PollOnce: %+v %v, want no invocations", stats, err)
	}
	put(t, env, "events", "t3#c", 9, "late")
	if stats, err := p.PollOnce(ctx); err != nil || stats.Delivered != 1 {
		t.Errorf("third PollOnce: %+v %v, want 1 delivered", stats, err)
	}
	if got := rec.records(); got[len(got)-1].Change.Keys["pk"].String() != "t3#c" {
		t.Errorf("last record %v, want t3#c", got[len(got)-1].Change.Keys)
	}
	if n := len(p.Payloads()); n != 4 {
		t.Errorf("Payloads: %d, want 4", n)
	}
}

func TestPollerRetriesFromFirstBatchItemFailure(t *testing.T) {
	env := localaws.DynamoDBForTest(t)
	arn := createStreamTable(t, env, "events")
	for i := range 6 {
		put(t, env, "events", "p", i, "v")
	}

	// Fail records sk=4 and sk=2 once, the first time they are seen: the
	// poller must resend from sk=2, the lower sequence number.
	failed := map[string]bool{}
	rec := &recorder{}
	rec.respond = func(_ int, ev events.DynamoDBEvent) ([]byte, error) {
		var ids []string
		for _, r := range ev.Records {
			sk := r.Change.Keys["sk"].Number()
			if (sk == "4" || sk == "2") && !failed[sk] {
				failed[sk] = true
				ids = append(ids, r.Change.SequenceNumber)
			}
		}
		slices.Reverse(ids) // the order of the list must not matter
		resp := map[string][]map[string]string{"batchItemFailures": {}}
		for _, id := range ids {
			resp["batchItemFailures"] = append(resp["batchItemFailures"], map[string]string{"itemIdentifier": id})
		}
		return json.Marshal(resp)
	}
	p, err := streampoller.New(streampoller.Config{StreamARN: arn, Streams: env.Streams, Invoker: rec, BatchSize: 10, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	stats, err := p.PollOnce(t.Context())
	if err != nil {
		t.Fatalf("PollOnce: %v", err)
	}
	var sks []string
	for _, r := range rec.records() {
		sks = append(sks, r.Change.Keys["sk"].Number())
	}
	// First batch 0..5 fails at 2 (and 4); the retry resends 2..5, where 4
	// no longer fails.
	if want := []string{"0", "1", "2", "3", "4", "5", "2", "3", "4", "5"}; !slices.Equal(sks, want) {
		t.Errorf("records sent %v, want %v", sks, want)
	}
	if stats.Delivered != 6 || stats.Retries != 1 || stats.Invocations != 2 {
		t.Errorf("stats %+v, want 6 delivered, 2 invocations, 1 retry", stats)
	}
	invs := p.Invocations()
	if invs[1].Attempt != 2 || invs[1].Records != 4 {
		t.Errorf("retry invocation: attempt %d records %d, want 2 and 4", invs[1].Attempt, invs[1].Records)
	}
}

var errBoom = errors.New("boom")

func TestPollerRetriesWholeBatchOnFunctionError(t *testing.T) {
	env := localaws.DynamoDBForTest(t)
	arn := createStreamTable(t, env, "events")
	for i := range 3 {
		put(t, env, "events", "p", i, "v")
	}
	rec := &recorder{respond: func(n int, _ events.DynamoDBEvent) ([]byte, error) {
		if n == 1 {
			return nil, errBoom
		}
		return nil, nil
	}}
	p, err := streampoller.New(streampoller.Config{StreamARN: arn, Streams: env.Streams, Invoker: rec})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.PollOnce(t.Context()); err != nil {
		t.Fatalf("PollOnce: %v", err)
	}
	if n := len(rec.records()); n != 6 {
		t.Errorf("%d records sent, want 3 twice", n)
	}
	if invs := p.Invocations(); len(invs) != 2 || invs[0].Err == nil || invs[1].Attempt != 2 {
		t.Errorf("invocations %+v", invs)
	}
}

func TestPollerWrapsFunctionErrorWhenGivingUp(t *testing.T) {
	env := localaws.DynamoDBForTest(t)
	arn := createStreamTable(t, env, "events")
	put(t, env, "events", "p", 1, "v")
	rec := &recorder{respond: func(int, events.DynamoDBEvent) ([]byte, error) { return nil, errBoom }}
	p, err := streampoller.New(streampoller.Config{StreamARN: arn, Streams: env.Streams, Invoker: rec, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.PollOnce(t.Context())
	if !errors.Is(err, streampoller.ErrRetriesExhausted) || !errors.Is(err, errBoom) {
		t.Fatalf("PollOnce: %v, want ErrRetriesExhausted wrapping the function's error", err)
	}
	if n := len(rec.records()); n != 1 {
		t.Errorf("%d records sent, want 1: MaxRetries -1 means no retries", n)
	}
}

func TestPollerGivesUpAfterMaxRetries(t *testing.T) {
	env := localaws.DynamoDBForTest(t)
	arn := createStreamTable(t, env, "events")
	for i := range 4 {
		put(t, env, "events", "p", i, "v")
	}
	// sk=1 always fails; everything else succeeds.
	rec := &recorder{respond: func(_ int, ev events.DynamoDBEvent) ([]byte, error) {
		for _, r := range ev.Records {
			if r.Change.Keys["sk"].Number() == "1" {
				return []byte(`{"batchItemFailures":[{"itemIdentifier":"` + r.Change.SequenceNumber + `"}]}`), nil
			}
		}
		return []byte(`{}`), nil
	}}
	p, err := streampoller.New(streampoller.Config{StreamARN: arn, Streams: env.Streams, Invoker: rec, BatchSize: 2, MaxRetries: 2})
	if err != nil {
		t.Fatal(err)
	}
	stats, err := p.PollOnce(t.Context())
	if !errors.Is(err, streampoller.ErrRetriesExhausted) {
		t.Fatalf("PollOnce: %v, want ErrRetriesExhausted", err)
	}
	var sks []string
	for _, r := range rec.records() {
		sks = append(sks, r.Change.Keys["sk"].Number())
	}
	// [0 1]: 0 done, retry from 1 as [1 2] twice (MaxRetries 2), give up
	// on [1 2]; then [3].
	if want := []string{"0", "1", "1", "2", "1", "2", "3"}; !slices.Equal(sks, want) {
		t.Errorf("records sent %v, want %v", sks, want)
	}
	f := p.Failures()
	if len(f) != 1 || f[0].Records != 2 || f[0].Attempts != 3 {
		t.Errorf("failures %v, want one of 2 records after 3 attempts", f)
	}
	if stats.Delivered != 2 || stats.Discarded != 2 {
		t.Errorf("stats %+v, want 2 delivered and 2 discarded", stats)
	}
	if f[0].Err == nil || !strings.Contains(err.Error(), "batchItemFailures") {
		t.Errorf("error %v does not say why the batch failed", err)
	}
	// The checkpoint moved past the discarded batch.
	if stats, err := p.PollOnce(t.Context()); err != nil || stats.Invocations != 0 {
		t.Errorf("second PollOnce: %+v %v", stats, err)
	}
}
