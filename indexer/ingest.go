package indexer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ddbrewind/rewind"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"
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
	// MemoryLimit is the Go runtime's soft memory limit while Ingest runs
	// (runtime/debug.SetMemoryLimit), restored when the last ingest under
	// way returns. The runtime then collects garbage before the heap
	// outgrows it, instead of letting it double its live size, so peak
	// memory stays about the same whatever the input's size. Default
	// 12×BatchBytes and at least 384 MiB; -1 leaves the runtime's limit alone, and so
	// does a GOMEMLIMIT in the environment or a lower limit in force.
	// The limit is the process's: a program that ingests while it does
	// other work should pass -1 and choose its own.
	MemoryLimit int64
	// ProgressInterval is the time between Progress calls. Default 1s.
	ProgressInterval time.Duration
	// Log receives a warning for each object that fails. Default
	// slog.Default().
	Log *slog.Logger
	// Window, when it has a bound, limits the ingest to the objects of the
	// table=/dt=/hour= partitions that may hold events of it (the source
	// must be a WindowSource). Default: no bound, every object. When every
	// object listed is ingested, the store records the window (the whole
	// time line without a bound) as held for the source; see
	// Store.Unindexed.
	Window Window
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
	if c.MemoryLimit == 0 {
		c.MemoryLimit = max(minMemoryLimit, memoryLimitPerBatchByte*int64(c.BatchBytes))
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
	case c.MemoryLimit < -1:
		return fmt.Errorf("ingest config: MemoryLimit %d, want a size in bytes or -1", c.MemoryLimit)
	case c.ProgressInterval < 0:
		return fmt.Errorf("ingest config: ProgressInterval %s is negative", c.ProgressInterval)
	case c.Window.Empty():
		return fmt.Errorf("ingest config: Window [%s, %s) is empty (want From before To)",
			time.UnixMicro(c.Window.From).UTC().Format(time.RFC3339Nano), time.UnixMicro(c.Window.To).UTC().Format(time.RFC3339Nano))
	}
	return nil
}

// Progress is how far an ingest has got.
type Progress struct {
	// Listed objects in the source so far, of which Skipped were already
	// in the manifest with the same ETag and size.
	Listed, Skipped int
	// ListedBytes is the size of the objects listed.
	ListedBytes int64
	// Windowed is set when the ingest lists only a window's partitions.
	Windowed bool
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
	counts := []rewind.ProgressCount{
		{Name: "already indexed", N: int64(p.Skipped)},
		{Name: "failed", N: int64(p.Failed)},
		{Name: "events", N: p.Rows},
	}
	if p.Windowed {
		counts = append(counts,
			rewind.ProgressCount{Name: "MB listed", N: p.ListedBytes >> 20},
			rewind.ProgressCount{Name: "MB read", N: p.Bytes >> 20})
	}
	return rewind.Progress{
		Phase: "index", Unit: "objects",
		Done: int64(p.Ingested + p.Failed), Total: int64(p.Listed - p.Skipped),
		Elapsed: p.Elapsed,
		Counts:  counts,
		Rate:    p.RowsPerSecond(), RateUnit: "events",
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
	defer limitMemory(cfg.MemoryLimit)()
	windowed := cfg.Window.HasFrom || cfg.Window.HasTo
	list := src.List
	if windowed {
		ws, ok := src.(WindowSource)
		if !ok {
			return Result{}, fmt.Errorf("source %s cannot list by window (want s3://bucket/prefix or a directory of %s)", src.Name(), CaptureLayout)
		}
		list = func(ctx context.Context, fn func(Object) error) error { return ws.ListWindow(ctx, cfg.Window, fn) }
	}
	now := time.Now()
	in := &ingest{s: s, src: src, cfg: cfg, start: now, lastReport: now, count: count,
		budget: semaphore.NewWeighted(2 * int64(cfg.BatchBytes))}
	in.ratio.Store(initialDecodedRatio)
	in.p.Windowed = windowed
	if err := os.MkdirAll(s.tmpDir(), 0o755); err != nil {
		return Result{}, fmt.Errorf("store %s: %w", s.dir, err)
	}
	defer os.RemoveAll(s.tmpDir())

	type job struct {
		obj    Object
		out    chan *decoded
		weight int64
	}
	g, gctx := errgroup.WithContext(ctx)
	jobs := make(chan job)
	order := make(chan chan *decoded, cfg.Workers)
	g.Go(func() error {
		defer close(jobs)
		defer close(order)
		return list(gctx, func(o Object) error {
			in.mu.Lock()
			in.p.Listed++
			in.p.ListedBytes += o.Size
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
			// The decoded objects not yet handed to the flusher stay
			// within the budget (see ingest.budget), taken in listing
			// order: the committer waits for objects in that order.
			j := job{o, make(chan *decoded, 1), in.weigh(o)}
			if err := in.budget.Acquire(gctx, j.weight); err != nil {
				return err
			}
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
				d := decodeObject(gctx, src, j.obj)
				d.weight = j.weight
				j.out <- d
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
	if err == nil && len(in.failed) == 0 {
		// Every object listed is in: the store holds the window.
		err = s.recordWindow(ctx, src.Name(), cfg.Window)
	}
	if err == nil && in.nflush > 0 {
		// Housekeeping: the store is complete without it, so only an
		// interrupt fails the ingest.
		if cerr := s.consolidate(ctx); ctx.Err() != nil {
			err = ctx.Err()
		} else if cerr != nil {
			s.log.Warn("index: the store is complete, but merging its small files failed: queries open more files until the next ingest merges them", "err", cerr)
		}
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

	batch       []*decoded
	batchBytes  int
	batchWeight int64

	// budget bounds the decoded objects not yet handed to the flusher,
	// by their weight (weigh), to 2×BatchBytes, whatever the objects'
	// size: without it, as many objects as the decoders and the order
	// queue hold are in memory at once, and an object of 45,000 events
	// decodes to ~34 MB. No deadlock: a weight is at most BatchBytes, a
	// batch is handed off once its weight reaches BatchBytes, and weights
	// are taken in the order the committer consumes them, so the object
	// the committer waits for can always take its weight.
	budget *semaphore.Weighted
	// ratio is the decoded bytes per object byte seen so far, ×1024.
	ratio      atomic.Int64
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
		in.budget.Release(d.weight)
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
	in.batchWeight += d.weight
	if d.size > 0 {
		// A running mean over about the last eight objects.
		r := int64(d.bytes()) * 1024 / d.size
		in.ratio.Store((in.ratio.Load()*7 + r) / 8)
	}
	if in.batchBytes >= in.cfg.BatchBytes || in.batchWeight >= int64(in.cfg.BatchBytes) || (in.cfg.BatchObjects > 0 && len(in.batch) >= in.cfg.BatchObjects) {
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
			d.evs, d.nbytes = nil, 0
		}
	}()
	d.err = d.decode(c, size)
	if d.err != nil {
		d.evs, d.nbytes = nil, 0
	}
	return d
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
	in.budget.Release(in.batchWeight)
	in.batch, in.batchBytes, in.batchWeight = nil, 0, 0
	return nil
}

// initialDecodedRatio is ingest.ratio before the first object: about what
// an object of events with ~300-byte images decodes to per byte.
const initialDecodedRatio = 6 * 1024

// weigh returns the budget an object takes until its batch is handed off:
// its estimated decoded size, from its size and the ratio seen so far,
// between 1 and BatchBytes.
func (in *ingest) weigh(o Object) int64 {
	w := o.Size * in.ratio.Load() / 1024
	return min(max(w, 1), int64(in.cfg.BatchBytes))
}
