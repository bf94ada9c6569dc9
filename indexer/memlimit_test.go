package indexer_test

import (
	"context"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ddbrewind/rewind/indexer"
	"github.com/ddbrewind/rewind/indexer/indextest"
)

// TestIngestMemoryLimit: Ingest lowers the runtime's soft memory limit
// while it runs and puts it back after; -1, a GOMEMLIMIT in the
// environment, or a lower limit already in force leave it alone. Not
// parallel: the limit is the process's.
func TestIngestMemoryLimit(t *testing.T) {
	src := t.TempDir()
	writeEvents(t, src, indextest.NewGen(11).Events(300), 100)
	const before = 3 << 30
	for _, tc := range []struct {
		name    string
		limit   int64
		env     string
		initial int64
		want    int64 // during the ingest
	}{
		{"default", 0, "", before, 384 << 20},
		{"bigger batches", 0, "", before, 12 * (64 << 20)},
		{"explicit", 300 << 20, "", before, 300 << 20},
		{"off", -1, "", before, before},
		{"GOMEMLIMIT set", 0, "1GiB", before, before},
		{"lower already", 0, "", 100 << 20, 100 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("GOMEMLIMIT", tc.env)
			}
			saved := debug.SetMemoryLimit(tc.initial)
			defer debug.SetMemoryLimit(saved)
			cfg := indexer.Config{MemoryLimit: tc.limit}
			if tc.name == "bigger batches" {
				cfg.BatchBytes = 64 << 20
			}
			var during []int64
			cfg.Progress = func(indexer.Progress) { during = append(during, debug.SetMemoryLimit(-1)) }
			if _, err := ingestDir(t, openStore(t, t.TempDir()), src, cfg); err != nil {
				t.Fatal(err)
			}
			if len(during) == 0 {
				t.Fatal("no progress report")
			}
			for _, got := range during {
				if got != tc.want {
					t.Fatalf("limit during the ingest %d, want %d", got, tc.want)
				}
			}
			if got := debug.SetMemoryLimit(-1); got != tc.initial {
				t.Fatalf("limit after the ingest %d, want %d (as before)", got, tc.initial)
			}
		})
	}
	var c indexer.Config
	c.EnsureDefaults()
	c.MemoryLimit = -2
	if err := c.Validate(); err == nil {
		t.Error("MemoryLimit -2 validated")
	}
}

// countingSource counts the objects opened ahead of those committed.
type countingSource struct {
	indexer.Source
	opened, committed atomic.Int64
	maxAhead          atomic.Int64
}

func (c *countingSource) Open(ctx context.Context, o indexer.Object) (indexer.Content, string, int64, error) {
	ahead := c.opened.Add(1) - c.committed.Load()
	for {
		m := c.maxAhead.Load()
		if ahead <= m || c.maxAhead.CompareAndSwap(m, ahead) {
			break
		}
	}
	return c.Source.Open(ctx, o)
}

// TestIngestBoundsDecodedObjects: however many decoders there are, the
// objects decoded and not yet handed to the flusher stay within twice
// BatchBytes, so memory does not grow with the objects' size. With
// batches smaller than any object, each object is a batch: at most two
// are held, one is being written, and the progress counter lags by a
// batch or two; eight decoders with nothing to hold them back run a dozen
// ahead.
func TestIngestBoundsDecodedObjects(t *testing.T) {
	dir := t.TempDir()
	objs := writeEvents(t, dir, indextest.NewGen(12).Events(1200), 20)
	dirSrc, err := indexer.NewDirSource(dir)
	if err != nil {
		t.Fatal(err)
	}
	src := &countingSource{Source: dirSrc}
	s := openStore(t, t.TempDir())
	res, err := s.Ingest(context.Background(), src, indexer.Config{
		Workers: 8, BatchBytes: 1, Log: quiet, ProgressInterval: time.Nanosecond,
		Progress: func(p indexer.Progress) { src.committed.Store(int64(p.Ingested + p.Failed)) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ingested != len(objs) || res.Events != 1200 {
		t.Fatalf("ingested %d objects, %d events; want %d, 1200", res.Ingested, res.Events, len(objs))
	}
	if m := src.maxAhead.Load(); m > 5 {
		t.Errorf("%d objects opened ahead of those committed, want at most 5", m)
	}
}
