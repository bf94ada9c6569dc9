package drill

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

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

var update = flag.Bool("update", false, "rewrite testdata/report-*.md from the drill's report")

// normalizeReport takes out of the drill's report.md what changes from run
// to run: times, the folder's path, the changes counted per minute.
// timelineRank orders the drill's timeline events as they happen. The
// report sorts its timeline by time, and DynamoDB Local stamps stream
// records to the minute, so the deploy's first and last changes land
// before or after the restore point (taken to the second) depending on
// when in its minute the drill ran: normalizeReport puts the rows in
// this order once checkTimeline has seen them sorted by time.
var timelineRank = []string{
	"restore point", "first change", "last change", "read-only on",
	"restore (", "patch applied", "verify", "read-only off",
}

// timelineRows returns the first and one-past-last line index of the
// report's timeline table rows.
func timelineRows(lines []string) (int, int) {
	start := slices.Index(lines, "## Timeline")
	if start < 0 {
		return 0, 0
	}
	start += 4 // the blank line and the table's header and rule
	end := start
	for end < len(lines) && strings.HasPrefix(lines[end], "| ") {
		end++
	}
	return start, end
}

// checkTimeline fails unless the report's timeline rows are in time
// order.
func checkTimeline(t *testing.T, md string) {
	t.Helper()
	lines := strings.Split(md, "\n")
	start, end := timelineRows(lines)
	if end-start < 2 {
		t.Fatalf("report.md has %d timeline rows:\n%s", end-start, md)
	}
	var prev time.Time
	for _, l := range lines[start:end] {
		cell := strings.TrimSpace(strings.Split(l, "|")[1])
		at, err := time.Parse("2006-01-02 15:04:05Z", cell)
		if err != nil {
			t.Fatalf("timeline row %q: %v", l, err)
		}
		if at.Before(prev) {
			t.Fatalf("timeline row %q comes before the one above it:\n%s", l, strings.Join(lines[start:end], "\n"))
		}
		prev = at
	}
}

func normalizeReport(md, work string) string {
	lines := strings.Split(md, "\n")
	start, end := timelineRows(lines)
	rank := func(l string) int {
		what := strings.TrimSpace(strings.Join(strings.Split(l, "|")[2:], "|"))
		return slices.IndexFunc(timelineRank, func(p string) bool { return strings.HasPrefix(what, p) })
	}
	slices.SortStableFunc(lines[start:end], func(a, b string) int { return rank(a) - rank(b) })
	md = strings.Join(lines, "\n")
	md = strings.ReplaceAll(md, work, "WORK")
	for _, r := range []struct{ re, with string }{
		{`\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ`, "TIME"},
		{`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`, "TIME"},
		{`Changes in the timeline's window: \d+ by the tenants hit, \d+ by everyone else`, "Changes in the timeline's window: N by the tenants hit, M by everyone else"},
	} {
		md = regexp.MustCompile(r.re).ReplaceAllString(md, r.with)
	}
	return md
}

func TestDrill(t *testing.T) {
	requireStack(t)
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"two-tenants", Config{Tenants: 4, Affected: 2, Changes: 300}},
		{"all-tenants", Config{Tenants: 3, All: true, Changes: 300}},
		// Patching from the history gives the same plan, key for key, as
		// patching from the restore.
		{"from-history", Config{Tenants: 4, Affected: 2, Changes: 300, FromHistory: true, CompareRestore: true}},
		// The application logs its changes (recover/changelog) and there
		// is no capture: index --logs, query, patch from the restore.
		{"change-log", Config{Tenants: 4, Affected: 2, Changes: 300, Source: SourceLogs}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			cfg := tc.cfg
			cfg.Workdir, cfg.Progress = t.TempDir(), &stderr
			environ := os.Environ()
			o, err := Run(t.Context(), cfg)
			if err != nil {
				t.Fatalf("drill: %v\n%s", err, stderr.String())
			}
			if after := os.Environ(); !slices.Equal(environ, after) {
				t.Errorf("the drill changed the process environment")
			}
			if o.Check != CheckPass || o.Wrong != 0 || o.Items == 0 {
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
			if tc.cfg.Source == SourceLogs && (!strings.Contains(stderr.String(), "rewind index --logs cwlogs:/aws/lambda/orders-api --log-streams") || strings.Contains(stderr.String(), "rewind index --source") || o.Source != "restore") {
				t.Errorf("the change-log drill did not index the log stream alone, or did not patch from the restore (source %q)", o.Source)
			}
			for _, want := range []string{"rewind readonly on", "rewind restore", "rewind query", "rewind patch", "rewind verify", "rewind readonly off", "Timeline:", "drill: PASS"} {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr lacks %q", want)
				}
			}
			if strings.Contains(tc.name, "all") && !strings.Contains(stderr.String(), "--all") {
				t.Errorf("the all-tenants drill did not freeze with --all")
			}
			// The incident folder: status said done (the drill checks),
			// and the report's Markdown is the golden one.
			if o.Incident != filepath.Join(cfg.Workdir, "incident") {
				t.Fatalf("incident folder %q, want <workdir>/incident", o.Incident)
			}
			if n := strings.Count(stderr.String(), "$ rewind status"); n != 2 {
				t.Errorf("rewind status printed %d times, want 2 (mid-way and at the end)", n)
			}
			md, err := os.ReadFile(filepath.Join(o.Incident, "report.md"))
			if err != nil {
				t.Fatal(err)
			}
			checkTimeline(t, string(md))
			got := normalizeReport(string(md), cfg.Workdir)
			golden := filepath.Join("testdata", "report-"+tc.name+".md")
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (go test ./internal/drill -run TestDrill -update writes it)", err)
			}
			if got != string(want) {
				t.Errorf("report.md differs from %s (-update rewrites it):\n%s", golden, got)
			}
		})
	}
}

func TestDrillConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*Config)
		want string // in the error; "" for none
	}{
		{"defaults", func(*Config) {}, ""},
		{"no changes", func(c *Config) { c.Changes = 0 }, "Changes (--changes)"},
		{"affected above tenants", func(c *Config) { c.Tenants, c.Affected = 2, 3 }, "Affected (--affected)"},
		{"all overrides affected", func(c *Config) { c.Tenants, c.Affected, c.All = 2, 3, true }, ""},
		{"bug does nothing", func(c *Config) { c.BugModify, c.BugDelete, c.BugJunk = 0, 0, 0 }, "the bug must do something"},
		{"negative bug", func(c *Config) { c.BugJunk = -1 }, "none may be negative"},
		{"compare without history", func(c *Config) { c.CompareRestore = true }, "--compare-restore"},
		{"stop before another step", func(c *Config) { c.StopBefore = "patch" }, `stop before "readonly" only`},
		{"env file without stop", func(c *Config) { c.EnvFile = "x.env" }, "--stop-before"},
		{"batch too large", func(c *Config) { c.BatchSize = 10001 }, "BatchSize (--batch-size)"},
		{"unknown source", func(c *Config) { c.Source = "kinesis" }, "Source (--source)"},
		{"logs from history", func(c *Config) { c.Source, c.FromHistory = SourceLogs, true }, "carries no images"},
		{"logs", func(c *Config) { c.Source = SourceLogs }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Config
			c.EnsureDefaults()
			tc.set(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate: %v, want an error with %q", err, tc.want)
			}
		})
	}
	var c Config
	c.EnsureDefaults()
	if c.Tenants != DefaultTenants || c.Affected != DefaultAffected || c.Changes != DefaultChanges || c.BugModify != DefaultBugModify ||
		c.BugDelete != DefaultBugDelete || c.BugJunk != DefaultBugJunk || c.BatchSize != DefaultBatchSize || c.Progress == nil || c.Getenv == nil {
		t.Errorf("defaults %+v", c)
	}
	c = Config{BugModify: 3}
	c.EnsureDefaults()
	if c.BugModify != 3 || c.BugDelete != 0 || c.BugJunk != 0 {
		t.Errorf("one bug count given: %d, %d, %d; want 3, 0, 0 (the others none)", c.BugModify, c.BugDelete, c.BugJunk)
	}
}
