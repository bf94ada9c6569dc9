// Package streamhandler is rewind's capture stage: the DynamoDB Streams
// Lambda handler that writes every change event to an audit table and to S3
// as Parquet.
//
// New builds a Handler from a Config (see ConfigFromEnv); the Handler
// implements aws-lambda-go's lambda.Handler, taking the raw invocation
// payload and answering with an events.DynamoDBEventResponse that lists the
// records to retry, as the event source mapping's ReportBatchItemFailures
// expects.
//
// Order of work for one invocation: decode every record (a record that
// cannot be decoded is kept with its raw JSON and the error), write the
// audit items, then write Parquet objects for the records whose audit item
// is stored, and report the first record that is not stored in both as the
// place to retry from. Both writes are idempotent: a redelivered record
// overwrites its own audit item, and a redelivered batch overwrites its own
// Parquet object.
package streamhandler

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/ddbrewind/rewind"
)

// BatchWriter is the part of the DynamoDB client the handler uses.
type BatchWriter interface {
	BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
}

// ObjectPutter is the part of the S3 client the handler uses.
type ObjectPutter interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

var (
	_ BatchWriter  = (*dynamodb.Client)(nil)
	_ ObjectPutter = (*s3.Client)(nil)
)

// Handler handles DynamoDB stream invocations. It is safe for concurrent
// use, though Lambda sends one invocation at a time.
type Handler struct {
	cfg   Config
	audit *auditWriter
	s3    ObjectPutter
	log   *slog.Logger
	now   func() time.Time

	mu  sync.Mutex // guards the reused buffers below
	dec *decoder
	pq  *parquetWriter
	evs []rewind.ChangeEvent
}

// New returns a Handler. cfg is completed with defaults and validated.
func New(cfg Config, ddb BatchWriter, s3c ObjectPutter, log *slog.Logger) (*Handler, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	pq, err := newParquetWriter(cfg.Compression)
	if err != nil {
		return nil, err
	}
	h := &Handler{
		cfg: cfg,
		s3:  s3c,
		log: log,
		now: time.Now,
		dec: newDecoder(&cfg),
		pq:  pq,
	}
	h.audit = newAuditWriter(&cfg, ddb, pq.codec)
	return h, nil
}

// Result is what one invocation did, as logged.
type Result struct {
	Records     int
	Undecodable int
	Audited     int
	Stored      int // records in both the audit table and Parquet
	Objects     []string
	Tenants     int
	Bytes       int64
	Failures    []events.DynamoDBBatchItemFailure
	Duration    time.Duration
}

// Invoke implements lambda.Handler.
func (h *Handler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	resp, err := h.Handle(ctx, payload)
	if err != nil {
		return nil, err
	}
	return json.Marshal(resp)
}

// Handle processes one invocation payload.
func (h *Handler) Handle(ctx context.Context, payload []byte) (events.DynamoDBEventResponse, error) {
	res, err := h.handle(ctx, payload)
	attrs := []any{
		slog.Int("records", res.Records),
		slog.Int("undecodable", res.Undecodable),
		slog.Int("audited", res.Audited),
		slog.Int("stored", res.Stored),
		slog.Int("tenants", res.Tenants),
		slog.Int64("bytes", res.Bytes),
		slog.Int("objects", len(res.Objects)),
		slog.Int("failures", len(res.Failures)),
		slog.Duration("duration", res.Duration),
	}
	if err != nil {
		h.log.ErrorContext(ctx, "stream batch failed", append(attrs, slog.String("error", err.Error()))...)
		return events.DynamoDBEventResponse{}, err
	}
	level := slog.LevelInfo
	if len(res.Failures) > 0 || res.Undecodable > 0 {
		level = slog.LevelWarn
	}
	h.log.Log(ctx, level, "stream batch", attrs...)
	return events.DynamoDBEventResponse{BatchItemFailures: res.Failures}, nil
}

// handle does the work of Handle. Its results are named so that the
// deferred Duration lands in the Result returned, on every return path.
func (h *Handler) handle(ctx context.Context, payload []byte) (res Result, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	start := h.now()
	res = Result{Bytes: int64(len(payload))}
	defer func() { res.Duration = h.now().Sub(start) }()

	evs, err := h.dec.decode(payload, h.evs[:0])
	h.evs = evs
	if err != nil {
		return res, err
	}
	res.Records = len(evs)
	if len(evs) == 0 {
		return res, nil
	}
	tenants := make(map[string]struct{})
	for i := range evs {
		if evs[i].DecodeError != "" {
			res.Undecodable++
			h.log.WarnContext(ctx, "undecodable stream record kept raw",
				slog.String("eventID", evs[i].EventID),
				slog.String("sequenceNumber", evs[i].SequenceNumber),
				slog.String("error", evs[i].DecodeError))
		}
		tenants[evs[i].Tenant] = struct{}{}
	}
	res.Tenants = len(tenants)

	// Work stops SafetyMargin before the deadline, so the answer (and the
	// failures in it) still reaches Lambda.
	workCtx := ctx
	if dl, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		workCtx, cancel = context.WithDeadline(ctx, dl.Add(-h.cfg.SafetyMargin))
		defer cancel()
	}

	stored := h.audit.write(workCtx, evs)
	res.Audited = stored
	for _, g := range groupByHour(evs[:stored]) {
		key := h.objectKey(evs[g.start:g.end])
		if err := h.putObject(ctx, key, evs[g.start:g.end]); err != nil {
			h.log.WarnContext(ctx, "parquet object not written; its records will be retried",
				slog.String("key", key), slog.String("error", err.Error()))
			stored = g.start
			break
		}
		res.Objects = append(res.Objects, key)
	}
	res.Stored = stored
	if stored < len(evs) {
		seq := evs[stored].SequenceNumber
		if seq == "" {
			// Without a sequence number the record cannot be named as
			// the place to retry from: fail the whole batch instead.
			return res, fmt.Errorf("record %d (eventID %s) not stored and has no sequence number: retrying the batch", stored, evs[stored].EventID)
		}
		res.Failures = []events.DynamoDBBatchItemFailure{{ItemIdentifier: seq}}
	}
	return res, nil
}

type span struct{ start, end int }

// groupByHour splits events into runs that share a table and an hour of
// event time, so each Parquet object sits in the one Hive partition its
// rows belong to.
func groupByHour(evs []rewind.ChangeEvent) []span {
	var out []span
	for i := range evs {
		if len(out) > 0 {
			prev := &evs[i-1]
			if prev.Table == evs[i].Table && prev.Time.Truncate(time.Hour).Equal(evs[i].Time.Truncate(time.Hour)) {
				out[len(out)-1].end = i + 1
				continue
			}
		}
		out = append(out, span{i, i + 1})
	}
	return out
}

// objectKey returns the deterministic key of the Parquet object for a run
// of events: <prefix>/table=<table>/dt=YYYY-MM-DD/hour=HH/<stream>-<firstSeq>-<lastSeq>.parquet.
// <stream> is the stream label from the ARN, cleaned for paths: Lambda's
// event does not name the shard, and sequence numbers are unique within a
// stream, so label and sequence range name one batch.
func (h *Handler) objectKey(evs []rewind.ChangeEvent) string {
	first, last := &evs[0], &evs[len(evs)-1]
	t := first.Time
	if t.IsZero() {
		t = h.now().UTC()
	}
	table := first.Table
	if table == "" {
		table = "_unknown"
	}
	return fmt.Sprintf("%s/table=%s/dt=%s/hour=%02d/%s-%s-%s.parquet",
		h.cfg.Prefix, table, t.Format("2006-01-02"), t.Hour(),
		h.dec.label, seqOrID(first), seqOrID(last))
}

func seqOrID(e *rewind.ChangeEvent) string {
	if e.SequenceNumber != "" {
		return e.SequenceNumber
	}
	return e.EventID
}

func (h *Handler) putObject(ctx context.Context, key string, evs []rewind.ChangeEvent) error {
	body, err := h.pq.encode(evs)
	if err != nil {
		return fmt.Errorf("encode parquet: %w", err)
	}
	_, err = h.s3.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        &h.cfg.Bucket,
		Key:           &key,
		Body:          body,
		ContentLength: &[]int64{body.Size()}[0],
		ContentType:   &[]string{"application/vnd.apache.parquet"}[0],
	})
	if err != nil {
		return fmt.Errorf("put s3://%s/%s: %w", h.cfg.Bucket, key, err)
	}
	return nil
}
