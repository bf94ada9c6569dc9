package cli

import (
	"os"
	"path/filepath"
	"strings"
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
