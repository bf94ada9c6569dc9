package cli

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
	code = Run(context.Background(), env, args)
	return code, out.String(), errb.String()
}

// keepAWSEnv restores the process's AWS environment after a test that
// points it at a local stack (the drill does, as the runbook's commands
// find AWS through it).
func keepAWSEnv(t *testing.T) {
	for _, k := range []string{
		"AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_DYNAMODB_STREAMS", "AWS_ENDPOINT_URL_S3",
		"AWS_ENDPOINT_URL_SSM", "AWS_ENDPOINT_URL_IAM", "AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL",
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION",
		"AWS_EC2_METADATA_DISABLED", "REWIND_S3_PATH_STYLE",
	} {
		t.Setenv(k, os.Getenv(k))
	}
}

func TestDrill(t *testing.T) {
	requireStack(t)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"two-tenants", []string{"--tenants", "4", "--affected", "2", "--changes", "300"}},
		{"all-tenants", []string{"--tenants", "3", "--all", "--changes", "300"}},
		// Patching from the history gives the same plan, key for key, as
		// patching from the restore.
		{"from-history", []string{"--tenants", "4", "--affected", "2", "--changes", "300", "--from-history", "--compare-restore"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keepAWSEnv(t)
			code, stdout, stderr := runCmd(t, append([]string{"drill", "--workdir", t.TempDir()}, tc.args...)...)
			if code != 0 {
				t.Fatalf("drill exit %d\n%s", code, stderr)
			}
			var o drillOutcome
			if err := json.Unmarshal([]byte(stdout), &o); err != nil {
				t.Fatalf("stdout %q: %v", stdout, err)
			}
			if o.Check != "pass" || o.Wrong != 0 || o.Items == 0 {
				t.Fatalf("outcome %+v", o)
			}
			// The key set holds exactly the damaged items, and the plan
			// covers each: restore or delete, or (an item DynamoDB's TTL
			// removed meanwhile) absent or unchanged.
			if o.Found != o.Damaged || o.Restore+o.Delete+o.Unchanged+o.Absent != o.Found || o.Restore == 0 || o.Delete == 0 || o.Conflicts != 0 {
				t.Fatalf("damaged %d, found %d, restore %d, delete %d, unchanged %d, absent %d, conflicts %d", o.Damaged, o.Found, o.Restore, o.Delete, o.Unchanged, o.Absent, o.Conflicts)
			}
			if strings.Contains(tc.name, "history") && (o.Source != "history" || o.SamePlan == nil || !*o.SamePlan) {
				t.Fatalf("history drill: source %q, same plan as restore %v", o.Source, o.SamePlan)
			}
			if o.Refused == 0 {
				t.Errorf("the guard refused no write while read-only")
			}
			for _, want := range []string{"rewind readonly on", "rewind restore", "rewind query", "rewind patch", "rewind verify", "rewind readonly off", "Timeline:", "drill: PASS"} {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q", want)
				}
			}
			if strings.Contains(tc.name, "all") && !strings.Contains(stderr, "--all") {
				t.Errorf("the all-tenants drill did not freeze with --all")
			}
		})
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
