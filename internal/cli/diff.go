package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/recover/diff"
)

func init() { register(&diffCmd{}) }

// diffCmd is `rewind diff`: the runbook's last resort. It compares the
// whole restored table with the whole production table and writes the
// key set of the items that differ, ready for rewind patch.
type diffCmd struct{}

func (*diffCmd) Name() string { return "diff" }
func (*diffCmd) Synopsis() string {
	return "compare a restored table with production, item by item, and write the key set of what differs"
}

func (c *diffCmd) Run(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "diff", "--from <restored table> --to <production table> [flags] > diff.jsonl")
	from := fs.String("from", "", "restored table (the wanted state), name or ARN (required)")
	to := fs.String("to", "", "production table, name or ARN (required); the key set names it")
	format := fs.String("format", "keys", "keys: a key set, as rewind query writes and rewind patch takes; json: the same lines with each differing attribute's two values (\"attributes\")")
	opts := diff.DefaultOptions()
	fs.IntVar(&opts.Segments, "segments", opts.Segments, "TotalSegments of each table's parallel Scan")
	fs.IntVar(&opts.Workers, "workers", opts.Workers, "segments scanned at once, both tables together")
	fs.Var((*readRateValue)(&opts.ReadRate), "read-rate", "at most this many read capacity `units` per second on each table, as DynamoDB reports them; 0: no cap but the table's")
	pageLimit := fs.Int("page-limit", 0, "items evaluated per Scan call (0: as many as fit DynamoDB's 1 MB page)")
	fs.BoolVar(&opts.ConsistentRead, "consistent", false, "strongly consistent Scans (twice the read units)")
	fs.Var((*byteSize)(&opts.MemoryBudget), "memory", "bytes of scanned keys and digests (and items, with --format json) held in memory before sorted runs spill to disk (suffixes KiB, MiB, GiB)")
	fs.StringVar(&opts.TempDir, "tmp", "", "directory for the spilled runs (default: the system's)")
	fs.IntVar(&opts.MaxAttempts, "max-attempts", opts.MaxAttempts, "attempts per DynamoDB call (backoff with jitter on throttling, 5xx, dropped connections)")
	sinceAttr := fs.String("since-attribute", "", "with --since: compare only production items whose ATTRIBUTE is at least --since (cannot see deletes, nor writes that do not set it)")
	var since timeFlag
	fs.Var(&since, "since", "with --since-attribute: the time (RFC 3339, epoch seconds, or -2h)")
	sinceFormat := fs.String("since-format", "iso", "how the attribute holds a time: iso (a string, RFC 3339 in UTC with Z, compared byte by byte, so as the application writes it), epoch (a number of seconds), epoch-ms (a number of milliseconds)")
	var pf progressFlag
	pf.register(fs, env)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *from == "" || *to == "" {
		fs.Usage()
		return usagef("diff: --from (the restored table) and --to (production) are required")
	}
	if *format != "keys" && *format != "json" {
		return usagef("--format %q: want keys or json", *format)
	}
	if (*sinceAttr == "") != !since.set {
		return usagef("--since-attribute and --since go together: name the attribute and the time")
	}
	cfg := diff.Config{From: *from, To: *to, Options: opts}
	if since.set {
		av, err := sinceValue(since.t, *sinceFormat)
		if err != nil {
			return err
		}
		cfg.SinceAttribute, cfg.Since = *sinceAttr, av
	}
	if *pageLimit < 0 || *pageLimit > math.MaxInt32 {
		return usagef("--page-limit %d: want 0 or a positive number of items", *pageLimit)
	}
	cfg.PageLimit = int32(*pageLimit)
	cfg.AttributeDiffs = *format == "json"
	cfg.Log = env.Log
	if err := pf.check(); err != nil {
		return err
	}
	if r := newRenderer(env, pf.every); r != nil {
		cfg.Progress, cfg.ProgressEvery = progressTo[diff.Progress](r), r.interval()
	}
	if err := cfg.Validate(); err != nil {
		var ce *diff.ConfigError
		if errors.As(err, &ce) {
			return &usageError{fmt.Sprintf("--%s: %s", diffFlagOf(ce.Field), ce.Problem)}
		}
		return err
	}
	env.SetContinue("a diff writes nothing to the tables; run it again: " + commandLine(fs, "diff", nil))
	awsCfg, err := loadAWS(ctx, env)
	if err != nil {
		return err
	}
	client := dynamodb.NewFromConfig(awsCfg)

	out := bufio.NewWriterSize(env.Stdout, 64<<10)
	var line []byte
	sum, err := diff.Diff(ctx, client, cfg, func(d diff.Difference) error {
		e := rewind.KeySetEntry{Table: d.Table, Key: d.Key, Actions: []rewind.Action{d.Kind.Action()}}
		line = e.AppendJSON(line[:0])
		if cfg.AttributeDiffs {
			line = appendAttributeDiffs(line[:len(line)-1], diff.AttributeDiffs(d.From, d.To))
		}
		line = append(line, '\n')
		_, err := out.Write(line)
		return err
	})
	if ferr := out.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("diff: write the key set: %w", ferr)
	}
	if err != nil {
		if ctx.Err() != nil {
			// The key set is written as the tables are matched, after both
			// scans: what stdout holds is a prefix, or nothing.
			return &interruptedError{fmt.Errorf("%w: stdout holds part of the key set at most: do not patch from it; run the diff again (it writes nothing to either table)", err)}
		}
		return err
	}
	fmt.Fprint(env.Stderr, sum)
	return nil
}

// appendAttributeDiffs appends ,"attributes":[...]} to a key-set line
// without its closing brace.
func appendAttributeDiffs(dst []byte, ds []diff.AttributeDiff) []byte {
	dst = append(dst, `,"attributes":[`...)
	for i, d := range ds {
		if i > 0 {
			dst = append(dst, ',')
		}
		p, _ := json.Marshal(d.Path)
		dst = append(dst, `{"path":`...)
		dst = append(dst, p...)
		dst = append(dst, `,"from":`...)
		dst = appendAVOrNull(dst, d.From)
		dst = append(dst, `,"to":`...)
		dst = appendAVOrNull(dst, d.To)
		dst = append(dst, '}')
	}
	return append(dst, "]}"...)
}

func appendAVOrNull(dst []byte, av types.AttributeValue) []byte {
	if av == nil {
		return append(dst, "null"...)
	}
	return rewind.AppendAttributeValueJSON(dst, av)
}

// sinceValue is the time t as the attribute holds it.
func sinceValue(t time.Time, format string) (types.AttributeValue, error) {
	switch format {
	case "iso":
		// Strings compare byte by byte: write the time as applications
		// most often do, in UTC with Z, and without a fraction when it
		// has none.
		return &types.AttributeValueMemberS{Value: t.UTC().Format(time.RFC3339Nano)}, nil
	case "epoch":
		return &types.AttributeValueMemberN{Value: strconv.FormatInt(t.Unix(), 10)}, nil
	case "epoch-ms":
		return &types.AttributeValueMemberN{Value: strconv.FormatInt(t.UnixMilli(), 10)}, nil
	}
	return nil, usagef("--since-format %q: want iso, epoch or epoch-ms", format)
}

// diffFlagOf is the flag bound to a diff configuration field: flagOf, but
// for the ones diff spells otherwise.
func diffFlagOf(field string) string {
	switch field {
	case "ReadRate":
		return "read-rate"
	case "MemoryBudget":
		return "memory"
	case "ConsistentRead":
		return "consistent"
	case "Since", "SinceAttribute":
		return "since"
	}
	return flagOf(field)
}

// readRateValue is --read-rate: read units per second, 0 for no cap.
type readRateValue float64

func (r *readRateValue) String() string {
	if r == nil || math.IsInf(float64(*r), 1) {
		return "0"
	}
	return strconv.FormatFloat(float64(*r), 'g', -1, 64)
}

func (r *readRateValue) Set(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || math.IsNaN(v) {
		return fmt.Errorf("want a number of read units per second, or 0 for no cap")
	}
	if v == 0 {
		v = diff.NoReadLimit
	}
	*r = readRateValue(v)
	return nil
}

// byteSize is a size in bytes with an optional binary suffix.
type byteSize int64

func (b *byteSize) String() string {
	if b == nil {
		return "0"
	}
	n := int64(*b)
	for _, u := range []struct {
		s string
		n int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.n && n%u.n == 0 {
			return strconv.FormatInt(n/u.n, 10) + u.s
		}
	}
	return strconv.FormatInt(n, 10)
}

func (b *byteSize) Set(s string) error {
	mult := int64(1)
	for _, u := range []struct {
		s string
		n int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}} {
		if v, ok := strings.CutSuffix(s, u.s); ok {
			s, mult = v, u.n
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 1 || n > math.MaxInt64/mult {
		return fmt.Errorf("want a positive size such as 256MiB")
	}
	*b = byteSize(n * mult)
	return nil
}
