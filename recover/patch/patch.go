package patch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/ddbrewind/rewind"
	"golang.org/x/time/rate"
)

// Patch plans the patch of the keys in cfg.Keys from cfg.From (or
// cfg.Source) into cfg.To and, with cfg.Apply, executes that plan. It
// returns a summary even when it returns an error (interrupted, failed
// mid-way), except when it refused to start.
//
// Before anything is read or written it refuses, naming the table, file,
// line and key: From equal to To, tables whose key schemas differ, and any
// key-set line whose table is not To or whose key does not fit the key
// schema.
//
// A dry run prints one plan line per key (see Step.AppendJSON). An apply
// prints one line per conflict or failure (see appendReport); Summary
// counts them. With cfg.Resume, key-set lines the checkpoint covers are
// skipped and the rest planned again from the tables' current state.
func Patch(ctx context.Context, client Client, cfg Config) (*Summary, error) {
	return run(ctx, client, cfg, "patch")
}

// Verify compares the wanted state (cfg.From or cfg.Source) with cfg.To for
// every key in cfg.Keys and prints each key that differs as a plan line
// (its action says what a patch would do). It writes nothing; Apply,
// Journal and Resume are ignored. Summary.Mismatches counts the keys that
// differ.
func Verify(ctx context.Context, client Client, cfg Config) (*Summary, error) {
	cfg.Apply, cfg.Journal, cfg.Resume = false, "", false
	return run(ctx, client, cfg, "verify")
}

func run(ctx context.Context, client Client, cfg Config, tool string) (*Summary, error) {
	cfg.ensureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Keys == "" {
		return nil, fmt.Errorf("%s: Keys (the key-set file) is required", tool)
	}
	start := time.Now()
	retryer := NewRetryer(cfg.MaxAttempts)
	opts := []func(*dynamodb.Options){func(o *dynamodb.Options) { o.Retryer = retryer }}

	schema, err := describeKeySchema(ctx, client, cfg.To, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: production table: %w", tool, err)
	}
	src := cfg.Source
	if src == nil {
		from, err := describeKeySchema(ctx, client, cfg.From, opts...)
		if err != nil {
			return nil, fmt.Errorf("%s: restored table: %w", tool, err)
		}
		if !from.equal(schema) {
			return nil, fmt.Errorf("%s: tables have different key schemas: %s has %s; %s has %s", tool, cfg.From, from, cfg.To, schema)
		}
		src = &Table{Client: client, Name: cfg.From, Options: opts}
	} else if t, ok := src.(*Table); ok && t.Name == cfg.To {
		return nil, fmt.Errorf("%s: the source is the production table %q itself", tool, cfg.To)
	}

	keysAbs, err := filepath.Abs(cfg.Keys)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tool, err)
	}
	cpBase := checkpoint{Keys: keysAbs, From: cfg.From, To: cfg.To, Shard: cfg.Shard.String(), Limit: cfg.Limit}
	var resumed checkpoint
	var lock *journalLock // one process per journal: taken before reading it
	if cfg.Resume {
		if lock, err = lockJournal(cfg.Journal); err != nil {
			return nil, fmt.Errorf("%s: resume: %w", tool, err)
		}
		defer lock.release()
		if resumed, err = checkResume(cfg.Journal, cpBase); err != nil {
			return nil, fmt.Errorf("%s: resume: %w", tool, err)
		}
	}

	total, err := scanKeySet(cfg, schema, resumed)
	if err != nil {
		return nil, fmt.Errorf("%s: refused, nothing written: %w", tool, err)
	}

	sum := &Summary{Tool: tool, DryRun: !cfg.Apply, Input: cfg.Keys, From: cfg.From, To: cfg.To,
		Shard: cfg.Shard, Limit: cfg.Limit, ResumedFrom: resumed.Line}
	if cfg.Source != nil && cfg.From == "" {
		sum.From = fmt.Sprint(cfg.Source)
	}
	e := &engine{
		cfg:    &cfg,
		tool:   tool,
		source: src,
		target: &Table{Client: client, Name: cfg.To, Options: opts},
		writer: &writer{client: client, table: cfg.To, keyNames: schema.Names, force: cfg.Force, opts: opts},
		base:   resumed.Counts,
		total:  total,
		cpBase: cpBase,
	}
	if tool == "verify" {
		e.emit = func(s *Step) bool { return s.writes() || s.Action == ActionUnknown }
	}
	if cfg.Rate > 0 {
		e.limiter = rate.NewLimiter(rate.Limit(cfg.Rate), max(1, int(cfg.Rate/10)))
	}
	if cfg.Apply {
		if cfg.Journal == "" {
			cfg.Journal = DefaultJournal(cfg.Keys, cfg.now())
		}
		if cfg.Resume {
			e.journal, err = openJournal(cfg.Journal, lock)
		} else {
			e.journal, err = createJournal(cfg.Journal)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", tool, err)
		}
		err = e.journal.start(startRecord{Tool: tool, Time: cfg.now().UTC().Format(time.RFC3339), Keys: keysAbs,
			From: cfg.From, To: cfg.To, Shard: cfg.Shard.String(), Force: cfg.Force, Resume: cfg.Resume})
		if err != nil {
			e.journal.close()
			return nil, fmt.Errorf("%s: %w", tool, err)
		}
		e.cpPath = checkpointPath(cfg.Journal)
		sum.Journal = cfg.Journal
	}

	f, err := os.Open(cfg.Keys)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tool, err)
	}
	defer f.Close()
	runErr := e.run(ctx, keySetChunks(f, &cfg, resumed.Line))
	sum.Run, sum.Counts = e.counts()
	sum.Elapsed = time.Since(start)
	if runErr != nil {
		if ctx.Err() != nil {
			sum.Interrupted = true
			return sum, fmt.Errorf("%s: interrupted after %d keys (resume with --resume --journal %s): %w", tool, sum.Run.Keys, cfg.Journal, runErr)
		}
		return sum, runErr
	}
	return sum, nil
}

// checkResume checks that journal and its checkpoint belong to the patch
// described by want, and returns the checkpoint (zero when the patch
// stopped before its first checkpoint).
func checkResume(journalPath string, want checkpoint) (checkpoint, error) {
	f, err := os.Open(journalPath)
	if err != nil {
		return checkpoint{}, err
	}
	defer f.Close()
	jr := newJournalReader(f, journalPath)
	rec, err := jr.next()
	if errors.Is(err, io.EOF) {
		// Killed before its start record was durable: nothing can have
		// been written, since every write follows a durable intent.
		return checkpoint{}, nil
	}
	if err != nil {
		return checkpoint{}, err
	}
	var st startRecord
	if err := json.Unmarshal(jr.buf, &st); err != nil || rec.Op != "start" {
		return checkpoint{}, fmt.Errorf("journal %s does not start with a start record", journalPath)
	}
	if st.Tool != "patch" || st.Keys != want.Keys || st.From != want.From || st.To != want.To || st.Shard != want.Shard {
		return checkpoint{}, fmt.Errorf("journal %s is of another patch (keys %s, from %s, to %s, shard %s); this one is keys %s, from %s, to %s, shard %s",
			journalPath, st.Keys, st.From, st.To, st.Shard, want.Keys, want.From, want.To, want.Shard)
	}
	cp, err := readCheckpoint(checkpointPath(journalPath))
	if errors.Is(err, os.ErrNotExist) {
		return checkpoint{}, nil
	}
	if err != nil {
		return checkpoint{}, err
	}
	if cp.Keys != want.Keys || cp.From != want.From || cp.To != want.To || cp.Shard != want.Shard || cp.Limit != want.Limit {
		return checkpoint{}, fmt.Errorf("checkpoint %s is of another patch (keys %s, from %s, to %s, shard %s, limit %d)",
			checkpointPath(journalPath), cp.Keys, cp.From, cp.To, cp.Shard, cp.Limit)
	}
	return cp, nil
}

// scanKeySet reads the whole key set once before anything is written: it
// refuses a line for another table or with a key that does not fit the
// schema, checks that the checkpoint's line still holds its key, and
// returns how many keys this run will plan.
func scanKeySet(cfg Config, schema keySchema, resumed checkpoint) (int64, error) {
	var resumeKey rewind.Key
	if resumed.Line > 0 {
		k, err := rewind.ParseKey(resumed.Key)
		if err != nil {
			return 0, fmt.Errorf("checkpoint key: %w", err)
		}
		resumeKey = k
	}
	f, err := os.Open(cfg.Keys)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r := rewind.NewKeySetReader(f, cfg.Keys)
	var admitted, thisRun int64
	sawResume := resumed.Line == 0
	for {
		e, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, err
		}
		line := r.Line()
		if e.Table != cfg.To {
			return 0, fmt.Errorf("%s: line %d: key %s is for table %q, but the production table (--to) is %q", cfg.Keys, line, e.Key, e.Table, cfg.To)
		}
		if err := schema.check(e.Key); err != nil {
			return 0, fmt.Errorf("%s: line %d: %w", cfg.Keys, line, err)
		}
		if line == resumed.Line {
			if !e.Key.Equal(resumeKey) {
				return 0, fmt.Errorf("%s: line %d is key %s, but the checkpoint says %s: the key set changed since the patch started", cfg.Keys, line, e.Key, resumeKey)
			}
			sawResume = true
		}
		if !cfg.Shard.Contains(e.Key) || (cfg.Limit > 0 && admitted >= cfg.Limit) {
			continue
		}
		admitted++
		if line > resumed.Line {
			thisRun++
		}
	}
	if !sawResume {
		return 0, fmt.Errorf("%s has fewer than %d lines, the checkpoint's: the key set changed since the patch started", cfg.Keys, resumed.Line)
	}
	return thisRun, nil
}

// keySetChunks cuts the key set into chunks of the keys this run plans:
// those in the shard, within the limit, after the resumed line. A key
// repeated within one chunk is planned once.
func keySetChunks(f io.Reader, cfg *Config, resumeLine int) func() (*chunk, error) {
	r := rewind.NewKeySetReader(f, cfg.Keys)
	var admitted int64
	seq := 0
	return func() (*chunk, error) {
		c := &chunk{seq: seq}
		in := map[string]bool{}
		for len(c.steps) < cfg.BatchSize && (cfg.Limit == 0 || admitted < cfg.Limit) {
			e, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, err
			}
			if !cfg.Shard.Contains(e.Key) {
				continue
			}
			admitted++
			line := r.Line()
			if line <= resumeLine {
				continue
			}
			enc := string(e.Key.Encode())
			if in[enc] {
				cfg.Log.Warn("key repeated in the key set; planned once", "file", cfg.Keys, "line", line, "key", e.Key.String())
				continue
			}
			in[enc] = true
			c.steps = append(c.steps, &Step{Line: line, Key: e.Key})
			c.lastLine = line
		}
		if len(c.steps) == 0 {
			return nil, io.EOF
		}
		seq++
		return c, nil
	}
}

// Summary is what a patch, verify or undo did, for the incident channel.
type Summary struct {
	Tool    string // "patch", "verify" or "undo"
	DryRun  bool
	Input   string // key set (patch, verify) or journal (undo)
	From    string
	To      string
	Journal string // the journal written, if any
	Shard   Shard
	Limit   int64
	// ResumedFrom is the key-set line the run resumed after; 0 if none.
	ResumedFrom int
	// Counts are the totals, including the run resumed from.
	Counts
	// Run are the counts of this run alone.
	Run         Counts
	Elapsed     time.Duration
	Interrupted bool
	// Skipped counts the journal lines (and missing records) undo with
	// Partial could not use: the keys they name were not put back.
	Skipped int64
	// Warnings are printed under the summary (undo: a damaged, unfinished
	// or version 1 journal).
	Warnings []string
}

// Partial reports whether some keys were not done: conflicts or failures
// (or, for verify, keys that differ).
func (s *Summary) Partial() bool {
	if s.Tool == "verify" {
		return s.Mismatches() > 0 || s.Unknown > 0
	}
	return s.Conflicts > 0 || s.Failures > 0 || s.Unknown > 0 || s.Skipped > 0
}

// Mismatches is the number of keys whose production item is not the
// wanted one.
func (s *Summary) Mismatches() int64 { return s.Restore + s.Delete }

// String formats the summary as lines to paste into an incident channel.
func (s *Summary) String() string {
	var b strings.Builder
	state := "applied"
	switch {
	case s.Interrupted:
		state = "INTERRUPTED"
	case s.DryRun && s.Tool != "verify":
		state = "dry run, nothing written (add --yes to apply)"
	case s.Tool == "verify" && s.Mismatches() == 0:
		state = "all keys match"
	case s.Tool == "verify":
		state = fmt.Sprintf("%d keys DIFFER", s.Mismatches())
	case s.Partial():
		state = "applied, PARTIAL"
	}
	fmt.Fprintf(&b, "rewind %s: %s\n", s.Tool, state)
	src := "keys"
	if s.Tool == "undo" {
		src = "journal"
	}
	fmt.Fprintf(&b, "  %-10s %s", src, s.Input)
	if s.Shard.Count > 1 {
		fmt.Fprintf(&b, " (shard %s)", s.Shard)
	}
	if s.Limit > 0 {
		fmt.Fprintf(&b, " (first %d keys)", s.Limit)
	}
	if s.ResumedFrom > 0 {
		fmt.Fprintf(&b, " (resumed after line %d)", s.ResumedFrom)
	}
	b.WriteString("\n")
	if s.From != "" {
		fmt.Fprintf(&b, "  %-10s %s\n", "from", s.From)
	}
	fmt.Fprintf(&b, "  %-10s %s\n", "to", s.To)
	row := func(name string, v int64) { fmt.Fprintf(&b, "  %-10s %d\n", name, v) }
	row("keys read", s.Keys)
	if s.Tool == "verify" {
		row("match", s.Unchanged+s.Absent)
		fmt.Fprintf(&b, "  %-10s %d (a patch would restore %d, delete %d)\n", "differ", s.Mismatches(), s.Restore, s.Delete)
	} else {
		row("restore", s.Restore)
		row("delete", s.Delete)
		row("unchanged", s.Unchanged)
		row("absent", s.Absent)
	}
	if s.Unknown > 0 {
		fmt.Fprintf(&b, "  %-10s %d (the history cannot prove their state: listed on stdout, left for a table restore)\n", "unknown", s.Unknown)
	}
	if !s.DryRun {
		row("written", s.Written)
		row("conflicts", s.Conflicts)
		row("failures", s.Failures)
	}
	rate := 0.0
	if s.Elapsed > 0 {
		rate = float64(s.Run.Keys) / s.Elapsed.Seconds()
	}
	fmt.Fprintf(&b, "  %-10s %s (%.0f keys/s)\n", "elapsed", s.Elapsed.Round(time.Millisecond), rate)
	if s.Journal != "" {
		fmt.Fprintf(&b, "  %-10s %s\n", "journal", s.Journal)
	}
	for _, w := range s.Warnings {
		fmt.Fprintf(&b, "  WARNING: %s\n", w)
	}
	return b.String()
}
