package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/ddbrewind/rewind/internal/incident"
)

func init() { register(&statusCmd{}) }

// statusCmd is `rewind status`: where the incident's runbook stands.
type statusCmd struct{}

func (*statusCmd) Name() string { return "status" }
func (*statusCmd) Synopsis() string {
	return "where the incident's runbook stands, what is inconsistent, and the next command to run"
}

const statusUsage = `--incident DIR [--live=false] [--format text|json]

Reads DIR/log.jsonl (every command run with --incident DIR) and says, step
by step, where the runbook stands: index, read-only on (and for whom, read
from SSM and IAM now, not only as logged; --live=false skips that), restore
started or ready, key sets and their sizes, patch planned, applied or
interrupted (with its resume command), verify passed or failed, read-only
lifted. It flags inconsistencies (a patch applied from a key set older than
the newest query, a verify older than the last patch, read-only still on
after a passing verify, a command that crashed) and prints the next command
to run, ready to paste.

stdout: one JSON object ("kind": "status") with the steps, key sets,
warnings and next command. stderr: the same for people. Exit 0 when the
runbook is done, 3 when steps remain or something is inconsistent.`

func (c *statusCmd) Run(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "status", statusUsage)
	live := fs.Bool("live", true, "read the read-only layers from SSM (or AppConfig) and IAM now")
	format := fs.String("format", "text", "text (stderr) or json (the stdout line only)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if env.incident == "" {
		return usagef("status: which incident? give --incident DIR (or set $REWIND_INCIDENT)")
	}
	if *format != "text" && *format != "json" {
		return usagef("--format %q: want text or json", *format)
	}
	st, err := incidentStatus(ctx, env, env.incident, *live)
	if err != nil {
		return err
	}
	if err := emitJSON(env.Stdout, "status", st); err != nil {
		return err
	}
	if *format == "text" {
		renderStatusText(env.Stderr, st)
	}
	if !st.Done {
		return partialf("status: not done: %s", st.NextWhy)
	}
	return nil
}

// incidentStatus reads the folder's log and, when live, the read-only
// layers as they are now, and assesses the runbook.
func incidentStatus(ctx context.Context, env *Env, dir string, live bool) (incident.Status, error) {
	d, err := incident.Open(dir)
	if err != nil {
		return incident.Status{}, err
	}
	entries, problems, err := d.Read()
	if err != nil {
		return incident.Status{}, err
	}
	var ro incident.ReadOnlyNow
	if live {
		ro = readOnlyNow(ctx, env, entries)
	}
	return incident.Assess(d, entries, problems, ro), nil
}

// readOnlyNow runs `readonly status` in process, with the layers the last
// `readonly on` of the log named, and reads its stdout lines.
func readOnlyNow(ctx context.Context, env *Env, entries []incident.Entry) incident.ReadOnlyNow {
	var on *incident.Entry
	for i := len(entries) - 1; i >= 0; i-- {
		if e := entries[i]; e.Command == "readonly" && len(e.Args) > 0 && e.Args[0] == "on" {
			on = &entries[i]
			break
		}
	}
	if on == nil {
		return incident.ReadOnlyNow{} // nothing to read: never turned on here
	}
	args := []string{"status", "--wait", "0", "--layer-timeout", "10s"}
	for _, f := range []string{"parameter", "flags", "policy", "table", "tenant-attribute", "tenant-regex"} {
		if v, ok := flagValue(on.Args, f); ok {
			args = append(args, "--"+f, v)
		}
	}
	i := slices.IndexFunc(commands, func(c command) bool { return c.Name() == "readonly" })
	var out bytes.Buffer
	sub := &Env{Stdout: &out, Stderr: io.Discard, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Getenv: env.Getenv, AWS: env.AWS}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	runErr := commands[i].Run(ctx, sub, args)
	ro := incident.ReadOnlyNow{}
	appOK, iamOK := false, false
	for _, line := range bytes.Split(out.Bytes(), []byte("\n")) {
		var l struct {
			Kind          string   `json:"kind"`
			Outcome       string   `json:"outcome"`
			Reason        string   `json:"reason"`
			Tenants       []string `json:"tenants"`
			Exists        bool     `json:"exists"`
			AttachedRoles []string `json:"attachedRoles"`
			InlineRoles   []string `json:"inlineRoles"`
		}
		if json.Unmarshal(line, &l) != nil {
			continue
		}
		switch {
		case l.Kind == "application" && l.Outcome == "ok":
			appOK, ro.Tenants = true, l.Tenants
		case l.Kind == "iam" && l.Outcome == "ok":
			iamOK = true
			roles := append(l.AttachedRoles, l.InlineRoles...)
			ro.IAM = l.Exists && len(roles) > 0
			if ro.IAM {
				ro.IAMRoles, ro.IAMTenants = roles, l.Tenants
			}
		case l.Outcome == "failed":
			ro.Err = strings.TrimPrefix(ro.Err+"; ", "; ") + l.Kind + " layer: " + l.Reason
		}
	}
	ro.Checked = appOK && iamOK
	if !ro.Checked && ro.Err == "" && runErr != nil {
		ro.Err = runErr.Error()
	}
	return ro
}

// renderStatusText prints the status for people.
func renderStatusText(w io.Writer, st incident.Status) {
	fmt.Fprintf(w, "incident %s\n", st.Folder)
	for _, s := range st.Steps {
		ref := ""
		if s.Seq > 0 {
			ref = fmt.Sprintf(" (#%d)", s.Seq)
		}
		fmt.Fprintf(w, "  %-14s %-12s %s%s\n", s.Name, strings.ToUpper(s.State), s.Detail, ref)
	}
	for _, k := range st.KeySets {
		fmt.Fprintf(w, "  key set #%d %s: %d keys, %s\n", k.Seq, k.Command, k.Keys, k.Path)
	}
	for _, p := range st.Problems {
		fmt.Fprintf(w, "  LOG: %s\n", p)
	}
	for _, x := range st.Warnings {
		fmt.Fprintf(w, "  WARNING: %s\n", x)
	}
	if st.Done {
		fmt.Fprintf(w, "status: done. %s\n", st.NextWhy)
		return
	}
	if st.Next != "" {
		fmt.Fprintf(w, "next: %s\n  %s\n", st.NextWhy, st.Next)
	} else {
		fmt.Fprintf(w, "next: %s\n", st.NextWhy)
	}
}
