package cli

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
)

func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &Env{Stdout: &out, Stderr: &errb, Log: slog.New(slog.NewTextHandler(&errb, nil)), Getenv: os.Getenv}
	code = Run(context.Background(), env, args)
	return code, out.String(), errb.String()
}

func TestUnknownCommandIsUsageError(t *testing.T) {
	if code, _, stderr := runCmd(t, "frobnicate"); code != exitUsage || !strings.Contains(stderr, `unknown command "frobnicate"`) {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if code, _, _ := runCmd(t, "keys", "merge", "--no-such-flag"); code != exitUsage {
		t.Fatalf("unknown flag: exit %d, want %d", code, exitUsage)
	}
}

// TestNoDrillInTheCLI: the drill is a program of its own
// (cmd/rewind-drill), not a command of the shipped binary.
func TestNoDrillInTheCLI(t *testing.T) {
	if code, _, stderr := runCmd(t, "drill", "--no-such-flag"); code != exitUsage || !strings.Contains(stderr, `unknown command "drill"`) {
		t.Fatalf("rewind drill: exit %d, stderr %q; want the unknown-command usage error", code, stderr)
	}
	var help bytes.Buffer
	printHelp(&help)
	if strings.Contains(help.String(), "drill") {
		t.Errorf("rewind help lists the drill:\n%s", help.String())
	}
}
