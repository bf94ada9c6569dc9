// Package drill plays a whole partial recovery on a local stack: a
// multi-tenant table with capture on, normal traffic, a bad deploy that
// damages some tenants' items while everyone keeps writing, and then the
// runbook with rewind's real commands, run in-process through cli.Run
// (readonly, restore, index, stats, query, patch, verify, readonly off).
// It checks the outcome against the ground truth it kept.
//
// Run is the entry point; cmd/rewind-drill is its command line. The drill
// is not part of the shipped rewind binary: it carries the local
// stand-ins (internal/localaws, fakepitr, fakessm, fakeiam, traffic).
package drill

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/internal/cli"
	"github.com/ddbrewind/rewind/internal/fakepitr"
	"github.com/ddbrewind/rewind/internal/localaws/streampoller"
	"github.com/ddbrewind/rewind/internal/traffic"
	"github.com/ddbrewind/rewind/recover/guard"
	"github.com/ddbrewind/rewind/streamhandler"
	"github.com/schollz/progressbar/v3"
)

// The stack's names, as the README's runbook uses them.
const (
	table        = "orders"
	restored     = "orders-rewind-restored"
	auditTable   = "rewind-audit"
	bucket       = "rewind-capture"
	prefix       = "changes"
	exportBucket = "rewind-exports"
	appRole      = "orders-app"
	version      = "v42"
)

// rewind's exit codes the drill tells apart.
const (
	exitOK      = 0
	exitPartial = 3
)

// drill is one run's stack, state and record of what it did.
type drill struct {
	aws  *cli.AWS // the runbook commands' configuration, made on first use
	cfg  Config
	work string // directory for the files the runbook produces
	// incident is the folder the runbook's commands record into.
	incident string
	stack    stack

	ddb     *dynamodb.Client
	streams *dynamodbstreams.Client
	s3      *s3.Client
	ssm     *ssm.Client
	pitr    *fakepitr.Server
	db      fakepitr.DB
	poller  *streampoller.Poller
	guard   *guard.Guard
	logs    *appLogs // the application's change log, with Config.Source SourceLogs

	steps []stepRecord
}

type stepRecord struct {
	name    string
	took    time.Duration
	outcome string
}

// Outcome is the drill's result, printed as one JSON line on stdout.
type Outcome struct {
	Check       string  `json:"check"`
	Tenants     int     `json:"tenants"`
	Affected    int     `json:"affected"`
	Changes     int     `json:"changes"`
	Damaged     int     `json:"damaged"`
	Found       int     `json:"found"`
	Restore     int     `json:"restore"`
	Delete      int     `json:"delete"`
	Unchanged   int     `json:"unchanged"`
	Absent      int     `json:"absent"`
	Conflicts   int     `json:"conflicts"`
	Refused     int     `json:"refusedWrites"`
	Items       int     `json:"items"`
	Wrong       int     `json:"wrongItems"`
	Seconds     float64 `json:"seconds"`
	Source      string  `json:"source"`
	SamePlan    *bool   `json:"samePlanAsRestore,omitempty"`
	FirstFailed string  `json:"firstFailure,omitempty"`
	// StoppedBefore and EnvFile are set when the drill stopped early
	// (Config.StopBefore); Check is then "stopped".
	StoppedBefore string `json:"stoppedBefore,omitempty"`
	// Incident is the incident folder (log, outputs, report.md/.html).
	Incident string `json:"incident,omitempty"`
	EnvFile  string `json:"envFile,omitempty"`
}

// CheckPass and CheckStopped are the values of Outcome.Check that are no
// failure: every item as expected, or a drill stopped early on purpose.
const (
	CheckPass    = "pass"
	CheckStopped = "stopped"
)

// step runs one step, printing what it does and what came of it; name is
// the short name for the timeline.
func (d *drill) step(name, what string, fn func() (string, error)) error {
	fmt.Fprintf(d.cfg.Progress, "\n==> %s: %s\n", name, what)
	start := time.Now()
	outcome, err := fn()
	took := time.Since(start)
	if err != nil {
		outcome = "FAILED: " + err.Error()
	}
	d.steps = append(d.steps, stepRecord{name, took, outcome})
	fmt.Fprintf(d.cfg.Progress, "    %s (%s)\n", outcome, took.Round(time.Millisecond))
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// rewind runs one of rewind's own commands as the runbook says, in this
// process through cli.Run, showing the command line and its stderr, and
// returns its stdout. stdoutFile "-" shows stdout too; another name saves
// it there.
func (d *drill) rewind(ctx context.Context, stdoutFile string, args ...string) ([]byte, int, error) {
	w := d.cfg.Progress
	fmt.Fprintf(w, "    $ rewind %s", strings.Join(args, " "))
	if stdoutFile != "" && stdoutFile != "-" {
		fmt.Fprintf(w, " > %s", filepath.Base(stdoutFile))
	}
	fmt.Fprintln(w)
	if d.aws == nil {
		d.aws = d.stack.cliAWS(d.cfg.Endpoint)
	}
	var out, errb bytes.Buffer
	env := &cli.Env{
		Stdout: &out,
		Stderr: &errb,
		Log:    slog.New(slog.NewTextHandler(&errb, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Getenv: d.cfg.Getenv,
		AWS:    d.aws,
	}
	if d.incident != "" && len(args) > 0 {
		args = append([]string{args[0], "--incident", d.incident}, args[1:]...)
	}
	code := cli.Run(ctx, env, args)
	sc := bufio.NewScanner(&errb)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fmt.Fprintf(w, "      %s\n", sc.Text())
	}
	if stdoutFile == "-" {
		for _, line := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
			fmt.Fprintf(w, "      %s\n", line)
		}
	} else if stdoutFile != "" {
		if err := os.WriteFile(stdoutFile, out.Bytes(), 0o644); err != nil {
			return nil, code, fmt.Errorf("save the stdout of rewind %s: %w", args[0], err)
		}
	}
	if code != exitOK && code != exitPartial {
		return out.Bytes(), code, fmt.Errorf("rewind %s: exit %d", args[0], code)
	}
	return out.Bytes(), code, nil
}

// compareAuditTable asks the impacted-keys questions of the audit table
// too (rewind query --audit-table) and fails unless its answers are the
// index's, byte for byte. Both get the same end, so that a change made
// after the index run cannot tell them apart.
func (d *drill) compareAuditTable(ctx context.Context, scope []string, version string) error {
	to := time.Now().UTC().Format(time.RFC3339Nano)
	for _, q := range [][]string{
		{"query", "--match", "new.deployVersion=" + version},
		{"query", "--actions", "REMOVE", "--ttl", "exclude"},
	} {
		fromIndex, _, err := d.rewind(ctx, "", append(append(slices.Clone(q), scope...), "--to", to)...)
		if err != nil {
			return err
		}
		audit := append(slices.Clone(q), "--audit-table", auditTable, "--to", to)
		for i := 0; i < len(scope); i += 2 {
			if scope[i] != "--store" {
				audit = append(audit, scope[i], scope[i+1])
			}
		}
		fromAudit, _, err := d.rewind(ctx, "", audit...)
		if err != nil {
			return err
		}
		if !bytes.Equal(fromAudit, fromIndex) || len(fromIndex) == 0 {
			return fmt.Errorf("rewind %s: the audit table's key set (%d lines) is not the index's (%d lines)", strings.Join(q, " "), bytes.Count(fromAudit, []byte("\n")), bytes.Count(fromIndex, []byte("\n")))
		}
	}
	return nil
}

// compareDiff checks the runbook's last resort against the drill's own
// answer, before anything is patched: a whole-table diff of the restored
// table and production (rewind diff), less the good writes made since the
// restore point (every key the index saw change since then, less the
// impacted keys), must be exactly the keys the dry run plans to restore or
// delete. Outside the incident folder: a check of the drill, not a step of
// the runbook. Items DynamoDB's TTL deleted since the index was built (no
// change the index saw) are the one difference it allows.
func (d *drill) compareDiff(ctx context.Context, restored, impacted, store string, restoreAt time.Time, plan []byte) error {
	inc := d.incident
	d.incident = ""
	defer func() { d.incident = inc }()
	diff := filepath.Join(d.work, "diff.jsonl")
	since := filepath.Join(d.work, "changed-since-restore.jsonl")
	good := filepath.Join(d.work, "good.jsonl")
	if _, _, err := d.rewind(ctx, diff, "diff", "--from", restored, "--to", table, "--progress", "0"); err != nil {
		return err
	}
	// DynamoDB Local's stream records carry times to the minute: from the
	// restore point's minute on. Taking in a few earlier good changes only
	// takes keys out that the plan does not hold.
	if _, _, err := d.rewind(ctx, since, "query", "--store", store, "--tables", table, "--from", restoreAt.Truncate(time.Minute).Format(time.RFC3339)); err != nil {
		return err
	}
	if _, _, err := d.rewind(ctx, good, "keys", "subtract", since, impacted); err != nil {
		return err
	}
	found, _, err := d.rewind(ctx, "", "keys", "subtract", diff, good)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, line := range bytes.Split(plan, []byte("\n")) {
		var r struct {
			Action string          `json:"action"`
			Key    json.RawMessage `json:"key"`
		}
		if json.Unmarshal(line, &r) != nil || (r.Action != "restore" && r.Action != "delete") {
			continue
		}
		k, err := rewind.ParseKey(r.Key)
		if err != nil {
			return fmt.Errorf("plan line %s: %w", line, err)
		}
		want[string(k.Encode())] = true
	}
	got := map[string]bool{}
	var extra []string
	now := time.Now().Unix()
	for _, line := range bytes.Split(found, []byte("\n")) {
		var r struct {
			Key     json.RawMessage `json:"key"`
			Actions []string        `json:"actions"`
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if err := json.Unmarshal(line, &r); err != nil {
			return fmt.Errorf("rewind diff: key-set line %s: %w", line, err)
		}
		k, err := rewind.ParseKey(r.Key)
		if err != nil {
			return fmt.Errorf("rewind diff: key-set line %s: %w", line, err)
		}
		id := string(k.Encode())
		got[id] = true
		if want[id] {
			continue
		}
		if slices.Equal(r.Actions, []string{"REMOVE"}) {
			// Only in the restored table: an expiry since the index was
			// built is no change the drill planned.
			it, err := d.ddb.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(restored), Key: k.Item(), ConsistentRead: aws.Bool(true)})
			if err != nil {
				return fmt.Errorf("read %s from %s: %w", k, restored, err)
			}
			if exp, ok := it.Item["expiresAt"].(*types.AttributeValueMemberN); ok {
				var at int64
				fmt.Sscan(exp.Value, &at)
				if at < now {
					continue
				}
			}
		}
		extra = append(extra, k.String())
	}
	var missing []string
	for id := range want {
		if !got[id] {
			k, _, _ := rewind.DecodeKey([]byte(id))
			missing = append(missing, k.String())
		}
	}
	if len(extra) > 0 || len(missing) > 0 {
		slices.Sort(extra)
		slices.Sort(missing)
		return fmt.Errorf("rewind diff less the good writes is not the planned patch: %d keys it has that the plan does not (%s), %d the plan has that it does not (%s); see %s", len(extra), strings.Join(first(extra, 5), ", "), len(missing), strings.Join(first(missing, 5), ", "), d.work)
	}
	fmt.Fprintf(d.cfg.Progress, "    rewind diff less the good writes since the restore point is the planned patch, key for key (%d keys)\n", len(want))
	return nil
}

func first(s []string, n int) []string { return s[:min(n, len(s))] }

// Run plays the drill cfg describes (defaulted with EnsureDefaults and
// checked with Validate) and returns its outcome. The error is non-nil when
// a step failed or the check found wrong items; the outcome then says how
// far the drill got (Check is not CheckPass).
func Run(ctx context.Context, cfg Config) (Outcome, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return Outcome{Check: "FAIL"}, err
	}
	d := &drill{cfg: cfg}
	if cfg.Workdir == "" {
		dir, err := os.MkdirTemp("", "rewind-drill-")
		if err != nil {
			return Outcome{Check: "FAIL"}, fmt.Errorf("make a work directory: %w", err)
		}
		defer os.RemoveAll(dir)
		d.work = dir
	} else {
		if err := os.MkdirAll(cfg.Workdir, 0o755); err != nil {
			return Outcome{Check: "FAIL"}, fmt.Errorf("make the work directory: %w", err)
		}
		d.work = cfg.Workdir
	}
	d.incident = cfg.Incident
	if d.incident == "" && cfg.Workdir != "" {
		d.incident = filepath.Join(cfg.Workdir, "incident")
	} else if d.incident == "" {
		dir, err := os.MkdirTemp("", "rewind-incident-")
		if err != nil {
			return Outcome{Check: "FAIL"}, fmt.Errorf("make the incident folder: %w", err)
		}
		d.incident = dir
	}
	defer d.stack.stop()
	start := time.Now()
	out, err := d.play(ctx)
	out.Seconds = time.Since(start).Seconds()
	out.Incident = d.incident
	d.printTimeline(time.Since(start))
	if out.Check == "" {
		out.Check = "FAIL"
	}
	switch {
	case err != nil:
		return out, err
	case out.Check == CheckStopped:
		fmt.Fprintf(cfg.Progress, "\ndrill: stopped before %s; the stack is down\n", cfg.StopBefore)
	case out.Check != CheckPass:
		return out, fmt.Errorf("drill check failed: %d of %d items differ from the expected state (first: %s)", out.Wrong, out.Items, out.FirstFailed)
	default:
		fmt.Fprintln(cfg.Progress, "\ndrill: PASS: every damaged item is back to its state before the deploy, the junk is gone, and every good write survived")
	}
	return out, nil
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// play runs the story and returns its outcome.
func (d *drill) play(ctx context.Context) (Outcome, error) {
	cfg := d.cfg
	nTenants, nAffected, all, changes := cfg.Tenants, cfg.affected(), cfg.All, cfg.Changes
	modify, del, junk := cfg.BugModify, cfg.BugDelete, cfg.BugJunk
	out := Outcome{Tenants: nTenants, Affected: nAffected}
	if err := d.startStack(ctx); err != nil {
		return out, err
	}
	var streamARN string
	if err := d.step("create tables", "the multi-tenant orders table (GSI, stream NEW_AND_OLD_IMAGES, TTL), the audit table, the capture bucket, the application role", func() (string, error) {
		arn, err := d.createTables(ctx)
		streamARN = arn
		return "orders stream " + arn, err
	}); err != nil {
		return out, err
	}
	if err := d.step("enable PITR", "point-in-time recovery on orders (the local stand-in snapshots it)", func() (string, error) {
		_, _, err := d.rewind(ctx, "", "pitr", "enable", "--table", table)
		return "enabled", err
	}); err != nil {
		return out, err
	}
	if cfg.Source == SourceLogs {
		if err := d.startLogs(ctx); err != nil {
			return out, err
		}
	} else if err := d.startCapture(streamARN, cfg.BatchSize); err != nil {
		return out, err
	}

	tenants := make([]string, nTenants)
	for i := range tenants {
		tenants[i] = fmt.Sprintf("tenant%02d", i+1)
	}
	hit := tenants[:nAffected]
	gen := traffic.New(d.appDB(), table, tenants, 42)
	gen.TTLFraction = 0.03
	// The application asks its read-only guard before each write, as a
	// service embedding recover/guard does.
	gen.Allow = func(ctx context.Context, tenant string) bool {
		ro, err := d.guard.IsReadOnly(ctx, tenant)
		return err != nil || !ro
	}
	// DynamoDB Local rounds stream times down to the minute, so a delete
	// by the bug cannot be told from a delete by the tenant in the same
	// minute. The drill keeps the affected tenants' own traffic to inserts
	// and updates; their TTL expiries still happen.
	gen.NoDeletes = map[string]bool{}
	for _, t := range hit {
		gen.NoDeletes[t] = true
	}
	if err := d.step("normal traffic", fmt.Sprintf("%d changes over %d tenants: inserts, updates, deletes, items that expire", changes, nTenants), func() (string, error) {
		err := d.traffic(ctx, gen, changes)
		return fmt.Sprintf("%d items live", len(gen.Live())), err
	}); err != nil {
		return out, err
	}
	var restoreAt time.Time
	var before map[string]rewind.Item
	if cfg.FromHistory {
		// DynamoDB Local stamps stream records to the minute: for the
		// history to tell the state before the deploy from after it, the
		// deploy must start in a minute of its own.
		next := time.Now().Truncate(time.Minute).Add(time.Minute)
		if err := d.step("wait", fmt.Sprintf("%s for the next minute: DynamoDB Local stamps stream records to the minute, and the history must tell before the deploy from after", time.Until(next).Round(time.Second)), func() (string, error) {
			if err := sleep(ctx, time.Until(next)); err != nil {
				return "", err
			}
			return "minute " + next.UTC().Format("15:04"), nil
		}); err != nil {
			return out, err
		}
	}
	if err := d.step("PITR point", "the state just before the deploy, as point-in-time recovery keeps it", func() (string, error) {
		// Restore times go to DynamoDB in whole milliseconds; PITR is
		// per second anyway. Nothing writes between this instant and the
		// snapshot below.
		restoreAt = time.Now().UTC().Truncate(time.Second)
		if cfg.FromHistory {
			// The last instant of the minute before the deploy's.
			restoreAt = time.Now().UTC().Truncate(time.Minute).Add(-time.Millisecond)
		}
		before = maps.Clone(gen.Live())
		err := d.pitr.Snapshot(ctx, d.db, table, restoreAt)
		return "restore point " + restoreAt.Format(time.RFC3339Nano), err
	}); err != nil {
		return out, err
	}
	if !cfg.FromHistory {
		// The deploy comes after the restore point's second.
		if err := sleep(ctx, time.Until(restoreAt.Add(time.Second))); err != nil {
			return out, err
		}
	}

	var bugs []traffic.Bug
	bugStart := time.Now().UTC()
	if err := d.step("bad deploy", fmt.Sprintf("%s overwrites, deletes and creates items of %s, while every tenant keeps writing", version, strings.Join(hit, ", ")), func() (string, error) {
		marker := rewind.Item{"deployVersion": &types.AttributeValueMemberS{Value: version}}
		for _, t := range hit {
			d.deploying(version)
			b, err := gen.Bug(ctx, t, modify, del, junk, marker)
			d.deploying(goodVersion)
			if err != nil {
				return "", err
			}
			bugs = append(bugs, b)
			// Good traffic goes on between the bug's writes; the
			// affected tenants write to items the bug never touched.
			if err := gen.Run(ctx, changes/4/nAffected+1); err != nil {
				return "", err
			}
		}
		n := 0
		for _, b := range bugs {
			n += len(b.Damaged())
		}
		out.Damaged = n
		return fmt.Sprintf("%d items damaged (overwritten %d, deleted %d, junk %d per tenant)", n, modify, del, junk), nil
	}); err != nil {
		return out, err
	}

	store := filepath.Join(d.work, "index")
	capture := "s3://" + bucket + "/" + prefix
	noticeWhat := "capture has the changes: index them and look at the timeline"
	if d.logs != nil {
		noticeWhat = "the application's change log has them: index the bad version's log stream and look at the timeline"
	}
	if err := d.step("notice", noticeWhat, func() (string, error) {
		if d.logs != nil {
			if err := d.indexLogs(ctx, store, bugStart); err != nil {
				return "", err
			}
			_, _, err := d.rewind(ctx, "-", "stats", "--store", store, "--from", "-5m", "--bucket", "1m", "--top", "10")
			return "the bad version's change log shows which tenants it hit and when it started", err
		}
		if err := d.capture(ctx); err != nil {
			return "", err
		}
		if _, _, err := d.rewind(ctx, "", "index", "--source", capture, "--store", store); err != nil {
			return "", err
		}
		if _, _, err := d.rewind(ctx, "-", "stats", "--store", store, "--from", "-5m", "--bucket", "1m", "--top", "10"); err != nil {
			return "", err
		}
		// DynamoDB Local stamps stream records to the minute, so this
		// whole drill is one bar; the deploy's version tells its writes.
		_, _, err := d.rewind(ctx, "-", "stats", "--store", store, "--from", "-5m", "--bucket", "1m", "--match", "new.deployVersion="+version)
		return "the deploy's writes show which tenants it hit and when it started", err
	}); err != nil {
		return out, err
	}

	if cfg.StopBefore == StopBeforeReadonly {
		out.Changes = len(gen.Changes)
		return d.stopHere(ctx, out, gen, bugs, before, [][2]string{
			{"REWIND_STORE", store},
			{"DRILL_WORKDIR", d.work},
			{"DRILL_INCIDENT", d.incident},
			{"DRILL_TENANTS", strings.Join(hit, ",")},
			{"DRILL_DEPLOY_MINUTE", bugStart.Truncate(time.Minute).Format(time.RFC3339)},
			{"DRILL_RESTORE_AT", restoreAt.Format(time.RFC3339Nano)},
		})
	}

	freeze := []string{"readonly", "on", "--table", table, "--roles", appRole, "--tenant-regex", traffic.TenantRegex}
	if all {
		freeze = append(freeze, "--all")
	} else {
		freeze = append(freeze, "--tenants", strings.Join(hit, ","))
	}
	if err := d.step("read-only on", "freeze the affected tenants: the application's guard (SSM) and the IAM deny policy", func() (string, error) {
		_, code, err := d.rewind(ctx, "", freeze...)
		if err == nil && code != exitOK {
			err = fmt.Errorf("readonly on: exit %d: a layer did not freeze", code)
		}
		return "frozen", err
	}); err != nil {
		return out, err
	}
	if err := d.step("traffic during recovery", "the application keeps serving; its guard refuses the frozen tenants' writes", func() (string, error) {
		var err error
		if d.guard, err = d.newGuard(); err != nil { // a fresh cache: the freeze is seen at once
			return "", err
		}
		before := gen.Refused
		err = d.traffic(ctx, gen, changes/4)
		out.Refused = gen.Refused - before
		return fmt.Sprintf("%d writes refused by the guard (503 to the caller)", out.Refused), err
	}); err != nil {
		return out, err
	}

	// The wanted state of each impacted item: the restored table, or the
	// history as of the restore point.
	source := []string{"--from", restored}
	out.Source = "restore"
	if cfg.FromHistory {
		source = []string{"--from-history", "--at", restoreAt.Format(time.RFC3339Nano), "--store", store}
		out.Source = "history"
	}
	if !cfg.FromHistory || cfg.CompareRestore {
		if err := d.step("restore", "restore orders as it was just before the deploy, into a new table", func() (string, error) {
			_, _, err := d.rewind(ctx, "", "restore", "--table", table, "--time", restoreAt.Format(time.RFC3339Nano),
				"--to-table", restored, "--no-indexes", "--wait", "--poll", "200ms")
			return restored + " is ACTIVE", err
		}); err != nil {
			return out, err
		}
	}

	keys := filepath.Join(d.work, "impacted.jsonl")
	if err := d.step("find the impacted keys", "what the deploy wrote (its version), and what it deleted (REMOVE, not TTL) since it started", func() (string, error) {
		if err := d.capture(ctx); err != nil {
			return "", err
		}
		if d.logs == nil {
			if _, _, err := d.rewind(ctx, "", "index", "--source", capture, "--store", store); err != nil {
				return "", err
			}
		}
		from := bugStart.Truncate(time.Minute).Format(time.RFC3339)
		scope := []string{"--store", store, "--tables", table, "--from", from}
		if !all {
			scope = append(scope, "--tenants", strings.Join(hit, ","))
		}
		if d.logs != nil {
			// The index holds the bad version's log stream only: every
			// change in it is the deploy's.
			if err := d.indexLogs(ctx, store, bugStart); err != nil {
				return "", err
			}
			set, _, err := d.rewind(ctx, keys, append([]string{"query"}, scope...)...)
			out.Found = bytes.Count(set, []byte("\n"))
			return fmt.Sprintf("%d impacted items in %s", out.Found, filepath.Base(keys)), err
		}
		written := filepath.Join(d.work, "written-by-v42.jsonl")
		deleted := filepath.Join(d.work, "deleted.jsonl")
		if _, _, err := d.rewind(ctx, written, append([]string{"query", "--match", "new.deployVersion=" + version}, scope...)...); err != nil {
			return "", err
		}
		if _, _, err := d.rewind(ctx, deleted, append([]string{"query", "--actions", "REMOVE", "--ttl", "exclude"}, scope...)...); err != nil {
			return "", err
		}
		if err := d.compareAuditTable(ctx, scope, version); err != nil {
			return "", err
		}
		set, _, err := d.rewind(ctx, keys, "keys", "merge", written, deleted)
		if err != nil {
			return "", err
		}
		out.Found = bytes.Count(set, []byte("\n"))
		return fmt.Sprintf("%d impacted items in %s", out.Found, filepath.Base(keys)), nil
	}); err != nil {
		return out, err
	}

	if err := d.step("patch dry run", "plan every key against the wanted state ("+out.Source+"); nothing is written", func() (string, error) {
		plan, _, err := d.rewind(ctx, filepath.Join(d.work, "plan.jsonl"), append(append([]string{"patch", "--keys", keys}, source...), "--to", table, "--progress", "0")...)
		if err != nil {
			return "", err
		}
		if cfg.CompareRestore {
			fromRestore, _, err := d.rewind(ctx, filepath.Join(d.work, "plan-from-restore.jsonl"), "patch", "--keys", keys, "--from", restored, "--to", table, "--progress", "0")
			if err != nil {
				return "", err
			}
			same := bytes.Equal(plan, fromRestore)
			out.SamePlan = &same
			if !same {
				return "", fmt.Errorf("the history and the restored table plan different patches (see plan.jsonl and plan-from-restore.jsonl in %s)", d.work)
			}
			fmt.Fprintln(cfg.Progress, "    the history and the restored table plan the same patch, key for key")
		}
		counts := countField(plan, "action")
		out.Restore, out.Delete, out.Unchanged, out.Absent = counts["restore"], counts["delete"], counts["unchanged"], counts["absent"]
		if d.logs == nil && (!cfg.FromHistory || cfg.CompareRestore) {
			if err := d.compareDiff(ctx, restored, keys, store, restoreAt, plan); err != nil {
				return "", err
			}
		}
		return fmt.Sprintf("plan: restore %d, delete %d, unchanged %d, absent %d", out.Restore, out.Delete, out.Unchanged, out.Absent), nil
	}); err != nil {
		return out, err
	}
	journal := filepath.Join(d.work, "patch.journal")
	plan := filepath.Join(d.work, "plan.jsonl")
	if err := d.step("patch two", "try the reviewed plan on its first two keys", func() (string, error) {
		res, code, err := d.rewind(ctx, "", append(append([]string{"patch", "--plan", plan}, source...), "--to", table, "--limit", "2", "--yes", "--journal", journal, "--progress", "0")...)
		if err == nil && code != exitOK {
			err = fmt.Errorf("patch --limit 2: exit %d: %s", code, res)
		}
		return "2 keys patched", err
	}); err != nil {
		return out, err
	}
	if err := d.step("status", "where the runbook stands mid-way, from the incident folder", func() (string, error) {
		_, code, err := d.rewind(ctx, "", "status")
		if err == nil && code != exitPartial {
			err = fmt.Errorf("status mid-way: exit %d, want 3 (steps remain)", code)
		}
		return "steps remain; the next one is printed", err
	}); err != nil {
		return out, err
	}
	if err := d.step("patch", "exactly the reviewed plan, journaled, with conditional writes", func() (string, error) {
		res, code, err := d.rewind(ctx, "", append(append([]string{"patch", "--plan", plan}, source...), "--to", table, "--yes", "--resume", "--journal", journal, "--progress", "0")...)
		out.Conflicts = countField(res, "status")["conflict"]
		expired := 0
		if err == nil && code == exitPartial {
			// DynamoDB's TTL process deletes expired items at any time:
			// one it deleted between the dry run and the patch is a
			// conflict the patch is right to leave alone, and the check
			// below accepts its absence.
			listed := 0
			if listed, expired, err = d.expiredListed(ctx, res, before, isConflict); err == nil && listed > 0 && expired == listed {
				code = exitOK
			}
		}
		if err == nil && code != exitOK {
			err = fmt.Errorf("patch: exit %d (%d conflicts)", code, out.Conflicts)
		}
		note := ""
		if expired > 0 {
			note = fmt.Sprintf(" (%d on expired items TTL deleted meanwhile)", expired)
		}
		return fmt.Sprintf("patched; %d conflicts%s; journal %s", out.Conflicts, note, filepath.Base(journal)), err
	}); err != nil {
		return out, err
	}
	if err := d.step("verify", "every impacted item equals its wanted state ("+out.Source+")", func() (string, error) {
		_, code, err := d.rewind(ctx, filepath.Join(d.work, "verify.jsonl"), append(append([]string{"verify", "--keys", keys}, source...), "--to", table, "--progress", "0")...)
		if err == nil && code != exitOK {
			err = errors.New("verify found items that differ")
		}
		return "all match", err
	}); err != nil {
		return out, err
	}
	if err := d.step("read-only off", "unfreeze: the list and the IAM policy", func() (string, error) {
		_, code, err := d.rewind(ctx, "", "readonly", "off")
		if err == nil && code != exitOK {
			err = fmt.Errorf("readonly off: exit %d: a layer did not thaw", code)
		}
		return "writes open again", err
	}); err != nil {
		return out, err
	}
	if err := d.step("traffic after", "every tenant writes again", func() (string, error) {
		var err error
		if d.guard, err = d.newGuard(); err != nil {
			return "", err
		}
		err = d.traffic(ctx, gen, changes/4)
		return fmt.Sprintf("%d items live", len(gen.Live())), err
	}); err != nil {
		return out, err
	}
	out.Changes = len(gen.Changes)

	if err := d.step("check", "the whole table against the ground truth", func() (string, error) {
		d.check(ctx, gen, bugs, before, &out)
		if out.Wrong > 0 {
			return "", fmt.Errorf("%d of %d items wrong; first: %s", out.Wrong, out.Items, out.FirstFailed)
		}
		out.Check = CheckPass
		return fmt.Sprintf("%d items all as expected", out.Items), nil
	}); err != nil {
		d.printSummary(out)
		return out, nil
	}
	if err := d.step("status", "the runbook at the end, from the incident folder", func() (string, error) {
		_, code, err := d.rewind(ctx, "", "status")
		if err == nil && code != exitOK {
			err = fmt.Errorf("status at the end: exit %d: the runbook is not done", code)
		}
		return "done", err
	}); err != nil {
		out.Check = "FAIL"
		return out, err
	}
	if err := d.step("report", "the post-mortem draft, its figures checked against the ground truth", func() (string, error) {
		res, _, err := d.rewind(ctx, "", "report")
		if err != nil {
			return "", err
		}
		if err := d.checkReport(res, out, hit); err != nil {
			return "", err
		}
		return "report.md and report.html in " + d.incident, nil
	}); err != nil {
		out.Check = "FAIL"
		return out, err
	}
	d.printSummary(out)
	return out, nil
}

// checkReport compares the figures of rewind report's stdout line with
// what the drill knows: the tenants it hit, the items the runbook found,
// the plan's actions and the patch's conflicts.
func (d *drill) checkReport(line []byte, out Outcome, hit []string) error {
	var r struct {
		Tenants []struct {
			Tenant string `json:"tenant"`
		} `json:"tenants"`
		Found     int    `json:"found"`
		Restore   int    `json:"restore"`
		Delete    int    `json:"delete"`
		Unchanged int    `json:"unchanged"`
		Absent    int    `json:"absent"`
		Conflicts int    `json:"conflicts"`
		Verify    string `json:"verify"`
		Status    string `json:"status"`
		Timeline  []struct {
			Affected int `json:"affected"`
			Others   int `json:"others"`
		} `json:"timeline"`
	}
	if err := json.Unmarshal(line, &r); err != nil {
		return fmt.Errorf("report: stdout line: %w", err)
	}
	var tenants []string
	for _, t := range r.Tenants {
		tenants = append(tenants, t.Tenant)
	}
	affected, others := 0, 0
	for _, m := range r.Timeline {
		affected += m.Affected
		others += m.Others
	}
	var errs []error
	want := func(what string, got, w any) {
		if fmt.Sprint(got) != fmt.Sprint(w) {
			errs = append(errs, fmt.Errorf("%s: report says %v, the drill %v", what, got, w))
		}
	}
	want("tenants hit", strings.Join(tenants, ","), strings.Join(hit, ","))
	want("items found", r.Found, out.Found)
	want("restored", r.Restore, out.Restore)
	want("deleted", r.Delete, out.Delete)
	want("unchanged", r.Unchanged, out.Unchanged)
	want("absent", r.Absent, out.Absent)
	want("conflicts", r.Conflicts, out.Conflicts)
	want("verify", r.Verify, "passed")
	want("runbook", r.Status, "done")
	// With the change log only the bad version's stream is indexed, so
	// the store (and the timeline) holds no changes by anyone else.
	othersIndexed := d.cfg.Source != SourceLogs
	if affected == 0 || (othersIndexed && others == 0 && len(hit) < out.Tenants) {
		errs = append(errs, fmt.Errorf("report timeline: %d changes by the tenants hit, %d by the others: want both", affected, others))
	}
	return errors.Join(errs...)
}

// ErrSkipCheck, returned (or wrapped) by Config.Hand, ends the drill
// after it without the check of the table: a Hand that only asked
// questions of the capture and the index (bench/athenalocal's equivalence
// test on the drill's capture) and recovered nothing. Outcome.Check is
// then CheckStopped and Run returns no error.
var ErrSkipCheck = errors.New("drill: the hand skips the check")

// stopHere ends a drill stopped early: it writes the env file that points
// rewind at the stack (atomically, before saying it is ready), prints it,
// and keeps the stack up, capture polling every second as the event source
// mapping would, until ctx ends; or it runs Config.Hand and then checks
// the whole table.
func (d *drill) stopHere(ctx context.Context, out Outcome, gen *traffic.Generator, bugs []traffic.Bug, before map[string]rewind.Item, facts [][2]string) (Outcome, error) {
	path := d.cfg.EnvFile
	if path == "" {
		path = filepath.Join(d.work, "stack.env")
	}
	text := d.envFile(facts)
	if err := writeFileAtomic(path, []byte(text)); err != nil {
		return out, err
	}
	out.Check, out.StoppedBefore, out.EnvFile = CheckStopped, d.cfg.StopBefore, path
	w := d.cfg.Progress
	fmt.Fprintf(w, "\n%s", text)
	fmt.Fprintf(w, "\ndrill: ready: stopped before %s, the stack is up; in another shell: . %s\n", d.cfg.StopBefore, shellQuote(path))
	fmt.Fprintln(w, "drill: interrupt this drill (Ctrl-C, or kill its process) to stop the stack")
	if d.cfg.Hand == nil {
		if err := d.poller.Run(ctx, time.Second); err != nil {
			fmt.Fprintf(w, "drill: capture stopped: %v; changes made from now on are not captured\n", err)
			<-ctx.Done()
		}
		return out, nil
	}
	pctx, stopPolling := context.WithCancel(ctx)
	polled := make(chan error, 1)
	go func() { polled <- d.poller.Run(pctx, time.Second) }()
	skipCheck := false
	err := d.step("by hand", "the rest of the runbook, run against the stack from "+path, func() (string, error) {
		err := d.cfg.Hand(ctx, path)
		if errors.Is(err, ErrSkipCheck) {
			skipCheck = true
			return "done; no check of the table", nil
		}
		return "done", err
	})
	stopPolling()
	if perr := <-polled; perr != nil && err == nil {
		err = fmt.Errorf("capture while the runbook ran by hand: %w", perr)
	}
	if err == nil && skipCheck {
		return out, nil // Check stays CheckStopped
	}
	if err != nil {
		out.Check = "FAIL"
		return out, err
	}
	out.Check = ""
	err = d.step("check", "the whole table against the ground truth", func() (string, error) {
		d.check(ctx, gen, bugs, before, &out)
		if out.Wrong > 0 {
			return "", fmt.Errorf("%d of %d items wrong; first: %s", out.Wrong, out.Items, out.FirstFailed)
		}
		out.Check = CheckPass
		return fmt.Sprintf("%d items all as expected", out.Items), nil
	})
	d.printSummary(out)
	return out, err
}

// traffic writes n changes, with a progress bar on a terminal.
func (d *drill) traffic(ctx context.Context, gen *traffic.Generator, n int) error {
	var bar *progressbar.ProgressBar
	if isTerminal(d.cfg.Progress) {
		bar = progressbar.NewOptions(n,
			progressbar.OptionSetWriter(d.cfg.Progress),
			progressbar.OptionSetDescription("    writing"),
			progressbar.OptionShowCount(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
		defer bar.Finish()
	}
	for done := 0; done < n; {
		step := min(50, n-done)
		if err := gen.Run(ctx, step); err != nil {
			return err
		}
		done += step
		if bar != nil {
			bar.Set(done)
		}
	}
	return nil
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// capture delivers what the stream holds to the handler, as the event
// source mapping does continuously in production; the logs drill has no
// capture.
func (d *drill) capture(ctx context.Context) error {
	if d.logs != nil {
		return nil
	}
	st, err := d.poller.PollOnce(ctx)
	if err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	fmt.Fprintf(d.cfg.Progress, "    capture: %d records in %d invocations\n", st.Delivered, st.Invocations)
	return nil
}

// newGuard returns the application's read-only guard with a fresh cache.
func (d *drill) newGuard() (*guard.Guard, error) {
	g, err := guard.New(d.ssm, guard.Config{TTL: time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return nil, fmt.Errorf("the application's read-only guard: %w", err)
	}
	return g, nil
}

func (d *drill) startCapture(streamARN string, batch int) error {
	h, err := streamhandler.New(streamhandler.Config{
		AuditTable: auditTable,
		Bucket:     bucket,
		Prefix:     prefix,
		Tenant:     rewind.TenantRule{Regex: regexp.MustCompile(traffic.TenantRegex)},
		// DynamoDB Local puts the GSI key in the Keys of TTL deletes.
		KeyAttributes: []string{"pk", "sk"},
	}, d.ddb, d.s3, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	d.poller, err = streampoller.New(streampoller.Config{StreamARN: streamARN, Streams: d.streams, Invoker: h, BatchSize: batch})
	return err
}

func (d *drill) createTables(ctx context.Context) (string, error) {
	s := func(n string) types.AttributeDefinition {
		return types.AttributeDefinition{AttributeName: aws.String(n), AttributeType: types.ScalarAttributeTypeS}
	}
	table := table
	out, err := d.ddb.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            &table,
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{s("pk"), s("sk"), s("status")},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String("sk"), KeyType: types.KeyTypeRange},
		},
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{{
			IndexName: aws.String("by-status"),
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String("status"), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String("sk"), KeyType: types.KeyTypeRange},
			},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly},
		}},
		StreamSpecification: &types.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: types.StreamViewTypeNewAndOldImages},
	})
	if err != nil {
		return "", fmt.Errorf("create table %s: %w", table, err)
	}
	if _, err := d.ddb.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName:               &table,
		TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String("expiresAt"), Enabled: aws.Bool(true)},
	}); err != nil {
		return "", fmt.Errorf("enable TTL on %s: %w", table, err)
	}
	if err := streamhandler.CreateAuditTable(ctx, d.ddb, auditTable); err != nil {
		return "", err
	}
	// The capture bucket, and the one the runbook's export example names.
	for _, b := range []string{bucket, exportBucket} {
		if _, err := d.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			return "", fmt.Errorf("create bucket %s: %w", b, err)
		}
	}
	return aws.ToString(out.TableDescription.LatestStreamArn), nil
}

// check compares the whole production table with what it should hold:
// the damaged items as they were before the deploy (junk absent), every
// other item as the good traffic left it. Items whose expiresAt has passed
// may also be gone: DynamoDB's TTL process deletes them at any time.
func (d *drill) check(ctx context.Context, gen *traffic.Generator, bugs []traffic.Bug, before map[string]rewind.Item, out *Outcome) {
	want := maps.Clone(gen.Live())
	for _, b := range bugs {
		for _, k := range b.Damaged() {
			id := string(k.Encode())
			if item, ok := before[id]; ok {
				want[id] = item
			} else {
				delete(want, id)
			}
		}
	}
	got := map[string]rewind.Item{}
	table := table
	pg := dynamodb.NewScanPaginator(d.ddb, &dynamodb.ScanInput{TableName: &table, ConsistentRead: aws.Bool(true)})
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			out.Wrong++
			out.FirstFailed = err.Error()
			return
		}
		for _, it := range page.Items {
			k, err := rewind.KeyFromItemSchema(it, "pk", "sk")
			if err != nil {
				out.Wrong++
				out.FirstFailed = err.Error()
				continue
			}
			got[string(k.Encode())] = it
		}
	}
	now := time.Now().Unix()
	expired := func(item rewind.Item) bool {
		n, ok := item["expiresAt"].(*types.AttributeValueMemberN)
		if !ok {
			return false
		}
		var at int64
		fmt.Sscan(n.Value, &at)
		return at < now
	}
	fail := func(format string, args ...any) {
		out.Wrong++
		if out.FirstFailed == "" {
			out.FirstFailed = fmt.Sprintf(format, args...)
		}
	}
	ids := slices.Sorted(maps.Keys(want))
	for _, id := range ids {
		w := want[id]
		g, ok := got[id]
		k, _, _ := rewind.DecodeKey([]byte(id))
		switch {
		case !ok && expired(w):
		case !ok:
			fail("%s missing", k)
		case !rewind.EqualItems(g, w):
			fail("%s is %s, want %s", k, rewind.ItemJSON(g), rewind.ItemJSON(w))
		}
	}
	for id, g := range got {
		if _, ok := want[id]; !ok {
			k, _, _ := rewind.DecodeKey([]byte(id))
			fail("%s should not exist: %s", k, rewind.ItemJSON(g))
		}
	}
	out.Items = len(want)
}

func (d *drill) printSummary(o Outcome) {
	fmt.Fprintln(d.cfg.Progress, "\nSummary:")
	tw := tabwriter.NewWriter(d.cfg.Progress, 2, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  tenants, affected\t%d, %d\t\n", o.Tenants, o.Affected)
	fmt.Fprintf(tw, "  changes written\t%d\t\n", o.Changes)
	fmt.Fprintf(tw, "  items damaged by the deploy\t%d\t\n", o.Damaged)
	fmt.Fprintf(tw, "  impacted items found\t%d\t\n", o.Found)
	fmt.Fprintf(tw, "  planned: restore / delete / unchanged / absent\t%d / %d / %d / %d\t\n", o.Restore, o.Delete, o.Unchanged, o.Absent)
	fmt.Fprintf(tw, "  conflicts\t%d\t\n", o.Conflicts)
	fmt.Fprintf(tw, "  writes refused while read-only\t%d\t\n", o.Refused)
	fmt.Fprintf(tw, "  items checked, wrong\t%d, %d\t\n", o.Items, o.Wrong)
	tw.Flush()
}

func (d *drill) printTimeline(total time.Duration) {
	fmt.Fprintln(d.cfg.Progress, "\nTimeline:")
	tw := tabwriter.NewWriter(d.cfg.Progress, 2, 0, 2, ' ', 0)
	for i, s := range d.steps {
		fmt.Fprintf(tw, "  %2d.\t%s\t%s\t\n", i+1, s.name, s.took.Round(time.Millisecond))
	}
	fmt.Fprintf(tw, "  \ttotal\t%s\t\n", total.Round(time.Millisecond))
	tw.Flush()
}

// expiredListed counts the lines of a patch's or verify's stdout that
// pick selects (listed) and, of those, the items DynamoDB's TTL process
// deleted: absent from production now, with a past expiresAt in the
// state before the deploy (what the plan restores).
func (d *drill) expiredListed(ctx context.Context, res []byte, before map[string]rewind.Item, pick func(status, action string) bool) (listed, n int, err error) {
	now := time.Now().Unix()
	for _, line := range bytes.Split(res, []byte("\n")) {
		var r struct {
			Status string          `json:"status"`
			Action string          `json:"action"`
			Key    json.RawMessage `json:"key"`
		}
		if json.Unmarshal(line, &r) != nil || !pick(r.Status, r.Action) {
			continue
		}
		listed++
		k, err := rewind.ParseKey(r.Key)
		if err != nil {
			return listed, n, fmt.Errorf("listed line %s: %w", line, err)
		}
		exp, ok := before[string(k.Encode())]["expiresAt"].(*types.AttributeValueMemberN)
		if !ok {
			continue
		}
		var at int64
		fmt.Sscan(exp.Value, &at)
		got, err := d.ddb.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: k.Item(), ConsistentRead: aws.Bool(true)})
		if err != nil {
			return listed, n, fmt.Errorf("read listed key %s: %w", k, err)
		}
		if at < now && got.Item == nil {
			n++
		}
	}
	return listed, n, nil
}

// isConflict picks the patch's conflict lines.
func isConflict(status, _ string) bool { return status == "conflict" }

// countField counts the values of one string field over JSON lines.
func countField(jsonl []byte, field string) map[string]int {
	counts := map[string]int{}
	for _, line := range bytes.Split(jsonl, []byte("\n")) {
		var m map[string]any
		if json.Unmarshal(line, &m) != nil {
			continue
		}
		if s, ok := m[field].(string); ok {
			counts[s]++
		}
	}
	return counts
}
