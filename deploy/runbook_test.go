package deploy_test

// TestRunbookPermissions plays the incident runbook (README.md "The incident
// runbook", and "When capture was never deployed: incremental export")
// through cli.Run against the local stand-ins, with the capture Lambda's
// real bootstrap under the Runtime API harness in front of it. Every AWS
// call is recorded (internal/awsrec), mapped to the IAM requests AWS
// authorizes it as, and evaluated with iam-simulate (internal/iamsim)
// against the policies an engineer deploys:
//
//   - the operator's calls against operator-policy.json, its placeholders
//     filled as deploy/README.md tells the reader;
//   - the Lambda's calls against StreamHandlerRole of template.yaml;
//   - and the application role with the DenyWrite document that `rewind
//     readonly on` attaches must be denied every DynamoDB action iam-data
//     lists as a write on a table or an index.
//
// A denied call, an action the catalogue does not know or a write the deny
// misses fails the test.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/internal/awsrec"
	"github.com/ddbrewind/rewind/internal/cli"
	"github.com/ddbrewind/rewind/internal/fakeappconfig"
	"github.com/ddbrewind/rewind/internal/fakeiam"
	"github.com/ddbrewind/rewind/internal/fakelogs"
	"github.com/ddbrewind/rewind/internal/fakepitr"
	"github.com/ddbrewind/rewind/internal/fakessm"
	"github.com/ddbrewind/rewind/internal/iamsim"
	"github.com/ddbrewind/rewind/internal/localaws"
	"github.com/ddbrewind/rewind/internal/localaws/lambdart"
	"github.com/ddbrewind/rewind/internal/localaws/streampoller"
	"github.com/ddbrewind/rewind/internal/traffic"
	"github.com/ddbrewind/rewind/recover/changelog"
	"github.com/ddbrewind/rewind/recover/readonly"
	"github.com/ddbrewind/rewind/streamhandler"
)

// The test account: the placeholders of operator-policy.json as a reader
// of deploy/README.md fills them for the runbook's table.
const (
	testRegion   = "eu-west-1"
	testAccount  = fakeiam.DefaultAccount
	runbookTable = "orders"
	auditTable   = "rewind-audit"
	captureBkt   = "acme-capture"
	failureBkt   = "acme-capture-failures"
	parquetPfx   = "changes"
	exportBkt    = "acme-exports"
	exportPfx    = "incident"
	appRole      = "orders-app"
	denyPolicy   = "DenyWrite"
	appLogGroup  = "/aws/lambda/orders-api"
)

// placeholders are the values of README.md's placeholder table, with
// RESTORE_PREFIX its own example (TABLE-rewind-).
var placeholders = map[string]string{
	"REGION":            testRegion,
	"ACCOUNT":           testAccount,
	"TABLE":             runbookTable,
	"RESTORE_PREFIX":    runbookTable + "-rewind-",
	"AUDIT_TABLE":       auditTable,
	"CAPTURE_BUCKET":    captureBkt,
	"FAILURE_BUCKET":    failureBkt,
	"PARQUET_PREFIX":    parquetPfx,
	"EXPORT_BUCKET":     exportBkt,
	"EXPORT_PREFIX":     exportPfx,
	"DENY_WRITE_POLICY": denyPolicy,
	"APP_ROLE":          appRole,
	"APPCONFIG_APP_ID":  "a1b2c01", // the first id fakeappconfig gives
	// rewind query --engine athena's defaults, and a result location.
	"ATHENA_WORKGROUP":     "primary",
	"GLUE_DATABASE":        "rewind",
	"GLUE_TABLE":           "changes",
	"ATHENA_RESULT_BUCKET": "acme-athena-results",
	"ATHENA_RESULT_PREFIX": "rewind",
	// rewind index --logs: the application's change log and its export.
	"APP_LOG_GROUP":     appLogGroup,
	"LOG_EXPORT_BUCKET": "acme-log-exports",
	"LOG_EXPORT_PREFIX": "exportedlogs",
}

// fillPlaceholders replaces each placeholder as a whole word, so TABLE
// does not touch AUDIT_TABLE, with the runbook test's values.
func fillPlaceholders(t *testing.T, doc string) string {
	t.Helper()
	return fillWith(t, doc, placeholders)
}

// fillWith replaces each placeholder of doc with its value in placeholders.
func fillWith(t *testing.T, doc string, placeholders map[string]string) string {
	t.Helper()
	re := regexp.MustCompile(`\b[A-Z][A-Z0-9_]{2,}\b`)
	return re.ReplaceAllStringFunc(doc, func(p string) string {
		v, ok := placeholders[p]
		if !ok {
			t.Errorf("operator-policy.json: placeholder %s has no value in this test (is it in README.md?)", p)
			return p
		}
		return v
	})
}

func TestRunbookPermissions(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the Lambda bootstrap and plays the runbook")
	}
	sim := iamsim.ForTest(t)
	ctx := t.Context()
	rec := &awsrec.Recorder{}

	// The stand-ins, each behind a recording proxy.
	ddb := localaws.DynamoDBForTest(t)
	s3srv, err := localaws.StartS3(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s3srv.Close() })
	setupCfg, err := localaws.Config(ctx, s3srv.Endpoint, ddb.AccessKeyID)
	if err != nil {
		t.Fatal(err)
	}
	setupCfg.Region = testRegion
	s3c := localaws.NewS3Client(setupCfg)
	for _, b := range []string{captureBkt, failureBkt, exportBkt, placeholders["LOG_EXPORT_BUCKET"]} {
		if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
	front, err := fakepitr.Start(ctx, fakepitr.Config{Upstream: ddb.Endpoint, S3: s3c, ExportingFor: 100 * time.Millisecond, LatestRestorableLag: fakepitr.NoLag})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { front.Close() })
	ssmSrv, err := fakessm.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ssmSrv.Close() })
	iamSrv, err := fakeiam.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { iamSrv.Close() })
	iamSrv.AddRole(appRole)
	acSrv, err := fakeappconfig.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { acSrv.Close() })
	if id := acSrv.AddApplication("orders-app"); id != placeholders["APPCONFIG_APP_ID"] {
		t.Fatalf("AppConfig application id %s, want the placeholder's %s", id, placeholders["APPCONFIG_APP_ID"])
	}
	acSrv.AddEnvironment(placeholders["APPCONFIG_APP_ID"], "prod")
	acSrv.AddProfile(placeholders["APPCONFIG_APP_ID"], "readonly", fakeappconfig.FeatureFlagsType)
	immediate := acSrv.AddStrategy("rewind-immediate", 0, 0)

	// The application's change log: lines logged through recover/changelog
	// in its log group, and a CloudWatch Logs export of it to S3.
	logsSrv := fakelogs.Start()
	t.Cleanup(logsSrv.Close)
	logsSrv.S3 = s3c
	shipChangeLog(t, logsSrv, setupCfg)

	ddbViaFront := rec.Proxy(t, front.Endpoint)
	ddbDirect := rec.Proxy(t, ddb.Endpoint)
	s3Proxy := rec.Proxy(t, s3srv.Endpoint)

	// Setup, not recorded: the production table with its stream, the
	// audit table, some items.
	ddbCfg, err := localaws.Config(ctx, ddb.Endpoint, ddb.AccessKeyID)
	if err != nil {
		t.Fatal(err)
	}
	ddbCfg.Region = testRegion
	setup := dynamodb.NewFromConfig(ddbCfg)
	out, err := setup.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(runbookTable),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}, {AttributeName: aws.String("sk"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}, {AttributeName: aws.String("sk"), KeyType: types.KeyTypeRange}},
		StreamSpecification:  &types.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: types.StreamViewTypeNewAndOldImages},
	})
	if err != nil {
		t.Fatal(err)
	}
	streamARN := aws.ToString(out.TableDescription.LatestStreamArn)
	if err := streamhandler.CreateAuditTable(ctx, setup, auditTable); err != nil {
		t.Fatal(err)
	}
	gen := traffic.New(setup, runbookTable, []string{"tenant01", "tenant02", "tenant03"}, 7)
	if err := gen.Run(ctx, 40); err != nil {
		t.Fatal(err)
	}

	// The operator's environment: the CLI reads the process's.
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_DYNAMODB":        ddbViaFront,
		"AWS_ENDPOINT_URL_S3":              s3Proxy,
		"AWS_ENDPOINT_URL_SSM":             rec.Proxy(t, ssmSrv.Endpoint),
		"AWS_ENDPOINT_URL_APPCONFIG":       rec.Proxy(t, acSrv.Endpoint),
		"AWS_ENDPOINT_URL_IAM":             rec.Proxy(t, iamSrv.Endpoint),
		"AWS_ENDPOINT_URL_STS":             rec.Proxy(t, iamSrv.Endpoint),
		"AWS_ENDPOINT_URL_DAX":             rec.Proxy(t, iamSrv.Endpoint),
		"AWS_ENDPOINT_URL_CLOUDWATCH_LOGS": rec.Proxy(t, logsSrv.URL),
		"AWS_ACCESS_KEY_ID":                ddb.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY":            localaws.SecretAccessKey,
		"AWS_REGION":                       testRegion,
		"AWS_CONFIG_FILE":                  os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE":      os.DevNull,
		"AWS_EC2_METADATA_DISABLED":        "true",
		"AWS_ENDPOINT_URL":                 "",
		"AWS_SESSION_TOKEN":                "",
		"AWS_PROFILE":                      "",
		"REWIND_S3_PATH_STYLE":             "true",
	} {
		t.Setenv(k, v)
	}
	work := t.TempDir()
	store := filepath.Join(work, "index")
	rewind := func(stdout string, args ...string) []map[string]any {
		t.Helper()
		var outb, errb bytes.Buffer
		env := &cli.Env{Stdout: &outb, Stderr: &errb, Log: slog.New(slog.NewTextHandler(&errb, nil)), Getenv: os.Getenv}
		rec.As("operator")
		code := cli.Run(ctx, env, args)
		rec.As("")
		if code != 0 {
			t.Fatalf("rewind %s: exit %d\nstderr:\n%s", strings.Join(args, " "), code, errb.String())
		}
		if stdout != "" {
			if err := os.WriteFile(stdout, outb.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		var objs []map[string]any
		sc := bufio.NewScanner(&outb)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				objs = append(objs, m)
			}
		}
		return objs
	}

	// Before the incident: PITR on.
	rewind("", "pitr", "enable", "--table", runbookTable)
	// History as if PITR had been on for two days, so an incremental
	// export (15 minutes at least) fits in the restorable window.
	pitrDB := fakepitr.DB{AccessKeyID: ddb.AccessKeyID, Region: testRegion}
	if err := front.Snapshot(ctx, pitrDB, runbookTable, time.Now().Add(-48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	rewind("", "pitr", "status", "--table", runbookTable)
	time.Sleep(1100 * time.Millisecond)
	before := time.Now().UTC()
	time.Sleep(1100 * time.Millisecond)

	// The bad deploy, captured by the Lambda's bootstrap.
	if err := gen.Run(ctx, 40); err != nil {
		t.Fatal(err)
	}
	runLambda(t, rec, streamARN, ddbDirect, s3Proxy, ddb.AccessKeyID)
	if err := front.Snapshot(ctx, pitrDB, runbookTable, time.Now()); err != nil {
		t.Fatal(err)
	}

	// 1. See what happened: minutes after the incident, from the audit
	// table (its hour index, its tenant partitions); then from the index.
	rewind("", "stats", "--audit-table", auditTable, "--from", "-1h")
	rewind("", "query", "--audit-table", auditTable, "--from", "-1h", "--tables", runbookTable, "--tenants", "tenant01,tenant02")
	auditKeys := rewind("", "query", "--audit-table", auditTable, "--from", "-1h", "--tables", runbookTable)
	if len(auditKeys) == 0 {
		t.Fatal("rewind query --audit-table: no keys from the audit table the Lambda filled")
	}
	firstKey, err := json.Marshal(auditKeys[0])
	if err != nil {
		t.Fatal(err)
	}
	rewind("", "history", "--audit-table", auditTable, "--key", string(firstKey))
	rewind("", "index", "--source", "s3://"+captureBkt+"/"+parquetPfx, "--failures", "s3://"+failureBkt, "--store", store)
	rewind("", "stats", "--store", store, "--from", "-1h")
	// 2. Freeze writes.
	rewind("", "readonly", "on", "--tenants", "tenant01,tenant02", "--table", runbookTable, "--roles", appRole, "--tenant-regex", traffic.TenantRegex)
	rewind("", "readonly", "status", "--table", runbookTable)
	// 3. Impacted keys.
	keys := filepath.Join(work, "impacted.jsonl")
	// (DynamoDB Local stamps stream records to the minute, so the tenants
	// narrow the keys rather than a window.)
	rewind(keys, "query", "--store", store, "--tables", runbookTable, "--tenants", "tenant01,tenant02")
	// 4. The state to go back to: a restore, named as the runbook names it.
	restored := runbookTable + "-rewind-restored"
	rewind("", "restore", "--table", runbookTable, "--time", before.Format(time.RFC3339Nano), "--to-table", restored, "--no-indexes", "--wait", "--poll", "100ms")
	// And the default target name must fit the documented prefix too.
	rewind("", "restore", "--table", runbookTable, "--time", before.Format(time.RFC3339Nano), "--no-indexes", "--wait", "--poll", "100ms")
	// 5. Patch: dry run, then apply; verify; unfreeze.
	plan := filepath.Join(work, "plan.jsonl")
	rewind(plan, "patch", "--keys", keys, "--from", restored, "--to", runbookTable, "--progress", "0")
	rewind("", "patch", "--plan", plan, "--from", restored, "--to", runbookTable, "--yes", "--journal", filepath.Join(work, "patch.journal"), "--progress", "0")
	rewind("", "verify", "--keys", keys, "--from", restored, "--to", runbookTable, "--progress", "0")
	rewind("", "readonly", "off", "--table", runbookTable, "--roles", appRole)
	// The same freeze with the list in an AppConfig feature flag (README
	// "Read-only at fleet scale"), with the default strategy and a custom
	// one without bake time.
	flags := "appconfig:orders-app/prod/readonly"
	rewind("", "readonly", "on", "--tenants", "tenant01,tenant02", "--flags", flags)
	rewind("", "readonly", "status", "--flags", flags, "--table", runbookTable)
	acSrv.SetClock(func() time.Time { return time.Now().Add(11 * time.Minute) }) // AllAtOnce's bake is over
	rewind("", "readonly", "off", "--flags", flags, "--flags-strategy", immediate)
	// 6. Once verify passed, delete the restored table.
	rewind("", "restore", "--cleanup", "--target", restored, "--table", runbookTable)
	rewind("", "restore", "--cleanup", "--target", restored, "--table", runbookTable, "--yes")
	// When capture was never deployed: incremental export, then index it.
	exports := rewind("", "export", "--table", runbookTable, "--from", "-2h", "--to", "now",
		"--s3", "s3://"+exportBkt+"/"+exportPfx, "--wait", "--poll", "50ms", "--timeout", "30s")
	var exportID string
	for _, e := range exports {
		if id, ok := e["exportId"].(string); ok {
			exportID = id
		}
	}
	if exportID == "" {
		t.Fatalf("export printed no exportId: %v", exports)
	}
	rewind("", "index", "--export", "s3://"+exportBkt+"/"+exportPfx+"/AWSDynamoDB/"+exportID+"/", "--store", filepath.Join(work, "export-index"), "--tenant-regex", traffic.TenantRegex)

	// The application's change log, from CloudWatch Logs and from its
	// export to S3.
	rewind("", "index", "--logs", "cwlogs:"+appLogGroup, "--from", "-1h", "--store", filepath.Join(work, "logs-index"))
	rewind("", "index", "--logs", "s3://"+placeholders["LOG_EXPORT_BUCKET"]+"/"+placeholders["LOG_EXPORT_PREFIX"], "--store", filepath.Join(work, "log-export-index"))

	// The deny document `readonly on` attached, before `off` removed it
	// from the role (the policy itself stays).
	_, denyDoc := iamSrv.PolicyVersions(fmt.Sprintf("arn:aws:iam::%s:policy/%s", testAccount, denyPolicy))
	if denyDoc == "" {
		t.Fatal("readonly on created no DenyWrite policy")
	}

	calls := rec.Calls()
	evaluateCalls(t, sim, calls, "operator", operatorPolicy(t), "arn:aws:iam::"+testAccount+":role/operator")
	evaluateCalls(t, sim, calls, "lambda", lambdaPolicy(t, streamARN), "arn:aws:iam::"+testAccount+":role/rewind-StreamHandlerRole")
	// The freeze of tenant01 and tenant02 denies their items and not
	// tenant03's; a freeze of the whole table denies every tenant.
	checkDenyWrite(t, sim, denyDoc, "TENANT#tenant01", "TENANT#tenant03")
	whole := readonly.PolicyDocument("aws", testAccount, readonly.TableInfo{Name: runbookTable, Region: testRegion}, readonly.Scope{Whole: true})
	checkDenyWrite(t, sim, whole, "TENANT#tenant03", "")
	for _, want := range []string{"operator", "lambda"} {
		if !slices.ContainsFunc(calls, func(c awsrec.Call) bool { return c.Caller == want }) {
			t.Errorf("no calls recorded as %s", want)
		}
	}
}

// runLambda runs cmd/streamhandler's bootstrap under the Runtime API
// harness, fed by the poller (which reads the stream as Lambda's event
// source mapping does, with the function's role), recorded as "lambda".
func runLambda(t *testing.T, rec *awsrec.Recorder, streamARN, ddbEndpoint, s3Endpoint, accessKey string) {
	t.Helper()
	ctx := t.Context()
	bin := filepath.Join(t.TempDir(), "bootstrap")
	build := exec.Command("go", "build", "-tags", "lambda.norpc", "-o", bin, "../cmd/streamhandler")
	build.Env = append(build.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build bootstrap: %v\n%s", err, out)
	}
	rt, err := lambdart.Start(ctx, lambdart.Config{
		Bootstrap: bin,
		Timeout:   60 * time.Second,
		Env: []string{
			"REWIND_AUDIT_TABLE=" + auditTable,
			"REWIND_BUCKET=" + captureBkt,
			"REWIND_PREFIX=" + parquetPfx,
			"REWIND_TENANT_REGEX=" + traffic.TenantRegex,
			"REWIND_S3_PATH_STYLE=true",
			"AWS_REGION=" + testRegion,
			"AWS_ENDPOINT_URL_DYNAMODB=" + ddbEndpoint,
			"AWS_ENDPOINT_URL_S3=" + s3Endpoint,
			"AWS_ACCESS_KEY_ID=" + accessKey,
			"AWS_SECRET_ACCESS_KEY=" + localaws.SecretAccessKey,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	cfg, err := localaws.Config(ctx, ddbEndpoint, accessKey)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Region = testRegion
	p, err := streampoller.New(streampoller.Config{StreamARN: streamARN, Streams: dynamodbstreams.NewFromConfig(cfg), Invoker: rt, BatchSize: 100, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	rec.As("lambda")
	_, err = p.PollOnce(ctx)
	rec.As("")
	if err != nil {
		t.Fatalf("poll: %v\nlogs:\n%s", err, rt.Logs())
	}
}

func operatorPolicy(t *testing.T) iamsim.Policy {
	t.Helper()
	b, err := os.ReadFile("operator-policy.json")
	if err != nil {
		t.Fatal(err)
	}
	return iamsim.Policy{Name: "operator", Document: json.RawMessage(fillPlaceholders(t, string(b)))}
}

// lambdaPolicy is StreamHandlerRole's inline policy from template.yaml,
// with the template's references resolved as CloudFormation would for a
// stack capturing the runbook's table.
func lambdaPolicy(t *testing.T, localStreamARN string) iamsim.Policy {
	t.Helper()
	tpl := loadTemplate(t)
	doc := at(map[string]any(tpl), "Resources", "StreamHandlerRole", "Properties", "Policies", 0, "PolicyDocument")
	if doc == nil {
		t.Fatal("template.yaml: no StreamHandlerRole policy")
	}
	_, label, _ := strings.Cut(localStreamARN, "/stream/")
	values := map[string]string{
		"SourceStreamArn":           fmt.Sprintf("arn:aws:dynamodb:%s:%s:table/%s/stream/%s", testRegion, testAccount, runbookTable, label),
		"ParquetPrefix":             parquetPfx,
		"AuditTable.Arn":            fmt.Sprintf("arn:aws:dynamodb:%s:%s:table/%s", testRegion, testAccount, auditTable),
		"CaptureBucket.Arn":         "arn:aws:s3:::" + captureBkt,
		"FailureBucket.Arn":         "arn:aws:s3:::rewind-failurebucket",
		"StreamHandlerLogGroup.Arn": fmt.Sprintf("arn:aws:logs:%s:%s:log-group:rewind-StreamHandlerLogGroup:*", testRegion, testAccount),
	}
	var resolve func(v any) any
	resolve = func(v any) any {
		switch v := v.(type) {
		case map[string]any:
			if r, ok := v["Ref"].(string); ok {
				return lookup(t, values, r)
			}
			if g, ok := v["Fn::GetAtt"].([]any); ok {
				return lookup(t, values, fmt.Sprintf("%v.%v", g[0], g[1]))
			}
			if s, ok := v["Fn::Sub"].(string); ok {
				return regexp.MustCompile(`\$\{([^}]+)\}`).ReplaceAllStringFunc(s, func(m string) string {
					return lookup(t, values, m[2:len(m)-1])
				})
			}
			out := map[string]any{}
			for k, x := range v {
				out[k] = resolve(x)
			}
			return out
		case []any:
			out := make([]any, len(v))
			for i, x := range v {
				out[i] = resolve(x)
			}
			return out
		}
		return v
	}
	b, err := json.Marshal(resolve(doc))
	if err != nil {
		t.Fatal(err)
	}
	return iamsim.Policy{Name: "StreamHandlerRole", Document: b}
}

func lookup(t *testing.T, values map[string]string, name string) string {
	t.Helper()
	v, ok := values[name]
	if !ok {
		t.Fatalf("template.yaml: StreamHandlerRole refers to %s, which this test does not resolve", name)
	}
	return v
}

// evaluateCalls evaluates every distinct IAM request of caller's calls.
func evaluateCalls(t *testing.T, sim *iamsim.Simulator, calls []awsrec.Call, caller string, policy iamsim.Policy, principal string) {
	t.Helper()
	evaluateCallsIn(t, sim, calls, caller, policy, principal, testRegion)
}

// evaluateCallsIn is evaluateCalls for calls made in region.
func evaluateCallsIn(t *testing.T, sim *iamsim.Simulator, calls []awsrec.Call, caller string, policy iamsim.Policy, principal, region string) {
	t.Helper()
	var reqs []iamsim.Request
	var from []awsrec.Call
	seen := map[string]bool{}
	for _, c := range calls {
		if c.Caller != caller {
			continue
		}
		rs, err := awsrec.Requests(c, testAccount, region)
		if err != nil {
			t.Error(err)
			continue
		}
		for _, r := range rs {
			ir := iamsim.Request{Action: r.Action, Resource: r.Resource, Principal: principal, Context: r.Context}
			if k := ir.String(); !seen[k] {
				seen[k] = true
				reqs = append(reqs, ir)
				from = append(from, c)
			}
		}
	}
	res, err := sim.Evaluate(t.Context(), []iamsim.Policy{policy}, reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Decision != iamsim.Allowed {
			t.Errorf("%s: %v (from %v): %s, %s", policy.Name, reqs[i], from[i], r.Decision, r.Reason)
		} else {
			t.Logf("%s: %v: %s", policy.Name, reqs[i], r.Reason)
		}
	}
}

// checkDenyWrite evaluates, for the application's role with DenyWrite
// attached next to a policy that allows it everything on DynamoDB, every
// write on a table or index resource in the iam-data catalogue, against the
// table and one of its indexes, on the frozen partition key (LeadingKeys):
// each must be denied. With allowedKey, the item writes on that key must
// stay allowed (the tenant is not frozen). Every action the deny names
// must exist.
func checkDenyWrite(t *testing.T, sim *iamsim.Simulator, denyDoc, frozenKey, allowedKey string) {
	t.Helper()
	ctx := t.Context()
	acts, err := sim.Actions(ctx, "dynamodb")
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, a := range acts {
		known["dynamodb:"+strings.ToLower(a.Name)] = true
	}
	var deny struct{ Statement []struct{ Action any } }
	if err := json.Unmarshal([]byte(denyDoc), &deny); err != nil {
		t.Fatalf("DenyWrite document: %v\n%s", err, denyDoc)
	}
	for _, st := range deny.Statement {
		var names []string
		switch a := st.Action.(type) {
		case string:
			names = []string{a}
		case []any:
			for _, x := range a {
				names = append(names, fmt.Sprint(x))
			}
		}
		for _, n := range names {
			if !strings.ContainsAny(n, "*?") && !known[strings.ToLower(n)] {
				t.Errorf("DenyWrite names %s, which is not an IAM action in iam-data (transactions are authorized as their PutItem/UpdateItem/DeleteItem parts)", n)
			}
		}
	}
	table := fmt.Sprintf("arn:aws:dynamodb:%s:%s:table/%s", testRegion, testAccount, runbookTable)
	principal := "arn:aws:iam::" + testAccount + ":role/" + appRole
	var reqs []iamsim.Request
	var want []iamsim.Decision
	for _, a := range iamsim.Filter(acts, "Write", "table", "index") {
		for _, rt := range a.ResourceTypes {
			res := table
			switch rt {
			case "index":
				res = table + "/index/by-status"
			case "table":
			default:
				continue
			}
			action := "dynamodb:" + a.Name
			item := slices.Contains(readonly.ItemWriteActions, action)
			r := iamsim.Request{Action: action, Resource: res, Principal: principal}
			if item {
				r.Context = map[string][]string{readonly.LeadingKeysCondition: {frozenKey}}
			}
			reqs = append(reqs, r)
			want = append(want, iamsim.ExplicitlyDenied)
			if item && allowedKey != "" {
				r.Context = map[string][]string{readonly.LeadingKeysCondition: {allowedKey}}
				reqs = append(reqs, r)
				want = append(want, iamsim.Allowed)
			}
		}
	}
	app := iamsim.Policy{Name: "application", Document: json.RawMessage(`{"Version":"2012-10-17","Statement":[{"Sid":"App","Effect":"Allow","Action":"dynamodb:*","Resource":"*"}]}`)}
	res, err := sim.Evaluate(ctx, []iamsim.Policy{app, {Name: denyPolicy, Document: json.RawMessage(denyDoc)}}, reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Decision != want[i] {
			t.Errorf("application role with DenyWrite: %v %v: %s (%s), want %s", reqs[i], reqs[i].Context, r.Decision, r.Reason, want[i])
		}
	}
}

// shipChangeLog logs a few item changes through recover/changelog into
// the stand-in's log group appLogGroup (stream "app") and exports the group
// to LOG_EXPORT_BUCKET with CloudWatch Logs' CreateExportTask, as the
// operator would before `rewind index --logs s3://...`. Not recorded: the
// application and the export task are not the operator's calls.
func shipChangeLog(t *testing.T, srv *fakelogs.Server, cfg aws.Config) {
	t.Helper()
	var buf bytes.Buffer
	l, err := changelog.New(changelog.Config{Handler: slog.NewJSONHandler(&buf, nil)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		k := rewind.Key{{Name: "pk", Type: 'S', Value: "TENANT#tenant01"}, {Name: "sk", Type: 'S', Value: fmt.Sprint("item#", i)}}
		if err := l.Change(t.Context(), runbookTable, k, rewind.ActionModify); err != nil {
			t.Fatal(err)
		}
	}
	for _, ln := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		srv.Put(appLogGroup, "app", fakelogs.Event{Timestamp: time.Now().UnixMilli(), Message: ln})
	}
	cw := cloudwatchlogs.NewFromConfig(cfg, func(o *cloudwatchlogs.Options) { o.BaseEndpoint = aws.String(srv.URL) })
	if _, err := cw.CreateExportTask(t.Context(), &cloudwatchlogs.CreateExportTaskInput{
		LogGroupName: aws.String(appLogGroup), From: aws.Int64(0), To: aws.Int64(time.Now().Add(time.Hour).UnixMilli()),
		Destination: aws.String(placeholders["LOG_EXPORT_BUCKET"]), DestinationPrefix: aws.String(placeholders["LOG_EXPORT_PREFIX"]),
	}); err != nil {
		t.Fatal(err)
	}
}
