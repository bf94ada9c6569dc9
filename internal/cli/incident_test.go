package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ddbrewind/rewind/internal/incident"
	"github.com/ddbrewind/rewind/recover/patch/patchtest"
)

// statusOf runs rewind status on dir and returns its exit code and its
// stdout object.
func statusOf(t *testing.T, dir string) (int, incident.Status, string) {
	t.Helper()
	code, stdout, stderr := runPatchCLI(t, "status", "--incident", dir)
	var line struct {
		Kind string `json:"kind"`
		incident.Status
	}
	if err := json.Unmarshal([]byte(stdout), &line); err != nil || line.Kind != "status" {
		t.Fatalf("status: exit %d, stdout %q: %v\n%s", code, stdout, err, stderr)
	}
	return code, line.Status, stderr
}

// runNext runs the command status printed, as an engineer pasting it
// would (the test's paths hold no spaces or quotes).
func runNext(t *testing.T, next string, extra ...string) (int, string, string) {
	t.Helper()
	words := strings.Fields(next)
	if len(words) < 2 || words[0] != "rewind" {
		t.Fatalf("next command %q is not a rewind command", next)
	}
	return runPatchCLI(t, append(words[1:], extra...)...)
}

func logEntries(t *testing.T, dir string) []incident.Entry {
	t.Helper()
	d, err := incident.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	es, probs, err := d.Read()
	if err != nil || len(probs) > 0 {
		t.Fatalf("log: %v %v", err, probs)
	}
	return es
}

// TestIncidentRunbook follows rewind status's next command through a
// patch in an incident folder: the dry run, a patch cut short by
// --limit, its resume (the journal found from the log), verify; each
// step recorded, the journal named in the folder, the table compared
// whole after; then the inconsistencies status flags, and the report.
func TestIncidentRunbook(t *testing.T) {
	ddb, s, keys, _ := patchStack(t, patchtest.ScenarioOptions{Items: 60, Modify: 15, Delete: 5, Junk: 5, Unchanged: 3, Absent: 2, GoodWrites: 3, Seed: 11})
	// No STS here: the identity is "unknown (...)", at once.
	t.Setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:1")
	dir := filepath.Join(t.TempDir(), "inc")

	code, st, stderr := statusOf(t, dir)
	if code != exitPartial || st.Done || !strings.HasPrefix(st.Next, "rewind index --incident "+dir) {
		t.Fatalf("empty incident: exit %d, next %q, want 3 and rewind index\n%s", code, st.Next, stderr)
	}

	code, stdout, stderr := runPatchCLI(t, "patch", "--incident", dir, "--keys", keys, "--from", "orders-restored", "--to", "orders")
	if code != exitOK {
		t.Fatalf("dry run: exit %d\n%s", code, stderr)
	}
	plan := filepath.Join(dir, "001-patch.plan.jsonl")
	if b, err := os.ReadFile(plan); err != nil || string(b) != stdout || stdout == "" {
		t.Fatalf("the plan kept in the folder differs from stdout (%v)", err)
	}
	assertProd(t, ddb.DynamoDB, s.Damaged, "after the dry run")

	_, st, _ = statusOf(t, dir)
	wantApply := "rewind patch --incident " + dir + " --plan " + plan + " --from orders-restored --to orders --yes"
	if st.Next != wantApply {
		t.Fatalf("after the dry run: next %q, want %q", st.Next, wantApply)
	}
	if code, _, stderr = runNext(t, st.Next, "--limit", "5"); code != exitOK {
		t.Fatalf("patch --limit 5: exit %d\n%s", code, stderr)
	}
	journal := filepath.Join(dir, "002-patch.journal")
	if _, err := os.Stat(journal); err != nil {
		t.Fatalf("the patch's journal is not at its default place in the folder: %v", err)
	}
	_, st, _ = statusOf(t, dir)
	wantResume := "rewind patch --incident " + dir + " --plan " + plan + " --from orders-restored --to orders --yes --resume --journal " + journal
	if st.Next != wantResume {
		t.Fatalf("after --limit 5: next %q, want %q", st.Next, wantResume)
	}
	if code, _, stderr = runNext(t, st.Next); code != exitOK {
		t.Fatalf("resume: exit %d\n%s", code, stderr)
	}
	assertProd(t, ddb.DynamoDB, s.Expected, "after the resumed patch")

	_, st, _ = statusOf(t, dir)
	if !strings.HasPrefix(st.Next, "rewind verify --incident "+dir+" ") {
		t.Fatalf("after the patch: next %q, want verify", st.Next)
	}
	if code, _, stderr = runNext(t, st.Next); code != exitOK {
		t.Fatalf("verify: exit %d\n%s", code, stderr)
	}
	code, st, stderr = statusOf(t, dir)
	if code != exitOK || !st.Done || len(st.Warnings) != 0 {
		t.Fatalf("after verify: exit %d, done %v, warnings %q; want 0, done\n%s", code, st.Done, st.Warnings, stderr)
	}

	// The log: five commands, each with its start and end, inputs by
	// hash, outcome, figures, who.
	es := logEntries(t, dir)
	if len(es) != 4 {
		t.Fatalf("%d commands in the log, want 4 (dry run, patch, resume, verify)", len(es))
	}
	keysHash := incident.HashFile("input", keys).SHA256
	for i, e := range es {
		if e.Seq != i+1 || e.State != incident.OK || e.End == nil || e.Exit == nil || *e.Exit != 0 {
			t.Errorf("#%d %s: seq %d state %s end %v", i+1, e.Command, e.Seq, e.State, e.End)
		}
		if !strings.HasPrefix(e.Who, "unknown (") {
			t.Errorf("#%d: who %q, want unknown (reason) without STS", e.Seq, e.Who)
		}
	}
	if es[0].Inputs[0].SHA256 != keysHash || incident.Figures(es[0])["restore"] != 20 || incident.Figures(es[0])["delete"] != 5 {
		t.Errorf("dry run record: inputs %+v, figures %v", es[0].Inputs, incident.Figures(es[0]))
	}
	if f := incident.Figures(es[2]); f["written"] != 25 || f["conflicts"] != 0 {
		t.Errorf("resumed patch figures %v, want 25 written in all", f)
	}

	// A patch after the verify: the verify is stale.
	if code, _, stderr = runPatchCLI(t, "patch", "--incident", dir, "--keys", keys, "--from", "orders-restored", "--to", "orders", "--yes"); code != exitOK {
		t.Fatalf("second patch: exit %d\n%s", code, stderr)
	}
	code, st, _ = statusOf(t, dir)
	if code != exitPartial || st.Done || !anyContains(st.Warnings, "verify #4 is older than patch #5") || !strings.HasPrefix(st.Next, "rewind verify ") {
		t.Fatalf("verify before the last patch: exit %d, warnings %q, next %q", code, st.Warnings, st.Next)
	}
	if code, _, _ = runNext(t, st.Next); code != exitOK {
		t.Fatalf("verify again: exit %d", code)
	}
	// A newer key set than the one patched.
	extra := filepath.Join(t.TempDir(), "extra.jsonl")
	if err := patchtest.WriteKeySet(extra, "orders", s.Keys[:1]); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr = runPatchCLI(t, "keys", "merge", "--incident", dir, keys, extra); code != exitOK {
		t.Fatalf("keys merge: exit %d\n%s", code, stderr)
	}
	code, st, _ = statusOf(t, dir)
	if code != exitPartial || !anyContains(st.Warnings, "not the newest key set #7") {
		t.Fatalf("a newer key set: exit %d, warnings %q", code, st.Warnings)
	}

	code, stdout, stderr = runPatchCLI(t, "report", "--incident", dir)
	if code != exitOK {
		t.Fatalf("report: exit %d\n%s", code, stderr)
	}
	var rep incident.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Restore != 0 || rep.Written != 0 || rep.Verify != "passed" {
		// The last apply found everything already in place.
		t.Errorf("report of the last apply: restore %d written %d verify %s", rep.Restore, rep.Written, rep.Verify)
	}
	md, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil || !strings.Contains(string(md), "| 7 | ") || !strings.Contains(string(md), "rewind keys merge --incident "+dir) {
		t.Errorf("report.md: %v\n%s", err, md)
	}
	if _, err := os.Stat(filepath.Join(dir, "report.html")); err != nil {
		t.Error(err)
	}
}

func anyContains(ss []string, sub string) bool {
	for _, s := range ss {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// TestIncidentFlag: --incident anywhere on the line or $REWIND_INCIDENT;
// a usage error is recorded as one; -h lists the flag.
func TestIncidentFlag(t *testing.T) {
	t.Setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:1")
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "x")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "x")
	dir := filepath.Join(t.TempDir(), "inc")
	t.Setenv("REWIND_INCIDENT", dir)
	a := filepath.Join(t.TempDir(), "a.jsonl")
	if err := os.WriteFile(a, []byte(`{"table":"orders","key":{"pk":{"S":"t1#1"}},"tenant":"t1"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runPatchCLI(t, "keys", "merge", a)
	if code != exitOK {
		t.Fatalf("keys merge: exit %d\n%s", code, stderr)
	}
	if code, _, _ = runPatchCLI(t, "patch", "--bogus"); code != exitUsage {
		t.Fatalf("patch --bogus: exit %d, want 2", code)
	}
	es := logEntries(t, dir)
	if len(es) != 2 || es[0].Command != "keys" || es[1].State != incident.Usage || *es[1].Exit != exitUsage {
		t.Fatalf("log %+v", es)
	}
	kept, _ := os.ReadFile(filepath.Join(dir, "001-keys-merge.keys.jsonl"))
	if string(kept) != stdout || es[0].Outputs[0].Lines != 1 || es[0].Inputs[0].Path != a {
		t.Errorf("keys merge record: outputs %+v inputs %+v; kept %q", es[0].Outputs, es[0].Inputs, kept)
	}
	if !strings.HasPrefix(es[0].Line, "rewind keys merge --incident "+dir+" ") {
		t.Errorf("command line %q", es[0].Line)
	}
	if _, _, stderr = runPatchCLI(t, "verify", "-h"); !strings.Contains(stderr, "-incident") {
		t.Errorf("verify -h does not list --incident:\n%s", stderr)
	}
	if code, _, _ = runPatchCLI(t, "keys", "merge", a, "--incident"); code != exitUsage {
		t.Errorf("--incident without a folder: exit %d, want 2", code)
	}
}

// TestIncidentCrashedPatch kills a patch (SIGKILL: no end line, no
// summary) in an incident folder: status says it crashed, names its
// journal, and the resume command it prints finishes the patch.
func TestIncidentCrashedPatch(t *testing.T) {
	ddb, s, keys, awsEnv := patchStack(t, patchtest.ScenarioOptions{Items: 100, Modify: 60, Delete: 20, Junk: 10, Seed: 31})
	t.Setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:1")
	awsEnv = append(awsEnv, "AWS_ENDPOINT_URL_STS=http://127.0.0.1:1")
	dir := filepath.Join(t.TempDir(), "inc")
	args := []string{"patch", "--incident", dir, "--keys", keys, "--from", "orders-restored", "--to", "orders", "--yes", "--rate", "40", "--concurrency", "2", "--progress", "0"}
	cmd, errb := childCmd(t, awsEnv, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	journal := filepath.Join(dir, "001-patch.journal")
	deadline := time.Now().Add(30 * time.Second)
	for countIntents(journal) < 20 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if countIntents(journal) < 20 {
		t.Fatalf("the patch journaled %d intents at %s before the kill\n%s", countIntents(journal), journal, errb)
	}

	code, st, stderr := statusOf(t, dir)
	if code != exitPartial || len(st.Crashed) != 1 || st.Crashed[0] != 1 {
		t.Fatalf("after the kill: exit %d, crashed %v\n%s", code, st.Crashed, stderr)
	}
	want := "rewind patch --incident " + dir + " --keys " + keys + " --from orders-restored --to orders --yes --rate 40 --concurrency 2 --progress 0 --resume --journal " + journal
	if st.Next != want {
		t.Fatalf("after the kill: next %q, want %q\n%s", st.Next, want, stderr)
	}
	if !strings.Contains(stderr, "crashed") {
		t.Errorf("status text does not say the patch crashed:\n%s", stderr)
	}
	if code, _, stderr = runNext(t, st.Next, "--rate", "0"); code != exitOK {
		t.Fatalf("resume: exit %d\n%s", code, stderr)
	}
	assertProd(t, ddb.DynamoDB, s.Expected, "after the kill and the resume status printed")
	es := logEntries(t, dir)
	if len(es) != 2 || es[0].State != incident.Crashed || es[1].State != incident.OK {
		t.Fatalf("log: %+v", es)
	}
}
