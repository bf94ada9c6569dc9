package streamhandler

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/ddbrewind/rewind"
	"github.com/klauspost/compress/s2"
	"golang.org/x/sync/errgroup"
)

// The audit table holds one item per change event:
//
//	pk         S  <tenant>#<YYYY-MM-DDTHH>#<shard>   partition key
//	sk         S  <event time, RFC 3339 µs>#<sequence number, 40 digits>#<eventID>   sort key
//	item       S  <table>#<key as DynamoDB JSON>      GSI item-history partition key (sk is its sort key)
//	hour       S  <YYYY-MM-DDTHH>#<shard>             GSI hour partition key (sk is its sort key)
//	expiresAt  N  epoch seconds, event time + TTL days   TTL attribute
//
// and eventId, table, region, tenant, action, ttlExpiry, eventTime,
// sequenceNumber, streamViewType, keys (M), changedAttributes (L of S),
// sizeBytes, and oldImage/newImage as Snappy-compressed DynamoDB JSON (B,
// imageEncoding "snappy+ddbjson": the standard Snappy block format, which
// every language reads; per small image it costs a fraction of zstd's
// table set-up); decodeError and rawRecord (Snappy B) for a
// record that could not be decoded.
//
// A tenant's changes in a window are a Query per hour and shard
// (AuditPartitions); an hour of a busy tenant is spread over AuditShards
// partitions, chosen by a hash of the event ID, so no partition is hot. One
// item's history is a Query on the item-history index. Every change of
// an hour, whatever its tenant, is a Query per shard of the hour index
// (AuditHourPartitions), spread over the same AuditShards partitions by the
// same hash, so a window without tenants never needs a Scan. The primary key is
// a function of the event alone, so a redelivered event overwrites its own
// item.
const (
	AuditItemHistoryIndex = "item-history"
	// AuditHourIndex is the GSI keyed by hour (attribute hour, sort key
	// sk): every tenant's changes of one hour and shard.
	AuditHourIndex     = "hour"
	auditImageEncoding = "snappy+ddbjson"
	// auditMaxItemBytes leaves headroom under DynamoDB's 400 KB item limit;
	// beyond it the images are left out of the audit item (they are in
	// the Parquet object) and imagesOmitted is set.
	auditMaxItemBytes = 380 << 10
	batchWriteMax     = 25
)

// AuditPartitionKey returns the audit table partition key for a tenant,
// an hour and a shard.
func AuditPartitionKey(tenant string, t time.Time, shard int) string {
	return tenant + "#" + t.UTC().Format("2006-01-02T15") + "#" + strconv.Itoa(shard)
}

// AuditPartitions lists the partition keys that hold a tenant's changes in
// [from, to): one per hour and shard.
func AuditPartitions(tenant string, from, to time.Time, shards int) []string {
	var out []string
	for h := from.UTC().Truncate(time.Hour); h.Before(to); h = h.Add(time.Hour) {
		for s := 0; s < shards; s++ {
			out = append(out, AuditPartitionKey(tenant, h, s))
		}
	}
	return out
}

// AuditHourKey returns the hour index's partition key for an hour and a
// shard.
func AuditHourKey(t time.Time, shard int) string {
	return t.UTC().Format("2006-01-02T15") + "#" + strconv.Itoa(shard)
}

// AuditHourPartitions lists the hour index's partition keys that hold the
// changes of every tenant in [from, to): one per hour and shard.
func AuditHourPartitions(from, to time.Time, shards int) []string {
	var out []string
	for h := from.UTC().Truncate(time.Hour); h.Before(to); h = h.Add(time.Hour) {
		for s := 0; s < shards; s++ {
			out = append(out, AuditHourKey(h, s))
		}
	}
	return out
}

// AuditSortKeyPrefix returns the sort key prefix of an event time, for
// range conditions: sk >= AuditSortKeyPrefix(from) AND sk < AuditSortKeyPrefix(to).
func AuditSortKeyPrefix(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000000Z")
}

// AuditItemID returns the item-history index key of an item.
func AuditItemID(table string, k rewind.Key) string {
	return table + "#" + k.String()
}

func auditShard(eventID string, shards int) int {
	h := fnv.New32a()
	h.Write([]byte(eventID))
	return int(h.Sum32() % uint32(shards))
}

type auditWriter struct {
	table       string
	shards      int
	ttl         time.Duration
	ddb         BatchWriter
	codec       *zstdCodec
	concurrency int
	now         func() time.Time
	// backoff bounds for UnprocessedItems and retryable errors.
	baseDelay, maxDelay time.Duration
}

func newAuditWriter(cfg *Config, ddb BatchWriter, codec *zstdCodec) *auditWriter {
	return &auditWriter{
		table:       cfg.AuditTable,
		shards:      cfg.AuditShards,
		ttl:         time.Duration(cfg.TTLDays) * 24 * time.Hour,
		ddb:         ddb,
		codec:       codec,
		concurrency: 4,
		now:         time.Now,
		baseDelay:   25 * time.Millisecond,
		maxDelay:    2 * time.Second,
	}
}

// WriteAudit writes the audit items of evs to cfg.AuditTable exactly as
// the handler does (cfg is defaulted; Bucket is not needed) and returns how
// many leading events are stored. It is for backfills and for the readers'
// tests, which must read what the handler writes.
func WriteAudit(ctx context.Context, cfg Config, ddb BatchWriter, evs []rewind.ChangeEvent) (int, error) {
	if cfg.Bucket == "" {
		cfg.Bucket = "unused"
	}
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return 0, err
	}
	n := newAuditWriter(&cfg, ddb, nil).write(ctx, evs)
	if n < len(evs) {
		if err := ctx.Err(); err != nil {
			return n, fmt.Errorf("audit table %s: %d of %d items stored: %w", cfg.AuditTable, n, len(evs), err)
		}
		return n, fmt.Errorf("audit table %s: %d of %d items stored (see the error above, or retry)", cfg.AuditTable, n, len(evs))
	}
	return n, nil
}

// eventTime is the time an event's audit item is filed under: the
// record's time, or now for a record that had none.
func (a *auditWriter) eventTime(ev *rewind.ChangeEvent) time.Time {
	if ev.Time.IsZero() {
		return a.now().UTC()
	}
	return ev.Time
}

// keyOf returns the audit item's primary key: a function of the event
// alone, so a redelivered event overwrites its own item.
func (a *auditWriter) keyOf(ev *rewind.ChangeEvent, t time.Time) (pk, sk string) {
	seq := ev.SequenceNumber
	if len(seq) < 40 {
		seq = zeros[:40-len(seq)] + seq
	}
	return AuditPartitionKey(ev.Tenant, t, auditShard(ev.EventID, a.shards)),
		AuditSortKeyPrefix(t) + "#" + seq + "#" + ev.EventID
}

// hourOf returns the audit item's hour index key: the same shard as its
// primary key.
func (a *auditWriter) hourOf(ev *rewind.ChangeEvent, t time.Time) string {
	return AuditHourKey(t, auditShard(ev.EventID, a.shards))
}

// item builds the audit item of an event.
func (a *auditWriter) item(ev *rewind.ChangeEvent, t time.Time, pk, sk string) map[string]types.AttributeValue {
	s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	item := map[string]types.AttributeValue{
		"pk":             s(pk),
		"sk":             s(sk),
		"hour":           s(a.hourOf(ev, t)),
		"expiresAt":      &types.AttributeValueMemberN{Value: strconv.FormatInt(t.Add(a.ttl).Unix(), 10)},
		"eventId":        s(ev.EventID),
		"eventTime":      s(t.Format(time.RFC3339Nano)),
		"tenant":         s(ev.Tenant),
		"ttlExpiry":      &types.AttributeValueMemberBOOL{Value: ev.TTLExpiry},
		"sizeBytes":      &types.AttributeValueMemberN{Value: strconv.FormatInt(ev.SizeBytes, 10)},
		"table":          s(ev.Table),
		"region":         s(ev.Region),
		"sequenceNumber": s(ev.SequenceNumber),
		"streamViewType": s(ev.StreamViewType),
		"action":         s(string(ev.Action)),
	}
	size := 230
	if len(ev.Keys) > 0 {
		id := AuditItemID(ev.Table, ev.Keys)
		item["item"] = s(id)
		item["keys"] = &types.AttributeValueMemberM{Value: ev.Keys.Item()}
		size += 2 * len(id)
	}
	if ev.ChangedAttributes != nil {
		l := make([]types.AttributeValue, len(ev.ChangedAttributes))
		for i, n := range ev.ChangedAttributes {
			l[i] = s(n)
			size += len(n) + 1
		}
		item["changedAttributes"] = &types.AttributeValueMemberL{Value: l}
	}
	if ev.DecodeError != "" {
		item["decodeError"] = s(ev.DecodeError)
		raw := s2.EncodeSnappy(nil, ev.Raw)
		size += len(ev.DecodeError) + len(raw)
		if size < auditMaxItemBytes {
			item["rawRecord"] = &types.AttributeValueMemberB{Value: raw}
		}
	}
	var oldZ, newZ []byte
	if ev.OldImage != nil {
		oldZ = s2.EncodeSnappy(nil, ev.OldImage)
	}
	if ev.NewImage != nil {
		newZ = s2.EncodeSnappy(nil, ev.NewImage)
	}
	if oldZ != nil || newZ != nil {
		if size+len(oldZ)+len(newZ) > auditMaxItemBytes {
			item["imagesOmitted"] = &types.AttributeValueMemberBOOL{Value: true}
		} else {
			item["imageEncoding"] = s(auditImageEncoding)
			if oldZ != nil {
				item["oldImage"] = &types.AttributeValueMemberB{Value: oldZ}
			}
			if newZ != nil {
				item["newImage"] = &types.AttributeValueMemberB{Value: newZ}
			}
		}
	}
	return item
}

const zeros = "0000000000000000000000000000000000000000"

// write stores the audit items of evs and returns how many leading events
// are stored. It retries unprocessed items and retryable errors with
// backoff and jitter until ctx is done.
//
// Items are built chunk by chunk, just before they are sent, so only the
// chunks in flight are in memory, not one item per record of the batch.
func (a *auditWriter) write(ctx context.Context, evs []rewind.ChangeEvent) int {
	// dup[i] >= 0 names an earlier event with the same audit key: one
	// BatchWriteItem may not name a key twice.
	dup := make([]int, len(evs))
	seen := make(map[string]int, len(evs))
	var uniq []int
	for i := range evs {
		pk, sk := a.keyOf(&evs[i], a.eventTime(&evs[i]))
		k := pk + "\x00" + sk
		if j, ok := seen[k]; ok {
			dup[i] = j
			continue
		}
		seen[k] = i
		dup[i] = -1
		uniq = append(uniq, i)
	}
	done := make([]bool, len(evs))
	var mu sync.Mutex
	// stop is the first chunk that failed for good: later chunks cannot
	// extend the stored prefix, so they are not sent.
	stop := len(uniq)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(a.concurrency)
	for c := 0; c < len(uniq); c += batchWriteMax {
		end := min(c+batchWriteMax, len(uniq))
		idx := uniq[c:end]
		mu.Lock()
		skip := c >= stop
		mu.Unlock()
		if skip {
			break
		}
		g.Go(func() error {
			reqs := make([]types.WriteRequest, len(idx))
			for j, i := range idx {
				t := a.eventTime(&evs[i])
				pk, sk := a.keyOf(&evs[i], t)
				reqs[j] = types.WriteRequest{PutRequest: &types.PutRequest{Item: a.item(&evs[i], t, pk, sk)}}
			}
			ok := a.writeChunk(gctx, reqs, idx)
			mu.Lock()
			defer mu.Unlock()
			for _, i := range idx {
				if ok[i] {
					done[i] = true
				}
			}
			for _, i := range idx {
				if !ok[i] && c < stop {
					stop = c
				}
			}
			return nil
		})
	}
	g.Wait()
	n := 0
	for n < len(evs) {
		d := done[n]
		if dup[n] >= 0 {
			d = done[dup[n]]
		}
		if !d {
			break
		}
		n++
	}
	return n
}

// writeChunk writes up to 25 requests, reqs[j] for event idx[j], and
// reports which events were stored.
func (a *auditWriter) writeChunk(ctx context.Context, reqs []types.WriteRequest, idx []int) map[int]bool {
	ok := make(map[int]bool, len(idx))
	pending := make(map[string]int, len(idx))
	batch := reqs
	for j, i := range idx {
		pending[reqKey(reqs[j])] = i
	}
	for attempt := 0; len(batch) > 0; attempt++ {
		if ctx.Err() != nil {
			break
		}
		out, err := a.ddb.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{
			RequestItems: map[string][]types.WriteRequest{a.table: batch},
		})
		if err != nil {
			if !retryable(err) {
				break
			}
			if !a.sleep(ctx, attempt) {
				break
			}
			continue
		}
		left := out.UnprocessedItems[a.table]
		still := make(map[string]int, len(left))
		for _, r := range left {
			k := reqKey(r)
			if i, found := pending[k]; found {
				still[k] = i
			}
		}
		for k, i := range pending {
			if _, found := still[k]; !found {
				ok[i] = true
			}
		}
		pending = still
		batch = left
		if len(batch) > 0 && !a.sleep(ctx, attempt) {
			break
		}
	}
	return ok
}

func reqKey(r types.WriteRequest) string {
	if r.PutRequest == nil {
		return ""
	}
	pk, _ := r.PutRequest.Item["pk"].(*types.AttributeValueMemberS)
	sk, _ := r.PutRequest.Item["sk"].(*types.AttributeValueMemberS)
	if pk == nil || sk == nil {
		return ""
	}
	return pk.Value + "\x00" + sk.Value
}

// sleep waits a full-jitter exponential backoff, or returns false if ctx
// ends first.
func (a *auditWriter) sleep(ctx context.Context, attempt int) bool {
	d := a.baseDelay << min(attempt, 16)
	if d > a.maxDelay || d <= 0 {
		d = a.maxDelay
	}
	d = time.Duration(rand.Int64N(int64(d) + 1))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

var retryables = retry.IsErrorRetryables(append(append([]retry.IsErrorRetryable{}, retry.DefaultRetryables...),
	retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
		if retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err) == aws.TrueTernary {
			return aws.TrueTernary
		}
		return aws.UnknownTernary
	})))

// retryable reports whether err is worth another try: throttling, 5xx,
// connection errors. The SDK's retryer has already retried these a few
// times; the handler keeps trying until its deadline.
func retryable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	return retryables.IsErrorRetryable(err) == aws.TrueTernary
}
