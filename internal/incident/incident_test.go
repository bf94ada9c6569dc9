package incident

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// TestMain lets a test run this binary as a command that begins a record
// and dies without ending it.
func TestMain(m *testing.M) {
	if dir := os.Getenv("INCIDENT_TEST_CRASH_IN"); dir != "" {
		d, err := Open(dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		if _, err := d.Begin(Record{Command: "patch", Args: []string{"--yes"}}, nil); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		// As a kill -9 or an OOM kill would: no deferred End.
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
	os.Exit(m.Run())
}

func TestCrashedCommandSaysSo(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "INCIDENT_TEST_CRASH_IN="+dir)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("helper: want killed, got %v: %s", err, out)
	}
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	// A command still running in this process is not crashed.
	live, err := d.Begin(Record{Command: "verify"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	es, probs, err := d.Read()
	if err != nil || len(probs) > 0 {
		t.Fatalf("read: %v %v", err, probs)
	}
	if len(es) != 2 {
		t.Fatalf("entries: %d, want 2", len(es))
	}
	if es[0].Command != "patch" || es[0].State != Crashed || es[0].Seq != 1 {
		t.Errorf("killed command: %+v, want patch seq 1 crashed", es[0])
	}
	if es[1].Command != "verify" || es[1].State != Running || es[1].Seq != 2 {
		t.Errorf("live command: %+v, want verify seq 2 running", es[1])
	}
	code := 0
	if err := live.End(Record{Outcome: OK, Exit: &code}); err != nil {
		t.Fatal(err)
	}
	es, _, _ = d.Read()
	if es[1].State != OK || es[1].End == nil {
		t.Errorf("after End: %+v, want ok with an end time", es[1])
	}
}

func TestTornLastLineIsSkippedAndTheNextLineStaysWhole(t *testing.T) {
	dir := t.TempDir()
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := d.Begin(Record{Command: "query"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.End(Record{Outcome: OK})
	// A crash in the middle of an append leaves half a line.
	f, _ := os.OpenFile(filepath.Join(dir, LogName), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"id":"x","phase":"sta`)
	f.Close()
	r, err = d.Begin(Record{Command: "keys"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.End(Record{Outcome: OK})
	es, probs, err := d.Read()
	if err != nil {
		t.Fatal(err)
	}
	if len(probs) != 1 || probs[0].Line != 3 {
		t.Errorf("problems %v, want one on line 3", probs)
	}
	if len(es) != 2 || es[1].Command != "keys" || es[1].State != OK {
		t.Errorf("entries %+v, want query then keys, both ok", es)
	}
}

func TestConcurrentCommandsNeverInterleave(t *testing.T) {
	dir := t.TempDir()
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	big := strings.Repeat("x", 100<<10) // lines far over any atomic-write size
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := Open(dir) // each as its own command would
			if err != nil {
				errs <- err
				return
			}
			r, err := d.Begin(Record{Command: fmt.Sprintf("c%d", i), Args: []string{big}}, nil)
			if err != nil {
				errs <- err
				return
			}
			errs <- r.End(Record{Outcome: OK, Summary: map[string]any{"i": i}})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, LogName))
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 2*n {
		t.Fatalf("%d lines, want %d", len(lines), 2*n)
	}
	for i, l := range lines {
		var r Record
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
	}
	d, _ := Open(dir)
	es, probs, err := d.Read()
	if err != nil || len(probs) > 0 || len(es) != n {
		t.Fatalf("read: %d entries, %v, %v", len(es), probs, err)
	}
	seen := map[int]bool{}
	for _, e := range es {
		if e.State != OK || seen[e.Seq] || e.Seq < 1 || e.Seq > n {
			t.Errorf("entry %s: seq %d state %s (duplicate or out of range)", e.Command, e.Seq, e.State)
		}
		seen[e.Seq] = true
	}
}
