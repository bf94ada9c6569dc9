package incident

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"
)

// Minute is one bucket of the report's timeline: the changes the store
// holds for the tenants hit and for everyone else.
type Minute struct {
	Start    time.Time `json:"start"`
	Affected int64     `json:"affected"`
	Others   int64     `json:"others"`
}

// TenantRow is one tenant hit: its keys in the patched key set and what
// the plan did with them.
type TenantRow struct {
	Tenant    string `json:"tenant"`
	Keys      int64  `json:"keys"`
	Restore   int64  `json:"restore"`
	Delete    int64  `json:"delete"`
	Unchanged int64  `json:"unchanged"`
	Absent    int64  `json:"absent"`
}

// CommandRow is one command of the log.
type CommandRow struct {
	Seq     int        `json:"seq"`
	Command string     `json:"command"`
	Line    string     `json:"line"`
	Who     string     `json:"who"`
	User    string     `json:"user"`
	Start   time.Time  `json:"start"`
	End     *time.Time `json:"end,omitempty"`
	Outcome string     `json:"outcome"`
}

// Report is the post-mortem's figures, all from the log, the files its
// commands wrote and the store: none typed in.
type Report struct {
	Folder string `json:"folder"`
	Table  string `json:"table"`
	// Tenants hit: those of the patched key set.
	Tenants []TenantRow `json:"tenants"`
	// KeySet is the key set the patch took; Found its keys.
	KeySet string `json:"keySet"`
	Found  int64  `json:"found"`
	// The last apply's totals (a resumed patch counts the runs before).
	Restore   int64 `json:"restore"`
	Delete    int64 `json:"delete"`
	Unchanged int64 `json:"unchanged"`
	Absent    int64 `json:"absent"`
	Written   int64 `json:"written"`
	Conflicts int64 `json:"conflicts"`
	Failures  int64 `json:"failures"`
	// Verify is "passed", "failed", or "not run".
	Verify string `json:"verify"`
	// Deploy is the first to the last change of the impacted keys.
	DeployFrom *time.Time `json:"deployFrom,omitempty"`
	DeployTo   *time.Time `json:"deployTo,omitempty"`
	// RestorePoint is the time the wanted state was taken as of.
	RestorePoint *time.Time `json:"restorePoint,omitempty"`
	// ReadOnly is when read-only went on and off (the commands' ends).
	ReadOnlyFrom    *time.Time `json:"readOnlyFrom,omitempty"`
	ReadOnlyTo      *time.Time `json:"readOnlyTo,omitempty"`
	ReadOnlyTenants string     `json:"readOnlyTenants,omitempty"`
	// Timeline is filled by the caller from the store over Window.
	Timeline []Minute     `json:"timeline"`
	Commands []CommandRow `json:"commands"`
	Status   string       `json:"status"`
	Warnings []string     `json:"warnings"`
}

// BuildReport gathers the report's figures from the log's entries and
// the files they name; Timeline is left for the caller (see Window).
func BuildReport(d *Dir, entries []Entry, st Status) (Report, error) {
	r := Report{Folder: d.Path(), Table: guessTable(entries), Verify: "not run", Warnings: st.Warnings, Timeline: []Minute{}}
	if st.Done {
		r.Status = "done"
	} else {
		r.Status = "not done: " + st.NextWhy
	}
	for _, e := range entries {
		r.Commands = append(r.Commands, CommandRow{e.Seq, commandWords(e), e.Line, e.Who, e.User, e.Start, e.End, e.State})
	}
	var apply *Entry
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		if e.Command == "patch" && BoolFlag(e.Args, "yes") && (e.State == OK || e.State == Partial) {
			apply = &entries[i]
			break
		}
	}
	var ks *KeySet
	if apply != nil {
		ks = inputKeySet(entries, *apply)
		c := Figures(*apply)
		r.Restore, r.Delete, r.Unchanged, r.Absent = c["restore"], c["delete"], c["unchanged"], c["absent"]
		r.Written, r.Conflicts, r.Failures = c["written"], c["conflicts"], c["failures"]
		if at, ok := Flag(apply.Args, "at"); ok {
			if t, err := time.Parse(time.RFC3339Nano, at); err == nil {
				r.RestorePoint = &t
			}
		}
	}
	if ks == nil && len(st.KeySets) > 0 {
		ks = &st.KeySets[len(st.KeySets)-1]
	}
	for _, s := range st.Steps {
		if s.Name == StepVerify {
			switch s.State {
			case Done:
				r.Verify = "passed"
			case Failed:
				r.Verify = "failed"
			}
		}
	}
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		if e.Command == "restore" && !BoolFlag(e.Args, "cleanup") && (e.State == OK || e.State == Partial) && r.RestorePoint == nil {
			if t, err := time.Parse(time.RFC3339Nano, valueOr(e.Args, "time", "")); err == nil {
				r.RestorePoint = &t
			}
		}
	}
	for _, e := range entries {
		if e.Command != "readonly" || len(e.Args) == 0 || e.End == nil || (e.State != OK && e.State != Partial) {
			continue
		}
		switch e.Args[0] {
		case "on":
			if r.ReadOnlyFrom == nil {
				r.ReadOnlyFrom = e.End
				r.ReadOnlyTenants = valueOr(e.Args, "tenants", "")
				if BoolFlag(e.Args, "all") {
					r.ReadOnlyTenants = "every tenant"
				}
			}
		case "off":
			if r.ReadOnlyFrom != nil {
				r.ReadOnlyTo = e.End
			}
		}
	}
	if ks != nil {
		r.KeySet, r.Found = ks.Path, ks.Keys
		plan := ""
		if apply != nil {
			if p, ok := Flag(apply.Args, "plan"); ok {
				plan = apply.Path(p)
			}
		}
		if err := r.readKeySet(ks.Path, plan); err != nil {
			return r, err
		}
	}
	return r, nil
}

// readKeySet fills the tenants and the deploy window from the key set,
// and the per-tenant actions from the plan (when the patch took one).
func (r *Report) readKeySet(path, plan string) error {
	type ident struct{ table, key string }
	tenantOf := map[ident]string{}
	rows := map[string]*TenantRow{}
	err := eachLine(path, func(b []byte) error {
		var l struct {
			Table  string          `json:"table"`
			Key    json.RawMessage `json:"key"`
			Tenant string          `json:"tenant"`
			First  time.Time       `json:"first"`
			Last   time.Time       `json:"last"`
		}
		if err := json.Unmarshal(b, &l); err != nil {
			return err
		}
		tenantOf[ident{l.Table, compact(l.Key)}] = l.Tenant
		row := rows[l.Tenant]
		if row == nil {
			row = &TenantRow{Tenant: l.Tenant}
			rows[l.Tenant] = row
		}
		row.Keys++
		if !l.First.IsZero() && (r.DeployFrom == nil || l.First.Before(*r.DeployFrom)) {
			t := l.First
			r.DeployFrom = &t
		}
		if !l.Last.IsZero() && (r.DeployTo == nil || l.Last.After(*r.DeployTo)) {
			t := l.Last
			r.DeployTo = &t
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("report: key set %s: %w", path, err)
	}
	if plan != "" {
		err := eachLine(plan, func(b []byte) error {
			var l struct {
				Table  string          `json:"table"`
				Key    json.RawMessage `json:"key"`
				Action string          `json:"action"`
			}
			if err := json.Unmarshal(b, &l); err != nil {
				return err
			}
			row := rows[tenantOf[ident{l.Table, compact(l.Key)}]]
			if row == nil {
				return nil
			}
			switch l.Action {
			case "restore":
				row.Restore++
			case "delete":
				row.Delete++
			case "unchanged":
				row.Unchanged++
			case "absent":
				row.Absent++
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("report: plan %s: %w", plan, err)
		}
	}
	r.Tenants = r.Tenants[:0]
	for _, row := range rows {
		r.Tenants = append(r.Tenants, *row)
	}
	sort.Slice(r.Tenants, func(i, j int) bool { return r.Tenants[i].Tenant < r.Tenants[j].Tenant })
	return nil
}

func compact(b []byte) string {
	var buf bytes.Buffer
	if json.Compact(&buf, b) != nil {
		return string(b)
	}
	return buf.String()
}

func eachLine(path string, fn func([]byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	n := 0
	for sc.Scan() {
		n++
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		if err := fn(sc.Bytes()); err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
	}
	return sc.Err()
}

// AffectedTenants are the tenants hit, by name.
func (r *Report) AffectedTenants() []string {
	var out []string
	for _, t := range r.Tenants {
		out = append(out, t.Tenant)
	}
	return out
}

// Window is the span the timeline should cover, whole minutes: from five
// minutes before the earliest of the deploy, the restore point and the
// first command to three minutes after the last command.
func (r *Report) Window() (from, to time.Time) {
	var ts []time.Time
	for _, t := range []*time.Time{r.DeployFrom, r.DeployTo, r.RestorePoint, r.ReadOnlyFrom, r.ReadOnlyTo} {
		if t != nil {
			ts = append(ts, *t)
		}
	}
	for _, c := range r.Commands {
		ts = append(ts, c.Start)
		if c.End != nil {
			ts = append(ts, *c.End)
		}
	}
	if len(ts) == 0 {
		return time.Time{}, time.Time{}
	}
	lo, hi := slices.MinFunc(ts, time.Time.Compare), slices.MaxFunc(ts, time.Time.Compare)
	return lo.Truncate(time.Minute).Add(-5 * time.Minute), hi.Truncate(time.Minute).Add(3 * time.Minute)
}

// Totals returns the timeline's changes for the tenants hit and for
// everyone else.
func (r *Report) Totals() (affected, others int64) {
	for _, m := range r.Timeline {
		affected += m.Affected
		others += m.Others
	}
	return
}

func ts(t *time.Time) string {
	if t == nil {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func (r *Report) events() [][2]string {
	type ev struct {
		t    time.Time
		what string
	}
	var evs []ev
	add := func(t *time.Time, what string) {
		if t != nil {
			evs = append(evs, ev{*t, what})
		}
	}
	add(r.DeployFrom, "first change by the deploy to an impacted item")
	add(r.DeployTo, "last change to an impacted item")
	add(r.RestorePoint, "restore point (the wanted state is as of this time)")
	add(r.ReadOnlyFrom, "read-only on for "+r.ReadOnlyTenants)
	add(r.ReadOnlyTo, "read-only off")
	for _, c := range r.Commands {
		switch {
		case c.Command == "restore" && c.End != nil:
			add(c.End, fmt.Sprintf("restore (#%d, %s)", c.Seq, c.Outcome))
		case c.Command == "patch" && c.End != nil && strings.Contains(c.Line, " --yes"):
			add(c.End, fmt.Sprintf("patch applied (#%d, %s)", c.Seq, c.Outcome))
		case c.Command == "verify" && c.End != nil:
			add(c.End, fmt.Sprintf("verify (#%d, %s)", c.Seq, c.Outcome))
		}
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].t.Before(evs[j].t) })
	out := make([][2]string, len(evs))
	for i, e := range evs {
		out[i] = [2]string{ts(&e.t), e.what}
	}
	return out
}

// mdCell escapes a Markdown table cell.
func mdCell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

// WriteMarkdown writes the post-mortem draft as Markdown.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	names := r.AffectedTenants()
	affected, others := r.Totals()
	p("# Incident report: %s\n\n", orDash(r.Table))
	p("Draft written by `rewind report` from the incident folder's log (%s) and the index store: every figure below comes from them.\n\n", LogName)
	p("## Summary\n\n")
	p("- Runbook: %s\n", r.Status)
	p("- Tenants hit: %d (%s)\n", len(names), orDash(strings.Join(names, ", ")))
	p("- Items found: %d\n", r.Found)
	p("- Restored: %d, deleted: %d, unchanged: %d, absent: %d, conflicts: %d, failures: %d (writes: %d)\n", r.Restore, r.Delete, r.Unchanged, r.Absent, r.Conflicts, r.Failures, r.Written)
	p("- Verify: %s\n", r.Verify)
	p("- Deploy window (first to last change of the impacted items): %s to %s\n", ts(r.DeployFrom), ts(r.DeployTo))
	p("- Restore point: %s\n", ts(r.RestorePoint))
	p("- Read-only: %s to %s (%s)\n", ts(r.ReadOnlyFrom), ts(r.ReadOnlyTo), orDash(r.ReadOnlyTenants))
	p("- Changes in the timeline's window: %d by the tenants hit, %d by everyone else\n", affected, others)
	for _, x := range r.Warnings {
		p("- WARNING: %s\n", x)
	}
	p("\n## Tenants hit\n\n| Tenant | Items found | Restored | Deleted | Unchanged | Absent |\n| --- | ---: | ---: | ---: | ---: | ---: |\n")
	for _, t := range r.Tenants {
		p("| %s | %d | %d | %d | %d | %d |\n", mdCell(t.Tenant), t.Keys, t.Restore, t.Delete, t.Unchanged, t.Absent)
	}
	p("\n## Timeline\n\n| Time (UTC) | Event |\n| --- | --- |\n")
	for _, e := range r.events() {
		p("| %s | %s |\n", e[0], mdCell(e[1]))
	}
	p("\n## Who ran what\n\n| # | Start (UTC) | End (UTC) | Who | Command | Outcome |\n| ---: | --- | --- | --- | --- | --- |\n")
	for _, c := range r.Commands {
		p("| %d | %s | %s | %s | `%s` | %s |\n", c.Seq, ts(&c.Start), ts(c.End), mdCell(orDash(c.Who)), mdCell(c.Line), c.Outcome)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}
