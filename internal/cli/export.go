package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/ddbrewind/rewind/recover/pitrexport"
)

func init() { register(&exportCmd{}) }

// exportCmd is `rewind export`: incremental exports of a table's changes
// from its point-in-time recovery history, for tables without capture.
type exportCmd struct{}

func (*exportCmd) Name() string { return "export" }
func (*exportCmd) Synopsis() string {
	return "export a table's changes in a window from PITR to S3 (for tables without capture)"
}

const exportUsage = `--table T --from <t1> --to <t2> --s3 s3://bucket/prefix [--wait [--timeout 2h] [--progress 10s]] [--dry-run]

Asks DynamoDB for incremental exports (DynamoDB JSON, new and old images)
of the items that changed in [from, to), read from the table's
point-in-time recovery history: the way to find impacted items on a table
that never had rewind's capture. Then index each export:
  rewind index --export s3://bucket/prefix/AWSDynamoDB/<export-id>/

Checks first that PITR is on and that the window is inside its restorable
period. An export covers 15 minutes to 24 hours; a longer window is split
into equal consecutive exports. Each export holds one line per changed
item: its state at the export's start (old image), at its end (new
image), and its last write time, not every write. So give as --from the
time you would restore to, just before the bad deploy: the old images of
the first export are then the state to go back to.

Rerunning with the same absolute --from/--to returns the exports already
started (for 8 hours) instead of starting new ones.

Times: RFC 3339 with a zone (2025-03-01T14:05:00Z), epoch seconds, or
relative (-2h, -90m, -3d). PITR's latest restorable time lags about five
minutes behind now, so --to now is refused: say --to -6m.

stdout: one JSON object per export ("kind": "export"; "export-plan" with
--dry-run), with its ARN, id, window, status and location. stderr:
progress and a summary. Exit 3 when some exports failed and others did
not.`

func (c *exportCmd) Run(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "export", exportUsage)
	table := fs.String("table", "", "table name or ARN (required)")
	var from, to timeFlag
	fs.Var(&from, "from", "start of the window, inclusive (required)")
	fs.Var(&to, "to", "end of the window, exclusive (required)")
	dest := fs.String("s3", "", "s3://bucket/prefix to export to (required)")
	owner := fs.String("bucket-owner", "", "account id owning the bucket, when it is not yours")
	wait := fs.Bool("wait", false, "wait until every export is done")
	timeout := fs.Duration("timeout", pitrexport.DefaultWaitTimeout, "with --wait: give up waiting after this long (the exports go on)")
	poll := fs.Duration("poll", pitrexport.DefaultPollInterval, "with --wait: time between status checks")
	dryRun := fs.Bool("dry-run", false, "check and print the planned exports; start nothing")
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
		return usagef("export: --table is required")
	case !from.set || !to.set:
		return usagef("export: --from and --to are required (RFC 3339 with zone, epoch seconds, or relative like -2h)")
	case *dest == "":
		return usagef("export: --s3 is required (s3://bucket/prefix)")
	case *timeout <= 0:
		return usagef("export: --timeout %s: must be positive", *timeout)
	case *poll <= 0:
		return usagef("export: --poll %s: must be positive", *poll)
	}
	bucket, prefix, err := parseS3URI(*dest)
	if err != nil {
		return usagef("export: --s3: %v", err)
	}
	req := pitrexport.Request{Table: *table, From: from.t, To: to.t, Bucket: bucket, Prefix: prefix, BucketOwner: *owner}
	// A window the API would refuse whatever the table is a usage error.
	if _, err := pitrexport.Split(req.From, req.To); err != nil {
		return usagef("export: %v", err)
	}
	cfg, err := loadAWS(ctx, env)
	if err != nil {
		return err
	}
	client := pitrexport.New(dynamodb.NewFromConfig(cfg))
	plan, err := client.Plan(ctx, req)
	if err != nil {
		return err
	}
	span := pitrexport.Window{From: plan.Windows[0].From, To: plan.Windows[len(plan.Windows)-1].To}
	title := fmt.Sprintf("EXPORT of %s changes in [%s, %s)", plan.Table, span.From.Format(time.RFC3339Nano), span.To.Format(time.RFC3339Nano))
	length := plan.Windows[0].Duration()
	if length > time.Minute {
		length = length.Round(time.Minute) // split windows differ by fractions of a second
	}
	fmt.Fprintf(env.Stderr, "export: %s [%s, %s): %d incremental export(s) of %s to s3://%s/%s (restorable window [%s, %s])\n",
		plan.Table, span.From.Format(time.RFC3339Nano), span.To.Format(time.RFC3339Nano), len(plan.Windows),
		length, plan.Bucket, plan.Prefix,
		plan.Earliest.Format(time.RFC3339), plan.Latest.Format(time.RFC3339))
	if *dryRun {
		for _, w := range plan.Windows {
			if err := emitJSON(env.Stdout, "export-plan", map[string]any{
				"table": plan.Table, "tableArn": plan.TableArn, "from": w.From, "to": w.To,
				"s3": "s3://" + plan.Bucket + "/" + plan.Prefix,
			}); err != nil {
				return err
			}
		}
		printSummary(env, title+" PLANNED (dry run)", time.Now().UTC().Format(time.RFC3339), []string{
			fmt.Sprintf("%d export(s), nothing started; run again without --dry-run to start them", len(plan.Windows)),
		})
		return nil
	}

	exports, startErr := client.Start(ctx, plan)
	again := fmt.Sprintf("rewind export --table %s --from %s --to %s --s3 %s --wait", plan.Table,
		span.From.Format(time.RFC3339Nano), span.To.Format(time.RFC3339Nano), *dest)
	if startErr != nil {
		emitExports(env, exports)
		return fmt.Errorf("%w (%d of %d export(s) started; rerun to start the rest: %s)", startErr, len(exports), len(plan.Windows), again)
	}
	if !*wait {
		if err := emitExports(env, exports); err != nil {
			return err
		}
		lines := []string{}
		for _, e := range exports {
			lines = append(lines, fmt.Sprintf("%s [%s, %s) %s: %s", e.ExportID, e.From.Format(time.RFC3339), e.To.Format(time.RFC3339), e.Status, e.Location))
		}
		lines = append(lines, "wait for them: "+again+" (returns the same exports)")
		printSummary(env, title+" STARTED", time.Now().UTC().Format(time.RFC3339), lines)
		return nil
	}

	fmt.Fprintf(env.Stderr, "waiting for %d export(s), up to %s\n", len(exports), *timeout)
	pr := newRenderer(env, pf.every)
	exports, waitErr := client.Wait(ctx, exports, pitrexport.WaitOptions{
		Timeout: *timeout, Interval: *poll,
		Progress: progressTo[pitrexport.WaitProgress](pr),
	})
	pr.done()
	if err := emitExports(env, exports); err != nil {
		return err
	}
	if waitErr != nil {
		if errors.Is(waitErr, pitrexport.ErrWaitTimeout) {
			return fmt.Errorf("%w; wait again: %s", waitErr, again)
		}
		return waitErr
	}
	var lines []string
	var failed []string
	for _, e := range exports {
		switch e.Status {
		case "COMPLETED":
			lines = append(lines, fmt.Sprintf("%s [%s, %s): %d changed item(s); index it: rewind index --export %s",
				e.ExportID, e.From.Format(time.RFC3339), e.To.Format(time.RFC3339), e.ItemCount, e.Location))
		default:
			lines = append(lines, fmt.Sprintf("%s [%s, %s): %s %s: %s", e.ExportID, e.From.Format(time.RFC3339), e.To.Format(time.RFC3339), e.Status, e.FailureCode, e.FailureMessage))
			failed = append(failed, e.ExportID)
		}
	}
	state := "DONE"
	if len(failed) > 0 {
		state = "FAILED"
	}
	printSummary(env, title+" "+state, time.Now().UTC().Format(time.RFC3339), lines)
	switch {
	case len(failed) == len(exports):
		return fmt.Errorf("every export failed: %s", strings.Join(failed, ", "))
	case len(failed) > 0:
		return partialf("%d of %d exports failed: %s (the others are complete)", len(failed), len(exports), strings.Join(failed, ", "))
	}
	return nil
}

func emitExports(env *Env, exports []pitrexport.Export) error {
	for _, e := range exports {
		if err := emitJSON(env.Stdout, "export", e); err != nil {
			return err
		}
	}
	return nil
}

// parseS3URI splits s3://bucket/prefix; the prefix may be empty.
func parseS3URI(s string) (bucket, prefix string, err error) {
	rest, ok := strings.CutPrefix(s, "s3://")
	if !ok {
		return "", "", fmt.Errorf("%q is not an s3://bucket/prefix URI", s)
	}
	bucket, prefix, _ = strings.Cut(rest, "/")
	if bucket == "" {
		return "", "", fmt.Errorf("%q has no bucket", s)
	}
	return bucket, strings.Trim(prefix, "/"), nil
}
