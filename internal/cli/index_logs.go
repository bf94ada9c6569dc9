package cli

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ddbrewind/rewind/indexer"
	"github.com/ddbrewind/rewind/recover/changelog"
)

// indexLogsUsage is the part of index's usage about --logs.
const indexLogsUsage = `
--logs reads an application's change log (package recover/changelog: one
JSON line per item change, "operation":"itemChange") instead of a capture:
  --logs cwlogs:GROUP   from CloudWatch Logs, FilterLogEvents over
                        [--from, --to) (--from required, --to default now),
                        --log-streams a,b narrowing it to those streams
                        (default every stream of the group), selected by
                        --log-filter (default ` + changelog.FilterPattern + `);
  --logs s3://bucket/prefix   from the log group's export to S3
                        (CreateExportTask: <prefix>/<task-id>/<stream>/000000.gz).
Their events carry keys and actions only, no images: query, stats and
history read them; patch --from-history lists their items as unknown, so
patch those from a restored table. Lines that are not change lines are
skipped and counted; change lines that do not parse are listed by stream
or object and line (exit 3; the other lines are indexed).
stdout: after the "index" summary, one "index_logs" line: lines, changes,
skipped, malformed [{where, error}]. AWS_ENDPOINT_URL_CLOUDWATCH_LOGS points
the CloudWatch Logs client elsewhere.`

// logsFlags are index's --logs flags.
type logsFlags struct {
	logs, streams, filter string
	from, to              *timeFlag
}

func (l *logsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&l.logs, "logs", "", "an application change log: cwlogs:GROUP (CloudWatch Logs) or s3://bucket/prefix (its export to S3)")
	fs.StringVar(&l.streams, "log-streams", "", "with --logs cwlogs:GROUP: comma-separated log streams (default every stream)")
	fs.StringVar(&l.filter, "log-filter", "", "with --logs cwlogs:GROUP: the filter pattern (default "+changelog.FilterPattern+")")
	// --from and --to are index's window: when index already defines them
	// (for --source), --logs shares them rather than define them twice.
	bind := func(p **timeFlag, name, usage string) {
		if f := fs.Lookup(name); f != nil {
			if tf, ok := f.Value.(*timeFlag); ok {
				*p = tf
				return
			}
		}
		*p = new(timeFlag)
		fs.Var(*p, name, usage)
	}
	bind(&l.from, "from", "with --logs cwlogs:GROUP: start of the window, inclusive (RFC 3339, epoch seconds or -2h); required")
	bind(&l.to, "to", "with --logs cwlogs:GROUP: end of the window, exclusive (default now)")
}

// check reports a usage error in the --logs flags; other is true when a
// capture, failure or export source was given too.
func (l *logsFlags) check(other bool) error {
	cw := strings.HasPrefix(l.logs, "cwlogs:")
	switch {
	case l.logs == "":
		// --from and --to also window --source: index's own checks.
		if l.streams != "" || l.filter != "" {
			return usagef("--log-streams and --log-filter go with --logs cwlogs:GROUP")
		}
		return nil
	case other:
		return usagef("--logs goes alone: index --source, --failures and --export in another run")
	case !cw && !strings.HasPrefix(l.logs, "s3://"):
		return usagef("--logs %q: want cwlogs:GROUP (CloudWatch Logs) or s3://bucket/prefix (the log group's export to S3)", l.logs)
	case cw && strings.TrimPrefix(l.logs, "cwlogs:") == "":
		return usagef("--logs %q: no log group (want cwlogs:GROUP, such as cwlogs:/aws/lambda/orders-api)", l.logs)
	case !cw && (l.streams != "" || l.filter != "" || l.from.set || l.to.set):
		return usagef("--log-streams, --log-filter, --from and --to go with --logs cwlogs:GROUP; an export to S3 holds the window its task exported")
	case cw && !l.from.set:
		return usagef("--logs %s needs --from (the start of the window to read, such as -2h)", l.logs)
	case l.from.set && l.to.set && !l.to.t.After(l.from.t):
		return usagef("--to %s is not after --from %s", l.to.String(), l.from.String())
	}
	return nil
}

// logsSummary is the "index_logs" stdout line.
type logsSummary struct {
	Source    string         `json:"source"`
	Lines     int64          `json:"lines"`
	Changes   int64          `json:"changes"`
	Skipped   int64          `json:"skipped"`
	Malformed []malformedLog `json:"malformed"`
}

type malformedLog struct {
	Where string `json:"where"`
	Error string `json:"error"`
}

// source returns the log source, its ingest, and what to do after it:
// print the "index_logs" line and say why the run is partial ("" if not).
func (l *logsFlags) source(ctx context.Context, env *Env, s3c *s3.Client, cfg *indexer.Config) (name string, ingest func(*indexer.Store) (indexer.Result, error), after func() (string, error), err error) {
	var src indexer.Source
	var report func() indexer.LogReport
	if group, ok := strings.CutPrefix(l.logs, "cwlogs:"); ok {
		awsCfg, err := loadAWS(ctx, env)
		if err != nil {
			return "", nil, nil, err
		}
		cw := &indexer.CWLogsSource{API: cloudwatchlogs.NewFromConfig(awsCfg), Group: group, Pattern: l.filter, From: l.from.t, To: l.to.t}
		if !l.to.set {
			cw.To = time.Now()
		}
		for _, s := range strings.Split(l.streams, ",") {
			if s = strings.TrimSpace(s); s != "" {
				cw.Streams = append(cw.Streams, s)
			}
		}
		src, report = cw, cw.Report
	} else {
		ex, err := indexer.ParseLogExportSource(l.logs, s3c)
		if err != nil {
			return "", nil, nil, usagef("%v", err)
		}
		src, report = ex, ex.Report
	}
	ingest = func(st *indexer.Store) (indexer.Result, error) { return st.IngestLogs(ctx, src, *cfg) }
	after = func() (string, error) {
		r := report()
		sum := logsSummary{Source: src.Name(), Lines: r.Lines, Changes: r.Changes, Skipped: r.Skipped, Malformed: []malformedLog{}}
		for _, m := range r.Malformed {
			sum.Malformed = append(sum.Malformed, malformedLog{Where: m.Where, Error: m.Err})
			fmt.Fprintf(env.Stderr, "index: %s: malformed change line: %s\n", m.Where, m.Err)
		}
		if err := emitJSON(env.Stdout, "index_logs", sum); err != nil {
			return "", err
		}
		fmt.Fprintf(env.Stderr, "index: %s: %d log lines, %d changes, %d other lines skipped, %d malformed\n", src.Name(), r.Lines, r.Changes, r.Skipped, len(r.Malformed))
		if len(r.Malformed) > 0 {
			return fmt.Sprintf("%s: %d malformed change line(s), not indexed (listed on stdout; fix the application's logging, the other lines are indexed)", src.Name(), len(r.Malformed)), nil
		}
		return "", nil
	}
	return src.Name(), ingest, after, nil
}
