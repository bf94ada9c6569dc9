package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ddbrewind/rewind/internal/fakeiam"
	"github.com/ddbrewind/rewind/internal/fakessm"
	"github.com/ddbrewind/rewind/internal/localaws"
)

// recoverEnv points the process's AWS configuration at local fakes: SSM
// and IAM/STS always, DynamoDB when ddbEndpoint is set. loadAWS reads the
// process environment, so these tests set it (and cannot run in parallel).
func recoverEnv(t *testing.T, ddbEndpoint, accessKey string) (*fakessm.Server, *fakeiam.Server) {
	t.Helper()
	ssmSrv, err := fakessm.Start(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ssmSrv.Close() })
	iamSrv, err := fakeiam.Start(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { iamSrv.Close() })
	if accessKey == "" {
		accessKey = "AKIDRECOVERTEST"
	}
	// The freeze describes its table (key schema, replicas) and lists DAX
	// clusters: the IAM stand-in answers both unless DynamoDB Local is
	// asked for.
	iamSrv.AddTable(fakeiam.Table{Name: "orders", PartitionKey: "pk", SortKey: "sk"})
	if ddbEndpoint == "" {
		ddbEndpoint = iamSrv.Endpoint
	}
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_SSM":        ssmSrv.Endpoint,
		"AWS_ENDPOINT_URL_IAM":        iamSrv.Endpoint,
		"AWS_ENDPOINT_URL_STS":        iamSrv.Endpoint,
		"AWS_ENDPOINT_URL_DYNAMODB":   ddbEndpoint,
		"AWS_ENDPOINT_URL_DAX":        iamSrv.Endpoint,
		"AWS_ACCESS_KEY_ID":           accessKey,
		"AWS_SECRET_ACCESS_KEY":       localaws.SecretAccessKey,
		"AWS_REGION":                  "eu-west-1",
		"AWS_CONFIG_FILE":             os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE": os.DevNull,
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_ENDPOINT_URL":            "",
		"AWS_SESSION_TOKEN":           "",
		"AWS_PROFILE":                 "",
	} {
		t.Setenv(k, v)
	}
	return ssmSrv, iamSrv
}

// runRecoverCLI runs a command line and returns its exit code, the JSON
// objects on stdout and stderr.
func runRecoverCLI(t *testing.T, args ...string) (int, []map[string]any, string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &Env{Stdout: &out, Stderr: &errb, Log: slog.New(slog.NewTextHandler(&errb, nil)), Getenv: os.Getenv}
	code := Run(context.Background(), env, args)
	var objs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%v: stdout line is not JSON: %q", args, line)
		}
		objs = append(objs, m)
	}
	return code, objs, errb.String()
}

func kinds(objs []map[string]any) []string {
	var ks []string
	for _, o := range objs {
		ks = append(ks, o["kind"].(string))
	}
	return ks
}

func strs(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, x := range l {
		out = append(out, x.(string))
	}
	return out
}

func TestReadonlyCLI(t *testing.T) {
	ssmSrv, iamSrv := recoverEnv(t, "", "")
	iamSrv.AddRole("app")
	iamSrv.AddRole("worker")
	policyARN := "arn:aws:iam::123456789012:policy/DenyWrite"

	code, objs, stderr := runRecoverCLI(t, "readonly", "on", "--tenants", "t1,t2")
	if code != 0 || !slices.Equal(kinds(objs), []string{"application"}) {
		t.Fatalf("on --tenants: exit %d, %v\n%s", code, objs, stderr)
	}
	if !slices.Equal(strs(objs[0]["added"]), []string{"t1", "t2"}) || !strings.Contains(stderr, "read-only ON") || !strings.Contains(stderr, "read-only tenants t1, t2 (added t1, t2)") {
		t.Fatalf("on --tenants: %v\n%s", objs, stderr)
	}
	if p, _ := ssmSrv.Get("read-only-customers"); p.Value != "t1,t2" {
		t.Fatalf("SSM holds %q", p.Value)
	}

	code, objs, stderr = runRecoverCLI(t, "readonly", "on", "--all", "--table", "orders", "--roles", "app,worker")
	if code != 0 || !slices.Equal(kinds(objs), []string{"application", "iam"}) {
		t.Fatalf("on --all --roles: exit %d, %v\n%s", code, objs, stderr)
	}
	t.Log(stderr)
	if objs[1]["document"] != "created" || !strings.Contains(stderr, "app attached, worker attached") || !strings.Contains(stderr, "operator role operator keeps write access") {
		t.Fatalf("on --all --roles: %v\n%s", objs, stderr)
	}
	if !slices.Equal(iamSrv.AttachedPolicies("app"), []string{policyARN}) {
		t.Fatalf("app role: %v", iamSrv.AttachedPolicies("app"))
	}
	_, doc := iamSrv.PolicyVersions(policyARN)
	if !strings.Contains(doc, "arn:aws:dynamodb:eu-west-1:123456789012:table/orders") {
		t.Fatalf("policy document: %s", doc)
	}

	// Again: idempotent, and says so.
	code, objs, stderr = runRecoverCLI(t, "readonly", "on", "--all", "--table", "orders", "--roles", "app")
	if code != 0 || objs[0]["changed"] != false || objs[1]["document"] != "unchanged" || !strings.Contains(stderr, "app already-attached") {
		t.Fatalf("second on: exit %d, %v\n%s", code, objs, stderr)
	}

	code, _, stderr = runRecoverCLI(t, "readonly", "on", "--table", "orders", "--roles", "operator")
	if code != exitError || !strings.Contains(stderr, "role you run as") {
		t.Fatalf("on --roles operator: exit %d\n%s", code, stderr)
	}

	code, objs, stderr = runRecoverCLI(t, "readonly", "status", "--table", "orders")
	if code != 0 || !slices.Equal(kinds(objs), []string{"application", "iam"}) || !strings.Contains(stderr, "ALL tenants read-only") || !strings.Contains(stderr, "for roles app, worker (on)") {
		t.Fatalf("status: exit %d, %v\n%s", code, objs, stderr)
	}

	// Removing "all" and t1 lifts the whole-table deny too: nothing is
	// left for IAM to deny, so the policy is detached.
	code, objs, stderr = runRecoverCLI(t, "readonly", "off", "--tenants", "t1,all")
	if code != 0 || !slices.Equal(kinds(objs), []string{"iam", "application"}) || !slices.Equal(strs(objs[1]["after"]), []string{"t2"}) || !strings.Contains(stderr, "app detached, worker detached") {
		t.Fatalf("off --tenants: exit %d, %v\n%s", code, objs, stderr)
	}
	code, objs, stderr = runRecoverCLI(t, "readonly", "status", "--table", "orders")
	t.Log(stderr)
	if code != 0 || !slices.Equal(kinds(objs), []string{"application", "iam", "warning"}) || !strings.Contains(stderr, "WARNING: only the application layer is on (tenants t2)") {
		t.Fatalf("status with layers disagreeing: exit %d, %v\n%s", code, objs, stderr)
	}

	// off: everything.
	code, objs, stderr = runRecoverCLI(t, "readonly", "off")
	t.Log(stderr)
	if code != 0 || !slices.Equal(kinds(objs), []string{"iam", "application"}) || !strings.Contains(stderr, "read-only OFF") {
		t.Fatalf("off: exit %d, %v\n%s", code, objs, stderr)
	}
	if len(iamSrv.AttachedPolicies("app"))+len(iamSrv.AttachedPolicies("worker")) != 0 {
		t.Fatal("policy still attached after off")
	}
	if p, _ := ssmSrv.Get("read-only-customers"); p.Value != "none" {
		t.Fatalf("SSM holds %q after off, want none", p.Value)
	}
	code, objs, stderr = runRecoverCLI(t, "readonly", "status")
	if code != 0 || !slices.Equal(kinds(objs), []string{"application", "iam"}) || !strings.Contains(stderr, "no tenant read-only") {
		t.Fatalf("final status: exit %d, %v\n%s", code, objs, stderr)
	}
}

func TestReadonlyCLIUsage(t *testing.T) {
	recoverEnv(t, "", "")
	for _, args := range [][]string{
		{"readonly"},
		{"readonly", "sideways"},
		{"readonly", "on"},
		{"readonly", "on", "--roles", "app"},
		{"readonly", "on", "--tenants", "a", "--all"},
		{"readonly", "on", "--tenants", "a", "extra"},
	} {
		if code, _, stderr := runRecoverCLI(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d\n%s", args, code, exitUsage, stderr)
		}
	}
	if code, _, stderr := runRecoverCLI(t, "readonly", "on", "--tenants", "a,b c"); code != exitError || !strings.Contains(stderr, "white space") {
		t.Errorf("bad tenant id: exit %d\n%s", code, stderr)
	}
}

// A fault is a backend that does not work: what a layer's endpoint does.
type fault string

const (
	works     fault = ""
	errors5xx fault = "500"    // answers every request with HTTP 500
	closed    fault = "closed" // nothing listens on the port
	hangs     fault = "hangs"  // accepts connections and never answers
)

// faultEndpoint returns an endpoint URL that fails as f says (f != works).
func faultEndpoint(t *testing.T, f fault) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	switch f {
	case closed:
		ln.Close()
	case errors5xx:
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/xml")
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, `<ErrorResponse><Error><Type>Receiver</Type><Code>ServiceFailure</Code><Message>injected outage</Message></Error><RequestId>1</RequestId></ErrorResponse>`)
		})}
		go srv.Serve(ln) //nolint:errcheck // ErrServerClosed on Close
		t.Cleanup(func() { srv.Close() })
	case hangs:
		var mu sync.Mutex
		var conns []net.Conn
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				conns = append(conns, c) // read nothing, answer nothing
				mu.Unlock()
			}
		}()
		t.Cleanup(func() {
			ln.Close()
			mu.Lock()
			defer mu.Unlock()
			for _, c := range conns {
				c.Close()
			}
		})
	default:
		t.Fatalf("fault %q", f)
	}
	return url
}

// breakSSM and breakIAM make a layer's backend fail as f says. SSM's 500s
// come from the stand-in's hook; the other faults replace the endpoint.
func breakSSM(t *testing.T, ssmSrv *fakessm.Server, f fault) {
	t.Helper()
	switch f {
	case works:
	case errors5xx:
		ssmSrv.SetHook(func(op, name string) error { return errors.New("injected outage") })
	default:
		t.Setenv("AWS_ENDPOINT_URL_SSM", faultEndpoint(t, f))
	}
}

// breakIAM fails IAM; with closed, STS too (so not even the account is
// known).
func breakIAM(t *testing.T, f fault) {
	t.Helper()
	if f == works {
		return
	}
	ep := faultEndpoint(t, f)
	t.Setenv("AWS_ENDPOINT_URL_IAM", ep)
	if f == closed {
		t.Setenv("AWS_ENDPOINT_URL_STS", ep)
	}
}

// layerTimeout is --layer-timeout in the fault tests: a run must end
// within two of them (one per layer) and some slack.
const layerTimeout = 2 * time.Second

// runTimed runs the command line under a deadline well past what it may
// take, so a command that hangs fails the test instead of hanging it, and
// checks it took no longer than one layerTimeout per layer plus slack.
func runTimed(t *testing.T, args ...string) (int, []map[string]any, string) {
	t.Helper()
	limit := 2*layerTimeout + 3*time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 3*limit)
	defer cancel()
	var out, errb bytes.Buffer
	env := &Env{Stdout: &out, Stderr: &errb, Log: slog.New(slog.NewTextHandler(&errb, nil)), Getenv: os.Getenv}
	start := time.Now()
	code := Run(ctx, env, append(args, "--layer-timeout", layerTimeout.String()))
	if took := time.Since(start); took > limit {
		t.Errorf("%v took %s, want at most %s (one --layer-timeout per layer)", args, took.Round(time.Millisecond), limit)
	}
	var objs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%v: stdout line is not JSON: %q", args, line)
		}
		objs = append(objs, m)
	}
	return code, objs, errb.String()
}

// outcomes maps each stdout object's kind to its outcome.
func outcomes(objs []map[string]any) map[string]any {
	m := map[string]any{}
	for _, o := range objs {
		m[o["kind"].(string)] = o["outcome"]
	}
	return m
}

// With one backend down, slow or hanging, `readonly on` and `off` still
// apply the other layer, say INCOMPLETE and exit 3; with both down, exit 1.
// Every case checks both layers' final state in the stand-ins.
func TestReadonlyLayersIndependent(t *testing.T) {
	const param = "read-only-customers"
	policyARN := "arn:aws:iam::123456789012:policy/DenyWrite"
	for _, tc := range []struct {
		name     string
		verb     string
		ssm, iam fault
		roles    bool // off: --roles app (else from every role)
	}{
		{"on/ssm-500", "on", errors5xx, works, false},
		{"on/ssm-closed", "on", closed, works, false},
		{"on/ssm-hangs", "on", hangs, works, false},
		{"on/iam-500", "on", works, errors5xx, false},
		{"on/iam-closed", "on", works, closed, false},
		{"on/iam-hangs", "on", works, hangs, false},
		{"on/both", "on", hangs, closed, false},
		{"off/ssm-500", "off", errors5xx, works, false},
		{"off/ssm-hangs", "off", hangs, works, false},
		{"off/iam-closed", "off", works, closed, false},
		{"off/iam-hangs", "off", works, hangs, false},
		{"off/both", "off", closed, errors5xx, false},
		{"off-roles/iam-500", "off", works, errors5xx, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ssmSrv, iamSrv := recoverEnv(t, "", "")
			iamSrv.AddRole("app")
			args := []string{"readonly", tc.verb}
			if tc.verb == "on" {
				args = append(args, "--tenants", "t1,t2", "--table", "orders", "--roles", "app")
			} else {
				// Everything on first, with both backends working.
				if code, _, stderr := runRecoverCLI(t, "readonly", "on", "--tenants", "t1,t2", "--table", "orders", "--roles", "app"); code != 0 {
					t.Fatalf("setup on: exit %d\n%s", code, stderr)
				}
				if tc.roles {
					args = append(args, "--roles", "app")
				}
			}
			ssmBefore, _ := ssmSrv.Get(param)
			iamBefore := iamSrv.AttachedPolicies("app")
			breakSSM(t, ssmSrv, tc.ssm)
			breakIAM(t, tc.iam)

			code, objs, stderr := runTimed(t, args...)
			t.Log(stderr)
			ssmSrv.SetHook(nil)
			ssmAfter, _ := ssmSrv.Get(param)
			iamAfter := iamSrv.AttachedPolicies("app")

			// The state of each layer: changed where its backend worked,
			// untouched where it did not.
			wantSSM, wantIAM := ssmBefore.Value, iamBefore
			if tc.ssm == works {
				wantSSM = map[string]string{"on": "t1,t2", "off": "none"}[tc.verb]
			}
			if tc.iam == works {
				wantIAM = map[string][]string{"on": {policyARN}, "off": nil}[tc.verb]
			}
			if ssmAfter.Value != wantSSM {
				t.Errorf("SSM %s = %q, want %q", param, ssmAfter.Value, wantSSM)
			}
			if !slices.Equal(iamAfter, wantIAM) {
				t.Errorf("policies attached to app = %q, want %q", iamAfter, wantIAM)
			}

			want := map[string]any{"application": "ok", "iam": "ok"}
			if tc.ssm != works {
				want["application"] = "failed"
			}
			if tc.iam != works {
				want["iam"] = "failed"
			}
			if got := outcomes(objs); !maps.Equal(got, want) {
				t.Errorf("outcomes on stdout %v, want %v", got, want)
			}
			header := strings.SplitN(stderr, "\n", 2)[0]
			title := "read-only " + strings.ToUpper(tc.verb)
			if tc.ssm != works && tc.iam != works {
				if code != exitError || !strings.HasPrefix(header, title+" FAILED at ") {
					t.Errorf("exit %d, header %q; want %d and %q", code, header, exitError, title+" FAILED at ...")
				}
			} else if code != exitPartial || !strings.HasPrefix(header, title+" INCOMPLETE at ") {
				t.Errorf("exit %d, header %q; want %d and %q", code, header, exitPartial, title+" INCOMPLETE at ...")
			}
			for _, o := range objs {
				if o["outcome"] == "failed" && (tc.ssm == hangs && o["kind"] == "application" || tc.iam == hangs && o["kind"] == "iam") && o["timedOut"] != true {
					t.Errorf("%s layer hung but is not reported timed out: %v", o["kind"], o)
				}
			}
			// The summary says how to finish by hand.
			role := "app"
			if tc.verb == "off" && !tc.roles {
				role = "ROLE" // from every role: the summary lists them first
			}
			if tc.iam != works && !strings.Contains(stderr, "aws iam "+map[string]string{"on": "attach", "off": "detach"}[tc.verb]+"-role-policy --role-name "+role) {
				t.Errorf("summary gives no aws iam command for the failed IAM layer")
			}
			if tc.ssm != works && !strings.Contains(stderr, "aws ssm put-parameter --name "+param) {
				t.Errorf("summary gives no aws ssm command for the failed application layer")
			}

			// Rerunning with the backends back finishes the job.
			t.Setenv("AWS_ENDPOINT_URL_SSM", ssmSrv.Endpoint)
			t.Setenv("AWS_ENDPOINT_URL_IAM", iamSrv.Endpoint)
			t.Setenv("AWS_ENDPOINT_URL_STS", iamSrv.Endpoint)
			if code, _, stderr := runTimed(t, args...); code != 0 {
				t.Fatalf("rerun: exit %d\n%s", code, stderr)
			}
		})
	}
}

// `readonly status` reads each layer under its own deadline: one hanging
// backend is reported, the other layer still shown, exit 3.
func TestReadonlyStatusOneLayerHangs(t *testing.T) {
	for _, tc := range []struct {
		name     string
		ssm, iam fault
		code     int
		want     map[string]any
	}{
		{"ssm-hangs", hangs, works, exitPartial, map[string]any{"application": "failed", "iam": "ok"}},
		{"iam-hangs", works, hangs, exitPartial, map[string]any{"application": "ok", "iam": "failed"}},
		{"both", hangs, closed, exitError, map[string]any{"application": "failed", "iam": "failed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ssmSrv, iamSrv := recoverEnv(t, "", "")
			iamSrv.AddRole("app")
			if code, _, stderr := runRecoverCLI(t, "readonly", "on", "--all", "--table", "orders", "--roles", "app"); code != 0 {
				t.Fatalf("setup on: exit %d\n%s", code, stderr)
			}
			breakSSM(t, ssmSrv, tc.ssm)
			breakIAM(t, tc.iam)
			code, objs, stderr := runTimed(t, "readonly", "status", "--table", "orders")
			t.Log(stderr)
			if code != tc.code || !maps.Equal(outcomes(objs), tc.want) {
				t.Fatalf("exit %d, outcomes %v; want %d, %v", code, outcomes(objs), tc.code, tc.want)
			}
			if tc.ssm == works && !strings.Contains(stderr, "ALL tenants read-only") {
				t.Errorf("application layer not shown")
			}
			if tc.iam == works && !strings.Contains(stderr, "for roles app (on)") {
				t.Errorf("IAM layer not shown")
			}
			if tc.code == exitPartial && !strings.HasPrefix(stderr, "read-only STATUS INCOMPLETE at ") {
				t.Errorf("header does not say INCOMPLETE")
			}
		})
	}
}

// iamDecision asks the IAM stand-in how it evaluates action by role on
// the orders table (in region) for a partition key.
func iamDecision(t *testing.T, iamSrv *fakeiam.Server, role, action, region, pk string) string {
	t.Helper()
	var docs []string
	for _, a := range iamSrv.AttachedPolicies(role) {
		_, d := iamSrv.PolicyVersions(a)
		docs = append(docs, d)
	}
	if d, ok := iamSrv.InlinePolicy(role, "DenyWrite"); ok {
		docs = append(docs, d)
	}
	res := "arn:aws:dynamodb:" + region + ":123456789012:table/orders"
	return fakeiam.Evaluate(docs, action, res, map[string][]string{"dynamodb:leadingkeys": {pk}})
}

// The runbook's per-tenant freeze: IAM denies only the tenants frozen,
// `on` for t3 keeps t1 and t2, `off --tenants t1` leaves t2 and t3, and
// other tenants keep writing. The tenant is the TENANT#<id># prefix of
// the partition key, in a global table with a replica in us-east-1.
func TestReadonlyCLIPerTenant(t *testing.T) {
	ssmSrv, iamSrv := recoverEnv(t, "", "")
	iamSrv.AddTable(fakeiam.Table{Name: "orders", PartitionKey: "pk", SortKey: "sk", Regions: []string{"eu-west-1", "us-east-1"}})
	iamSrv.AddRole("app")
	iamSrv.AddDAXCluster("orders-cache")
	rule := []string{"--table", "orders", "--roles", "app", "--tenant-regex", "^TENANT#([^#]+)#"}
	frozen := func(want ...string) {
		t.Helper()
		for _, tenant := range []string{"t1", "t2", "t3", "t4", "t*"} {
			for _, region := range []string{"eu-west-1", "us-east-1"} {
				got := iamDecision(t, iamSrv, "app", "dynamodb:PutItem", region, "TENANT#"+tenant+"#ORDER#1")
				if wantDeny := slices.Contains(want, tenant); (got == fakeiam.ExplicitDeny) != wantDeny {
					t.Errorf("tenant %s in %s: IAM says %s, want denied=%v", tenant, region, got, wantDeny)
				}
			}
		}
	}

	code, objs, stderr := runRecoverCLI(t, append([]string{"readonly", "on", "--tenants", "t1,t2"}, rule...)...)
	t.Log(stderr)
	if code != 0 || !slices.Equal(kinds(objs), []string{"application", "iam"}) {
		t.Fatalf("on t1,t2: exit %d, %v\n%s", code, objs, stderr)
	}
	for _, want := range []string{"IAM layer effective", "in eu-west-1, us-east-1 (every replica of the global table)", "added tenants t1, t2", "WARNING: DAX clusters in eu-west-1 (orders-cache)"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("summary does not say %q", want)
		}
	}
	if e, _ := objs[1]["effect"].(map[string]any); e["effective"] != true {
		t.Errorf("stdout iam object: effect %v, want effective", objs[1]["effect"])
	}
	frozen("t1", "t2")

	code, _, stderr = runRecoverCLI(t, append([]string{"readonly", "on", "--tenants", "t3"}, rule...)...)
	if code != 0 {
		t.Fatalf("on t3: exit %d\n%s", code, stderr)
	}
	frozen("t1", "t2", "t3")

	code, objs, stderr = runRecoverCLI(t, "readonly", "off", "--tenants", "t1", "--tenant-regex", "^TENANT#([^#]+)#")
	t.Log(stderr)
	if code != 0 || !slices.Equal(kinds(objs), []string{"iam", "application"}) {
		t.Fatalf("off t1: exit %d, %v\n%s", code, objs, stderr)
	}
	frozen("t2", "t3")
	if p, _ := ssmSrv.Get("read-only-customers"); p.Value != "t2,t3" {
		t.Fatalf("SSM holds %q", p.Value)
	}

	// Status names the tenants IAM denies and agrees with the SSM list.
	code, objs, stderr = runRecoverCLI(t, "readonly", "status", "--table", "orders", "--tenant-regex", "^TENANT#([^#]+)#")
	t.Log(stderr)
	if code != 0 || !slices.Equal(kinds(objs), []string{"application", "iam"}) || !strings.Contains(stderr, "(tenants t2, t3) in eu-west-1, us-east-1 for roles app (on)") || !strings.Contains(stderr, "IAM layer effective") {
		t.Fatalf("status: exit %d, %v\n%s", code, objs, stderr)
	}

	// A tenant id with IAM wildcards is matched literally.
	code, _, stderr = runRecoverCLI(t, append([]string{"readonly", "on", "--tenants", "t*"}, rule...)...)
	if code != 0 {
		t.Fatalf("on t*: exit %d\n%s", code, stderr)
	}
	frozen("t2", "t3", "t*")

	// A rule IAM cannot match is refused, and nothing changes.
	before, _ := ssmSrv.Get("read-only-customers")
	_, beforeDoc := iamSrv.PolicyVersions("arn:aws:iam::123456789012:policy/DenyWrite")
	code, _, stderr = runRecoverCLI(t, "readonly", "on", "--tenants", "t9", "--table", "orders", "--roles", "app", "--tenant-attribute", "sk")
	after, _ := ssmSrv.Get("read-only-customers")
	_, afterDoc := iamSrv.PolicyVersions("arn:aws:iam::123456789012:policy/DenyWrite")
	if code != exitUsage || !strings.Contains(stderr, "sort key sk") || !strings.Contains(stderr, "--iam whole-table") || after.Value != before.Value || afterDoc != beforeDoc {
		t.Fatalf("tenant in the sort key: exit %d, SSM %q -> %q\n%s", code, before.Value, after.Value, stderr)
	}
	// ... unless the operator asks for the whole table in IAM.
	code, _, stderr = runRecoverCLI(t, "readonly", "on", "--tenants", "t9", "--table", "orders", "--roles", "app", "--tenant-attribute", "sk", "--iam", "whole-table")
	if code != 0 {
		t.Fatalf("--iam whole-table: exit %d\n%s", code, stderr)
	}
	frozen("t1", "t2", "t3", "t4", "t*")
}

// A role at its managed-policy quota gets the deny inline, and off
// removes it.
func TestReadonlyCLIQuotaFallback(t *testing.T) {
	_, iamSrv := recoverEnv(t, "", "")
	iamSrv.AddRole("app")
	iamSrv.SetManagedPolicyQuota(0)
	code, objs, stderr := runRecoverCLI(t, "readonly", "on", "--tenants", "t1", "--table", "orders", "--roles", "app")
	t.Log(stderr)
	if code != 0 || !strings.Contains(stderr, "app inline") || !strings.Contains(stderr, "IAM layer effective") {
		t.Fatalf("on: exit %d, %v\n%s", code, objs, stderr)
	}
	if len(iamSrv.AttachedPolicies("app")) != 0 {
		t.Fatalf("managed policy attached over the quota: %v", iamSrv.AttachedPolicies("app"))
	}
	if got := iamDecision(t, iamSrv, "app", "dynamodb:DeleteItem", "eu-west-1", "t1"); got != fakeiam.ExplicitDeny {
		t.Fatalf("t1 through the inline copy: %s", got)
	}
	if got := iamDecision(t, iamSrv, "app", "dynamodb:DeleteItem", "eu-west-1", "t2"); got == fakeiam.ExplicitDeny {
		t.Fatalf("t2 denied by a t1 freeze")
	}
	// Freezing t2 updates the inline copy.
	if code, _, stderr := runRecoverCLI(t, "readonly", "on", "--tenants", "t2", "--table", "orders", "--roles", "app"); code != 0 || !strings.Contains(stderr, "app inline-updated") {
		t.Fatalf("on t2: exit %d\n%s", code, stderr)
	}
	if got := iamDecision(t, iamSrv, "app", "dynamodb:DeleteItem", "eu-west-1", "t2"); got != fakeiam.ExplicitDeny {
		t.Fatalf("t2 after on t2: %s", got)
	}
	code, _, stderr = runRecoverCLI(t, "readonly", "off")
	t.Log(stderr)
	if _, ok := iamSrv.InlinePolicy("app", "DenyWrite"); ok || code != 0 || !strings.Contains(stderr, "app inline-deleted") {
		t.Fatalf("off: exit %d, inline copy left=%v\n%s", code, ok, stderr)
	}
}

// `readonly on` waits for IAM's evaluation to show the deny: with a slow
// IAM it waits, and when IAM is slower than --wait it says INCOMPLETE,
// exit 3.
func TestReadonlyCLIWaitsForIAM(t *testing.T) {
	_, iamSrv := recoverEnv(t, "", "")
	iamSrv.AddRole("app")
	iamSrv.SetPropagationDelay(3 * time.Second)
	start := time.Now()
	code, _, stderr := runRecoverCLI(t, "readonly", "on", "--all", "--table", "orders", "--roles", "app", "--wait", "30s")
	t.Log(stderr)
	if took := time.Since(start); code != 0 || took < 3*time.Second || !strings.Contains(stderr, "IAM layer effective") {
		t.Fatalf("on with a 3s lag: exit %d after %s\n%s", code, took, stderr)
	}

	iamSrv.SetPropagationDelay(time.Hour)
	code, objs, stderr := runRecoverCLI(t, "readonly", "on", "--tenants", "t1", "--table", "orders", "--roles", "app", "--wait", "3s")
	t.Log(stderr)
	if code != exitPartial || !strings.Contains(stderr, "read-only ON INCOMPLETE") || !strings.Contains(stderr, "NOT YET EFFECTIVE") {
		t.Fatalf("on with IAM slower than --wait: exit %d, %v\n%s", code, objs, stderr)
	}
	if o := outcomes(objs); o["iam"] != "not-effective" || o["application"] != "ok" {
		t.Fatalf("outcomes %v", o)
	}
}

// Without dax:DescribeClusters the freeze says it could not check.
func TestReadonlyCLIDAXUnchecked(t *testing.T) {
	_, iamSrv := recoverEnv(t, "", "")
	iamSrv.AddRole("app")
	iamSrv.SetDAXError("AccessDeniedException")
	code, _, stderr := runRecoverCLI(t, "readonly", "on", "--all", "--table", "orders", "--roles", "app")
	if code != 0 || !strings.Contains(stderr, "WARNING: could not check for DAX clusters") {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
}
