// Package incident keeps one folder per incident: an append-only log of
// every runbook command run against it (log.jsonl), the outputs those
// commands wrote there under predictable names, and what `rewind status`
// and `rewind report` read back.
//
// The main entry points are Open (the folder), Log.Begin and Run.End
// (one command's record) and Read (the log back, with crashed commands
// told apart from running ones).
//
// Each command appends two lines: a "start" line before it does anything
// and an "end" line after, both with the same ID. Appends take an
// exclusive flock on log.jsonl, write one whole line and fsync, so
// commands run at once in several terminals never interleave their lines.
// While a command runs it holds an flock on running/<id>.lock; the kernel
// drops that lock when the process dies, so a start line with no end line
// and no lock held is a command that crashed (Entry.State "crashed"),
// while one whose lock is still held is running.
package incident

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// LogName is the log's file name inside the incident folder.
const LogName = "log.jsonl"

// runningDir holds one lock file per command in flight.
const runningDir = "running"

// Phases of a log line.
const (
	PhaseStart = "start"
	PhaseEnd   = "end"
)

// Outcomes of a command, as the end line says (and "crashed" for a start
// line that never got one).
const (
	OK          = "ok"
	Error       = "error"
	Usage       = "usage"
	Partial     = "partial"
	Interrupted = "interrupted"
	Crashed     = "crashed"
	Running     = "running"
)

// File is one input or output of a command, by content hash.
type File struct {
	// Role says what the file is to the command: "input", "keys",
	// "plan", "report", "verify", "journal", "stdout".
	Role string `json:"role"`
	Path string `json:"path"`
	// SHA256 is the hex SHA-256 of the content; "" when it could not be
	// read (Error says why).
	SHA256 string `json:"sha256,omitempty"`
	Bytes  int64  `json:"bytes"`
	// Lines is the number of newline-terminated lines.
	Lines int64  `json:"lines"`
	Error string `json:"error,omitempty"`
}

// Record is one log line.
type Record struct {
	// ID is the same on a command's start and end lines.
	ID    string `json:"id"`
	Phase string `json:"phase"`
	// Seq numbers the commands of the incident from 1 in the order they
	// started; the output files are named after it.
	Seq     int      `json:"seq"`
	Command string   `json:"command"`
	Args    []string `json:"args"`
	// Line is the command line, quoted for a POSIX shell.
	Line  string    `json:"line"`
	Start time.Time `json:"start"`
	// End is set on end lines.
	End *time.Time `json:"end,omitempty"`
	// User is the local user and host; Who the AWS caller identity (STS
	// GetCallerIdentity), or "unknown (reason)".
	User string `json:"user,omitempty"`
	// Cwd is the directory the command ran in: relative paths in Args
	// are relative to it.
	Cwd     string `json:"cwd,omitempty"`
	Who     string `json:"who,omitempty"`
	PID     int    `json:"pid"`
	Inputs  []File `json:"inputs,omitempty"`
	Outputs []File `json:"outputs,omitempty"`
	// Outcome and Exit are set on end lines.
	Outcome string `json:"outcome,omitempty"`
	Exit    *int   `json:"exit,omitempty"`
	Error   string `json:"error,omitempty"`
	// Summary holds the command's figures: "lines" (stdout lines),
	// counts by "kind", "action" and "status", and what the command
	// reported of itself (a patch's counts).
	Summary map[string]any `json:"summary,omitempty"`
}

// Dir is an incident folder.
type Dir struct {
	path string
}

// Open returns the incident folder at path, creating it (and its log)
// when it does not exist.
func Open(path string) (*Dir, error) {
	if path == "" {
		return nil, errors.New("incident: no folder given (--incident DIR or $REWIND_INCIDENT)")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("incident %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Join(abs, runningDir), 0o755); err != nil {
		return nil, fmt.Errorf("incident %s: make the folder: %w (check the path and its permissions)", abs, err)
	}
	f, err := os.OpenFile(filepath.Join(abs, LogName), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("incident %s: open %s: %w", abs, LogName, err)
	}
	f.Close()
	return &Dir{path: abs}, nil
}

// Path is the folder's absolute path.
func (d *Dir) Path() string { return d.path }

// File returns the path of name inside the folder.
func (d *Dir) File(name string) string { return filepath.Join(d.path, name) }

// Run is one command's record in flight: End closes it.
type Run struct {
	dir  *Dir
	rec  Record
	lock *os.File
}

// Record is the start line as written (ID, Seq, Start set).
func (r *Run) Record() Record { return r.rec }

// Begin appends rec's start line, filling ID, Seq, Phase, PID and Start
// (when zero), and takes the command's running lock. prepare, when not
// nil, is called with the line's Seq set, under the log's lock, before the
// line is written: it may name files after the Seq (no other command can
// get the same one) and change the record.
func (d *Dir) Begin(rec Record, prepare func(*Record)) (*Run, error) {
	rec.Phase = PhaseStart
	if rec.Start.IsZero() {
		rec.Start = time.Now().UTC()
	}
	if rec.PID == 0 {
		rec.PID = os.Getpid()
	}
	if rec.Cwd == "" {
		rec.Cwd, _ = os.Getwd()
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("incident %s: id: %w", d.path, err)
	}
	rec.ID = rec.Start.Format("20060102T150405.000Z") + "-" + hex.EncodeToString(b[:])
	lock, err := os.OpenFile(filepath.Join(d.path, runningDir, rec.ID+".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("incident %s: running lock: %w", d.path, err)
	}
	if err := flock(lock, true); err != nil {
		lock.Close()
		return nil, fmt.Errorf("incident %s: running lock %s: %w", d.path, lock.Name(), err)
	}
	err = d.appendLocked(func(existing []byte) ([]byte, error) {
		rec.Seq = countStarts(existing) + 1
		if prepare != nil {
			prepare(&rec)
		}
		return json.Marshal(rec)
	})
	if err != nil {
		unlock(lock)
		lock.Close()
		os.Remove(lock.Name())
		return nil, err
	}
	return &Run{dir: d, rec: rec, lock: lock}, nil
}

// End appends the end line: rec's Outcome, Exit, Error, Outputs,
// Summary and Who go with the start line's ID, Seq, command and Start.
// The running lock is released whatever happens.
func (r *Run) End(rec Record) error {
	defer func() {
		unlock(r.lock)
		r.lock.Close()
		os.Remove(r.lock.Name())
	}()
	end := time.Now().UTC()
	if rec.End != nil {
		end = *rec.End
	}
	out := r.rec
	out.Phase, out.End = PhaseEnd, &end
	out.Outcome, out.Exit, out.Error = rec.Outcome, rec.Exit, rec.Error
	out.Outputs, out.Summary, out.Who = rec.Outputs, rec.Summary, rec.Who
	if rec.Inputs != nil {
		out.Inputs = rec.Inputs
	}
	return r.dir.appendLocked(func([]byte) ([]byte, error) { return json.Marshal(out) })
}

// appendLocked appends the line line returns (given the log so far) under
// an exclusive lock on the log, then fsyncs. A log whose last line was
// cut short by a crash gets a newline first, so the new line stays whole.
func (d *Dir) appendLocked(line func(existing []byte) ([]byte, error)) error {
	path := filepath.Join(d.path, LogName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("incident log %s: %w", path, err)
	}
	defer f.Close()
	if err := flock(f, true); err != nil {
		return fmt.Errorf("incident log %s: lock: %w", path, err)
	}
	defer unlock(f)
	existing, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<62))
	if err != nil {
		return fmt.Errorf("incident log %s: read: %w", path, err)
	}
	b, err := line(existing)
	if err != nil {
		return fmt.Errorf("incident log %s: encode: %w", path, err)
	}
	var buf []byte
	if len(existing) > 0 && existing[len(existing)-1] != '\n' {
		buf = append(buf, '\n')
	}
	buf = append(append(buf, b...), '\n')
	if _, err := f.Write(buf); err != nil {
		return fmt.Errorf("incident log %s: append: %w (the folder's disk may be full)", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("incident log %s: fsync: %w", path, err)
	}
	return nil
}

func countStarts(log []byte) int {
	n := 0
	for _, line := range bytes.Split(log, []byte("\n")) {
		if bytes.Contains(line, []byte(`"phase":"start"`)) {
			n++
		}
	}
	return n
}

// Entry is one command as the log tells it: its start line merged with
// its end line.
type Entry struct {
	Record
	// State is the Outcome of a finished command, Running while its lock
	// is held, or Crashed: a start line, no end line, no lock.
	State string `json:"state"`
}

// Problem is a log line that could not be read.
type Problem struct {
	Line int    `json:"line"`
	Err  string `json:"error"`
}

func (p Problem) String() string { return fmt.Sprintf("log.jsonl line %d: %s", p.Line, p.Err) }

// Read returns the incident's commands in the order they started, and the
// lines it could not read (a line cut short by a crash mid-write, or
// edited by hand), which are skipped.
func (d *Dir) Read() ([]Entry, []Problem, error) {
	path := filepath.Join(d.path, LogName)
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("incident log %s: %w (is it an incident folder? run a command with --incident first)", path, err)
	}
	defer f.Close()
	byID := map[string]*Entry{}
	var order []string
	var problems []Problem
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	n := 0
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var rec Record
		if err := json.Unmarshal(line, &rec); err != nil || rec.ID == "" {
			if err == nil {
				err = errors.New("no id")
			}
			problems = append(problems, Problem{n, err.Error()})
			continue
		}
		e := byID[rec.ID]
		switch rec.Phase {
		case PhaseStart:
			if e == nil {
				e = &Entry{}
				byID[rec.ID] = e
				order = append(order, rec.ID)
			}
			if e.Phase != PhaseEnd {
				e.Record = rec
			}
		case PhaseEnd:
			if e == nil {
				e = &Entry{}
				byID[rec.ID] = e
				order = append(order, rec.ID)
			}
			e.Record = rec
		default:
			problems = append(problems, Problem{n, fmt.Sprintf("unknown phase %q", rec.Phase)})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, problems, fmt.Errorf("incident log %s: line %d: %w", path, n+1, err)
	}
	out := make([]Entry, 0, len(order))
	for _, id := range order {
		e := byID[id]
		switch {
		case e.Phase == PhaseEnd:
			e.State = e.Outcome
		case d.lockHeld(id):
			e.State = Running
		default:
			e.State = Crashed
		}
		out = append(out, *e)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Seq != out[j].Seq {
			return out[i].Seq < out[j].Seq
		}
		return out[i].Start.Before(out[j].Start)
	})
	return out, problems, nil
}

// lockHeld reports whether the command id still holds its running lock.
func (d *Dir) lockHeld(id string) bool {
	f, err := os.OpenFile(filepath.Join(d.path, runningDir, id+".lock"), os.O_RDWR, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := flock(f, false); err != nil {
		return true
	}
	unlock(f)
	// Left behind by a crashed command: nobody holds it.
	os.Remove(f.Name())
	return false
}

// HashFile returns path's SHA-256, size and line count, with role.
// A file it cannot read comes back with Error set.
func HashFile(role, path string) File {
	out := File{Role: role, Path: path}
	f, err := os.Open(path)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	defer f.Close()
	h := sha256.New()
	lc := &lineCounter{}
	n, err := io.Copy(io.MultiWriter(h, lc), f)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	out.SHA256, out.Bytes, out.Lines = hex.EncodeToString(h.Sum(nil)), n, lc.n
	return out
}

type lineCounter struct{ n int64 }

func (c *lineCounter) Write(p []byte) (int, error) {
	c.n += int64(bytes.Count(p, []byte("\n")))
	return len(p), nil
}

// OutputName is the predictable name of a command's output in the
// folder: NNN-command[-sub].role.ext, NNN the command's Seq.
func OutputName(seq int, command, sub, role, ext string) string {
	name := fmt.Sprintf("%03d-%s", seq, command)
	if sub != "" {
		name += "-" + sub
	}
	return name + "." + role + "." + strings.TrimPrefix(ext, ".")
}

// Path resolves p, a path in e's Args, against the directory e ran in.
func (e Entry) Path(p string) string {
	if p == "" || filepath.IsAbs(p) || e.Cwd == "" {
		return p
	}
	return filepath.Join(e.Cwd, p)
}
