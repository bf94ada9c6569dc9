package indexer

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/ddbrewind/rewind"
	"github.com/parquet-go/parquet-go"
	"golang.org/x/sync/errgroup"
)

// Config configures Ingest.
type Config struct {
	// Workers is the number of objects fetched and decoded at the same
	// time. Default runtime.GOMAXPROCS(0).
	Workers int
	// BatchBytes is how many bytes of encoded keys and values a batch
	// collects before it is written and ingested. Default 32 MiB. One
	// batch is written while the next is collected: peak memory is about
	// six times this, plus 2×Workers objects.
	BatchBytes int
	// BatchObjects caps the number of objects in a batch; 0 (the default)
	// means no cap.
	BatchObjects int
	// Progress, when set, is called from the ingesting goroutine about
	// every ProgressInterval, and once at the end.
	Progress func(Progress)
	// ProgressInterval is the time between Progress calls. Default 1s.
	ProgressInterval time.Duration
	// Log receives a warning for each object that fails. Default
	// slog.Default().
	Log *slog.Logger
}

// EnsureDefaults fills in the defaults documented on Config.
func (c *Config) EnsureDefaults() {
	if c.Workers == 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	if c.BatchBytes == 0 {
		c.BatchBytes = 32 << 20
	}
	if c.ProgressInterval == 0 {
		c.ProgressInterval = time.Second
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
}

// Validate reports the first bad field.
func (c *Config) Validate() error {
	switch {
	case c.Workers < 1:
		return fmt.Errorf("ingest config: Workers %d, want at least 1", c.Workers)
	case c.BatchBytes < 1:
		return fmt.Errorf("ingest config: BatchBytes %d, want at least 1", c.BatchBytes)
	case c.BatchObjects < 0:
		return fmt.Errorf("ingest config: BatchObjects %d is negative", c.BatchObjects)
	case c.ProgressInterval < 0:
		return fmt.Errorf("ingest config: ProgressInterval %s is negative", c.ProgressInterval)
	}
	return nil
}

// Progress is how far an ingest has got.
type Progress struct {
	// Listed objects in the source so far, of which Skipped were already
	// in the manifest with the same ETag and size.
	Listed, Skipped int
	// Ingested objects committed this run; Failed objects could not be
	// read.
	Ingested, Failed int
	// Rows read from the ingested objects, of which Events were new and
	// Duplicates already stored.
	Rows, Events, Duplicates int64
	// Bytes of objects read.
	Bytes int64
	// Batches written.
	Batches int
	Elapsed time.Duration
	// Final is set on the report made when the ingest ends.
	Final bool
}

// Report is the progress in the shape every long-running call reports:
// objects done of those to read (Total grows while the source is still
// being listed), with the objects already indexed, the failures and the
// events read, and the rate in events per second.
func (p Progress) Report() rewind.Progress {
	return rewind.Progress{
		Phase: "index", Unit: "objects",
		Done: int64(p.Ingested + p.Failed), Total: int64(p.Listed - p.Skipped),
		Elapsed: p.Elapsed,
		Counts: []rewind.ProgressCount{
			{Name: "already indexed", N: int64(p.Skipped)},
			{Name: "failed", N: int64(p.Failed)},
			{Name: "events", N: p.Rows},
		},
		Rate: p.RowsPerSecond(), RateUnit: "events",
		Final: p.Final,
	}
}

// RowsPerSecond is the rate rows were read and committed.
func (p Progress) RowsPerSecond() float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	return float64(p.Rows) / p.Elapsed.Seconds()
}

// Result is what an ingest did.
type Result struct {
	Progress
	// Errors lists the objects that failed, in listing order.
	Errors []*ObjectError
}

// ObjectError is an object that could not be ingested.
type ObjectError struct {
	Object string
	Err    error
}

func (e *ObjectError) Error() string { return "object " + e.Object + ": " + e.Err.Error() }
func (e *ObjectError) Unwrap() error { return e.Err }

// PartialError is returned by Ingest when some objects failed and the
// others were ingested.
type PartialError struct {
	Failed []*ObjectError
}

func (e *PartialError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d object(s) not ingested (the others were; a rerun retries these):", len(e.Failed))
	for i, f := range e.Failed {
		if i == 10 {
			fmt.Fprintf(&b, "\n  ... and %d more", len(e.Failed)-10)
			break
		}
		b.WriteString("\n  ")
		b.WriteString(f.Error())
	}
	return b.String()
}

// ErrReadOnly is returned by Ingest on a store opened read-only.
var ErrReadOnly = errors.New("store is open read-only")

// pending is one decoded event, as the keys and values it will be stored
// under. The slices point into its object's arena.
type pending struct {
	t, n, i  []byte // index keys; i is nil for an undecodable event
	sum, rec []byte
	obj      int32 // the object's position in its batch
	dup      bool
}

type decoded struct {
	obj    Object
	etag   string
	size   int64
	arena  []byte
	evs    []pending
	tables []string
	first  int64
	last   int64
	err    error
}

// bytes returns the encoded size of the object's events.
func (d *decoded) bytes() int { return len(d.arena) }

// Ingest adds the objects of src that the store has not seen (by name,
// ETag and size) and returns what it did. When some objects fail and the
// rest succeed, the error is a *PartialError; any other error stops the
// ingest, keeping the batches already committed.
func (s *Store) Ingest(ctx context.Context, src Source, cfg Config) (Result, error) {
	if s.ro {
		return Result{}, ErrReadOnly
	}
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	count, err := s.Count()
	if err != nil {
		return Result{}, fmt.Errorf("store %s: %w", s.dir, err)
	}
	now := time.Now()
	in := &ingest{s: s, src: src, cfg: cfg, start: now, lastReport: now, count: count}
	if err := os.MkdirAll(s.tmpDir(), 0o755); err != nil {
		return Result{}, fmt.Errorf("store %s: %w", s.dir, err)
	}
	defer os.RemoveAll(s.tmpDir())

	type job struct {
		obj Object
		out chan *decoded
	}
	g, gctx := errgroup.WithContext(ctx)
	jobs := make(chan job)
	order := make(chan chan *decoded, cfg.Workers)
	g.Go(func() error {
		defer close(jobs)
		defer close(order)
		return src.List(gctx, func(o Object) error {
			in.mu.Lock()
			in.p.Listed++
			in.mu.Unlock()
			info, ok, err := s.Object(o.Name)
			if err != nil {
				return fmt.Errorf("store %s: manifest: %w", s.dir, err)
			}
			if ok && info.ETag == o.ETag && info.Size == o.Size {
				in.mu.Lock()
				in.p.Skipped++
				in.mu.Unlock()
				return nil
			}
			j := job{o, make(chan *decoded, 1)}
			select {
			case order <- j.out:
			case <-gctx.Done():
				return gctx.Err()
			}
			select {
			case jobs <- j:
			case <-gctx.Done():
				return gctx.Err()
			}
			return nil
		})
	})
	for range cfg.Workers {
		g.Go(func() error {
			for j := range jobs {
				j.out <- decodeObject(gctx, src, j.obj)
			}
			return nil
		})
	}
	// The committer collects batches; the flusher writes and ingests them,
	// one at a time and in order, while the next one is collected.
	in.flushes = make(chan []*decoded)
	g.Go(func() error {
		defer close(in.flushes)
		for c := range order {
			var d *decoded
			select {
			case d = <-c:
			case <-gctx.Done():
				return gctx.Err()
			}
			if err := in.add(gctx, d); err != nil {
				return err
			}
		}
		return in.handOff(gctx)
	})
	g.Go(func() error {
		for b := range in.flushes {
			if err := in.flush(gctx, b); err != nil {
				return err
			}
		}
		return nil
	})
	err = g.Wait()
	if err == nil && in.nflush > 0 {
		err = s.settle(ctx)
	}
	in.report(true)
	res := Result{Progress: in.snapshot(), Errors: in.failed}
	if err != nil {
		return res, err
	}
	if len(in.failed) > 0 {
		return res, &PartialError{Failed: in.failed}
	}
	return res, nil
}

// ingest is the state of one Ingest call; the committer goroutine owns all
// of it but the progress counters.
type ingest struct {
	s     *Store
	src   Source
	cfg   Config
	start time.Time
	count int64 // events in the store

	batch      []*decoded
	batchBytes int
	flushes    chan []*decoded // to the flusher
	nflush     int             // batches flushed; the flusher's own
	failed     []*ObjectError
	lastReport time.Time

	mu sync.Mutex // guards p
	p  Progress
}

func (in *ingest) snapshot() Progress {
	in.mu.Lock()
	defer in.mu.Unlock()
	p := in.p
	p.Elapsed = time.Since(in.start)
	return p
}

func (in *ingest) report(final bool) {
	if in.cfg.Progress == nil {
		return
	}
	now := time.Now()
	if !final && now.Sub(in.lastReport) < in.cfg.ProgressInterval {
		return
	}
	in.lastReport = now
	p := in.snapshot()
	p.Final = final
	in.cfg.Progress(p)
}

func (in *ingest) add(ctx context.Context, d *decoded) error {
	if d.err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		oe := &ObjectError{Object: d.obj.Name, Err: d.err}
		in.failed = append(in.failed, oe)
		in.cfg.Log.Warn("object not ingested", slog.String("object", d.obj.Name), slog.String("error", d.err.Error()))
		in.mu.Lock()
		in.p.Failed++
		in.mu.Unlock()
		in.report(false)
		return nil
	}
	in.batch = append(in.batch, d)
	in.batchBytes += d.bytes()
	if in.batchBytes >= in.cfg.BatchBytes || (in.cfg.BatchObjects > 0 && len(in.batch) >= in.cfg.BatchObjects) {
		if err := in.handOff(ctx); err != nil {
			return err
		}
	}
	in.report(false)
	return nil
}

// decodeObject reads one object into its encoded events. Errors name the
// row; the caller names the object.
func decodeObject(ctx context.Context, src Source, o Object) (d *decoded) {
	d = &decoded{obj: o}
	if err := ctx.Err(); err != nil {
		d.err = err
		return d
	}
	c, etag, size, err := src.Open(ctx, o)
	if err != nil {
		d.err = fmt.Errorf("read: %w", err)
		return d
	}
	defer c.Close()
	d.etag, d.size = etag, size
	defer func() {
		// parquet-go panics on some malformed input.
		if r := recover(); r != nil {
			d.err = fmt.Errorf("corrupt parquet: %v", r)
			d.evs, d.arena = nil, nil
		}
	}()
	d.err = d.decode(c, size)
	if d.err != nil {
		d.evs, d.arena = nil, nil
	}
	return d
}

type offs struct{ t, n, i, sum, rec, end int }

// Event times outside [earliestEvent, now+maxFutureSkew] are refused: a
// stream record older than DynamoDB or from the future says a clock or a
// writer is wrong, and one such event would stretch every default window
// (and stats' timeline) over centuries. The object fails, named, and the
// others are still ingested.
var earliestEvent = time.Date(2012, 1, 1, 0, 0, 0, 0, time.UTC)

const maxFutureSkew = time.Hour

func plausibleTime(micros int64, now time.Time) error {
	t := time.UnixMicro(micros).UTC()
	switch {
	case t.Before(earliestEvent):
		return fmt.Errorf("event time %s is before DynamoDB existed (a skewed clock or a bad writer)", t.Format(time.RFC3339Nano))
	case t.After(now.Add(maxFutureSkew)):
		return fmt.Errorf("event time %s is more than %s ahead of this machine's clock (%s)", t.Format(time.RFC3339Nano), maxFutureSkew, now.UTC().Format(time.RFC3339))
	}
	return nil
}

func (d *decoded) decode(r io.ReaderAt, size int64) error {
	f, err := parquet.OpenFile(r, size)
	if err != nil {
		return fmt.Errorf("corrupt parquet: %w", err)
	}
	pr := parquet.NewGenericReader[rewind.ParquetRow](f)
	defer pr.Close()
	n := pr.NumRows()
	d.arena = make([]byte, 0, int(n)*512)
	var spans []offs
	rows := make([]rewind.ParquetRow, 128)
	var keyEnc []byte
	rowNum := 0
	tables := map[string]bool{}
	d.first, d.last = 0, 0
	now := time.Now()
	for {
		k, err := pr.Read(rows)
		for i := range rows[:k] {
			row := &rows[i]
			rowNum++
			if row.EventID == "" {
				return fmt.Errorf("row %d: no event_id", rowNum)
			}
			ev, cerr := row.ChangeEvent()
			if cerr != nil {
				return fmt.Errorf("row %d (event %s): %w", rowNum, row.EventID, cerr)
			}
			undecodable := ev.DecodeError != ""
			if !undecodable && ev.Table == "" {
				return fmt.Errorf("row %d (event %s): no source_table", rowNum, row.EventID)
			}
			micros := row.EventTime
			if !undecodable {
				if err := plausibleTime(micros, now); err != nil {
					return fmt.Errorf("row %d (event %s): %w", rowNum, row.EventID, err)
				}
			}
			if len(spans) == 0 || micros < d.first {
				d.first = micros
			}
			if len(spans) == 0 || micros > d.last {
				d.last = micros
			}
			if ev.Table != "" && !tables[ev.Table] {
				tables[ev.Table] = true
				d.tables = append(d.tables, ev.Table)
			}
			keyEnc = keyEnc[:0]
			if !undecodable {
				keyEnc = ev.Keys.AppendEncode(keyEnc)
			}
			var o offs
			a := d.arena
			o.t = len(a)
			a = append(a, spaceTime)
			evStart := len(a)
			a = appendEv(a, micros, ev.SequenceNumber, ev.EventID)
			evEnd := len(a)
			o.n = len(a)
			a = append(a, spaceTenant)
			a = appendStr(a, ev.Tenant)
			a = append(a, a[evStart:evEnd]...)
			o.i = len(a)
			if !undecodable {
				a = append(a, spaceItem)
				a = appendStr(a, ev.Table)
				a = append(a, keyEnc...)
				a = append(a, a[evStart:evEnd]...)
			}
			o.sum = len(a)
			a = appendSummary(a, &ev, keyEnc)
			o.rec = len(a)
			a = appendRecord(a, &ev)
			o.end = len(a)
			d.arena = a
			spans = append(spans, o)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("corrupt parquet after row %d: %w", rowNum, err)
		}
		if k == 0 {
			return fmt.Errorf("corrupt parquet: reader stalled after row %d", rowNum)
		}
	}
	if int64(rowNum) != n {
		return fmt.Errorf("corrupt parquet: read %d rows, footer says %d", rowNum, n)
	}
	a := d.arena
	d.evs = make([]pending, len(spans))
	for j, o := range spans {
		p := &d.evs[j]
		p.t = a[o.t:o.n:o.n]
		p.n = a[o.n:o.i:o.i]
		if o.sum > o.i {
			p.i = a[o.i:o.sum:o.sum]
		}
		p.sum = a[o.sum:o.rec:o.rec]
		p.rec = a[o.rec:o.end:o.end]
	}
	return nil
}

// handOff passes the batch collected so far to the flusher.
func (in *ingest) handOff(ctx context.Context) error {
	if len(in.batch) == 0 {
		return nil
	}
	select {
	case in.flushes <- in.batch:
	case <-ctx.Done():
		return ctx.Err()
	}
	in.batch, in.batchBytes = nil, 0
	return nil
}

// flush writes a batch as sstables and ingests them in one atomic step.
// Only the flusher goroutine calls it.
func (in *ingest) flush(ctx context.Context, batch []*decoded) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s := in.s
	var all []*pending
	for oi, d := range batch {
		for j := range d.evs {
			d.evs[j].obj = int32(oi)
			all = append(all, &d.evs[j])
		}
	}
	// Time order; the first object in listing order keeps a duplicate.
	sortPending(all, func(p *pending) []byte { return p.t })
	for j := 1; j < len(all); j++ {
		if bytes.Equal(all[j].t, all[j-1].t) {
			all[j].dup = true
		}
	}
	if err := s.markStored(all); err != nil {
		return err
	}
	live := all[:0:0]
	for _, p := range all {
		if !p.dup {
			live = append(live, p)
		}
	}
	newByObj := make([]int64, len(batch))
	for _, p := range live {
		newByObj[p.obj]++
	}

	// The spaces' sstables are written at once: they share no data, and
	// each one's fsync then overlaps the others' work.
	var (
		pathMu sync.Mutex
		paths  []string
		wg     errgroup.Group
	)
	write := func(space string, n int, kv func(int) ([]byte, []byte)) error {
		if n == 0 {
			return nil
		}
		path := filepath.Join(s.tmpDir(), fmt.Sprintf("%06d-%s.sst", in.nflush, space))
		if err := s.writeSST(path, n, kv); err != nil {
			return fmt.Errorf("store %s: write %s: %w", s.dir, path, err)
		}
		pathMu.Lock()
		paths = append(paths, path)
		pathMu.Unlock()
		return nil
	}
	wg.Go(func() error {
		var rk []byte
		return write("r", len(live), func(j int) ([]byte, []byte) {
			rk = append(append(rk[:0], spaceRecord), live[j].t[1:]...)
			return rk, live[j].rec
		})
	})
	wg.Go(func() error {
		return write("t", len(live), func(j int) ([]byte, []byte) { return live[j].t, live[j].sum })
	})
	byTenant := slices.Clone(live)
	wg.Go(func() error {
		sortPending(byTenant, func(p *pending) []byte { return p.n })
		return write("n", len(byTenant), func(j int) ([]byte, []byte) { return byTenant[j].n, byTenant[j].sum })
	})
	var items []*pending
	for _, p := range live {
		if p.i != nil {
			items = append(items, p)
		}
	}
	wg.Go(func() error {
		sortPending(items, func(p *pending) []byte { return p.i })
		return write("i", len(items), func(j int) ([]byte, []byte) { return items[j].i, items[j].sum })
	})

	// Metadata: manifest entries, the event count, sources and tables.
	type kv struct{ k, v []byte }
	var meta []kv
	var rows, dups int64
	tables := map[string]bool{}
	for oi, d := range batch {
		info := ObjectInfo{
			Name: d.obj.Name, ETag: d.etag, Size: d.size,
			Rows: int64(len(d.evs)), New: newByObj[oi], Duplicates: int64(len(d.evs)) - newByObj[oi],
			First: d.first, Last: d.last,
		}
		rows += info.Rows
		dups += info.Duplicates
		meta = append(meta, kv{[]byte(metaObj + d.obj.Name), appendManifest(nil, &info)})
		for _, t := range d.tables {
			tables[t] = true
		}
	}
	for t := range tables {
		meta = append(meta, kv{[]byte(metaTable + t), nil})
	}
	newCount := in.count + int64(len(live))
	meta = append(meta,
		kv{metaCount, binary.AppendUvarint(nil, uint64(newCount))},
		kv{[]byte(metaSrc + in.src.Name()), nil},
		kv{metaVersion, []byte(storeVersion)},
	)
	slices.SortFunc(meta, func(a, b kv) int { return bytes.Compare(a.k, b.k) })
	meta = slices.CompactFunc(meta, func(a, b kv) bool { return bytes.Equal(a.k, b.k) })
	wg.Go(func() error {
		return write("M", len(meta), func(j int) ([]byte, []byte) { return meta[j].k, meta[j].v })
	})
	if err := wg.Wait(); err != nil {
		return err
	}
	if err := s.db.Ingest(ctx, paths); err != nil {
		return fmt.Errorf("store %s: ingest batch of %d objects (%s ... %s): %w",
			s.dir, len(batch), batch[0].obj.Name, batch[len(batch)-1].obj.Name, err)
	}
	for _, p := range paths {
		os.Remove(p)
	}
	in.count = newCount
	in.nflush++
	in.mu.Lock()
	in.p.Batches++
	in.p.Ingested += len(batch)
	in.p.Rows += rows
	in.p.Events += int64(len(live))
	in.p.Duplicates += dups
	for _, d := range batch {
		in.p.Bytes += d.size
	}
	in.mu.Unlock()
	return nil
}

// bigWritable is an objstorage.Writable that writes in 1 MiB chunks:
// Pebble's own file writable buffers 4 KiB, a system call per data block,
// which costs as much as encoding the block.
type bigWritable struct {
	f *os.File
	w *bufio.Writer
}

func (b *bigWritable) Write(p []byte) error {
	_, err := b.w.Write(p)
	return err
}

// Finish flushes and syncs the file: Ingest needs it durable.
func (b *bigWritable) Finish() error {
	err := b.w.Flush()
	if err == nil {
		err = b.f.Sync()
	}
	if cerr := b.f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (b *bigWritable) Abort() { b.f.Close() }

// settle waits until Pebble has compacted level 0 back to its usual depth.
// Queries open the store read-only, and a read-only store never compacts:
// without this, every query would pay for the sublevels the last batches
// left, a seek into each.
// It gives up, leaving the rest to the next write, when Pebble runs no
// compaction for a second.
func (s *Store) settle(ctx context.Context) error {
	idle := 0
	for {
		m := s.db.Metrics()
		if int(m.Levels[0].Sublevels) <= s.opts.L0CompactionThreshold && m.Compact.NumInProgress == 0 {
			return nil
		}
		if m.Compact.NumInProgress == 0 {
			if idle++; idle >= 50 {
				return nil
			}
		} else {
			idle = 0
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// sortPending sorts events by key, then by object (so the first object in
// listing order keeps a duplicate). Keys of one space share a long prefix
// (the space, the table, a tenant), so it compares the 8 bytes after the
// prefix all keys share as an integer first.
func sortPending(ps []*pending, key func(*pending) []byte) {
	if len(ps) < 2 {
		return
	}
	first := key(ps[0])
	lcp := len(first)
	for _, p := range ps[1:] {
		k := key(p)
		n := min(lcp, len(k))
		j := 0
		for j < n && k[j] == first[j] {
			j++
		}
		lcp = j
	}
	type ent struct {
		pfx uint64
		p   *pending
	}
	ents := make([]ent, len(ps))
	for i, p := range ps {
		var b [8]byte
		copy(b[:], key(p)[lcp:])
		ents[i] = ent{binary.BigEndian.Uint64(b[:]), p}
	}
	slices.SortFunc(ents, func(a, b ent) int {
		if a.pfx != b.pfx {
			return cmp.Compare(a.pfx, b.pfx)
		}
		if c := bytes.Compare(key(a.p)[lcp:], key(b.p)[lcp:]); c != 0 {
			return c
		}
		return cmp.Compare(a.p.obj, b.p.obj)
	})
	for i, e := range ents {
		ps[i] = e.p
	}
}

// markStored marks the events, sorted by time key, that the store already
// holds. It walks the store's time space over the batch's range alongside
// the batch, so it costs one seek when the batch is newer than the store.
func (s *Store) markStored(sorted []*pending) error {
	if len(sorted) == 0 {
		return nil
	}
	lo := sorted[0].t
	hi := append(bytes.Clone(sorted[len(sorted)-1].t), 0)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("store %s: %w", s.dir, err)
	}
	defer it.Close()
	valid := it.First()
	for _, p := range sorted {
		if !valid {
			break
		}
		c := bytes.Compare(it.Key(), p.t)
		if c < 0 {
			valid = it.SeekGE(p.t)
			if !valid {
				break
			}
			c = bytes.Compare(it.Key(), p.t)
		}
		if c == 0 {
			p.dup = true
		}
	}
	return it.Error()
}

func (s *Store) writeSST(path string, n int, kv func(int) ([]byte, []byte)) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := sstable.NewWriter(&bigWritable{f: f, w: bufio.NewWriterSize(f, 1<<20)}, s.opts.MakeWriterOptions(0, s.db.TableFormat()))
	for j := range n {
		k, v := kv(j)
		if err := w.Set(k, v); err != nil {
			w.Close()
			return err
		}
	}
	return w.Close()
}
