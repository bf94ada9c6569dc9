package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/sts"

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

const readonlyUsage = `on|off|status [--tenants t1,t2 | --all] [--table T --roles r1,r2] [--parameter NAME] [--policy NAME]

  on      --tenants/--all adds tenants to the SSM list the application's guard
          reads; --roles (with --table) attaches the deny-write policy to
          those application roles. Either or both.
  off     --tenants removes only those tenants; without --tenants the list is
          cleared and the policy detached from every role (or only from
          --roles).
  status  shows both layers and warns where they disagree.

stdout: one JSON object per layer ("kind": "application", "iam"), and per
warning ("kind": "warning"). stderr: a summary to paste in the incident
channel.`

// commaList is a flag.Value for a comma-separated list.
type commaList []string

func (l *commaList) String() string { return strings.Join(*l, ",") }
func (l *commaList) Set(s string) error {
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			*l = append(*l, x)
		}
	}
	return nil
}

// emitJSON writes v to w as one JSON line, with "kind" first.
func emitJSON(w io.Writer, kind string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	line := fmt.Sprintf(`{"kind":%q`, kind)
	if len(b) > 2 {
		line += "," + string(b[1:])
	} else {
		line += "}"
	}
	_, err = fmt.Fprintln(w, line)
	return err
}

func (c *readonlyCmd) Run(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "readonly", readonlyUsage)
	var tenants, roles commaList
	fs.Var(&tenants, "tenants", "comma-separated tenant ids")
	all := fs.Bool("all", false, "every tenant (on: adds \"all\"; off: clears the list)")
	parameter := fs.String("parameter", readonly.DefaultParameter, "SSM StringList parameter the application's guard reads")
	policyName := fs.String("policy", readonly.DefaultPolicy, "name of the deny-write managed policy (one per table)")
	table := fs.String("table", "", "DynamoDB table the IAM layer freezes")
	fs.Var(&roles, "roles", "comma-separated application IAM role names (never the role you run as)")
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
	if *all && len(tenants) > 0 {
		return usagef("readonly %s: --tenants and --all together", verb)
	}
	if len(roles) > 0 && *table == "" && verb == "on" {
		return usagef("readonly on: --roles needs --table (the policy names the table it freezes)")
	}

	cfg, err := loadAWS(ctx, env)
	if err != nil {
		return err
	}
	list := readonly.NewTenantList(ssm.NewFromConfig(cfg), *parameter)
	newPolicy := func() (*readonly.DenyPolicy, error) {
		if cfg.Region == "" {
			return nil, errors.New("no AWS region (set AWS_REGION): the policy names the table's ARN")
		}
		return readonly.NewDenyPolicy(iam.NewFromConfig(cfg), sts.NewFromConfig(cfg), *policyName, cfg.Region), nil
	}
	now := time.Now().UTC().Format(time.RFC3339)

	switch verb {
	case "on":
		ts := []string(tenants)
		if *all {
			ts = []string{readonly.All}
		}
		if len(ts) == 0 && len(roles) == 0 {
			return usagef("readonly on: nothing to do; give --tenants or --all (application layer) and/or --table with --roles (IAM layer)")
		}
		var summary []string
		if len(ts) > 0 {
			ch, err := list.On(ctx, ts)
			if err != nil {
				return err
			}
			if err := emitJSON(env.Stdout, "application", ch); err != nil {
				return err
			}
			summary = append(summary, appSummary(ch))
		}
		if len(roles) > 0 {
			p, err := newPolicy()
			if err != nil {
				return err
			}
			ch, err := p.On(ctx, *table, roles)
			if err != nil {
				printSummary(env, "read-only ON (incomplete: IAM layer failed)", now, summary)
				return err
			}
			if err := emitJSON(env.Stdout, "iam", ch); err != nil {
				return err
			}
			summary = append(summary, iamSummary(ch, true))
			if id, err := p.Identity(ctx); err == nil && id.Role != "" {
				summary = append(summary, fmt.Sprintf("operator role %s keeps write access", id.Role))
			}
		}
		printSummary(env, "read-only ON", now, summary)
		return nil

	case "off":
		var summary []string
		// IAM first: once the application accepts writes again (SSM), IAM
		// must no longer deny them.
		if len(tenants) == 0 || len(roles) > 0 {
			p, err := newPolicy()
			if err != nil {
				return err
			}
			ch, err := p.Off(ctx, roles)
			if err != nil {
				return err
			}
			if err := emitJSON(env.Stdout, "iam", ch); err != nil {
				return err
			}
			summary = append(summary, iamSummary(ch, false))
		}
		ch, err := list.Off(ctx, tenants)
		if err != nil {
			printSummary(env, "read-only OFF (incomplete: application layer failed)", now, summary)
			return err
		}
		if err := emitJSON(env.Stdout, "application", ch); err != nil {
			return err
		}
		summary = append([]string{appSummary(ch)}, summary...)
		printSummary(env, "read-only OFF", now, summary)
		return nil

	case "status":
		p, err := newPolicy()
		if err != nil {
			return err
		}
		st, err := readonly.ReadStatus(ctx, list, p, *table)
		if err != nil && st.Parameter == "" {
			return err
		}
		if err := emitJSON(env.Stdout, "application", struct {
			Parameter string `json:"parameter"`
			readonly.Tenants
		}{st.Parameter, st.Tenants}); err != nil {
			return err
		}
		var summary []string
		summary = append(summary, fmt.Sprintf("application layer (SSM %s v%d): %s", st.Parameter, st.Tenants.Version, tenantWords(st.Tenants.IDs)))
		if err != nil {
			// The application layer was read; the IAM layer was not.
			summary = append(summary, "IAM layer: cannot read: "+err.Error())
			printSummary(env, "read-only STATUS", now, summary)
			return err
		}
		if st.IAM != nil {
			if err := emitJSON(env.Stdout, "iam", st.IAM); err != nil {
				return err
			}
			switch {
			case !st.IAM.Exists:
				summary = append(summary, fmt.Sprintf("IAM layer: policy %s does not exist (off)", st.IAM.Policy))
			case len(st.IAM.AttachedRoles) == 0:
				summary = append(summary, fmt.Sprintf("IAM layer: policy %s (table %s) attached to no role (off)", st.IAM.Policy, strings.Join(st.IAM.Tables, ", ")))
			default:
				summary = append(summary, fmt.Sprintf("IAM layer: policy %s denies writes to %s for roles %s (on)", st.IAM.Policy, strings.Join(st.IAM.Tables, ", "), strings.Join(st.IAM.AttachedRoles, ", ")))
			}
		}
		for _, w := range st.Warnings {
			if err := emitJSON(env.Stdout, "warning", map[string]string{"message": w}); err != nil {
				return err
			}
			summary = append(summary, "WARNING: "+w)
		}
		printSummary(env, "read-only STATUS", now, summary)
		return nil
	}
	return usagef("readonly: unknown action %q; want on, off or status", verb)
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
	return fmt.Sprintf("application layer (SSM %s v%d): %s (%s)", ch.Parameter, ch.Version, tenantWords(ch.After), what)
}

func iamSummary(ch readonly.PolicyChange, on bool) string {
	var parts []string
	for _, r := range ch.Roles {
		parts = append(parts, r.Role+" "+r.Action)
	}
	roles := "no role"
	if len(parts) > 0 {
		roles = strings.Join(parts, ", ")
	}
	if on {
		s := fmt.Sprintf("IAM layer: %s denies writes to %s (document %s); %s", ch.Policy, ch.Table, ch.Document, roles)
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
		fmt.Fprintf(env.Stderr, "  - %s\n", l)
	}
}
