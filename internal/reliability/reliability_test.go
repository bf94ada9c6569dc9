package reliability

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLine(t *testing.T) {
	got, err := Line("crash", "TestX/a", "runs", 20, "exact", 19, "rate", 0.1, "ok", true, "name", `q"`)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"suite":"crash","scenario":"TestX/a","runs":20,"exact":19,"rate":0.1,"ok":true,"name":"q\""}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	for _, bad := range [][]any{{"runs"}, {1, 2}, {"runs", 1, "runs", 2}, {"suite", "x"}, {"f", func() {}}} {
		if _, err := Line("s", "x", bad...); err == nil {
			t.Errorf("Line(%v): no error", bad)
		}
	}
}

func TestReportAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.jsonl")
	t.Setenv(Env, path)
	Report(t, "s", "runs", 1)
	Report(t, "s", "runs", 2)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 2 || !strings.HasSuffix(lines[1], `"runs":2}`) || !strings.Contains(lines[0], `"scenario":"TestReportAppends"`) {
		t.Fatalf("report file:\n%s", b)
	}
}
