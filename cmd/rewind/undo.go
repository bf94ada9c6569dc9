package main

import (
	"bufio"
	"context"

	"github.com/ddbrewind/rewind/recover/patch"
)

func init() { register(&undoCmd{}) }

// undoCmd is `rewind undo`: put back what a patch replaced, from its
// journal. A dry run unless --yes.
type undoCmd struct{}

func (*undoCmd) Name() string { return "undo" }
func (*undoCmd) Synopsis() string {
	return "put back the items a patch replaced, from its journal (prints the plan; --yes writes)"
}

func (c *undoCmd) Run(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "undo", "--journal <patch journal> --to <production table> [--yes] [flags]")
	journal := fs.String("journal", "", "journal of the patch to undo (required)")
	to := fs.String("to", "", "production table (required); must be the table the journal patched")
	yes := fs.Bool("yes", false, "write; without it, print the plan and write nothing")
	force := fs.Bool("force", false, "put pre-images back even over items changed since the patch")
	undoJournal := fs.String("undo-journal", "", "journal of this undo's own pre-images (default <journal>.undo-<time>.journal)")
	var pf patchFlags
	pf.register(fs, true)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *journal == "" || *to == "" {
		return usagef("--journal and --to are required")
	}
	if err := pf.check(); err != nil {
		return err
	}
	if *yes {
		// A new undo journal each time: the one this run was writing exists.
		env.SetContinue("to continue, run the undo again (keys already put back are found unchanged): " + commandLine(fs, "undo", []string{"undo-journal"}))
	}
	client, err := newPatchClient(ctx, env, pf.concurrency)
	if err != nil {
		return err
	}
	out := bufio.NewWriterSize(env.Stdout, 64<<10)
	defer out.Flush()
	ucfg := patch.UndoConfig{
		Journal: *journal, To: *to, Apply: *yes, Force: *force, UndoJournal: *undoJournal,
		Rate: pf.rate, Concurrency: pf.concurrency, Readers: pf.readers, MaxAttempts: pf.maxAttempts,
		Out: out, Log: env.Log,
	}
	if pf.progress > 0 {
		ucfg.Progress, ucfg.ProgressEvery = env.Stderr, pf.progress
	}
	sum, err := patch.Undo(ctx, client, ucfg)
	out.Flush()
	return finishPatch(env, sum, err, commandLine(fs, "undo", []string{"undo-journal"}))
}
