package diff

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/ddbrewind/rewind"
)

// Kind is how an item differs between the two tables.
type Kind int

const (
	// Changed: in both tables, with different values.
	Changed Kind = iota + 1
	// OnlyInTo: only in production, created after the restore point; a
	// patch from the restored table deletes it.
	OnlyInTo
	// OnlyInFrom: only in the restored table, deleted in production since;
	// a patch puts it back.
	OnlyInFrom
)

func (k Kind) String() string {
	switch k {
	case Changed:
		return "changed"
	case OnlyInTo:
		return "only-in-production"
	case OnlyInFrom:
		return "only-in-restored"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Action is the stream event production saw that explains the
// difference, the vocabulary of a key set's actions: MODIFY for Changed,
// INSERT for OnlyInTo, REMOVE for OnlyInFrom.
func (k Kind) Action() rewind.Action {
	switch k {
	case OnlyInTo:
		return rewind.ActionInsert
	case OnlyInFrom:
		return rewind.ActionRemove
	}
	return rewind.ActionModify
}

// Difference is one item that differs.
type Difference struct {
	// Table is production's name, as a key set for patching it names it.
	Table string
	Key   rewind.Key
	Kind  Kind
	// From and To are the item in the restored table and in production,
	// nil where it is absent; both nil unless Options.AttributeDiffs.
	From, To rewind.Item
}

// AttributeDiff is one attribute that differs: its path (a top-level
// name, then map keys into nested maps) and its value on each side, nil
// where absent. Lists and sets are compared whole.
type AttributeDiff struct {
	Path     []string
	From, To types.AttributeValue
}

// AttributeDiffs returns the attributes that differ between from and to,
// as DynamoDB compares values (rewind.EqualAttributeValues: numbers by
// value, sets in any order), descending into maps present on both sides,
// sorted by path. A nil item is absent: every attribute of the other
// differs.
func AttributeDiffs(from, to rewind.Item) []AttributeDiff {
	var out []AttributeDiff
	diffMaps(nil, from, to, &out)
	return out
}

func diffMaps(path []string, a, b map[string]types.AttributeValue, out *[]AttributeDiff) {
	names := make([]string, 0, len(a)+len(b))
	for n := range a {
		names = append(names, n)
	}
	for n := range b {
		if _, ok := a[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		av, aok := a[n]
		bv, bok := b[n]
		p := append(slices.Clip(path), n)
		am, amok := av.(*types.AttributeValueMemberM)
		bm, bmok := bv.(*types.AttributeValueMemberM)
		switch {
		case aok && bok && amok && bmok:
			diffMaps(p, am.Value, bm.Value, out)
		case !aok || !bok || !rewind.EqualAttributeValues(av, bv):
			d := AttributeDiff{Path: p}
			if aok {
				d.From = av
			}
			if bok {
				d.To = bv
			}
			*out = append(*out, d)
		}
	}
}

// Summary is what a diff saw.
type Summary struct {
	From, To Table
	// FromScanned and ToScanned are the items each Scan returned (for
	// production with a Since filter, those that passed it).
	FromScanned, ToScanned int64
	// ToEvaluated is the items production's Scan read before its filter
	// (ScannedCount): what its read capacity paid for.
	ToEvaluated int64
	// The differences by kind, and the items equal on both sides.
	Changed, OnlyInTo, OnlyInFrom, Unchanged int64
	// SinceAttribute and Since are the filter on production's side, if any.
	SinceAttribute string
	Since          types.AttributeValue
	// SinceBlind is, with a Since filter, the restored items not matched
	// by a production item that passed the filter: deleted in production,
	// or not written since, or written without setting the attribute. The
	// diff cannot tell which, and reports none of them.
	SinceBlind int64
	// ConsumedRCU is the read capacity both Scans used, as DynamoDB
	// reported it (an estimate of 0.5 unit per item read where it did not).
	ConsumedRCU float64
	// Runs and SpilledBytes are the sorted runs written to disk.
	Runs         int
	SpilledBytes int64
	// Duplicates is keys a Scan returned more than once (counted once).
	Duplicates int64
	Elapsed    time.Duration
}

// Differences is the number of items reported.
func (s *Summary) Differences() int64 { return s.Changed + s.OnlyInTo + s.OnlyInFrom }

// String renders the summary for people (stderr), with the warnings an
// operator must read before patching from it.
func (s *Summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "diff: restored %s against production %s in %s\n", s.From.Name, s.To.Name, s.Elapsed.Round(time.Millisecond))
	row := func(name string, n int64, what string) { fmt.Fprintf(&b, "  %-12s %10d  %s\n", name, n, what) }
	row("restored", s.FromScanned, "items scanned in the restored table")
	if s.SinceAttribute != "" {
		row("production", s.ToScanned, fmt.Sprintf("items with %s >= %s (of %d read)", s.SinceAttribute, avString(s.Since), s.ToEvaluated))
	} else {
		row("production", s.ToScanned, "items scanned in production")
	}
	row("unchanged", s.Unchanged, "items equal in both")
	row("restore", s.Changed, "differ (actions MODIFY): a patch puts the restored item back")
	row("delete", s.OnlyInTo, "only in production (actions INSERT): created after the restore point; a patch deletes them")
	row("create", s.OnlyInFrom, "only in the restored table (actions REMOVE): deleted in production; a patch puts them back")
	fmt.Fprintf(&b, "  %-12s %10.0f  read capacity units consumed\n", "RCU", s.ConsumedRCU)
	if s.Runs > 0 {
		fmt.Fprintf(&b, "  %-12s %10d  sorted runs spilled to disk (%.1f MiB)\n", "runs", s.Runs, float64(s.SpilledBytes)/(1<<20))
	}
	if s.Duplicates > 0 {
		fmt.Fprintf(&b, "  %-12s %10d  keys a Scan returned twice (counted once)\n", "duplicates", s.Duplicates)
	}
	if s.SinceAttribute != "" {
		fmt.Fprintf(&b, "  NOTE: --since looked only at production items whose %s is at least %s. It cannot see deletes, nor writes\n", s.SinceAttribute, avString(s.Since))
		fmt.Fprintf(&b, "        that did not set %s (or set it to an older value): %d restored items had no such match and are not reported.\n", s.SinceAttribute, s.SinceBlind)
		b.WriteString("        The filter saves output, not reads: DynamoDB reads (and bills) every item before filtering.\n")
	}
	if s.Differences() > 0 {
		b.WriteString("  WARNING: a diff cannot tell a bad write from a good one. Every write made to production after the restore\n")
		b.WriteString("           point is in this key set, the application's good writes too; patching all of it undoes them.\n")
		b.WriteString("           Remove the keys known to be good first: rewind keys subtract diff.jsonl good.jsonl > impacted.jsonl\n")
		b.WriteString("           (good.jsonl: for example a rewind query for the fixed deploy's writes), then review before --yes.\n")
	}
	return b.String()
}

func avString(av types.AttributeValue) string {
	return string(rewind.AppendAttributeValueJSON(nil, av))
}

// Diff compares cfg.From (the restored table) with cfg.To (production)
// and calls emit once per item that differs, in canonical key order (the
// order of a key set). emit must not keep the Difference's maps. It
// returns a summary; on error the summary is nil.
func Diff(ctx context.Context, c Client, cfg Config, emit func(Difference) error) (*Summary, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := &cfg.Options
	start := time.Now()
	retryer := retry.NewStandard(func(so *retry.StandardOptions) {
		so.MaxAttempts = o.MaxAttempts
		so.MaxBackoff = 5 * time.Second
		// A scan under throttling should keep going at the pace the table
		// allows, not give up once the client's retry quota is spent.
		so.RateLimiter = ratelimit.None
	})
	opts := []func(*dynamodb.Options){func(do *dynamodb.Options) { do.Retryer = retryer }}

	from, err := describe(ctx, c, cfg.From, o, opts...)
	if err != nil {
		return nil, fmt.Errorf("diff: restored table: %w", err)
	}
	to, err := describe(ctx, c, cfg.To, o, opts...)
	if err != nil {
		return nil, fmt.Errorf("diff: production table: %w", err)
	}
	if from.sameTable(to) {
		return nil, fmt.Errorf("diff: refused: --from %q and --to %q are the same table (%s): diff a restored copy against production, never a table against itself", cfg.From, cfg.To, cmpOr(to.ARN, to.Name))
	}
	if !from.sameSchema(to) {
		return nil, fmt.Errorf("diff: the tables have different key schemas: %s has %s; %s has %s (diff a restore of the same table)", from.Name, from.schema(), to.Name, to.schema())
	}
	sum := &Summary{From: from, To: to, SinceAttribute: cfg.SinceAttribute, Since: cfg.Since}

	tmp, err := newSpillDir(o.TempDir)
	if err != nil {
		return nil, err
	}
	defer tmp.remove()
	sides := [2]*side{
		{name: "restored", table: from, sp: newSpiller("restored", tmp.dir, o.MemoryBudget/2, o.Log)},
		{name: "production", table: to, sp: newSpiller("production", tmp.dir, o.MemoryBudget-o.MemoryBudget/2, o.Log)},
	}
	if cfg.SinceAttribute != "" {
		sides[1].filter = &dynamodb.ScanInput{
			FilterExpression:          aws.String("#since >= :since"),
			ExpressionAttributeNames:  map[string]string{"#since": cfg.SinceAttribute},
			ExpressionAttributeValues: map[string]types.AttributeValue{":since": cfg.Since},
		}
	}
	for _, sd := range sides {
		if !math.IsInf(o.ReadRate, 1) {
			burst := max(1, int(math.Ceil(o.ReadRate)))
			sd.limiter = rate.NewLimiter(rate.Limit(o.ReadRate), burst)
		}
	}

	progress := func(final bool) {
		if o.Progress == nil {
			return
		}
		o.Progress(Progress{
			FromScanned: sides[0].scanned.Load(), ToScanned: sides[1].scanned.Load(),
			FromItems: from.ItemCount, ToItems: to.ItemCount, Bytes: from.SizeBytes + to.SizeBytes,
			ConsumedRCU: sides[0].rcu() + sides[1].rcu(),
			Runs:        sides[0].sp.runCount() + sides[1].sp.runCount(),
			Elapsed:     time.Since(start), Final: final,
		})
	}
	stopProgress := make(chan struct{})
	var progressDone sync.WaitGroup
	if o.Progress != nil && o.ProgressEvery > 0 {
		progressDone.Add(1)
		go func() {
			defer progressDone.Done()
			t := time.NewTicker(o.ProgressEvery)
			defer t.Stop()
			for {
				select {
				case <-stopProgress:
					return
				case <-t.C:
					progress(false)
				}
			}
		}()
	}

	// Segments of both tables interleaved, so that both progress together.
	type job struct {
		sd  *side
		seg int32
	}
	jobs := make(chan job)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(jobs)
		for seg := range o.Segments {
			for _, sd := range sides {
				select {
				case jobs <- job{sd, int32(seg)}:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
		}
		return nil
	})
	for range o.Workers {
		g.Go(func() error {
			for j := range jobs {
				if err := j.sd.scanSegment(gctx, c, o, j.seg, opts); err != nil {
					return err
				}
			}
			return nil
		})
	}
	err = g.Wait()
	close(stopProgress)
	progressDone.Wait()
	if err != nil {
		return nil, err
	}
	progress(true)

	sum.FromScanned, sum.ToScanned = sides[0].scanned.Load(), sides[1].scanned.Load()
	sum.ToEvaluated = sides[1].evaluated.Load()
	sum.ConsumedRCU = sides[0].rcu() + sides[1].rcu()
	for _, sd := range sides {
		sum.Runs += sd.sp.spilled
		sum.SpilledBytes += sd.sp.spillBytes
	}
	if err := match(ctx, sides[0].sp, sides[1].sp, sum, o.AttributeDiffs, emit); err != nil {
		return nil, err
	}
	sum.Elapsed = time.Since(start)
	return sum, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// side is one table being scanned.
type side struct {
	name    string
	table   Table
	sp      *spiller
	filter  *dynamodb.ScanInput // FilterExpression and its names and values, or nil
	limiter *rate.Limiter

	scanned   atomic.Int64
	evaluated atomic.Int64
	rcuMilli  atomic.Int64
}

func (s *side) rcu() float64 { return float64(s.rcuMilli.Load()) / 1000 }

// scanSegment reads one segment to its end, page by page, each page one
// call with its own deadline and the SDK's retryer.
func (s *side) scanSegment(ctx context.Context, c Client, o *Options, seg int32, opts []func(*dynamodb.Options)) error {
	var start map[string]types.AttributeValue
	perItem := 0.5 // eventually consistent: half a unit per 4 KB
	if o.ConsistentRead {
		perItem = 1
	}
	for {
		in := &dynamodb.ScanInput{
			TableName:              aws.String(s.table.call),
			Segment:                aws.Int32(seg),
			TotalSegments:          aws.Int32(int32(o.Segments)),
			ExclusiveStartKey:      start,
			ConsistentRead:         aws.Bool(o.ConsistentRead),
			ReturnConsumedCapacity: types.ReturnConsumedCapacityTotal,
		}
		if o.PageLimit > 0 {
			in.Limit = aws.Int32(o.PageLimit)
		}
		if s.filter != nil {
			in.FilterExpression = s.filter.FilterExpression
			in.ExpressionAttributeNames = s.filter.ExpressionAttributeNames
			in.ExpressionAttributeValues = s.filter.ExpressionAttributeValues
		}
		cctx, cancel := context.WithTimeout(ctx, o.CallTimeout)
		out, err := c.Scan(cctx, in, opts...)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("diff: scan the %s table %s, segment %d of %d: %w", s.name, s.table.Name, seg, o.Segments, err)
		}
		// Meter what DynamoDB says the page cost; the next page waits for it.
		used := float64(out.ScannedCount) * perItem
		if out.ConsumedCapacity != nil && out.ConsumedCapacity.CapacityUnits != nil {
			used = *out.ConsumedCapacity.CapacityUnits
		}
		s.rcuMilli.Add(int64(used * 1000))
		s.evaluated.Add(int64(out.ScannedCount))
		recs := make([]record, 0, len(out.Items))
		for _, item := range out.Items {
			r, err := s.record(item, o.AttributeDiffs)
			if err != nil {
				return err
			}
			recs = append(recs, r)
		}
		if err := s.sp.add(recs); err != nil {
			return err
		}
		s.scanned.Add(int64(len(recs)))
		if err := s.wait(ctx, used); err != nil {
			return err
		}
		if len(out.LastEvaluatedKey) == 0 {
			return nil
		}
		start = out.LastEvaluatedKey
	}
}

// wait pays units to the read limiter, in bursts it can grant.
func (s *side) wait(ctx context.Context, units float64) error {
	if s.limiter == nil {
		return nil
	}
	n := int(math.Ceil(units))
	for n > 0 {
		k := min(n, s.limiter.Burst())
		if err := s.limiter.WaitN(ctx, k); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("diff: read rate limit: %w", err)
		}
		n -= k
	}
	return nil
}

func (s *side) record(item rewind.Item, keep bool) (record, error) {
	key, err := rewind.KeyFromItemSchema(item, s.table.KeyNames...)
	if err != nil {
		return record{}, fmt.Errorf("diff: %s table %s: an item's key: %w", s.name, s.table.Name, err)
	}
	r := record{key: key.Encode()}
	if _, err := hex.Decode(r.digest[:], []byte(rewind.ItemDigest(item))); err != nil {
		return record{}, fmt.Errorf("diff: digest of %s: %w", key, err)
	}
	if keep {
		r.item = rewind.AppendItemJSON(nil, item)
	}
	return r, nil
}

// match merge-joins the two sorted streams of records.
func match(ctx context.Context, from, to *spiller, sum *Summary, keep bool, emit func(Difference) error) error {
	a, err := from.sorted()
	if err != nil {
		return err
	}
	defer a.close()
	b, err := to.sorted()
	if err != nil {
		return err
	}
	defer b.close()
	ra, oka, err := a.next()
	if err != nil {
		return err
	}
	rb, okb, err := b.next()
	if err != nil {
		return err
	}
	since := sum.SinceAttribute != ""
	var n int64
	for oka || okb {
		if n++; n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		c := 0
		switch {
		case !okb:
			c = -1
		case !oka:
			c = 1
		default:
			c = bytes.Compare(ra.key, rb.key)
		}
		var d *Difference
		var fromRec, toRec *record
		switch {
		case c < 0:
			if since {
				sum.SinceBlind++
			} else {
				sum.OnlyInFrom++
				d, fromRec = &Difference{Kind: OnlyInFrom}, &ra
			}
		case c > 0:
			sum.OnlyInTo++
			d, toRec = &Difference{Kind: OnlyInTo}, &rb
		case ra.digest == rb.digest:
			sum.Unchanged++
		default:
			sum.Changed++
			d, fromRec, toRec = &Difference{Kind: Changed}, &ra, &rb
		}
		if d != nil {
			keyBytes := ra.key
			if fromRec == nil {
				keyBytes = rb.key
			}
			d.Table = sum.To.Name
			if d.Key, _, err = rewind.DecodeKey(keyBytes); err != nil {
				return fmt.Errorf("diff: decode a spilled key: %w", err)
			}
			if keep {
				if d.From, err = parseRecord(fromRec); err != nil {
					return err
				}
				if d.To, err = parseRecord(toRec); err != nil {
					return err
				}
			}
			if err := emit(*d); err != nil {
				return err
			}
		}
		if c <= 0 {
			if ra, oka, err = a.next(); err != nil {
				return err
			}
		}
		if c >= 0 {
			if rb, okb, err = b.next(); err != nil {
				return err
			}
		}
	}
	sum.Duplicates = a.dups + b.dups
	return nil
}

func parseRecord(r *record) (rewind.Item, error) {
	if r == nil {
		return nil, nil
	}
	item, err := rewind.ParseItem(r.item)
	if err != nil {
		return nil, fmt.Errorf("diff: read back a spilled item: %w", err)
	}
	return item, nil
}
