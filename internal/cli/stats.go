package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/ddbrewind/rewind/indexer"
	"github.com/ddbrewind/rewind/query"
	"github.com/ddbrewind/rewind/query/auditsource"
)

func init() { register(&statsCmd{}) }

// statsCmd is `rewind stats`: change counts per tenant and over time.
type statsCmd struct{}

func (*statsCmd) Name() string { return "stats" }
func (*statsCmd) Synopsis() string {
	return "count changes per tenant and per minute/hour: when did it start, whom did it hit"
}

const statsUsage = `[--store DIR | --audit-table NAME] [--from T] [--to T] [filters] [--bucket auto|1m|1h|...] [--top 20] [--format table|json]

Counts the changes the filters select (the same as rewind query's) per
tenant, by action, and per time bucket, drawn as a histogram so the start of
the damage shows. The timeline spans the whole window when both ends are
given, quiet buckets included; otherwise (--from -2h, say) it spans the
changes counted, from the first to the last.

stdout: the tables (default) or one JSON object (--format json). stderr: a
summary, and a warning for each table, tenant or window named that the store
holds nothing of. Exit 3 when nothing was counted and such a warning was
given; as for rewind query. A WARNING (and, with --format json, a "kind":
"warning" line on stdout after the object) names each capture failure in
the window that rewind index --failures listed but could not index; exit 3.

--audit-table NAME counts from the audit table instead of the index, as
rewind query --audit-table reads it (needs --from; --to defaults to now).

--engine athena counts on Amazon Athena over the capture in S3, as rewind
query --engine athena runs (same flags: --location, --database,
--athena-table, --workgroup, --output): the same stdout as the local
index's for the same changes; its state, data scanned and cost on stderr.`

func (c *statsCmd) Run(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "stats", statsUsage)
	var store storeFlag
	store.register(fs, env)
	var qf queryFlags
	qf.register(fs)
	var audit auditFlags
	audit.register(fs)
	bucketS := fs.String("bucket", "auto", "timeline bucket: auto (a minute up to 6 h, else an hour) or a duration such as 1m, 5m, 1h")
	top := fs.Int("top", 20, "tenants to list, most changes first; 0 lists all")
	width := fs.Int("width", 50, "widest histogram bar, in characters")
	format := fs.String("format", "table", "table or json")
	var af athenaFlags
	af.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	q, err := qf.query()
	if err != nil {
		return err
	}
	var bucket time.Duration
	if *bucketS != "auto" {
		bucket, err = time.ParseDuration(*bucketS)
		if err != nil || bucket < time.Second {
			return usagef("--bucket %q: want auto or a duration of at least 1s", *bucketS)
		}
	}
	switch {
	case *top < 0:
		return usagef("--top %d is negative", *top)
	case *width < 1:
		return usagef("--width %d: want at least 1", *width)
	case *format != "table" && *format != "json":
		return usagef("--format %q: want table or json", *format)
	}
	onAthena, err := af.athena()
	if err != nil {
		return err
	}
	var s *query.Stats
	var ath *athenaEngine
	var res query.AthenaResult
	if onAthena {
		if bucket%time.Millisecond != 0 {
			return usagef("--bucket %s: with --engine athena, want whole milliseconds (Athena reads event times to the millisecond)", bucket)
		}
		if audit.on() {
			return usagef("--engine athena reads the capture Parquet, not the audit table: leave out --audit-table")
		}
		if ath, err = af.open(ctx, env, &store, q, ""); err != nil {
			return err
		}
		if s, res, err = query.AthenaStats(ctx, ath.api, q, bucket, ath.opts, ath.run); err != nil {
			return err
		}
	}
	var st *indexer.Store
	var loaded *auditsource.Loaded
	if s == nil {
		var closeStore func()
		store.scan = len(q.Matches) == 0
		if st, loaded, closeStore, err = audit.store(ctx, env, &store, &q); err != nil {
			return err
		}
		defer closeStore()
		if s, err = query.ComputeStats(ctx, st, q, bucket); err != nil {
			return err
		}
	}
	if *format == "json" {
		err = query.WriteStatsJSON(env.Stdout, s)
	} else {
		err = query.WriteStatsTable(env.Stdout, s, query.StatsTableOptions{Top: *top, Width: *width})
	}
	if err != nil {
		return err
	}
	if ath != nil {
		ath.summary(env, "stats", fmt.Sprintf("%d change(s) in %d tenant(s)", s.Events, len(s.Tenants)), res)
		return nil
	}
	fmt.Fprintf(env.Stderr, "stats: %d change(s) in %d tenant(s)\n", s.Events, len(s.Tenants))
	if loaded != nil {
		return audit.report(env, "stats", loaded, q.Tenants, len(q.Matches) > 0, s.Events == 0)
	}
	return warnStore(env, "stats", st, q, s.Events == 0, *format == "json")
}
