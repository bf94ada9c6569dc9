package incident

import (
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func sampleReport() *Report {
	t0 := time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)
	at := func(m int) *time.Time { t := t0.Add(time.Duration(m) * time.Minute); return &t }
	r := &Report{
		Table:   "orders",
		Tenants: []TenantRow{{Tenant: "tenant01", Keys: 21, Restore: 17, Delete: 4}, {Tenant: "tenant02", Keys: 21, Restore: 15, Delete: 6}},
		Found:   42, Restore: 32, Delete: 10, Written: 42, Conflicts: 0, Verify: "passed", Status: "done",
		DeployFrom: at(10), DeployTo: at(14), RestorePoint: at(9), ReadOnlyFrom: at(16), ReadOnlyTo: at(24),
		ReadOnlyTenants: "tenant01,tenant02",
		Commands:        []CommandRow{{Seq: 1, Command: "index", Line: "rewind index --incident /x --source s3://b/p", Who: "arn:aws:sts::123456789012:assumed-role/operator/s", Start: *at(15), End: at(15), Outcome: OK}},
	}
	for m := range 30 {
		var a int64
		if m >= 10 && m <= 14 {
			a = 120
		}
		r.Timeline = append(r.Timeline, Minute{Start: *at(m), Affected: a, Others: 40 + int64(m%3)*5})
	}
	return r
}

// chromium returns the headless browser's path; without one the test is
// skipped, unless REWIND_REQUIRE_LOCAL_AWS=1 (CI, where .ci/run installs
// Debian's chromium) makes that a failure.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("REWIND_REQUIRE_LOCAL_AWS") == "1" {
		t.Fatal("chromium is required (apt-get install chromium; .ci/run does)")
	}
	t.Skip("chromium not installed")
	return ""
}

// TestReportHTMLInBrowser renders the HTML report in a real headless
// browser: the screenshot's timeline area holds the chart's bars (the
// tenants hit in red, everyone else in grey), and the rendered text the
// report's figures.
func TestReportHTMLInBrowser(t *testing.T) {
	bin := chromium(t)
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	f, err := os.Create(page)
	if err != nil {
		t.Fatal(err)
	}
	if err := sampleReport().WriteHTML(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	b, _ := os.ReadFile(page)
	for _, banned := range []string{"http://", "https://", "<script", "src="} {
		// Self-contained: nothing fetched (the SVG namespace is a name,
		// not a fetch).
		if n := strings.Count(string(b), banned) - strings.Count(string(b), `xmlns="http://www.w3.org/2000/svg"`)*boolInt(banned == "http://"); n > 0 {
			t.Errorf("report.html has %q: it must open with no network", banned)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	// Root in CI containers: chromium's sandbox needs --no-sandbox there.
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1200,900"}
	shot := filepath.Join(dir, "out.png")
	cmd := exec.CommandContext(ctx, bin, append(args, "--screenshot="+shot, "file://"+page)...)
	cmd.Env = append(os.Environ(), "HOME="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium --screenshot: %v\n%s", err, out)
	}
	pf, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	img, err := png.Decode(pf)
	if err != nil {
		t.Fatalf("decode %s: %v", shot, err)
	}
	// The chart is the first thing under the title: body margin 24px,
	// the plot from x 60 to 1080 and y 44 to 250 in the SVG.
	red, grey, other := 0, 0, 0
	for y := 60 + 44; y < 60+250; y++ {
		for x := 24 + 60; x < 24+1080; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			r, g, b = r>>8, g>>8, b>>8
			switch {
			case near(r, 214) && near(g, 39) && near(b, 40):
				red++
			case near(r, 127) && near(g, 140) && near(b, 141):
				grey++
			case r < 250 || g < 250 || b < 250:
				other++
			}
		}
	}
	t.Logf("timeline area: %d red, %d grey, %d other non-white pixels", red, grey, other)
	if red < 500 || grey < 500 {
		t.Errorf("timeline area: %d red and %d grey pixels; want the bars of both (is the chart blank?)", red, grey)
	}

	cmd = exec.CommandContext(ctx, bin, append(args, "--dump-dom", "file://"+page)...)
	cmd.Env = append(os.Environ(), "HOME="+dir)
	dom, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom: %v", err)
	}
	for _, want := range []string{"Items found: 42", "Restored: 32, deleted: 10, unchanged: 0", "conflicts: 0", "Tenants hit: 2 (tenant01, tenant02)", "Restore point: 2026-11-26 01:09:00Z", "<td>tenant02</td><td class=\"n\">21</td><td class=\"n\">15</td><td class=\"n\">6</td>"} {
		if !strings.Contains(string(dom), want) {
			t.Errorf("the rendered page lacks %q", want)
		}
	}
}

func near(v, want uint32) bool { return v+12 >= want && v <= want+12 }

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
