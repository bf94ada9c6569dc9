package incident

import (
	"fmt"
	"html/template"
	"io"
	"strings"
	"sync"
	"time"
)

// The HTML report is one self-contained file: inline CSS and an inline
// SVG chart, no script, nothing fetched, so it opens offline and can be
// attached to a ticket as it is.

// Chart geometry, in SVG user units; the chart is drawn first on the
// page, so a screenshot of the top of the page holds it.
const (
	chartW, chartH          = 1100, 300
	plotX0, plotX1          = 60, 1080
	plotY0, plotY1          = 44, 250
	colourAffected          = "#d62728"
	colourOthers            = "#7f8c8d"
	colourDeploy            = "#ff9f1c"
	colourReadOnly          = "#1f77b4"
	colourRestore           = "#2ca02c"
	svgTextStyle            = `font-family="sans-serif" font-size="12"`
	minuteLabelEveryMinutes = 5
)

// TimelineSVG draws the changes per minute, stacked (everyone else below,
// the tenants hit above), with the deploy window and the read-only period
// as bands and the restore point as a line.
func (r *Report) TimelineSVG() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="changes per minute">`, chartW, chartH, chartW, chartH)
	p(`<rect x="0" y="0" width="%d" height="%d" fill="#ffffff"/>`, chartW, chartH)
	n := len(r.Timeline)
	if n == 0 {
		p(`<text x="%d" y="%d" %s>no changes in the store for this window</text></svg>`, plotX0, plotY1/2, svgTextStyle)
		return b.String()
	}
	start := r.Timeline[0].Start
	end := r.Timeline[n-1].Start.Add(time.Minute)
	span := end.Sub(start).Seconds()
	x := func(t time.Time) float64 {
		f := t.Sub(start).Seconds() / span
		return plotX0 + min(max(f, 0), 1)*(plotX1-plotX0)
	}
	var top int64 = 1
	for _, m := range r.Timeline {
		top = max(top, m.Affected+m.Others)
	}
	y := func(v int64) float64 { return plotY1 - float64(v)/float64(top)*(plotY1-plotY0) }
	band := func(from, to *time.Time, colour, label string, row int) {
		if from == nil {
			return
		}
		t1 := end
		if to != nil {
			t1 = *to
		}
		x0, x1 := x(*from), x(t1)
		// Stream records may be stamped to the minute (DynamoDB Local
		// does): a band is at least the minute it starts in.
		x1 = max(x1, x(from.Truncate(time.Minute).Add(time.Minute)))
		p(`<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s" fill-opacity="0.18"/>`, x0, plotY0, x1-x0, plotY1-plotY0, colour)
		p(`<text x="%.1f" y="%d" fill="%s" %s>%s</text>`, x0, 14+14*row, colour, svgTextStyle, template.HTMLEscapeString(label))
	}
	band(r.DeployFrom, r.DeployTo, colourDeploy, "deploy", 0)
	band(r.ReadOnlyFrom, r.ReadOnlyTo, colourReadOnly, "read-only", 1)
	bw := (plotX1 - plotX0) / float64(n)
	for _, m := range r.Timeline {
		x0 := x(m.Start) + bw*0.1
		w := bw * 0.8
		if m.Others > 0 {
			p(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %d by everyone else</title></rect>`, x0, y(m.Others), w, plotY1-y(m.Others), colourOthers, m.Start.Format("15:04"), m.Others)
		}
		if m.Affected > 0 {
			p(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %d by the tenants hit</title></rect>`, x0, y(m.Others+m.Affected), w, y(m.Others)-y(m.Others+m.Affected), colourAffected, m.Start.Format("15:04"), m.Affected)
		}
	}
	if r.RestorePoint != nil {
		rx := x(*r.RestorePoint)
		p(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="2" stroke-dasharray="5,3"/>`, rx, plotY0, rx, plotY1, colourRestore)
		p(`<text x="%.1f" y="%d" fill="%s" %s>restore point</text>`, rx+3, 42, colourRestore, svgTextStyle)
	}
	// Axes.
	p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>`, plotX0, plotY1, plotX1, plotY1)
	p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>`, plotX0, plotY0, plotX0, plotY1)
	p(`<text x="%d" y="%d" text-anchor="end" %s>%d</text>`, plotX0-4, plotY0+4, svgTextStyle, top)
	p(`<text x="%d" y="%d" text-anchor="end" %s>0</text>`, plotX0-4, plotY1+4, svgTextStyle)
	every := max(1, n/12)
	for i, m := range r.Timeline {
		if i%every != 0 && i != n-1 {
			continue
		}
		p(`<text x="%.1f" y="%d" text-anchor="middle" %s>%s</text>`, x(m.Start)+bw/2, plotY1+16, svgTextStyle, m.Start.UTC().Format("15:04"))
	}
	// Legend.
	lx := plotX0
	for _, l := range [][2]string{{colourAffected, "tenants hit"}, {colourOthers, "everyone else"}, {colourDeploy, "deploy window"}, {colourReadOnly, "read-only"}, {colourRestore, "restore point"}} {
		p(`<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d" %s>%s</text>`, lx, chartH-22, l[0], lx+16, chartH-12, svgTextStyle, l[1])
		lx += 150
	}
	p(`<text x="%d" y="%d" text-anchor="end" %s>changes per minute (UTC)</text>`, plotX1, chartH-12, svgTextStyle)
	p(`</svg>`)
	return b.String()
}

// htmlReport is parsed on first use, not in package init: every command of
// the CLI links this package, and only `rewind report --html` needs it.
var htmlReport = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("report").Funcs(template.FuncMap{"ts": ts, "tsv": func(t time.Time) string { return ts(&t) }}).Parse(htmlReportText))
})

const htmlReportText = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Incident report: {{.R.Table}}</title>
<style>
body{font-family:sans-serif;margin:16px 24px;color:#222;max-width:1140px}
h1{font-size:22px;margin:0 0 6px}
h2{font-size:17px;margin:22px 0 8px}
table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
td.n{text-align:right}
code{font-size:12px;word-break:break-all}
.warn{color:#b00}
</style></head><body>
<h1>Incident report: {{.R.Table}}</h1>
<div id="timeline">{{.SVG}}</div>
<h2>Summary</h2>
<ul>
<li>Runbook: {{.R.Status}}</li>
<li>Tenants hit: {{len .R.Tenants}} ({{.Names}})</li>
<li>Items found: {{.R.Found}}</li>
<li>Restored: {{.R.Restore}}, deleted: {{.R.Delete}}, unchanged: {{.R.Unchanged}}, absent: {{.R.Absent}}, conflicts: {{.R.Conflicts}}, failures: {{.R.Failures}} (writes: {{.R.Written}})</li>
<li>Verify: {{.R.Verify}}</li>
<li>Deploy window: {{ts .R.DeployFrom}} to {{ts .R.DeployTo}}</li>
<li>Restore point: {{ts .R.RestorePoint}}</li>
<li>Read-only: {{ts .R.ReadOnlyFrom}} to {{ts .R.ReadOnlyTo}} ({{.R.ReadOnlyTenants}})</li>
<li>Changes in the chart: {{.Affected}} by the tenants hit, {{.Others}} by everyone else</li>
{{range .R.Warnings}}<li class="warn">WARNING: {{.}}</li>{{end}}
</ul>
<h2>Tenants hit</h2>
<table><tr><th>Tenant</th><th>Items found</th><th>Restored</th><th>Deleted</th><th>Unchanged</th><th>Absent</th></tr>
{{range .R.Tenants}}<tr><td>{{.Tenant}}</td><td class="n">{{.Keys}}</td><td class="n">{{.Restore}}</td><td class="n">{{.Delete}}</td><td class="n">{{.Unchanged}}</td><td class="n">{{.Absent}}</td></tr>
{{end}}</table>
<h2>Who ran what</h2>
<table><tr><th>#</th><th>Start (UTC)</th><th>End (UTC)</th><th>Who</th><th>Command</th><th>Outcome</th></tr>
{{range .R.Commands}}<tr><td class="n">{{.Seq}}</td><td>{{tsv .Start}}</td><td>{{ts .End}}</td><td>{{.Who}}</td><td><code>{{.Line}}</code></td><td>{{.Outcome}}</td></tr>
{{end}}</table>
<p>Written by <code>rewind report</code> from {{.R.Folder}}; every figure comes from the log and the index store.</p>
</body></html>
`

// WriteHTML writes the report as one self-contained HTML file.
func (r *Report) WriteHTML(w io.Writer) error {
	affected, others := r.Totals()
	return htmlReport().Execute(w, map[string]any{
		"R":        r,
		"SVG":      template.HTML(r.TimelineSVG()),
		"Names":    strings.Join(r.AffectedTenants(), ", "),
		"Affected": affected,
		"Others":   others,
	})
}
