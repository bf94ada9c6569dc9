package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/athena"
	"github.com/aws/aws-sdk-go-v2/service/glue"
	"github.com/ddbrewind/rewind/indexer"
	"github.com/ddbrewind/rewind/query"
)

// athenaFlags are the flags of --engine athena (and --format athena).
type athenaFlags struct {
	engine    *string
	location  *string
	table     *string
	database  *string
	workgroup *string
	output    *string
	poll      *time.Duration
}

func (f *athenaFlags) register(fs *flag.FlagSet) {
	f.engine = fs.String("engine", "local", "local (the index in --store) or athena (Athena over the capture in S3, through a Glue table rewind keeps)")
	f.location = fs.String("location", "", "with --engine athena or --format athena: the capture prefix s3://bucket/prefix (default: the S3 source the store was indexed from)")
	f.table = fs.String("athena-table", query.DefaultAthenaTable, "with --engine athena or --format athena: the Glue table (or database.table) to create or update")
	f.database = fs.String("database", query.DefaultAthenaDatabase, "with --engine athena or --format athena: the Glue database")
	f.workgroup = fs.String("workgroup", "primary", "with --engine athena: the Athena workgroup that runs the query")
	f.output = fs.String("output", "", "with --engine athena: the s3:// query result location (default: the workgroup's)")
	f.poll = fs.Duration("athena-poll", time.Second, "with --engine athena: how often the query's state is read")
}

// athena reports whether --engine athena was asked for; any other engine
// than local or athena is a usage error.
func (f *athenaFlags) athena() (bool, error) {
	switch *f.engine {
	case "local", "":
		return false, nil
	case "athena":
		return true, nil
	}
	return false, usagef("--engine %q: want local or athena", *f.engine)
}

// options resolves the Glue table's options: the location from the flag
// or the store, the projected tables from the store, the capture prefix
// (when lister is set) and --tables, the first day from the store.
func (f *athenaFlags) options(ctx context.Context, env *Env, store *storeFlag, q query.Query, lister query.PrefixLister) (query.AthenaOptions, error) {
	db, tbl := *f.database, *f.table
	if d, t, ok := strings.Cut(tbl, "."); ok {
		db, tbl = d, t
	}
	if db == "" || tbl == "" {
		return query.AthenaOptions{}, usagef("--athena-table %q, --database %q: want a table and a database", *f.table, *f.database)
	}
	o := query.AthenaOptions{Database: db, Table: tbl, Location: *f.location, Tables: slices.Clone(q.Tables)}
	st, err := store.open(env, true)
	switch {
	case err == nil:
		defer st.Close()
		o, err = query.AthenaDefaults(st, o)
		if errors.Is(err, query.ErrAthenaLocation) {
			return o, usagef("give --location s3://bucket/prefix: %v", err)
		}
		if err != nil {
			return o, err
		}
	case errors.Is(err, indexer.ErrNoStore):
		if o.Location == "" {
			return o, usagef("without a store, --location s3://bucket/prefix names the capture")
		}
	default:
		return o, err
	}
	if lister != nil {
		tables, err := query.CaptureTables(ctx, lister, o.Location, 0)
		if err != nil {
			return o, err
		}
		o.Tables = slices.Compact(slices.Sorted(slices.Values(append(o.Tables, tables...))))
	}
	if len(o.Tables) == 0 {
		return o, usagef("no source tables to project: %s holds no table=<name>/ folders and --tables names none", o.Location)
	}
	return o, nil
}

// athenaEngine is what every question on --engine athena needs: the
// Athena client, the Glue table (created or updated, with a line on
// stderr), and the run options with the query's progress on stderr.
type athenaEngine struct {
	api   *athena.Client
	opts  query.AthenaOptions
	run   query.AthenaRunOptions
	start time.Time
}

// open keeps the Glue table and readies the run options; q's tables
// join the projection.
func (f *athenaFlags) open(ctx context.Context, env *Env, store *storeFlag, q query.Query, tmp string) (*athenaEngine, error) {
	cfg, err := loadAWS(ctx, env)
	if err != nil {
		return nil, err
	}
	s3c := newS3(cfg, env)
	o, err := f.options(ctx, env, store, q, s3c)
	if err != nil {
		return nil, err
	}
	action, err := query.EnsureAthenaTable(ctx, glue.NewFromConfig(cfg), o, 0)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(env.Stderr, "athena: Glue table %s.%s over %s: %s (%d table(s) projected)\n", o.Database, o.Table, o.Location, action, len(o.Tables))
	var lastState string
	var lastShown time.Time
	e := &athenaEngine{api: athena.NewFromConfig(cfg), opts: o, start: time.Now()}
	e.run = query.AthenaRunOptions{
		Workgroup: *f.workgroup, Output: *f.output, Poll: *f.poll, TempDir: tmp, Results: s3c,
		// A line when the state changes, else every 5 s.
		Progress: func(p query.AthenaProgress) {
			if p.State == lastState && time.Since(lastShown) < 5*time.Second {
				return
			}
			lastState, lastShown = p.State, time.Now()
			fmt.Fprintf(env.Stderr, "athena: query %s %s, %s scanned (about $%.4f at $%.2f/TB), %s\n",
				p.QueryID, p.State, humanBytes(p.Scanned), p.CostUSD, query.DefaultAthenaPricePerTB, p.Elapsed.Round(time.Millisecond))
		},
	}
	return e, nil
}

// summary is the stderr line after the answer: what, from which query,
// at what cost.
func (e *athenaEngine) summary(env *Env, cmd, what string, res query.AthenaResult) {
	for _, w := range res.Warnings {
		fmt.Fprintf(env.Stderr, "%s: warning: %s\n", cmd, w)
	}
	from := fmt.Sprintf("%d result page(s)", res.Pages)
	if res.ObjectRows > 0 {
		from += fmt.Sprintf(" and %d row(s) of the result object %s", res.ObjectRows, res.OutputLocation)
	}
	fmt.Fprintf(env.Stderr, "%s: %s from Athena query %s (%s, %s scanned, about $%.4f) in %s\n",
		cmd, what, res.QueryID, from, humanBytes(res.Scanned), res.CostUSD, time.Since(e.start).Round(time.Millisecond))
}

// athenaKeySet is `rewind query --engine athena`: keep the Glue table,
// run the key set's query, stream its rows into the key-set writer.
func athenaKeySet(ctx context.Context, env *Env, store *storeFlag, f *athenaFlags, q query.Query, tmp string) error {
	e, err := f.open(ctx, env, store, q, tmp)
	if err != nil {
		return err
	}
	res, err := query.AthenaKeySet(ctx, e.api, q, e.opts, e.run, env.Stdout)
	if err != nil {
		return err
	}
	e.summary(env, "query", fmt.Sprintf("%d item(s)", res.Items), res)
	return nil
}

// humanBytes renders n bytes for people.
func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
