package streampoller_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
	"github.com/ddbrewind/rewind/internal/localaws/streampoller"
)

func TestAppendAttributeValueJSON(t *testing.T) {
	for _, tc := range []struct {
		av   types.AttributeValue
		want string
	}{
		{&types.AttributeValueMemberS{Value: "a<b>&\"c\"\n"}, `{"S":"a<b>&\"c\"\n"}`},
		{&types.AttributeValueMemberS{Value: ""}, `{"S":""}`},
		{&types.AttributeValueMemberN{Value: "-12345678901234567890123456789012345678"}, `{"N":"-12345678901234567890123456789012345678"}`},
		{&types.AttributeValueMemberN{Value: "0.5"}, `{"N":"0.5"}`},
		{&types.AttributeValueMemberB{Value: []byte{0, 1, 0xfe, 0xff}}, `{"B":"AAH+/w=="}`},
		{&types.AttributeValueMemberB{Value: []byte{}}, `{"B":""}`},
		{&types.AttributeValueMemberBOOL{Value: false}, `{"BOOL":false}`},
		{&types.AttributeValueMemberNULL{Value: true}, `{"NULL":true}`},
		{&types.AttributeValueMemberSS{Value: []string{"x", "y"}}, `{"SS":["x","y"]}`},
		{&types.AttributeValueMemberNS{Value: []string{"1", "-2.5"}}, `{"NS":["1","-2.5"]}`},
		{&types.AttributeValueMemberBS{Value: [][]byte{{1}, {2, 3}}}, `{"BS":["AQ==","AgM="]}`},
		{&types.AttributeValueMemberL{Value: []types.AttributeValue{
			&types.AttributeValueMemberS{Value: "x"},
			&types.AttributeValueMemberL{Value: []types.AttributeValue{}},
		}}, `{"L":[{"S":"x"},{"L":[]}]}`},
		{&types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
			"z": &types.AttributeValueMemberN{Value: "1"},
			"a": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{}},
		}}, `{"M":{"a":{"M":{}},"z":{"N":"1"}}}`},
		{nil, `{"NULL":true}`},
	} {
		got := string(streampoller.AppendAttributeValueJSON(nil, tc.av))
		if got != tc.want {
			t.Errorf("got %s, want %s", got, tc.want)
		}
		if !json.Valid([]byte(got)) {
			t.Errorf("%s is not valid JSON", got)
		}
	}
}

func TestEventJSONDecodesAsLambdaEvent(t *testing.T) {
	when := time.Date(2026, 11, 26, 0, 1, 0, 0, time.UTC)
	arn := "arn:aws:dynamodb:ddblocal:000000000000:table/t/stream/2026-11-26T00:00:00.000"
	recs := []types.Record{{
		AwsRegion:    aws.String("ddblocal"),
		EventID:      aws.String("e1"),
		EventName:    types.OperationTypeRemove,
		EventSource:  aws.String("aws:dynamodb"),
		EventVersion: aws.String("1.1"),
		UserIdentity: &types.Identity{Type: aws.String("Service"), PrincipalId: aws.String("dynamodb.amazonaws.com")},
		Dynamodb: &types.StreamRecord{
			ApproximateCreationDateTime: &when,
			Keys:                        map[string]types.AttributeValue{"pk": &types.AttributeValueMemberB{Value: []byte("k")}},
			OldImage: map[string]types.AttributeValue{
				"pk":  &types.AttributeValueMemberB{Value: []byte("k")},
				"ttl": &types.AttributeValueMemberN{Value: "1700000000"},
			},
			SequenceNumber: aws.String("000000000000000000042"),
			SizeBytes:      aws.Int64(21),
			StreamViewType: types.StreamViewTypeNewAndOldImages,
		},
	}}
	payload := streampoller.EventJSON(arn, recs)
	want := `{"Records":[{"eventID":"e1","eventName":"REMOVE","eventVersion":"1.1","eventSource":"aws:dynamodb",` +
		`"awsRegion":"ddblocal","dynamodb":{"ApproximateCreationDateTime":1795651260,"Keys":{"pk":{"B":"aw=="}},` +
		`"OldImage":{"pk":{"B":"aw=="},"ttl":{"N":"1700000000"}},"SequenceNumber":"000000000000000000042",` +
		`"SizeBytes":21,"StreamViewType":"NEW_AND_OLD_IMAGES"},"eventSourceARN":"` + arn + `",` +
		`"userIdentity":{"type":"Service","principalId":"dynamodb.amazonaws.com"}}]}`
	if string(payload) != want {
		t.Errorf("payload\n got %s\nwant %s", payload, want)
	}

	var ev events.DynamoDBEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		t.Fatalf("decode as events.DynamoDBEvent: %v", err)
	}
	r := ev.Records[0]
	if r.EventName != "REMOVE" || r.EventSourceArn != arn || r.UserIdentity == nil || r.UserIdentity.PrincipalID != "dynamodb.amazonaws.com" ||
		!r.Change.ApproximateCreationDateTime.Equal(when) || string(r.Change.Keys["pk"].Binary()) != "k" || r.Change.NewImage != nil {
		t.Errorf("decoded %+v", r)
	}

	// Sub-second times keep their fraction.
	ms := when.Add(1500 * time.Millisecond)
	recs[0].Dynamodb.ApproximateCreationDateTime = &ms
	if err := json.Unmarshal(streampoller.EventJSON(arn, recs), &ev); err != nil {
		t.Fatal(err)
	}
	if got := ev.Records[0].Change.ApproximateCreationDateTime; !got.Equal(ms) {
		t.Errorf("time %v, want %v", got.Time, ms)
	}
}

func TestFirstFailure(t *testing.T) {
	batch := []types.Record{rec("10"), rec("11"), rec("12")}
	for _, tc := range []struct {
		resp    string
		want    int
		wantErr bool
	}{
		{``, -1, false},
		{`null`, -1, false},
		{`"ok"`, -1, false},
		{`{}`, -1, false},
		{`{"batchItemFailures":null}`, -1, false},
		{`{"batchItemFailures":[]}`, -1, false},
		{`{"batchItemFailures":[{"itemIdentifier":"12"},{"itemIdentifier":"11"}]}`, 1, false},
		{`{"batchItemFailures":[{"itemIdentifier":"10"}]}`, 0, false},
		// Whole-batch failures.
		{`{"batchItemFailures":[{"itemIdentifier":""}]}`, 0, true},
		{`{"batchItemFailures":[{"itemIdentifier":null}]}`, 0, true},
		{`{"batchItemFailures":[{"ItemIdentifier":"11"}]}`, 0, true},
		{`{"batchItemFailures":[{"itemIdentifier":"99"}]}`, 0, true},
		{`{"batchItemFailures":[{"itemIdentifier":11}]}`, 0, true},
		{`{"batchItemFailures":"11"}`, 0, true},
		{`{"batchItemFailures":[`, 0, true},
		// Member names match exactly: this is not batchItemFailures.
		{`{"BatchItemFailures":[{"itemIdentifier":"11"}]}`, -1, false},
	} {
		got, err := streampoller.FirstFailure([]byte(tc.resp), batch)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("FirstFailure(%s) = %d, %v; want %d, error %v", tc.resp, got, err, tc.want, tc.wantErr)
		}
	}
}

func rec(seq string) types.Record {
	return types.Record{
		EventID:   aws.String("id" + seq),
		EventName: types.OperationTypeInsert,
		Dynamodb: &types.StreamRecord{
			Keys:           map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: seq}},
			SequenceNumber: aws.String(seq),
		},
	}
}

// fakeStreams serves shards from memory, a page of DescribeStream per
// shard and GetRecords pages of at most 2 records.
type fakeStreams struct {
	shards  []types.Shard
	records map[string][]types.Record
	calls   []string
}

func (f *fakeStreams) DescribeStream(_ context.Context, in *dynamodbstreams.DescribeStreamInput, _ ...func(*dynamodbstreams.Options)) (*dynamodbstreams.DescribeStreamOutput, error) {
	f.calls = append(f.calls, "DescribeStream "+aws.ToString(in.ExclusiveStartShardId))
	i := 0
	if in.ExclusiveStartShardId != nil {
		i = slices.IndexFunc(f.shards, func(s types.Shard) bool { return aws.ToString(s.ShardId) == *in.ExclusiveStartShardId }) + 1
	}
	d := &types.StreamDescription{Shards: f.shards[i : i+1]}
	if i+1 < len(f.shards) {
		d.LastEvaluatedShardId = f.shards[i].ShardId
	}
	return &dynamodbstreams.DescribeStreamOutput{StreamDescription: d}, nil
}

func (f *fakeStreams) GetShardIterator(_ context.Context, in *dynamodbstreams.GetShardIteratorInput, _ ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetShardIteratorOutput, error) {
	recs := f.records[*in.ShardId]
	pos := 0
	if in.ShardIteratorType == types.ShardIteratorTypeAfterSequenceNumber {
		pos = slices.IndexFunc(recs, func(r types.Record) bool { return *r.Dynamodb.SequenceNumber == *in.SequenceNumber }) + 1
	}
	return &dynamodbstreams.GetShardIteratorOutput{ShardIterator: aws.String(fmt.Sprintf("%s|%d", *in.ShardId, pos))}, nil
}

func (f *fakeStreams) GetRecords(_ context.Context, in *dynamodbstreams.GetRecordsInput, _ ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetRecordsOutput, error) {
	shard, posText, _ := strings.Cut(*in.ShardIterator, "|")
	pos, err := strconv.Atoi(posText)
	if err != nil {
		return nil, err
	}
	f.calls = append(f.calls, "GetRecords "+shard)
	recs := f.records[shard]
	end := min(pos+2, len(recs))
	out := &dynamodbstreams.GetRecordsOutput{Records: recs[pos:end]}
	closed := false
	for _, s := range f.shards {
		if *s.ShardId == shard {
			closed = s.SequenceNumberRange.EndingSequenceNumber != nil
		}
	}
	if end < len(recs) || !closed {
		out.NextShardIterator = aws.String(fmt.Sprintf("%s|%d", shard, end))
	}
	return out, nil
}

func TestPollerReadsParentShardsFirst(t *testing.T) {
	closed := &types.SequenceNumberRange{StartingSequenceNumber: aws.String("1"), EndingSequenceNumber: aws.String("3")}
	open := &types.SequenceNumberRange{StartingSequenceNumber: aws.String("4")}
	f := &fakeStreams{
		// Listed child first, so order in DescribeStream must not matter.
		shards: []types.Shard{
			{ShardId: aws.String("child"), ParentShardId: aws.String("parent"), SequenceNumberRange: open},
			{ShardId: aws.String("parent"), ParentShardId: aws.String("trimmed-grandparent"), SequenceNumberRange: closed},
		},
		records: map[string][]types.Record{
			"parent": {rec("1"), rec("2"), rec("3")},
			"child":  {rec("4"), rec("5")},
		},
	}
	var seen []string
	inv := streampoller.InvokerFunc(func(_ context.Context, payload []byte) ([]byte, error) {
		var ev events.DynamoDBEvent
		if err := json.Unmarshal(payload, &ev); err != nil {
			return nil, err
		}
		for _, r := range ev.Records {
			seen = append(seen, r.Change.SequenceNumber)
		}
		return nil, nil
	})
	p, err := streampoller.New(streampoller.Config{StreamARN: "arn", Streams: f, Invoker: inv})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.PollOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if want := []string{"1", "2", "3", "4", "5"}; !slices.Equal(seen, want) {
		t.Errorf("delivered %v, want %v", seen, want)
	}
	if !slices.Contains(f.calls, "DescribeStream child") {
		t.Errorf("DescribeStream not paginated: %v", f.calls)
	}

	// The closed parent is not read again; the open child is, from its
	// checkpoint.
	f.calls = nil
	f.records["child"] = append(f.records["child"], rec("6"))
	if _, err := p.PollOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if want := []string{"1", "2", "3", "4", "5", "6"}; !slices.Equal(seen, want) {
		t.Errorf("delivered %v, want %v", seen, want)
	}
	if slices.Contains(f.calls, "GetRecords parent") {
		t.Errorf("closed parent read again: %v", f.calls)
	}
}

func TestNewValidates(t *testing.T) {
	f := &fakeStreams{}
	inv := streampoller.InvokerFunc(func(context.Context, []byte) ([]byte, error) { return nil, nil })
	for _, cfg := range []streampoller.Config{
		{Streams: f, Invoker: inv},
		{StreamARN: "a", Invoker: inv},
		{StreamARN: "a", Streams: f},
		{StreamARN: "a", Streams: f, Invoker: inv, BatchSize: 10001},
	} {
		if _, err := streampoller.New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}
