package indexer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
)

// Windowed listing: `rewind index --from T --to T` reads only the capture's
// dt=/hour= partitions that can hold events of the window, and the store
// records, per source, which windows it holds ('M' "win/" source), so that
// queries can say when they ask about a window nobody indexed.

// WindowSource is a Source that can list only the objects of the
// partitions that overlap a window of event times.
type WindowSource interface {
	Source
	// ListWindow calls fn, in key order, for every .parquet object under
	// a table=/dt=/hour= partition that may hold events of w (see
	// windowPartitions), a compacted hour through its manifest as List.
	ListWindow(ctx context.Context, w Window, fn func(Object) error) error
}

// partitionLag is how long after the end of its partition's hour an
// object may still hold events: the stream handler files an object under
// the hour of its first event (streamhandler.Handler.objectKey), and a
// Lambda batch may run past the end of that hour. So the events of a
// window can sit in the partition of the hour before it; batches span
// seconds to minutes, far less than the hour allowed here.
const partitionLag = time.Hour

// listWorkers is how many partitions are listed at once.
const listWorkers = 8

// partitionTree is what windowed listing needs from a source's layout.
type partitionTree interface {
	// children returns the names of the partitions right under rel ("" for
	// the source's root; else a slash-separated path without slashes at
	// either end), sorted.
	children(ctx context.Context, rel string) ([]string, error)
	// objects calls fn for every .parquet object under rel a reader must
	// read (a compacted hour through its manifest), in key order.
	objects(ctx context.Context, rel string, fn func(Object) error) error
}

// windowPartitions returns the table=/dt=/hour= partitions, in key order,
// that may hold events of w: those whose hour overlaps [w.From-partitionLag,
// w.To). A window without a bound is open on that side.
//
// A compacted hour's manifest (rewind compact writes one per hour folder)
// is honoured when each partition is listed: partitionTree.objects lists
// through the source's own listing, which applies compact.Select per
// folder (see folders in source.go).
func windowPartitions(ctx context.Context, t partitionTree, w Window) ([]string, error) {
	tables, err := t.children(ctx, "")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, table := range tables {
		if !strings.HasPrefix(table, "table=") {
			continue
		}
		days, err := t.children(ctx, table)
		if err != nil {
			return nil, err
		}
		for _, d := range days {
			day, err := time.Parse("2006-01-02", strings.TrimPrefix(d, "dt="))
			if err != nil || !strings.HasPrefix(d, "dt=") {
				continue // not the capture's layout
			}
			for h := range 24 {
				start := day.Add(time.Duration(h) * time.Hour)
				lo, hi := start.UnixMicro(), start.Add(time.Hour+partitionLag).UnixMicro()
				if (w.HasTo && lo >= w.To) || (w.HasFrom && hi <= w.From) {
					continue
				}
				out = append(out, fmt.Sprintf("%s/%s/hour=%02d", table, d, h))
			}
		}
	}
	return out, nil
}

// listWindow lists the objects of the partitions that overlap w, several
// partitions at a time, calling fn in key order.
func listWindow(ctx context.Context, t partitionTree, w Window, fn func(Object) error) error {
	parts, err := windowPartitions(ctx, t, w)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	results := make([]chan []Object, len(parts))
	for i := range results {
		results[i] = make(chan []Object, 1)
	}
	g.Go(func() error {
		lg, lctx := errgroup.WithContext(gctx)
		lg.SetLimit(listWorkers)
		for i, p := range parts {
			lg.Go(func() error {
				var objs []Object
				if err := t.objects(lctx, p, func(o Object) error {
					objs = append(objs, o)
					return nil
				}); err != nil {
					return err
				}
				results[i] <- objs
				return nil
			})
		}
		return lg.Wait()
	})
	g.Go(func() error {
		for i := range parts {
			select {
			case objs := <-results[i]:
				for _, o := range objs {
					if err := fn(o); err != nil {
						return err
					}
				}
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	return g.Wait()
}

// Windows: 'M' "win/" source → format byte (1), uvarint count, then per
// window a flags byte (1 from set, 2 to set) and its from and to as
// varints. Windows are kept sorted and merged.

const metaWin = "Mwin/"

func appendWindows(dst []byte, ws []Window) []byte {
	dst = append(dst, 1)
	dst = binary.AppendUvarint(dst, uint64(len(ws)))
	for _, w := range ws {
		var f byte
		if w.HasFrom {
			f |= 1
		}
		if w.HasTo {
			f |= 2
		}
		dst = append(dst, f)
		dst = binary.AppendVarint(dst, w.From)
		dst = binary.AppendVarint(dst, w.To)
	}
	return dst
}

func decodeWindows(v []byte) ([]Window, error) {
	if len(v) == 0 || v[0] != 1 {
		return nil, errors.New("unknown window list format")
	}
	r := reader{b: v[1:]}
	n := r.uvarint()
	var out []Window
	for i := uint64(0); i < n && r.err == nil; i++ {
		if len(r.b) == 0 {
			return nil, errors.New("window list truncated")
		}
		f := r.b[0]
		r.b = r.b[1:]
		w := Window{HasFrom: f&1 != 0, HasTo: f&2 != 0}
		w.From, w.To = r.varint(), r.varint()
		out = append(out, w)
	}
	if r.err != nil {
		return nil, fmt.Errorf("window list: %w", r.err)
	}
	return out, nil
}

// lowOf and highOf give a window's bounds with the open sides at the
// extremes.
func lowOf(w Window) int64 {
	if w.HasFrom {
		return w.From
	}
	return minMicros
}

func highOf(w Window) int64 {
	if w.HasTo {
		return w.To
	}
	return maxMicros
}

const (
	minMicros = -1 << 63
	maxMicros = 1<<63 - 1
)

func windowOf(lo, hi int64) Window {
	return Window{From: lo, To: hi, HasFrom: lo != minMicros, HasTo: hi != maxMicros}
}

// mergeWindows returns the union of ws as sorted, disjoint windows that
// do not touch.
func mergeWindows(ws []Window) []Window {
	type iv struct{ lo, hi int64 }
	var ivs []iv
	for _, w := range ws {
		if !w.Empty() {
			ivs = append(ivs, iv{lowOf(w), highOf(w)})
		}
	}
	slices.SortFunc(ivs, func(a, b iv) int {
		switch {
		case a.lo < b.lo:
			return -1
		case a.lo > b.lo:
			return 1
		}
		return 0
	})
	var out []Window
	for _, v := range ivs {
		if n := len(out); n > 0 && v.lo <= highOf(out[n-1]) {
			if v.hi > highOf(out[n-1]) {
				out[n-1] = windowOf(lowOf(out[n-1]), v.hi)
			}
			continue
		}
		out = append(out, windowOf(v.lo, v.hi))
	}
	return out
}

// IndexedWindows returns, per source, the windows of event times the store
// holds every listed object of, merged and sorted. An ingest without a
// window holds its source's whole time line. Sources indexed only with
// IngestExport or IngestFailures have no entry.
func (s *Store) IndexedWindows() (map[string][]Window, error) {
	out := map[string][]Window{}
	err := s.scanMeta(metaWin, func(name string, v []byte) error {
		ws, err := decodeWindows(v)
		if err != nil {
			return fmt.Errorf("store %s: source %s: %w", s.dir, name, err)
		}
		out[name] = ws
		return nil
	})
	return out, err
}

// Unindexed returns the parts of w that no source's indexed windows
// cover, in time order: the store cannot say what changed there. It is
// nil when w is covered, and when the store records no windows at all (a
// store of exports or failure records only).
func (s *Store) Unindexed(w Window) ([]Window, error) {
	if w.Empty() {
		return nil, nil
	}
	bySrc, err := s.IndexedWindows()
	if err != nil || len(bySrc) == 0 {
		return nil, err
	}
	var all []Window
	for _, ws := range bySrc {
		all = append(all, ws...)
	}
	var gaps []Window
	lo, hi := lowOf(w), highOf(w)
	for _, c := range mergeWindows(all) {
		clo, chi := lowOf(c), highOf(c)
		if chi <= lo {
			continue
		}
		if clo >= hi {
			break
		}
		if clo > lo {
			gaps = append(gaps, windowOf(lo, clo))
		}
		lo = chi
		if lo >= hi {
			break
		}
	}
	if lo < hi {
		gaps = append(gaps, windowOf(lo, hi))
	}
	return gaps, nil
}

// recordWindow adds w to the windows the store holds of the source, in
// one ingested sstable, so that it is there whole or not at all.
func (s *Store) recordWindow(ctx context.Context, source string, w Window) error {
	old, ok, err := s.get([]byte(metaWin + source))
	if err != nil {
		return fmt.Errorf("store %s: %w", s.dir, err)
	}
	var ws []Window
	if ok {
		if ws, err = decodeWindows(old); err != nil {
			return fmt.Errorf("store %s: source %s: %w", s.dir, source, err)
		}
	}
	v := appendWindows(nil, mergeWindows(append(ws, w)))
	path := s.tmpDir() + "/window.sst"
	key := []byte(metaWin + source)
	if err := s.writeSST(path, 1, indexBlockSize, func(int) ([]byte, []byte) { return key, v }); err != nil {
		return fmt.Errorf("store %s: write %s: %w", s.dir, path, err)
	}
	if err := s.db.Ingest(ctx, []string{path}); err != nil {
		return fmt.Errorf("store %s: record window of %s: %w", s.dir, source, err)
	}
	return nil
}
