// Package streampoller plays the part of a Lambda event source mapping for
// a DynamoDB stream: it reads the stream with the real DynamoDB Streams API
// and invokes a function with the same event payloads, batching, ordering
// and partial-batch-failure retries Lambda uses. Tests point it at
// DynamoDB Local and at the stream handler, in-process (any
// aws-lambda-go lambda.Handler) or as a bootstrap binary (lambdart).
//
// New builds a Poller; PollOnce delivers everything in the stream so far.
//
// # Retry exhaustion and the on-failure destination
//
// A batch that keeps failing is given up on after MaxRetries retries, or
// at once when its first record is older than MaxRecordAge, as a mapping's
// MaximumRetryAttempts and MaximumRecordAgeInSeconds do. With
// Config.Failures set, the poller then writes the failure record an event
// source mapping writes to an Amazon S3 on-failure destination: the key
// aws/lambda/<ESM UUID>/<shard ID>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<UUID> and
// the JSON document with requestContext, responseContext, version,
// timestamp, DDBStreamBatchInfo and the whole invocation payload, as
// "Retain discarded records for a DynamoDB event source in Lambda"
// (https://docs.aws.amazon.com/lambda/latest/dg/services-dynamodb-errors.html)
// documents them (see rewind.FailureRecord). A record that cannot be
// written stops the shard at the batch, to be retried by the next poll: the
// poller never moves past records it neither delivered nor recorded.
//
// Not modelled: BisectBatchOnFunctionError (deploy/template.yaml sets it;
// here a failing batch is retried whole, from the record the function
// named with ReportBatchItemFailures, so the failure record covers the
// whole remaining batch where Lambda's would cover a half after
// splitting), ParallelizationFactor above 1, batching windows and
// tumbling windows, and Lambda's retries with backoff (retries here are
// immediate).
package streampoller

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ddbrewind/rewind"
)

// Invoker runs a function on a payload and returns its response; a
// returned error is a function error. aws-lambda-go's lambda.Handler (for
// example lambda.NewHandler(handler)) and *lambdart.Runtime satisfy it.
type Invoker interface {
	Invoke(ctx context.Context, payload []byte) ([]byte, error)
}

// InvokerFunc adapts a function to Invoker.
type InvokerFunc func(ctx context.Context, payload []byte) ([]byte, error)

// Invoke calls f.
func (f InvokerFunc) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	return f(ctx, payload)
}

// StreamsAPI is the part of the DynamoDB Streams client the poller uses.
type StreamsAPI interface {
	DescribeStream(context.Context, *dynamodbstreams.DescribeStreamInput, ...func(*dynamodbstreams.Options)) (*dynamodbstreams.DescribeStreamOutput, error)
	GetShardIterator(context.Context, *dynamodbstreams.GetShardIteratorInput, ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetShardIteratorOutput, error)
	GetRecords(context.Context, *dynamodbstreams.GetRecordsInput, ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetRecordsOutput, error)
}

var _ StreamsAPI = (*dynamodbstreams.Client)(nil)

// ErrRetriesExhausted is returned (wrapped) by PollOnce when it gave up on
// a batch after MaxRetries retries, as an event source mapping with
// MaximumRetryAttempts does; Failures lists them. The error also wraps the
// last attempt's error, such as the function's.
var ErrRetriesExhausted = errors.New("batch failed after all retries")

// Config configures a Poller.
type Config struct {
	// StreamARN is the stream to read (DescribeTable's LatestStreamArn).
	// Required.
	StreamARN string
	// Streams is the DynamoDB Streams client. Required.
	Streams StreamsAPI
	// Invoker is the function to invoke. Required.
	Invoker Invoker
	// BatchSize is the most records per invocation, 1 to 10000.
	// Default 100, Lambda's default for DynamoDB streams.
	BatchSize int
	// MaxRetries is how many times a failing batch is retried before the
	// poller gives up on it and moves on. Default 3; negative means no
	// retries. (Lambda's default is to retry until the records expire,
	// which would hang a test.)
	MaxRetries int
	// IgnoreBatchItemFailures makes the poller ignore batchItemFailures in
	// responses, like a mapping without ReportBatchItemFailures in its
	// FunctionResponseTypes. By default they are honored.
	IgnoreBatchItemFailures bool
	// Logf, when set, receives a line per invocation and per retry; pass
	// t.Logf.
	Logf func(format string, args ...any)

	// Failures, when set, is the S3 on-failure destination: a failure
	// record is written to FailureBucket for each batch given up on.
	// Default nil: batches given up on are only in Failures().
	Failures ObjectPutter
	// FailureBucket is the destination bucket. Required with Failures.
	FailureBucket string
	// MappingUUID is the event source mapping's UUID, the second part of
	// failure record keys. Default a random UUID.
	MappingUUID string
	// FunctionARN is the requestContext.functionArn of failure records.
	// Default arn:aws:lambda:us-east-1:000000000000:function:streamhandler.
	FunctionARN string
	// MaxRecordAge is MaximumRecordAgeInSeconds: a batch whose first
	// record is older than this (by its ApproximateCreationDateTime) is
	// given up on without invoking the function. Default 0: no limit.
	MaxRecordAge time.Duration
	// Now is the clock for record ages and failure record times. Default
	// time.Now.
	Now func() time.Time
}

// ObjectPutter is the part of the S3 client the failure destination uses.
type ObjectPutter interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

var _ ObjectPutter = (*s3.Client)(nil)

// Invocation is one call of the function, kept for tests and fixtures.
type Invocation struct {
	ShardID string
	// Payload is the event sent; Response and Err what came back.
	Payload  []byte
	Response []byte
	Err      error
	// Records is the number of records in the batch, from FirstSequence
	// to LastSequence.
	Records       int
	FirstSequence string
	LastSequence  string
	// Attempt is 1 for the first time the first record is sent, 2 for its
	// first retry and so on.
	Attempt int
}

// BatchFailure is a batch the poller gave up on.
type BatchFailure struct {
	ShardID       string
	FirstSequence string
	LastSequence  string
	Records       int
	Attempts      int
	// Err says why the last attempt failed.
	Err error
	// Condition is requestContext.condition: RetryAttemptsExhausted or
	// RecordAgeExceeded.
	Condition string
	// Object is the key of the failure record written for it, "" without
	// Config.Failures.
	Object string
}

func (f BatchFailure) String() string {
	return fmt.Sprintf("%s, last: %v", f.batch(), f.Err)
}

func (f BatchFailure) batch() string {
	return fmt.Sprintf("shard %s records %s..%s (%d) failed %d times",
		f.ShardID, f.FirstSequence, f.LastSequence, f.Records, f.Attempts)
}

// Stats counts what one PollOnce did.
type Stats struct {
	// Delivered counts records the function accepted.
	Delivered int
	// Invocations counts calls of the function, Retries the calls that
	// resent records.
	Invocations int
	Retries     int
	// Discarded counts records given up on after MaxRetries.
	Discarded int
}

// Poller reads one stream and invokes one function. Its methods may be
// called from several goroutines, but polls run one at a time.
type Poller struct {
	cfg Config

	pollMu sync.Mutex
	shards map[string]*shardState

	mu          sync.Mutex
	invocations []Invocation
	failures    []BatchFailure
}

type shardState struct {
	// checkpoint is the sequence number of the last record handled
	// (delivered or discarded); empty before the first.
	checkpoint string
	// done is set once a closed shard has been read to its end.
	done bool
}

// New returns a Poller that starts at the trim horizon of every shard.
func New(cfg Config) (*Poller, error) {
	if cfg.StreamARN == "" {
		return nil, errors.New("streampoller: Config.StreamARN is empty")
	}
	if cfg.Streams == nil {
		return nil, errors.New("streampoller: Config.Streams is nil")
	}
	if cfg.Invoker == nil {
		return nil, errors.New("streampoller: Config.Invoker is nil")
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = 100
	}
	if cfg.BatchSize < 1 || cfg.BatchSize > 10000 {
		return nil, fmt.Errorf("streampoller: Config.BatchSize is %d; want 1 to 10000", cfg.BatchSize)
	}
	switch {
	case cfg.MaxRetries == 0:
		cfg.MaxRetries = 3
	case cfg.MaxRetries < 0:
		cfg.MaxRetries = 0
	}
	if cfg.Failures != nil && cfg.FailureBucket == "" {
		return nil, errors.New("streampoller: Config.FailureBucket is empty but Config.Failures is set")
	}
	if cfg.MappingUUID == "" {
		cfg.MappingUUID = newUUID()
	}
	if cfg.FunctionARN == "" {
		cfg.FunctionARN = "arn:aws:lambda:us-east-1:000000000000:function:streamhandler"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Poller{cfg: cfg, shards: map[string]*shardState{}}, nil
}

// Invocations returns every invocation so far, oldest first.
func (p *Poller) Invocations() []Invocation {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.invocations)
}

// Payloads returns the payload of every invocation so far, retries
// included, oldest first.
func (p *Poller) Payloads() [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([][]byte, len(p.invocations))
	for i, inv := range p.invocations {
		out[i] = inv.Payload
	}
	return out
}

// Failures returns the batches given up on so far.
func (p *Poller) Failures() []BatchFailure {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.failures)
}

// Run polls every interval until ctx is done or a poll fails; it returns
// the poll's error, or nil when ctx ends.
func (p *Poller) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := p.PollOnce(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// PollOnce delivers every record in the stream that was not delivered yet:
// each shard in order, a parent shard before its children, in batches of
// up to BatchSize records. It returns when every shard has been read to
// its current end. A batch that keeps failing is given up on after
// MaxRetries retries; PollOnce then carries on and finally returns an error
// wrapping ErrRetriesExhausted.
func (p *Poller) PollOnce(ctx context.Context) (Stats, error) {
	p.pollMu.Lock()
	defer p.pollMu.Unlock()

	shards, err := p.describeShards(ctx)
	if err != nil {
		return Stats{}, err
	}
	known := map[string]bool{}
	for _, s := range shards {
		known[aws.ToString(s.ShardId)] = true
		if p.shards[aws.ToString(s.ShardId)] == nil {
			p.shards[aws.ToString(s.ShardId)] = &shardState{}
		}
	}
	var stats Stats
	var failed []error
	for progress := true; progress; {
		progress = false
		for _, s := range shards {
			id := aws.ToString(s.ShardId)
			st := p.shards[id]
			if st.done {
				continue
			}
			// A child waits for its parent, unless the parent is gone
			// from the stream (trimmed) or was given up on.
			if parent := aws.ToString(s.ParentShardId); parent != "" && known[parent] && !p.shards[parent].done {
				continue
			}
			closed := s.SequenceNumberRange != nil && s.SequenceNumberRange.EndingSequenceNumber != nil
			if err := p.pollShard(ctx, id, closed, st, &stats); err != nil {
				if errors.Is(err, ErrRetriesExhausted) {
					failed = append(failed, err)
				} else {
					return stats, err
				}
			}
			if st.done {
				progress = true
			}
		}
	}
	if len(failed) > 0 {
		return stats, errors.Join(failed...)
	}
	return stats, nil
}

// describeShards lists all shards of the stream, following
// LastEvaluatedShardId.
func (p *Poller) describeShards(ctx context.Context) ([]types.Shard, error) {
	var shards []types.Shard
	var start *string
	for {
		out, err := p.cfg.Streams.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{
			StreamArn:             aws.String(p.cfg.StreamARN),
			ExclusiveStartShardId: start,
		})
		if err != nil {
			return nil, fmt.Errorf("streampoller: DescribeStream %s: %w", p.cfg.StreamARN, err)
		}
		if out.StreamDescription == nil {
			return nil, fmt.Errorf("streampoller: DescribeStream %s: no stream description", p.cfg.StreamARN)
		}
		shards = append(shards, out.StreamDescription.Shards...)
		start = out.StreamDescription.LastEvaluatedShardId
		if start == nil {
			return shards, nil
		}
	}
}

// maxEmptyReads bounds GetRecords calls that return nothing on a closed
// shard before the poller stops reading it for this poll.
const maxEmptyReads = 10

// pollShard delivers the shard's records after its checkpoint.
func (p *Poller) pollShard(ctx context.Context, shardID string, closed bool, st *shardState, stats *Stats) error {
	in := &dynamodbstreams.GetShardIteratorInput{
		StreamArn:         aws.String(p.cfg.StreamARN),
		ShardId:           aws.String(shardID),
		ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
	}
	if st.checkpoint != "" {
		in.ShardIteratorType = types.ShardIteratorTypeAfterSequenceNumber
		in.SequenceNumber = aws.String(st.checkpoint)
	}
	it, err := p.cfg.Streams.GetShardIterator(ctx, in)
	if err != nil {
		return fmt.Errorf("streampoller: GetShardIterator %s %s: %w", shardID, in.ShardIteratorType, err)
	}
	iter := it.ShardIterator

	var pending []types.Record
	attempts := 0 // failed invocations with pending[0] first in the batch
	var gaveUp error
	empty := 0
	for {
		// Read until a batch is full or the shard has nothing more now.
		for iter != nil && len(pending) < p.cfg.BatchSize {
			out, err := p.cfg.Streams.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: iter})
			if err != nil {
				return fmt.Errorf("streampoller: GetRecords %s: %w", shardID, err)
			}
			pending = append(pending, out.Records...)
			iter = out.NextShardIterator
			if len(out.Records) > 0 {
				empty = 0
				continue
			}
			// An open shard has nothing more for now; a closed one ends
			// when the iterator does, but may answer empty pages before.
			empty++
			if !closed || empty >= maxEmptyReads {
				break
			}
		}
		if len(pending) == 0 {
			break
		}
		batch := pending[:min(p.cfg.BatchSize, len(pending))]
		attempt := attempts + 1
		condition := "RetryAttemptsExhausted"
		var failedAt int
		var invErr error
		if age := p.age(batch[0]); p.cfg.MaxRecordAge > 0 && age > p.cfg.MaxRecordAge {
			// Lambda discards records past MaximumRecordAgeInSeconds
			// without invoking the function.
			condition = "RecordAgeExceeded"
			invErr = fmt.Errorf("record %s is %s old, past MaxRecordAge %s", seq(batch[0]), age.Round(time.Second), p.cfg.MaxRecordAge)
			attempts = p.cfg.MaxRetries
		} else {
			if attempt > 1 {
				stats.Retries++
			}
			stats.Invocations++
			failedAt, invErr = p.invoke(ctx, shardID, batch, attempt)
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		switch {
		case condition == "RecordAgeExceeded":
			attempts++
		case invErr == nil && failedAt < 0:
			stats.Delivered += len(batch)
			st.checkpoint = seq(batch[len(batch)-1])
			pending = pending[len(batch):]
			attempts = 0
			continue
		case invErr == nil && failedAt > 0:
			// Records before the first failure are done; retry from it.
			stats.Delivered += failedAt
			st.checkpoint = seq(batch[failedAt-1])
			pending = pending[failedAt:]
			attempts = 1
			invErr = fmt.Errorf("batchItemFailures from %s", seq(pending[0]))
		default:
			attempts++
			if invErr == nil {
				invErr = fmt.Errorf("batchItemFailures from %s (the first record)", seq(batch[0]))
			}
		}
		if attempts <= p.cfg.MaxRetries {
			p.logf("streampoller: %s: retry %d of %d from %s: %v", shardID, attempts, p.cfg.MaxRetries, seq(pending[0]), invErr)
			continue
		}
		// Give up on the batch that failed last, as Lambda does.
		batch = pending[:min(p.cfg.BatchSize, len(pending))]
		f := BatchFailure{
			ShardID:       shardID,
			FirstSequence: seq(batch[0]),
			LastSequence:  seq(batch[len(batch)-1]),
			Records:       len(batch),
			Attempts:      attempts,
			Err:           invErr,
			Condition:     condition,
		}
		if condition == "RecordAgeExceeded" {
			f.Attempts = attempt - 1
		}
		if p.cfg.Failures != nil {
			key, err := p.writeFailure(ctx, shardID, batch, f)
			if err != nil {
				// Nothing holds these records but the stream: stay on
				// them, as Lambda does when it cannot reach the
				// destination, and let the next poll try again.
				return errors.Join(gaveUp, fmt.Errorf("streampoller: %s: on-failure destination s3://%s: %w (the shard stays at %s)", f.batch(), p.cfg.FailureBucket, err, f.FirstSequence))
			}
			f.Object = key
		}
		p.logf("streampoller: giving up: %s", f)
		p.mu.Lock()
		p.failures = append(p.failures, f)
		p.mu.Unlock()
		// Wrap the last error too, so callers can errors.As it (for
		// example to a *lambdart.FunctionError).
		gaveUp = errors.Join(gaveUp, fmt.Errorf("streampoller: %w: %s, last: %w", ErrRetriesExhausted, f.batch(), invErr))
		stats.Discarded += len(batch)
		st.checkpoint = f.LastSequence
		pending = pending[len(batch):]
		attempts = 0
	}
	if iter == nil {
		st.done = true
	}
	return gaveUp
}

// age is how old r is by its ApproximateCreationDateTime; 0 without one.
func (p *Poller) age(r types.Record) time.Duration {
	if r.Dynamodb == nil || r.Dynamodb.ApproximateCreationDateTime == nil {
		return 0
	}
	return p.cfg.Now().Sub(*r.Dynamodb.ApproximateCreationDateTime)
}

// writeFailure writes the failure record of a batch given up on and
// returns its key.
func (p *Poller) writeFailure(ctx context.Context, shardID string, batch []types.Record, f BatchFailure) (string, error) {
	now := p.cfg.Now().UTC()
	var rec rewind.FailureRecord
	rec.RequestContext.RequestID = newUUID()
	rec.RequestContext.FunctionARN = p.cfg.FunctionARN
	rec.RequestContext.Condition = f.Condition
	rec.RequestContext.ApproximateInvokeCount = f.Attempts
	rec.ResponseContext.StatusCode = 200
	rec.ResponseContext.ExecutedVersion = "$LATEST"
	if f.Condition == "RetryAttemptsExhausted" {
		rec.ResponseContext.FunctionError = "Unhandled"
	}
	rec.Version = "1.0"
	rec.Timestamp = now.Format("2006-01-02T15:04:05.000Z")
	arrival := func(r types.Record) string {
		if r.Dynamodb == nil || r.Dynamodb.ApproximateCreationDateTime == nil {
			return ""
		}
		return r.Dynamodb.ApproximateCreationDateTime.UTC().Format("2006-01-02T15:04:05Z")
	}
	rec.BatchInfo = rewind.StreamBatchInfo{
		ShardID:                         shardID,
		StartSequenceNumber:             f.FirstSequence,
		EndSequenceNumber:               f.LastSequence,
		ApproximateArrivalOfFirstRecord: arrival(batch[0]),
		ApproximateArrivalOfLastRecord:  arrival(batch[len(batch)-1]),
		BatchSize:                       len(batch),
		StreamARN:                       p.cfg.StreamARN,
	}
	// The payload as a JSON string holding the event (see
	// rewind.FailureRecord.Event, which reads either form).
	payload, err := json.Marshal(string(EventJSON(p.cfg.StreamARN, batch)))
	if err != nil {
		return "", err
	}
	rec.Payload = payload
	body, err := json.Marshal(&rec)
	if err != nil {
		return "", err
	}
	key := rewind.FailureKey(p.cfg.MappingUUID, shardID, now, newUUID())
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := p.cfg.Failures.PutObject(pctx, &s3.PutObjectInput{
		Bucket:      aws.String(p.cfg.FailureBucket),
		Key:         aws.String(key),
		Body:        bytes.NewReader(body),
		ContentType: aws.String("application/json"),
	}); err != nil {
		return "", fmt.Errorf("PutObject %s: %w", key, err)
	}
	return key, nil
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func seq(r types.Record) string {
	if r.Dynamodb == nil {
		return ""
	}
	return aws.ToString(r.Dynamodb.SequenceNumber)
}

// invoke sends one batch and returns the index of the first record to
// retry (-1 when all succeeded) or the function's error.
func (p *Poller) invoke(ctx context.Context, shardID string, batch []types.Record, attempt int) (int, error) {
	payload := EventJSON(p.cfg.StreamARN, batch)
	resp, err := p.cfg.Invoker.Invoke(ctx, payload)
	inv := Invocation{
		ShardID:       shardID,
		Payload:       payload,
		Response:      resp,
		Err:           err,
		Records:       len(batch),
		FirstSequence: seq(batch[0]),
		LastSequence:  seq(batch[len(batch)-1]),
		Attempt:       attempt,
	}
	p.mu.Lock()
	p.invocations = append(p.invocations, inv)
	p.mu.Unlock()
	p.logf("streampoller: %s: invoked with %d records %s..%s (attempt %d): err=%v response=%.200s",
		shardID, len(batch), inv.FirstSequence, inv.LastSequence, attempt, err, resp)
	if err != nil {
		return 0, fmt.Errorf("function error: %w", err)
	}
	if p.cfg.IgnoreBatchItemFailures {
		return -1, nil
	}
	return FirstFailure(resp, batch)
}

// FirstFailure interprets a function's response to a batch as Lambda does
// with ReportBatchItemFailures: it returns the index in batch of the record
// to retry from (the lowest sequence number listed), or -1 when the batch
// succeeded.
//
// The batch succeeded when the response is empty, null, not an object, has
// no batchItemFailures or an empty or null list. It failed as a whole (the
// index is 0) when an entry's itemIdentifier is missing, null, empty, not a
// string or not the sequence number of a record in the batch. Member names
// are matched exactly, as Lambda does.
func FirstFailure(response []byte, batch []types.Record) (int, error) {
	trimmed := bytes.TrimSpace(response)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return -1, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &obj); err != nil {
		return 0, fmt.Errorf("response is not valid JSON: %v", err)
	}
	raw, ok := obj["batchItemFailures"]
	if !ok || string(raw) == "null" {
		return -1, nil
	}
	var items []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return 0, fmt.Errorf("batchItemFailures is not a list of objects: %s", raw)
	}
	lowest := -1
	for _, it := range items {
		var id string
		idRaw, ok := it["itemIdentifier"]
		if !ok || json.Unmarshal(idRaw, &id) != nil || id == "" {
			return 0, fmt.Errorf("batchItemFailures entry without an itemIdentifier string: %s", mustJSON(it))
		}
		i := slices.IndexFunc(batch, func(r types.Record) bool { return seq(r) == id })
		if i < 0 {
			return 0, fmt.Errorf("batchItemFailures itemIdentifier %q is not a sequence number in the batch", id)
		}
		if lowest < 0 || i < lowest {
			lowest = i
		}
	}
	return lowest, nil
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func (p *Poller) logf(format string, args ...any) {
	if p.cfg.Logf != nil {
		p.cfg.Logf("%s", strings.TrimSpace(fmt.Sprintf(format, args...)))
	}
}
