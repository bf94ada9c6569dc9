package main

import (
	"bytes"
	"context"
	"database/sql"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer"
	"github.com/ddbrewind/rewind/query"
	_ "github.com/duckdb/duckdb-go/v2"
)

// duckSQL is DuckDB's best reasonable answer to "the key set of one
// tenant in one hour": Hive partition predicates so it reads one hour's
// files, the tenant and time filters pushed into the scan, duplicates of a
// record (in two objects) dropped by event_id, then one row per item.
func duckSQL(dir, tenant string, from, to time.Time) string {
	return fmt.Sprintf(`SELECT source_table, keys, max(tenant), min(event_time), max(event_time), count(*),
       string_agg(DISTINCT action, ',' ORDER BY action)
FROM (
  SELECT DISTINCT event_id, source_table, keys, tenant, event_time, action
  FROM read_parquet('%s/table=*/dt=*/hour=*/*.parquet', hive_partitioning = true)
  WHERE dt = DATE '%s' AND hour = '%s'
    AND tenant = '%s' AND decode_error IS NULL
    AND event_time >= TIMESTAMPTZ '%s' AND event_time < TIMESTAMPTZ '%s'
)
GROUP BY source_table, keys`,
		dir, from.UTC().Format("2006-01-02"), from.UTC().Format("15"), strings.ReplaceAll(tenant, "'", "''"),
		from.UTC().Format("2006-01-02 15:04:05.999999+00"), to.UTC().Format("2006-01-02 15:04:05.999999+00"))
}

// duckRow is one row of duckSQL's answer.
type duckRow struct {
	table, keys, tenant, actions string
	first, last                  time.Time
	count                        int64
}

// duckRows runs duckSQL and reads every row into memory: what the warm
// benchmark times, leaving out the conversion to a key set.
func duckRows(db *sql.DB, dir, tenant string, from, to time.Time) ([]duckRow, error) {
	rows, err := db.Query(duckSQL(dir, tenant, from, to))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []duckRow
	for rows.Next() {
		var r duckRow
		if err := rows.Scan(&r.table, &r.keys, &r.tenant, &r.first, &r.last, &r.count, &r.actions); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// duckKeySet writes DuckDB's rows as a key set, with rewind's writer, so
// the two answers compare byte for byte.
func duckKeySet(rows []duckRow) ([]byte, error) {
	var buf bytes.Buffer
	kw := rewind.NewKeySetWriter(&buf)
	for _, r := range rows {
		e := rewind.KeySetEntry{Table: r.table, Tenant: r.tenant, First: r.first, Last: r.last, Count: r.count}
		var err error
		if e.Key, err = rewind.ParseKey([]byte(r.keys)); err != nil {
			return nil, err
		}
		for _, a := range strings.Split(r.actions, ",") {
			e.Actions = append(e.Actions, rewind.Action(a))
		}
		if err := kw.Add(e); err != nil {
			return nil, err
		}
	}
	err := kw.Close()
	return buf.Bytes(), err
}

func openDuck() (*sql.DB, error) {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	// Keep Parquet metadata between queries: DuckDB's best warm case.
	if _, err := db.Exec(`SET enable_object_cache = true; SET TimeZone = 'UTC'`); err != nil {
		return nil, err
	}
	return db, nil
}

// childDuckDB answers one query in a fresh process: dir tenant from to.
func childDuckDB(args []string) error {
	from, _ := time.Parse(time.RFC3339, args[2])
	to, _ := time.Parse(time.RFC3339, args[3])
	db, err := openDuck()
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := duckRows(db, args[0], args[1], from, to)
	if err != nil {
		return err
	}
	ks, err := duckKeySet(rows)
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(ks)
	return err
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

type queryCase struct {
	label  string
	tenant string
	items  int
}

// queryConfig is the query benchmark's flags.
type queryConfig struct {
	dir, storeDir, rewindBin, slimBin, hourS *string
	warmRuns, coldRuns                       *int
	warmFor                                  *time.Duration
}

// flags adds the query benchmark's flags to fs; -dir and -store only when
// withPaths (`all` has its own).
func (c *queryConfig) flags(fs *flag.FlagSet, withPaths bool) {
	if withPaths {
		c.dir = fs.String("dir", "", "capture written by gen (required)")
		c.storeDir = fs.String("store", "", "store made by ingest (required)")
	}
	c.rewindBin = fs.String("rewind", "", "the rewind CLI, for cold runs (go build -o /tmp/rewind ./cmd/rewind) (required)")
	c.slimBin = fs.String("rwquery", "", "the rwquery binary (go build -o /tmp/rwquery ./index/rwquery), for cold runs without the CLI's start-up (optional)")
	c.hourS = fs.String("hour", "", "the hour to query, RFC 3339 (default: noon of the middle day)")
	c.warmRuns = fs.Int("warm", 30, "warm runs per case, at least")
	c.warmFor = fs.Duration("warm-for", time.Second, "and at least this long per case: a median of 30 runs of 0.1 ms is taken before the Go heap and the collector settle")
	c.coldRuns = fs.Int("cold", 7, "cold runs (fresh processes) per case")
}

func queryMain(args []string) error {
	fs := flag.NewFlagSet("query", flag.ExitOnError)
	var c queryConfig
	c.flags(fs, true)
	fs.Parse(args)
	_, err := queryRun(c)
	return err
}

// queryReport is what queryRun measured: DuckDB's time over rewind's.
type queryReport struct {
	bigWarm, bigCold, bigColdCPU       float64
	smallWarm, smallCold, smallColdCPU float64
}

// queryRun times the big and the small tenant's key sets, rewind's and
// DuckDB's, cold and warm, checks every answer against the first, and
// prints the comparison.
func queryRun(c queryConfig) (queryReport, error) {
	var rep queryReport
	dir, storeDir, rewindBin, slimBin, hourS := c.dir, c.storeDir, c.rewindBin, c.slimBin, c.hourS
	warmRuns, warmFor, coldRuns := c.warmRuns, c.warmFor, c.coldRuns
	if *dir == "" || *storeDir == "" || *rewindBin == "" {
		return rep, fmt.Errorf("query: -dir, -store and -rewind are required")
	}
	ctx := context.Background()

	// Pick the hour and the tenants.
	st, err := indexer.Open(*storeDir, indexer.Options{ReadOnly: true})
	if err != nil {
		return rep, err
	}
	var from time.Time
	if *hourS != "" {
		if from, err = time.Parse(time.RFC3339, *hourS); err != nil {
			return rep, err
		}
	} else {
		var first, last int64
		st.Objects(func(o indexer.ObjectInfo) error {
			if first == 0 || o.First < first {
				first = o.First
			}
			last = max(last, o.Last)
			return nil
		})
		mid := time.UnixMicro((first + last) / 2).UTC()
		from = mid.Truncate(24 * time.Hour).Add(12 * time.Hour)
	}
	to := from.Add(time.Hour)
	stats, err := query.ComputeStats(ctx, st, query.Query{From: from, To: to}, time.Hour)
	if err != nil {
		return rep, err
	}
	items := func(tenant string) (int, []byte, error) {
		var buf bytes.Buffer
		res, err := query.KeySet(ctx, st, query.Query{From: from, To: to, Tenants: []string{tenant}}, &buf, query.KeySetOptions{})
		return int(res.Items), buf.Bytes(), err
	}
	big := queryCase{label: "big tenant", tenant: stats.Tenants[0].Tenant}
	if big.items, _, err = items(big.tenant); err != nil {
		return rep, err
	}
	small := queryCase{label: "small tenant"}
	for _, tc := range stats.Tenants {
		if tc.Events < 40 || tc.Events > 80 {
			continue
		}
		n, _, err := items(tc.Tenant)
		if err != nil {
			return rep, err
		}
		if small.tenant == "" || abs(n-50) < abs(small.items-50) {
			small.tenant, small.items = tc.Tenant, n
		}
	}
	if small.tenant == "" {
		small.tenant = stats.Tenants[len(stats.Tenants)/2].Tenant
		small.items, _, _ = items(small.tenant)
	}
	st.Close()
	fmt.Printf("hour [%s, %s): %d events in %d tenants\n", from.Format(time.RFC3339), to.Format(time.RFC3339), stats.Events, len(stats.Tenants))

	type result struct {
		c                  queryCase
		rwCold, rwWarm     time.Duration
		slimCold           time.Duration
		duckCold, duckWarm time.Duration
		// CPU time (user+system) of the cold processes, medians: steadier
		// than wall time on a shared machine.
		rwCPU, slimCPU, duckCPU time.Duration
	}
	var results []result
	for _, c := range []queryCase{big, small} {
		r := result{c: c}
		fromS, toS := from.Format(time.RFC3339), to.Format(time.RFC3339)
		// rewind cold: the CLI in a fresh process.
		var want []byte
		var ds, cpus []time.Duration
		for range *coldRuns {
			out, wall, _, err := run(*rewindBin, "query", "--store", *storeDir, "--from", fromS, "--to", toS, "--tenants", c.tenant)
			if err != nil {
				return rep, err
			}
			if want == nil {
				want = out
			} else if !bytes.Equal(out, want) {
				return rep, fmt.Errorf("%s: rewind CLI answers differ between runs", c.label)
			}
			ds = append(ds, wall)
			cpus = append(cpus, lastCPU)
		}
		r.rwCold, r.rwCPU = median(ds), median(cpus)
		if *slimBin != "" {
			ds, cpus = ds[:0], cpus[:0]
			for range *coldRuns {
				out, wall, _, err := run(*slimBin, *storeDir, c.tenant, fromS, toS)
				if err != nil {
					return rep, err
				}
				if !bytes.Equal(out, want) {
					return rep, fmt.Errorf("%s: rwquery's key set differs from the CLI's", c.label)
				}
				ds = append(ds, wall)
				cpus = append(cpus, lastCPU)
			}
			r.slimCold, r.slimCPU = median(ds), median(cpus)
		}
		// rewind warm: one open store, the query repeated.
		st, err := indexer.Open(*storeDir, indexer.Options{ReadOnly: true})
		if err != nil {
			return rep, err
		}
		ds = ds[:0]
		var buf bytes.Buffer
		buf.Grow(2 * len(want))
		for begin := time.Now(); len(ds) < *warmRuns || time.Since(begin) < *warmFor; {
			buf.Reset()
			start := time.Now()
			if _, err := query.KeySet(ctx, st, query.Query{From: from, To: to, Tenants: []string{c.tenant}}, &buf, query.KeySetOptions{}); err != nil {
				return rep, err
			}
			ds = append(ds, time.Since(start))
			if !bytes.Equal(buf.Bytes(), want) {
				return rep, fmt.Errorf("%s: in-process key set differs from the CLI's", c.label)
			}
		}
		st.Close()
		r.rwWarm = median(ds)
		// DuckDB cold: a fresh process opening DuckDB.
		ds, cpus = ds[:0], cpus[:0]
		for range *coldRuns {
			out, wall, _, err := run(self(), "child-duckdb", *dir, c.tenant, fromS, toS)
			if err != nil {
				return rep, err
			}
			if !bytes.Equal(out, want) {
				return rep, fmt.Errorf("%s: DuckDB's key set differs from rewind's:\nduckdb: %.300s\nrewind: %.300s", c.label, out, want)
			}
			ds = append(ds, wall)
			cpus = append(cpus, lastCPU)
		}
		r.duckCold, r.duckCPU = median(ds), median(cpus)
		// DuckDB warm.
		db, err := openDuck()
		if err != nil {
			return rep, err
		}
		ds = ds[:0]
		for begin := time.Now(); len(ds) < *warmRuns || time.Since(begin) < *warmFor; {
			start := time.Now()
			rows, err := duckRows(db, *dir, c.tenant, from, to)
			if err != nil {
				return rep, err
			}
			ds = append(ds, time.Since(start))
			out, err := duckKeySet(rows)
			if err != nil {
				return rep, err
			}
			if !bytes.Equal(out, want) {
				return rep, fmt.Errorf("%s: DuckDB's warm key set differs from rewind's", c.label)
			}
		}
		db.Close()
		r.duckWarm = median(ds)
		results = append(results, r)
	}
	fmt.Printf("%-13s %-7s %6s  %12s %12s %8s  %12s %12s %8s\n", "case", "tenant", "keys", "rewind cold", "duckdb cold", "ratio", "rewind warm", "duckdb warm", "ratio")
	for _, r := range results {
		fmt.Printf("%-13s %-7s %6d  %12s %12s %7.1f×  %12s %12s %7.1f×\n", r.c.label, r.c.tenant, r.c.items,
			r.rwCold.Round(10*time.Microsecond), r.duckCold.Round(10*time.Microsecond), float64(r.duckCold)/float64(r.rwCold),
			r.rwWarm.Round(time.Microsecond), r.duckWarm.Round(time.Microsecond), float64(r.duckWarm)/float64(r.rwWarm))
	}
	fmt.Println("cold, CPU time (user+system) of the fresh processes:")
	for _, r := range results {
		fmt.Printf("%-13s %-7s %6d  %12s %12s %7.1f×\n", r.c.label, r.c.tenant, r.c.items,
			r.rwCPU.Round(10*time.Microsecond), r.duckCPU.Round(10*time.Microsecond), float64(r.duckCPU)/float64(r.rwCPU))
	}
	if *slimBin != "" {
		fmt.Println("cold without the CLI's start-up (rwquery: indexer+query only), wall and CPU:")
		for _, r := range results {
			fmt.Printf("%-13s %-7s %6d  %12s %12s %7.1f×  %12s %12s %7.1f×\n", r.c.label, r.c.tenant, r.c.items,
				r.slimCold.Round(10*time.Microsecond), r.duckCold.Round(10*time.Microsecond), float64(r.duckCold)/float64(r.slimCold),
				r.slimCPU.Round(10*time.Microsecond), r.duckCPU.Round(10*time.Microsecond), float64(r.duckCPU)/float64(r.slimCPU))
		}
	}
	fmt.Println("answers identical: yes (every run compared byte for byte)")
	ratio := func(peer, rw time.Duration) float64 { return float64(peer) / float64(rw) }
	b, sm := results[0], results[1]
	rep = queryReport{
		bigWarm: ratio(b.duckWarm, b.rwWarm), bigCold: ratio(b.duckCold, b.rwCold), bigColdCPU: ratio(b.duckCPU, b.rwCPU),
		smallWarm: ratio(sm.duckWarm, sm.rwWarm), smallCold: ratio(sm.duckCold, sm.rwCold), smallColdCPU: ratio(sm.duckCPU, sm.rwCPU),
	}
	return rep, nil
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
