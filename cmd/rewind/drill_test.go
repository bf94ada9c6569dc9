package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/ddbrewind/rewind/internal/localaws"
)

// requireStack skips a test that needs DynamoDB Local when it is not
// installed, unless REWIND_REQUIRE_LOCAL_AWS=1 makes that a failure.
func requireStack(t *testing.T) {
	t.Helper()
	if _, err := localaws.DynamoDBLocalDir(); err != nil {
		if os.Getenv("REWIND_REQUIRE_LOCAL_AWS") == "1" {
			t.Fatalf("DynamoDB Local is required: %v (run scripts/install-local-aws.sh)", err)
		}
		t.Skipf("DynamoDB Local not installed: %v", err)
	}
}

func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &Env{Stdout: &out, Stderr: &errb, Log: slog.New(slog.NewTextHandler(&errb, nil)), Getenv: os.Getenv}
	code = run(context.Background(), env, args)
	return code, out.String(), errb.String()
}

func TestDrillCapture(t *testing.T) {
	requireStack(t)
	// The drill points the process's AWS environment at its stack; keep
	// other tests unaffected.
	for _, k := range []string{"AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_DYNAMODB_STREAMS", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "REWIND_S3_PATH_STYLE"} {
		t.Setenv(k, os.Getenv(k))
	}
	code, stdout, stderr := runCmd(t, "drill", "--tenants", "3", "--changes", "300", "--batch-size", "50")
	if code != 0 {
		t.Fatalf("drill exit %d\n%s", code, stderr)
	}
	var summary struct {
		Check    string
		Changes  int
		Captured int
	}
	if err := json.Unmarshal([]byte(stdout), &summary); err != nil {
		t.Fatalf("stdout %q: %v", stdout, err)
	}
	if summary.Check != "pass" || summary.Changes < 290 || summary.Captured < summary.Changes {
		t.Fatalf("summary %+v", summary)
	}
	for _, want := range []string{"Timeline:", "tenant03", "drill: PASS"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

func TestUnknownCommandIsUsageError(t *testing.T) {
	if code, _, stderr := runCmd(t, "frobnicate"); code != exitUsage || !strings.Contains(stderr, `unknown command "frobnicate"`) {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if code, _, _ := runCmd(t, "drill", "--changes", "0"); code != exitUsage {
		t.Fatalf("bad flag value: exit %d, want %d", code, exitUsage)
	}
	if code, _, _ := runCmd(t, "drill", "--no-such-flag"); code != exitUsage {
		t.Fatalf("unknown flag: exit %d, want %d", code, exitUsage)
	}
}
