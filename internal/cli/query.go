package cli

import (
	"bufio"
	"context"
	"fmt"
	"time"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/query"
)

func init() { register(&queryCmd{}) }

// queryCmd is `rewind query`: impacted-key sets and matching events.
type queryCmd struct{}

func (*queryCmd) Name() string { return "query" }
func (*queryCmd) Synopsis() string {
	return "print the key set (or the events) matching a window and filters"
}

const queryUsage = `[--store DIR | --audit-table NAME] [--from T] [--to T] [filters] [--format keyset|json|table|athena]

Selects the changes in the window [--from, --to): an event at exactly --to
is left out, so consecutive windows never overlap. Times: RFC 3339 with a
zone (2026-11-20T10:00:00Z), epoch seconds, or relative (-2h, -90m, -3d).
Each filter narrows the result; several values of one filter widen it.

stdout, by --format:
  keyset  (default) the key set: one JSON line per item, sorted by table
          and key, {"table","key","tenant","first","last","count","actions"},
          ready for rewind patch
  json    one JSON line per change, with its old and new images
  table   one line per change, for people
  athena  the Glue table DDL (partition projection on table, dt, hour) and
          the SQL of this key set with its execution parameters: what
          --engine athena creates and runs

--engine athena runs the key set on Amazon Athena over the capture in S3
(--location, default the store's S3 source) instead of the local index:
it creates or updates the Glue table --database.--athena-table through
the Glue API, runs the query in --workgroup with the filters as execution
parameters, prints its state, data scanned and estimated cost to stderr,
and writes the same key set the local index would. Ctrl-C stops the query.
stderr: a summary, and a warning for each table, tenant or window named that
the store holds nothing of, naming what it does hold. Exit 3 when nothing
matched and such a warning was given (most likely a typo); an empty answer
to filters that name only what the store holds exits 0. A WARNING (and,
with --format json, a "kind": "warning" line on stdout) names each capture
failure that overlaps the window and that rewind index --failures listed
but could not index; exit 3.

--audit-table NAME answers from the audit table instead of the index, with
DynamoDB Query calls (per tenant, hour and shard with --tenants, else per
hour and shard of its hour index; never a Scan); it needs --from (--to
defaults to now). The output is the same as from an index of the same
changes. stderr adds the items read and the read capacity consumed, and a
warning for each change whose images were too big for the audit table
(they are in the capture Parquet): exit 3 when the answer reads images
(--format json, --match).`

func (c *queryCmd) Run(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "query", queryUsage)
	var store storeFlag
	store.register(fs, env)
	var qf queryFlags
	qf.register(fs)
	var audit auditFlags
	audit.register(fs)
	format := fs.String("format", "keyset", "keyset, json, table or athena")
	var af athenaFlags
	af.register(fs)
	tmp := fs.String("tmp", "", "directory for the key set's spilled runs when it outgrows memory (default: the system's)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	q, err := qf.query()
	if err != nil {
		return err
	}
	onAthena, err := af.athena()
	if err != nil {
		return err
	}
	switch *format {
	case "keyset":
		if onAthena {
			return athenaKeySet(ctx, env, &store, &af, q, *tmp)
		}
	case "json", "table":
		if onAthena {
			return usagef("--engine athena prints the key set only (--format keyset)")
		}
	case "athena":
		if audit.on() {
			return usagef("--format athena reads the capture Parquet, not the audit table: leave out --audit-table")
		}
		return c.athena(ctx, env, &store, &af, q)
	default:
		return usagef("--format %q: want keyset, json, table or athena", *format)
	}
	store.scan = *format != "json" && len(q.Matches) == 0
	st, loaded, closeStore, err := audit.store(ctx, env, &store, &q)
	if err != nil {
		return err
	}
	defer closeStore()

	start := time.Now()
	var counts query.Counts
	var items int64
	switch *format {
	case "keyset":
		res, err := query.KeySet(ctx, st, q, env.Stdout, query.KeySetOptions{TempDir: *tmp})
		if err != nil {
			return err
		}
		counts, items = res.Counts, res.Items
	default:
		bw := bufio.NewWriterSize(env.Stdout, 64<<10)
		var b []byte
		if *format == "table" {
			bw.WriteString(query.EventTableHeader)
		}
		counts, err = query.Events(ctx, st, q, func(ev *query.Event) error {
			if *format == "table" {
				b, err = query.AppendEventRow(b[:0], ev)
			} else {
				var full rewind.ChangeEvent
				if full, err = ev.Full(); err == nil {
					b, err = query.AppendEventJSON(b[:0], &full)
				}
			}
			if err != nil {
				return err
			}
			_, err := bw.Write(b)
			return err
		})
		if err != nil {
			return err
		}
		if err := bw.Flush(); err != nil {
			return err
		}
	}
	msg := fmt.Sprintf("query: %d change(s) matched of %d scanned", counts.Matched, counts.Scanned)
	if *format == "keyset" {
		msg = fmt.Sprintf("query: %d item(s) from %d change(s) (%d scanned)", items, counts.Matched, counts.Scanned)
	}
	fmt.Fprintf(env.Stderr, "%s in %s\n", msg, time.Since(start).Round(10*time.Microsecond))
	if counts.Undecodable > 0 {
		fmt.Fprintf(env.Stderr, "query: warning: %d undecodable change(s) in the window have no key and are not in the output; see the capture's raw_record column\n", counts.Undecodable)
	}
	if loaded != nil {
		return audit.report(env, "query", loaded, q.Tenants, *format == "json" || len(q.Matches) > 0, counts.Matched == 0)
	}
	return warnStore(env, "query", st, q, counts.Matched == 0, *format == "json")
}

// athena prints the DDL and SQL. The store, when there is one, gives the
// defaults: its S3 source, its tables and its first day.
func (c *queryCmd) athena(ctx context.Context, env *Env, store *storeFlag, af *athenaFlags, q query.Query) error {
	o, err := af.options(ctx, env, store, q, nil)
	if err != nil {
		return err
	}
	sql, err := query.Athena(q, o)
	if err != nil {
		return usagef("%v", err)
	}
	_, err = fmt.Fprint(env.Stdout, sql)
	return err
}
