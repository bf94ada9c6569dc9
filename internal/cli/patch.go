package cli

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/query"
	"github.com/ddbrewind/rewind/recover/patch"
)

func init() { register(&patchCmd{}) }

// patchCmd is `rewind patch`: put the impacted items back into production
// from a restored table. A dry run unless --yes.
type patchCmd struct{}

func (*patchCmd) Name() string { return "patch" }
func (*patchCmd) Synopsis() string {
	return "put impacted items back from a restored table or the history (prints the plan; --yes writes)"
}

// bindOptions binds the engine's flags, shared by patch, verify and undo,
// to the fields of o, which holds the library's defaults
// (patch.DefaultOptions): the help shows them, and this file holds no
// defaults of its own. writes adds the flags of the write path. pf is
// --progress, the renderer's (withProgress).
func bindOptions(fs *flag.FlagSet, env *Env, o *patch.Options, pf *progressFlag, writes bool) {
	if writes {
		fs.Var((*rateValue)(&o.Rate), "rate", "at most this many `writes` per second, to leave the application capacity; auto: half the table's provisioned write capacity (or its on-demand maximum), no cap on other on-demand tables; 0: no cap but the table's, which the pace and the writes in flight adapt to; see the capacity math in the README")
		fs.IntVar(&o.Concurrency, "concurrency", o.Concurrency, "most writes in flight: it starts at 16 (or this) and adapts, growing while write latency holds, backing off when DynamoDB throttles (which also paces the writes just under what the table took); 1: one at a time")
	}
	fs.IntVar(&o.Readers, "readers", o.Readers, fmt.Sprintf("chunks of %d keys being read at once (each is one BatchGetItem per table)", o.BatchSize))
	fs.IntVar(&o.MaxAttempts, "max-attempts", o.MaxAttempts, "attempts per DynamoDB call (backoff with jitter on throttling, 5xx, dropped connections)")
	pf.register(fs, env)
}

// rateValue is --rate: writes per second, where 0 spells no limit
// (patch.NoRateLimit) and auto the library's default (patch.AutoRate).
type rateValue float64

func (r *rateValue) String() string {
	switch {
	case r == nil || float64(*r) == patch.AutoRate:
		return "auto"
	case math.IsInf(float64(*r), 1):
		return "0"
	}
	return strconv.FormatFloat(float64(*r), 'g', -1, 64)
}

func (r *rateValue) Set(s string) error {
	if s == "auto" {
		*r = rateValue(patch.AutoRate)
		return nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("want a number of writes per second, 0 or auto: %w", err)
	}
	if v == 0 {
		v = patch.NoRateLimit
	}
	*r = rateValue(v)
	return nil
}

// withProgress draws the engine's progress on stderr as --progress says
// (nothing for 0).
func withProgress(o *patch.Options, env *Env, pf *progressFlag) error {
	if err := pf.check(); err != nil {
		return err
	}
	r := newRenderer(env, pf.every)
	if r != nil {
		o.Progress, o.ProgressEvery = progressTo[patch.Progress](r), r.interval()
	}
	return nil
}

// validate runs the library's checks of a configuration before anything
// is opened, and names the flag of the bad field: a usage error.
func validate(cfg interface{ Validate() error }) error {
	err := cfg.Validate()
	var ce *patch.ConfigError
	if errors.As(err, &ce) {
		return &usageError{fmt.Sprintf("--%s: %s", flagOf(ce.Field), ce.Problem)}
	}
	return err
}

// flagOf is the flag bound to a patch configuration field: its name in
// kebab case, but for the few spelled otherwise.
func flagOf(field string) string {
	switch field {
	case "ProgressEvery":
		return "progress"
	case "Plan", "Keys":
		return "keys or --plan"
	}
	var b strings.Builder
	for i, r := range field {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('-')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (c *patchCmd) Run(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "patch", "(--keys impacted.jsonl | --plan plan.jsonl) (--from <restored table> | --from-history --at T) --to <production table> [--yes] [flags]")
	keys := fs.String("keys", "", "key set of the impacted items, JSON Lines (or --plan)")
	plan := fs.String("plan", "", "apply exactly this plan, the stdout of a dry run: keys whose production item or wanted state changed since are conflicts, left alone (instead of --keys)")
	from := fs.String("from", "", "table holding the wanted state: the point-in-time restore (or use --from-history)")
	to := fs.String("to", "", "production table to patch (required); every key-set line must name it")
	yes := fs.Bool("yes", false, "write; without it, print the plan and write nothing")
	force := fs.Bool("force", false, "overwrite items changed since they were planned against (default: report them as conflicts)")
	limit := fs.Int64("limit", 0, "patch only the first N keys of the key set (0: all)")
	journal := fs.String("journal", "", "journal of pre-images (default: next to --keys, <keys>.patch-<time>.journal)")
	resume := fs.Bool("resume", false, "continue the patch recorded in --journal after a crash or interrupt")
	acceptGaps := fs.Bool("accept-capture-gaps", false, "with --from-history --yes: write even though the store knows of capture failures it does not hold (states rebuilt across them may be wrong)")
	var ef engineFlags
	ef.register(fs, env, true, "i/n: handle only the keys whose hash is i modulo n, to split a key set across machines")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	input := cmp.Or(*plan, *keys)
	cfg, hist, done, err := ef.config(env, input, *keys, *from, *to)
	if err != nil {
		return err
	}
	defer done()
	// A state rebuilt from a history with a hole in it may be wrong:
	// say so before the plan, and exit 3 after it; refuse to write from
	// it unless told to.
	var gapErr error
	if hist != nil {
		gaps, err := query.FindCaptureGapsBefore(hist.st, hist.at)
		if err != nil {
			return err
		}
		gapErr = warnCaptureGaps(env, "patch", gaps, false)
		if gapErr != nil && *yes && !*acceptGaps {
			return fmt.Errorf("refusing to write: the history behind --from-history has %d capture %s the store does not hold, so a state it rebuilds may be wrong; nothing was written. Index them (rewind index --failures s3://...), patch from a restored table (--from), or pass --accept-capture-gaps to write anyway",
				len(gaps), plural(len(gaps), "failure", "failures"))
		}
	}
	cfg.Plan, cfg.Apply, cfg.Force, cfg.Limit = *plan, *yes, *force, *limit
	cfg.Journal, cfg.Resume = *journal, *resume
	if err := validate(&cfg); err != nil {
		return err
	}
	next := ""
	if *yes {
		if *journal == "" {
			// Named here rather than by the library, so that the command to
			// resume is known before anything is written.
			*journal = patch.DefaultJournal(input, time.Now())
		}
		cfg.Journal = *journal
		inputFlag, resumeInput := "keys", input
		if *plan != "" {
			inputFlag = "plan"
		}
		if rewind.KeySetIsSpooled(input) && !*resume {
			// A pipe: the copy kept next to the journal is what a resume
			// reads.
			resumeInput = patch.KeptInput(*journal)
		}
		next = commandLine(fs, "patch", []string{"journal", "resume", inputFlag}, "--"+inputFlag, resumeInput, "--resume", "--journal", *journal)
		env.SetContinue("to continue: " + next)
	} else {
		env.SetContinue("nothing was written; to run the dry run again: " + commandLine(fs, "patch", nil))
	}
	client, err := NewPatchClient(ctx, env, cfg.Options)
	if err != nil {
		return err
	}
	sum, err := patch.Patch(ctx, client, cfg)
	done()
	if err := finishPatch(env, sum, err, next); err != nil {
		return err
	}
	return gapErr
}

// finishPatch prints the summary and maps the outcome to an exit code.
// next, when not empty, is the command that continues an interrupted or
// failed run.
func finishPatch(env *Env, sum *patch.Summary, err error, next string) error {
	if sum == nil { // refused before it started
		return err
	}
	env.noteSummary(sum)
	fmt.Fprint(env.Stderr, sum)
	switch sum.Outcome() {
	case patch.Interrupted, patch.Failed:
		if next != "" {
			fmt.Fprintf(env.Stderr, "  %-10s %s\n", "continue", next)
		}
		if sum.Outcome() == patch.Interrupted {
			return &interruptedError{err}
		}
		return err
	case patch.Partial:
		return partialf("%s", sum.Shortfall())
	}
	return err
}
