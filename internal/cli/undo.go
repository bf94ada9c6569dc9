package cli

import (
	"bufio"
	"context"
	"fmt"
	"strings"

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
	partial := fs.Bool("partial", false, "with a damaged journal, put back what its intact records hold and list the skipped lines, whose keys are NOT put back (exit 3); without it a damaged journal is refused")
	opts := patch.DefaultOptions()
	var pf progressFlag
	bindOptions(fs, env, &opts, &pf, true)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := withProgress(&opts, env, &pf); err != nil {
		return err
	}
	out := bufio.NewWriterSize(env.Stdout, 64<<10)
	defer out.Flush()
	opts.Out, opts.Log = out, env.Log
	ucfg := patch.UndoConfig{
		Journal: *journal, To: *to, Apply: *yes, Force: *force, UndoJournal: *undoJournal, Partial: *partial,
		Options: opts,
	}
	if err := validate(&ucfg); err != nil {
		return err
	}
	if *yes {
		// A new undo journal each time: the one this run was writing exists.
		env.SetContinue("to continue, run the undo again (keys already put back are found unchanged): " + commandLine(fs, "undo", []string{"undo-journal"}))
	}
	client, err := NewPatchClient(ctx, env, ucfg.Options)
	if err != nil {
		return err
	}
	sum, err := patch.Undo(ctx, client, ucfg)
	out.Flush()
	err = finishPatch(env, sum, err, "")
	if err == nil || sum == nil {
		return err
	}
	// Undo is idempotent: the same command continues it.
	cmd := undoCommand(*journal, *to, *yes, *force, *partial)
	switch sum.Outcome() {
	case patch.Interrupted:
		return fmt.Errorf("%w; to continue, run the same command again (undo is idempotent): %s", err, cmd)
	default: // partial, or failed part way
		if sum.Failures > 0 {
			err = fmt.Errorf("%w; to retry the failures, run the same command again (undo is idempotent): %s", err, cmd)
		}
		if sum.Conflicts > 0 && !*force {
			err = fmt.Errorf("%w; to put the pre-images back over the conflicts too (items changed since the patch): %s", err, undoCommand(*journal, *to, *yes, true, *partial))
		}
	}
	return err
}

// undoCommand is the command line of an undo. The undo journal is left
// out: each undo needs a new one, and the default is.
func undoCommand(journal, to string, yes, force, partial bool) string {
	args := []string{"rewind", "undo", "--journal", journal, "--to", to}
	for _, f := range []struct {
		name string
		set  bool
	}{{"--force", force}, {"--partial", partial}, {"--yes", yes}} {
		if f.set {
			args = append(args, f.name)
		}
	}
	for i, a := range args {
		args[i] = shellQuote(a)
	}
	return strings.Join(args, " ")
}
