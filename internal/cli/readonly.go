package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"regexp"

	"github.com/aws/aws-sdk-go-v2/service/appconfig"
	"github.com/aws/aws-sdk-go-v2/service/dax"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	rewind "github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/recover/readonly"
)

func init() { register(&readonlyCmd{}) }

// readonlyCmd is `rewind readonly on|off|status`: freeze and unfreeze
// writes, in the application layer (SSM tenant list) and the IAM layer
// (deny-write policy on the application's roles).
type readonlyCmd struct{}

func (*readonlyCmd) Name() string { return "readonly" }
func (*readonlyCmd) Synopsis() string {
	return "freeze or unfreeze writes: on|off|status (SSM tenant list and deny-write IAM policy)"
}

const readonlyUsage = `on|off|status [--tenants t1,t2 | --all] [--table T --roles r1,r2] [--iam tenants|whole-table] [--tenant-attribute pk --tenant-regex RE] [--wait 2m] [--parameter NAME | --flags appconfig:APP/ENV/PROFILE [--flags-strategy ID]] [--policy NAME] [--layer-timeout 30s]

  on      --tenants/--all adds tenants to the SSM list the application's guard
          reads; --roles (with --table) attaches the deny-write policy to
          those application roles. Either or both; the SSM list first.
          With --tenants the IAM deny covers only those tenants' items (a
          dynamodb:LeadingKeys condition built from the tenant rule) and is
          merged into what the policy already denies; a rule IAM cannot
          match is refused (exit 2) unless --all or --iam whole-table. The
          deny names the table in every replica region of a global table.
          A role at its managed-policy quota gets an inline copy. Then it
          waits (--wait, 0 to skip) until IAM's evaluation
          (SimulatePrincipalPolicy) shows every role denied: "effective";
          not within --wait: INCOMPLETE, exit 3.
  off     --tenants removes only those tenants, from the SSM list and from
          the IAM deny (the other tenants stay frozen); without --tenants
          the list is cleared and the deny lifted from every role (or only
          from --roles). The IAM layer first.
  status  shows both layers, IAM's evaluation of the deny, and warns where
          they disagree.

The application layer is the SSM StringList --parameter, or with --flags
the feature flag "readonly" (attribute "tenants") in an AppConfig feature
flag profile: on/off create a hosted configuration version and deploy it
to ENV with --flags-strategy (default AppConfig.AllAtOnce, which bakes 10
min: a second change within that fails with ConflictException; give a
strategy with no bake time for incidents). The guard reads the flag
through the AppConfig Agent.

Each layer is tried even when the other fails, under its own deadline
(--layer-timeout). One layer failed and the other done: the summary says
INCOMPLETE, gives the aws CLI commands for the failed layer, and the exit
code is 3; rerunning the same command is safe (each layer is idempotent).
Every layer asked for failed: exit 1.

stdout: one JSON object per layer asked for ("kind": "application", "iam"),
with "outcome" ("ok" or "failed", then "reason" and, when the deadline
passed, "timedOut"), and one per warning ("kind": "warning"). stderr: a
summary to paste in the incident channel, with each layer ok, FAILED or
skipped.`

func (c *readonlyCmd) Run(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "readonly", readonlyUsage)
	var tenants, roles listFlag
	fs.Var(&tenants, "tenants", "comma-separated tenant ids")
	all := fs.Bool("all", false, "every tenant (on: adds \"all\"; off: clears the list)")
	parameter := fs.String("parameter", readonly.DefaultParameter, "SSM StringList parameter the application's guard reads")
	flagsRef := fs.String("flags", "", "appconfig:APP/ENV/PROFILE: keep the tenant list in an AppConfig feature flag instead of SSM (names or ids)")
	flagsStrategy := fs.String("flags-strategy", readonly.DefaultStrategy, "with --flags: AppConfig deployment strategy id")
	policyName := fs.String("policy", readonly.DefaultPolicy, "name of the deny-write managed policy (one per table)")
	table := fs.String("table", "", "DynamoDB table the IAM layer freezes")
	fs.Var(&roles, "roles", "comma-separated application IAM role names (never the role you run as)")
	var opts readonly.Options
	opts.EnsureDefaults()
	fs.DurationVar(&opts.LayerTimeout, "layer-timeout", opts.LayerTimeout, "deadline for each layer (all its SSM, or STS and IAM, calls and retries); the other layer is still tried when one runs out")
	fs.DurationVar(&opts.EffectTimeout, "wait", opts.EffectTimeout, "on: how long to wait for IAM's evaluation to show the deny in force (0: do not wait; status: 0 skips the evaluation)")
	iamScope := fs.String("iam", "tenants", "on: what the IAM deny covers with --tenants: tenants (their items only) or whole-table")
	tenantAttr := fs.String("tenant-attribute", env.Getenv("REWIND_TENANT_ATTRIBUTE"), "key attribute the tenant comes from ($REWIND_TENANT_ATTRIBUTE; default pk)")
	tenantRegex := fs.String("tenant-regex", env.Getenv("REWIND_TENANT_REGEX"), "regex with one capture group extracting the tenant from that attribute ($REWIND_TENANT_REGEX; default the whole value)")
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return parseFlags(fs, args)
		}
		fs.Usage()
		return usagef("readonly: want on, off or status first")
	}
	verb := args[0]
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	parameterSet := false
	fs.Visit(func(f *flag.Flag) { parameterSet = parameterSet || f.Name == "parameter" })
	var flagApp, flagEnv, flagProfile string
	if *flagsRef != "" {
		if parameterSet {
			return usagef("readonly %s: --parameter (SSM) and --flags (AppConfig) together; the list lives in one of them", verb)
		}
		var err error
		if flagApp, flagEnv, flagProfile, err = readonly.ParseFlagsRef(*flagsRef); err != nil {
			return usagef("readonly %s: %v", verb, err)
		}
	}
	if *all && len(tenants) > 0 {
		return usagef("readonly %s: --tenants and --all together", verb)
	}
	if len(roles) > 0 && *table == "" && verb == "on" {
		return usagef("readonly on: --roles needs --table (the policy names the table it freezes)")
	}
	if opts.EffectTimeout == 0 {
		opts.SkipEffectCheck = true
		opts.EffectTimeout = readonly.DefaultEffectTimeout
	}
	if err := opts.Validate(); err != nil {
		return usagef("readonly %s: %v", verb, err)
	}
	if *iamScope != "tenants" && *iamScope != "whole-table" {
		return usagef("readonly %s: --iam %q: want tenants or whole-table", verb, *iamScope)
	}
	rule := rewind.TenantRule{Attribute: *tenantAttr}
	if *tenantRegex != "" {
		re, err := regexp.Compile(*tenantRegex)
		if err != nil {
			return usagef("--tenant-regex: %v", err)
		}
		rule.Regex = re
	}
	if err := rule.Validate(); err != nil {
		return usagef("--tenant-regex: %v", err)
	}
	if verb == "off" && len(tenants) > 0 && len(roles) > 0 {
		return usagef("readonly off: --tenants (thaw those tenants for every role) or --roles (lift the deny from those roles), not both")
	}
	ts := []string(tenants)
	if *all && verb == "on" {
		ts = []string{readonly.All}
	}
	switch verb {
	case "on":
		if len(ts) == 0 && len(roles) == 0 {
			return usagef("readonly on: nothing to do; give --tenants or --all (application layer) and/or --table with --roles (IAM layer)")
		}
	case "off", "status":
	default:
		return usagef("readonly: unknown action %q; want on, off or status", verb)
	}

	cfg, err := loadAWS(ctx, env)
	if err != nil {
		return err
	}
	var list readonly.AppLayer = readonly.NewTenantList(ssm.NewFromConfig(cfg), *parameter)
	if *flagsRef != "" {
		fl := readonly.NewFlagList(appconfig.NewFromConfig(cfg), flagApp, flagEnv, flagProfile)
		fl.Strategy = *flagsStrategy
		list = fl
	}
	var policy *readonly.DenyPolicy
	// `on` without roles leaves IAM alone; everything else reads or
	// changes the deny.
	if needsIAM := verb != "on" || len(roles) > 0; needsIAM {
		if cfg.Region == "" {
			return errors.New("no AWS region (set AWS_REGION): the policy names the table's ARN")
		}
		policy = readonly.NewDenyPolicy(iam.NewFromConfig(cfg), sts.NewFromConfig(cfg), *policyName, cfg.Region)
		policy.Tables = dynamodb.NewFromConfig(cfg)
		policy.DAX = dax.NewFromConfig(cfg)
	}
	now := time.Now().UTC().Format(time.RFC3339)

	if verb == "status" {
		st, err := readonly.ReadStatus(ctx, list, policy, *table, rule, opts)
		if err != nil {
			return err
		}
		return renderStatus(ctx, env, st, now)
	}
	var rep readonly.Report
	if verb == "on" {
		rep, err = readonly.Freeze(ctx, list, policy, readonly.FreezeRequest{Tenants: ts, Table: *table, Roles: roles, Rule: rule, WholeTable: *iamScope == "whole-table"}, opts)
	} else {
		rep, err = readonly.Thaw(ctx, list, policy, readonly.ThawRequest{Tenants: ts, Roles: roles, Table: *table, Rule: rule}, opts)
	}
	var refused *readonly.RefusedError
	if errors.As(err, &refused) {
		return usagef("%v", err)
	}
	if err != nil {
		return err
	}
	return renderReport(ctx, env, verb, rep, now)
}

// appLine and iamLine are the stdout objects of a layer that was asked
// for: its outcome, and on success (or, for IAM, part way) what changed.
type appLine struct {
	Outcome   readonly.Outcome `json:"outcome"`
	Reason    string           `json:"reason,omitempty"`
	TimedOut  bool             `json:"timedOut,omitempty"`
	Parameter string           `json:"parameter"`
	*readonly.Change
}

type iamLine struct {
	Outcome   readonly.Outcome `json:"outcome"`
	Reason    string           `json:"reason,omitempty"`
	TimedOut  bool             `json:"timedOut,omitempty"`
	Policy    string           `json:"policy"`
	PolicyARN string           `json:"policyArn,omitempty"`
	*readonly.PolicyChange
	Tenants  map[string]readonly.TenantMatch `json:"tenants,omitempty"`
	Effect   *readonly.Effect                `json:"effect,omitempty"`
	Warnings []string                        `json:"warnings,omitempty"`
}

// renderReport prints what Freeze or Thaw did: one stdout object per layer
// asked for, in the order applied, and the summary on stderr. One failed
// layer next to one that worked is exit 3, every asked layer failing exit 1.
func renderReport(ctx context.Context, env *Env, verb string, rep readonly.Report, now string) error {
	app, pol := rep.Application, rep.IAM
	for _, l := range rep.Order {
		var err error
		switch {
		case l == readonly.LayerApplication && app.Outcome != readonly.Skipped:
			err = emitJSON(env.Stdout, "application", appLine{app.Outcome, app.Reason, app.TimedOut, app.Parameter, app.Change})
		case l == readonly.LayerIAM && pol.Outcome != readonly.Skipped:
			err = emitJSON(env.Stdout, "iam", iamLine{pol.Outcome, pol.Reason, pol.TimedOut, pol.Policy, pol.PolicyARN, pol.Change, pol.Tenants, pol.Effect, pol.Warnings})
		}
		if err != nil {
			return err
		}
	}

	var summary []string
	switch app.Outcome {
	case readonly.OK:
		summary = append(summary, appSummary(*app.Change))
	case readonly.Failed:
		summary = append(summary, fmt.Sprintf("application layer (%s): FAILED: %s", storeWords(app.Parameter), app.Reason))
	default:
		summary = append(summary, "application layer: skipped ("+app.Reason+")")
	}
	switch pol.Outcome {
	case readonly.OK, readonly.NotEffective:
		summary = append(summary, iamSummary(*pol.Change, verb == "on", pol.Tenants))
		if e := pol.Effect; e != nil && e.Effective {
			summary = append(summary, fmt.Sprintf("IAM layer effective: IAM's evaluation denies every write action for each role (%d checks, after %s)", e.Checked, e.Waited.Round(time.Millisecond)))
		} else if verb == "on" && pol.Outcome == readonly.OK {
			summary = append(summary, "IAM layer: effect not checked (--wait 0)")
		}
		if pol.Outcome == readonly.NotEffective {
			summary = append(summary, "IAM layer NOT YET EFFECTIVE: "+pol.Reason)
		}
		for _, w := range pol.Warnings {
			summary = append(summary, "WARNING: "+w)
		}
		if verb == "on" && pol.OperatorRole != "" {
			summary = append(summary, fmt.Sprintf("operator role %s keeps write access", pol.OperatorRole))
		}
	case readonly.Failed:
		s := fmt.Sprintf("IAM layer (policy %s): FAILED: %s", pol.Policy, pol.Reason)
		if pol.Change != nil {
			s += fmt.Sprintf(" (before the failure: %s)", roleWords(pol.Change.Roles))
		}
		summary = append(summary, s)
	default:
		summary = append(summary, "IAM layer: skipped ("+pol.Reason+")")
	}
	state := rep.State()
	if state != readonly.Complete && rep.Err() != nil {
		summary = append(summary, "to finish: rerun the same command (each layer is idempotent), or apply the failed layer by hand:")
		for _, c := range handCommands(verb, rep) {
			summary = append(summary, "  "+c)
		}
	}
	title := "read-only " + strings.ToUpper(verb)
	printSummary(env, title+headerState(state), now, summary)

	err := rep.Err()
	switch {
	case state == readonly.Complete:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("readonly %s interrupted: %w", verb, errors.Join(err, ctx.Err()))
	case state == readonly.Incomplete && err == nil:
		return partialf("readonly %s INCOMPLETE: the IAM layer is applied but not yet effective; rerun the same command or `rewind readonly status` to check again", verb)
	case state == readonly.Incomplete:
		return partialf("readonly %s INCOMPLETE: %v; rerun the same command, or apply the failed layer by hand as shown above", verb, err)
	}
	return fmt.Errorf("readonly %s: no layer applied: %w; rerun when the backends answer", verb, err)
}

func headerState(s readonly.State) string {
	switch s {
	case readonly.Incomplete:
		return " INCOMPLETE"
	case readonly.AllFailed:
		return " FAILED"
	}
	return ""
}

// handCommands are the aws CLI commands that apply rep's failed layers.
func handCommands(verb string, rep readonly.Report) []string {
	var cmds []string
	app, pol := rep.Application, rep.IAM
	if pol.Outcome == readonly.Failed {
		policyARN := pol.PolicyARN
		if policyARN == "" {
			policyARN = "arn:aws:iam::ACCOUNT:policy/" + pol.Policy
		}
		done := map[string]bool{}
		if pol.Change != nil {
			for _, r := range pol.Change.Roles {
				done[r.Role] = true
			}
		}
		roles := slices.DeleteFunc(slices.Clone(pol.Roles), func(r string) bool { return done[r] })
		op := "attach"
		if verb == "off" {
			op = "detach"
		}
		if len(roles) == 0 {
			// off from every role: the roles are not known.
			cmds = append(cmds, fmt.Sprintf("aws iam list-entities-for-policy --policy-arn %s --entity-filter Role --query 'PolicyRoles[].RoleName' --output text", policyARN))
			roles = []string{"ROLE"}
			cmds = append(cmds, fmt.Sprintf("then for each ROLE listed: aws iam %s-role-policy --role-name ROLE --policy-arn %s", op, policyARN))
		} else {
			if verb == "on" {
				cmds = append(cmds, fmt.Sprintf("(if the policy does not exist yet: aws iam create-policy --policy-name %s --policy-document file://deny.json, with the document in the README)", pol.Policy))
			}
			for _, r := range roles {
				cmds = append(cmds, fmt.Sprintf("aws iam %s-role-policy --role-name %s --policy-arn %s", op, r, policyARN))
			}
		}
	}
	if app.Outcome == readonly.Failed && strings.HasPrefix(app.Parameter, readonly.FlagsScheme) {
		ref := strings.TrimPrefix(app.Parameter, readonly.FlagsScheme)
		cmds = append(cmds, "rerun with --flags appconfig:"+ref+" (a hosted version created but not deployed is deployed by the rerun), or in the AppConfig console edit flag \""+readonly.DefaultFlag+"\" (attribute \""+readonly.TenantsAttribute+"\") of "+ref+" and deploy it")
	} else if app.Outcome == readonly.Failed {
		put := fmt.Sprintf("aws ssm put-parameter --name %s --type StringList --overwrite --value ", app.Parameter)
		switch {
		case verb == "on" && slices.Contains(app.Tenants, readonly.All):
			cmds = append(cmds, put+readonly.All)
		case verb == "off" && len(app.Tenants) == 0:
			cmds = append(cmds, put+readonly.Placeholder)
		default:
			cmds = append(cmds, fmt.Sprintf("aws ssm get-parameter --name %s --query Parameter.Value --output text", app.Parameter))
			what := "adding " + strings.Join(app.Tenants, ",") + " (drop \"none\")"
			if verb == "off" {
				what = "without " + strings.Join(app.Tenants, ",") + " (\"none\" if nothing is left)"
			}
			cmds = append(cmds, put+"'<the value read, "+what+">'")
		}
	}
	return cmds
}

// renderStatus prints both layers, each read on its own: exit 3 when one
// could not be read, 1 when neither could.
func renderStatus(ctx context.Context, env *Env, st readonly.Status, now string) error {
	var summary []string
	var errs []error
	if st.Application.Outcome == readonly.OK {
		if err := emitJSON(env.Stdout, "application", struct {
			Outcome   readonly.Outcome `json:"outcome"`
			Parameter string           `json:"parameter"`
			readonly.Tenants
		}{st.Application.Outcome, st.Parameter, st.Tenants}); err != nil {
			return err
		}
		summary = append(summary, fmt.Sprintf("application layer (%s v%d%s): %s", storeWords(st.Parameter), st.Tenants.Version, deploymentWords(st.Tenants.Deployment), tenantWords(st.Tenants.IDs)))
		if d := st.Tenants.Deployment; d != nil && d.ConfigurationVersion != strconv.FormatInt(st.Tenants.Version, 10) {
			summary = append(summary, fmt.Sprintf("WARNING: AppConfig version %d is not deployed (environment has version %s, %s): the guards read the deployed one; rerun the last `readonly on|off` to deploy it", st.Tenants.Version, d.ConfigurationVersion, d.State))
		}
	} else {
		if err := emitJSON(env.Stdout, "application", appLine{Outcome: st.Application.Outcome, Reason: st.Application.Reason, TimedOut: st.Application.TimedOut, Parameter: st.Parameter}); err != nil {
			return err
		}
		summary = append(summary, fmt.Sprintf("application layer (%s): cannot read: %s", storeWords(st.Parameter), st.Application.Reason))
		errs = append(errs, fmt.Errorf("application layer: %w", st.Application.Err))
	}
	switch st.IAMRead.Outcome {
	case readonly.OK:
		if err := emitJSON(env.Stdout, "iam", struct {
			Outcome readonly.Outcome `json:"outcome"`
			*readonly.PolicyStatus
		}{st.IAMRead.Outcome, st.IAM}); err != nil {
			return err
		}
		ps := st.IAM
		switch {
		case !ps.Exists:
			summary = append(summary, fmt.Sprintf("IAM layer: policy %s does not exist (off)", ps.Policy))
		case !ps.InForce():
			summary = append(summary, fmt.Sprintf("IAM layer: policy %s (table %s) attached to no role (off)", ps.Policy, strings.Join(ps.Tables, ", ")))
		default:
			roles := strings.Join(ps.AttachedRoles, ", ")
			if len(ps.InlineRoles) > 0 {
				roles = strings.TrimPrefix(roles+", inline on "+strings.Join(ps.InlineRoles, ", "), ", ")
			}
			summary = append(summary, fmt.Sprintf("IAM layer: policy %s denies writes to %s (%s) in %s for roles %s (on)", ps.Policy, strings.Join(ps.Tables, ", "), scopeWords(ps.Scope, ps.Tenants), strings.Join(ps.Regions, ", "), roles))
			if e := ps.Effect; e != nil && e.Effective {
				summary = append(summary, fmt.Sprintf("IAM layer effective: IAM's evaluation denies every write action for each role (%d checks)", e.Checked))
			}
		}
	case readonly.Failed:
		if err := emitJSON(env.Stdout, "iam", iamLine{Outcome: st.IAMRead.Outcome, Reason: st.IAMRead.Reason, TimedOut: st.IAMRead.TimedOut}); err != nil {
			return err
		}
		summary = append(summary, "IAM layer: cannot read: "+st.IAMRead.Reason)
		errs = append(errs, fmt.Errorf("IAM layer: %w", st.IAMRead.Err))
	}
	for _, w := range st.Warnings {
		if err := emitJSON(env.Stdout, "warning", map[string]string{"message": w}); err != nil {
			return err
		}
		summary = append(summary, "WARNING: "+w)
	}
	state := st.State()
	printSummary(env, "read-only STATUS"+headerState(state), now, summary)
	err := errors.Join(errs...)
	switch {
	case state == readonly.Complete:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("readonly status interrupted: %w", errors.Join(err, ctx.Err()))
	case state == readonly.Incomplete:
		return partialf("readonly status INCOMPLETE: %v", err)
	}
	return fmt.Errorf("readonly status: neither layer could be read: %w", err)
}

func tenantWords(ids []string) string {
	switch {
	case len(ids) == 0:
		return "no tenant read-only"
	case slices.Contains(ids, readonly.All):
		return "ALL tenants read-only"
	}
	return "read-only tenants " + strings.Join(ids, ", ")
}

func appSummary(ch readonly.Change) string {
	what := "unchanged"
	switch {
	case len(ch.Added) > 0 && len(ch.Removed) > 0:
		what = "added " + strings.Join(ch.Added, ", ") + "; removed " + strings.Join(ch.Removed, ", ")
	case len(ch.Added) > 0:
		what = "added " + strings.Join(ch.Added, ", ")
	case len(ch.Removed) > 0:
		what = "removed " + strings.Join(ch.Removed, ", ")
	}
	return fmt.Sprintf("application layer (%s v%d%s): %s (%s)", storeWords(ch.Parameter), ch.Version, deploymentWords(ch.Deployment), tenantWords(ch.After), what)
}

// storeWords names the application layer's store.
func storeWords(name string) string {
	if rest, ok := strings.CutPrefix(name, readonly.FlagsScheme); ok {
		return "AppConfig " + rest
	}
	return "SSM " + name
}

func deploymentWords(d *readonly.FlagDeployment) string {
	if d == nil {
		return ""
	}
	return fmt.Sprintf(", deployment %d %s", d.Number, d.State)
}

func roleWords(rs []readonly.RoleChange) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, r.Role+" "+r.Action)
	}
	if len(parts) == 0 {
		return "no role"
	}
	return strings.Join(parts, ", ")
}

// scopeWords says what a deny covers.
func scopeWords(s readonly.Scope, tenants []string) string {
	switch {
	case s.Whole:
		return "whole table, every tenant"
	case len(tenants) > 0 && len(tenants) == len(s.Patterns):
		return "tenants " + strings.Join(tenants, ", ")
	case len(tenants) > 0:
		return "tenants " + strings.Join(tenants, ", ") + "; partition keys " + strings.Join(s.Patterns, ", ")
	}
	return "partition keys " + strings.Join(s.Patterns, ", ")
}

func iamSummary(ch readonly.PolicyChange, on bool, asked map[string]readonly.TenantMatch) string {
	roles := roleWords(ch.Roles)
	where := ""
	if len(ch.Regions) > 0 {
		where = " in " + strings.Join(ch.Regions, ", ")
		if len(ch.Regions) > 1 {
			where += " (every replica of the global table)"
		}
	}
	what := ""
	if ch.Scope != nil {
		if ch.Scope.Empty() {
			what = " (nothing left to deny)"
		} else {
			what = " (" + scopeWords(*ch.Scope, nil) + ")"
		}
	}
	if len(asked) > 0 {
		var ts []string
		for t := range asked {
			ts = append(ts, t)
		}
		slices.Sort(ts)
		verb := "added"
		if !on {
			verb = "removed"
		}
		what += "; " + verb + " tenants " + strings.Join(ts, ", ")
	}
	if !on && ch.Document != "" {
		return fmt.Sprintf("IAM layer: %s denies writes to %s%s%s (document %s); %s", ch.Policy, ch.Table, where, what, ch.Document, roles)
	}
	if on {
		s := fmt.Sprintf("IAM layer: %s denies writes to %s%s%s (document %s); %s", ch.Policy, ch.Table, where, what, ch.Document, roles)
		if len(ch.PrunedVersions) > 0 {
			s += "; pruned old versions " + strings.Join(ch.PrunedVersions, ", ")
		}
		return s
	}
	return fmt.Sprintf("IAM layer: %s: %s", ch.Policy, roles)
}

// printSummary writes the paste-into-the-incident-channel block.
func printSummary(env *Env, title, at string, lines []string) {
	fmt.Fprintf(env.Stderr, "%s at %s\n", title, at)
	for _, l := range lines {
		if rest, ok := strings.CutPrefix(l, "  "); ok {
			// A continuation (a command to run): indented, no bullet.
			fmt.Fprintf(env.Stderr, "      %s\n", rest)
			continue
		}
		fmt.Fprintf(env.Stderr, "  - %s\n", l)
	}
}
