package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"

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
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_SSM":        ssmSrv.Endpoint,
		"AWS_ENDPOINT_URL_IAM":        iamSrv.Endpoint,
		"AWS_ENDPOINT_URL_STS":        iamSrv.Endpoint,
		"AWS_ENDPOINT_URL_DYNAMODB":   ddbEndpoint,
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
	code := run(context.Background(), env, args)
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

	// Removing one tenant leaves the IAM layer alone.
	code, objs, _ = runRecoverCLI(t, "readonly", "off", "--tenants", "t1,all")
	if code != 0 || !slices.Equal(kinds(objs), []string{"application"}) || !slices.Equal(strs(objs[0]["after"]), []string{"t2"}) {
		t.Fatalf("off --tenants: exit %d, %v", code, objs)
	}
	code, objs, stderr = runRecoverCLI(t, "readonly", "status", "--table", "orders")
	t.Log(stderr)
	if code != 0 || !slices.Equal(kinds(objs), []string{"application", "iam", "warning"}) || !strings.Contains(stderr, "WARNING: IAM policy DenyWrite blocks writes for every tenant") {
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
