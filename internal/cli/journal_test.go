package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/recover/patch/patchtest"
)

// TestPatchTwoResumesOneJournal resumes one journal from two processes at
// once: the second is refused, naming the first, and so is an undo of the
// journal while the first still writes it; the first completes, and undo
// of the journal then puts production back exactly.
func TestPatchTwoResumesOneJournal(t *testing.T) {
	ddb, s, keys, awsEnv := patchStack(t, patchtest.ScenarioOptions{Items: 100, Modify: 60, Delete: 20, Junk: 10, Seed: 41})
	j := filepath.Join(t.TempDir(), "p.journal")
	args := []string{"patch", "--keys", keys, "--from", "orders-restored", "--to", "orders", "--yes", "--concurrency", "2", "--journal", j, "--progress", "0"}

	// A first run, interrupted part way: a journal to resume.
	first, errb := childCmd(t, awsEnv, append(args, "--rate", "40")...)
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); countIntents(j) < 20 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	first.Process.Signal(os.Interrupt)
	if code := exitOf(t, first.Wait()); code != exitInterrupted {
		t.Fatalf("first run: exit %d, want %d\n%s", code, exitInterrupted, errb)
	}
	// Undo reads an unfinished journal, and says so.
	code, _, stderr := runPatchCLI(t, "undo", "--journal", j, "--to", "orders", "--progress", "0")
	if code != exitOK || !strings.Contains(stderr, "the patch did not finish: it crashed or is still running") {
		t.Errorf("undo dry run of an interrupted patch: exit %d, want 0 and a warning\n%s", code, stderr)
	}

	resume := append(args, "--resume")
	a, aOut := childCmd(t, awsEnv, append(resume, "--rate", "15")...)
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	// Its start record is written under the lock.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if b, _ := os.ReadFile(j); bytes.Contains(b, []byte(`"resume":true`)) {
			break
		}
		if time.Now().After(deadline) {
			a.Process.Kill()
			t.Fatalf("the resume never started\n%s", aOut)
		}
	}
	inUse := fmt.Sprintf("journal %s is in use by process %d since ", j, a.Process.Pid)
	code, _, stderr = runPatchCLI(t, resume...)
	if code != exitError || !strings.Contains(stderr, inUse) || !strings.Contains(stderr, "wait for it to finish") {
		t.Errorf("second resume: exit %d, want %d and %q\n%s", code, exitError, inUse, stderr)
	}
	code, _, stderr = runPatchCLI(t, "undo", "--journal", j, "--to", "orders", "--yes", "--progress", "0")
	if code != exitError || !strings.Contains(stderr, inUse) {
		t.Errorf("undo while the resume runs: exit %d, want %d and %q\n%s", code, exitError, inUse, stderr)
	}
	if code := exitOf(t, a.Wait()); code != exitOK {
		t.Fatalf("first resume: exit %d\n%s", code, aOut)
	}
	assertProd(t, ddb.DynamoDB, s.Expected, "after the resume")

	code, _, stderr = runPatchCLI(t, "undo", "--journal", j, "--to", "orders", "--yes", "--progress", "0")
	if code != exitOK || strings.Contains(stderr, "WARNING") {
		t.Fatalf("undo: exit %d, want 0 without warnings\n%s", code, stderr)
	}
	assertProd(t, ddb.DynamoDB, s.Damaged, "after undo")
}

// journalLines is a journal's lines, newlines kept.
func journalLines(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(b, []byte("\n"))
	return lines[:len(lines)-1]
}

// intentKey is the canonical key of an intent line; "" for another line.
func intentKey(t *testing.T, line []byte) string {
	t.Helper()
	var rec struct {
		Op  string          `json:"op"`
		Key json.RawMessage `json:"key"`
	}
	if json.Unmarshal(line, &rec) != nil || rec.Op != "intent" {
		return ""
	}
	item, err := rewind.ParseItem(rec.Key)
	if err != nil {
		t.Fatal(err)
	}
	return patchtest.EncodeKey(item)
}

// TestUndoDamagedJournal damages a patch's journal: cut in half, at a line
// boundary and mid-line, and one byte changed inside a pre-image. Undo
// refuses each, naming the line and --partial, and writes nothing; with
// --partial it puts back exactly what the intact records hold, exits 3 and
// says what it skipped.
func TestUndoDamagedJournal(t *testing.T) {
	ddb, s, keys, _ := patchStack(t, patchtest.ScenarioOptions{Items: 60, Modify: 20, Delete: 5, Junk: 5, Unchanged: 3, Seed: 43})
	c := ddb.DynamoDB
	dir := t.TempDir()
	j := filepath.Join(dir, "p.journal")
	patchArgs := []string{"patch", "--keys", keys, "--from", "orders-restored", "--to", "orders", "--yes", "--progress", "0", "--journal"}
	if code, _, stderr := runPatchCLI(t, append(patchArgs, j)...); code != exitOK {
		t.Fatalf("patch: exit %d\n%s", code, stderr)
	}
	assertProd(t, c, s.Expected, "after patch")
	lines := journalLines(t, j)
	checkpoint, err := os.ReadFile(j + ".checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	half := len(lines) / 2

	// The byte to change: a letter inside the first pre-image.
	flipLine, flipAt := -1, -1
	for i, l := range lines {
		if intentKey(t, l) == "" {
			continue
		}
		b := bytes.Index(l, []byte(`"before":{`))
		if b < 0 {
			continue
		}
		for k := b + len(`"before":{`); k < len(l); k++ {
			if l[k] >= 'a' && l[k] <= 'y' {
				flipLine, flipAt = i, k
				break
			}
		}
		break
	}
	if flipLine < 0 {
		t.Fatal("no pre-image with a letter in the journal")
	}
	flipped := intentKey(t, lines[flipLine])

	for run, tc := range []struct {
		name    string
		damage  func() [][]byte
		line    int    // the line refused
		reason  string // why
		restore func(key string, line int) bool
		skipped string // in the partial summary
	}{
		{"cut at a line boundary", func() [][]byte { return lines[:half] },
			half + 1, "it was truncated",
			func(_ string, line int) bool { return line <= half }, "records are missing"},
		{"cut mid-line", func() [][]byte {
			return append(lines[:half:half], lines[half][:len(lines[half])/2])
		}, half + 1, "it was truncated",
			func(_ string, line int) bool { return line <= half }, "records are missing"},
		{"one byte changed in a pre-image", func() [][]byte {
			out := append([][]byte(nil), lines...)
			out[flipLine] = bytes.Clone(lines[flipLine])
			out[flipLine][flipAt]++
			return out
		}, flipLine + 1, "checksum mismatch",
			func(key string, _ int) bool { return key != flipped }, "1 damaged lines were skipped"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			jd := filepath.Join(dir, fmt.Sprintf("damaged%d.journal", run))
			if err := os.WriteFile(jd, bytes.Join(tc.damage(), nil), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(jd+".checkpoint", checkpoint, 0o600); err != nil {
				t.Fatal(err)
			}
			undo := []string{"undo", "--journal", jd, "--to", "orders", "--yes", "--progress", "0"}
			code, _, stderr := runPatchCLI(t, undo...)
			at := fmt.Sprintf("journal %s: line %d: ", jd, tc.line)
			if code != exitError || !strings.Contains(stderr, at) || !strings.Contains(stderr, tc.reason) ||
				!strings.Contains(stderr, "refused, nothing written") || !strings.Contains(stderr, "--partial") {
				t.Errorf("undo: exit %d, want %d naming %q, %q and --partial\n%s", code, exitError, at, tc.reason, stderr)
			}
			assertProd(t, c, s.Expected, "after the refused undo")

			code, stdout, stderr := runPatchCLI(t, append(undo, "--partial")...)
			for _, want := range []string{"rewind undo: PARTIAL", "is DAMAGED", tc.skipped, "were NOT put back", at} {
				if !strings.Contains(stderr, want) {
					t.Errorf("partial undo: stderr lacks %q\n%s", want, stderr)
				}
			}
			if code != exitPartial {
				t.Errorf("partial undo: exit %d, want %d\n%s", code, exitPartial, stderr)
			}
			want := map[string]rewind.Item{}
			for k, v := range s.Expected {
				want[k] = v
			}
			restored := 0
			for i, l := range tc.damage() {
				key := intentKey(t, l)
				if key == "" || !bytes.HasSuffix(l, []byte("\n")) || !tc.restore(key, i+1) {
					continue
				}
				restored++
				if item, ok := s.Damaged[key]; ok {
					want[key] = item
				} else {
					delete(want, key)
				}
			}
			if restored == 0 {
				t.Fatal("the damaged journal keeps no intent: the test proves nothing")
			}
			assertProd(t, c, want, "after the partial undo")
			var listed []map[string]any
			for _, l := range jsonLines(t, stdout) {
				if l["status"] == "skipped" {
					listed = append(listed, l)
				}
			}
			if len(listed) != 1 || listed[0]["line"] != float64(tc.line) {
				t.Errorf("skipped lines on stdout: %v, want one, line %d", listed, tc.line)
			}
			if tc.name == "one byte changed in a pre-image" {
				key, _ := json.Marshal(listed[0]["key"])
				if item, err := rewind.ParseItem(key); err != nil || patchtest.EncodeKey(item) != flipped {
					t.Errorf("skipped line names key %s, want the damaged line's", key)
				}
			}

			// Back to the patched state for the next case.
			if code, _, stderr := runPatchCLI(t, append(patchArgs, filepath.Join(dir, fmt.Sprintf("repatch%d.journal", run)))...); code != exitOK {
				t.Fatalf("patch again: exit %d\n%s", code, stderr)
			}
			assertProd(t, c, s.Expected, "after patching again")
		})
	}
}

// TestUndoVersion1Journal undoes a journal in the format of version 1 (no
// sequence numbers, checksums or end record): it is put back exactly, with
// a warning.
func TestUndoVersion1Journal(t *testing.T) {
	ddb, s, keys, _ := patchStack(t, patchtest.ScenarioOptions{Items: 40, Modify: 10, Delete: 3, Junk: 3, Seed: 44})
	j := filepath.Join(t.TempDir(), "p.journal")
	if code, _, stderr := runPatchCLI(t, "patch", "--keys", keys, "--from", "orders-restored", "--to", "orders", "--yes", "--progress", "0", "--journal", j); code != exitOK {
		t.Fatalf("patch: exit %d\n%s", code, stderr)
	}
	assertProd(t, ddb.DynamoDB, s.Expected, "after patch")
	var v1 []byte
	for _, l := range journalLines(t, j) {
		if bytes.HasPrefix(l, []byte(`{"op":"end"`)) {
			continue
		}
		l = l[:bytes.LastIndex(l, []byte(`,"seq":`))]
		l = bytes.Replace(l, []byte(`"version":2`), []byte(`"version":1`), 1)
		v1 = append(append(v1, l...), "}\n"...)
	}
	os.WriteFile(j, v1, 0o600)
	os.WriteFile(j+".checkpoint", []byte(`{"version":1,"line":16}`+"\n"), 0o600)
	code, _, stderr := runPatchCLI(t, "undo", "--journal", j, "--to", "orders", "--yes", "--progress", "0")
	if code != exitOK || !strings.Contains(stderr, "WARNING: journal "+j+" is version 1") {
		t.Fatalf("undo of a v1 journal: exit %d, want 0 and a warning\n%s", code, stderr)
	}
	assertProd(t, ddb.DynamoDB, s.Damaged, "after undo of a v1 journal")
}

// TestUndoInterruptedSaysCommand interrupts an undo: it says the exact
// command that continues it (undo has no --resume), and that command
// finishes it.
func TestUndoInterruptedSaysCommand(t *testing.T) {
	ddb, s, keys, awsEnv := patchStack(t, patchtest.ScenarioOptions{Items: 80, Modify: 50, Delete: 10, Seed: 45})
	j := filepath.Join(t.TempDir(), "p.journal")
	if code, _, stderr := runPatchCLI(t, "patch", "--keys", keys, "--from", "orders-restored", "--to", "orders", "--yes", "--progress", "0", "--journal", j); code != exitOK {
		t.Fatalf("patch: exit %d\n%s", code, stderr)
	}
	cmd, errb := childCmd(t, awsEnv, "undo", "--journal", j, "--to", "orders", "--yes", "--rate", "20", "--concurrency", "1", "--progress", "0")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		undoJournals, _ := filepath.Glob(j + ".undo-*.journal")
		if len(undoJournals) == 1 && countIntents(undoJournals[0]) >= 10 {
			break
		}
	}
	cmd.Process.Signal(os.Interrupt)
	if code := exitOf(t, cmd.Wait()); code != exitInterrupted {
		t.Fatalf("undo: exit %d after SIGINT, want %d\n%s", code, exitInterrupted, errb)
	}
	again := fmt.Sprintf("to continue, run the same command again (undo is idempotent): rewind undo --journal %s --to orders --yes", j)
	if !strings.Contains(errb.String(), again) || strings.Contains(errb.String(), "--resume") {
		t.Fatalf("interrupted undo does not say %q (or names --resume):\n%s", again, errb)
	}
	if code, _, stderr := runPatchCLI(t, "undo", "--journal", j, "--to", "orders", "--yes", "--progress", "0"); code != exitOK {
		t.Fatalf("the same undo again: exit %d\n%s", code, stderr)
	}
	assertProd(t, ddb.DynamoDB, s.Damaged, "after the interrupted undo and the same command again")
}

// TestUndoConflictSaysCommand: an undo that meets an item changed since
// the patch reports the conflict (exit 3) and names the command that
// overwrites it, not --resume; that command puts production back exactly.
func TestUndoConflictSaysCommand(t *testing.T) {
	ddb, s, keys, _ := patchStack(t, patchtest.ScenarioOptions{Items: 30, Modify: 8, Seed: 46})
	j := filepath.Join(t.TempDir(), "p.journal")
	if code, _, stderr := runPatchCLI(t, "patch", "--keys", keys, "--from", "orders-restored", "--to", "orders", "--yes", "--progress", "0", "--journal", j); code != exitOK {
		t.Fatalf("patch: exit %d\n%s", code, stderr)
	}
	var changed rewind.Item
	for _, k := range s.Keys {
		enc := patchtest.EncodeKey(k)
		if e, ok := s.Expected[enc]; ok && !bytes.Equal(patchtest.Canonical(e), patchtest.Canonical(s.Damaged[enc])) {
			changed = rewind.Item{}
			for a, v := range e {
				changed[a] = v
			}
			changed["meanwhile"] = &types.AttributeValueMemberS{Value: "written by the app after the patch"}
			break
		}
	}
	if err := patchtest.Put(t.Context(), ddb.DynamoDB, "orders", []rewind.Item{changed}); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runPatchCLI(t, "undo", "--journal", j, "--to", "orders", "--yes", "--progress", "0")
	force := fmt.Sprintf("to put the pre-images back over the conflicts too (items changed since the patch): rewind undo --journal %s --to orders --force --yes", j)
	if code != exitPartial || !strings.Contains(stderr, "1 conflicts") || !strings.Contains(stderr, force) || strings.Contains(stderr, "--resume") {
		t.Fatalf("undo over a changed item: exit %d, want %d naming %q and not --resume\n%s", code, exitPartial, force, stderr)
	}
	if code, _, stderr := runPatchCLI(t, "undo", "--journal", j, "--to", "orders", "--force", "--yes", "--progress", "0"); code != exitOK {
		t.Fatalf("undo --force: exit %d\n%s", code, stderr)
	}
	assertProd(t, ddb.DynamoDB, s.Damaged, "after undo --force")
}

// TestPatchTrialThenRunOneJournal is the runbook's trial: --limit 2 --yes
// writes the first two keys and its journal; the full run resumes that
// journal without --limit, writes the rest into it, and one undo of it
// then takes back both the trial's writes and the run's.
func TestPatchTrialThenRunOneJournal(t *testing.T) {
	ddb, s, keys, _ := patchStack(t, patchtest.ScenarioOptions{Items: 40, Modify: 12, Delete: 4, Junk: 4, Seed: 23})
	j := filepath.Join(t.TempDir(), "trial.journal")
	common := []string{"--keys", keys, "--from", "orders-restored", "--to", "orders", "--progress", "0"}

	code, _, stderr := runPatchCLI(t, append([]string{"patch", "--limit", "2", "--yes", "--journal", j}, common...)...)
	if code != exitOK || !strings.Contains(stderr, "written    2") {
		t.Fatalf("trial: exit %d, want 0 and 2 written\n%s", code, stderr)
	}
	for _, want := range []string{"patch the rest into this same journal", "--resume --journal " + j} {
		if !strings.Contains(stderr, want) {
			t.Errorf("trial summary lacks %q (how the full run extends this journal):\n%s", want, stderr)
		}
	}
	intents := countIntents(j)

	code, _, stderr = runPatchCLI(t, append([]string{"patch", "--yes", "--resume", "--journal", j}, common...)...)
	if code != exitOK {
		t.Fatalf("full run resuming the trial's journal: exit %d\n%s", code, stderr)
	}
	assertProd(t, ddb.DynamoDB, s.Expected, "after the trial and the full run")
	if n := countIntents(j); n <= intents {
		t.Fatalf("the full run journaled nothing more into the trial's journal (%d intents, the trial had %d)", n, intents)
	}

	code, _, stderr = runPatchCLI(t, "undo", "--journal", j, "--to", "orders", "--yes", "--progress", "0")
	if code != exitOK {
		t.Fatalf("undo of the one journal: exit %d\n%s", code, stderr)
	}
	assertProd(t, ddb.DynamoDB, s.Damaged, "after one undo of the trial and the run")
}
