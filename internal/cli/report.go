package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ddbrewind/rewind/indexer"
	"github.com/ddbrewind/rewind/internal/incident"
	"github.com/ddbrewind/rewind/query"
)

func init() { register(&reportCmd{}) }

// reportCmd is `rewind report`: the post-mortem draft of an incident.
type reportCmd struct{}

func (*reportCmd) Name() string { return "report" }
func (*reportCmd) Synopsis() string {
	return "write the incident's post-mortem draft: Markdown, and HTML with the timeline chart"
}

const reportUsage = `--incident DIR [--md FILE] [--html FILE] [--store DIR] [--live=false]

Writes the post-mortem draft of the incident recorded in DIR: Markdown to
paste into the incident channel or a ticket (default DIR/report.md), and
one self-contained HTML file (default DIR/report.html; no network needed to
view it) with an SVG timeline of changes per minute for the tenants hit and
everyone else, the deploy window, the restore point and the read-only
period marked. Both hold the tenants hit, items found, restored, deleted,
unchanged, conflicts, and who ran what and when. Every figure comes from
DIR/log.jsonl, the files its commands wrote and the index store (the one
the log's rewind index used, unless --store says otherwise).

stdout: one JSON object ("kind": "report") with the figures. stderr: where
the files went.`

func (c *reportCmd) Run(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "report", reportUsage)
	md := fs.String("md", "", "Markdown file (default DIR/report.md)")
	html := fs.String("html", "", "HTML file (default DIR/report.html)")
	storeDir := fs.String("store", "", "index store for the timeline (default: the one the log's rewind index wrote, else $REWIND_STORE)")
	live := fs.Bool("live", true, "read the read-only layers now, for the status line")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if env.incident == "" {
		return usagef("report: which incident? give --incident DIR (or set $REWIND_INCIDENT)")
	}
	d, err := incident.Open(env.incident)
	if err != nil {
		return err
	}
	entries, _, err := d.Read()
	if err != nil {
		return err
	}
	st, err := incidentStatus(ctx, env, env.incident, *live)
	if err != nil {
		return err
	}
	r, err := incident.BuildReport(d, entries, st)
	if err != nil {
		return err
	}
	if *storeDir == "" {
		*storeDir = storeOf(env, entries)
	}
	if *storeDir != "" {
		if err := fillTimeline(ctx, env, *storeDir, &r); err != nil {
			return err
		}
	} else {
		r.Warnings = append(r.Warnings, "no index store in the log and no --store: the timeline is empty")
	}
	if *md == "" {
		*md = d.File("report.md")
	}
	if *html == "" {
		*html = d.File("report.html")
	}
	var mb, hb bytes.Buffer
	if err := r.WriteMarkdown(&mb); err != nil {
		return err
	}
	if err := r.WriteHTML(&hb); err != nil {
		return err
	}
	for _, f := range []struct {
		path string
		b    []byte
	}{{*md, mb.Bytes()}, {*html, hb.Bytes()}} {
		if err := writeFileAtomic(f.path, f.b); err != nil {
			return err
		}
	}
	if err := emitJSON(env.Stdout, "report", r); err != nil {
		return err
	}
	fmt.Fprintf(env.Stderr, "report: %s\nreport: %s (open it in a browser)\n", *md, *html)
	return nil
}

// storeOf is the store the log's last rewind index wrote, else the
// default the commands use.
func storeOf(env *Env, entries []incident.Entry) string {
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		if e.Command == "index" || e.Command == "query" || e.Command == "stats" {
			if s, ok := flagValue(e.Args, "store"); ok {
				return e.Path(s)
			}
		}
	}
	if s := env.Getenv("REWIND_STORE"); s != "" {
		return s
	}
	if st, err := os.Stat(defaultStore); err == nil && st.IsDir() {
		return defaultStore
	}
	return ""
}

// fillTimeline counts the changes per minute over the report's window,
// for the tenants hit and for everyone else.
func fillTimeline(ctx context.Context, env *Env, dir string, r *incident.Report) error {
	from, to := r.Window()
	if from.IsZero() {
		return nil
	}
	st, err := indexer.Open(dir, indexer.Options{ReadOnly: true, Log: env.Log})
	if err != nil {
		return fmt.Errorf("report: index store %s: %w (give --store, or run rewind index first)", dir, err)
	}
	defer st.Close()
	q := query.Query{From: from, To: to}
	if r.Table != "" {
		q.Tables = []string{r.Table}
	}
	all, err := query.ComputeStats(ctx, st, q, time.Minute)
	if err != nil {
		return fmt.Errorf("report: timeline from %s: %w", dir, err)
	}
	hit := map[time.Time]int64{}
	if names := r.AffectedTenants(); len(names) > 0 {
		q.Tenants = names
		s, err := query.ComputeStats(ctx, st, q, time.Minute)
		if err != nil {
			return fmt.Errorf("report: timeline of the tenants hit from %s: %w", dir, err)
		}
		for _, b := range s.Timeline {
			hit[b.Start.UTC()] = b.Events
		}
	}
	r.Timeline = r.Timeline[:0]
	for _, b := range all.Timeline {
		a := hit[b.Start.UTC()]
		r.Timeline = append(r.Timeline, incident.Minute{Start: b.Start.UTC(), Affected: a, Others: b.Events - a})
	}
	return nil
}

// writeFileAtomic writes b to path through a temporary file in the same
// folder, so a reader never sees half a report.
func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("report: %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("report: %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("report: %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("report: %s: %w", path, err)
	}
	return nil
}
