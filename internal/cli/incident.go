package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/ddbrewind/rewind/internal/incident"
	"github.com/ddbrewind/rewind/recover/patch"
)

// The incident folder (--incident DIR or $REWIND_INCIDENT): Run records
// every runbook command there, around the command's own Run, so that no
// command has to know about it. The per-command part is the table in
// incidentOutputs: what the command's stdout is (a key set, a plan, ...)
// and the default paths it writes besides (a patch's journal).

// incidentFlag is the flag's name; newFlags registers it on every command
// so that -h lists it, and Run takes it off the command line before the
// command parses it.
const incidentFlag = "incident"

// notRecorded are the commands that read the folder rather than act.
var notRecorded = []string{"status", "report"}

// whoTimeout bounds the STS call that names the caller: a command never
// waits on it longer.
const whoTimeout = 3 * time.Second

// takeIncident removes --incident DIR (or -incident, =DIR) from args and
// returns DIR, else $REWIND_INCIDENT.
func takeIncident(env *Env, args []string) (string, []string, error) {
	dir := ""
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != incidentFlag {
			rest = append(rest, a)
			continue
		}
		if !hasVal {
			if i+1 >= len(args) {
				return "", nil, usagef("flag needs an argument: --%s DIR", incidentFlag)
			}
			i++
			val = args[i]
		}
		if val == "" {
			return "", nil, usagef("--%s: empty folder name", incidentFlag)
		}
		dir = val
	}
	if dir == "" && env.Getenv != nil {
		dir = env.Getenv("REWIND_INCIDENT")
	}
	return dir, rest, nil
}

func flagValue(args []string, name string) (string, bool) { return incident.Flag(args, name) }
func boolFlag(args []string, name string) bool            { return incident.BoolFlag(args, name) }

// subcommand is the first word of args when it is not a flag (readonly
// on, keys merge, pitr enable).
func subcommand(args []string) string {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return args[0]
	}
	return ""
}

// incidentOutput says what a command writes in the incident folder.
type incidentOutput struct {
	// Role names the command's stdout: "keys", "plan", "report",
	// "verify", "stdout".
	Role string
	// Ext is the stdout copy's extension.
	Ext string
	// Flags are flags added to the command line when it does not give
	// them: the predictable paths of what it writes besides stdout.
	Flags map[string]string
	// Files are the flags whose value names a file the command writes
	// (hashed at the end).
	Files []string
}

// incidentOutputs is the one per-command table: what each command's
// stdout is and which default paths it gets in the folder. base is the
// folder path plus the command's NNN-command[-sub] prefix.
func incidentOutputs(d *incident.Dir, name, sub string, args []string, entries []incident.Entry, base string) incidentOutput {
	out := incidentOutput{Role: "stdout", Ext: "jsonl"}
	if f, _ := flagValue(args, "format"); f != "" && f != "json" && f != "keyset" {
		out.Ext = "txt"
	}
	switch name {
	case "query":
		if f, _ := flagValue(args, "format"); f == "" || f == "keyset" {
			out.Role = "keys"
		}
	case "keys", "diff":
		// diff's stdout is a key set in either format (--format json
		// adds attributes to each line).
		out.Role, out.Ext = "keys", "jsonl"
	case "stats", "history":
		if f, _ := flagValue(args, "format"); f != "json" {
			out.Ext = "txt"
		}
	case "patch":
		out.Role = "plan"
		if boolFlag(args, "yes") {
			out.Role = "report"
			out.Files = []string{"journal"}
			if _, ok := flagValue(args, "journal"); !ok {
				if boolFlag(args, "resume") {
					// Resume the patch that was cut short: its journal is
					// in the log.
					if j := lastUnfinishedJournal(entries); j != "" {
						out.Flags = map[string]string{"journal": j}
					}
				} else {
					out.Flags = map[string]string{"journal": base + ".journal"}
				}
			}
		}
	case "verify":
		out.Role = "verify"
	case "undo":
		out.Role = "report"
		if boolFlag(args, "yes") {
			out.Files = []string{"undo-journal"}
			if _, ok := flagValue(args, "undo-journal"); !ok {
				out.Flags = map[string]string{"undo-journal": base + ".journal"}
			}
		}
	}
	return out
}

// lastUnfinishedJournal is the journal of the last patch --yes that did
// not end ok: the one a --resume continues.
func lastUnfinishedJournal(entries []incident.Entry) string {
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		if e.Command != "patch" || !boolFlag(e.Args, "yes") {
			continue
		}
		if e.State == incident.OK {
			return ""
		}
		j, _ := flagValue(e.Args, "journal")
		return j
	}
	return ""
}

// runRecorded runs c with args inside the incident folder dir: a start
// line before, stdout copied to the folder, default paths added, an end
// line after with the outcome, hashes and figures.
func runRecorded(ctx context.Context, env *Env, c command, dir string, args []string) (code int) {
	name := c.Name()
	d, err := incident.Open(dir)
	if err != nil {
		fmt.Fprintf(env.Stderr, "rewind %s: %v\n", name, err)
		return exitError
	}
	entries, _, err := d.Read()
	if err != nil {
		fmt.Fprintf(env.Stderr, "rewind %s: %v\n", name, err)
		return exitError
	}
	sub := subcommand(args)
	whoCh := make(chan string, 1)
	whoBy := time.Now().Add(whoTimeout)
	go func() { whoCh <- callerIdentity(ctx, env) }()

	rec := incident.Record{Command: name, User: localUser()}
	rec.Inputs = inputFiles(args)
	var spec incidentOutput
	var base string
	run, err := d.Begin(rec, func(r *incident.Record) {
		// Under the log's lock, with this command's Seq: the names are
		// this command's alone, and the args recorded hold the default
		// paths added.
		base = strings.TrimSuffix(d.File(incident.OutputName(r.Seq, name, sub, "", "x")), "..x")
		spec = incidentOutputs(d, name, sub, args, entries, base)
		for _, f := range slices.Sorted(maps.Keys(spec.Flags)) {
			args = append(args, "--"+f, spec.Flags[f])
		}
		r.Args = args
		words := []string{"rewind", name}
		rest := args
		if sub != "" {
			words, rest = append(words, sub), args[1:]
		}
		r.Line = shellLine(append(append(words, "--incident", d.Path()), rest...))
	})
	if err != nil {
		fmt.Fprintf(env.Stderr, "rewind %s: %v\n", name, err)
		return exitError
	}
	stdoutPath := base + "." + spec.Role + "." + spec.Ext
	copyFile, err := os.Create(stdoutPath)
	if err != nil {
		fmt.Fprintf(env.Stderr, "rewind %s: incident %s: %v\n", name, d.Path(), err)
		return exitError
	}
	counter := &lineStats{}
	origOut := env.Stdout
	env.Stdout = io.MultiWriter(origOut, copyFile, counter)
	env.summarize = func(v any) { counter.reported = v }

	var runErr error
	ended := false
	defer func() {
		env.Stdout, env.summarize = origOut, nil
		if ended {
			return
		}
		// A panic: the record says so, then the panic goes on.
		p := recover()
		copyFile.Close()
		run.End(incident.Record{Outcome: incident.Crashed, Error: fmt.Sprint(p)})
		panic(p)
	}()
	env.incident = d.Path() // so that the commands it prints to continue name the folder too
	code, runErr = runCommand(ctx, env, c, args)
	copyFile.Close()
	ended = true

	end := incident.Record{Exit: &code, Outcome: outcomeOf(code)}
	if runErr != nil && !errors.Is(runErr, flag.ErrHelp) {
		end.Error = runErr.Error()
	}
	end.Outputs = append(end.Outputs, incident.HashFile(spec.Role, stdoutPath))
	for _, f := range spec.Files {
		if p, ok := flagValue(args, f); ok && p != "" {
			if _, err := os.Stat(p); err == nil {
				end.Outputs = append(end.Outputs, incident.HashFile("journal", p))
			}
		}
	}
	end.Summary = counter.summary()
	select {
	case end.Who = <-whoCh:
	case <-time.After(time.Until(whoBy)): // asked at the start: a command longer than the bound never waits
		end.Who = "unknown (STS did not answer within " + whoTimeout.String() + ")"
	}
	if err := run.End(end); err != nil {
		fmt.Fprintf(env.Stderr, "rewind %s: the command ran (exit %d) but its incident record could not be written: %v\n", name, code, err)
		if code == exitOK {
			code = exitError
		}
	}
	return code
}

// outcomeOf names an exit code for the log.
func outcomeOf(code int) string {
	switch code {
	case exitOK:
		return incident.OK
	case exitUsage:
		return incident.Usage
	case exitPartial:
		return incident.Partial
	case exitInterrupted:
		return incident.Interrupted
	}
	return incident.Error
}

// inputFiles hashes the regular files args names (flag values and
// positional arguments): the key sets, plans and journals a command read.
func inputFiles(args []string) []incident.File {
	var out []incident.File
	seen := map[string]bool{}
	for _, a := range args {
		if _, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(a, "-") {
			a = v
		}
		if a == "" || strings.HasPrefix(a, "-") || seen[a] {
			continue
		}
		st, err := os.Stat(a)
		if err != nil || !st.Mode().IsRegular() {
			continue
		}
		seen[a] = true
		abs, err := filepath.Abs(a)
		if err != nil {
			abs = a
		}
		out = append(out, incident.HashFile("input", abs))
	}
	return out
}

// localUser is user@host of the process.
func localUser() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return name + "@" + host
}

// callerIdentity names the AWS caller (STS GetCallerIdentity) within
// whoTimeout, or says why not: "unknown (reason)". STS documents that
// GetCallerIdentity needs no permission (an explicit deny of
// sts:GetCallerIdentity does not stop it), so any role running the
// runbook can be named; it is asked at the start, in parallel with the
// command's own work.
func callerIdentity(ctx context.Context, env *Env) string {
	ctx, cancel := context.WithTimeout(ctx, whoTimeout)
	defer cancel()
	cfg, err := loadAWS(ctx, env)
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	// One attempt: the identity is a nicety, never worth a command's wait.
	out, err := sts.NewFromConfig(cfg, func(o *sts.Options) { o.RetryMaxAttempts = 1 }).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		msg := err.Error()
		if len(msg) > 200 {
			msg = msg[:200] + "…"
		}
		return "unknown (" + msg + ")"
	}
	return aws.ToString(out.Arn)
}

// shellLine quotes words for a POSIX shell.
func shellLine(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = shellQuote(w)
	}
	return strings.Join(q, " ")
}

// lineStats counts a command's stdout as it passes: lines, and lines by
// their "kind", "action" and "status" fields; it keeps the first lines
// whole when there are few (readonly, restore, index print one or two).
type lineStats struct {
	partial  []byte
	lines    int64
	bytes    int64
	kinds    map[string]int64
	actions  map[string]int64
	statuses map[string]int64
	small    []json.RawMessage
	// reported is what the command reported of itself (Env.summarize).
	reported any
}

const keepLines, keepBytes = 20, 32 << 10

func (s *lineStats) Write(p []byte) (int, error) {
	s.bytes += int64(len(p))
	buf := append(s.partial, p...)
	for {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			break
		}
		s.line(buf[:i])
		buf = buf[i+1:]
	}
	s.partial = append(s.partial[:0], buf...)
	return len(p), nil
}

func (s *lineStats) line(b []byte) {
	s.lines++
	keep := s.lines <= keepLines && s.bytes <= keepBytes
	if !keep && !bytes.Contains(b, []byte(`"kind"`)) && !bytes.Contains(b, []byte(`"action"`)) && !bytes.Contains(b, []byte(`"status"`)) {
		return // a key-set line: nothing to count but the line (and no JSON decode per key)
	}
	var l struct {
		Kind   string `json:"kind"`
		Action string `json:"action"`
		Status string `json:"status"`
	}
	if json.Unmarshal(b, &l) != nil {
		return
	}
	count := func(m *map[string]int64, k string) {
		if k == "" {
			return
		}
		if *m == nil {
			*m = map[string]int64{}
		}
		(*m)[k]++
	}
	count(&s.kinds, l.Kind)
	count(&s.actions, l.Action)
	count(&s.statuses, l.Status)
	if keep {
		s.small = append(s.small, json.RawMessage(slices.Clone(b)))
	}
}

func (s *lineStats) summary() map[string]any {
	m := map[string]any{"lines": s.lines}
	if s.kinds != nil {
		m["kinds"] = s.kinds
	}
	if s.actions != nil {
		m["actions"] = s.actions
	}
	if s.statuses != nil {
		m["statuses"] = s.statuses
	}
	if s.lines <= keepLines && s.bytes <= keepBytes && len(s.small) > 0 {
		m["out"] = s.small
	}
	if s.reported != nil {
		m["reported"] = s.reported
	}
	return m
}

// patchFigures is what patch, verify and undo report of themselves to
// the incident log.
type patchFigures struct {
	Tool    string       `json:"tool"`
	DryRun  bool         `json:"dryRun"`
	Outcome string       `json:"outcome"`
	Journal string       `json:"journal,omitempty"`
	Counts  patch.Counts `json:"counts"`
	Run     patch.Counts `json:"run"`
	Elapsed float64      `json:"seconds"`
}

var patchOutcomes = map[patch.Outcome]string{patch.Done: "done", patch.Partial: "partial", patch.Failed: "failed", patch.Interrupted: "interrupted"}

// noteSummary hands a patch summary to the incident log, when the
// command runs in one.
func (e *Env) noteSummary(sum *patch.Summary) {
	if e.summarize == nil || sum == nil {
		return
	}
	e.summarize(patchFigures{
		Tool: sum.Tool, DryRun: sum.DryRun, Outcome: patchOutcomes[sum.Outcome()], Journal: sum.Journal,
		Counts: sum.Counts, Run: sum.Run, Elapsed: sum.Elapsed.Seconds(),
	})
}
