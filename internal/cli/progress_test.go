package cli

import (
	"bytes"
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer"
	"github.com/ddbrewind/rewind/recover/patch"
	"github.com/ddbrewind/rewind/recover/pitr"
	"github.com/ddbrewind/rewind/recover/pitrexport"
)

// TestRendererPlainLines: off a terminal, one line per interval (the
// reports in between are dropped), none for the final report, and none
// at all with --progress 0.
func TestRendererPlainLines(t *testing.T) {
	var buf bytes.Buffer
	env := &Env{Stderr: &buf, Getenv: func(string) string { return "" }}
	r := newRenderer(env, 10*time.Second)
	if r.tty || r.interval() != 10*time.Second {
		t.Fatalf("a buffer is a terminal, or interval %s", r.interval())
	}
	start := r.last
	clock := start
	r.now = func() time.Time { return clock }
	report := progressTo[patch.Progress](r)
	for _, at := range []time.Duration{3, 10, 12, 19, 20, 25} {
		clock = start.Add(at * time.Second)
		report(patch.Progress{Tool: "patch", Counts: patch.Counts{Keys: int64(at) * 10, Written: int64(at)}, Total: 1000, Elapsed: at * time.Second})
	}
	report(patch.Progress{Tool: "patch", Counts: patch.Counts{Keys: 1000}, Total: 1000, Elapsed: 40 * time.Second, Final: true})
	want := "patch: 100/1000 keys (10.0%), 10 keys/s, ETA 1m30s, written 10, conflicts 0, failures 0\n" +
		"patch: 200/1000 keys (20.0%), 10 keys/s, ETA 1m20s, written 20, conflicts 0, failures 0\n"
	if buf.String() != want {
		t.Fatalf("progress lines:\n%s\nwant:\n%s", buf.String(), want)
	}

	if r := newRenderer(env, 0); r != nil || progressTo[indexer.Progress](r) != nil || r.interval() != 0 {
		t.Fatal("--progress 0 has a renderer or a callback")
	}
	var nilR *renderer
	nilR.update(rewind.Progress{Phase: "x"})
	nilR.done()
}

// TestRendererTerminal: on a terminal the line is redrawn in place, with
// a bar when the total is known, at most every minRedraw, and cleared by
// the final report, so that the summary starts on a clean line.
func TestRendererTerminal(t *testing.T) {
	var buf bytes.Buffer
	clock := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	r := &renderer{w: &buf, tty: true, every: 10 * time.Second, now: func() time.Time { return clock }, last: clock}
	if r.interval() != time.Second {
		t.Fatalf("terminal interval %s, want 1s", r.interval())
	}
	report := progressTo[indexer.Progress](r)
	report(indexer.Progress{Listed: 10, Skipped: 2, Ingested: 2, Rows: 200, Elapsed: time.Second})
	clock = clock.Add(50 * time.Millisecond)
	report(indexer.Progress{Listed: 10, Skipped: 2, Ingested: 3, Rows: 300, Elapsed: time.Second}) // too soon: not drawn
	clock = clock.Add(time.Second)
	report(indexer.Progress{Listed: 10, Skipped: 2, Ingested: 6, Rows: 800, Elapsed: 2 * time.Second})
	report(indexer.Progress{Listed: 10, Skipped: 2, Ingested: 8, Rows: 900, Elapsed: 3 * time.Second, Final: true})
	r.done() // nothing left to clear
	want := "\r\033[K[=====>              ] index: 2/8 objects (25.0%), 200 events/s, ETA 3s, already indexed 2, failed 0, events 200" +
		"\r\033[K[===============>    ] index: 6/8 objects (75.0%), 400 events/s, ETA 1s, already indexed 2, failed 0, events 800" +
		"\r\033[K"
	if got := buf.String(); got != want {
		t.Fatalf("terminal output\n%q\nwant\n%q", got, want)
	}
	if progressBar(0, 4) != "[>   ]" || progressBar(1, 4) != "[====]" || progressBar(2, 4) != "[====]" {
		t.Errorf("bars %q %q", progressBar(0, 4), progressBar(1, 4))
	}
}

// TestProgressReports: each library's progress in the common shape.
func TestProgressReports(t *testing.T) {
	for _, tc := range []struct {
		p    reporter
		want string
	}{
		{indexer.Progress{Listed: 12, Skipped: 2, Ingested: 4, Failed: 1, Rows: 500, Elapsed: 5 * time.Second},
			"index: 5/10 objects (50.0%), 100 events/s, ETA 5s, already indexed 2, failed 1, events 500"},
		{pitr.Progress{Table: "orders-r", Status: "CREATING", ItemCount: 7, IndexesCreating: 1, Elapsed: 90 * time.Second},
			"restore: 0/1 tables (0.0%), 0 tables/s, items 7, indexes creating 1, orders-r: CREATING"},
		{pitrexport.WaitProgress{Exports: make([]pitrexport.Export, 3), Done: 1, Completed: 1, Elapsed: time.Minute},
			"export: 1/3 exports (33.3%), 0 exports/s, ETA 2m0s, completed 1, failed 0"},
		{patch.Progress{Tool: "verify", Counts: patch.Counts{Keys: 40}, Elapsed: 2 * time.Second, InFlight: 3, Idle: 4 * time.Second},
			"verify: 40 keys, 20 keys/s, written 0, conflicts 0, failures 0, waiting on DynamoDB for 4s (3 calls in flight)"},
	} {
		if got := progressText(tc.p.Report()); got != tc.want {
			t.Errorf("%T:\n got %q\nwant %q", tc.p, got, tc.want)
		}
	}
}

// TestProgressFlag: --progress and $REWIND_PROGRESS, on every long
// command.
func TestProgressFlag(t *testing.T) {
	parse := func(env string, args ...string) (progressFlag, error) {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var p progressFlag
		p.register(fs, &Env{Getenv: func(k string) string {
			if k == "REWIND_PROGRESS" {
				return env
			}
			return ""
		}})
		if err := fs.Parse(args); err != nil {
			return p, err
		}
		return p, p.check()
	}
	for _, tc := range []struct {
		env  string
		args []string
		want time.Duration
		bad  bool
	}{
		{"", nil, defaultProgressEvery, false},
		{"2s", nil, 2 * time.Second, false},
		{"0", nil, 0, false},
		{"2s", []string{"--progress", "0"}, 0, false},
		{"soon", nil, 0, true},
		{"soon", []string{"--progress", "5s"}, 5 * time.Second, false},
		{"", []string{"--progress", "-1s"}, 0, true},
	} {
		p, err := parse(tc.env, tc.args...)
		if (err != nil) != tc.bad || (!tc.bad && p.every != tc.want) {
			t.Errorf("REWIND_PROGRESS=%q %v: %s, %v; want %s (error %v)", tc.env, tc.args, p.every, err, tc.want, tc.bad)
		}
	}
	for _, cmd := range []string{"index", "restore", "export", "patch", "verify", "undo"} {
		code, _, stderr := runIndexCLI(t, cmd, "--progress", "soon")
		if code != exitUsage || !strings.Contains(stderr, `"soon": want a duration`) {
			t.Errorf("%s --progress soon: exit %d\n%s", cmd, code, stderr)
		}
	}
}
