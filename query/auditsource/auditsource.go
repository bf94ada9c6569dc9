// Package auditsource answers rewind's queries straight from the audit
// table the stream handler fills, with DynamoDB Query calls: no local
// index, no S3. It is for the first minutes after an incident and for
// small windows; the index (package indexer) is for many questions and
// long windows.
//
// Load reads a window's audit items (a Query per tenant, hour and shard of
// the table when tenants are given, else a Query per hour and shard of the
// hour index: never a Scan) and LoadItem one item's history (the
// item-history index). Both decode the items into change events and ingest
// them into a temporary store, so that the answer comes from the very code
// that answers from the index (query.KeySet, query.Events,
// query.ComputeStats, query.History): the output is the same, byte for
// byte, for the same events.
//
// The item layout is streamhandler/audit.go's; this package is its reader.
package auditsource

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/klauspost/compress/s2"
	"github.com/parquet-go/parquet-go"
	"golang.org/x/sync/errgroup"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer"
	"github.com/ddbrewind/rewind/query"
	"github.com/ddbrewind/rewind/streamhandler"
)

// QueryAPI is the part of the DynamoDB client the reader uses.
type QueryAPI interface {
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

var _ QueryAPI = (*dynamodb.Client)(nil)

// Config configures Load and LoadItem.
type Config struct {
	// Table is the audit table's name. Required.
	Table string
	// Shards is the stream handler's REWIND_AUDIT_SHARDS: how many
	// partitions one tenant-hour (and one hour of the hour index) is
	// spread over. A smaller value than the handler's misses changes.
	// Default streamhandler.DefaultAuditShards (8).
	Shards int
	// Concurrency is how many Query calls are in flight at once.
	// Default 8.
	Concurrency int
	// CallTimeout bounds each Query call, retries included. Default 30s.
	CallTimeout time.Duration
	// PageLimit is the Limit of each Query page, in items; 0 (the default)
	// lets DynamoDB fill its 1 MB pages.
	PageLimit int32
	// TempDir is where the temporary store goes. Default os.TempDir().
	TempDir string
	// Log receives the temporary store's warnings. Default slog.Default().
	Log *slog.Logger
}

// Defaults for Config fields.
const (
	DefaultConcurrency = 8
	DefaultCallTimeout = 30 * time.Second
)

// EnsureDefaults fills in the defaults documented on Config.
func (c *Config) EnsureDefaults() {
	if c.Shards == 0 {
		c.Shards = streamhandler.DefaultAuditShards
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = DefaultCallTimeout
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
}

// Validate reports the first bad field.
func (c *Config) Validate() error {
	switch {
	case c.Table == "":
		return errors.New("audit source: Table is required (the audit table's name)")
	case c.Shards < 1 || c.Shards > 256:
		return fmt.Errorf("audit source: Shards %d: want 1 to 256, the stream handler's REWIND_AUDIT_SHARDS", c.Shards)
	case c.Concurrency < 1:
		return fmt.Errorf("audit source: Concurrency %d: want at least 1", c.Concurrency)
	case c.CallTimeout <= 0:
		return fmt.Errorf("audit source: CallTimeout %s: want a positive duration", c.CallTimeout)
	case c.PageLimit < 0:
		return fmt.Errorf("audit source: PageLimit %d is negative", c.PageLimit)
	}
	return nil
}

// Omitted is a change whose images were too big for its audit item: the
// stream handler left them out (imagesOmitted) and they are only in the
// capture Parquet.
type Omitted struct {
	EventID string
	Table   string
	Key     rewind.Key
	Time    time.Time
}

// ParquetPrefix is where the stream handler put the change's Parquet
// object, under the capture bucket's prefix (indexer.CaptureLayout).
func (o Omitted) ParquetPrefix() string {
	t := o.Time.UTC()
	return fmt.Sprintf("table=%s/dt=%s/hour=%02d/", o.Table, t.Format("2006-01-02"), t.Hour())
}

// Summary is what a load read.
type Summary struct {
	// Index is what was queried: "table" (tenant partitions), "hour" or
	// "item-history".
	Index string
	// Partitions queried, and the pages they took.
	Partitions, Pages int
	// Items read.
	Items int64
	// CapacityUnits is the read capacity consumed, summed over every page
	// (ReturnConsumedCapacity TOTAL).
	CapacityUnits float64
	// Omitted lists the changes read without their images, in time order.
	Omitted []Omitted
	// Tenants counts the changes read per tenant.
	Tenants map[string]int64
}

// Loaded is a temporary store holding the events a load read. Close
// removes it.
type Loaded struct {
	Store *indexer.Store
	Summary
	dir string
}

// Close closes the temporary store and removes its directory.
func (l *Loaded) Close() error {
	err := l.Store.Close()
	if rerr := os.RemoveAll(l.dir); err == nil {
		err = rerr
	}
	return err
}

// Load reads the audit items that q's window and tenants select and
// returns them in a temporary store, for q's other filters to run on with
// the query package. q.From and q.To are both required: the audit table is
// read an hour partition at a time.
//
// With tenants it queries each tenant's partitions of the table; without,
// the hour index's: Shards partitions per hour of the window either way.
func Load(ctx context.Context, api QueryAPI, cfg Config, q query.Query) (*Loaded, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if q.From.IsZero() || q.To.IsZero() {
		return nil, errors.New("audit source: the window needs both ends (--from and --to): the audit table is read an hour partition at a time")
	}
	if err := q.Validate(); err != nil {
		return nil, err
	}
	var parts []partition
	tenants := slices.Clone(q.Tenants)
	slices.Sort(tenants)
	tenants = slices.Compact(tenants)
	index := "table"
	if len(tenants) > 0 {
		for _, t := range tenants {
			for _, pk := range streamhandler.AuditPartitions(t, q.From, q.To, cfg.Shards) {
				parts = append(parts, partition{attr: "pk", value: pk})
			}
		}
	} else {
		index = streamhandler.AuditHourIndex
		for _, h := range streamhandler.AuditHourPartitions(q.From, q.To, cfg.Shards) {
			parts = append(parts, partition{index: streamhandler.AuditHourIndex, attr: "hour", value: h})
		}
	}
	lo, hi := skRange(q.From, q.To)
	return load(ctx, api, &cfg, index, parts, lo, hi)
}

// LoadItem reads one item's audit items, from the item-history index, in
// [from, to) (a zero time leaves that side open), into a temporary store
// for query.History.
func LoadItem(ctx context.Context, api QueryAPI, cfg Config, table string, key rewind.Key, from, to time.Time) (*Loaded, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if table == "" {
		return nil, errors.New("audit source: the item's table is required")
	}
	lo, hi := skRange(from, to)
	p := []partition{{index: streamhandler.AuditItemHistoryIndex, attr: "item", value: streamhandler.AuditItemID(table, key)}}
	return load(ctx, api, &cfg, streamhandler.AuditItemHistoryIndex, p, lo, hi)
}

// skRange returns the sort key bounds of [from, to): a superset at
// microsecond precision (sort keys carry microseconds), which the query
// code narrows exactly. Empty strings leave a side open.
func skRange(from, to time.Time) (lo, hi string) {
	if !from.IsZero() {
		lo = streamhandler.AuditSortKeyPrefix(from.Truncate(time.Microsecond))
	}
	if !to.IsZero() {
		// An event at to's microsecond (to - 0.5µs, say) sorts after the
		// bare prefix of that microsecond: bound by the next one.
		hi = streamhandler.AuditSortKeyPrefix(to.Truncate(time.Microsecond).Add(time.Microsecond))
	}
	return lo, hi
}

type partition struct {
	index, attr, value string
}

func load(ctx context.Context, api QueryAPI, cfg *Config, index string, parts []partition, lo, hi string) (*Loaded, error) {
	sum := Summary{Index: index, Partitions: len(parts), Tenants: map[string]int64{}}
	var mu sync.Mutex
	var evs []rewind.ChangeEvent
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(cfg.Concurrency)
	for _, p := range parts {
		g.Go(func() error {
			var local []rewind.ChangeEvent
			pages, units, err := queryPartition(gctx, api, cfg, p, lo, hi, func(item map[string]types.AttributeValue) error {
				ev, omitted, err := DecodeItem(item)
				if err != nil {
					return err
				}
				local = append(local, ev)
				if omitted {
					mu.Lock()
					sum.Omitted = append(sum.Omitted, Omitted{EventID: ev.EventID, Table: ev.Table, Key: ev.Keys, Time: ev.Time})
					mu.Unlock()
				}
				return nil
			})
			mu.Lock()
			defer mu.Unlock()
			sum.Pages += pages
			sum.CapacityUnits += units
			evs = append(evs, local...)
			if err != nil {
				return fmt.Errorf("audit table %s: %s %s: %w", cfg.Table, p.attr, p.value, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	sum.Items = int64(len(evs))
	for i := range evs {
		sum.Tenants[evs[i].Tenant]++
	}
	slices.SortFunc(sum.Omitted, func(a, b Omitted) int { return a.Time.Compare(b.Time) })
	st, dir, err := ingest(ctx, cfg, evs)
	if err != nil {
		return nil, err
	}
	return &Loaded{Store: st, Summary: sum, dir: dir}, nil
}

// queryPartition pages through one partition's sort key range. As the
// DynamoDB Developer Guide documents Query: a page holds at most 1 MB (or
// Limit items), LastEvaluatedKey is set while more remain and goes back as
// ExclusiveStartKey, and ReturnConsumedCapacity TOTAL reports each page's
// read units (the page's item sizes summed, rounded up to 4 KB, halved
// for an eventually consistent read, which a GSI read always is). Throttling
// and transient errors are retried by the SDK's retryer (the client's
// standard retryer, with the attempts the client was built with); each
// call, retries included, is bounded by cfg.CallTimeout.
func queryPartition(ctx context.Context, api QueryAPI, cfg *Config, p partition, lo, hi string, fn func(map[string]types.AttributeValue) error) (pages int, units float64, err error) {
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(cfg.Table),
		ExpressionAttributeNames:  map[string]string{"#p": p.attr, "#s": "sk"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": &types.AttributeValueMemberS{Value: p.value}},
		ReturnConsumedCapacity:    types.ReturnConsumedCapacityTotal,
	}
	if p.index != "" {
		in.IndexName = aws.String(p.index)
	}
	if cfg.PageLimit > 0 {
		in.Limit = aws.Int32(cfg.PageLimit)
	}
	cond := "#p = :p"
	switch {
	case lo != "" && hi != "":
		cond += " AND #s BETWEEN :lo AND :hi"
	case lo != "":
		cond += " AND #s >= :lo"
	case hi != "":
		cond += " AND #s < :hi"
	default:
		delete(in.ExpressionAttributeNames, "#s")
	}
	if lo != "" {
		in.ExpressionAttributeValues[":lo"] = &types.AttributeValueMemberS{Value: lo}
	}
	if hi != "" {
		// BETWEEN is inclusive; hi is a bare time prefix, which no sort
		// key equals (each goes on with #sequence#eventID), so inclusive
		// and exclusive select the same items.
		in.ExpressionAttributeValues[":hi"] = &types.AttributeValueMemberS{Value: hi}
	}
	in.KeyConditionExpression = aws.String(cond)
	for {
		cctx, cancel := context.WithTimeout(ctx, cfg.CallTimeout)
		out, err := api.Query(cctx, in)
		cancel()
		if err != nil {
			return pages, units, fmt.Errorf("query (page %d): %w", pages+1, err)
		}
		pages++
		if out.ConsumedCapacity != nil {
			units += aws.ToFloat64(out.ConsumedCapacity.CapacityUnits)
		}
		for _, item := range out.Items {
			if err := fn(item); err != nil {
				return pages, units, err
			}
		}
		if len(out.LastEvaluatedKey) == 0 {
			return pages, units, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// imageEncoding is the only encoding streamhandler/audit.go writes.
const imageEncoding = "snappy+ddbjson"

// DecodeItem turns an audit item, as streamhandler/audit.go lays it out,
// back into the change event it was written from. omitted reports an item
// whose images the handler left out (imagesOmitted): the event then has
// none. Errors name the item by pk and sk.
func DecodeItem(item map[string]types.AttributeValue) (ev rewind.ChangeEvent, omitted bool, err error) {
	str := func(name string) string {
		if v, ok := item[name].(*types.AttributeValueMemberS); ok {
			return v.Value
		}
		return ""
	}
	bin := func(name string) ([]byte, bool) {
		v, ok := item[name].(*types.AttributeValueMemberB)
		if !ok {
			return nil, false
		}
		return v.Value, true
	}
	where := func() string { return fmt.Sprintf("audit item pk %q sk %q", str("pk"), str("sk")) }
	ev = rewind.ChangeEvent{
		EventID:        str("eventId"),
		Table:          str("table"),
		Region:         str("region"),
		Tenant:         str("tenant"),
		Action:         rewind.Action(str("action")),
		SequenceNumber: str("sequenceNumber"),
		StreamViewType: str("streamViewType"),
		DecodeError:    str("decodeError"),
	}
	if ev.EventID == "" {
		return ev, false, fmt.Errorf("%s: no eventId: not an item the stream handler wrote", where())
	}
	if ev.Time, err = time.Parse(time.RFC3339Nano, str("eventTime")); err != nil {
		return ev, false, fmt.Errorf("%s: eventTime: %w", where(), err)
	}
	ev.Time = ev.Time.UTC()
	if v, ok := item["ttlExpiry"].(*types.AttributeValueMemberBOOL); ok {
		ev.TTLExpiry = v.Value
	}
	if v, ok := item["sizeBytes"].(*types.AttributeValueMemberN); ok {
		if ev.SizeBytes, err = strconv.ParseInt(v.Value, 10, 64); err != nil {
			return ev, false, fmt.Errorf("%s: sizeBytes: %w", where(), err)
		}
	}
	if v, ok := item["keys"].(*types.AttributeValueMemberM); ok {
		if ev.Keys, err = rewind.KeyFromItem(v.Value); err != nil {
			return ev, false, fmt.Errorf("%s: keys: %w", where(), err)
		}
	}
	if v, ok := item["changedAttributes"].(*types.AttributeValueMemberL); ok {
		ev.ChangedAttributes = make([]string, 0, len(v.Value))
		for _, a := range v.Value {
			s, ok := a.(*types.AttributeValueMemberS)
			if !ok {
				return ev, false, fmt.Errorf("%s: changedAttributes holds a %T, want strings", where(), a)
			}
			ev.ChangedAttributes = append(ev.ChangedAttributes, s.Value)
		}
	}
	if raw, ok := bin("rawRecord"); ok {
		if ev.Raw, err = s2.Decode(nil, raw); err != nil {
			return ev, false, fmt.Errorf("%s: rawRecord: snappy: %w", where(), err)
		}
	}
	if v, ok := item["imagesOmitted"].(*types.AttributeValueMemberBOOL); ok && v.Value {
		return ev, true, nil
	}
	oldZ, hasOld := bin("oldImage")
	newZ, hasNew := bin("newImage")
	if !hasOld && !hasNew {
		return ev, false, nil
	}
	if enc := str("imageEncoding"); enc != imageEncoding {
		return ev, false, fmt.Errorf("%s: imageEncoding %q: this rewind reads %q only (a newer stream handler? upgrade rewind)", where(), enc, imageEncoding)
	}
	for _, im := range []struct {
		name string
		z    []byte
		has  bool
		dst  *rewind.Image
	}{{"oldImage", oldZ, hasOld, &ev.OldImage}, {"newImage", newZ, hasNew, &ev.NewImage}} {
		if !im.has {
			continue
		}
		b, err := s2.Decode(nil, im.z)
		if err != nil {
			return ev, false, fmt.Errorf("%s: %s: snappy: %w", where(), im.name, err)
		}
		*im.dst = rewind.Image(b)
	}
	return ev, false, nil
}

// objectEvents is how many events go into one in-memory Parquet object of
// the temporary store.
const objectEvents = 4096

// ingest writes evs into a new store in a temporary directory, through
// the indexer's own ingest: the same deduplication and ordering as an
// index of the capture objects.
func ingest(ctx context.Context, cfg *Config, evs []rewind.ChangeEvent) (*indexer.Store, string, error) {
	dir, err := os.MkdirTemp(cfg.TempDir, "rewind-audit-*")
	if err != nil {
		return nil, "", fmt.Errorf("audit source: temporary store: %w", err)
	}
	fail := func(err error) (*indexer.Store, string, error) {
		os.RemoveAll(dir)
		return nil, "", err
	}
	st, err := indexer.Open(dir, indexer.Options{Log: cfg.Log})
	if err != nil {
		return fail(err)
	}
	src := &memSource{name: "dynamodb://" + cfg.Table}
	for i := 0; i < len(evs); i += objectEvents {
		pq, err := parquetOf(evs[i:min(i+objectEvents, len(evs))])
		if err != nil {
			st.Close()
			return fail(fmt.Errorf("audit source: encode events: %w", err))
		}
		src.objs = append(src.objs, pq)
	}
	if _, err := st.Ingest(ctx, src, indexer.Config{Log: cfg.Log}); err != nil {
		st.Close()
		return fail(fmt.Errorf("audit source: temporary store %s: %w", dir, err))
	}
	return st, dir, nil
}

func parquetOf(evs []rewind.ChangeEvent) ([]byte, error) {
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[rewind.ParquetRow](&buf, parquet.Compression(&parquet.Uncompressed))
	rows := make([]rewind.ParquetRow, len(evs))
	for i := range evs {
		evs[i].ToParquetRow(&rows[i])
	}
	if _, err := w.Write(rows); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// memSource is an indexer.Source of in-memory Parquet objects.
type memSource struct {
	name string
	objs [][]byte
}

var _ indexer.Source = (*memSource)(nil)

func (s *memSource) Name() string { return s.name }

func (s *memSource) objName(i int) string { return fmt.Sprintf("%s/%06d.parquet", s.name, i) }

func (s *memSource) List(ctx context.Context, fn func(indexer.Object) error) error {
	for i, b := range s.objs {
		if err := fn(indexer.Object{Name: s.objName(i), Key: fmt.Sprintf("%06d.parquet", i), ETag: "mem", Size: int64(len(b))}); err != nil {
			return err
		}
	}
	return nil
}

func (s *memSource) Open(ctx context.Context, o indexer.Object) (indexer.Content, string, int64, error) {
	for i, b := range s.objs {
		if s.objName(i) == o.Name {
			return memContent{bytes.NewReader(b)}, "mem", int64(len(b)), nil
		}
	}
	return nil, "", 0, fmt.Errorf("%s: no such object", o.Name)
}

type memContent struct{ *bytes.Reader }

func (memContent) Close() error { return nil }
