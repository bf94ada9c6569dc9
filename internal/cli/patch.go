package cli

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/ddbrewind/rewind"
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

// patchFlags are the flags patch, verify and undo share.
type patchFlags struct {
	rate        float64
	concurrency int
	readers     int
	maxAttempts int
	progress    progressFlag
}

func (p *patchFlags) register(fs *flag.FlagSet, env *Env, writes bool) {
	if writes {
		fs.Float64Var(&p.rate, "rate", 1000, "at most this many writes per second (0: no limit); see the capacity math in the README")
		fs.IntVar(&p.concurrency, "concurrency", 16, "writes in flight")
	}
	fs.IntVar(&p.readers, "readers", 4, "chunks of 100 keys being read at once (each is one BatchGetItem per table)")
	fs.IntVar(&p.maxAttempts, "max-attempts", 10, "attempts per DynamoDB call (backoff with jitter on throttling, 5xx, dropped connections)")
	p.progress.register(fs, env)
}

func (p *patchFlags) check() error {
	switch {
	case p.rate < 0:
		return usagef("--rate %g: must be 0 (no limit) or more", p.rate)
	case p.concurrency < 1:
		return usagef("--concurrency %d: must be at least 1", p.concurrency)
	case p.readers < 1:
		return usagef("--readers %d: must be at least 1", p.readers)
	case p.maxAttempts < 1:
		return usagef("--max-attempts %d: must be at least 1", p.maxAttempts)
	}
	return p.progress.check()
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
	shard := fs.String("shard", "0/1", "i/n: handle only the keys whose hash is i modulo n, to split a key set across machines")
	journal := fs.String("journal", "", "journal of pre-images (default: next to --keys, <keys>.patch-<time>.journal)")
	resume := fs.Bool("resume", false, "continue the patch recorded in --journal after a crash or interrupt")
	var pf patchFlags
	pf.register(fs, env, true)
	var hf historyFlags
	hf.register(fs, env)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *keys != "" && *plan != "" {
		return usagef("--keys and --plan are exclusive: a plan names its keys")
	}
	input := cmp.Or(*plan, *keys)
	hist, closeHist, err := hf.source(env, input, *from, *to)
	if err != nil {
		return err
	}
	defer closeHist()
	if *from == *to {
		return usagef("--from and --to are both %q: patch from the restored copy into production, never a table into itself", *to)
	}
	if *resume && *journal == "" {
		return usagef("--resume needs --journal: the journal of the patch to continue (its path is in that patch's summary)")
	}
	if *limit < 0 {
		return usagef("--limit %d: must be 0 (all) or more", *limit)
	}
	sh, err := patch.ParseShard(*shard)
	if err != nil {
		return usagef("--shard: %v", err)
	}
	if err := pf.check(); err != nil {
		return err
	}
	next := ""
	if *yes {
		if *journal == "" {
			// Named here rather than by the library, so that the command to
			// resume is known before anything is written.
			*journal = patch.DefaultJournal(input, time.Now())
		}
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
	client, err := newPatchClient(ctx, env, pf.concurrency)
	if err != nil {
		return err
	}
	out := bufio.NewWriterSize(env.Stdout, 64<<10)
	defer out.Flush()
	cfg := patch.Config{
		Keys: *keys, Plan: *plan, From: *from, To: *to,
		Apply: *yes, Force: *force, Limit: *limit, Shard: sh,
		Journal: *journal, Resume: *resume,
		Out: out, Log: env.Log,
	}
	if hist != nil {
		cfg.Source = hist
	}
	pf.apply(&cfg, env)
	sum, err := patch.Patch(ctx, client, cfg)
	out.Flush()
	return finishPatch(env, sum, err, next)
}

func (p *patchFlags) apply(cfg *patch.Config, env *Env) {
	cfg.Rate, cfg.Concurrency, cfg.Readers, cfg.MaxAttempts = p.rate, p.concurrency, p.readers, p.maxAttempts
	cfg.Progress, cfg.ProgressEvery = p.progressTo(env)
}

// progressTo returns the patcher's progress callback and interval for
// --progress (nil and 0 for none), drawing on env's stderr.
func (p *patchFlags) progressTo(env *Env) (func(patch.Progress), time.Duration) {
	r := newRenderer(env, p.progress.every)
	return progressTo[patch.Progress](r), r.interval()
}

// finishPatch prints the summary and maps the outcome to an exit code.
// next, when not empty, is the command that continues an interrupted or
// failed run.
func finishPatch(env *Env, sum *patch.Summary, err error, next string) error {
	if sum != nil {
		fmt.Fprint(env.Stderr, sum)
	}
	if errors.Is(err, patch.ErrEmptyKeySet) {
		return usagef("%v", err)
	}
	if err != nil {
		if sum != nil && next != "" {
			fmt.Fprintf(env.Stderr, "  %-10s %s\n", "continue", next)
		}
		return err
	}
	if sum.Partial() {
		if sum.Tool == "verify" {
			return partialf("%d of %d keys differ, %d unknown (listed on stdout)", sum.Mismatches(), sum.Keys, sum.Unknown)
		}
		if sum.Unknown > 0 {
			return partialf("%d keys whose state the history cannot prove (listed on stdout: patch them from a restored table), %d conflicts, %d failures", sum.Unknown, sum.Conflicts, sum.Failures)
		}
		if sum.Tool == "undo" { // how to continue: see undoCmd
			return partialf("%d journal records skipped as damaged (their keys were NOT put back), %d conflicts, %d failures (listed on stdout)", sum.Skipped, sum.Conflicts, sum.Failures)
		}
		return partialf("%d conflicts and %d failures (listed on stdout); review each listed key; to retry failures, run the same command again (a new journal): keys already patched are found unchanged; --force overwrites conflicts", sum.Conflicts, sum.Failures)
	}
	return nil
}

// newPatchClient returns a DynamoDB client from the usual AWS
// configuration, keeping enough idle connections for concurrency requests
// in flight (the SDK's default keeps 10 per host and would open new ones
// all the time). The patcher sets its own retry policy on each call.
func newPatchClient(ctx context.Context, env *Env, concurrency int) (*dynamodb.Client, error) {
	cfg, err := loadAWS(ctx, env)
	if err != nil {
		return nil, err
	}
	if bc, ok := cfg.HTTPClient.(*awshttp.BuildableClient); ok {
		cfg.HTTPClient = bc.WithTransportOptions(func(t *http.Transport) {
			t.MaxIdleConnsPerHost = max(t.MaxIdleConnsPerHost, 2*concurrency+8)
		})
	}
	return dynamodb.NewFromConfig(cfg), nil
}
