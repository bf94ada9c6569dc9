package query

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/ddbrewind/rewind/indexer"
)

// Stats are the counts of the events a query matched, per tenant and per
// time bucket.
type Stats struct {
	// From and To are the query's window; zero when open.
	From time.Time `json:"from,omitzero"`
	To   time.Time `json:"to,omitzero"`
	// First and Last are the times of the first and last matched events.
	First time.Time `json:"first,omitzero"`
	Last  time.Time `json:"last,omitzero"`
	// Events matched; Undecodable events in the window are counted apart.
	Events      int64 `json:"events"`
	Undecodable int64 `json:"undecodable"`
	// Tenants by events, most first, then by name.
	Tenants []TenantCount `json:"tenants"`
	// Bucket is the width of Timeline's buckets.
	Bucket time.Duration `json:"-"`
	// Timeline counts events per bucket, empty buckets included: from the
	// bucket holding From to the one holding the end of the window when
	// both ends are given, else from the bucket holding First to the one
	// holding Last.
	Timeline []BucketCount `json:"timeline"`
}

// TenantCount is one tenant's events by action.
type TenantCount struct {
	Tenant   string `json:"tenant"`
	Events   int64  `json:"events"`
	Inserts  int64  `json:"inserts"`
	Modifies int64  `json:"modifies"`
	Removes  int64  `json:"removes"`
	// TTLExpiries are among Removes.
	TTLExpiries int64 `json:"ttl_expiries"`
}

// BucketCount is the events in [Start, Start+Bucket).
type BucketCount struct {
	Start  time.Time `json:"start"`
	Events int64     `json:"events"`
}

// AutoBucket picks a bucket for a span of time: a minute up to six hours,
// else an hour.
func AutoBucket(span time.Duration) time.Duration {
	if span <= 6*time.Hour {
		return time.Minute
	}
	return time.Hour
}

// maxBuckets bounds the timeline so a long window with a small bucket
// cannot exhaust memory.
const maxBuckets = 100_000

// ComputeStats counts the events matching q per tenant and per bucket;
// bucket 0 picks one with AutoBucket.
func ComputeStats(ctx context.Context, st *indexer.Store, q Query, bucket time.Duration) (*Stats, error) {
	b, err := newStatsBuilder(q, bucket)
	if err != nil {
		return nil, err
	}
	c, err := Events(ctx, st, q, func(ev *Event) error {
		e := ev.Entry
		g := TenantCount{Tenant: string(e.Tenant), Events: 1}
		switch actionIndex(e.Action) {
		case 1:
			g.Inserts = 1
		case 2:
			g.Modifies = 1
		case 3:
			g.Removes = 1
		}
		if e.TTLExpiry {
			g.TTLExpiries = 1
		}
		b.add(g, floorDiv(e.Micros, b.granµ)*b.granµ, e.Micros, e.Micros)
		return nil
	})
	if err != nil {
		return nil, err
	}
	b.s.Undecodable = c.Undecodable
	return b.finish()
}

// statsBuilder sums counts into Stats: the local index adds one event at
// a time, Athena one group of events (a tenant's in one bucket) at a
// time; finish turns the sums into the same Stats either way.
type statsBuilder struct {
	s           *Stats
	q           Query
	bucket      time.Duration // as asked; 0 for AutoBucket
	gran        time.Duration // the bucket the sums are kept in
	granµ       int64
	byTenant    map[string]*TenantCount
	perBucket   map[int64]int64 // bucket start (Unix µs) → events
	first, last int64
}

func newStatsBuilder(q Query, bucket time.Duration) (*statsBuilder, error) {
	if bucket < 0 {
		return nil, fmt.Errorf("stats: negative bucket %s", bucket)
	}
	b := &statsBuilder{
		s: &Stats{From: q.From, To: q.To}, q: q, bucket: bucket, gran: bucket,
		byTenant: map[string]*TenantCount{}, perBucket: map[int64]int64{},
	}
	if b.gran == 0 {
		b.gran = time.Minute
	}
	b.granµ = b.gran.Microseconds()
	if b.granµ <= 0 {
		return nil, fmt.Errorf("stats: bucket %s is below a microsecond", bucket)
	}
	return b, nil
}

// add counts g's events, all in the bucket starting at start (Unix µs,
// a multiple of granµ), the first at first and the last at last.
func (b *statsBuilder) add(g TenantCount, start, first, last int64) {
	if g.Events <= 0 {
		return
	}
	if b.s.Events == 0 || first < b.first {
		b.first = first
	}
	if b.s.Events == 0 || last > b.last {
		b.last = last
	}
	b.s.Events += g.Events
	tc := b.byTenant[g.Tenant]
	if tc == nil {
		tc = &TenantCount{Tenant: g.Tenant}
		b.byTenant[g.Tenant] = tc
	}
	tc.Events += g.Events
	tc.Inserts += g.Inserts
	tc.Modifies += g.Modifies
	tc.Removes += g.Removes
	tc.TTLExpiries += g.TTLExpiries
	b.perBucket[start] += g.Events
}

func (b *statsBuilder) finish() (*Stats, error) {
	s, q, bucket, gran, first, last := b.s, &b.q, b.bucket, b.gran, b.first, b.last
	perMinute := b.perBucket
	for _, tc := range b.byTenant {
		s.Tenants = append(s.Tenants, *tc)
	}
	slices.SortFunc(s.Tenants, func(a, b TenantCount) int {
		if c := cmp.Compare(b.Events, a.Events); c != 0 {
			return c
		}
		return strings.Compare(a.Tenant, b.Tenant)
	})
	if s.Events > 0 {
		s.First, s.Last = time.UnixMicro(first).UTC(), time.UnixMicro(last).UTC()
	}
	// The timeline covers the window when both ends are given, so quiet
	// time before the damage shows; else the events, first to last (a
	// window open at one end, such as --from -2h, would otherwise pad the
	// timeline with the quiet time before the first event or after the
	// last).
	lo, hi := first, last
	if !q.From.IsZero() && !q.To.IsZero() {
		lo, hi = q.Window().From, q.Window().To-1
	}
	if s.Events == 0 && (q.From.IsZero() || q.To.IsZero()) {
		s.Bucket = gran
		return s, nil
	}
	if bucket == 0 {
		bucket = AutoBucket(time.Duration(hi-lo) * time.Microsecond)
		if bucket != gran {
			// Re-bucket the per-minute counts.
			bµ := bucket.Microseconds()
			re := map[int64]int64{}
			for t, n := range perMinute {
				re[floorDiv(t, bµ)*bµ] += n
			}
			perMinute = re
		}
	}
	s.Bucket = bucket
	bµ := bucket.Microseconds()
	start, end := floorDiv(lo, bµ)*bµ, floorDiv(hi, bµ)*bµ
	if (end-start)/bµ+1 > maxBuckets {
		return nil, fmt.Errorf("stats: %d buckets of %s in the window; use a wider bucket", (end-start)/bµ+1, bucket)
	}
	for t := start; t <= end; t += bµ {
		s.Timeline = append(s.Timeline, BucketCount{Start: time.UnixMicro(t).UTC(), Events: perMinute[t]})
	}
	return s, nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// WriteStatsJSON writes the stats as one JSON object; bucket_seconds gives
// the width of the timeline's buckets.
func WriteStatsJSON(w io.Writer, s *Stats) error {
	type out struct {
		*Stats
		BucketSeconds float64 `json:"bucket_seconds"`
	}
	b, err := json.Marshal(out{s, s.Bucket.Seconds()})
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// StatsTableOptions shape WriteStatsTable.
type StatsTableOptions struct {
	// Top is how many tenants to list; 0 lists all.
	Top int
	// Width is the histogram's widest bar in characters. Default 50.
	Width int
}

// WriteStatsTable writes the stats for a person: a summary, the tenants
// table and the timeline as a histogram.
func WriteStatsTable(w io.Writer, s *Stats, o StatsTableOptions) error {
	if o.Width <= 0 {
		o.Width = 50
	}
	bw := bufio.NewWriter(w)
	ts := func(t time.Time) string {
		if t.IsZero() {
			return "(open)"
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	fmt.Fprintf(bw, "window  [%s, %s)\n", ts(s.From), ts(s.To))
	fmt.Fprintf(bw, "events  %d in %d tenant(s)", s.Events, len(s.Tenants))
	if s.Undecodable > 0 {
		fmt.Fprintf(bw, "; %d undecodable event(s) in the window not counted", s.Undecodable)
	}
	fmt.Fprintln(bw)
	if s.Events > 0 {
		fmt.Fprintf(bw, "first   %s\nlast    %s\n", ts(s.First), ts(s.Last))
	}
	if len(s.Tenants) > 0 {
		tenants := s.Tenants
		if o.Top > 0 && len(tenants) > o.Top {
			tenants = tenants[:o.Top]
		}
		nameW := len("TENANT")
		for _, t := range tenants {
			nameW = max(nameW, len(displayTenant(t.Tenant)))
		}
		fmt.Fprintf(bw, "\n%-*s  %8s  %8s  %8s  %8s  %8s\n", nameW, "TENANT", "EVENTS", "INSERT", "MODIFY", "REMOVE", "TTL")
		for _, t := range tenants {
			fmt.Fprintf(bw, "%-*s  %8d  %8d  %8d  %8d  %8d\n", nameW, displayTenant(t.Tenant), t.Events, t.Inserts, t.Modifies, t.Removes, t.TTLExpiries)
		}
		if rest := s.Tenants[len(tenants):]; len(rest) > 0 {
			var n int64
			for _, t := range rest {
				n += t.Events
			}
			fmt.Fprintf(bw, "(%d more tenant(s) with %d event(s); --top 0 lists all)\n", len(rest), n)
		}
	}
	if len(s.Timeline) > 0 {
		var peak int64
		for _, b := range s.Timeline {
			peak = max(peak, b.Events)
		}
		label := "PER " + strings.ToUpper(bucketName(s.Bucket)) + " (UTC)"
		fmt.Fprintf(bw, "\n%-16s  %8s\n", label, "EVENTS")
		for _, b := range s.Timeline {
			line := fmt.Sprintf("%-16s  %8d %s", b.Start.UTC().Format("2006-01-02 15:04"), b.Events, bar(b.Events, peak, o.Width))
			fmt.Fprintln(bw, strings.TrimRight(line, " "))
		}
	}
	return bw.Flush()
}

func displayTenant(t string) string {
	if t == "" {
		return "(none)"
	}
	return t
}

func bucketName(d time.Duration) string {
	switch d {
	case time.Minute:
		return "minute"
	case time.Hour:
		return "hour"
	case 24 * time.Hour:
		return "day"
	}
	return d.String()
}

// bar draws n of peak as a bar of at most width cells, in eighths of a
// cell; a non-zero count always shows.
func bar(n, peak int64, width int) string {
	if n <= 0 || peak <= 0 {
		return ""
	}
	eighths := int((n*int64(width)*8 + peak - 1) / peak)
	eighths = max(eighths, 1)
	partial := []string{"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"}
	return strings.Repeat("█", eighths/8) + partial[eighths%8]
}
