package cli

import (
	"context"
	"fmt"
	"strings"
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

const restoreUsage = `--table T --time <t> [--to-table NAME] [--no-indexes] [--billing-mode PAY_PER_REQUEST|PROVISIONED --read-capacity N --write-capacity N] [--wait [--timeout 2h] [--progress 10s]]
       rewind restore --cleanup --target NAME [--table T] [--yes]

Checks that the target table does not exist, that point-in-time recovery is
on, and that the time is inside the restorable window (AWS keeps the latest
restorable time about 5 minutes behind now), then starts
RestoreTableToPointInTime. Times: RFC 3339 with a zone
(2025-03-01T14:05:00Z), epoch seconds, or relative (-2h, -90m, -3d).

It reports what the new table lacks of the source (a restore never copies
the stream, TTL, PITR, auto scaling, alarms, tags or IAM policies: the
patch needs none of them) and what it costs while it exists (an estimate
at us-east-1 list prices), and how to delete it once verify passed.

--cleanup deletes a restored table: it refuses a table no restore created
(DynamoDB's RestoreSummary), the production table (by name or ARN), and a
table with a stream or deletion protection. Without --yes it only shows
what it would delete.

stdout: JSON objects ("kind": "restore" when started, "restored" when
ready with --wait, "cleanup" for --cleanup). stderr: progress and a
summary.`

func (c *restoreCmd) Run(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "restore", restoreUsage)
	table := fs.String("table", "", "source table, the damaged one (required; with --cleanup: the production table, refused as a target)")
	var at timeFlag
	fs.Var(&at, "time", "restore the table as it was at this time (required), e.g. just before the bad deploy")
	to := fs.String("to-table", "", "new table to restore into (default <table>-rewind-<yyyymmddThhmmss>, inside the RESTORE_PREFIX of deploy/operator-policy.json)")
	noIndexes := fs.Bool("no-indexes", false, "restore without secondary indexes (faster; the patcher reads by key only)")
	billing := fs.String("billing-mode", "", "the new table's billing mode: PAY_PER_REQUEST, or PROVISIONED with --read-capacity and --write-capacity (default: the source's)")
	rcu := fs.Int64("read-capacity", 0, "with --billing-mode PROVISIONED: the new table's read capacity units")
	wcu := fs.Int64("write-capacity", 0, "with --billing-mode PROVISIONED: the new table's write capacity units")
	wait := fs.Bool("wait", false, "wait until the new table is ACTIVE")
	timeout := fs.Duration("timeout", pitr.DefaultWaitTimeout, "with --wait: give up waiting after this long (the restore goes on)")
	poll := fs.Duration("poll", pitr.DefaultPollInterval, "with --wait: time between status checks")
	cleanup := fs.Bool("cleanup", false, "delete the restored table --target (a dry run without --yes)")
	target := fs.String("target", "", "with --cleanup: the restored table to delete (name or ARN)")
	yes := fs.Bool("yes", false, "with --cleanup: delete (without it: only show what would be deleted)")
	var pf progressFlag
	pf.register(fs, env)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := pf.check(); err != nil {
		return err
	}
	if *cleanup {
		switch {
		case *target == "":
			return usagef("restore --cleanup: --target is required (the restored table to delete)")
		case at.set || *to != "" || *noIndexes || *billing != "" || *wait:
			return usagef("restore --cleanup: takes --target, --table and --yes only")
		}
		return c.cleanup(ctx, env, *target, *table, *yes)
	}
	switch {
	case *target != "" || *yes:
		return usagef("restore: --target and --yes go with --cleanup")
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
	r, err := client.Restore(ctx, pitr.RestoreInput{
		SourceTable: *table, Time: at.t, TargetTable: *to, NoIndexes: *noIndexes,
		BillingMode: strings.ToUpper(*billing), ReadCapacity: *rcu, WriteCapacity: *wcu, Region: cfg.Region,
	})
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
	facts, deletion := restoreReport(r)
	if !*wait {
		lines := append([]string{fmt.Sprintf("into new table %s, %s, %s (status %s)", r.TargetTable, indexes, r.BillingMode, r.Status)}, facts...)
		lines = append(lines, fmt.Sprintf("wait for it: aws dynamodb wait table-exists --table-name %s", r.TargetTable))
		printSummary(env, title+" STARTED", started, append(lines, deletion...))
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
	lines := append([]string{fmt.Sprintf("new table %s is ACTIVE, %s, %s; took %s", r.TargetTable, indexes, r.BillingMode, roundElapsed(elapsed))}, facts...)
	lines = append(lines, fmt.Sprintf("next: rewind patch --keys impacted.jsonl --from %s --to %s", r.TargetTable, r.SourceTable))
	printSummary(env, title+" DONE", time.Now().UTC().Format(time.RFC3339), append(lines, deletion...))
	return nil
}

// restoreReport renders what the restored table lacks and what it costs
// (facts), and how to delete it once verify passed (cleanup), as summary
// lines: the facts go before the next step, the cleanup after it.
func restoreReport(r pitr.Restore) (facts, cleanup []string) {
	var lines []string
	if s := lackSummary(r.Lacks); s != "" {
		lines = append(lines, fmt.Sprintf("the source has %s: the restored table has none of these (it is a read-only source for the patch; you need none of them unless you keep it)", s))
	}
	lines = append(lines, fmt.Sprintf("AWS never copies %s to a restored table (rewind did not check the source's)", strings.Join(r.NeverCopied, ", ")))
	c := r.Cost
	gb := float64(c.SizeBytes) / (1 << 30)
	cost := fmt.Sprintf("cost while it exists (an estimate at %s list prices, Standard table class, no free tier", c.PriceRegion)
	if c.Region != "" && c.Region != c.PriceRegion {
		cost += fmt.Sprintf("; prices in %s differ", c.Region)
	}
	cost += fmt.Sprintf("): %.3f GB (the source's TableSizeBytes, %d items) at $%.2f per GB-month is $%.2f a month ($%.4f a day); the restore itself $%.2f at $%.2f per GB",
		gb, c.ItemCount, c.StorageUSDPerGBMonth, c.StorageUSDPerMonth, c.StorageUSDPerDay, c.RestoreUSD, c.RestoreUSDPerGB)
	switch c.BillingMode {
	case "PAY_PER_REQUEST":
		cost += fmt.Sprintf("; PAY_PER_REQUEST: the patch's and verify's reads, one read request unit per key up to 4 KB, at $%.3f per million", c.ReadRequestUSDPerMillion)
	default:
		cost += fmt.Sprintf("; PROVISIONED %d RCU / %d WCU: $%.4f an hour whether used or not", c.ReadCapacity, c.WriteCapacity, c.ProvisionedUSDPerHour)
	}
	lines = append(lines, cost)
	cleanup = append(cleanup, "once verify passed, delete it (a dry run first, then --yes):")
	for _, cmd := range r.Cleanup {
		cleanup = append(cleanup, "  "+cmd)
	}
	return lines, cleanup
}

// lackSummary says in a phrase what the source has that the restored
// table lacks, or "" when nothing.
func lackSummary(lacks []pitr.Lack) string {
	var parts []string
	for _, l := range lacks {
		switch l.Setting {
		case "stream":
			parts = append(parts, fmt.Sprintf("a stream (%s)", l.Source))
		case "ttl":
			if attr, ok := strings.CutPrefix(l.Source, "attribute "); ok {
				parts = append(parts, fmt.Sprintf("TTL on attribute `%s`", attr))
			} else {
				parts = append(parts, "TTL "+l.Source)
			}
		case "pitr":
			parts = append(parts, fmt.Sprintf("PITR (%s)", l.Source))
		default:
			parts = append(parts, l.Source)
		}
	}
	return strings.Join(parts, ", ")
}

// cleanup is `rewind restore --cleanup`: plan, then show or delete.
func (c *restoreCmd) cleanup(ctx context.Context, env *Env, target, production string, yes bool) error {
	cfg, err := loadAWS(ctx, env)
	if err != nil {
		return err
	}
	client := pitr.New(dynamodb.NewFromConfig(cfg))
	p, err := client.PlanCleanup(ctx, target, production)
	if err != nil {
		return err
	}
	restored := ""
	if p.RestoreTime != nil {
		restored = " as of " + p.RestoreTime.UTC().Format(time.RFC3339)
	}
	what := fmt.Sprintf("%s (%s): restored from %s%s; %d items, %d bytes", p.Table, p.TableARN, p.RestoredFrom, restored, p.ItemCount, p.SizeBytes)
	now := time.Now().UTC().Format(time.RFC3339)
	if !yes {
		if err := emitJSON(env.Stdout, "cleanup", struct {
			pitr.CleanupPlan
			DryRun bool `json:"dryRun"`
		}{p, true}); err != nil {
			return err
		}
		printSummary(env, "CLEANUP DRY RUN", now, []string{
			"would delete " + what,
			"delete it: run again with --yes",
		})
		return nil
	}
	if err := client.Cleanup(ctx, p); err != nil {
		return err
	}
	if err := emitJSON(env.Stdout, "cleanup", struct {
		pitr.CleanupPlan
		Deleted bool `json:"deleted"`
	}{p, true}); err != nil {
		return err
	}
	printSummary(env, "CLEANUP DONE", now, []string{"deleting " + what})
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
