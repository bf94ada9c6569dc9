package patch

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
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
	// Default 0: all keys.
	Limit int64
	// Shard selects the keys this process handles, so that several
	// processes can split one key set. Default 0/1: all keys.
	Shard Shard

	// Rate caps writes per second. Default 0: no cap (the SDK retryer
	// still backs off on throttling).
	Rate float64
	// Concurrency is the number of writes in flight. Default 16.
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

	// Journal is where pre-images are appended before each write. Default:
	// next to Keys, "<Keys>.patch-<UTC time>.journal". Required with
	// Resume. A dry run writes no journal.
	Journal string
	// Resume continues the patch recorded in Journal and its checkpoint
	// (Journal + ".checkpoint"): key-set lines the checkpoint covers are
	// skipped, the rest are planned again. Default false, and then Journal
	// must not exist.
	Resume bool

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

func (c *Config) ensureDefaults() {
	if c.Concurrency == 0 {
		c.Concurrency = 16
	}
	if c.Readers == 0 {
		c.Readers = 4
	}
	if c.BatchSize == 0 {
		c.BatchSize = maxBatch
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 10
	}
	if c.ProgressEvery == 0 {
		c.ProgressEvery = 10 * time.Second
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.Shard.Count == 0 {
		c.Shard = Shard{0, 1}
	}
	if c.now == nil {
		c.now = time.Now
	}
}

// Validate checks the configuration and names the bad field.
func (c *Config) Validate() error {
	switch {
	case c.To == "":
		return errors.New("patch: To (the production table) is required")
	case c.From == "" && c.Source == nil:
		return errors.New("patch: From (the restored table) is required")
	case c.From != "" && c.From == c.To:
		return fmt.Errorf("patch: From and To are the same table %q: patch from a restored copy into production, never a table into itself", c.To)
	case c.Limit < 0:
		return fmt.Errorf("patch: Limit %d is negative", c.Limit)
	case c.Rate < 0:
		return fmt.Errorf("patch: Rate %g is negative", c.Rate)
	case c.Concurrency < 0:
		return fmt.Errorf("patch: Concurrency %d is negative", c.Concurrency)
	case c.Readers < 0:
		return fmt.Errorf("patch: Readers %d is negative", c.Readers)
	case c.BatchSize < 0 || c.BatchSize > maxBatch:
		return fmt.Errorf("patch: BatchSize %d: want 1 to %d", c.BatchSize, maxBatch)
	case c.MaxAttempts < 0:
		return fmt.Errorf("patch: MaxAttempts %d is negative", c.MaxAttempts)
	case c.Keys != "" && c.Plan != "":
		return errors.New("patch: Keys and Plan are exclusive: a plan names its keys")
	case c.Resume && c.Journal == "":
		return errors.New("patch: Resume needs Journal, the journal of the patch to resume")
	}
	if err := c.Shard.validate(); err != nil {
		return fmt.Errorf("patch: %w", err)
	}
	return nil
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
