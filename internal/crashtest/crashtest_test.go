package crashtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	// files DIR N: writes N files into DIR, 50 ms apart, then sleeps.
	RunChild("files", func(args []string) int {
		n, _ := strconv.Atoi(args[1])
		for i := range n {
			os.WriteFile(filepath.Join(args[0], fmt.Sprintf("f%d.sst", i)), nil, 0o644)
			fmt.Println(i)
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(time.Minute)
		return 0
	})
	RunChild("exit", func(args []string) int {
		code, _ := strconv.Atoi(args[0])
		fmt.Fprintln(os.Stderr, "exiting with", code)
		return code
	})
	os.Exit(m.Run())
}

func TestExit(t *testing.T) {
	c := Start(t, Command("exit", []string{"3"}), false)
	if c.KillAfter(time.Minute) {
		t.Fatal("KillAfter says it killed a child that exited by itself")
	}
	if c.ExitCode() != 3 || c.Output() != "exiting with 3\n" || c.Ran() <= 0 {
		t.Fatalf("exit code %d, output %q, ran %s", c.ExitCode(), c.Output(), c.Ran())
	}
	if Killed(c.Wait()) {
		t.Fatal("Killed says a child that exited was killed")
	}
}

func TestKillAfterChanges(t *testing.T) {
	dir := TmpfsDir(t)
	c := Start(t, Command("files", []string{dir, "10"}), true)
	if !c.Lines.Scan() || c.Lines.Text() != "0" {
		t.Fatalf("first progress line %q", c.Lines.Text())
	}
	if !c.AwaitChanges(filepath.Join(dir, "*.sst"), 2) {
		t.Fatal("AwaitChanges: the child exited")
	}
	if !c.KillAfter(0) {
		t.Fatal("KillAfter did not kill a sleeping child")
	}
	if !Killed(c.Wait()) || c.ExitCode() != -1 {
		t.Fatalf("Wait: %v, exit code %d", c.Wait(), c.ExitCode())
	}
	// Killed after at least two more files, long before the tenth.
	if m, _ := filepath.Glob(filepath.Join(dir, "*.sst")); len(m) < 3 || len(m) == 10 {
		t.Fatalf("%d files when killed after the second change", len(m))
	}
	if c.AwaitChanges(filepath.Join(dir, "*.sst"), 1) {
		t.Fatal("AwaitChanges on a dead child said the files changed")
	}
}

func TestRandReplays(t *testing.T) {
	t.Setenv(SeedEnv, "42")
	a, b := Rand(t).Uint64(), Rand(t).Uint64()
	if a != b {
		t.Fatalf("the same seed gave %d and %d", a, b)
	}
}
