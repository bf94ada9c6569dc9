package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/internal/faultproxy"
	"github.com/ddbrewind/rewind/internal/reliability"
	"github.com/ddbrewind/rewind/recover/patch/patchtest"
)

// The patcher's safety promises, each tried through the command line
// against DynamoDB Local with a full-table comparison after: a write the
// application made after the reviewed dry run is never overwritten; a
// crash right after a write lands loses no concurrent write; a key set is
// read once, so a pipe is checked and patched whole.

// appWrite is a concurrent application write to one item: it returns the
// item as the application leaves it, given the item it found.
type appWrite func(found rewind.Item) rewind.Item

func modifyN38(found rewind.Item) rewind.Item {
	item := maps.Clone(found)
	item["n38"] = &types.AttributeValueMemberN{Value: "7"}
	return item
}

func addAttribute(found rewind.Item) rewind.Item {
	item := maps.Clone(found)
	item["zz_added_by_app"] = &types.AttributeValueMemberS{Value: "new order line"}
	return item
}

func changeW299(found rewind.Item) rewind.Item {
	item := maps.Clone(found)
	item["w299"] = &types.AttributeValueMemberS{Value: "changed by the app"}
	return item
}

// putDirect writes item straight to DynamoDB Local, as the application.
func putDirect(t *testing.T, c *dynamodb.Client, item rewind.Item) {
	t.Helper()
	if _, err := c.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String("orders"), Item: item}); err != nil {
		t.Error(err)
	}
}

// victimKeys picks, from a scenario, a damaged key the patch restores and
// one the bug created (the patch deletes it), other than skip.
func victimKeys(t *testing.T, s *patchtest.Scenario, skip ...string) (restore, del []string) {
	t.Helper()
	for _, k := range s.Keys {
		enc := patchtest.EncodeKey(k)
		if strings.Contains(strings.Join(skip, " "), enc) {
			continue
		}
		_, damaged := s.Damaged[enc]
		_, wanted := s.Expected[enc]
		switch {
		case damaged && wanted && !rewind.EqualItems(s.Damaged[enc], s.Expected[enc]):
			restore = append(restore, enc)
		case damaged && !wanted:
			del = append(del, enc)
		}
	}
	if len(restore) < 3 || len(del) < 1 {
		t.Fatalf("scenario has %d keys to restore and %d to delete; want 3 and 1", len(restore), len(del))
	}
	return restore, del
}

// TestPatchAppliesTheReviewedPlan: the engineer reviews a dry run; then the
// application changes items before `patch --yes --plan`. Every key changed
// since the dry run is a conflict, listed and left as the application left
// it, including a key the dry run found unchanged; the rest is patched.
// Without --plan, the summary says the plan was made at apply time.
func TestPatchAppliesTheReviewedPlan(t *testing.T) {
	ddb, s, keys, _ := patchStack(t, patchtest.ScenarioOptions{Items: 40, Modify: 10, Delete: 3, Junk: 3, Unchanged: 2, Seed: 71})
	c := ddb.DynamoDB
	dir := t.TempDir()
	plan := filepath.Join(dir, "plan.jsonl")

	code, out, errs := runPatchCLI(t, "patch", "--keys", keys, "--from", "orders-restored", "--to", "orders", "--progress", "0")
	if code != exitOK {
		t.Fatalf("dry run: exit %d\n%s", code, errs)
	}
	if err := os.WriteFile(plan, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	restore, del := victimKeys(t, s)
	var unchanged string
	for _, k := range s.Keys {
		enc := patchtest.EncodeKey(k)
		if d, ok := s.Damaged[enc]; ok && rewind.EqualItems(d, s.Expected[enc]) {
			unchanged = enc
			break
		}
	}
	if unchanged == "" {
		t.Fatal("scenario has no unchanged key")
	}
	// The application writes after the review.
	want := maps.Clone(s.Expected)
	changed := map[string]rewind.Item{
		restore[0]: modifyN38(s.Damaged[restore[0]]),
		restore[1]: addAttribute(s.Damaged[restore[1]]),
		unchanged:  modifyN38(s.Damaged[unchanged]),
		del[0]:     addAttribute(s.Damaged[del[0]]),
	}
	for enc, item := range changed {
		putDirect(t, c, item)
		want[enc] = item
	}

	journal := filepath.Join(dir, "patch.journal")
	code, out, errs = runPatchCLI(t, "patch", "--plan", plan, "--from", "orders-restored", "--to", "orders", "--yes", "--journal", journal, "--progress", "0")
	if code != exitPartial {
		t.Fatalf("patch --plan after the application wrote: exit %d, want %d (partial)\n%s\n%s", code, exitPartial, out, errs)
	}
	conflicts := map[string]bool{}
	for _, l := range jsonLines(t, out) {
		if l["status"] != "conflict" || !strings.Contains(fmt.Sprint(l["error"]), "changed since the dry run") {
			t.Errorf("report line %v: want a conflict that says the item changed since the dry run", l)
		}
		k, err := rewind.ParseKey([]byte(mustJSON(t, l["key"])))
		if err != nil {
			t.Fatal(err)
		}
		conflicts[string(k.Encode())] = true
	}
	if len(conflicts) != len(changed) {
		t.Errorf("%d conflicts listed, want %d (every key changed since the dry run)\n%s", len(conflicts), len(changed), out)
	}
	for enc := range changed {
		if !conflicts[enc] {
			t.Errorf("key %s changed since the dry run but is not listed as a conflict", enc)
		}
	}
	for _, w := range []string{"rewind patch: PARTIAL", "the reviewed dry run", fmt.Sprintf("conflicts  %d", len(changed))} {
		if !strings.Contains(errs, w) {
			t.Errorf("summary lacks %q:\n%s", w, errs)
		}
	}
	assertProd(t, c, want, "after patch --plan with application writes since the dry run")

	// A plan made at apply time says so.
	code, _, errs = runPatchCLI(t, "patch", "--keys", keys, "--from", "orders-restored", "--to", "orders", "--yes", "--journal", filepath.Join(dir, "again.journal"), "--progress", "0")
	if code != exitOK {
		t.Fatalf("patch --keys: exit %d\n%s", code, errs)
	}
	if !strings.Contains(errs, "made now, at apply time, not reviewed") {
		t.Errorf("a patch without --plan does not say its plan was made at apply time:\n%s", errs)
	}
	// A key set is not a plan.
	code, _, errs = runPatchCLI(t, "patch", "--plan", keys, "--from", "orders-restored", "--to", "orders", "--yes", "--journal", filepath.Join(dir, "not-a-plan.journal"), "--progress", "0")
	if code != exitError || !strings.Contains(errs, `no "digest"`) || !strings.Contains(errs, "line 1") {
		t.Errorf("patch --plan <a key set>: exit %d, want %d naming the line and the missing digest:\n%s", code, exitError, errs)
	}
}

// TestReliabilityPatchCrashAfterWrite kills the patcher (SIGKILL, through
// a proxy in front of DynamoDB Local) right after a chosen write lands,
// for each kind of concurrent application write to that item made just
// before it; then resumes, and undoes. The application's write must
// survive all three: every other key is patched, then put back.
func TestReliabilityPatchCrashAfterWrite(t *testing.T) {
	for _, tc := range []struct {
		name string
		// victim picks the key; app is the application's write; killOn
		// says which write of the victim the kill follows: "landed" kills
		// once the first write has executed, before its answer reaches
		// the patcher; "revert" kills as the patcher sends its second
		// write, the revert, after journaling what it replaced.
		victim func(restore, del []string) string
		app    appWrite
		killOn string
	}{
		{"modify", func(r, _ []string) string { return r[0] }, modifyN38, "landed"},
		{"add-attribute", func(r, _ []string) string { return r[1] }, addAttribute, "landed"},
		{"beyond-condition", func([]string, []string) string { return patchtest.EncodeKey(patchtest.Key("t1#1", 1)) }, changeW299, "landed"},
		{"add-attribute-to-deleted", func(_, d []string) string { return d[0] }, addAttribute, "revert"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ddb, s, keys, awsEnv := patchStack(t, patchtest.ScenarioOptions{Items: 40, Modify: 8, Delete: 2, Junk: 3, WideItem: true, Seed: 73})
			c := ddb.DynamoDB
			restore, del := victimKeys(t, s, patchtest.EncodeKey(patchtest.Key("t1#1", 1)))
			victim := tc.victim(restore, del)
			vk, err := rewind.KeyFromItemSchema(s.Damaged[victim], "pk", "sk")
			if err != nil {
				t.Fatal(err)
			}
			needle := fmt.Sprintf(`{"S":%q}`, vk[0].Value)

			var mu sync.Mutex
			var child *exec.Cmd
			var appItem rewind.Item
			writes, killed := 0, false
			proxy, err := faultproxy.Start(faultproxy.Config{Upstream: ddb.Endpoint, Intercept: func(op string, body []byte, landed bool) {
				if op != "PutItem" && op != "UpdateItem" && op != "DeleteItem" || !strings.Contains(string(body), needle) {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if killed {
					return
				}
				if !landed {
					writes++
				}
				switch {
				case !landed && writes == 1:
					// The application writes just before the patcher does.
					appItem = tc.app(s.Damaged[victim])
					putDirect(t, c, appItem)
				case tc.killOn == "landed" && landed && writes == 1, tc.killOn == "revert" && !landed && writes == 2:
					child.Process.Signal(syscall.SIGKILL)
					killed = true
				}
			}})
			if err != nil {
				t.Fatal(err)
			}
			defer proxy.Close()
			viaProxy := append(append([]string{}, awsEnv...), "AWS_ENDPOINT_URL_DYNAMODB="+proxy.URL)
			journal := filepath.Join(t.TempDir(), "patch.journal")
			args := []string{"patch", "--keys", keys, "--from", "orders-restored", "--to", "orders", "--yes", "--journal", journal, "--concurrency", "1", "--progress", "0"}
			cmd, errb := childCmd(t, viaProxy, args...)
			mu.Lock() // the proxy reads child.Process once Start has set it
			child = cmd
			err = cmd.Start()
			mu.Unlock()
			if err != nil {
				t.Fatal(err)
			}
			err = cmd.Wait()
			mu.Lock()
			wasKilled := killed
			mu.Unlock()
			if !wasKilled {
				t.Fatalf("the chosen write was never seen; exit %v\n%s", err, errb)
			}

			// Resume against DynamoDB directly.
			cmd, errb = childCmd(t, awsEnv, append(args, "--resume")...)
			resumeCode := exitOf(t, cmd.Run())
			want := maps.Clone(s.Expected)
			switch tc.name {
			case "modify", "add-attribute-to-deleted":
				want[victim] = appItem
			default:
				// The update wrote the planned attributes and kept the
				// application's.
				merged := maps.Clone(s.Expected[victim])
				for n, v := range appItem {
					if old, ok := s.Damaged[victim][n]; !ok || !rewind.EqualAttributeValues(old, v) {
						merged[n] = v
					}
				}
				want[victim] = merged
			}
			got, err := patchtest.Scan(t.Context(), c, "orders")
			if err != nil {
				t.Fatal(err)
			}
			resumeDiff := patchtest.DiffTables(want, got, 5)
			resumeOK := resumeCode == exitPartial && strings.Contains(errb.String(), "conflicts  1")
			if tc.killOn == "revert" {
				resumeOK = resumeOK && strings.Contains(errb.String(), "repaired   1")
			}

			// Undo puts every other key back and leaves the application's
			// item alone.
			cmd, undoOut := childCmd(t, awsEnv, "undo", "--journal", journal, "--to", "orders", "--yes", "--progress", "0")
			undoCode := exitOf(t, cmd.Run())
			afterUndo := maps.Clone(s.Damaged)
			afterUndo[victim] = want[victim]
			got, err = patchtest.Scan(t.Context(), c, "orders")
			if err != nil {
				t.Fatal(err)
			}
			undoDiff := patchtest.DiffTables(afterUndo, got, 5)
			reliability.Report(t, "crash after write",
				"runs", 1, "exact", len(resumeDiff) == 0 && len(undoDiff) == 0 && resumeOK,
				"concurrentWrite", tc.name, "killed", tc.killOn, "resumeExit", resumeCode, "undoExit", undoCode,
				"tableDiffAfterResume", len(resumeDiff), "tableDiffAfterUndo", len(undoDiff))
			if !resumeOK {
				t.Errorf("resume: exit %d, want %d with the one conflict (and repair) reported:\n%s", resumeCode, exitPartial, errb)
			}
			if len(resumeDiff) > 0 {
				t.Errorf("after the crash and resume, production differs:\n%s\n%s", strings.Join(resumeDiff, "\n"), errb)
			}
			if len(undoDiff) > 0 {
				t.Errorf("after undo, production differs:\n%s\n%s", strings.Join(undoDiff, "\n"), undoOut)
			}
		})
	}
}

// TestPatchReadsAPipeOnce: a key set from a pipe is checked and patched
// whole (it used to be read twice, the second pass seeing nothing and
// reporting "all keys match"); an empty key set is a usage error, never a
// match; a line of another table arriving through a FIFO is refused before
// anything is written.
func TestPatchReadsAPipeOnce(t *testing.T) {
	ddb, s, keys, awsEnv := patchStack(t, patchtest.ScenarioOptions{Items: 30, Modify: 12, Delete: 3, Junk: 2, Seed: 75})
	c := ddb.DynamoDB
	keyBytes, err := os.ReadFile(keys)
	if err != nil {
		t.Fatal(err)
	}
	impacted := 12 + 3 + 2

	verifyStdin := func(input []byte) (int, string) {
		cmd, errb := childCmd(t, awsEnv, "verify", "--keys", "/dev/stdin", "--from", "orders-restored", "--to", "orders", "--progress", "0")
		cmd.Stdin = strings.NewReader(string(input))
		return exitOf(t, cmd.Run()), errb.String()
	}
	code, out := verifyStdin(keyBytes)
	if code != exitPartial || !strings.Contains(out, fmt.Sprintf("%d keys DIFFER", impacted)) {
		t.Fatalf("verify --keys /dev/stdin on the damaged table: exit %d, want %d and %d keys differing:\n%s", code, exitPartial, impacted, out)
	}
	for _, input := range []string{"", "\n\n"} {
		code, out = verifyStdin([]byte(input))
		if code != exitUsage || !strings.Contains(out, "the key set is empty") {
			t.Errorf("verify of an empty key set %q: exit %d, want %d saying the key set is empty:\n%s", input, code, exitUsage, out)
		}
	}

	// A FIFO whose last line is for another table: refused, nothing written.
	dir := t.TempDir()
	fifo := filepath.Join(dir, "keys.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	go func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer f.Close()
		f.Write(keyBytes)
		f.Write([]byte(`{"table":"invoices","key":{"pk":{"S":"t1#1"},"sk":{"N":"1"}}}` + "\n"))
	}()
	code, _, errs := runPatchCLI(t, "patch", "--keys", fifo, "--from", "orders-restored", "--to", "orders", "--yes", "--journal", filepath.Join(dir, "fifo.journal"), "--progress", "0")
	if code != exitError || !strings.Contains(errs, `"invoices"`) || !strings.Contains(errs, fmt.Sprintf("line %d", len(s.Keys)+1)) {
		t.Errorf("patch from a FIFO with a line of another table: exit %d, want %d naming the line and table:\n%s", code, exitError, errs)
	}
	assertProd(t, c, s.Damaged, "after a refused patch from a FIFO")

	// The same key set through a pipe patches every key, and its copy
	// next to the journal lets a resume read it again.
	journal := filepath.Join(dir, "pipe.journal")
	cmd, errb := childCmd(t, awsEnv, "patch", "--keys", "/dev/stdin", "--from", "orders-restored", "--to", "orders", "--yes", "--journal", journal, "--progress", "0")
	cmd.Stdin = strings.NewReader(string(keyBytes))
	if code := exitOf(t, cmd.Run()); code != exitOK || !strings.Contains(errb.String(), fmt.Sprintf("written    %d", impacted)) {
		t.Fatalf("patch --keys /dev/stdin: exit %d, want 0 and %d written:\n%s", code, impacted, errb)
	}
	if kept, err := os.ReadFile(journal + ".input"); err != nil || string(kept) != string(keyBytes) {
		t.Errorf("the piped key set was not kept next to the journal (%v)", err)
	}
	assertProd(t, c, s.Expected, "after patch --keys /dev/stdin")
}

// TestPatchSameTableHoweverSpelled: --from naming production by its ARN is
// refused before anything is read or written.
func TestPatchSameTableHoweverSpelled(t *testing.T) {
	ddb, s, keys, _ := patchStack(t, patchtest.ScenarioOptions{Items: 20, Modify: 5, Seed: 77})
	out, err := ddb.DynamoDB.DescribeTable(t.Context(), &dynamodb.DescribeTableInput{TableName: aws.String("orders")})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(out.Table.TableArn)
	for _, args := range [][]string{
		{"verify", "--keys", keys, "--from", arn, "--to", "orders"},
		{"patch", "--keys", keys, "--from", arn, "--to", "orders", "--yes", "--journal", filepath.Join(t.TempDir(), "j")},
		{"patch", "--keys", keys, "--from", "orders", "--to", arn, "--yes", "--journal", filepath.Join(t.TempDir(), "j")},
	} {
		code, _, errs := runPatchCLI(t, append(args, "--progress", "0")...)
		if code == exitOK || code == exitPartial || !strings.Contains(errs, "same table") {
			t.Errorf("%s: exit %d, want a refusal naming the same table:\n%s", strings.Join(args, " "), code, errs)
		}
	}
	assertProd(t, ddb.DynamoDB, s.Damaged, "after refusals")
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestPatchRefusesKeysDynamoDBRejects: a key set whose last line holds a
// key DynamoDB would reject is refused before the first write, naming the
// file, the line and the key; a key set starting with a byte-order mark is
// read as if it had none.
func TestPatchRefusesKeysDynamoDBRejects(t *testing.T) {
	ddb, s, keys, _ := patchStack(t, patchtest.ScenarioOptions{Items: 30, Modify: 10, Delete: 2, Seed: 79})
	good, err := os.ReadFile(keys)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, line := range map[string]string{
		"39 digits":              `{"table":"orders","key":{"pk":{"S":"t1#1"},"sk":{"N":"123456789012345678901234567890123456789"}}}`,
		"1e200":                  `{"table":"orders","key":{"pk":{"S":"t1#1"},"sk":{"N":"1e200"}}}`,
		"empty partition key":    `{"table":"orders","key":{"pk":{"S":""},"sk":{"N":"1"}}}`,
		"partition key too long": `{"table":"orders","key":{"pk":{"S":"` + strings.Repeat("x", 2049) + `"},"sk":{"N":"1"}}}`,
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".jsonl")
		if err := os.WriteFile(path, append(append([]byte{}, good...), line+"\n"...), 0o600); err != nil {
			t.Fatal(err)
		}
		code, _, errs := runPatchCLI(t, "patch", "--keys", path, "--from", "orders-restored", "--to", "orders", "--yes", "--journal", path+".journal", "--progress", "0")
		if code != exitError || !strings.Contains(errs, path) || !strings.Contains(errs, fmt.Sprintf("line %d", len(s.Keys)+1)) || !strings.Contains(errs, "nothing written") {
			t.Errorf("%s: exit %d, want %d naming %s, line %d and that nothing was written:\n%s", name, code, exitError, path, len(s.Keys)+1, errs)
		}
		if _, err := os.Stat(path + ".journal"); err == nil {
			t.Errorf("%s: a refused patch left a journal", name)
		}
	}
	assertProd(t, ddb.DynamoDB, s.Damaged, "after refused key sets")

	bom := filepath.Join(dir, "bom.jsonl")
	if err := os.WriteFile(bom, append([]byte("\xef\xbb\xbf"), good...), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runPatchCLI(t, "patch", "--keys", bom, "--from", "orders-restored", "--to", "orders", "--yes", "--journal", bom+".journal", "--progress", "0")
	if code != exitOK {
		t.Fatalf("a key set with a byte-order mark: exit %d\n%s", code, errs)
	}
	assertProd(t, ddb.DynamoDB, s.Expected, "after a patch from a key set with a byte-order mark")
}
