package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer/indextest"
	"github.com/ddbrewind/rewind/internal/fakepitr"
	"github.com/ddbrewind/rewind/internal/reliability"
	"github.com/ddbrewind/rewind/recover/patch/patchtest"
)

// badInput is one case of the bad-input suite: a command line given input
// that is wrong in one way. It must fail with an error that names what is
// wrong and where (file and line, key, object, flag), and change nothing:
// the production table item for item and byte for byte as before, the
// index store holding exactly what the good input gives.
type badInput struct {
	name    string
	command string
	// wantExit is the exit code the case must end with.
	wantExit int
	// where are the strings the error must hold to name what and where.
	where []string
	// run runs the command line; it returns the exit code, stdout and
	// stderr.
	run func(t *testing.T) (int, string, string)
	// unchanged reports whether the command changed nothing it should not
	// have.
	unchanged func(t *testing.T) bool
	// gap, when not empty, says how rewind falls short of the case's
	// expectation today (a known bug): the case is reported as it is and
	// does not fail the test, but fails it once the expectation holds, so
	// that the mark gets removed.
	gap string
}

// TestReliabilityBadInput feeds each command the bad inputs an operator
// can hand it at 3 a.m.: malformed key sets, key sets for another table
// or key schema, a truncated Parquet object among good ones, events with
// skewed clocks, empty query windows, restore times outside the PITR
// window.
func TestReliabilityBadInput(t *testing.T) {
	ddb, s, keys, _ := patchStack(t, patchtest.ScenarioOptions{Items: 20, Modify: 5, Delete: 2, Junk: 2, Unchanged: 1, Seed: 3})
	dir := t.TempDir()

	// Key sets: the good one's lines, with one thing wrong.
	good, err := os.ReadFile(keys)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(strings.TrimSuffix(string(good), "\n"), "\n")
	keyFile := func(name string, ls ...string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(strings.Join(ls, "")), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tableUnchanged := func(t *testing.T) bool {
		got, err := patchtest.Scan(t.Context(), ddb.DynamoDB, "orders")
		if err != nil {
			t.Fatal(err)
		}
		d := patchtest.DiffTables(s.Damaged, got, 3)
		if len(d) > 0 {
			t.Logf("production changed:\n%s", strings.Join(d, "\n"))
		}
		return len(d) == 0
	}
	patchCase := func(name, file string, where ...string) badInput {
		journal := file + ".journal"
		return badInput{
			name: name, command: "patch --yes", wantExit: exitError, where: append([]string{file}, where...),
			run: func(t *testing.T) (int, string, string) {
				return runPatchCLI(t, "patch", "--yes", "--keys", file, "--from", "orders-restored", "--to", "orders", "--journal", journal, "--progress", "0")
			},
			unchanged: func(t *testing.T) bool {
				_, err := os.Stat(journal)
				return tableUnchanged(t) && os.IsNotExist(err)
			},
		}
	}
	otherTable := strings.ReplaceAll(string(good), `{"table":"orders"`, `{"table":"users"`)

	// Capture objects: good ones, and the same with one object that is
	// truncated or holds events from a skewed clock.
	evs := indextest.NewGen(23).Events(300)
	objs := indextest.Objects("capture", evs, 40)
	goodSrc := filepath.Join(dir, "capture-good")
	if err := indextest.WriteDir(goodSrc, objs); err != nil {
		t.Fatal(err)
	}
	refStore := filepath.Join(dir, "store-good")
	if code, _, errs := runIndexCLI(t, "index", "--source", goodSrc, "--store", refStore); code != exitOK {
		t.Fatalf("index of the good objects: exit %d\n%s", code, errs)
	}
	want := viewStore(t, refStore)
	withObject := func(name string, data []byte) (src, obj string) {
		src = filepath.Join(dir, "capture-"+name)
		if err := os.CopyFS(src, os.DirFS(goodSrc)); err != nil {
			t.Fatal(err)
		}
		obj = filepath.Join(src, "capture", "table=orders", "dt=2026-11-20", "hour=10", "stream-"+name+".parquet")
		if err := os.WriteFile(obj, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return src, obj
	}
	// A truncated object: the first half of a good one.
	extra := indextest.NewGen(24).Events(40)
	whole, err := indextest.EncodeParquet(extra)
	if err != nil {
		t.Fatal(err)
	}
	truncSrc, truncObj := withObject("truncated", whole[:len(whole)/2])
	// Events from a skewed clock: one 70 years ahead, one 120 years back,
	// among good ones.
	skewed := slices.Clone(extra)
	skewed[10].Time = time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	skewed[30].Time = time.Date(1901, 1, 1, 0, 0, 0, 0, time.UTC)
	skewedData, err := indextest.EncodeParquet(skewed)
	if err != nil {
		t.Fatal(err)
	}
	skewSrc, skewObj := withObject("skewed", skewedData)
	indexCase := func(name, src, obj string, gap string) badInput {
		store := filepath.Join(dir, "store-"+strings.ReplaceAll(name, " ", "-"))
		return badInput{
			name: name, command: "index", wantExit: exitPartial, where: []string{obj}, gap: gap,
			run: func(t *testing.T) (int, string, string) {
				code, out, errs := runIndexCLI(t, "index", "--source", src, "--store", store)
				var sum struct{ Failed []struct{ Object string } }
				json.Unmarshal([]byte(out), &sum)
				if code == exitPartial && (len(sum.Failed) != 1 || sum.Failed[0].Object != obj) {
					t.Errorf("summary's failed objects %+v, want only %s", sum.Failed, obj)
				}
				return code, out, errs
			},
			unchanged: func(t *testing.T) bool {
				got := viewStore(t, store)
				return got.count == want.count && got.objects == want.objects && bytes.Equal(got.keyset, want.keyset) && bytes.Equal(got.events, want.events)
			},
		}
	}
	storeUnchanged := func(t *testing.T) bool {
		got := viewStore(t, refStore)
		return got.count == want.count && got.objects == want.objects && bytes.Equal(got.keyset, want.keyset) && bytes.Equal(got.events, want.events)
	}

	cases := []badInput{
		patchCase("key set: a line that is not JSON", keyFile("not-json.jsonl", lines[0], lines[1], `{"table":"orders","key":{"pk":{"S":"t1#1"}`+"\n", lines[2]), "line 3"),
		patchCase("key set: a line without a key", keyFile("no-key.jsonl", lines[0], `{"table":"orders","tenant":"t1"}`+"\n", lines[1]), "line 2", `missing "key"`),
		patchCase("key set: a key attribute of the wrong type", keyFile("wrong-type.jsonl", lines[0], lines[1], lines[2], `{"table":"orders","key":{"pk":{"S":"t1#1"},"sk":{"S":"1"}}}`+"\n"), "line 4", `"sk"`),
		patchCase("key set: a line of another table", keyFile("other-table-line.jsonl", lines[0], lines[1], `{"table":"payments","key":{"pk":{"S":"t1#1"},"sk":{"N":"1"}}}`+"\n", lines[2]), "line 3", `"payments"`),
		patchCase("key set for the wrong table", keyFile("wrong-table.jsonl", otherTable), "line 1", `"users"`, `"orders"`),
		patchCase("key set: keys that do not fit the key schema", keyFile("wrong-schema.jsonl", lines[0], `{"table":"orders","key":{"id":{"S":"t1#1"}}}`+"\n"), "line 2", `"id"`, `"pk"`),
		patchCase("key set: last change before first (skewed clock)", keyFile("last-before-first.jsonl", lines[0], `{"table":"orders","key":{"pk":{"S":"t1#1"},"sk":{"N":"1"}},"first":"2026-11-20T10:00:00Z","last":"2026-11-20T09:00:00Z"}`+"\n"), "line 2", "before first"),
		indexCase("index: a truncated Parquet object among good ones", truncSrc, truncObj, ""),
		indexCase("index: events dated 2099 and 1901 (skewed clock)", skewSrc, skewObj, ""),
		{
			name: "query: --to before --from", command: "query", wantExit: exitUsage, where: []string{"--to 2026-11-20T09:00:00Z", "--from 2026-11-20T10:00:00Z"},
			run: func(t *testing.T) (int, string, string) {
				return runIndexCLI(t, "query", "--store", refStore, "--from", "2026-11-20T10:00:00Z", "--to", "2026-11-20T09:00:00Z")
			},
			unchanged: storeUnchanged,
		},
		{
			name: "stats: --to before --from", command: "stats", wantExit: exitUsage, where: []string{"--to", "--from"},
			run: func(t *testing.T) (int, string, string) {
				return runIndexCLI(t, "stats", "--store", refStore, "--from", "2026-11-20T10:00:00Z", "--to", "2026-11-20T09:00:00Z")
			},
			unchanged: storeUnchanged,
		},
	}
	cases = append(cases, restoreCases(t)...)

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := tc.run(t)
			names := true
			for _, w := range tc.where {
				if !strings.Contains(stderr, w) {
					names = false
					t.Logf("the error does not name %q", w)
				}
			}
			unchanged := tc.unchanged(t)
			t.Logf("stderr:\n%s", stderr)
			msg := "none"
			if code != exitOK {
				msg = errorLine(stderr, tc.where)
			}
			ok := code == tc.wantExit && names && unchanged
			reliability.Report(t, "bad input", "case", tc.name, "runs", 1, "exact", ok, "command", "rewind "+tc.command,
				"exitCode", code, "wantExit", tc.wantExit, "errorNamesLocation", names, "changedNothing", unchanged,
				"knownGap", tc.gap != "", "error", shortError(msg, dir))
			switch {
			case tc.gap != "" && ok:
				t.Errorf("the known gap %q is gone: remove it from the case", tc.gap)
			case tc.gap != "":
				t.Logf("known gap: %s (exit %d, stderr:\n%s)", tc.gap, code, stderr)
			case !ok:
				t.Errorf("exit %d (want %d), error names what and where: %v, changed nothing: %v\nstdout: %.300s\nstderr:\n%s",
					code, tc.wantExit, names, unchanged, stdout, stderr)
			}
		})
	}
}

// errorLine picks the line of stderr that best says what went wrong: the
// first naming the first of where, else the first from rewind itself.
func errorLine(stderr string, where []string) string {
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	for _, l := range lines {
		if len(where) > 0 && strings.Contains(l, where[0]) && !strings.Contains(l, "level=") {
			return strings.TrimSpace(l)
		}
	}
	for _, l := range lines {
		if strings.HasPrefix(l, "rewind ") {
			return l
		}
	}
	return lines[0]
}

// shortError is an error line for the report: paths relative to the
// test's directory, at most 240 characters.
func shortError(msg, dir string) string {
	msg = strings.ReplaceAll(msg, dir+string(filepath.Separator), "")
	if len(msg) > 240 {
		msg = msg[:237] + "..."
	}
	return msg
}

// restoreCases are restore times outside the PITR window, against
// DynamoDB Local behind the PITR front, on a table whose PITR was enabled
// a moment ago.
func restoreCases(t *testing.T) []badInput {
	t.Helper()
	front, c, ddb := pitrFront(t, fakepitr.Config{})
	if _, err := c.CreateTable(t.Context(), &dynamodb.CreateTableInput{
		TableName:            aws.String("orders"),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutItem(t.Context(), &dynamodb.PutItemInput{TableName: aws.String("orders"), Item: rewind.Item{"pk": &types.AttributeValueMemberS{Value: "o1"}}}); err != nil {
		t.Fatal(err)
	}
	tables := func(t *testing.T) []string {
		out, err := c.ListTables(t.Context(), &dynamodb.ListTablesInput{})
		if err != nil {
			t.Fatal(err)
		}
		return out.TableNames
	}
	before := tables(t)
	unchanged := func(t *testing.T) bool { return slices.Equal(tables(t), before) }
	restore := func(at string) func(t *testing.T) (int, string, string) {
		return func(t *testing.T) (int, string, string) {
			recoverEnv(t, front.Endpoint, ddb.AccessKeyID)
			if code, _, stderr := runRecoverCLI(t, "pitr", "enable", "--table", "orders"); code != exitOK {
				t.Fatalf("pitr enable: exit %d\n%s", code, stderr)
			}
			code, _, stderr := runRecoverCLI(t, "restore", "--table", "orders", "--time", at, "--to-table", "orders-restored")
			return code, "", stderr
		}
	}
	return []badInput{
		{
			name: "restore: a time before PITR was enabled", command: "restore", wantExit: exitError,
			where: []string{"orders", "outside the restorable window"}, run: restore("-1h"), unchanged: unchanged,
		},
		{
			name: "restore: a time in the future", command: "restore", wantExit: exitError,
			where: []string{"orders", "2099-01-01T00:00:00Z", "outside the restorable window"}, run: restore("2099-01-01T00:00:00Z"), unchanged: unchanged,
		},
	}
}
