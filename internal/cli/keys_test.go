package cli

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestKeysMerge(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.jsonl")
	b := filepath.Join(dir, "b.jsonl")
	os.WriteFile(a, []byte(`{"table":"orders","key":{"pk":{"S":"t1"},"sk":{"S":"2"}},"tenant":"t1","first":"2026-11-20T10:05:00Z","last":"2026-11-20T10:05:00Z","count":1,"actions":["MODIFY"]}
{"table":"orders","key":{"pk":{"S":"t1"},"sk":{"S":"1"}},"tenant":"t1","first":"2026-11-20T10:04:00Z","last":"2026-11-20T10:04:00Z","count":1,"actions":["INSERT"]}
`), 0o644)
	os.WriteFile(b, []byte(`{"table":"orders","key":{"pk":{"S":"t1"},"sk":{"S":"2"}},"tenant":"t1","first":"2026-11-20T10:06:00Z","last":"2026-11-20T10:06:00Z","count":1,"actions":["REMOVE"]}
`), 0o644)
	code, stdout, stderr := runCmd(t, "keys", "merge", a, b)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := `{"table":"orders","key":{"pk":{"S":"t1"},"sk":{"S":"1"}},"tenant":"t1","first":"2026-11-20T10:04:00Z","last":"2026-11-20T10:04:00Z","count":1,"actions":["INSERT"]}
{"table":"orders","key":{"pk":{"S":"t1"},"sk":{"S":"2"}},"tenant":"t1","first":"2026-11-20T10:05:00Z","last":"2026-11-20T10:06:00Z","count":2,"actions":["MODIFY","REMOVE"]}
`
	if stdout != want {
		t.Fatalf("merged:\n%s\nwant:\n%s", stdout, want)
	}
	if !strings.Contains(stderr, "3 lines from 2 files, 2 distinct items") {
		t.Errorf("summary: %s", stderr)
	}
	os.WriteFile(b, []byte("{\"table\":\"orders\"}\n"), 0o644)
	if code, _, stderr := runCmd(t, "keys", "merge", a, b); code != exitError || !strings.Contains(stderr, "b.jsonl: line 1: missing \"key\"") {
		t.Fatalf("bad input: exit %d, %s", code, stderr)
	}
	if code, _, _ := runCmd(t, "keys", "split"); code != exitUsage {
		t.Fatalf("unknown verb: exit %d", code)
	}
}

func TestKeysSubtractIntersect(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "diff.jsonl")
	b := filepath.Join(dir, "good.jsonl")
	line := func(table, sk, action string) string {
		return `{"table":"` + table + `","key":{"pk":{"S":"t1"},"sk":{"S":"` + sk + `"}},"tenant":"","first":"0001-01-01T00:00:00Z","last":"0001-01-01T00:00:00Z","count":0,"actions":["` + action + `"]}` + "\n"
	}
	// A out of order, with an item twice; B holds one of A's keys, a key
	// of another table with the same key, and a key A lacks.
	os.WriteFile(a, []byte(line("orders", "3", "MODIFY")+line("orders", "1", "INSERT")+line("orders", "2", "REMOVE")+line("orders", "1", "INSERT")), 0o644)
	os.WriteFile(b, []byte(line("orders", "2", "MODIFY")+line("invoices", "1", "MODIFY")+line("orders", "9", "MODIFY")), 0o644)

	code, stdout, stderr := runCmd(t, "keys", "subtract", a, b)
	if code != 0 {
		t.Fatalf("subtract: exit %d: %s", code, stderr)
	}
	if want := line("orders", "1", "INSERT") + line("orders", "3", "MODIFY"); stdout != want {
		t.Fatalf("subtract:\n%s\nwant:\n%s", stdout, want)
	}
	if !strings.Contains(stderr, "3 items; "+b+": 3 items; 1 removed; 2 written") {
		t.Errorf("subtract summary: %s", stderr)
	}
	code, stdout, stderr = runCmd(t, "keys", "intersect", a, b)
	if code != 0 {
		t.Fatalf("intersect: exit %d: %s", code, stderr)
	}
	// A's line, not B's: the diff's action is what a patch acts on.
	if want := line("orders", "2", "REMOVE"); stdout != want {
		t.Fatalf("intersect:\n%s\nwant:\n%s", stdout, want)
	}

	// Nothing in common: said, since a table spelled as an ARN in one
	// and a name in the other is the usual cause.
	os.WriteFile(b, []byte(line("arn:aws:dynamodb:us-east-1:123456789012:table/orders", "2", "MODIFY")), 0o644)
	code, stdout, stderr = runCmd(t, "keys", "subtract", a, b)
	if code != 0 || strings.Count(stdout, "\n") != 3 || !strings.Contains(stderr, "no item of "+b+" is in "+a) {
		t.Fatalf("subtract with nothing in common: exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, args := range [][]string{{"keys", "subtract", a}, {"keys", "intersect", a, b, b}} {
		if code, _, stderr := runCmd(t, args...); code != exitUsage || !strings.Contains(stderr, "name two key-set files") {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
	}
	os.WriteFile(b, []byte("{\"table\":\"orders\"}\n"), 0o644)
	if code, _, stderr := runCmd(t, "keys", "intersect", a, b); code != exitError || !strings.Contains(stderr, "good.jsonl: line 1: missing \"key\"") {
		t.Fatalf("bad B: exit %d, %s", code, stderr)
	}
}

// TestKeysHostileInputs: standard input, a pipe, an empty file, a
// directory, a missing file and standard input named twice, each with
// the answer or the error an operator can act on, and nothing on stdout
// when the input is refused.
func TestKeysHostileInputs(t *testing.T) {
	dir := t.TempDir()
	line := func(sk string) string {
		return `{"table":"orders","key":{"pk":{"S":"t1"},"sk":{"S":"` + sk + `"}},"tenant":"","first":"0001-01-01T00:00:00Z","last":"0001-01-01T00:00:00Z","count":0,"actions":["MODIFY"]}` + "\n"
	}
	a := filepath.Join(dir, "a.jsonl")
	os.WriteFile(a, []byte(line("1")+line("2")+line("3")), 0o644)
	empty := filepath.Join(dir, "empty.jsonl")
	os.WriteFile(empty, nil, 0o644)

	// Standard input as B: the keys known to be good, piped in.
	withStdin(t, line("2"), func() {
		code, stdout, stderr := runCmd(t, "keys", "subtract", a, "-")
		if code != 0 || stdout != line("1")+line("3") {
			t.Fatalf("subtract A -: exit %d\n%s\n%s", code, stdout, stderr)
		}
	})
	// A FIFO, as <(cmd) or mkfifo gives, read once.
	fifo := filepath.Join(dir, "good.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	go func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err == nil {
			f.WriteString(line("3") + line("9"))
			f.Close()
		}
	}()
	if code, stdout, stderr := runCmd(t, "keys", "intersect", a, fifo); code != 0 || stdout != line("3") {
		t.Fatalf("intersect A FIFO: exit %d\n%s\n%s", code, stdout, stderr)
	}

	// An empty input answers, and says it was empty.
	code, stdout, stderr := runCmd(t, "keys", "subtract", a, empty)
	if code != 0 || stdout != line("1")+line("2")+line("3") || !strings.Contains(stderr, empty+" holds no item (empty)") {
		t.Fatalf("subtract A empty: exit %d\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, stderr = runCmd(t, "keys", "merge", empty)
	if code != 0 || stdout != "" || !strings.Contains(stderr, empty+" holds no item") {
		t.Fatalf("merge empty: exit %d\n%s\n%s", code, stdout, stderr)
	}

	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"keys", "subtract", a, dir}, exitError, dir + " is a directory, not a key set"},
		{[]string{"keys", "intersect", filepath.Join(dir, "nope.jsonl"), a}, exitError, "nope.jsonl: no such file"},
		{[]string{"keys", "subtract", "-", "/dev/stdin"}, exitUsage, "standard input (- or /dev/stdin) is named twice"},
		{[]string{"keys", "merge", a, "-", "-"}, exitUsage, "named twice"},
	} {
		code, stdout, stderr := runCmd(t, c.args...)
		if code != c.code || stdout != "" || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d (want %d), stdout %q, stderr %s", c.args, code, c.code, stdout, stderr)
		}
	}
}

// withStdin runs fn with os.Stdin reading text from a pipe.
func withStdin(t *testing.T, text string, fn func()) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		w.WriteString(text)
		w.Close()
	}()
	old := os.Stdin
	os.Stdin = r
	defer func() { os.Stdin = old; r.Close() }()
	fn()
}
