package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ddbrewind/rewind/indexer/indextest"
	"github.com/ddbrewind/rewind/internal/fakepitr"
	"github.com/ddbrewind/rewind/recover/patch/patchtest"
)

// update rewrites the golden files of command output instead of comparing:
//
//	go test ./internal/cli -run Golden -update
var update = flag.Bool("update", false, "rewrite testdata/golden/*.txt from the commands' output")

// golden records command lines and what they print, normalised, and
// compares the record with testdata/golden/<name>.txt. The record is what
// people read in review: each command line, its exit code, its stdout and
// its stderr, with what differs between runs (times, durations, rates,
// temporary paths, ports, generated ids) replaced by placeholders, and
// progress lines left out (their number depends on timing; the renderer
// has tests of its own).
type golden struct {
	t    *testing.T
	name string
	// repl are literal replacements made before the patterns: the test's
	// temporary directories, bucket names and the like.
	repl []string
	// keepTimes keeps RFC 3339 times as they are: for data whose times
	// are fixed (generated events), not the clock's.
	keepTimes bool
	buf       strings.Builder
}

func newGolden(t *testing.T, name string) *golden {
	return &golden{t: t, name: name}
}

// replace adds a literal replacement, longest first when applied.
func (g *golden) replace(old, placeholder string) {
	g.repl = append(g.repl, old, placeholder)
}

// dir makes a temporary directory shown as <name> in the record.
func (g *golden) dir(name string) string {
	d := g.t.TempDir()
	g.replace(d, "<"+name+">")
	return d
}

// run runs one command line in-process and records it. It returns what
// the command printed, not normalised.
func (g *golden) run(args ...string) (code int, stdout, stderr string) {
	return g.runSorted(false, args...)
}

// runSorted is run for stdout whose line order is not part of the
// contract (lines of concurrent work, such as a patch's plan): its lines
// are recorded sorted.
func (g *golden) runSorted(sortStdout bool, args ...string) (code int, stdout, stderr string) {
	g.t.Helper()
	var out, errb bytes.Buffer
	log := slog.New(slog.NewTextHandler(&errb, &slog.HandlerOptions{
		Level: slog.LevelWarn,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	env := &Env{Stdout: &out, Stderr: &errb, Log: log, Getenv: os.Getenv}
	code = Run(context.Background(), env, args)
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = shellQuote(a)
	}
	so := g.normalise(out.String())
	if sortStdout {
		lines := strings.Split(strings.TrimSuffix(so, "\n"), "\n")
		slices.Sort(lines)
		so = strings.Join(lines, "\n") + "\n"
		if len(lines) == 1 && lines[0] == "" {
			so = ""
		}
	}
	fmt.Fprintf(&g.buf, "$ %s\nexit %d\n", g.literal("rewind "+strings.Join(quoted, " ")), code)
	if so != "" {
		fmt.Fprintf(&g.buf, "-- stdout --\n%s", so)
		if !strings.HasSuffix(so, "\n") {
			g.buf.WriteString("\n(no newline at end)\n")
		}
	}
	if se := dropProgress(g.normalise(errb.String())); se != "" {
		fmt.Fprintf(&g.buf, "-- stderr --\n%s", se)
	}
	g.buf.WriteString("\n")
	return code, out.String(), errb.String()
}

var goldenPatterns = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`), "<TIME>"},
	{regexp.MustCompile(`\d{8}T\d{6}(\.\d+)?Z?`), "<TIME>"},
	{regexp.MustCompile(`\d{14}-[a-z0-9]{8}`), "<EXPORT-ID>"},
	{regexp.MustCompile(`(127\.0\.0\.1|localhost|\[::1\]):\d+`), "$1:<PORT>"},
	{regexp.MustCompile(`"(\w*([sS]econds|Ns))":[0-9.e+-]+`), `"$1":<N>`},
	{regexp.MustCompile(`[0-9.]+(e[+-]?\d+)? ([a-z]+)/s\b`), "<N> $2/s"},
	// The adaptive concurrency's settled range, peak and attempts depend
	// on timing (the throttled count and the cap do not).
	{regexp.MustCompile(`settled at \d+(-\d+)? (writes?) in flight \(peak \d+, cap (\d+)\); none of \d+ write attempts?`), "settled at <N> $2 in flight (peak <N>, cap $3); none of <N> write attempts"},
	{regexp.MustCompile(`\b(\d+(\.\d+)?(h|ms|µs|us|ns|m|s))+\b`), "<DUR>"},
}

// normalise replaces what differs between runs: the literal
// replacements, then the patterns.
func (g *golden) normalise(s string) string {
	s = g.literal(s)
	for i, p := range goldenPatterns {
		if i == 0 && g.keepTimes {
			continue
		}
		s = p.re.ReplaceAllString(s, p.with)
	}
	return s
}

// literal makes the literal replacements only: for command lines, whose
// times and durations are the test's choice.
func (g *golden) literal(s string) string {
	// Longest first, so that a directory inside another keeps its name.
	idx := make([]int, 0, len(g.repl)/2)
	for i := 0; i < len(g.repl); i += 2 {
		idx = append(idx, i)
	}
	slices.SortStableFunc(idx, func(a, b int) int { return len(g.repl[b]) - len(g.repl[a]) })
	for _, i := range idx {
		s = strings.ReplaceAll(s, g.repl[i], g.repl[i+1])
	}
	return s
}

// progressLine matches the progress lines of the long commands, whatever
// renders them: index's objects and events, a restore's or an export's
// polls, a patch's keys.
var progressLine = regexp.MustCompile(`^\s*(` +
	`index: \d+/\d+ objects|` +
	`<DUR> [^ ]+: [A-Z]+, \d+ items|` +
	`<DUR>: \d+/\d+ export\(s\) done|` +
	`(patch|verify|undo)[a-z ]*: \d+(/\d+)? keys( \(|,|$))`)

func dropProgress(s string) string {
	var out []string
	for _, l := range strings.SplitAfter(s, "\n") {
		if l == "" {
			continue
		}
		for _, part := range strings.Split(l, "\r") {
			part = strings.TrimPrefix(part, "\033[K")
			if strings.TrimSpace(part) == "" || progressLine.MatchString(part) {
				continue
			}
			if !strings.HasSuffix(part, "\n") {
				part += "\n"
			}
			out = append(out, part)
		}
	}
	return strings.Join(out, "")
}

// check compares the record with the golden file, or rewrites it with
// -update.
func (g *golden) check() {
	g.t.Helper()
	path := filepath.Join("testdata", "golden", g.name+".txt")
	got := g.buf.String()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			g.t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			g.t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		g.t.Fatalf("%v (run go test ./internal/cli -run %s -update to write it)", err, g.t.Name())
	}
	if got != string(want) {
		g.t.Errorf("output differs from %s (rerun with -update if the change is intended):\n%s", path, lineDiff(string(want), got))
	}
}

// lineDiff lists the lines that differ, by line number: enough to review
// a golden mismatch without a diff library.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	n := 0
	for i := 0; i < max(len(w), len(g)) && n < 40; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want %q\n  got  %q\n", i+1, wl, gl)
			n++
		}
	}
	return b.String()
}

// TestGoldenIndexQuery records index, query (every format), stats,
// history and keys merge over a small generated capture.
func TestGoldenIndexQuery(t *testing.T) {
	g := newGolden(t, "index_query")
	g.keepTimes = true // the generated events have fixed times
	src := g.dir("capture")
	evs := indextest.NewGen(7).Events(40)
	if err := indextest.WriteDir(src, indextest.Objects("capture", evs, 10)); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(g.dir("work"), "store")
	g.run("index", "--source", src, "--store", store, "--workers", "1")
	g.run("index", "--source", src, "--store", store, "--workers", "1")
	from, to := evs[5].Time.Format(time.RFC3339Nano), evs[30].Time.Format(time.RFC3339Nano)
	_, keys, _ := g.run("query", "--store", store, "--from", from, "--to", to, "--tenants", "acme")
	g.run("query", "--store", store, "--from", from, "--to", to, "--tenants", "acme", "--format", "json")
	g.run("query", "--store", store, "--from", from, "--to", to, "--tenants", "acme", "--format", "table")
	g.run("query", "--store", store, "--from", from, "--to", to, "--format", "athena", "--location", "s3://bucket/capture")
	g.run("query", "--store", store, "--format", "athena")
	g.run("query", "--store", store, "--tenants", "acmee")
	g.run("stats", "--store", store, "--from", from, "--to", to, "--bucket", "15m")
	g.run("stats", "--store", store, "--from", from, "--to", to, "--format", "json")
	line, _, _ := strings.Cut(keys, "\n")
	g.run("history", "--store", store, "--key", line)
	g.run("history", "--store", store, "--key", line, "--format", "json")

	a := filepath.Join(g.dir("keys"), "a.jsonl")
	if err := os.WriteFile(a, []byte(keys), 0o644); err != nil {
		t.Fatal(err)
	}
	_, other, _ := g.run("query", "--store", store, "--from", from, "--to", to, "--tenants", "hooli,initech")
	b := filepath.Join(filepath.Dir(a), "b.jsonl")
	if err := os.WriteFile(b, []byte(other+keys), 0o644); err != nil {
		t.Fatal(err)
	}
	g.run("keys", "merge", a, b)
	g.check()
}

// TestGoldenPatch records the recovery runbook's writing commands against
// DynamoDB Local: patch dry run, patch --yes, verify, undo dry run, undo
// --yes, verify again, with the whole production table compared after
// each write.
func TestGoldenPatch(t *testing.T) {
	ddb, s, keys, _ := patchStack(t, patchtest.ScenarioOptions{Items: 12, Modify: 3, Delete: 2, Junk: 1, Unchanged: 1, Absent: 1, GoodWrites: 1, Seed: 5})
	g := newGolden(t, "patch")
	g.replace(filepath.Dir(keys), "<keys>")
	g.replace(ddb.Endpoint, "<dynamodb>")
	journal := filepath.Join(g.dir("work"), "patch.journal")
	common := []string{"--keys", keys, "--from", "orders-restored", "--to", "orders"}
	g.runSorted(true, append([]string{"patch"}, common...)...)
	assertProd(t, ddb.DynamoDB, s.Damaged, "after the dry run")
	g.runSorted(true, append([]string{"patch", "--yes", "--journal", journal}, common...)...)
	assertProd(t, ddb.DynamoDB, s.Expected, "after patch --yes")
	g.runSorted(true, append([]string{"verify"}, common...)...)
	undo := []string{"undo", "--journal", journal, "--to", "orders", "--undo-journal", journal + ".undo"}
	g.runSorted(true, undo...)
	assertProd(t, ddb.DynamoDB, s.Expected, "after the undo dry run")
	g.runSorted(true, append(undo, "--yes")...)
	assertProd(t, ddb.DynamoDB, s.Damaged, "after undo --yes")
	g.runSorted(true, append([]string{"verify"}, common...)...)
	g.check()
}

// TestGoldenRestore records pitr status/enable and restore, with and
// without --wait, against DynamoDB Local behind the PITR front.
func TestGoldenRestore(t *testing.T) {
	front, c, ddb := pitrFront(t, fakepitr.Config{CreatingFor: 100 * time.Millisecond, LatestRestorableLag: fakepitr.NoLag})
	recoverEnv(t, front.Endpoint, ddb.AccessKeyID)
	g := newGolden(t, "restore")
	g.replace(ddb.AccessKeyID, "<access-key>")
	if err := patchtest.CreateTable(t.Context(), c, "orders"); err != nil {
		t.Fatal(err)
	}
	g.run("pitr", "status", "--table", "orders")
	g.run("restore", "--table", "orders", "--time", "now")
	g.run("pitr", "enable", "--table", "orders", "--recovery-days", "7")
	time.Sleep(20 * time.Millisecond)
	g.run("restore", "--table", "orders", "--time", "now", "--to-table", "orders-r1")
	g.run("restore", "--table", "orders", "--time", "now", "--to-table", "orders-r2", "--no-indexes", "--wait", "--poll", "20ms", "--timeout", "30s")
	g.check()
}

// TestGoldenExport records export --dry-run, export --wait and index
// --export against DynamoDB Local behind the PITR front and a local S3.
func TestGoldenExport(t *testing.T) {
	s := newExportStack(t)
	g := newGolden(t, "export")
	g.replace(s.s3.Bucket, "<bucket>")
	g.replace(s.db.AccessKeyID, "<access-key>")
	s.put(t, "o1", "good")
	s.put(t, "o2", "good")
	g.run("pitr", "enable", "--table", "orders")
	enabled := time.Now()
	s.snapshot(t, enabled.Add(-48*time.Hour))
	from := enabled.Add(-2 * time.Hour).UTC().Truncate(time.Millisecond).Format(time.RFC3339Nano)
	g.replace(from, "<from>")
	s.put(t, "o1", "bad")
	s.del(t, "o2")
	s.put(t, "o3", "bad")
	s.snapshot(t, time.Now())
	time.Sleep(5 * time.Millisecond)
	dest := "s3://" + s.s3.Bucket + "/incident"
	g.run("export", "--table", "orders", "--from", from, "--to", "now", "--s3", dest, "--dry-run")
	_, out, _ := g.run("export", "--table", "orders", "--from", from, "--to", "now", "--s3", dest, "--wait", "--poll", "20ms", "--timeout", "30s")
	var e struct{ Location string }
	if err := json.Unmarshal([]byte(out), &e); err != nil || e.Location == "" {
		t.Fatalf("export line %q: %v", out, err)
	}
	id := strings.TrimSuffix(e.Location[strings.LastIndex(strings.TrimSuffix(e.Location, "/"), "/")+1:], "/")
	g.replace(id, "<export-id>")
	store := filepath.Join(g.dir("work"), "store")
	g.run("index", "--export", e.Location, "--store", store)
	g.run("query", "--store", store)
	g.check()
}

// TestGoldenReadonly records readonly on, status and off with the fake
// SSM and IAM.
func TestGoldenReadonly(t *testing.T) {
	_, iamSrv := recoverEnv(t, "", "")
	iamSrv.AddRole("app")
	iamSrv.AddRole("worker")
	g := newGolden(t, "readonly")
	g.run("readonly", "status")
	g.run("readonly", "on", "--tenants", "t1,t2")
	g.run("readonly", "on", "--table", "orders", "--roles", "app,worker")
	g.run("readonly", "status", "--table", "orders", "--roles", "app,worker")
	g.run("readonly", "off", "--tenants", "t1")
	g.run("readonly", "off")
	g.run("readonly", "status")
	g.check()
}
