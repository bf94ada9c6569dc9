package incident

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Steps of the runbook, in order, as Status names them.
const (
	StepIndex       = "index"
	StepReadOnlyOn  = "read-only on"
	StepRestore     = "restore"
	StepKeySets     = "key sets"
	StepPlan        = "patch planned"
	StepApply       = "patch applied"
	StepVerify      = "verify"
	StepReadOnlyOff = "read-only off"
)

// Step states.
const (
	Done             = "done"
	Todo             = "todo"
	Started          = "started"
	Failed           = "failed"
	Skipped          = "skipped"
	StateRunning     = "running"
	StateInterrupted = "interrupted"
)

// ReadOnlyNow is the read-only layers as they are now, read from SSM (or
// AppConfig) and IAM by the caller (rewind readonly status), not as the
// log says they were set.
type ReadOnlyNow struct {
	// Checked is false when they were not read (Err says why).
	Checked bool     `json:"checked"`
	Err     string   `json:"error,omitempty"`
	Tenants []string `json:"tenants"` // the application layer's list; "all" is every tenant
	// IAM is true when the deny policy is attached to a role.
	IAM        bool     `json:"iam"`
	IAMRoles   []string `json:"iamRoles,omitempty"`
	IAMTenants []string `json:"iamTenants,omitempty"`
}

// On reports whether either layer still freezes anyone.
func (r ReadOnlyNow) On() bool { return len(r.Tenants) > 0 || r.IAM }

// Step is one runbook step's state.
type Step struct {
	Name   string `json:"step"`
	State  string `json:"state"`
	Detail string `json:"detail,omitempty"`
	// Seq is the command that settled it, 0 for none.
	Seq int `json:"seq,omitempty"`
}

// KeySet is a key set a command wrote in the folder.
type KeySet struct {
	Seq     int       `json:"seq"`
	Command string    `json:"command"`
	Path    string    `json:"path"`
	Keys    int64     `json:"keys"`
	SHA256  string    `json:"sha256"`
	At      time.Time `json:"at"`
}

// Status is where the runbook stands.
type Status struct {
	Folder   string      `json:"folder"`
	Steps    []Step      `json:"steps"`
	KeySets  []KeySet    `json:"keySets"`
	ReadOnly ReadOnlyNow `json:"readOnlyNow"`
	// Warnings are inconsistencies between the steps.
	Warnings []string `json:"warnings"`
	// Next is the next command to run, ready to paste ("" when done);
	// NextWhy says why.
	Next    string `json:"next,omitempty"`
	NextWhy string `json:"nextWhy,omitempty"`
	// Done is true when every step is done and nothing is inconsistent.
	Done bool `json:"done"`
	// Crashed and Running list commands by Seq.
	Crashed  []int    `json:"crashed,omitempty"`
	Running  []int    `json:"running,omitempty"`
	Problems []string `json:"logProblems,omitempty"`
}

// Assess works out the runbook's state from the log's entries and the
// read-only layers as they are now.
func Assess(d *Dir, entries []Entry, problems []Problem, ro ReadOnlyNow) Status {
	st := Status{Folder: d.Path(), ReadOnly: ro, Warnings: []string{}, KeySets: []KeySet{}}
	for _, p := range problems {
		st.Problems = append(st.Problems, p.String())
	}
	in := func(args ...string) string {
		words, rest := []string{"rewind", args[0]}, args[1:]
		if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
			words, rest = append(words, rest[0]), rest[1:]
		}
		return strings.Join(append(append(words, "--incident", shellQuote(d.Path())), rest...), " ")
	}
	for _, e := range entries {
		switch e.State {
		case Crashed:
			st.Crashed = append(st.Crashed, e.Seq)
			st.Warnings = append(st.Warnings, fmt.Sprintf("#%d `%s` crashed (started %s, no end recorded)", e.Seq, e.Line, e.Start.Format(time.RFC3339)))
		case Running:
			st.Running = append(st.Running, e.Seq)
		}
	}
	last := func(match func(Entry) bool) *Entry {
		for i := len(entries) - 1; i >= 0; i-- {
			if match(entries[i]) {
				return &entries[i]
			}
		}
		return nil
	}
	is := func(cmd, sub string) func(Entry) bool {
		return func(e Entry) bool {
			return e.Command == cmd && (sub == "" || len(e.Args) > 0 && e.Args[0] == sub)
		}
	}
	ran := func(e Entry) bool { return e.State == OK || e.State == Partial }
	table := guessTable(entries)

	// 1. index
	idx := last(func(e Entry) bool { return is("index", "")(e) && ran(e) })
	if idx != nil {
		st.Steps = append(st.Steps, Step{StepIndex, Done, "indexed " + summaryOut(*idx, "index", "total_events") + " events in the store", idx.Seq})
	} else {
		st.Steps = append(st.Steps, Step{Name: StepIndex, State: Todo})
	}

	// 2. read-only on, as logged and as it is now
	on := last(func(e Entry) bool { return is("readonly", "on")(e) && ran(e) })
	off := last(func(e Entry) bool { return is("readonly", "off")(e) && ran(e) })
	if on != nil {
		who := "tenants " + valueOr(on.Args, "tenants", "")
		if BoolFlag(on.Args, "all") {
			who = "every tenant"
		}
		detail := "turned on for " + who + " at " + on.End.Format(time.RFC3339)
		if ro.Checked {
			detail += "; now: " + ro.words()
		}
		state := Done
		if on.State == Partial {
			state, detail = Failed, detail+" (INCOMPLETE: a layer did not freeze)"
		}
		st.Steps = append(st.Steps, Step{StepReadOnlyOn, state, detail, on.Seq})
	} else {
		st.Steps = append(st.Steps, Step{Name: StepReadOnlyOn, State: Todo})
	}

	// 3. restore (not needed when the patch takes the history)
	rs := last(func(e Entry) bool { return is("restore", "")(e) && !BoolFlag(e.Args, "cleanup") && ran(e) })
	restored := ""
	fromHistory := last(func(e Entry) bool { return is("patch", "")(e) && BoolFlag(e.Args, "from-history") }) != nil
	switch {
	case rs != nil:
		restored = summaryOut(*rs, "restore", "targetTable")
		state, detail := Started, "restore into "+restored+" started (rerun with --wait, or `rewind restore` status, before patching)"
		if summaryHas(*rs, "restored") {
			state, detail = Done, restored+" is ready (as of "+valueOr(rs.Args, "time", "?")+")"
		}
		st.Steps = append(st.Steps, Step{StepRestore, state, detail, rs.Seq})
	case fromHistory:
		st.Steps = append(st.Steps, Step{StepRestore, Skipped, "patching from the indexed history (--from-history)", 0})
	default:
		st.Steps = append(st.Steps, Step{Name: StepRestore, State: Todo})
	}

	// 4. key sets
	for _, e := range entries {
		if !ran(e) {
			continue
		}
		for _, o := range e.Outputs {
			if o.Role == "keys" {
				st.KeySets = append(st.KeySets, KeySet{e.Seq, commandWords(e), o.Path, o.Lines, o.SHA256, *e.End})
			}
		}
	}
	if n := len(st.KeySets); n > 0 {
		k := st.KeySets[n-1]
		st.Steps = append(st.Steps, Step{StepKeySets, Done, fmt.Sprintf("%d key set(s); newest #%d %s: %d keys", n, k.Seq, k.Command, k.Keys), k.Seq})
	} else {
		st.Steps = append(st.Steps, Step{Name: StepKeySets, State: Todo})
	}

	// 5. patch planned (a dry run)
	plan := last(func(e Entry) bool { return is("patch", "")(e) && !BoolFlag(e.Args, "yes") && ran(e) })
	if plan != nil {
		st.Steps = append(st.Steps, Step{StepPlan, Done, "plan " + outputPath(*plan, "plan") + ": " + planWords(*plan), plan.Seq})
	} else {
		st.Steps = append(st.Steps, Step{Name: StepPlan, State: Todo})
	}

	// 6. patch applied
	apply := last(func(e Entry) bool { return is("patch", "")(e) && BoolFlag(e.Args, "yes") && e.State != Usage })
	resume := ""
	if apply != nil {
		j, _ := Flag(apply.Args, "journal")
		limit, _ := Flag(apply.Args, "limit")
		limited := limit != "" && limit != "0"
		switch {
		case limited && (apply.State == OK || apply.State == Partial):
			resume = in(append(append([]string{"patch"}, quoteAll(dropFlags(apply.Args, "journal", "resume", "limit"))...), "--resume", "--journal", shellQuote(j))...)
			st.Steps = append(st.Steps, Step{StepApply, Started, "applied to the first " + limit + " keys (--limit): " + planWords(*apply) + "; to patch the rest: " + resume, apply.Seq})
		case apply.State == OK:
			st.Steps = append(st.Steps, Step{StepApply, Done, "applied: " + planWords(*apply) + "; journal " + j, apply.Seq})
		case apply.State == Partial:
			st.Steps = append(st.Steps, Step{StepApply, Done, "applied with keys not done: " + planWords(*apply) + "; journal " + j, apply.Seq})
		case apply.State == Running:
			st.Steps = append(st.Steps, Step{StepApply, StateRunning, "running since " + apply.Start.Format(time.RFC3339) + "; journal " + j, apply.Seq})
		default:
			resume = in(append(append([]string{"patch"}, quoteAll(dropFlags(apply.Args, "journal", "resume"))...), "--resume", "--journal", shellQuote(j))...)
			st.Steps = append(st.Steps, Step{StepApply, StateInterrupted, apply.State + " at " + endOrStart(*apply) + "; journal " + j + "; to continue: " + resume, apply.Seq})
		}
	} else {
		st.Steps = append(st.Steps, Step{Name: StepApply, State: Todo})
	}

	// 7. verify
	vf := last(func(e Entry) bool { return is("verify", "")(e) && e.State != Usage && e.State != Running })
	verified := false
	if vf != nil {
		switch vf.State {
		case OK:
			verified = true
			st.Steps = append(st.Steps, Step{StepVerify, Done, fmt.Sprintf("passed: all %d impacted items equal their wanted state", Figures(*vf)["keys"]), vf.Seq})
		case Partial:
			st.Steps = append(st.Steps, Step{StepVerify, Failed, fmt.Sprintf("FAILED: %d item(s) differ, listed in %s", summaryLines(*vf), outputPath(*vf, "verify")), vf.Seq})
		default:
			st.Steps = append(st.Steps, Step{StepVerify, Failed, "did not finish (" + vf.State + ")", vf.Seq})
		}
	} else {
		st.Steps = append(st.Steps, Step{Name: StepVerify, State: Todo})
	}

	// 8. read-only off
	liftedLogged := off != nil && (on == nil || off.Seq > on.Seq)
	switch {
	case ro.Checked && on != nil && !ro.On():
		st.Steps = append(st.Steps, Step{StepReadOnlyOff, Done, "both layers off now", seqOf(off)})
	case ro.Checked && ro.On():
		st.Steps = append(st.Steps, Step{StepReadOnlyOff, Todo, "still on: " + ro.words(), seqOf(off)})
	case liftedLogged:
		st.Steps = append(st.Steps, Step{StepReadOnlyOff, Done, "lifted at " + off.End.Format(time.RFC3339) + " (as logged; the layers were not read now)", off.Seq})
	default:
		st.Steps = append(st.Steps, Step{Name: StepReadOnlyOff, State: Todo})
	}
	if !ro.Checked && ro.Err != "" {
		st.Warnings = append(st.Warnings, "the read-only layers could not be read now: "+ro.Err)
	}

	if plan == nil && apply != nil {
		for i := range st.Steps {
			if st.Steps[i].Name == StepPlan {
				st.Steps[i].State, st.Steps[i].Detail = Skipped, "the patch was applied without a dry run in this incident"
			}
		}
	}
	// Steps before the patch that were never run, while the patch was:
	// the engineer took another road (keys and a restored table from
	// elsewhere); they are skipped, not owed.
	if plan != nil || apply != nil || vf != nil {
		for i := range st.Steps {
			s := &st.Steps[i]
			switch s.Name {
			case StepIndex, StepReadOnlyOn, StepRestore, StepKeySets:
				if s.State == Todo {
					s.State, s.Detail = Skipped, "not run in this incident"
				}
			case StepReadOnlyOff:
				if s.State == Todo && on == nil && !(ro.Checked && ro.On()) {
					s.State, s.Detail = Skipped, "read-only was not turned on in this incident"
				}
			}
		}
	}

	// Inconsistencies.
	if apply != nil && len(st.KeySets) > 0 {
		used, sha := inputKeySet(entries, *apply), patchKeySetHash(entries, *apply)
		newest := st.KeySets[len(st.KeySets)-1]
		switch {
		case used != nil && newest.Seq > used.Seq && newest.SHA256 != used.SHA256:
			st.Warnings = append(st.Warnings, fmt.Sprintf("patch #%d applied key set #%d (%s), but #%d (%s) is newer: the newer query may find keys the patch left out; plan and patch from it", apply.Seq, used.Seq, used.Command, newest.Seq, newest.Command))
		case used == nil && newest.SHA256 != sha:
			st.Warnings = append(st.Warnings, fmt.Sprintf("patch #%d applied a key set from outside the folder, not the newest key set #%d (%s, %d keys): plan and patch from it if it is the right one", apply.Seq, newest.Seq, newest.Command, newest.Keys))
		}
	}
	if vf != nil && apply != nil && vf.Start.Before(endTime(*apply)) {
		st.Warnings = append(st.Warnings, fmt.Sprintf("verify #%d is older than patch #%d: verify again", vf.Seq, apply.Seq))
		verified = false
	}
	if verified && ro.Checked && ro.On() {
		st.Warnings = append(st.Warnings, "read-only is still on after a passing verify: "+ro.words())
	}

	// The next command.
	keys := "<key set>"
	if n := len(st.KeySets); n > 0 {
		keys = shellQuote(st.KeySets[n-1].Path)
	} else if p := last(func(e Entry) bool {
		_, ok := Flag(e.Args, "keys")
		return (e.Command == "patch" || e.Command == "verify") && ok
	}); p != nil {
		k, _ := Flag(p.Args, "keys")
		keys = shellQuote(p.Path(k))
	}
	if restored == "" || restored == "?" {
		if p := last(func(e Entry) bool {
			_, ok := Flag(e.Args, "from")
			return (e.Command == "patch" || e.Command == "verify") && ok
		}); p != nil {
			restored, _ = Flag(p.Args, "from")
		}
	}
	source := "--from " + orPlaceholder(restored, "<restored table>")
	if fromHistory {
		p := last(func(e Entry) bool { return is("patch", "")(e) && BoolFlag(e.Args, "from-history") })
		source = "--from-history --at " + shellQuote(valueOr(p.Args, "at", "<time before the deploy>"))
		if s, ok := Flag(p.Args, "store"); ok {
			source += " --store " + shellQuote(s)
		}
	}
	to := orPlaceholder(table, "<table>")
	stepState := func(name string) string {
		for _, s := range st.Steps {
			if s.Name == name {
				return s.State
			}
		}
		return ""
	}
	switch {
	case stepState(StepIndex) == Todo:
		st.Next, st.NextWhy = in("index", "--source", "s3://<capture bucket>/<prefix>"), "index the capture to see what happened"
	case stepState(StepReadOnlyOn) == Todo:
		st.Next, st.NextWhy = in("readonly", "on", "--table", to, "--roles", "<application roles>", "--tenants", "<tenants hit>"), "freeze the tenants hit (rewind stats shows them)"
	case stepState(StepReadOnlyOn) == Failed:
		st.Next, st.NextWhy = in(append([]string{"readonly"}, quoteAll(on.Args)...)...), "a read-only layer did not freeze: run it again (each layer is idempotent)"
	case stepState(StepRestore) == Todo:
		st.Next, st.NextWhy = in("restore", "--table", to, "--time", "<just before the deploy>", "--no-indexes", "--wait"), "restore the table as it was before the deploy (or patch --from-history)"
	case stepState(StepKeySets) == Todo:
		st.Next, st.NextWhy = in("query", "--tables", to, "--from", "<deploy start>", "--match", "new.deployVersion=<bad version>"), "find the impacted keys"
	case stepState(StepPlan) == Todo:
		st.Next, st.NextWhy = in("patch", "--keys", keys, source, "--to", to), "plan the patch (a dry run writes nothing)"
	case stepState(StepApply) == StateInterrupted:
		st.Next, st.NextWhy = resume, "the patch was cut short: continue it from its journal"
	case stepState(StepApply) == Started:
		st.Next, st.NextWhy = resume, "the patch ran on part of the plan (--limit): patch the rest"
	case stepState(StepApply) == StateRunning:
		st.Next, st.NextWhy = "", fmt.Sprintf("patch #%d is running; run status again when it ends", apply.Seq)
	case stepState(StepApply) == Todo:
		st.Next, st.NextWhy = in("patch", "--plan", shellQuote(outputPath(*plan, "plan")), source, "--to", to, "--yes"), "apply the reviewed plan"
	case !verified:
		st.Next, st.NextWhy = in("verify", "--keys", keys, source, "--to", to), "check every impacted item against its wanted state"
	case stepState(StepReadOnlyOff) == Todo:
		st.Next, st.NextWhy = in("readonly", "off"), "verify passed: open writes again"
	default:
		st.Done = len(st.Crashed) == 0 || stepState(StepApply) == Done
		st.NextWhy = "done: write the post-mortem with " + in("report")
	}
	if st.Done {
		for _, w := range st.Warnings {
			if !strings.Contains(w, "crashed") {
				st.Done = false
			}
		}
	}
	return st
}

func (r ReadOnlyNow) words() string {
	var parts []string
	if len(r.Tenants) > 0 {
		parts = append(parts, "application layer freezes "+strings.Join(r.Tenants, ", "))
	} else {
		parts = append(parts, "application layer off")
	}
	if r.IAM {
		who := "every tenant"
		if len(r.IAMTenants) > 0 {
			who = strings.Join(r.IAMTenants, ", ")
		}
		parts = append(parts, "IAM deny on for "+who+" (roles "+strings.Join(r.IAMRoles, ", ")+")")
	} else {
		parts = append(parts, "IAM deny off")
	}
	return strings.Join(parts, "; ")
}

// patchKeySetHash is the hash of the key set a patch took: its --keys
// input, or the --keys input of the dry run that wrote its --plan.
func patchKeySetHash(entries []Entry, p Entry) string {
	sha := inputHash(p, "keys")
	if sha == "" {
		if dry := byOutputHash(entries, "plan", inputHash(p, "plan")); dry != nil {
			sha = inputHash(*dry, "keys")
		}
	}
	return sha
}

// byOutputHash is the last entry that wrote a file of role with hash sha.
func byOutputHash(entries []Entry, role, sha string) *Entry {
	for i := len(entries) - 1; i >= 0 && sha != ""; i-- {
		for _, o := range entries[i].Outputs {
			if o.Role == role && o.SHA256 == sha {
				return &entries[i]
			}
		}
	}
	return nil
}

// inputHash is the hash of the input file e's --flag named.
func inputHash(e Entry, flag string) string {
	v, _ := Flag(e.Args, flag)
	if v == "" {
		return ""
	}
	v = e.Path(v)
	for _, in := range e.Inputs {
		if in.Path == v {
			return in.SHA256
		}
	}
	return ""
}

// inputKeySet is the key set a patch took, followed through its plan: the
// folder's key set whose hash is the patch's --keys input, or the --keys
// input of the dry run that wrote its --plan.
func inputKeySet(entries []Entry, p Entry) *KeySet {
	if e := byOutputHash(entries, "keys", patchKeySetHash(entries, p)); e != nil {
		for _, o := range e.Outputs {
			if o.Role == "keys" {
				return &KeySet{e.Seq, commandWords(*e), o.Path, o.Lines, o.SHA256, endTime(*e)}
			}
		}
	}
	return nil
}

func guessTable(entries []Entry) string {
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		switch e.Command {
		case "patch", "verify", "undo":
			if v, ok := Flag(e.Args, "to"); ok {
				return v
			}
		case "readonly", "restore", "pitr":
			if v, ok := Flag(e.Args, "table"); ok {
				return v
			}
		}
	}
	return ""
}

func commandWords(e Entry) string {
	w := e.Command
	if len(e.Args) > 0 && !strings.HasPrefix(e.Args[0], "-") {
		w += " " + e.Args[0]
	}
	return w
}

func outputPath(e Entry, role string) string {
	for _, o := range e.Outputs {
		if o.Role == role {
			return o.Path
		}
	}
	return ""
}

// Figures returns the counts a patch, verify or undo reported of itself
// (nil when none).
func Figures(e Entry) map[string]int64 {
	r, ok := e.Summary["reported"].(map[string]any)
	if !ok {
		return nil
	}
	c, ok := r["counts"].(map[string]any)
	if !ok {
		return nil
	}
	out := map[string]int64{}
	for k, v := range c {
		if f, ok := v.(float64); ok {
			out[k] = int64(f)
		}
	}
	return out
}

func planWords(e Entry) string {
	c := Figures(e)
	if c == nil {
		return fmt.Sprintf("%d lines", summaryLines(e))
	}
	s := fmt.Sprintf("%d keys: restore %d, delete %d, unchanged %d, absent %d", c["keys"], c["restore"], c["delete"], c["unchanged"], c["absent"])
	if BoolFlag(e.Args, "yes") || e.Command == "undo" {
		s += fmt.Sprintf("; written %d, conflicts %d, failures %d", c["written"], c["conflicts"], c["failures"])
	}
	return s
}

func summaryLines(e Entry) int64 {
	if f, ok := e.Summary["lines"].(float64); ok {
		return int64(f)
	}
	return 0
}

// summaryOut is field of the first stdout line of kind the command kept
// in its summary, as text ("?" when absent).
func summaryOut(e Entry, kind, field string) string {
	for _, l := range SummaryLines(e) {
		if l["kind"] == kind {
			if v, ok := l[field]; ok {
				return fmt.Sprint(v)
			}
		}
	}
	return "?"
}

func summaryHas(e Entry, kind string) bool {
	for _, l := range SummaryLines(e) {
		if l["kind"] == kind {
			return true
		}
	}
	return false
}

// SummaryLines are the stdout lines the log kept whole (short outputs).
func SummaryLines(e Entry) []map[string]any {
	raw, ok := e.Summary["out"].([]any)
	if !ok {
		return nil
	}
	var out []map[string]any
	for _, r := range raw {
		if m, ok := r.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func valueOr(args []string, name, def string) string {
	if v, ok := Flag(args, name); ok {
		return v
	}
	return def
}

func orPlaceholder(v, p string) string {
	if v == "" || v == "?" {
		return p
	}
	return shellQuote(v)
}

func seqOf(e *Entry) int {
	if e == nil {
		return 0
	}
	return e.Seq
}

func endTime(e Entry) time.Time {
	if e.End != nil {
		return *e.End
	}
	return e.Start
}

func endOrStart(e Entry) string { return endTime(e).Format(time.RFC3339) }

// dropFlags removes the flags names (with their values) from args.
func dropFlags(args []string, names ...string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		n, _, hasVal := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		if strings.HasPrefix(args[i], "-") && slices.Contains(names, n) {
			if !hasVal && n != "resume" && i+1 < len(args) {
				i++
			}
			continue
		}
		out = append(out, args[i])
	}
	return out
}

func quoteAll(ws []string) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = shellQuote(w)
	}
	return out
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
