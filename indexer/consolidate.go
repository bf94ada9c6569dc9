package indexer

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"
	"golang.org/x/sync/errgroup"
)

// consolidateMax is the size under which a bottom-level sstable counts as
// small: consolidate merges runs of small neighbours, and a merged file
// stays out of later runs once it has grown past it.
const consolidateMax = 16 << 20

// consolidate merges, at the end of an ingest, each run of small adjacent
// sstables in the bottom level into one (a file per mergedMax of input,
// the runs merged at once). Every batch ingests one sstable
// per key space, and the time ordering's batches never overlap one
// another, so Pebble's compactions, which merge overlapping files, leave
// them as they are, and a manual Compact stops above the bottom level: a
// week of 10 M events would be ~300 files per space. A read-only Open
// replays one MANIFEST entry per file, so without this its cost grows with
// the number of batches ever ingested; with it, with the store's size.
//
// A run is read through an iterator, written as one sstable and ingested
// in place of the files it replaces in one atomic step (IngestAndExcise:
// the excised span's files leave the LSM and the new file lands in the
// bottom level, as nothing else overlaps it). A run that is killed before
// that step leaves its file in ingest-tmp, which Open removes.
//
// The records' space is left alone: its sstables are written with their
// own block size (see flush), and rewriting every record once more would
// cost ingest more than the MANIFEST entries cost a query.
//
// A merged file stays out of later runs once it has grown past
// consolidateMax: what a later ingest rewrites is its own batches and the
// last, still small, file before them.
func (s *Store) consolidate(ctx context.Context) error {
	levels, err := s.db.SSTables()
	if err != nil {
		return fmt.Errorf("store %s: consolidate: %w", s.dir, err)
	}
	bottom := levels[len(levels)-1]
	slices.SortFunc(bottom, func(a, b pebble.SSTableInfo) int {
		return bytes.Compare(a.Smallest.UserKey, b.Smallest.UserKey)
	})
	// Runs are disjoint: merge them at once, a core each (the ingest is
	// over, and one run at a time was a tenth of its time).
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i, r := range smallRuns(bottom) {
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			if err := s.mergeRun(gctx, r, i); err != nil {
				return fmt.Errorf("store %s: consolidate [%q, %q]: %w", s.dir, r[0], r[1], err)
			}
			return nil
		})
	}
	return g.Wait()
}

// mergeRun rewrites the keys in [r[0], r[1]] as one sstable in their place.
func (s *Store) mergeRun(ctx context.Context, r [2][]byte, i int) error {
	upper := append(bytes.Clone(r[1]), 0) // the first key after r[1]
	if err := os.MkdirAll(s.tmpDir(), 0o755); err != nil {
		return err
	}
	path := filepath.Join(s.tmpDir(), fmt.Sprintf("consolidate-%d.sst", i))
	defer os.Remove(path)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: r[0], UpperBound: upper})
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		it.Close()
		return err
	}
	wo := s.opts.MakeWriterOptions(len(s.opts.Levels)-1, s.db.TableFormat())
	wo.BlockSize = indexBlockSize
	w := sstable.NewWriter(&bigWritable{f: f, w: bufio.NewWriterSize(f, 1<<20)}, wo)
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err == nil {
			err = w.Set(it.Key(), v)
		}
		if err != nil {
			it.Close()
			w.Close()
			return err
		}
		n++
	}
	ierr := it.Close()
	if err := w.Close(); err != nil || ierr != nil {
		return errors.Join(ierr, err)
	}
	if n == 0 {
		return nil
	}
	_, err = s.db.IngestAndExcise(ctx, []string{path}, nil, nil, pebble.KeyRange{Start: r[0], End: upper})
	return err
}

// mergedMax is about the most input one merged file takes: a run of small
// files longer than that is merged in pieces, at once, into files of about
// Pebble's target size (one 1.2 GB file at 30 M events, otherwise).
const mergedMax = 64 << 20

// smallRuns returns the [first key, last key] of each run of two or more
// adjacent small sstables of one key space (records excepted), from files
// sorted by smallest key, a run cut where its files pass mergedMax.
func smallRuns(files []pebble.SSTableInfo) [][2][]byte {
	var runs [][2][]byte
	space := func(t pebble.SSTableInfo) byte {
		if len(t.Smallest.UserKey) == 0 || len(t.Largest.UserKey) == 0 || t.Smallest.UserKey[0] != t.Largest.UserKey[0] {
			return 0 // spans spaces: never part of a run
		}
		return t.Smallest.UserKey[0]
	}
	small := func(t pebble.SSTableInfo) bool {
		sp := space(t)
		return sp != 0 && sp != spaceRecord && t.Size < consolidateMax
	}
	for i := 0; i < len(files); {
		if !small(files[i]) {
			i++
			continue
		}
		j, size := i+1, files[i].Size
		for j < len(files) && small(files[j]) && space(files[j]) == space(files[i]) && size+files[j].Size <= mergedMax {
			size += files[j].Size
			j++
		}
		if j-i >= 2 {
			runs = append(runs, [2][]byte{bytes.Clone(files[i].Smallest.UserKey), bytes.Clone(files[j-1].Largest.UserKey)})
		}
		i = j
	}
	return runs
}
