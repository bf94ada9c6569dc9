// Package crashtest is what rewind's crash tests share: the test binary
// re-executes itself as a child process running the code under test (an
// ingest, a `rewind index`, a `rewind patch`), the test kills it with
// SIGKILL at random points, reruns or resumes it, and compares the outcome
// with an uninterrupted run's.
//
// A package's test binary serves as its own child: Command starts it with
// -test.run selecting the child's name and the arguments in the
// environment, and RunChild, called from TestMain or from the test
// function of that name, runs the child's code and exits. Rand gives the
// kill points a seed that is logged and can be replayed.
//
// Only tests import this package.
package crashtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	childEnv = "REWIND_CRASHTEST_CHILD"
	argsEnv  = "REWIND_CRASHTEST_ARGS"
	// SeedEnv, when set, seeds Rand: the seed a failed run logged
	// replays its kill points (up to the machine's timing).
	SeedEnv = "REWIND_CRASH_SEED"
)

// RunChild runs fn and exits with the code it returns when this process is
// the child name started by Command; otherwise it returns at once. Call it
// first thing in TestMain, or in a test function called name (which then
// skips itself when RunChild returns).
func RunChild(name string, fn func(args []string) int) {
	if os.Getenv(childEnv) != name {
		return
	}
	var args []string
	if err := json.Unmarshal([]byte(os.Getenv(argsEnv)), &args); err != nil {
		fmt.Fprintf(os.Stderr, "crashtest: child %s: arguments: %v\n", name, err)
		os.Exit(99)
	}
	os.Exit(fn(args))
}

// IsChild reports whether this process is a child started by Command.
func IsChild() bool { return os.Getenv(childEnv) != "" }

// Command returns a command that re-executes the test binary as the child
// name with args; env is added to this process's environment. Stdout and
// Stderr are left for the caller (or Start) to set.
func Command(name string, args []string, env ...string) *exec.Cmd {
	a, err := json.Marshal(args)
	if err != nil {
		panic(err) // []string always encodes
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+name+"$", "-test.count=1")
	// A race-enabled child would sleep a second at exit.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(os.Environ(), env...)
	cmd.Env = append(cmd.Env, childEnv+"="+name, argsEnv+"="+string(a), "GORACE="+gorace)
	return cmd
}

// Child is a started child process.
type Child struct {
	Cmd *exec.Cmd
	// Lines reads the child's stdout line by line when Start was asked to
	// pipe it (children that report progress there); nil otherwise. Read
	// it only before calling any method of Child: from then on the rest is
	// read and dropped.
	Lines *bufio.Scanner

	out     bytes.Buffer
	started time.Time
	once    sync.Once
	exited  chan struct{} // closed once err and ran are set
	err     error
	ran     time.Duration
}

// Start starts cmd. With progress, its stdout is read through c.Lines;
// otherwise stdout and stderr both go to c.Output. The child is killed, if
// still running, when the test ends, and its output logged if the test
// failed.
func Start(t testing.TB, cmd *exec.Cmd, progress bool) *Child {
	t.Helper()
	c := &Child{Cmd: cmd, exited: make(chan struct{})}
	cmd.Stderr = &c.out
	if progress {
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		c.Lines = bufio.NewScanner(out)
	} else {
		cmd.Stdout = &c.out
	}
	c.started = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Kill()
		if t.Failed() && c.out.Len() > 0 {
			t.Logf("child %v output:\n%s", cmd.Args[1:], c.out.String())
		}
	})
	return c
}

// waiter starts, once, the goroutine that reads the rest of the progress
// lines and waits for the child to exit.
func (c *Child) waiter() {
	c.once.Do(func() {
		go func() {
			if c.Lines != nil {
				for c.Lines.Scan() {
				}
			}
			c.err = c.Cmd.Wait()
			c.ran = time.Since(c.started)
			close(c.exited)
		}()
	})
}

// Wait waits for the child to exit and returns its error (an
// *exec.ExitError when it failed or was killed).
func (c *Child) Wait() error {
	c.waiter()
	<-c.exited
	return c.err
}

// Exited reports whether the child has exited (and been waited for).
func (c *Child) Exited() bool {
	c.waiter()
	select {
	case <-c.exited:
		return true
	default:
		return false
	}
}

// Ran is how long the child ran, from Start to its exit; valid once it
// exited.
func (c *Child) Ran() time.Duration {
	c.Wait()
	return c.ran
}

// Kill sends SIGKILL and waits; it reports whether the signal is what
// ended the child (false when it had exited already).
func (c *Child) Kill() bool {
	if c.Exited() {
		return false
	}
	c.Cmd.Process.Signal(syscall.SIGKILL)
	return Killed(c.Wait())
}

// KillAfter kills the child d after the call unless it exits first; it
// reports whether the kill ended it.
func (c *Child) KillAfter(d time.Duration) bool {
	c.waiter()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-c.exited:
		return false
	case <-timer.C:
	}
	return c.Kill()
}

// AwaitChanges polls, every millisecond while the child runs, the number
// of files matching pattern (filepath.Glob), and returns true once that
// number has changed n times, or false if the child exited first. It is
// how a test follows a child that reports no progress but leaves files:
// a store's tables, say. It returns at once for n < 1.
func (c *Child) AwaitChanges(pattern string, n int) bool {
	changes, last := 0, count(pattern)
	for changes < n {
		if c.Exited() {
			return false
		}
		time.Sleep(time.Millisecond)
		if m := count(pattern); m != last {
			changes, last = changes+1, m
		}
	}
	return true
}

// CountChanges is AwaitChanges until the child exits: it returns how many
// times the number of files matching pattern changed, and when the first
// and the last change were seen (since the child started).
func (c *Child) CountChanges(pattern string) (changes int, first, last time.Duration) {
	prev := count(pattern)
	for !c.Exited() {
		time.Sleep(time.Millisecond)
		if m := count(pattern); m != prev {
			changes, prev, last = changes+1, m, time.Since(c.started)
			if changes == 1 {
				first = last
			}
		}
	}
	return changes, first, last
}

func count(pattern string) int {
	m, _ := filepath.Glob(pattern)
	return len(m)
}

// Output is what the child wrote to stderr (and to stdout, when not
// piped). Read it only once the child exited.
func (c *Child) Output() string { return c.out.String() }

// ExitCode is the child's exit code once it exited: -1 when a signal
// ended it.
func (c *Child) ExitCode() int {
	c.Wait()
	return c.Cmd.ProcessState.ExitCode()
}

// Killed reports whether err, from Wait, says SIGKILL ended the process.
func Killed(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// Rand returns a random source for kill points, seeded from $REWIND_CRASH_SEED
// or the clock; the seed is logged so that a failure can be replayed.
func Rand(t testing.TB) *rand.Rand {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(SeedEnv); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", SeedEnv, s, err)
		}
		seed = v
	}
	t.Logf("kill points seeded with %d (%s=%d replays them)", seed, SeedEnv, seed)
	return rand.New(rand.NewPCG(seed, 0xc4a5))
}

// TmpfsDir returns a new directory on tmpfs when there is one, else under
// t.TempDir. SIGKILL leaves the page cache intact, so fsync adds nothing
// to what a crash test checks (process crashes, not power loss), and it
// dominates the test's time on a busy disk.
func TmpfsDir(t testing.TB) string {
	t.Helper()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "rewind-crash-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return t.TempDir()
}
