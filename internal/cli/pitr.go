package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/ddbrewind/rewind/recover/pitr"
)

func init() { register(&pitrCmd{}) }

// pitrCmd is `rewind pitr enable|status`.
type pitrCmd struct{}

func (*pitrCmd) Name() string { return "pitr" }
func (*pitrCmd) Synopsis() string {
	return "point-in-time recovery of a table: enable|status (restorable window)"
}

const pitrUsage = `enable|status --table T [--recovery-days N]

  enable  turns point-in-time recovery on (restores become possible from now
          on, not before) with a recovery period of N days (1-35).
  status  prints whether it is on and the earliest and latest restorable time.

stdout: one JSON object ("kind": "pitr"). stderr: a summary.`

func (c *pitrCmd) Run(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "pitr", pitrUsage)
	table := fs.String("table", "", "DynamoDB table (required)")
	days := fs.Int("recovery-days", pitr.DefaultRecoveryDays, "enable: recovery period in days, 1-35")
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return parseFlags(fs, args)
		}
		fs.Usage()
		return usagef("pitr: want enable or status first")
	}
	verb := args[0]
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if verb != "enable" && verb != "status" {
		return usagef("pitr: unknown action %q; want enable or status", verb)
	}
	if *table == "" {
		return usagef("pitr %s: --table is required", verb)
	}
	if *days < pitr.MinRecoveryDays || *days > pitr.MaxRecoveryDays {
		return usagef("pitr %s: --recovery-days %d: must be between %d and %d", verb, *days, pitr.MinRecoveryDays, pitr.MaxRecoveryDays)
	}
	cfg, err := loadAWS(ctx, env)
	if err != nil {
		return err
	}
	client := pitr.New(dynamodb.NewFromConfig(cfg))
	var st pitr.Status
	if verb == "enable" {
		st, err = client.Enable(ctx, *table, int32(*days))
	} else {
		st, err = client.Status(ctx, *table)
	}
	if err != nil {
		return err
	}
	if err := emitJSON(env.Stdout, "pitr", st); err != nil {
		return err
	}
	printSummary(env, "PITR "+strings.ToUpper(verb), time.Now().UTC().Format(time.RFC3339), []string{pitrSummary(st)})
	return nil
}

func pitrSummary(st pitr.Status) string {
	if !st.Enabled {
		return fmt.Sprintf("table %s: point-in-time recovery %s; enable it with `rewind pitr enable --table %s` (restores only from then on)", st.Table, st.State, st.Table)
	}
	s := fmt.Sprintf("table %s: point-in-time recovery ENABLED, %d-day period", st.Table, st.RecoveryPeriodInDays)
	if st.EarliestRestorable != nil && st.LatestRestorable != nil {
		e, l := aws.ToTime(st.EarliestRestorable).UTC(), aws.ToTime(st.LatestRestorable).UTC()
		s += fmt.Sprintf("; restorable from %s to %s (%s)", e.Format(time.RFC3339), l.Format(time.RFC3339), l.Sub(e).Round(time.Second))
	}
	return s
}
