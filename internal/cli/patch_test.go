package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/internal/crashtest"
	"github.com/ddbrewind/rewind/internal/localaws"
	"github.com/ddbrewind/rewind/recover/patch/patchtest"
)

// patchStack builds the damaged-table scenario in a database of the test's
// own and points this process's AWS environment at it.
func patchStack(t *testing.T, o patchtest.ScenarioOptions) (*localaws.DynamoDBEnv, *patchtest.Scenario, string, []string) {
	t.Helper()
	ddb := localaws.DynamoDBForTest(t)
	o.Prod, o.Restored = "orders", "orders-restored"
	s, err := patchtest.BuildScenario(t.Context(), ddb.DynamoDB, o)
	if err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(t.TempDir(), "impacted.jsonl")
	if err := patchtest.WriteKeySet(keys, "orders", s.Keys); err != nil {
		t.Fatal(err)
	}
	awsEnv := []string{
		"AWS_ENDPOINT_URL_DYNAMODB=" + ddb.Endpoint,
		"AWS_ACCESS_KEY_ID=" + ddb.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + localaws.SecretAccessKey,
		"AWS_REGION=" + localaws.Region,
		"AWS_CONFIG_FILE=" + os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE=" + os.DevNull,
		"AWS_EC2_METADATA_DISABLED=true",
	}
	for _, kv := range awsEnv {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	return ddb, s, keys, awsEnv
}

func runPatchCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &Env{Stdout: &out, Stderr: &errb, Log: slog.New(slog.NewTextHandler(&errb, nil)), Getenv: os.Getenv}
	code = Run(context.Background(), env, args)
	return code, out.String(), errb.String()
}

func assertProd(t *testing.T, c *dynamodb.Client, want map[string]rewind.Item, what string) {
	t.Helper()
	got, err := patchtest.Scan(t.Context(), c, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if d := patchtest.DiffTables(want, got, 5); len(d) > 0 {
		t.Fatalf("%s: production differs from the expected state:\n%s", what, strings.Join(d, "\n"))
	}
}

func jsonLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("stdout line is not JSON: %v: %.200s", err, sc.Text())
		}
		out = append(out, m)
	}
	return out
}

// TestPatchRunbook runs the runbook's steps through the command line:
// dry run, try one key, patch, verify, undo, verify again.
func TestPatchRunbook(t *testing.T) {
	ddb, s, keys, _ := patchStack(t, patchtest.ScenarioOptions{Items: 60, Modify: 15, Delete: 5, Junk: 5, Unchanged: 3, Absent: 2, GoodWrites: 3, Seed: 11})
	c := ddb.DynamoDB
	dir := t.TempDir()
	journal := filepath.Join(dir, "patch.journal")
	common := []string{"--keys", keys, "--from", "orders-restored", "--to", "orders"}

	code, stdout, stderr := runPatchCLI(t, append([]string{"patch"}, common...)...)
	if code != exitOK {
		t.Fatalf("dry run: exit %d\n%s", code, stderr)
	}
	plan := jsonLines(t, stdout)
	if len(plan) != len(s.Keys) {
		t.Fatalf("dry run: %d plan lines for %d keys", len(plan), len(s.Keys))
	}
	for _, want := range []string{"rewind patch: dry run", "restore    20", "delete     5", "unchanged  3", "absent     2"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("dry-run summary lacks %q:\n%s", want, stderr)
		}
	}
	assertProd(t, c, s.Damaged, "after dry run")

	code, _, stderr = runPatchCLI(t, append([]string{"patch", "--yes", "--journal", journal}, common...)...)
	if code != exitOK {
		t.Fatalf("patch: exit %d\n%s", code, stderr)
	}
	for _, want := range []string{"rewind patch: applied", "written    25", "conflicts  0", "journal    " + journal} {
		if !strings.Contains(stderr, want) {
			t.Errorf("summary lacks %q:\n%s", want, stderr)
		}
	}
	assertProd(t, c, s.Expected, "after patch")

	if code, stdout, stderr = runPatchCLI(t, append([]string{"verify"}, common...)...); code != exitOK || stdout != "" {
		t.Fatalf("verify after patch: exit %d, stdout %q\n%s", code, stdout, stderr)
	}

	// Undo: dry run first, then for real.
	code, stdout, stderr = runPatchCLI(t, "undo", "--journal", journal, "--to", "orders")
	if code != exitOK || len(jsonLines(t, stdout)) != 25 {
		t.Fatalf("undo dry run: exit %d, %d lines\n%s", code, len(jsonLines(t, stdout)), stderr)
	}
	assertProd(t, c, s.Expected, "after undo dry run")
	if code, _, stderr = runPatchCLI(t, "undo", "--journal", journal, "--to", "orders", "--yes"); code != exitOK {
		t.Fatalf("undo: exit %d\n%s", code, stderr)
	}
	assertProd(t, c, s.Damaged, "after undo")

	code, stdout, _ = runPatchCLI(t, append([]string{"verify"}, common...)...)
	if code != exitPartial || len(jsonLines(t, stdout)) != 25 {
		t.Fatalf("verify after undo: exit %d, %d mismatch lines; want %d and 25", code, len(jsonLines(t, stdout)), exitPartial)
	}
}

func TestPatchUsage(t *testing.T) {
	for _, args := range [][]string{
		{"patch"},
		{"patch", "--keys", "k", "--from", "a"},
		{"patch", "--keys", "k", "--from", "a", "--to", "a"},
		{"patch", "--keys", "k", "--from", "a", "--to", "b", "--shard", "3/3"},
		{"patch", "--keys", "k", "--from", "a", "--to", "b", "--resume"},
		{"patch", "--keys", "k", "--from", "a", "--to", "b", "--concurrency", "0"},
		{"verify", "--keys", "k", "--to", "b"},
		{"undo", "--to", "b"},
	} {
		if code, _, stderr := runPatchCLI(t, args...); code != exitUsage {
			t.Errorf("%q: exit %d, want %d\n%s", args, code, exitUsage, stderr)
		}
	}
}

// TestPatchChildProcess is not a test: the crash tests run a rewind
// command line in a child process by re-executing the test binary with it
// selected (see internal/crashtest).
func TestPatchChildProcess(t *testing.T) {
	crashtest.RunChild(cliChild, cliChildMain)
	t.Skip("helper process for the crash tests")
}

// cliChild names the child process that runs one rewind command line.
const cliChild = "TestPatchChildProcess"

// cliChildMain runs a command line as the rewind binary does.
func cliChildMain(args []string) int {
	env := &Env{Stdout: os.Stdout, Stderr: os.Stderr, Log: slog.New(slog.NewTextHandler(os.Stderr, nil)), Getenv: os.Getenv}
	ctx, stop := handleSignals(env, os.Exit)
	defer stop()
	return Run(ctx, env, args)
}

// childCmd returns the command of a child running one rewind command
// line, its stdout and stderr both in the returned buffer.
func childCmd(t *testing.T, awsEnv []string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := crashtest.Command(cliChild, args, awsEnv...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	cmd.Stdout = &errb
	return cmd, &errb
}

func exitOf(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

// countIntents counts the intent records in a journal.
func countIntents(path string) int {
	b, _ := os.ReadFile(path)
	return bytes.Count(b, []byte(`{"op":"intent"`))
}

// TestPatchSIGINT interrupts a patch: it stops cleanly with exit 130, its
// checkpoint flushed, and --resume finishes it.
func TestPatchSIGINT(t *testing.T) {
	ddb, s, keys, awsEnv := patchStack(t, patchtest.ScenarioOptions{Items: 100, Modify: 60, Delete: 20, Junk: 10, Seed: 31})
	j := filepath.Join(t.TempDir(), "p.journal")
	args := []string{"patch", "--keys", keys, "--from", "orders-restored", "--to", "orders", "--yes", "--rate", "40", "--concurrency", "2", "--journal", j, "--progress", "0"}
	cmd, errb := childCmd(t, awsEnv, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for countIntents(j) < 30 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(1200 * time.Millisecond) // past the first chunk, so a checkpoint is due
	cmd.Process.Signal(os.Interrupt)
	if code := exitOf(t, cmd.Wait()); code != exitInterrupted {
		t.Fatalf("exit %d after SIGINT, want %d\n%s", code, exitInterrupted, errb)
	}
	for _, want := range []string{"rewind patch: INTERRUPTED", "--resume --journal " + j} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errb)
		}
	}
	var cp struct{ Line int }
	b, err := os.ReadFile(j + ".checkpoint")
	if err != nil {
		t.Fatalf("no checkpoint after SIGINT: %v", err)
	}
	if json.Unmarshal(b, &cp); cp.Line == 0 {
		t.Errorf("checkpoint %s covers no line", b)
	}
	cmd, errb = childCmd(t, awsEnv, append(args, "--resume", "--rate", "0")...)
	if code := exitOf(t, cmd.Run()); code != 0 {
		t.Fatalf("resume: exit %d\n%s", code, errb)
	}
	if !strings.Contains(errb.String(), fmt.Sprintf("resumed after line %d", cp.Line)) {
		t.Errorf("resume summary does not say where it resumed:\n%s", errb)
	}
	assertProd(t, ddb.DynamoDB, s.Expected, "after SIGINT and resume")
}
