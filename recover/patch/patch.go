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

	"github.com/ddbrewind/rewind"
)

// Patch plans the patch of the keys in cfg.Keys (or of a reviewed plan,
// cfg.Plan) from cfg.From (or cfg.Source) into cfg.To and, with cfg.Apply,
// executes that plan. It returns a summary even when it returns an error
// (interrupted, failed mid-way), except when it refused to start.
//
// Before anything is read or written it refuses, naming the table, file,
// line and key: From and To being one table however spelled (compared by
// DescribeTable's ARN and ID), a source that is not ACTIVE, tables whose
// key schemas differ, an empty input (ErrEmptyKeySet), and any line whose
// table is not To or whose key does not fit the key schema or DynamoDB's
// key rules. The input is read in one pass: a pipe or FIFO is spooled to a
// private file first, so the check and the work see the same lines.
//
// A dry run prints one plan line per key (see Step.AppendJSON). With
// cfg.Plan, every write is also conditional on the production and wanted
// states the dry run recorded (their digests): a key whose production item
// or wanted state changed since the dry run is a conflict, listed and left
// alone. An apply prints one line per conflict or failure (see
// appendReport); Summary counts them. With cfg.Resume, the reverts the
// interrupted run owed are finished first, then the input lines the
// checkpoint covers are skipped and the rest planned again.
func Patch(ctx context.Context, client Client, cfg Config) (*Summary, error) {
	return run(ctx, client, cfg, "patch")
}

// Verify compares the wanted state (cfg.From or cfg.Source) with cfg.To for
// every key in cfg.Keys and prints each key that differs as a plan line
// (its action says what a patch would do). It writes nothing; Apply,
// Journal and Resume are ignored. Summary.Mismatches counts the keys that
// differ; only keys that were read are ever counted as matching.
func Verify(ctx context.Context, client Client, cfg Config) (*Summary, error) {
	cfg.Apply, cfg.Journal, cfg.Resume = false, "", false
	return run(ctx, client, cfg, "verify")
}

// ErrEmptyKeySet is returned (wrapped) when the input holds no key: a
// patch or verify of nothing is never "all match".
var ErrEmptyKeySet = errors.New("the key set is empty")

func run(ctx context.Context, client Client, cfg Config, tool string) (*Summary, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	input, planMode := cfg.Keys, cfg.Plan != ""
	if planMode {
		input = cfg.Plan
	}
	start := time.Now()
	e, err := newEngine(ctx, client, tool, &cfg)
	if err != nil {
		return nil, err
	}
	schema := e.schema
	src := cfg.Source
	if src == nil {
		src = &Table{Client: client, Name: cfg.From, Options: e.opts}
	}
	if t, ok := src.(*Table); ok {
		from, err := describeKeySchema(ctx, client, t.Name, e.opts...)
		if err != nil {
			return nil, fmt.Errorf("%s: restored table: %w", tool, err)
		}
		if cfg.Source == nil {
			t.Name = from.Call
		}
		if from.sameTable(schema) {
			return nil, fmt.Errorf("%s: refused: the source %q and the production table %q are the same table (%s): patch from a restored copy into production, never a table into itself", tool, t.Name, cfg.To, schema.ARN)
		}
		if from.Status != "ACTIVE" {
			return nil, fmt.Errorf("%s: refused: the source table %q is %s, not ACTIVE: wait for it (rewind restore --wait, or aws dynamodb wait table-exists --table-name %s)", tool, t.Name, from.Status, from.Name)
		}
		if !from.equal(schema) {
			return nil, fmt.Errorf("%s: tables have different key schemas: %s has %s; %s has %s", tool, t.Name, from, cfg.To, schema)
		}
	}
	e.source = src

	// Read the input once: a pipe, FIFO or /dev/stdin is copied to a
	// private file, so that the check below and the work see the same
	// lines. An apply keeps that copy next to its journal, for a resume.
	if cfg.Apply && cfg.Journal == "" {
		cfg.Journal = DefaultJournal(input, cfg.now())
	}
	spoolDir := ""
	if cfg.Apply {
		spoolDir = filepath.Dir(cfg.Journal)
	}
	spool, err := rewind.SpoolKeySet(ctx, input, spoolDir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tool, err)
	}
	defer spool.Close()
	path := spool.Path
	if spool.Copied && cfg.Apply && !cfg.Resume {
		kept := KeptInput(cfg.Journal)
		if err := os.Rename(path, kept); err != nil {
			return nil, fmt.Errorf("%s: keep the piped input for a resume: %w", tool, err)
		}
		path = kept
	}
	inputAbs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tool, err)
	}
	in := inputSpec{path: path, name: input, plan: planMode, schema: schema}
	cpBase := checkpoint{Keys: inputAbs, From: cfg.From, To: cfg.To, Shard: cfg.Shard.String(), Limit: cfg.Limit}
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

	total, err := scanInput(&cfg, in, resumed)
	if err != nil {
		return nil, fmt.Errorf("%s: refused, nothing written: %w", tool, err)
	}

	sum := &Summary{Tool: tool, DryRun: !cfg.Apply, Input: path, From: cfg.From, To: cfg.To,
		Shard: cfg.Shard, Limit: cfg.Limit, ResumedFrom: resumed.Line, Plan: cfg.Plan}
	if cfg.Source != nil && cfg.From == "" {
		sum.From = fmt.Sprint(cfg.Source)
	}
	sum.TTLAttribute = e.ttlAttr
	if e.ttlWarning != "" {
		sum.Warnings = append(sum.Warnings, e.ttlWarning)
	}
	e.base, e.total, e.cpBase = resumed.Counts, total, cpBase
	if tool == "verify" {
		e.emit = func(s *Step) bool { return s.writes() || s.Action == ActionUnknown }
	}
	var settled map[string]bool
	var inflight map[string]*plannedState
	if cfg.Apply {
		if cfg.Resume {
			e.journal, err = openJournal(cfg.Journal, lock)
		} else {
			e.journal, err = createJournal(cfg.Journal)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", tool, err)
		}
		err = e.journal.start(startRecord{Tool: tool, Time: cfg.now().UTC().Format(time.RFC3339), Keys: inputAbs,
			From: cfg.From, To: cfg.To, Shard: cfg.Shard.String(), Force: cfg.Force, Resume: cfg.Resume})
		if err != nil {
			e.journal.close()
			return nil, fmt.Errorf("%s: %w", tool, err)
		}
		e.writer.journal = e.journal
		e.cpPath = checkpointPath(cfg.Journal)
		sum.Journal = cfg.Journal
		if cfg.Resume {
			rs, err := readResumeState(cfg.Journal)
			if err == nil {
				settled, err = e.repairPending(ctx, rs.repairs)
			}
			if err != nil {
				e.journal.close()
				return nil, fmt.Errorf("%s: resume: %w", tool, err)
			}
			inflight = rs.inflight
		}
	}

	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tool, err)
	}
	defer f.Close()
	runErr := e.run(ctx, inputChunks(f, &cfg, in, resumed.Line, settled, inflight))
	sum.Run, sum.Counts = e.counts()
	sum.Writes, sum.Rate = e.adapt.stats(), e.rate
	sum.Repaired = e.repaired
	sum.Elapsed = time.Since(start)
	if runErr != nil {
		sum.Err = runErr
		if ctx.Err() != nil {
			sum.Interrupted = true
			return sum, fmt.Errorf("%s: interrupted after %d keys (resume with --resume --journal %s): %w", tool, sum.Run.Keys, cfg.Journal, runErr)
		}
		return sum, runErr
	}
	return sum, nil
}

// checkResume checks that journal and its checkpoint belong to the patch
// described by want (its input, tables and shard; not its limit), and returns the checkpoint (zero when the patch
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
	// The limit may differ: a trial run (Limit 2, say) is extended by a
	// resume with a larger limit or none, into the same journal, so that
	// one undo takes back the trial and the run. Limit counts keys from
	// the input's start either way, so the lines the checkpoint covers are
	// the same keys.
	if cp.Keys != want.Keys || cp.From != want.From || cp.To != want.To || cp.Shard != want.Shard {
		return checkpoint{}, fmt.Errorf("checkpoint %s is of another patch (keys %s, from %s, to %s, shard %s)",
			checkpointPath(journalPath), cp.Keys, cp.From, cp.To, cp.Shard)
	}
	return cp, nil
}

// inputSpec is the input of a patch or verify: a key set, or the plan a
// dry run printed (whose lines are key-set lines with the plan's fields).
type inputSpec struct {
	path   string // the file read (a private copy of a pipe)
	name   string // as the caller named it, for messages
	plan   bool
	schema keySchema
}

// maxPlanLine bounds a plan line: its diff holds two whole values per
// differing attribute, so up to two 400 KB items with JSON overhead.
const maxPlanLine = 8 << 20

// inputReader reads input entries with their line numbers.
type inputReader struct {
	ksr  *rewind.KeySetReader
	spec inputSpec
}

func newInputReader(r io.Reader, spec inputSpec) *inputReader {
	ksr := rewind.NewKeySetReader(r, spec.name)
	if spec.plan {
		ksr.SetMaxLine(maxPlanLine)
	}
	return &inputReader{ksr: ksr, spec: spec}
}

// next returns the next entry and, for a plan, the states it recorded.
func (r *inputReader) next() (rewind.KeySetEntry, *plannedState, error) {
	e, err := r.ksr.Next()
	if err != nil {
		return e, nil, err
	}
	if !r.spec.plan {
		return e, nil, nil
	}
	p, err := parsePlanned(r.ksr.Bytes())
	if err != nil {
		return e, nil, fmt.Errorf("%s: line %d: %w", r.spec.name, r.ksr.Line(), err)
	}
	return e, p, nil
}

// scanInput reads the whole input once before anything is written: it
// refuses a line for another table, with a key that does not fit the
// schema or that DynamoDB would reject, or (for a plan) without the
// states the dry run saw; checks that the checkpoint's line still holds
// its key; and returns how many keys this run will plan. An input with no
// key at all is ErrEmptyKeySet.
func scanInput(cfg *Config, in inputSpec, resumed checkpoint) (int64, error) {
	var resumeKey rewind.Key
	if resumed.Line > 0 {
		k, err := rewind.ParseKey(resumed.Key)
		if err != nil {
			return 0, fmt.Errorf("checkpoint key: %w", err)
		}
		resumeKey = k
	}
	f, err := os.Open(in.path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r := newInputReader(f, in)
	var lines, admitted, thisRun int64
	sawResume := resumed.Line == 0
	for {
		e, _, err := r.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, err
		}
		lines++
		line := r.ksr.Line()
		if !in.schema.holds(e.Table) {
			return 0, fmt.Errorf("%s: line %d: key %s is for table %q, but the production table (--to) is %q", in.name, line, e.Key, e.Table, cfg.To)
		}
		if err := in.schema.check(e.Key); err != nil {
			return 0, fmt.Errorf("%s: line %d: %w", in.name, line, err)
		}
		if err := e.Key.CheckDynamoDB(in.schema.Names...); err != nil {
			return 0, fmt.Errorf("%s: line %d: key %s: DynamoDB would reject it: %w", in.name, line, e.Key, err)
		}
		if line == resumed.Line {
			if !e.Key.Equal(resumeKey) {
				return 0, fmt.Errorf("%s: line %d is key %s, but the checkpoint says %s: the input changed since the patch started", in.name, line, e.Key, resumeKey)
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
	if lines == 0 {
		return 0, fmt.Errorf("%s: %w: nothing to %s (is it the right file? a pipe can be read only once)", in.name, ErrEmptyKeySet, map[bool]string{true: "apply", false: "check"}[cfg.Apply])
	}
	if !sawResume {
		return 0, fmt.Errorf("%s has fewer than %d lines, the checkpoint's: the input changed since the patch started", in.name, resumed.Line)
	}
	return thisRun, nil
}

// inputChunks cuts the input into chunks of the keys this run plans:
// those in the shard, within the limit, after the resumed line, and not
// settled by a resume's repairs. A key the interrupted run had in flight
// is planned against what that run saw (inflight), unless the input is a
// plan. A key repeated within one chunk is planned once.
func inputChunks(f io.Reader, cfg *Config, in inputSpec, resumeLine int, settled map[string]bool, inflight map[string]*plannedState) func() (*chunk, error) {
	r := newInputReader(f, in)
	var admitted int64
	seq := 0
	return func() (*chunk, error) {
		c := &chunk{seq: seq}
		seen := map[string]bool{}
		for len(c.steps) < cfg.BatchSize && (cfg.Limit == 0 || admitted < cfg.Limit) {
			e, planned, err := r.next()
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
			line := r.ksr.Line()
			if line <= resumeLine {
				continue
			}
			enc := string(e.Key.Encode())
			if settled[enc] {
				continue
			}
			if seen[enc] {
				cfg.Log.Warn("key repeated in the input; planned once", "file", in.name, "line", line, "key", e.Key.String())
				continue
			}
			seen[enc] = true
			if planned == nil {
				planned = inflight[enc]
			}
			c.steps = append(c.steps, &Step{Line: line, Table: in.schema.Name, Key: e.Key, planned: planned})
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
	Input   string // key set or plan (patch, verify) or journal (undo)
	From    string
	To      string
	Journal string // the journal written, if any
	// Plan is the reviewed dry run an apply enforced; "" when the plan was
	// made at apply time.
	Plan  string
	Shard Shard
	Limit int64
	// TTLAttribute is the production table's TTL attribute, "" when TTL
	// is off or could not be read (then no key is ActionExpired).
	TTLAttribute string
	// ResumedFrom is the input line the run resumed after; 0 if none.
	ResumedFrom int
	// Repaired is how many reverts an interrupted run owed that this
	// resumed run finished first (counted as conflicts too).
	Repaired int64
	// Counts are the totals, including the run resumed from.
	Counts
	// Run are the counts of this run alone.
	Run Counts
	// Writes is where this run's adaptive concurrency settled and the
	// write attempts throttled; zero Attempts when nothing was written.
	Writes WriteStats
	// Rate is the cap the writes ran under, and why ("500 writes/s (auto:
	// half the table's 1000 provisioned write capacity units)").
	Rate        string
	Elapsed     time.Duration
	Interrupted bool
	// Err is the error that stopped the run, if any.
	Err error
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

// Outcome is how a patch, verify or undo ended.
type Outcome int

const (
	// Done: every key was done (verify: every key matches).
	Done Outcome = iota
	// Partial: the run went through its input but left keys not done:
	// conflicts, failures, keys of unknown state, skipped journal records
	// (verify: keys that differ). Summary.Shortfall says which.
	Partial
	// Failed: an error stopped the run (Summary.Err).
	Failed
	// Interrupted: the context stopped the run; it can be continued.
	Interrupted
)

// Outcome says how the run ended, for a caller to map to an exit code.
func (s *Summary) Outcome() Outcome {
	switch {
	case s.Interrupted:
		return Interrupted
	case s.Err != nil:
		return Failed
	case s.Partial():
		return Partial
	}
	return Done
}

// Shortfall says what a Partial run left undone, and what to do about
// it; "" for any other outcome.
func (s *Summary) Shortfall() string {
	switch {
	case s.Outcome() != Partial:
		return ""
	case s.Tool == "verify":
		return fmt.Sprintf("%d of %d keys differ, %d unknown (listed on stdout)", s.Mismatches(), s.Keys, s.Unknown)
	case s.Unknown > 0:
		return fmt.Sprintf("%d keys whose state the history cannot prove (listed on stdout: patch them from a restored table), %d conflicts, %d failures", s.Unknown, s.Conflicts, s.Failures)
	case s.Tool == "undo":
		return fmt.Sprintf("%d journal records skipped as damaged (their keys were NOT put back), %d conflicts, %d failures (listed on stdout)", s.Skipped, s.Conflicts, s.Failures)
	}
	return fmt.Sprintf("%d conflicts and %d failures (listed on stdout); review each listed key; to retry failures, run the same command again (a new journal): keys already patched are found unchanged; --force overwrites conflicts", s.Conflicts, s.Failures)
}

// Mismatches is the number of keys whose production item is not the
// wanted one.
func (s *Summary) Mismatches() int64 { return s.Restore + s.Delete }

// State is the summary's title: what happened, in a few words.
func (s *Summary) State() string {
	switch {
	case s.Interrupted:
		return "INTERRUPTED"
	case s.Err != nil:
		return "FAILED"
	case s.DryRun && s.Tool != "verify":
		return "dry run, nothing written (add --yes to apply)"
	case s.Tool == "verify" && s.Mismatches() == 0 && s.Unknown == 0:
		return fmt.Sprintf("all %d keys match", s.Keys)
	case s.Tool == "verify":
		return fmt.Sprintf("%d keys DIFFER", s.Mismatches()+s.Unknown)
	case s.Partial():
		return "PARTIAL"
	}
	return "applied"
}

// String formats the summary as lines to paste into an incident channel.
func (s *Summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "rewind %s: %s\n", s.Tool, s.State())
	src := "keys"
	switch {
	case s.Tool == "undo":
		src = "journal"
	case s.Plan != "":
		src = "plan"
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
	if s.Tool == "patch" && !s.DryRun {
		if s.Plan != "" {
			fmt.Fprintf(&b, "  %-10s applied the reviewed dry run: keys changed since it are conflicts\n", "review")
		} else {
			fmt.Fprintf(&b, "  %-10s none: the plan was made now, at apply time, not reviewed (dry run > plan.jsonl, then --yes --plan plan.jsonl applies exactly what was reviewed)\n", "review")
		}
	}
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
	if s.Expired > 0 {
		fmt.Fprintf(&b, "  %-10s %d (production lacks them and their wanted item's TTL %s has passed: DynamoDB's TTL deleted them; not put back, not a difference)\n", "expired", s.Expired, s.TTLAttribute)
	}
	if s.Unknown > 0 {
		fmt.Fprintf(&b, "  %-10s %d (the history cannot prove their state: listed on stdout, left for a table restore)\n", "unknown", s.Unknown)
	}
	if !s.DryRun {
		row("written", s.Written)
		if s.Already > 0 {
			fmt.Fprintf(&b, "  %-10s %d (already the wanted item when written: another run, or a retried write)\n", "already", s.Already)
		}
		row("conflicts", s.Conflicts)
		row("failures", s.Failures)
		if s.Repaired > 0 {
			fmt.Fprintf(&b, "  %-10s %d (items the interrupted run overwrote although they had changed, put back first)\n", "repaired", s.Repaired)
		}
		if s.Writes.Attempts > 0 {
			fmt.Fprintf(&b, "  %-10s %s\n", "writers", s.Writes)
			if s.Rate != "" {
				fmt.Fprintf(&b, "  %-10s %s\n", "rate", s.Rate)
			}
		}
	}
	rate := 0.0
	if s.Elapsed > 0 {
		rate = float64(s.Run.Keys) / s.Elapsed.Seconds()
	}
	fmt.Fprintf(&b, "  %-10s %s (%.0f keys/s)\n", "elapsed", s.Elapsed.Round(time.Millisecond), rate)
	if s.Journal != "" {
		fmt.Fprintf(&b, "  %-10s %s\n", "journal", s.Journal)
	}
	if s.Tool == "patch" && !s.DryRun && s.Limit > 0 && s.Outcome() == Done {
		fmt.Fprintf(&b, "  %-10s only the first %d keys (a trial): patch the rest into this same journal with --resume --journal %s without --limit, and one undo of it takes back both\n", "rest", s.Limit, s.Journal)
	}
	for _, w := range s.Warnings {
		fmt.Fprintf(&b, "  WARNING: %s\n", w)
	}
	return b.String()
}
