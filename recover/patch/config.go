package patch

import (
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/ddbrewind/rewind"
)

// Client is the part of the DynamoDB API the patcher uses on the
// production table (and, through Table, on the restored one).
type Client interface {
	ItemReader
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
}

var _ Client = (*dynamodb.Client)(nil)

// Options are how the patch engine runs: the knobs Patch, Verify and Undo
// share. The zero value of every field means its documented default
// (EnsureDefaults fills them in; DefaultOptions returns them filled in,
// for a command line to bind its flags to).
type Options struct {
	// Rate caps writes per second, to leave the application part of the
	// table's capacity. Default AutoRate: half the production table's
	// provisioned write capacity (DescribeTable's WriteCapacityUnits) on a
	// PROVISIONED table, or half its maximum on an on-demand table with a
	// maximum write throughput set; no cap on any other on-demand table,
	// whose capacity the adaptive concurrency finds (it backs off on
	// throttling; see Concurrency). NoRateLimit lifts the cap. Under
	// throttling the writes are paced lower still, just under what the
	// table took (see Concurrency).
	Rate float64
	// Concurrency is the most writes in flight. The patcher starts at 16
	// (or Concurrency, if lower) and adapts: it doubles the writes in
	// flight, then adds one, while the latency of recent writes holds,
	// multiplies them by 0.7 when DynamoDB throttles a write attempt
	// (even one the SDK's retryer then retries), though not below what
	// the pace needs, and holds them when the latency grows, never below
	// 1 nor above Concurrency. A throttled attempt also paces every write
	// attempt, retries included, at 0.85 of the writes/s that succeeded
	// over the last second (AIMD: +3% every 100 ms while the writes keep
	// up), and is retried after a short backoff (25 ms, doubling). The
	// summary says where it settled, how many attempts were throttled and
	// the pace.
	// 1 writes one key at a time. Default DefaultConcurrency (128).
	Concurrency int
	// Readers is the number of chunks being planned at once; each chunk
	// costs two BatchGetItem calls in parallel. Default 4.
	Readers int
	// BatchSize is the number of keys per chunk and per BatchGetItem call,
	// at most 100 (DynamoDB's limit). Default 100.
	BatchSize int
	// MaxAttempts is how many times one DynamoDB call is tried before it
	// fails (the SDK's standard retryer, exponential backoff with jitter,
	// on throttling, 5xx and connection errors). Default 10.
	MaxAttempts int
	// WriteTimeout is how long a write already sent is let finish after
	// an interrupt: long enough for a healthy endpoint to answer, short
	// enough that Ctrl-C acts within seconds. A write cut by it is left for
	// a resume to plan again. Default 10s.
	WriteTimeout time.Duration

	// Out receives the data: the plan (dry run), or the conflicts and
	// failures (apply), or the mismatches (Verify), as JSON Lines. Default
	// io.Discard.
	Out io.Writer
	// Progress, when set, is called every ProgressEvery while the work
	// runs, and once when it ends. Default nil: no progress.
	Progress func(Progress)
	// ProgressEvery is the progress interval. Default 10s.
	ProgressEvery time.Duration
	// Log receives warnings. Default slog.Default().
	Log *slog.Logger

	// now is time.Now; tests replace it.
	now func() time.Time
}

// DefaultConcurrency is Options.Concurrency's default: the most writes in
// flight. 128 at 5-10 ms a write is 13,000-25,000 writes/s, more than one
// client machine sends; the adaptive limit stays below it on a table that
// takes less.
const DefaultConcurrency = 128

// AutoRate as Options.Rate (its default) takes the cap from the production
// table's capacity; see Options.Rate.
const AutoRate = -1.0

// NoRateLimit as Options.Rate lifts the cap on writes per second.
var NoRateLimit = math.Inf(1)

// DefaultOptions returns the options with every default filled in: what a
// zero Options means. A command line binds its flags to its fields, so its
// help shows these defaults.
func DefaultOptions() Options {
	var o Options
	o.EnsureDefaults()
	return o
}

// EnsureDefaults fills in the default of every zero field.
func (o *Options) EnsureDefaults() {
	if o.Rate == 0 {
		o.Rate = AutoRate
	}
	if o.Concurrency == 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Readers == 0 {
		o.Readers = 4
	}
	if o.BatchSize == 0 {
		o.BatchSize = maxBatch
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = 10
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.ProgressEvery == 0 {
		o.ProgressEvery = 10 * time.Second
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.now == nil {
		o.now = time.Now
	}
}

// Validate checks options that EnsureDefaults has filled in (or that
// were bound from DefaultOptions): a zero left is invalid, as is anything
// negative. The error is a *ConfigError naming the bad field.
func (o *Options) Validate() error {
	switch {
	case !(o.Rate > 0) && o.Rate != AutoRate: // also NaN
		return configErrorf("Rate", "Rate %g: must be more than 0 writes per second (or AutoRate)", o.Rate)
	case o.Concurrency < 1:
		return configErrorf("Concurrency", "Concurrency %d: must be at least 1", o.Concurrency)
	case o.Readers < 1:
		return configErrorf("Readers", "Readers %d: must be at least 1", o.Readers)
	case o.BatchSize < 1 || o.BatchSize > maxBatch:
		return configErrorf("BatchSize", "BatchSize %d: want 1 to %d", o.BatchSize, maxBatch)
	case o.MaxAttempts < 1:
		return configErrorf("MaxAttempts", "MaxAttempts %d: must be at least 1", o.MaxAttempts)
	case o.WriteTimeout <= 0:
		return configErrorf("WriteTimeout", "WriteTimeout %s: must be more than 0", o.WriteTimeout)
	case o.ProgressEvery < 0 || (o.ProgressEvery == 0 && o.Progress != nil):
		return configErrorf("ProgressEvery", "ProgressEvery %s: must be more than 0", o.ProgressEvery)
	}
	return nil
}

// ConfigError is a bad option or configuration field, found by Validate
// before anything is read or written.
type ConfigError struct {
	// Field is the Go name of the bad field, such as "Concurrency".
	Field string
	// Problem says what is wrong with it, naming it: "Concurrency 0: must
	// be at least 1".
	Problem string
}

func (e *ConfigError) Error() string { return "patch: " + e.Problem }

func configErrorf(field, format string, args ...any) error {
	return &ConfigError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// Config says what to patch and how. The zero value of every optional
// field means its documented default.
type Config struct {
	// Keys is the key-set file (JSON Lines, see rewind.KeySetEntry) naming
	// the impacted items. Required by Patch and Verify. Every line's table
	// must be To.
	Keys string
	// Plan is a dry run's output (its plan lines, see Step.AppendJSON) to
	// apply exactly instead of Keys: every write is also conditional on
	// the production and wanted states the dry run recorded, so a key
	// either changed since is a conflict, listed and left alone. Keys and
	// Plan are exclusive; one is required by Patch and Verify.
	Plan string
	// From is the table holding the wanted state, normally a point-in-time
	// restore of To. Required unless Source is set.
	From string
	// To is the production table to patch. Required.
	To string
	// Source gives the wanted item states. Default: the table From, read
	// with consistent BatchGetItem.
	Source Source

	// Apply writes the plan. Default false: a dry run, which prints the plan
	// and writes nothing.
	Apply bool
	// Force writes even where the production item changed since it was
	// planned against. Default false: such keys are conflicts.
	Force bool
	// Limit patches only the first Limit keys of the key set (after Shard).
	// Default 0: all keys. A trial run with a limit is extended by a
	// resume of its journal with a larger limit (or none): one journal,
	// and one undo, for the trial and the run.
	Limit int64
	// Shard selects the keys this process handles, so that several
	// processes can split one key set. Default 0/1: all keys.
	Shard Shard

	// Journal is where pre-images are appended before each write. Default:
	// next to Keys, "<Keys>.patch-<UTC time>.journal". Required with
	// Resume. A dry run writes no journal.
	Journal string
	// Resume continues the patch recorded in Journal and its checkpoint
	// (Journal + ".checkpoint"): key-set lines the checkpoint covers are
	// skipped, the rest are planned again. Default false, and then Journal
	// must not exist.
	Resume bool

	// Options are the engine's knobs (rate, concurrency, output, ...).
	Options
}

// Shard is one of Count disjoint parts of a key set: the keys whose
// canonical encoding hashes (FNV-1a 64) to Index modulo Count.
type Shard struct {
	Index, Count int
}

// ParseShard parses "i/n".
func ParseShard(s string) (Shard, error) {
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil {
		return Shard{}, fmt.Errorf("shard %q: want i/n, such as 0/4", s)
	}
	sh := Shard{Index: i, Count: n}
	if n < 1 {
		return Shard{}, fmt.Errorf("shard %q: n must be at least 1", s)
	}
	return sh, sh.validate()
}

func (s Shard) validate() error {
	if s.Count == 0 && s.Index == 0 {
		return nil
	}
	if s.Count < 1 || s.Index < 0 || s.Index >= s.Count {
		return fmt.Errorf("shard %d/%d: want 0 <= i < n", s.Index, s.Count)
	}
	return nil
}

// String returns "i/n".
func (s Shard) String() string {
	if s.Count == 0 {
		return "0/1"
	}
	return fmt.Sprintf("%d/%d", s.Index, s.Count)
}

// Contains reports whether key belongs to the shard.
func (s Shard) Contains(key rewind.Key) bool {
	if s.Count <= 1 {
		return true
	}
	h := fnv.New64a()
	h.Write(key.Encode())
	return h.Sum64()%uint64(s.Count) == uint64(s.Index)
}

// maxBatch is DynamoDB's limit on keys per BatchGetItem.
const maxBatch = 100

// EnsureDefaults fills in the default of every zero field.
func (c *Config) EnsureDefaults() {
	c.Options.EnsureDefaults()
	if c.Shard.Count == 0 {
		c.Shard = Shard{0, 1}
	}
}

// Validate checks the configuration (after EnsureDefaults) and names the
// bad field in a *ConfigError.
func (c *Config) Validate() error {
	switch {
	case c.To == "":
		return configErrorf("To", "To (the production table) is required")
	case c.From == "" && c.Source == nil:
		return configErrorf("From", "From (the restored table) or Source is required")
	case c.From != "" && c.From == c.To:
		return configErrorf("From", "From and To are the same table %q: patch from a restored copy into production, never a table into itself", c.To)
	case c.Keys == "" && c.Plan == "":
		return configErrorf("Keys", "Keys (the key-set file) or Plan (a dry run's plan) is required")
	case c.Keys != "" && c.Plan != "":
		return configErrorf("Plan", "Keys and Plan are exclusive: a plan names its keys")
	case c.Limit < 0:
		return configErrorf("Limit", "Limit %d: must be 0 (all keys) or more", c.Limit)
	case c.Resume && c.Journal == "":
		return configErrorf("Resume", "Resume needs Journal, the journal of the patch to resume (its path is in that patch's summary)")
	}
	if err := c.Shard.validate(); err != nil {
		return configErrorf("Shard", "Shard: %v", err)
	}
	return c.Options.Validate()
}

// NewRetryer returns the retry policy the patcher puts on every DynamoDB
// call: the SDK's standard retryer (exponential backoff with full jitter,
// retrying throttling errors, 5xx and dropped connections) with
// maxAttempts attempts, at most 2 s between attempts, and no retry quota.
// The quota is off because a patch under throttling must keep going at the
// pace the table allows rather than fail fast once the client's token
// bucket is empty; the rate limiter and the bounded attempts already keep
// the load in check.
func NewRetryer(maxAttempts int) aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = maxAttempts
		o.MaxBackoff = 2 * time.Second
		o.RateLimiter = ratelimit.None
	})
}

// Throttle backoff of the writes (writeRetryer): full jitter up to
// throttleBase times 2^(retry-1), at most Options' 2 s.
const throttleBase = 25 * time.Millisecond

// writeRetryer is NewRetryer for the patcher's writes, whose attempts the
// adaptive control paces (see adaptive): a throttled attempt is retried
// after a short jittered backoff rather than the standard retryer's (a
// base of 1 s for throttling errors, so half a second on average before
// the first retry), because the pace the control cuts on throttling is
// what brings the writes under the table's capacity, as backoff is meant
// to. DynamoDB documents that a throttled request is retried with
// exponential backoff; it still is, from 25 ms, with the attempts of all
// writes together at the reduced pace. Other errors keep the standard
// retryer's backoff.
func writeRetryer(maxAttempts int) aws.Retryer {
	std := NewRetryer(maxAttempts)
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = maxAttempts
		o.MaxBackoff = 2 * time.Second
		o.RateLimiter = ratelimit.None
		o.Backoff = retry.BackoffDelayerFunc(func(attempt int, err error) (time.Duration, error) {
			if !isThrottle(err) {
				return std.RetryDelay(attempt, err)
			}
			return throttleDelay(attempt, rand.Float64()), nil
		})
	})
}

// throttleDelay is the backoff before retry attempt+1 of a throttled write
// (attempt counts from 1), for a jitter u in [0, 1).
func throttleDelay(attempt int, u float64) time.Duration {
	d := throttleBase << min(max(attempt-1, 0), 10)
	return time.Duration(u * float64(min(d, 2*time.Second)))
}
