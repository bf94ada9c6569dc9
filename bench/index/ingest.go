package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer"
	"github.com/parquet-go/parquet-go"
)

// childResult is what a child process reports on stdout.
type childResult struct {
	Rows    int64   `json:"rows"`
	Seconds float64 `json:"seconds"`
	Bytes   int64   `json:"bytes,omitempty"`
}

// lastCPU is the CPU time (user and system) of the last child run.
var lastCPU time.Duration

// run runs this program (or another binary) as a child and returns its
// stdout, wall time and peak RSS in bytes; lastCPU gets its CPU time.
func run(bin string, args ...string) ([]byte, time.Duration, int64, error) {
	cmd := exec.Command(bin, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss * 1024 // kilobytes on Linux
		lastCPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if err != nil {
		return out.Bytes(), wall, rss, fmt.Errorf("%s %s: %w", bin, strings.Join(args, " "), err)
	}
	return out.Bytes(), wall, rss, nil
}

func self() string {
	exe, err := os.Executable()
	if err != nil {
		panic(err)
	}
	return exe
}

func parquetFiles(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".parquet") {
			files = append(files, p)
		}
		return err
	})
	sort.Strings(files)
	return files, err
}

func dirSize(dir string) (int64, int) {
	var size int64
	var n int
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				size += fi.Size()
				n++
			}
		}
		return nil
	})
	return size, n
}

// childDecode decodes every row of every file into rewind.ParquetRow, the
// columns and types the indexer reads, with as many workers as the
// indexer uses, and does nothing else.
func childDecode(args []string) error {
	files, err := parquetFiles(args[0])
	if err != nil {
		return err
	}
	start := time.Now()
	var rows atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, runtime.GOMAXPROCS(0))
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]rewind.ParquetRow, 128)
			for {
				i := int(next.Add(1)) - 1
				if i >= len(files) {
					return
				}
				f, err := os.Open(files[i])
				if err != nil {
					errs <- err
					return
				}
				fi, _ := f.Stat()
				pf, err := parquet.OpenFile(f, fi.Size())
				if err != nil {
					errs <- err
					return
				}
				r := parquet.NewGenericReader[rewind.ParquetRow](pf)
				for {
					n, err := r.Read(buf)
					rows.Add(int64(n))
					if err == io.EOF {
						break
					}
					if err != nil {
						errs <- err
						return
					}
				}
				r.Close()
				f.Close()
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(childResult{Rows: rows.Load(), Seconds: time.Since(start).Seconds()})
}

// childIngest indexes the capture into a new store, as `rewind index`
// does, with the default configuration.
func childIngest(args []string) error {
	dir, store := args[0], args[1]
	if len(args) > 2 && args[2] != "" {
		f, err := os.Create(args[2])
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	st, err := indexer.Open(store, indexer.Options{})
	if err != nil {
		return err
	}
	src, err := indexer.NewDirSource(dir)
	if err != nil {
		return err
	}
	cfg := indexer.Config{
		Log:              slog.New(slog.NewTextHandler(os.Stderr, nil)),
		ProgressInterval: 10 * time.Second,
		Progress: func(p indexer.Progress) {
			fmt.Fprintf(os.Stderr, "ingest: %d objects, %d rows, %.0f rows/s\n", p.Ingested, p.Rows, p.RowsPerSecond())
		},
	}
	res, err := st.Ingest(context.Background(), src, cfg)
	if err != nil {
		return err
	}
	if err := st.Close(); err != nil {
		return err
	}
	size, _ := dirSize(store)
	return json.NewEncoder(os.Stdout).Encode(childResult{Rows: res.Rows, Seconds: time.Since(start).Seconds(), Bytes: size})
}

func ingestMain(args []string) error {
	fs := flag.NewFlagSet("ingest", flag.ExitOnError)
	dir := fs.String("dir", "", "capture written by gen (required)")
	store := fs.String("store", "", "new store directory (required; removed first)")
	cpuprofile := fs.String("cpuprofile", "", "write the ingest's CPU profile to this file")
	fs.Parse(args)
	if *dir == "" || *store == "" {
		return fmt.Errorf("ingest: -dir and -store are required")
	}
	_, err := ingestRun(*dir, *store, *cpuprofile)
	return err
}

// ingestReport is what ingestRun measured, for the goals table of `all`.
type ingestReport struct {
	storeRatio          float64 // store bytes / Parquet bytes
	wallRatio, cpuRatio float64 // ingest rate / bare decode rate
	peakRSS             int64
}

// ingestRun times the bare decode and the ingest of dir into store (removed
// first), in fresh processes, and prints the comparison.
func ingestRun(dir, store, cpuprofile string) (ingestReport, error) {
	size, files := dirSize(dir)
	fmt.Printf("capture: %d files, %.2f GB; GOMAXPROCS %d\n", files, float64(size)/1e9, runtime.GOMAXPROCS(0))
	// Both read the files from the page cache: warm it first.
	if _, _, _, err := run(self(), "child-decode", dir); err != nil {
		return ingestReport{}, err
	}
	out, _, decRSS, err := run(self(), "child-decode", dir)
	if err != nil {
		return ingestReport{}, err
	}
	decCPU := lastCPU
	var dec childResult
	json.Unmarshal(out, &dec)
	if err := os.RemoveAll(store); err != nil {
		return ingestReport{}, err
	}
	out, _, ingRSS, err := run(self(), "child-ingest", dir, store, cpuprofile)
	if err != nil {
		return ingestReport{}, err
	}
	ingCPU := lastCPU
	var ing childResult
	json.Unmarshal(out, &ing)
	decRate, ingRate := float64(dec.Rows)/dec.Seconds, float64(ing.Rows)/ing.Seconds
	rep := ingestReport{
		storeRatio: float64(ing.Bytes) / float64(size),
		wallRatio:  ingRate / decRate, cpuRatio: float64(decCPU) / float64(ingCPU),
		peakRSS: ingRSS,
	}
	fmt.Printf("%-26s %12s %10s %14s %12s %12s\n", "", "rows", "seconds", "rows/s", "peak RSS", "CPU µs/row")
	fmt.Printf("%-26s %12d %10.1f %14.0f %9.0f MB %12.2f\n", "bare parquet-go decode", dec.Rows, dec.Seconds, decRate, float64(decRSS)/1e6, float64(decCPU.Microseconds())/float64(dec.Rows))
	fmt.Printf("%-26s %12d %10.1f %14.0f %9.0f MB %12.2f\n", "rewind ingest into Pebble", ing.Rows, ing.Seconds, ingRate, float64(ingRSS)/1e6, float64(ingCPU.Microseconds())/float64(ing.Rows))
	fmt.Printf("ingest/decode rate: %.2f× (wall), %.2f× (CPU)   store: %.2f GB, %.2f× the Parquet (goal ≤ 1.0×), %.0f bytes/event\n",
		rep.wallRatio, rep.cpuRatio, float64(ing.Bytes)/1e9, rep.storeRatio, float64(ing.Bytes)/float64(ing.Rows))
	if dec.Rows != ing.Rows {
		return rep, fmt.Errorf("decode read %d rows, ingest %d", dec.Rows, ing.Rows)
	}
	return rep, nil
}
