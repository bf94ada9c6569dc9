package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/ddbrewind/rewind/recover/pitr"
)

func init() { register(&restoreCmd{}) }

// restoreCmd is `rewind restore`: point-in-time restore into a new table.
type restoreCmd struct{}

func (*restoreCmd) Name() string { return "restore" }
func (*restoreCmd) Synopsis() string {
	return "restore a table as it was at a time into a NEW table (never in place)"
}

const restoreUsage = `--table T --time <t> [--to-table NAME] [--no-indexes] [--wait [--timeout 2h] [--progress 10s]]

Checks that the target table does not exist, that point-in-time recovery is
on, and that the time is inside the restorable window, then starts
RestoreTableToPointInTime. Times: RFC 3339 with a zone
(2025-03-01T14:05:00Z), epoch seconds, or relative (-2h, -90m, -3d).

stdout: JSON objects ("kind": "restore" when started, "restored" when
ready with --wait). stderr: progress and a summary.`

func (c *restoreCmd) Run(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "restore", restoreUsage)
	table := fs.String("table", "", "source table, the damaged one (required)")
	var at timeFlag
	fs.Var(&at, "time", "restore the table as it was at this time (required), e.g. just before the bad deploy")
	to := fs.String("to-table", "", "new table to restore into (default <table>-restore-<yyyymmddThhmmss>)")
	noIndexes := fs.Bool("no-indexes", false, "restore without secondary indexes (faster; the patcher reads by key only)")
	wait := fs.Bool("wait", false, "wait until the new table is ACTIVE")
	timeout := fs.Duration("timeout", pitr.DefaultWaitTimeout, "with --wait: give up waiting after this long (the restore goes on)")
	poll := fs.Duration("poll", pitr.DefaultPollInterval, "with --wait: time between status checks")
	var pf progressFlag
	pf.register(fs, env)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := pf.check(); err != nil {
		return err
	}
	switch {
	case *table == "":
		return usagef("restore: --table is required")
	case !at.set:
		return usagef("restore: --time is required (RFC 3339 with zone, epoch seconds, or relative like -2h)")
	case *timeout <= 0:
		return usagef("restore: --timeout %s: must be positive", *timeout)
	case *poll <= 0:
		return usagef("restore: --poll %s: must be positive", *poll)
	}
	cfg, err := loadAWS(ctx, env)
	if err != nil {
		return err
	}
	client := pitr.New(dynamodb.NewFromConfig(cfg))
	r, err := client.Restore(ctx, pitr.RestoreInput{SourceTable: *table, Time: at.t, TargetTable: *to, NoIndexes: *noIndexes})
	if err != nil {
		return err
	}
	if err := emitJSON(env.Stdout, "restore", r); err != nil {
		return err
	}
	indexes := "with the source's indexes"
	if r.NoIndexes {
		indexes = "without secondary indexes"
	}
	title := fmt.Sprintf("RESTORE of %s as of %s", r.SourceTable, r.Time.UTC().Format(time.RFC3339))
	started := r.Started.UTC().Format(time.RFC3339)
	if !*wait {
		printSummary(env, title+" STARTED", started, []string{
			fmt.Sprintf("into new table %s, %s (status %s)", r.TargetTable, indexes, r.Status),
			fmt.Sprintf("wait for it: aws dynamodb wait table-exists --table-name %s", r.TargetTable),
		})
		return nil
	}
	fmt.Fprintf(env.Stderr, "restoring %s into %s; waiting up to %s\n", r.SourceTable, r.TargetTable, *timeout)
	pr := newRenderer(env, pf.every)
	elapsed, err := client.Wait(ctx, r.TargetTable, pitr.WaitOptions{
		Timeout: *timeout, Interval: *poll, Since: r.Started,
		Progress: progressTo[pitr.Progress](pr),
	})
	pr.done()
	if err != nil {
		return err
	}
	if err := emitJSON(env.Stdout, "restored", map[string]any{
		"sourceTable": r.SourceTable, "targetTable": r.TargetTable, "time": r.Time,
		"elapsedSeconds": elapsed.Seconds(),
	}); err != nil {
		return err
	}
	printSummary(env, title+" DONE", time.Now().UTC().Format(time.RFC3339), []string{
		fmt.Sprintf("new table %s is ACTIVE, %s; took %s", r.TargetTable, indexes, roundElapsed(elapsed)),
		fmt.Sprintf("next: rewind patch --keys impacted.jsonl --from %s --to %s", r.TargetTable, r.SourceTable),
	})
	return nil
}

// roundElapsed rounds a duration for people: tenths of a second under a
// minute, whole seconds above.
func roundElapsed(d time.Duration) time.Duration {
	if d < time.Minute {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Second)
}
