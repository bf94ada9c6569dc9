package diff

import (
	"bufio"
	"bytes"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
)

// record is one scanned item as the matcher needs it: its canonical key,
// a digest of its state (equal exactly when rewind.EqualItems says so) and,
// when attribute diffs are wanted, the item as DynamoDB JSON.
type record struct {
	key    []byte
	digest [32]byte
	item   []byte
}

// recordOverhead is what a record costs in memory beyond its bytes: the
// slice headers and the array slot.
const recordOverhead = 3*24 + 32

func (r *record) size() int64 { return int64(len(r.key) + len(r.item) + recordOverhead) }

func appendRecord(dst []byte, r *record) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(r.key)))
	dst = append(dst, r.key...)
	dst = append(dst, r.digest[:]...)
	dst = binary.AppendUvarint(dst, uint64(len(r.item)))
	return append(dst, r.item...)
}

// spiller collects the records of one table. Past its byte limit it sorts
// what it holds and writes it to a run file, so a table of any size needs
// only the limit in memory; sorted() then merges the runs.
type spiller struct {
	side  string // "restored" or "production", for messages
	dir   string
	limit int64
	log   *slog.Logger

	mu          sync.Mutex
	buf         []record
	bytes       int64
	runs        []string
	spillBytes  int64
	compactions int
	spilled     int // runs written, before any compaction
}

func newSpiller(side, dir string, limit int64, log *slog.Logger) *spiller {
	return &spiller{side: side, dir: dir, limit: max(1, limit), log: log}
}

// add takes records; it may spill a run before returning.
func (s *spiller) add(rs []record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range rs {
		s.buf = append(s.buf, rs[i])
		s.bytes += rs[i].size()
	}
	if s.bytes >= s.limit {
		return s.spill()
	}
	return nil
}

func sortRecords(rs []record) {
	slices.SortFunc(rs, func(a, b record) int { return bytes.Compare(a.key, b.key) })
}

func (s *spiller) spill() error {
	sortRecords(s.buf)
	f, err := os.CreateTemp(s.dir, "rewind-diff-run-*.bin")
	if err != nil {
		return fmt.Errorf("diff: spill a sorted run of the %s table: %w (set the temporary directory to a writable one with room for both tables' keys)", s.side, err)
	}
	s.runs = append(s.runs, f.Name())
	s.spilled++
	bw := bufio.NewWriterSize(f, 256<<10)
	var line []byte
	var written int64
	for i := range s.buf {
		line = appendRecord(line[:0], &s.buf[i])
		bw.Write(line)
		written += int64(len(line))
	}
	err = bw.Flush()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("diff: spill a sorted run of the %s table to %s: %w", s.side, f.Name(), err)
	}
	s.spillBytes += written
	s.log.Debug("diff: spilled a sorted run", "table", s.side, "run", f.Name(), "records", len(s.buf), "bytes", s.bytes)
	clear(s.buf)
	s.buf, s.bytes = s.buf[:0], 0
	if len(s.runs) >= maxRuns {
		return s.compact()
	}
	return nil
}

// maxRuns bounds the run files of a table, and so the files the final
// merge holds open: past it, the runs are merged into one.
var maxRuns = 128

// compact merges every run into one.
func (s *spiller) compact() error {
	srcs, err := s.openRuns()
	if err != nil {
		return err
	}
	m, err := newMergeSource(srcs)
	if err != nil {
		for _, o := range srcs {
			o.close()
		}
		return err
	}
	f, err := os.CreateTemp(s.dir, "rewind-diff-run-*.bin")
	if err != nil {
		m.close()
		return fmt.Errorf("diff: merge the sorted runs of the %s table: %w", s.side, err)
	}
	bw := bufio.NewWriterSize(f, 256<<10)
	var line []byte
	for {
		r, ok, err := m.next()
		if err != nil {
			m.close()
			f.Close()
			return err
		}
		if !ok {
			break
		}
		line = appendRecord(line[:0], &r)
		bw.Write(line)
	}
	err = bw.Flush()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	m.close()
	if err != nil {
		return fmt.Errorf("diff: merge the sorted runs of the %s table into %s: %w", s.side, f.Name(), err)
	}
	for _, r := range s.runs {
		os.Remove(r)
	}
	s.log.Debug("diff: merged sorted runs", "table", s.side, "runs", len(s.runs), "into", f.Name())
	s.runs = []string{f.Name()}
	s.compactions++
	return nil
}

func (s *spiller) openRuns() ([]source, error) {
	var srcs []source
	for _, p := range s.runs {
		f, err := os.Open(p)
		if err != nil {
			for _, o := range srcs {
				o.close()
			}
			return nil, fmt.Errorf("diff: open a run of the %s table: %w", s.side, err)
		}
		srcs = append(srcs, &runSource{f: f, r: bufio.NewReaderSize(f, 64<<10), name: p})
	}
	return srcs, nil
}

// runCount is the runs spilled so far.
func (s *spiller) runCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.spilled
}

// source yields records in key order.
type source interface {
	next() (record, bool, error)
	close() error
}

type sliceSource struct {
	rs []record
	i  int
}

func (s *sliceSource) next() (record, bool, error) {
	if s.i >= len(s.rs) {
		return record{}, false, nil
	}
	r := s.rs[s.i]
	s.rs[s.i] = record{} // let it go
	s.i++
	return r, true, nil
}

func (s *sliceSource) close() error { return nil }

type runSource struct {
	f    *os.File
	r    *bufio.Reader
	name string
}

func (s *runSource) next() (record, bool, error) {
	n, err := binary.ReadUvarint(s.r)
	if errors.Is(err, io.EOF) {
		return record{}, false, nil
	}
	if err != nil {
		return record{}, false, fmt.Errorf("diff: read run %s: %w", s.name, err)
	}
	var rec record
	rec.key = make([]byte, n)
	if _, err := io.ReadFull(s.r, rec.key); err != nil {
		return record{}, false, fmt.Errorf("diff: read run %s: %w", s.name, err)
	}
	if _, err := io.ReadFull(s.r, rec.digest[:]); err != nil {
		return record{}, false, fmt.Errorf("diff: read run %s: %w", s.name, err)
	}
	if n, err = binary.ReadUvarint(s.r); err != nil {
		return record{}, false, fmt.Errorf("diff: read run %s: %w", s.name, err)
	}
	if n > 0 {
		rec.item = make([]byte, n)
		if _, err := io.ReadFull(s.r, rec.item); err != nil {
			return record{}, false, fmt.Errorf("diff: read run %s: %w", s.name, err)
		}
	}
	return rec, true, nil
}

func (s *runSource) close() error { return s.f.Close() }

// mergeSource merges sorted sources into one, dropping a key seen twice
// (a Scan returns each item once; the drop guards against a run read
// twice).
type mergeSource struct {
	h    srcHeap
	last []byte
	dups int64
	all  []source
}

type srcHead struct {
	rec record
	src source
}

type srcHeap []*srcHead

func (h srcHeap) Len() int           { return len(h) }
func (h srcHeap) Less(i, j int) bool { return bytes.Compare(h[i].rec.key, h[j].rec.key) < 0 }
func (h srcHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *srcHeap) Push(x any)        { *h = append(*h, x.(*srcHead)) }
func (h *srcHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func newMergeSource(srcs []source) (*mergeSource, error) {
	m := &mergeSource{all: srcs}
	for _, s := range srcs {
		r, ok, err := s.next()
		if err != nil {
			return nil, err
		}
		if ok {
			m.h = append(m.h, &srcHead{rec: r, src: s})
		}
	}
	heap.Init(&m.h)
	return m, nil
}

func (m *mergeSource) next() (record, bool, error) {
	for m.h.Len() > 0 {
		top := m.h[0]
		rec := top.rec
		r, ok, err := top.src.next()
		if err != nil {
			return record{}, false, err
		}
		if ok {
			top.rec = r
			heap.Fix(&m.h, 0)
		} else {
			heap.Pop(&m.h)
		}
		if m.last != nil && bytes.Equal(m.last, rec.key) {
			m.dups++
			continue
		}
		m.last = rec.key
		return rec, true, nil
	}
	return record{}, false, nil
}

func (m *mergeSource) close() error {
	var errs []error
	for _, s := range m.all {
		errs = append(errs, s.close())
	}
	return errors.Join(errs...)
}

// sorted returns every record added, in key order. No add may follow.
func (s *spiller) sorted() (*mergeSource, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sortRecords(s.buf)
	runs, err := s.openRuns()
	if err != nil {
		return nil, err
	}
	srcs := append([]source{&sliceSource{rs: s.buf}}, runs...)
	s.buf = nil
	return newMergeSource(srcs)
}
