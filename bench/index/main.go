// Command index benchmarks rewind's indexer and queries on a synthetic
// capture, against the bare parquet-go decode of the same files and against
// DuckDB reading them.
//
//	go run ./index gen    -dir /data/capture -events 10000000
//	go run ./index ingest -dir /data/capture -store /data/store
//	go run ./index query  -dir /data/capture -store /data/store -rewind /tmp/rewind
//	go run ./index all    -dir /data/capture -store /data/store -rewind /tmp/rewind
//
// gen writes 7 days of one table's changes: ~2,000 tenants with Zipf-skewed
// traffic, ~2 M keys, ~300-byte images, several zstd Parquet files per hour.
// ingest times, in fresh processes and on the same files, a bare decode of
// every column (rewind.ParquetRow, the indexer's decode) and a full index
// run, with each one's peak RSS. query times the key set of one tenant in
// one hour, for a big and a small tenant, with rewind and with DuckDB, cold
// (a fresh process per query: the `rewind query` CLI, and a process opening
// DuckDB) and warm (repeated in one process; DuckDB's time stops once its
// rows are read, before they are turned into a key set), and checks both
// give the same key set, byte for byte. all runs ingest, then query on the
// store it built, and ends with every ratio of the index-at-scale goals
// against its goal, from that one run.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: index gen|ingest|query|all [flags]")
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "gen":
		err = genMain(args)
	case "ingest":
		err = ingestMain(args)
	case "query":
		err = queryMain(args)
	case "all":
		err = allMain(args)
	case "child-decode":
		err = childDecode(args)
	case "child-ingest":
		err = childIngest(args)
	case "child-duckdb":
		err = childDuckDB(args)
	default:
		err = fmt.Errorf("unknown command %q", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "index:", err)
		os.Exit(1)
	}
}

func genMain(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ExitOnError)
	c := genConfig{Start: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}
	fs.StringVar(&c.Dir, "dir", "", "where to write the capture (required)")
	fs.IntVar(&c.Events, "events", 10_000_000, "change events")
	fs.IntVar(&c.Days, "days", 7, "days of history")
	fs.IntVar(&c.Tenants, "tenants", 2000, "tenants")
	fs.IntVar(&c.Keys, "keys", 2_000_000, "distinct item keys, shared out by traffic")
	fs.IntVar(&c.FilesPerHour, "files-per-hour", 4, "Parquet files per hour")
	fs.IntVar(&c.ImageBytes, "image-bytes", 300, "approximate size of an image")
	fs.Float64Var(&c.Skew, "skew", 1.1, "Zipf exponent of tenant traffic")
	fs.Uint64Var(&c.Seed, "seed", 1, "random seed")
	fs.Parse(args)
	if c.Dir == "" {
		return fmt.Errorf("gen: -dir is required")
	}
	start := time.Now()
	if err := generate(c); err != nil {
		return err
	}
	size, files := dirSize(c.Dir)
	fmt.Printf("gen: %d events in %d files, %.2f GB, in %s\n", c.Events, files, float64(size)/1e9, time.Since(start).Round(time.Second))
	return nil
}

func allMain(args []string) error {
	fs := flag.NewFlagSet("all", flag.ExitOnError)
	dir := fs.String("dir", "", "capture written by gen (required)")
	store := fs.String("store", "", "new store directory (required; removed first)")
	cpuprofile := fs.String("cpuprofile", "", "write the ingest's CPU profile to this file")
	c := queryConfig{dir: dir, storeDir: store}
	c.flags(fs, false)
	fs.Parse(args)
	if *dir == "" || *store == "" || *c.rewindBin == "" {
		return fmt.Errorf("all: -dir, -store and -rewind are required")
	}
	ing, err := ingestRun(*dir, *store, *cpuprofile)
	if err != nil {
		return err
	}
	q, err := queryRun(c)
	if err != nil {
		return err
	}
	printGoals(os.Stdout, ing, q)
	return nil
}

// printGoals prints each measured ratio against its goal.
func printGoals(w io.Writer, ing ingestReport, q queryReport) {
	met := func(ok bool) string {
		if ok {
			return "met"
		}
		return "not met"
	}
	fmt.Fprintln(w, "goals, from this run:")
	rows := []struct {
		goal, got string
		ok        bool
	}{
		{"store ≤ 1.0× the Parquet", fmt.Sprintf("%.2f×", ing.storeRatio), ing.storeRatio <= 1},
		{"ingest ≥ 0.5× the bare decode (wall, CPU)", fmt.Sprintf("%.2f×, %.2f×", ing.wallRatio, ing.cpuRatio), ing.wallRatio >= 0.5 && ing.cpuRatio >= 0.5},
		{"ingest peak RSS ≤ 512 MB", fmt.Sprintf("%.0f MB", float64(ing.peakRSS)/1e6), ing.peakRSS <= 512e6},
		{"big tenant warm ≥ 20× DuckDB", fmt.Sprintf("%.1f×", q.bigWarm), q.bigWarm >= 20},
		{"big tenant cold ≥ 10× (wall; CPU)", fmt.Sprintf("%.1f×; %.1f×", q.bigCold, q.bigColdCPU), q.bigCold >= 10},
		{"small tenant warm ≥ 300×", fmt.Sprintf("%.0f×", q.smallWarm), q.smallWarm >= 300},
		{"small tenant cold ≥ 15× (wall; CPU)", fmt.Sprintf("%.1f×; %.1f×", q.smallCold, q.smallColdCPU), q.smallCold >= 15},
	}
	for _, r := range rows {
		fmt.Fprintf(w, "  %-44s %-16s %s\n", r.goal, r.got, met(r.ok))
	}
	fmt.Fprintf(w, "  %-44s %-16s %s\n", "answers identical to DuckDB's", "yes", "checked every run")
}
