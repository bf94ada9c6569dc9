package cli

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
	"github.com/ddbrewind/rewind/internal/fakeiam"
	"github.com/ddbrewind/rewind/internal/fakepitr"
	"github.com/ddbrewind/rewind/internal/fakessm"
	"github.com/ddbrewind/rewind/internal/localaws"
	"github.com/ddbrewind/rewind/internal/localaws/streampoller"
	"github.com/ddbrewind/rewind/internal/traffic"
	"github.com/ddbrewind/rewind/recover/guard"
	"github.com/ddbrewind/rewind/streamhandler"
)

func init() { register(&drillCmd{}) }

// drillCmd plays a whole partial recovery on the local stack: a
// multi-tenant table with capture on, normal traffic, a bad deploy that
// damages two tenants' items while everyone keeps writing, and then the
// runbook with the real commands (readonly, restore, index, stats, query,
// patch, verify, readonly off). It checks the outcome against the ground
// truth it kept and exits non-zero if any item is wrong.
type drillCmd struct{}

func (*drillCmd) Name() string { return "drill" }
func (*drillCmd) Synopsis() string {
	return "play a whole incident and recovery on a local stack (starts and stops it)"
}

const (
	drillTable    = "orders"
	drillRestored = "orders-restored"
	drillAudit    = "rewind-audit"
	drillBucket   = "rewind-capture"
	drillPrefix   = "changes"
	drillAppRole  = "orders-app"
	drillVersion  = "v42"
)

// drill is one run's stack, state and record of what it did.
type drill struct {
	env     *Env
	work    string // directory for the files the runbook produces
	verbose bool

	ddb     *dynamodb.Client
	streams *dynamodbstreams.Client
	s3      *s3.Client
	pitr    *fakepitr.Server
	db      fakepitr.DB
	poller  *streampoller.Poller
	guard   *guard.Guard

	steps    []drillStep
	stackOff []func()

	fromHistory bool // patch from the history, not a restored table
	compare     bool // and check both plan the same patch
}

type drillStep struct {
	name    string
	took    time.Duration
	outcome string
}

// drillOutcome is the drill's JSON summary on stdout.
type drillOutcome struct {
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
}

// step runs one step, printing what it does and what came of it; name is
// the short name for the timeline.
func (d *drill) step(name, what string, fn func() (string, error)) error {
	fmt.Fprintf(d.env.Stderr, "\n==> %s: %s\n", name, what)
	start := time.Now()
	outcome, err := fn()
	took := time.Since(start)
	if err != nil {
		outcome = "FAILED: " + err.Error()
	}
	d.steps = append(d.steps, drillStep{name, took, outcome})
	fmt.Fprintf(d.env.Stderr, "    %s (%s)\n", outcome, took.Round(time.Millisecond))
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// rewind runs one of rewind's own commands as the runbook says, showing
// the command line and its stderr, and returns its stdout. stdoutFile
// "-" shows stdout too; another name saves it there.
func (d *drill) rewind(ctx context.Context, stdoutFile string, args ...string) ([]byte, int, error) {
	fmt.Fprintf(d.env.Stderr, "    $ rewind %s", strings.Join(args, " "))
	if stdoutFile != "" && stdoutFile != "-" {
		fmt.Fprintf(d.env.Stderr, " > %s", filepath.Base(stdoutFile))
	}
	fmt.Fprintln(d.env.Stderr)
	var out, errb bytes.Buffer
	env := &Env{Stdout: &out, Stderr: &errb, Log: slog.New(slog.NewTextHandler(&errb, &slog.HandlerOptions{Level: slog.LevelWarn})), Getenv: os.Getenv}
	code := Run(ctx, env, args)
	sc := bufio.NewScanner(&errb)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fmt.Fprintf(d.env.Stderr, "      %s\n", sc.Text())
	}
	if stdoutFile == "-" {
		for _, line := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
			fmt.Fprintf(d.env.Stderr, "      %s\n", line)
		}
	} else if stdoutFile != "" {
		if err := os.WriteFile(stdoutFile, out.Bytes(), 0o644); err != nil {
			return nil, code, err
		}
	}
	if code != exitOK && code != exitPartial {
		return out.Bytes(), code, fmt.Errorf("rewind %s: exit %d", args[0], code)
	}
	return out.Bytes(), code, nil
}

func (c *drillCmd) Run(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "drill", "[flags]")
	tenants := fs.Int("tenants", 6, "tenants writing traffic")
	affected := fs.Int("affected", 2, "tenants the bad deploy damages")
	all := fs.Bool("all", false, "the incident hits every tenant: read-only for all (readonly on --all)")
	changes := fs.Int("changes", 1200, "normal changes before the bad deploy; half as many again during and after it")
	modify := fs.Int("bug-modify", 12, "items the bug overwrites, per affected tenant")
	del := fs.Int("bug-delete", 5, "items the bug deletes, per affected tenant")
	junk := fs.Int("bug-junk", 4, "junk items the bug creates, per affected tenant")
	batch := fs.Int("batch-size", 100, "records per capture invocation (the event source mapping's BatchSize)")
	work := fs.String("workdir", "", "where the runbook's files go (key sets, journal, index); default: a temporary directory, removed at the end")
	fromHistory := fs.Bool("from-history", false, "patch from the captured history (patch --from-history --at T) instead of a restored table, skipping the restore")
	compare := fs.Bool("compare-restore", false, "with --from-history: also restore, and check that both sources plan the same patch, key for key")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *all {
		*affected = *tenants
	}
	if *compare && !*fromHistory {
		return usagef("--compare-restore goes with --from-history")
	}
	switch {
	case *tenants < 1 || *affected < 1 || *affected > *tenants:
		return usagef("--tenants must be positive and --affected 1 to --tenants")
	case *changes < 10 || *modify < 0 || *del < 0 || *junk < 0 || *modify+*del+*junk == 0:
		return usagef("--changes must be at least 10, and the bug must do something")
	case *batch < 1 || *batch > 10000:
		return usagef("--batch-size must be 1 to 10000")
	}
	d := &drill{env: env}
	if *work == "" {
		dir, err := os.MkdirTemp("", "rewind-drill-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		d.work = dir
	} else {
		if err := os.MkdirAll(*work, 0o755); err != nil {
			return err
		}
		d.work = *work
	}
	defer d.stopStack()
	start := time.Now()
	d.fromHistory, d.compare = *fromHistory, *compare
	out, err := d.play(ctx, *tenants, *affected, *all, *changes, *modify, *del, *junk, *batch)
	out.Seconds = time.Since(start).Seconds()
	d.printTimeline(time.Since(start))
	if out.Check == "" {
		out.Check = "FAIL"
	}
	json.NewEncoder(env.Stdout).Encode(out)
	if err != nil {
		return err
	}
	if out.Check != "pass" {
		return fmt.Errorf("drill check failed: %d of %d items differ from the expected state (first: %s)", out.Wrong, out.Items, out.FirstFailed)
	}
	fmt.Fprintln(env.Stderr, "\ndrill: PASS: every damaged item is back to its state before the deploy, the junk is gone, and every good write survived")
	return nil
}

// play runs the story and returns its outcome.
func (d *drill) play(ctx context.Context, nTenants, nAffected int, all bool, changes, modify, del, junk, batch int) (drillOutcome, error) {
	out := drillOutcome{Tenants: nTenants, Affected: nAffected}
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
		_, _, err := d.rewind(ctx, "", "pitr", "enable", "--table", drillTable)
		return "enabled", err
	}); err != nil {
		return out, err
	}
	if err := d.startCapture(streamARN, batch); err != nil {
		return out, err
	}

	tenants := make([]string, nTenants)
	for i := range tenants {
		tenants[i] = fmt.Sprintf("tenant%02d", i+1)
	}
	hit := tenants[:nAffected]
	gen := traffic.New(d.ddb, drillTable, tenants, 42)
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
	if d.fromHistory {
		// DynamoDB Local stamps stream records to the minute: for the
		// history to tell the state before the deploy from after it, the
		// deploy must start in a minute of its own.
		next := time.Now().Truncate(time.Minute).Add(time.Minute)
		if err := d.step("wait", fmt.Sprintf("%s for the next minute: DynamoDB Local stamps stream records to the minute, and the history must tell before the deploy from after", time.Until(next).Round(time.Second)), func() (string, error) {
			select {
			case <-time.After(time.Until(next)):
			case <-ctx.Done():
				return "", ctx.Err()
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
		if d.fromHistory {
			// The last instant of the minute before the deploy's.
			restoreAt = time.Now().UTC().Truncate(time.Minute).Add(-time.Millisecond)
		}
		before = maps.Clone(gen.Live())
		err := d.pitr.Snapshot(ctx, d.db, drillTable, restoreAt)
		return "restore point " + restoreAt.Format(time.RFC3339Nano), err
	}); err != nil {
		return out, err
	}
	if !d.fromHistory {
		time.Sleep(time.Until(restoreAt.Add(time.Second))) // the deploy comes after the restore point's second
	}

	var bugs []traffic.Bug
	bugStart := time.Now().UTC()
	if err := d.step("bad deploy", fmt.Sprintf("%s overwrites, deletes and creates items of %s, while every tenant keeps writing", drillVersion, strings.Join(hit, ", ")), func() (string, error) {
		marker := rewind.Item{"deployVersion": &types.AttributeValueMemberS{Value: drillVersion}}
		for _, t := range hit {
			b, err := gen.Bug(ctx, t, modify, del, junk, marker)
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
	capture := "s3://" + drillBucket + "/" + drillPrefix
	if err := d.step("notice", "capture has the changes: index them and look at the timeline", func() (string, error) {
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
		_, _, err := d.rewind(ctx, "-", "stats", "--store", store, "--from", "-5m", "--bucket", "1m", "--match", "new.deployVersion="+drillVersion)
		return "the deploy's writes show which tenants it hit and when it started", err
	}); err != nil {
		return out, err
	}

	freeze := []string{"readonly", "on", "--table", drillTable, "--roles", drillAppRole}
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
		d.guard = d.newGuard() // a fresh cache: the freeze is seen at once
		before := gen.Refused
		err := d.traffic(ctx, gen, changes/4)
		out.Refused = gen.Refused - before
		return fmt.Sprintf("%d writes refused by the guard (503 to the caller)", out.Refused), err
	}); err != nil {
		return out, err
	}

	// The wanted state of each impacted item: the restored table, or the
	// history as of the restore point.
	source := []string{"--from", drillRestored}
	out.Source = "restore"
	if d.fromHistory {
		source = []string{"--from-history", "--at", restoreAt.Format(time.RFC3339Nano), "--store", store}
		out.Source = "history"
	}
	if !d.fromHistory || d.compare {
		if err := d.step("restore", "restore orders as it was just before the deploy, into a new table", func() (string, error) {
			_, _, err := d.rewind(ctx, "", "restore", "--table", drillTable, "--time", restoreAt.Format(time.RFC3339Nano),
				"--to-table", drillRestored, "--no-indexes", "--wait", "--poll", "200ms")
			return drillRestored + " is ACTIVE", err
		}); err != nil {
			return out, err
		}
	}

	keys := filepath.Join(d.work, "impacted.jsonl")
	if err := d.step("find the impacted keys", "what the deploy wrote (its version), and what it deleted (REMOVE, not TTL) since it started", func() (string, error) {
		if err := d.capture(ctx); err != nil {
			return "", err
		}
		if _, _, err := d.rewind(ctx, "", "index", "--source", capture, "--store", store); err != nil {
			return "", err
		}
		from := bugStart.Truncate(time.Minute).Format(time.RFC3339)
		scope := []string{"--store", store, "--tables", drillTable, "--from", from}
		if !all {
			scope = append(scope, "--tenants", strings.Join(hit, ","))
		}
		written := filepath.Join(d.work, "written-by-v42.jsonl")
		deleted := filepath.Join(d.work, "deleted.jsonl")
		if _, _, err := d.rewind(ctx, written, append([]string{"query", "--match", "new.deployVersion=" + drillVersion}, scope...)...); err != nil {
			return "", err
		}
		if _, _, err := d.rewind(ctx, deleted, append([]string{"query", "--actions", "REMOVE", "--ttl", "exclude"}, scope...)...); err != nil {
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
		plan, _, err := d.rewind(ctx, filepath.Join(d.work, "plan.jsonl"), append(append([]string{"patch", "--keys", keys}, source...), "--to", drillTable, "--progress", "0")...)
		if err != nil {
			return "", err
		}
		if d.compare {
			fromRestore, _, err := d.rewind(ctx, filepath.Join(d.work, "plan-from-restore.jsonl"), "patch", "--keys", keys, "--from", drillRestored, "--to", drillTable, "--progress", "0")
			if err != nil {
				return "", err
			}
			same := bytes.Equal(plan, fromRestore)
			out.SamePlan = &same
			if !same {
				return "", fmt.Errorf("the history and the restored table plan different patches (see plan.jsonl and plan-from-restore.jsonl in %s)", d.work)
			}
			fmt.Fprintln(d.env.Stderr, "    the history and the restored table plan the same patch, key for key")
		}
		counts := countField(plan, "action")
		out.Restore, out.Delete, out.Unchanged, out.Absent = counts["restore"], counts["delete"], counts["unchanged"], counts["absent"]
		return fmt.Sprintf("plan: restore %d, delete %d, unchanged %d, absent %d", out.Restore, out.Delete, out.Unchanged, out.Absent), nil
	}); err != nil {
		return out, err
	}
	journal := filepath.Join(d.work, "patch.journal")
	plan := filepath.Join(d.work, "plan.jsonl")
	if err := d.step("patch two", "try the reviewed plan on its first two keys", func() (string, error) {
		res, code, err := d.rewind(ctx, "", append(append([]string{"patch", "--plan", plan}, source...), "--to", drillTable, "--limit", "2", "--yes", "--journal", filepath.Join(d.work, "patch-two.journal"), "--progress", "0")...)
		if err == nil && code != exitOK {
			err = fmt.Errorf("patch --limit 2: exit %d: %s", code, res)
		}
		return "2 keys patched", err
	}); err != nil {
		return out, err
	}
	if err := d.step("patch", "exactly the reviewed plan, journaled, with conditional writes", func() (string, error) {
		res, code, err := d.rewind(ctx, "", append(append([]string{"patch", "--plan", plan}, source...), "--to", drillTable, "--yes", "--journal", journal, "--progress", "0")...)
		out.Conflicts = countField(res, "status")["conflict"]
		if err == nil && code != exitOK {
			err = fmt.Errorf("patch: exit %d (%d conflicts)", code, out.Conflicts)
		}
		return fmt.Sprintf("patched; %d conflicts; journal %s", out.Conflicts, filepath.Base(journal)), err
	}); err != nil {
		return out, err
	}
	if err := d.step("verify", "every impacted item equals its wanted state ("+out.Source+")", func() (string, error) {
		_, code, err := d.rewind(ctx, filepath.Join(d.work, "verify.jsonl"), append(append([]string{"verify", "--keys", keys}, source...), "--to", drillTable, "--progress", "0")...)
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
		d.guard = d.newGuard()
		err := d.traffic(ctx, gen, changes/4)
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
		out.Check = "pass"
		return fmt.Sprintf("%d items all as expected", out.Items), nil
	}); err != nil {
		d.printSummary(out)
		return out, nil
	}
	d.printSummary(out)
	return out, nil
}

// traffic writes n changes, with a progress bar on a terminal.
func (d *drill) traffic(ctx context.Context, gen *traffic.Generator, n int) error {
	bar := newProgress(d.env.Stderr, n, "    writing")
	defer bar.done()
	for done := 0; done < n; {
		step := min(50, n-done)
		if err := gen.Run(ctx, step); err != nil {
			return err
		}
		done += step
		bar.set(done)
	}
	return nil
}

// capture delivers what the stream holds to the handler, as the event
// source mapping does continuously in production.
func (d *drill) capture(ctx context.Context) error {
	st, err := d.poller.PollOnce(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(d.env.Stderr, "    capture: %d records in %d invocations\n", st.Delivered, st.Invocations)
	return nil
}

func (d *drill) newGuard() *guard.Guard {
	cfg, _ := loadAWS(context.Background(), d.env)
	g, _ := guard.New(ssm.NewFromConfig(cfg), guard.Config{TTL: time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	return g
}

func (d *drill) startStack(ctx context.Context) error {
	return d.step("start stack", "DynamoDB Local and stand-ins for S3, PITR, SSM and IAM, all on 127.0.0.1", func() (string, error) {
		ddbLocal, err := localaws.StartDynamoDB(ctx)
		if err != nil {
			return "", fmt.Errorf("%w (install it with scripts/install-local-aws.sh)", err)
		}
		d.stackOff = append(d.stackOff, func() { ddbLocal.Close() })
		s3srv, err := localaws.StartS3(ctx)
		if err != nil {
			return "", err
		}
		d.stackOff = append(d.stackOff, func() { s3srv.Close() })
		front, err := fakepitr.Start(ctx, fakepitr.Config{Upstream: ddbLocal.Endpoint, CreatingFor: time.Second})
		if err != nil {
			return "", err
		}
		d.stackOff = append(d.stackOff, func() { front.Close() })
		d.pitr = front
		ssmSrv, err := fakessm.Start(ctx)
		if err != nil {
			return "", err
		}
		d.stackOff = append(d.stackOff, func() { ssmSrv.Close() })
		iamSrv, err := fakeiam.Start(ctx)
		if err != nil {
			return "", err
		}
		d.stackOff = append(d.stackOff, func() { iamSrv.Close() })
		iamSrv.AddRole(drillAppRole)

		key := localaws.UniqueAccessKeyID("drill")
		d.db = fakepitr.DB{AccessKeyID: key, Region: localaws.Region}
		// The runbook's commands run in this process and find the
		// stack the way they would find AWS: through the environment.
		for k, v := range map[string]string{
			"AWS_ENDPOINT_URL_DYNAMODB":         front.Endpoint,
			"AWS_ENDPOINT_URL_DYNAMODB_STREAMS": ddbLocal.Endpoint,
			"AWS_ENDPOINT_URL_S3":               s3srv.Endpoint,
			"AWS_ENDPOINT_URL_SSM":              ssmSrv.Endpoint,
			"AWS_ENDPOINT_URL_IAM":              iamSrv.Endpoint,
			"AWS_ENDPOINT_URL_STS":              iamSrv.Endpoint,
			"AWS_ACCESS_KEY_ID":                 key,
			"AWS_SECRET_ACCESS_KEY":             localaws.SecretAccessKey,
			"AWS_REGION":                        localaws.Region,
			"AWS_EC2_METADATA_DISABLED":         "true",
			"REWIND_S3_PATH_STYLE":              "true",
		} {
			os.Setenv(k, v)
		}
		os.Unsetenv("AWS_PROFILE")
		os.Unsetenv("AWS_SESSION_TOKEN")
		os.Unsetenv("AWS_ENDPOINT_URL")
		cfg, err := localaws.Config(ctx, front.Endpoint, key)
		if err != nil {
			return "", err
		}
		d.ddb = dynamodb.NewFromConfig(cfg)
		scfg, err := localaws.Config(ctx, ddbLocal.Endpoint, key)
		if err != nil {
			return "", err
		}
		d.streams = dynamodbstreams.NewFromConfig(scfg)
		s3cfg, err := localaws.Config(ctx, s3srv.Endpoint, key)
		if err != nil {
			return "", err
		}
		d.s3 = localaws.NewS3Client(s3cfg)
		d.guard = d.newGuard()
		return fmt.Sprintf("DynamoDB Local %s (up in %s) behind PITR %s; S3 %s; SSM %s; IAM %s",
			ddbLocal.Endpoint, ddbLocal.StartTime.Round(time.Millisecond), front.Endpoint, s3srv.Endpoint, ssmSrv.Endpoint, iamSrv.Endpoint), nil
	})
}

func (d *drill) stopStack() {
	for i := len(d.stackOff) - 1; i >= 0; i-- {
		d.stackOff[i]()
	}
	d.stackOff = nil
}

func (d *drill) startCapture(streamARN string, batch int) error {
	h, err := streamhandler.New(streamhandler.Config{
		AuditTable: drillAudit,
		Bucket:     drillBucket,
		Prefix:     drillPrefix,
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
	table := drillTable
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
	if err := streamhandler.CreateAuditTable(ctx, d.ddb, drillAudit); err != nil {
		return "", err
	}
	if _, err := d.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(drillBucket)}); err != nil {
		return "", fmt.Errorf("create bucket %s: %w", drillBucket, err)
	}
	return aws.ToString(out.TableDescription.LatestStreamArn), nil
}

// check compares the whole production table with what it should hold:
// the damaged items as they were before the deploy (junk absent), every
// other item as the good traffic left it. Items whose expiresAt has passed
// may also be gone: DynamoDB's TTL process deletes them at any time.
func (d *drill) check(ctx context.Context, gen *traffic.Generator, bugs []traffic.Bug, before map[string]rewind.Item, out *drillOutcome) {
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
	table := drillTable
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

func (d *drill) printSummary(o drillOutcome) {
	fmt.Fprintln(d.env.Stderr, "\nSummary:")
	tw := tabwriter.NewWriter(d.env.Stderr, 2, 0, 2, ' ', 0)
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
	fmt.Fprintln(d.env.Stderr, "\nTimeline:")
	tw := tabwriter.NewWriter(d.env.Stderr, 2, 0, 2, ' ', 0)
	for i, s := range d.steps {
		fmt.Fprintf(tw, "  %2d.\t%s\t%s\t\n", i+1, s.name, s.took.Round(time.Millisecond))
	}
	fmt.Fprintf(tw, "  \ttotal\t%s\t\n", total.Round(time.Millisecond))
	tw.Flush()
}

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
