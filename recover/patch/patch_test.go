package patch

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/internal/localaws"
	"github.com/ddbrewind/rewind/recover/patch/patchtest"
)

// scenario builds the standard damaged table on a fresh database.
func scenario(t *testing.T, o patchtest.ScenarioOptions) (*localaws.DynamoDBEnv, *patchtest.Scenario, string) {
	t.Helper()
	env := localaws.DynamoDBForTest(t)
	if o.Prod == "" {
		o.Prod, o.Restored = "orders", "orders-restored"
	}
	s, err := patchtest.BuildScenario(t.Context(), env.DynamoDB, o)
	if err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(t.TempDir(), "impacted.jsonl")
	if err := patchtest.WriteKeySet(keys, o.Prod, s.Keys); err != nil {
		t.Fatal(err)
	}
	return env, s, keys
}

func defaultOpts() patchtest.ScenarioOptions {
	return patchtest.ScenarioOptions{Items: 150, Modify: 40, Delete: 15, Junk: 12, Unchanged: 10, Absent: 5, GoodWrites: 5, BigItem: true, WideItem: true, Seed: 1}
}

// assertTable fails unless the table holds exactly want.
func assertTable(t *testing.T, c *dynamodb.Client, table string, want map[string]rewind.Item, what string) {
	t.Helper()
	got, err := patchtest.Scan(t.Context(), c, table)
	if err != nil {
		t.Fatal(err)
	}
	if d := patchtest.DiffTables(want, got, 5); len(d) > 0 {
		t.Fatalf("%s: table %s differs from the expected state in %d+ keys:\n%s", what, table, len(d), strings.Join(d, "\n"))
	}
}

func planLines(t *testing.T, out []byte) []map[string]any {
	t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("output line is not JSON: %v: %.200s", err, sc.Bytes())
		}
		lines = append(lines, m)
	}
	return lines
}

func TestPatchRestoresExactly(t *testing.T) {
	o := defaultOpts()
	env, s, keys := scenario(t, o)
	c := env.DynamoDB
	ctx := t.Context()
	journal := filepath.Join(t.TempDir(), "j.journal")
	cfg := Config{Keys: keys, From: "orders-restored", To: "orders", Journal: journal}

	// Dry run: the plan, and nothing written.
	var out bytes.Buffer
	cfg.Out = &out
	sum, err := Patch(ctx, c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	wantCounts := Counts{Keys: int64(len(s.Keys)), Restore: int64(o.Modify + o.Delete), Delete: int64(o.Junk), Unchanged: int64(o.Unchanged), Absent: int64(o.Absent)}
	if sum.Counts != wantCounts {
		t.Errorf("dry run counts %+v, want %+v", sum.Counts, wantCounts)
	}
	lines := planLines(t, out.Bytes())
	if len(lines) != len(s.Keys) {
		t.Fatalf("dry run printed %d lines for %d keys", len(lines), len(s.Keys))
	}
	for i, l := range lines {
		if int(l["line"].(float64)) != i+1 {
			t.Fatalf("plan line %d is for key-set line %v: the plan is not in key-set order", i+1, l["line"])
		}
		switch l["action"] {
		case "restore", "delete":
			if d, _ := l["diff"].([]any); len(d) == 0 {
				t.Errorf("line %d: %s without a diff: %v", i+1, l["action"], l)
			}
		}
	}
	if _, err := os.Stat(journal); !os.IsNotExist(err) {
		t.Errorf("dry run created the journal (stat: %v)", err)
	}
	assertTable(t, c, "orders", s.Damaged, "after dry run")

	// --limit 3: exactly the first three keys of the key set.
	cfg.Apply, cfg.Limit, cfg.Journal = true, 3, filepath.Join(t.TempDir(), "limit.journal")
	out.Reset()
	sum, err = Patch(ctx, c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Keys != 3 {
		t.Errorf("--limit 3 planned %d keys", sum.Keys)
	}
	partial := map[string]rewind.Item{}
	for k, v := range s.Damaged {
		partial[k] = v
	}
	for _, k := range s.Keys[:3] {
		enc := patchtest.EncodeKey(k)
		if it, ok := s.Expected[enc]; ok {
			partial[enc] = it
		} else {
			delete(partial, enc)
		}
	}
	assertTable(t, c, "orders", partial, "after --limit 3")

	// Apply everything.
	cfg.Limit, cfg.Journal = 0, journal
	out.Reset()
	sum, err = Patch(ctx, c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Partial() || out.Len() != 0 {
		t.Fatalf("apply reported conflicts or failures: %+v\n%s", sum.Counts, out.String())
	}
	if sum.Written != sum.Restore+sum.Delete || sum.Written == 0 {
		t.Errorf("written %d, want restore %d + delete %d", sum.Written, sum.Restore, sum.Delete)
	}
	assertTable(t, c, "orders", s.Expected, "after patch")
	t.Logf("summary:\n%s", sum)

	// Rerun: everything is unchanged or absent.
	cfg.Journal = filepath.Join(t.TempDir(), "rerun.journal")
	sum, err = Patch(ctx, c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Restore != 0 || sum.Delete != 0 || sum.Written != 0 || sum.Unchanged+sum.Absent != int64(len(s.Keys)) {
		t.Errorf("rerun of a finished patch: %+v, want everything unchanged or absent", sum.Counts)
	}

	// Verify: all match.
	out.Reset()
	vs, err := Verify(ctx, c, Config{Keys: keys, From: "orders-restored", To: "orders", Options: Options{Out: &out}})
	if err != nil {
		t.Fatal(err)
	}
	if vs.Partial() || out.Len() != 0 {
		t.Errorf("verify after patch: %d mismatches:\n%s", vs.Mismatches(), out.String())
	}

	// Undo the main patch: production is the damaged table again, except
	// for the three keys the --limit run patched (their own journal).
	out.Reset()
	us, err := Undo(ctx, c, UndoConfig{Journal: journal, To: "orders", Apply: true, Options: Options{Out: &out}})
	if err != nil {
		t.Fatal(err)
	}
	if us.Partial() {
		t.Fatalf("undo: %+v\n%s", us.Counts, out.String())
	}
	assertTable(t, c, "orders", partial, "after undo")
	us, err = Undo(ctx, c, UndoConfig{Journal: cfg.Journal, To: "orders", Apply: true})
	if err != nil {
		t.Fatal(err)
	}
	if us.Written != 0 {
		t.Errorf("undo of a patch that wrote nothing wrote %d", us.Written)
	}
	// Verify now finds the damage again.
	vs, err = Verify(ctx, c, Config{Keys: keys, From: "orders-restored", To: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(o.Modify+o.Delete+o.Junk) - 3; vs.Mismatches() < want {
		t.Errorf("verify after undo: %d mismatches, want at least %d", vs.Mismatches(), want)
	}
}

func TestPatchRefusals(t *testing.T) {
	env, s, keys := scenario(t, patchtest.ScenarioOptions{Items: 20, Modify: 5, Delete: 2, Junk: 2, Seed: 2})
	c := env.DynamoDB
	ctx := t.Context()
	dir := t.TempDir()
	if err := patchtest.CreateTableHashOnly(ctx, c, "other-schema", "id", "S"); err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good, _ := os.ReadFile(keys)
	goodLines := strings.SplitAfter(string(good), "\n")
	wrongTable := write("wrong-table.jsonl", goodLines[0]+goodLines[1]+`{"table":"payments","key":{"pk":{"S":"t1#1"},"sk":{"N":"1"}}}`+"\n")
	wrongKey := write("wrong-key.jsonl", goodLines[0]+`{"table":"orders","key":{"id":{"S":"t1#1"}}}`+"\n")
	wrongType := write("wrong-type.jsonl", goodLines[0]+goodLines[1]+goodLines[2]+`{"table":"orders","key":{"pk":{"S":"t1#1"},"sk":{"S":"1"}}}`+"\n")

	for _, tc := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{"source is target", Config{Keys: keys, From: "orders", To: "orders"}, []string{`same table "orders"`}},
		{"wrong table in key set", Config{Keys: wrongTable, From: "orders-restored", To: "orders"}, []string{"wrong-table.jsonl: line 3", `"payments"`, `{"pk":{"S":"t1#1"},"sk":{"N":"1"}}`}},
		{"key without the sort key", Config{Keys: wrongKey, From: "orders-restored", To: "orders"}, []string{"wrong-key.jsonl: line 2", `{"id":{"S":"t1#1"}}`, `"pk"`}},
		{"key of the wrong type", Config{Keys: wrongType, From: "orders-restored", To: "orders"}, []string{"wrong-type.jsonl: line 4", `attribute "sk" is S`}},
		{"key schemas differ", Config{Keys: keys, From: "other-schema", To: "orders"}, []string{"different key schemas", "other-schema", `"id"`}},
		{"missing restored table", Config{Keys: keys, From: "nope", To: "orders"}, []string{`"nope" does not exist`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Apply = true
			tc.cfg.Journal = filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".journal")
			sum, err := Patch(ctx, c, tc.cfg)
			if err == nil {
				t.Fatalf("patch did not refuse: %+v", sum)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if _, serr := os.Stat(tc.cfg.Journal); !os.IsNotExist(serr) {
				t.Errorf("a refused patch created its journal")
			}
			assertTable(t, c, "orders", s.Damaged, "after refusal")
		})
	}
}

// TestConflict: an item changed between plan and write is reported and
// left alone; --force overwrites it. An attribute added since planning
// survives the conditional UpdateItem and is reported; a change beyond what
// the condition of a wide item can check is caught by ALL_OLD, journaled
// and reverted.
func TestConflict(t *testing.T) {
	env, s, keys := scenario(t, patchtest.ScenarioOptions{Items: 30, Modify: 6, Delete: 2, Junk: 2, WideItem: true, Seed: 3})
	c := env.DynamoDB
	ctx := t.Context()
	wide := patchtest.EncodeKey(patchtest.Key("t1#1", 1))
	victims := map[string]string{wide: "beyond-condition"} // canonical key -> kind of concurrent change
	for _, k := range s.Keys {
		enc := patchtest.EncodeKey(k)
		_, damaged := s.Damaged[enc]
		_, wanted := s.Expected[enc]
		switch {
		case damaged && wanted && len(victims) < 3 && enc != wide:
			victims[enc] = []string{"modify", "add-attribute"}[len(victims)-1]
		case damaged && !wanted && !slices.Contains(slices.Collect(maps.Values(victims)), "add-to-junk"):
			victims[enc] = "add-to-junk" // an item the bug created, to be deleted
		}
	}
	if len(victims) != 4 {
		t.Fatalf("scenario gives %d victims, want 4", len(victims))
	}
	concurrent := map[string]rewind.Item{}
	testHookBeforeWrite = func(st *Step) {
		enc := string(st.Key.Encode())
		kind, ok := victims[enc]
		if !ok || concurrent[enc] != nil {
			return
		}
		item := rewind.Item{}
		for k, v := range st.Before {
			item[k] = v
		}
		switch kind {
		case "modify":
			item["n38"] = &types.AttributeValueMemberN{Value: "7"}
		case "add-attribute", "add-to-junk":
			item["zz_new_attribute"] = &types.AttributeValueMemberN{Value: "1"}
		case "beyond-condition":
			// w299 is past the ~140 attributes one condition can check.
			item["w299"] = &types.AttributeValueMemberS{Value: "changed by the app"}
		}
		// The application writes behind the patch's back.
		if _, err := c.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String("orders"), Item: item}); err != nil {
			t.Error(err)
		}
		concurrent[enc] = item
	}
	defer func() { testHookBeforeWrite = nil }()

	var out bytes.Buffer
	cfg := Config{Keys: keys, From: "orders-restored", To: "orders", Apply: true, Journal: filepath.Join(t.TempDir(), "j"), Options: Options{Out: &out, Concurrency: 1}}
	sum, err := Patch(ctx, c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Conflicts != 4 || !sum.Partial() {
		t.Fatalf("conflicts %d, want 4\n%s", sum.Conflicts, out.String())
	}
	reports := planLines(t, out.Bytes())
	if len(reports) != 4 {
		t.Fatalf("%d report lines, want 4:\n%s", len(reports), out.String())
	}
	reverted, kept := 0, 0
	for _, r := range reports {
		msg := r["error"].(string)
		if strings.Contains(msg, "the write was reverted") {
			reverted++
		}
		if strings.Contains(msg, "changed since it was planned; the planned attributes were written and those kept") {
			kept++
		}
		if r["status"] != "conflict" || !strings.Contains(msg, "since it was planned") || !strings.Contains(msg, `{"pk":`) {
			t.Errorf("report %v: want a conflict naming the key", r)
		}
	}
	if reverted != 1 || kept != 2 {
		t.Errorf("%d conflicts reverted (want 1: the delete of an item that gained an attribute), %d updates that kept the application's attributes (want 2: the added one, the one beyond the condition):\n%s", reverted, kept, out.String())
	}
	if n := countOps(t, cfg.Journal, "replaced"); n != 1 {
		t.Errorf("%d replaced records in the journal, want 1 (the reverted write)", n)
	}
	want := map[string]rewind.Item{}
	for k, v := range s.Expected {
		want[k] = v
	}
	for enc, item := range concurrent {
		if kind := victims[enc]; kind == "add-attribute" || kind == "beyond-condition" {
			// The planned attributes were written, the application's
			// attribute kept.
			merged := rewind.Item{}
			for n, v := range s.Expected[enc] {
				merged[n] = v
			}
			for _, n := range []string{"zz_new_attribute", "w299"} {
				if v, ok := item[n]; ok && kind == map[string]string{"zz_new_attribute": "add-attribute", "w299": "beyond-condition"}[n] {
					merged[n] = v
				}
			}
			item = merged
		}
		want[enc] = item
	}
	assertTable(t, c, "orders", want, "after a patch with conflicts")

	// --force overwrites them.
	testHookBeforeWrite = nil
	cfg.Force, cfg.Journal = true, filepath.Join(t.TempDir(), "force")
	out.Reset()
	sum, err = Patch(ctx, c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Conflicts != 0 || sum.Written != 4 {
		t.Errorf("--force: %+v, want 4 written, no conflicts", sum.Counts)
	}
	assertTable(t, c, "orders", s.Expected, "after --force")
}

// TestPatchShards: two processes with --shard 0/2 and 1/2 split the key
// set between them, and together patch it all.
func TestPatchShards(t *testing.T) {
	env, s, keys := scenario(t, patchtest.ScenarioOptions{Items: 60, Modify: 20, Delete: 5, Junk: 5, Absent: 3, Seed: 5})
	var total Counts
	for i := range 2 {
		sum, err := Patch(t.Context(), env.DynamoDB, Config{Keys: keys, From: "orders-restored", To: "orders", Apply: true,
			Shard: Shard{i, 2}, Journal: filepath.Join(t.TempDir(), "j")})
		if err != nil {
			t.Fatal(err)
		}
		if sum.Keys == 0 || sum.Keys == int64(len(s.Keys)) {
			t.Errorf("shard %d/2 planned %d of %d keys", i, sum.Keys, len(s.Keys))
		}
		total.add(sum.Counts)
	}
	if total.Keys != int64(len(s.Keys)) || total.Written != 30 {
		t.Errorf("shards together: %+v, want %d keys, 30 written", total, len(s.Keys))
	}
	assertTable(t, env.DynamoDB, "orders", s.Expected, "after both shards")
}

// TestForceOverChangeThenUndo: a forced write over an item changed after
// planning journals what it really replaced (the outcome's "old"), and undo
// puts that back, not the stale planned pre-image.
func TestForceOverChangeThenUndo(t *testing.T) {
	env, s, keys := scenario(t, patchtest.ScenarioOptions{Items: 20, Modify: 4, Seed: 6})
	c := env.DynamoDB
	victim := patchtest.EncodeKey(s.Keys[0])
	var changed rewind.Item
	testHookBeforeWrite = func(st *Step) {
		if string(st.Key.Encode()) != victim || changed != nil {
			return
		}
		changed = rewind.Item{}
		for k, v := range st.Before {
			changed[k] = v
		}
		changed["written_meanwhile"] = &types.AttributeValueMemberS{Value: "by the app"}
		if _, err := c.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String("orders"), Item: changed}); err != nil {
			t.Error(err)
		}
	}
	defer func() { testHookBeforeWrite = nil }()
	journal := filepath.Join(t.TempDir(), "j")
	sum, err := Patch(t.Context(), c, Config{Keys: keys, From: "orders-restored", To: "orders", Apply: true, Force: true, Journal: journal})
	if err != nil || sum.Partial() {
		t.Fatalf("forced patch: %v %+v", err, sum)
	}
	testHookBeforeWrite = nil
	assertTable(t, c, "orders", s.Expected, "after the forced patch")
	b, _ := os.ReadFile(journal)
	if !bytes.Contains(b, []byte(`"old":{`)) || !bytes.Contains(b, []byte("by the app")) {
		t.Fatalf("journal does not record what the forced write replaced:\n%.2000s", b)
	}
	if _, err := Undo(t.Context(), c, UndoConfig{Journal: journal, To: "orders", Apply: true}); err != nil {
		t.Fatal(err)
	}
	want := map[string]rewind.Item{}
	for k, v := range s.Damaged {
		want[k] = v
	}
	want[victim] = changed
	assertTable(t, c, "orders", want, "after undo")
}

// countOps counts the journal's records of one op.
func countOps(t *testing.T, path, op string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	jr := newJournalReader(f, path)
	n := 0
	for {
		rec, err := jr.next()
		if errors.Is(err, io.EOF) {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
		if rec.Op == op {
			n++
		}
	}
}

// TestConcurrentPatchesCountOnce: two patches of one key set, with two
// journals, run at once. Every key is written by exactly one of them; the
// other finds it already written, so their "written" counts add up to the
// keys patched instead of double-counting, and the table is exact.
func TestConcurrentPatchesCountOnce(t *testing.T) {
	o := patchtest.ScenarioOptions{Items: 80, Modify: 30, Delete: 10, Junk: 8, Seed: 9}
	env, s, keys := scenario(t, o)
	dir := t.TempDir()
	var wg sync.WaitGroup
	sums := make([]*Summary, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sums[i], errs[i] = Patch(t.Context(), env.DynamoDB, Config{Keys: keys, From: "orders-restored", To: "orders", Apply: true,
				Journal: filepath.Join(dir, fmt.Sprintf("j%d", i)), Options: Options{Concurrency: 4, BatchSize: 10}})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("patch %d: %v", i, err)
		}
	}
	impacted := int64(o.Modify + o.Delete + o.Junk)
	if w := sums[0].Written + sums[1].Written; w != impacted {
		t.Errorf("written %d + %d = %d, want %d: each key written once (already %d, %d; unchanged %d, %d)",
			sums[0].Written, sums[1].Written, w, impacted, sums[0].Already, sums[1].Already, sums[0].Unchanged, sums[1].Unchanged)
	}
	assertTable(t, env.DynamoDB, "orders", s.Expected, "after two concurrent patches")
}
