package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer"
	"github.com/ddbrewind/rewind/query"
	"github.com/ddbrewind/rewind/query/auditsource"
)

func init() { register(&historyCmd{}) }

// historyCmd is `rewind history`: every change of one item.
type historyCmd struct{}

func (*historyCmd) Name() string { return "history" }
func (*historyCmd) Synopsis() string {
	return "show every change of one item, attribute by attribute"
}

const historyUsage = `--key '{"pk":{"S":"TENANT#acme"},"sk":{"S":"ORDER#42"}}' [--table T] [--store DIR | --audit-table NAME] [--from T] [--to T] [--format table|json]

Lists the item's changes in order (time, then stream sequence number), with
each changed attribute's value before and after. --key is DynamoDB JSON, as
aws dynamodb get-item --key takes it, or a key-set line. --table may be left
out when the store holds one table.

stdout: the history (table for people by default; --format json gives one
JSON line per change). stderr: a summary, and a warning when the store holds
no such table, no change of the item at all, or none in the window. Exit 3
when the history is empty and such a warning was given.

--audit-table NAME reads the item's changes from the audit table's
item-history index instead of the index (--table is then required).

--engine athena reads the item's changes on Amazon Athena over the capture
in S3, as rewind query --engine athena runs (same flags: --location,
--database, --athena-table, --workgroup, --output): the same stdout as the
local index's for the same changes. Exit 3 when it finds none.`

func (c *historyCmd) Run(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "history", historyUsage)
	var store storeFlag
	store.register(fs, env)
	var w windowFlags
	w.register(fs)
	var audit auditFlags
	audit.register(fs)
	keyJSON := fs.String("key", "", "the item's key as DynamoDB JSON, or a key-set line (required)")
	table := fs.String("table", "", "the item's table (default: the store's only table)")
	format := fs.String("format", "table", "table or json")
	var af athenaFlags
	af.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := w.check(); err != nil {
		return err
	}
	if *format != "table" && *format != "json" {
		return usagef("--format %q: want table or json", *format)
	}
	if *keyJSON == "" {
		return usagef("--key is required")
	}
	key, err := rewind.ParseKey([]byte(*keyJSON))
	if err != nil {
		// A key-set line names its table too.
		e, lerr := rewind.ParseKeySetLine([]byte(*keyJSON))
		if lerr != nil {
			return usagef("--key: %v", err)
		}
		key = e.Key
		if *table == "" {
			*table = e.Table
		}
	}
	onAthena, err := af.athena()
	if err != nil {
		return err
	}
	if onAthena {
		if audit.on() {
			return usagef("--engine athena reads the capture Parquet, not the audit table: leave out --audit-table")
		}
		return c.athena(ctx, env, &store, &af, *table, key, &w, *format)
	}
	var st *indexer.Store
	var loaded *auditsource.Loaded
	if audit.on() {
		if *table == "" {
			return usagef("--audit-table needs --table (or a key-set line as --key): the audit table holds every table's changes")
		}
		if loaded, err = audit.loadItem(ctx, env, *table, key, w.from.t, w.to.t); err != nil {
			return err
		}
		defer loaded.Close()
		st = loaded.Store
	} else {
		if st, err = store.open(env, true); err != nil {
			return err
		}
		defer st.Close()
	}
	if *table == "" {
		tables, err := st.Tables()
		if err != nil {
			return err
		}
		if len(tables) != 1 {
			return usagef("--table is required: the store holds %d tables (%s)", len(tables), strings.Join(tables, ", "))
		}
		*table = tables[0]
	}
	changes, err := query.History(ctx, st, *table, key, w.from.t, w.to.t)
	if err != nil {
		return err
	}
	if err := writeHistory(env, *format, *table, key, changes); err != nil {
		return err
	}
	fmt.Fprintf(env.Stderr, "history: %d change(s) of %s %s\n", len(changes), *table, key)
	if loaded != nil {
		err := audit.report(env, "history", loaded, nil, true, len(changes) == 0)
		if err == nil && len(changes) == 0 {
			return partialf("the audit table holds no change of %s %s in the window (its items live TTLDays; older changes are in the capture Parquet)", *table, key)
		}
		return err
	}
	missing, err := query.FindMissingItem(st, *table, key, w.from.t, w.to.t)
	if err != nil {
		return err
	}
	return warnMissing(env, "history", missing, w.from.t, w.to.t, len(changes) == 0)
}

func writeHistory(env *Env, format, table string, key rewind.Key, changes []query.Change) error {
	if format == "json" {
		return query.WriteHistoryJSON(env.Stdout, changes)
	}
	return query.WriteHistoryTable(env.Stdout, table, key, changes)
}

// athena is `rewind history --engine athena`: the item's changes from
// Athena, rendered as the local index's. --table may be left out when the
// projection holds one table.
func (c *historyCmd) athena(ctx context.Context, env *Env, store *storeFlag, af *athenaFlags, table string, key rewind.Key, w *windowFlags, format string) error {
	q := query.Query{From: w.from.t, To: w.to.t}
	if table != "" {
		q.Tables = []string{table}
	}
	e, err := af.open(ctx, env, store, q, "")
	if err != nil {
		return err
	}
	if table == "" {
		if len(e.opts.Tables) != 1 {
			return usagef("--table is required: the capture holds %d tables (%s)", len(e.opts.Tables), strings.Join(e.opts.Tables, ", "))
		}
		table = e.opts.Tables[0]
	}
	changes, res, err := query.AthenaHistory(ctx, e.api, table, key, w.from.t, w.to.t, e.opts, e.run)
	if err != nil {
		return err
	}
	if err := writeHistory(env, format, table, key, changes); err != nil {
		return err
	}
	e.summary(env, "history", fmt.Sprintf("%d change(s) of %s %s", len(changes), table, key), res)
	if len(changes) == 0 {
		return partialf("Athena found no change of %s %s in the window in %s (check --table, --key and the window)", table, key, e.opts.Location)
	}
	return nil
}
