package diff

import (
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/ddbrewind/rewind"
)

// NoReadLimit is a ReadRate with no cap but the table's own.
var NoReadLimit = math.Inf(1)

// Options tune a diff. DefaultOptions holds the defaults; EnsureDefaults
// fills zero fields with them.
type Options struct {
	// Segments is TotalSegments of each table's parallel Scan. Default 16.
	Segments int
	// Workers is how many segments are scanned at once, over both tables.
	// Default 4.
	Workers int
	// ReadRate caps the read capacity units per second the scan of each
	// table consumes, as DynamoDB reports them (ReturnConsumedCapacity
	// TOTAL). Default NoReadLimit.
	ReadRate float64
	// PageLimit is the Limit of each Scan call: items evaluated per page.
	// Default 0: as many as fit DynamoDB's 1 MB page.
	PageLimit int32
	// ConsistentRead makes the Scans strongly consistent (twice the read
	// capacity). Default false.
	ConsistentRead bool
	// MemoryBudget is the bytes of scanned records held in memory, both
	// tables together, before sorted runs are spilled to TempDir. Default
	// 256 MiB.
	MemoryBudget int64
	// TempDir is where runs are spilled. Default "": os.TempDir().
	TempDir string
	// AttributeDiffs keeps each item's attributes, so that Difference
	// carries both items and the per-attribute diff. Default false: only
	// a digest of each item is kept (and spilled).
	AttributeDiffs bool
	// MaxAttempts is the attempts per DynamoDB call, through the SDK's
	// standard retryer (throttling, 5xx, dropped connections). Default 10.
	MaxAttempts int
	// CallTimeout bounds each DynamoDB call, its retries included.
	// Default 2 minutes.
	CallTimeout time.Duration
	// Progress, when set, is called every ProgressEvery (default 10 s)
	// while scanning, and once at the end with Final set.
	Progress      func(Progress)
	ProgressEvery time.Duration
	// Log receives debug lines about spills. Default: discard.
	Log *slog.Logger
}

// DefaultOptions returns the defaults.
func DefaultOptions() Options {
	return Options{
		Segments:      16,
		Workers:       4,
		ReadRate:      NoReadLimit,
		MemoryBudget:  256 << 20,
		MaxAttempts:   10,
		CallTimeout:   2 * time.Minute,
		ProgressEvery: 10 * time.Second,
	}
}

// EnsureDefaults sets zero fields to their defaults.
func (o *Options) EnsureDefaults() {
	d := DefaultOptions()
	if o.Segments == 0 {
		o.Segments = d.Segments
	}
	if o.Workers == 0 {
		o.Workers = d.Workers
	}
	if o.ReadRate == 0 {
		o.ReadRate = d.ReadRate
	}
	if o.MemoryBudget == 0 {
		o.MemoryBudget = d.MemoryBudget
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = d.MaxAttempts
	}
	if o.CallTimeout == 0 {
		o.CallTimeout = d.CallTimeout
	}
	if o.ProgressEvery == 0 {
		o.ProgressEvery = d.ProgressEvery
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// maxSegments is DynamoDB's bound on TotalSegments.
const maxSegments = 1000000

// Validate reports the first bad field as a *ConfigError.
func (o *Options) Validate() error {
	switch {
	case o.Segments < 1 || o.Segments > maxSegments:
		return configErrorf("Segments", "Segments %d: want 1 to %d (DynamoDB's bound on TotalSegments)", o.Segments, maxSegments)
	case o.Workers < 1:
		return configErrorf("Workers", "Workers %d: must be at least 1", o.Workers)
	case !(o.ReadRate > 0):
		return configErrorf("ReadRate", "ReadRate %g: must be more than 0 read units per second (or NoReadLimit)", o.ReadRate)
	case o.PageLimit < 0:
		return configErrorf("PageLimit", "PageLimit %d: must be 0 (a full 1 MB page) or more", o.PageLimit)
	case o.MemoryBudget < 1:
		return configErrorf("MemoryBudget", "MemoryBudget %d: must be at least 1 byte", o.MemoryBudget)
	case o.MaxAttempts < 1:
		return configErrorf("MaxAttempts", "MaxAttempts %d: must be at least 1", o.MaxAttempts)
	case o.CallTimeout <= 0:
		return configErrorf("CallTimeout", "CallTimeout %s: must be more than 0", o.CallTimeout)
	case o.ProgressEvery < 0:
		return configErrorf("ProgressEvery", "ProgressEvery %s: must not be negative", o.ProgressEvery)
	}
	return nil
}

// Config is one diff: From, the restored table, against To, production.
type Config struct {
	// From is the restored table (the wanted state), by name or ARN.
	From string
	// To is the production table, by name or ARN.
	To string
	// SinceAttribute and Since, both set, narrow production's side to the
	// items whose SinceAttribute is at least Since (a Scan filter
	// expression; Since is an S or N value, compared as DynamoDB compares
	// them). Such a diff cannot see deletes, nor writes that did not set
	// the attribute: Summary.SinceBlind says so.
	SinceAttribute string
	Since          types.AttributeValue
	Options
}

// Validate checks the configuration before anything is read.
func (c *Config) Validate() error {
	switch {
	case c.From == "":
		return configErrorf("From", "From (the restored table) is required")
	case c.To == "":
		return configErrorf("To", "To (the production table) is required")
	case c.From == c.To:
		return configErrorf("From", "From and To are the same table %q: diff a restored copy against production, never a table against itself", c.To)
	case (c.SinceAttribute == "") != (c.Since == nil):
		return configErrorf("Since", "SinceAttribute and Since go together: name the attribute and the time")
	}
	if c.Since != nil {
		switch c.Since.(type) {
		case *types.AttributeValueMemberS, *types.AttributeValueMemberN:
		default:
			return configErrorf("Since", "Since must be a string or a number value, as the attribute %q holds", c.SinceAttribute)
		}
	}
	return c.Options.Validate()
}

// ConfigError is a bad option or configuration field, found by Validate
// before anything is read.
type ConfigError struct {
	// Field is the Go name of the bad field, such as "Workers".
	Field string
	// Problem says what is wrong with it, naming it.
	Problem string
}

func (e *ConfigError) Error() string { return "diff: " + e.Problem }

func configErrorf(field, format string, args ...any) error {
	return &ConfigError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// Progress is how far a diff has got.
type Progress struct {
	// Scanned items of each table so far, and the item counts DynamoDB
	// gave (DescribeTable, refreshed about every six hours, so the ETA is
	// an estimate).
	FromScanned, ToScanned int64
	FromItems, ToItems     int64
	// Bytes is the size DescribeTable gave of both tables.
	Bytes int64
	// ConsumedRCU is the read capacity used so far, both tables.
	ConsumedRCU float64
	// Runs is the sorted runs spilled to disk so far.
	Runs    int
	Elapsed time.Duration
	Final   bool
}

// Report turns the progress into the CLI's one progress shape.
func (p Progress) Report() rewind.Progress {
	r := rewind.Progress{
		Phase: "diff", Unit: "items",
		Done: p.FromScanned + p.ToScanned, Total: p.FromItems + p.ToItems,
		Elapsed: p.Elapsed, Final: p.Final,
		Counts: []rewind.ProgressCount{{Name: "restored", N: p.FromScanned}, {Name: "production", N: p.ToScanned}, {Name: "RCU", N: int64(p.ConsumedRCU)}, {Name: "runs", N: int64(p.Runs)}},
	}
	if r.Done > r.Total && r.Total > 0 {
		r.Total = r.Done // the counts are hours old
	}
	if p.Bytes > 0 {
		r.Note = fmt.Sprintf("tables hold about %.1f MiB (DescribeTable)", float64(p.Bytes)/(1<<20))
	}
	return r
}
