package patch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/ddbrewind/rewind"
	"golang.org/x/sync/errgroup"
)

// chunk is up to BatchSize consecutive keys of the input, planned together
// with one read of each table.
type chunk struct {
	seq      int
	lastLine int // last input line the chunk covers
	steps    []*Step
	// wantGiven: steps already hold After (Undo), so the Source is not
	// asked.
	wantGiven bool

	// Owned by the dispatcher until registered, then by the collector.
	counts Counts // plan counts
	next   int    // first step not finished
}

// engine runs a plan, and for an apply its writes, over a stream of chunks:
//
//	producer -> planners (Readers) -> dispatcher (in order) -> writers (adaptive, up to Concurrency) -> collector
//
// The producer cuts the input into chunks; each planner reads one chunk's
// wanted and production items (two BatchGetItem calls in parallel) and
// classifies its keys; the dispatcher takes planned chunks in input order,
// prints the plan (dry run) or journals the chunk's pre-images with one
// fsync and hands its writes to the writers; the collector records
// outcomes, reports conflicts and failures, and advances the checkpoint
// over chunks that are finished, in order.
type engine struct {
	cfg    *Config
	tool   string
	schema keySchema                 // the production table's
	opts   []func(*dynamodb.Options) // on every call: the retry policy
	source Source                    // nil when chunks carry their wanted items
	target *Table
	writer *writer
	// emit selects the plan steps printed in a dry run (nil: all).
	emit func(*Step) bool

	journal *journal
	cpPath  string     // "" for no checkpoint
	cpBase  checkpoint // the identity fields of the checkpoint
	base    Counts     // totals of an earlier run, when resumed
	rate    string     // the cap on writes per second, and why (Summary.Rate)
	// ttlAttr is the production table's TTL attribute ("" when off): a
	// missing production item whose wanted item's TTL has passed is
	// ActionExpired. ttlWarning says why it could not be read.
	ttlAttr, ttlWarning string
	// adapt limits the writes in flight and paces them: to the cap, and
	// to what the table takes.
	adapt *adaptive
	total int64 // keys expected this run, for the ETA; 0 when unknown

	inflight chan struct{} // tokens for chunks in flight

	outMu sync.Mutex
	out   []byte

	mu        sync.Mutex
	live      Counts // this run, every key planned and outcome seen
	watermark int
	wmKey     rewind.Key
	done      Counts // this run, finished chunks only
	cpErr     error
	repaired  int64 // reverts owed by an interrupted run, done first

	// DynamoDB calls in flight and when the last one ended (Unix ns), so
	// that progress says what a stalled run is waiting on.
	calls    atomic.Int64
	lastCall atomic.Int64
}

// newEngine builds the engine of one run of tool over cfg, defaulted and
// validated: the retry policy put on every DynamoDB call, the production
// table's key schema (DescribeTable on cfg.To), the reader and the
// conditional writer of that table, and the rate limiter. Patch, Verify
// and Undo all start here.
func newEngine(ctx context.Context, client Client, tool string, cfg *Config) (*engine, error) {
	retryer := NewRetryer(cfg.MaxAttempts)
	opts := []func(*dynamodb.Options){func(o *dynamodb.Options) { o.Retryer = retryer }}
	schema, err := describeKeySchema(ctx, client, cfg.To, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: production table: %w", tool, err)
	}
	r := cfg.Rate
	rateDoc := fmt.Sprintf("%g writes/s", r)
	switch {
	case r == AutoRate:
		r, rateDoc = schema.autoRate()
	case math.IsInf(r, 1):
		rateDoc = "no cap (--rate 0)"
	}
	e := &engine{
		cfg:    cfg,
		tool:   tool,
		schema: schema,
		opts:   opts,
		target: &Table{Client: client, Name: schema.Call, Options: opts},
		rate:   rateDoc,
		adapt:  newAdaptive(cfg.Concurrency, r, cfg.now),
	}
	// Writes alone are observed and paced: their capacity is the table's
	// write capacity, which the reads do not share. They retry throttling
	// after a short backoff, since the pace, not the backoff, is what
	// keeps them under the capacity (see writeRetryer).
	e.ttlAttr, e.ttlWarning = productionTTL(ctx, client, schema.Call, opts)
	wretryer := writeRetryer(cfg.MaxAttempts)
	wopts := []func(*dynamodb.Options){func(o *dynamodb.Options) { o.Retryer = wretryer }, observeOption(e.adapt)}
	e.writer = &writer{client: client, table: schema.Call, keyNames: schema.Names, force: cfg.Force, opts: wopts}
	return e, nil
}

// call counts a DynamoDB call in flight until the returned func runs.
func (e *engine) call() (done func()) {
	e.calls.Add(1)
	return func() {
		e.lastCall.Store(time.Now().UnixNano())
		e.calls.Add(-1)
	}
}

type msg struct {
	reg *chunk
	res *result
}

// run drives the pipeline until next returns io.EOF, ctx is cancelled or
// something fails, and returns the first error. Writes already started
// are let finish for up to Options.WriteTimeout after an interrupt, and
// the checkpoint is written last, so an interrupted run resumes where it
// stopped.
func (e *engine) run(ctx context.Context, next func() (*chunk, error)) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	fail := func(err error) { cancel(err) }

	cfg := e.cfg
	// Chunks in flight, from the producer until the watermark passes them:
	// this bounds memory whatever the size of the input, even while one
	// chunk is stuck (throttled reads, a slow write).
	e.inflight = make(chan struct{}, cfg.Readers+4)
	toPlan := make(chan *chunk, 1)
	planned := make(chan *chunk, cfg.Readers)
	writes := make(chan *Step, cfg.Concurrency)
	results := make(chan msg, 2*cfg.Concurrency)

	go func() {
		defer close(toPlan)
		for ctx.Err() == nil {
			select {
			case e.inflight <- struct{}{}:
			case <-ctx.Done():
				return
			}
			c, err := next()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				fail(err)
				return
			}
			select {
			case toPlan <- c:
			case <-ctx.Done():
				return
			}
		}
	}()

	var planners sync.WaitGroup
	for range cfg.Readers {
		planners.Add(1)
		go func() {
			defer planners.Done()
			for c := range toPlan {
				if ctx.Err() != nil {
					continue
				}
				if err := e.plan(ctx, c); err != nil {
					fail(err)
					continue
				}
				select {
				case planned <- c:
				case <-ctx.Done():
				}
			}
		}()
	}
	go func() {
		planners.Wait()
		close(planned)
	}()

	go func() {
		defer close(writes)
		if err := e.dispatch(ctx, planned, writes, results); err != nil {
			fail(err)
		}
		for range planned { // let blocked planners finish
		}
	}()

	var writers sync.WaitGroup
	for range cfg.Concurrency {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for s := range writes {
				r := e.write(ctx, s)
				results <- msg{res: &r}
			}
		}()
	}
	go func() {
		writers.Wait() // writes is closed only once the dispatcher is done
		close(results)
	}()

	stopProgress := e.startProgress()
	e.collect(results)
	stopProgress()

	err := e.finish(context.Cause(ctx) == nil)
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// plan reads a chunk's wanted and production items and classifies each
// key. The two reads run in parallel.
func (e *engine) plan(ctx context.Context, c *chunk) error {
	keys := make([]rewind.Key, len(c.steps))
	for i, s := range c.steps {
		keys[i] = s.Key
	}
	var want, cur []rewind.Item
	var unknown []string
	g, gctx := errgroup.WithContext(ctx)
	if !c.wantGiven {
		g.Go(func() error {
			if _, ok := e.source.(*Table); ok {
				defer e.call()()
			}
			states, err := e.source.States(gctx, keys)
			if err == nil && len(states) != len(keys) {
				err = fmt.Errorf("source returned %d states for %d keys", len(states), len(keys))
			}
			if err == nil {
				want, unknown = make([]rewind.Item, len(keys)), make([]string, len(keys))
				for i, st := range states {
					want[i], unknown[i] = st.Item, st.Unknown
				}
			}
			if err != nil {
				return fmt.Errorf("%s: read wanted items (lines %d-%d): %w", e.tool, c.steps[0].Line, c.lastLine, err)
			}
			return nil
		})
	}
	g.Go(func() error {
		defer e.call()()
		var err error
		cur, err = e.target.Get(gctx, keys)
		if err != nil {
			return fmt.Errorf("%s: read production items (lines %d-%d): %w", e.tool, c.steps[0].Line, c.lastLine, err)
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return err
	}
	now := e.cfg.now()
	for i, s := range c.steps {
		s.Before = cur[i]
		if !c.wantGiven {
			s.After = want[i]
			if unknown != nil {
				s.Unknown = unknown[i]
			}
		}
		s.wantExpired = ttlPassed(s.After, e.ttlAttr, now)
		s.classify()
	}
	return nil
}

// dispatch takes planned chunks in input order. A dry run prints them; an
// apply journals each chunk's pre-images and hands the chunk to release,
// which fsyncs the journal and then hands its writes to the writers. Every
// chunk is registered with the collector before any of its results can
// reach it.
//
// Journaling and fsync overlap: while release waits for one fsync, the
// next chunks' intents are appended, and the next fsync makes all of them
// durable at once (group commit). A slow disk then costs fewer fsyncs,
// not a stall per chunk; every write is still sent only after an fsync
// that began after its intent was appended.
func (e *engine) dispatch(ctx context.Context, planned <-chan *chunk, writes chan<- *Step, results chan<- msg) error {
	ready := make(chan *journaled, e.cfg.Readers+4)
	released := make(chan error, 1)
	go func() {
		err := e.release(ctx, ready, writes, results)
		for range ready { // let the dispatcher finish
		}
		released <- err
	}()
	err := e.journalChunks(ctx, planned, ready)
	close(ready)
	if rerr := <-released; err == nil {
		err = rerr
	}
	return err
}

// journaled is a chunk whose intents are appended to the journal (not yet
// fsynced), with the steps to write and the conflicts to report.
type journaled struct {
	c                  *chunk
	toWrite, conflicts []*Step
}

// journalChunks takes planned chunks in input order, prints a dry run's
// plan, and appends an apply's intents to the journal, then hands each
// chunk to ready.
func (e *engine) journalChunks(ctx context.Context, planned <-chan *chunk, ready chan<- *journaled) error {
	waiting := map[int]*chunk{}
	nextSeq := 0
	var rec []byte
	for c := range planned {
		waiting[c.seq] = c
		for {
			c, ok := waiting[nextSeq]
			if !ok {
				break
			}
			delete(waiting, nextSeq)
			nextSeq++
			if ctx.Err() != nil {
				return nil
			}
			j := &journaled{c: c}
			for _, s := range c.steps {
				c.counts.addAction(s.Action)
				if !e.cfg.Apply {
					if e.emit == nil || e.emit(s) {
						e.print(s.AppendJSON)
					}
					s.Before, s.After, s.expect = nil, nil, nil // printed: free the items
					continue
				}
				switch {
				case s.Action == ActionUnknown:
					e.print(s.AppendJSON) // listed, never guessed
				case !s.writes():
				case s.Conflict != "" && !e.cfg.Force:
					j.conflicts = append(j.conflicts, s)
				default:
					j.toWrite = append(j.toWrite, s)
				}
			}
			// Write-ahead: every pre-image is appended here and made
			// durable by release before its write is sent.
			for _, s := range j.toWrite {
				rec = appendIntent(rec[:0], s)
				if err := e.journal.append(rec); err != nil {
					return err
				}
			}
			select {
			case ready <- j:
			case <-ctx.Done():
				return nil
			}
		}
	}
	return nil
}

// release takes journaled chunks in order: it fsyncs the journal once for
// every chunk that arrived meanwhile, then registers each with the
// collector and hands its writes to the writers.
func (e *engine) release(ctx context.Context, ready <-chan *journaled, writes chan<- *Step, results chan<- msg) error {
	var batch []*journaled
	for j := range ready {
		batch = append(batch[:0], j)
	more:
		for {
			select {
			case j, ok := <-ready:
				if !ok {
					break more
				}
				batch = append(batch, j)
			default:
				break more
			}
		}
		needSync := false
		for _, j := range batch {
			needSync = needSync || len(j.toWrite) > 0
		}
		if needSync {
			if err := e.journal.sync(); err != nil {
				return err
			}
		}
		for _, j := range batch {
			for _, s := range j.toWrite {
				s.awaiting = true
			}
			for _, s := range j.conflicts {
				s.awaiting = true
			}
			results <- msg{reg: j.c}
			for _, s := range j.conflicts {
				results <- msg{res: &result{step: s, status: StatusConflict,
					err: fmt.Errorf("%s: key %s: %s (use --force to overwrite)", e.tool, s.Key, s.Conflict)}}
			}
			for _, s := range j.toWrite {
				select {
				case writes <- s:
				case <-ctx.Done():
					// The chunk never finishes, so the checkpoint stays
					// before it and a resume plans it again.
					return nil
				}
			}
		}
	}
	return nil
}

// write applies one step, rate limited. A write already started is let
// finish after an interrupt; one not started is skipped.
func (e *engine) write(ctx context.Context, s *Step) result {
	if ctx.Err() != nil {
		return result{step: s, status: StatusSkipped}
	}
	// The first attempt's turn and slot are taken here, under ctx, so that
	// an interrupt while waiting skips the write; the attempt middleware
	// takes them again for each retry (see slotHolder).
	var h slotHolder
	if err := e.adapt.take(ctx, &h); err != nil {
		e.adapt.give(&h)
		return result{step: s, status: StatusSkipped}
	}
	defer e.adapt.give(&h)
	if testHookBeforeWrite != nil {
		testHookBeforeWrite(s)
	}
	wctx, cancel := letFinish(ctx, e.cfg.WriteTimeout)
	defer cancel()
	wctx = withSlot(wctx, &h)
	defer e.call()()
	r := e.writer.apply(wctx, s)
	if r.status == StatusFailed && ctx.Err() != nil && wctx.Err() != nil {
		// Cut short after the interrupt: whether it landed is unknown, so
		// the key does not finish and a resume plans it again against
		// what this run saw. (A revert cut short is owed too: its
		// replaced record is already durable, and a resume finishes it.)
		r.status = StatusSkipped
	}
	return r
}

// testHookBeforeWrite, when set by a test, runs before each write.
var testHookBeforeWrite func(*Step)

// collect records outcomes until results is closed, and advances the
// checkpoint's watermark over the keys that are finished, in input order:
// a key is finished when it needs no write, or its write's outcome is
// known. A key whose write was skipped (interrupt) never finishes, so the
// watermark stops before it and a resume plans it again.
//
// The checkpoint is written about once a second by a goroutine of its own
// (two fsyncs and a rename), so that the collector, which the writers hand
// every outcome to, never waits on the disk; finish writes the last one.
func (e *engine) collect(results <-chan msg) {
	registered := map[int]*chunk{}
	cur := 0 // seq of the chunk the watermark is in
	var rec []byte
	kick := make(chan struct{}, 1)
	checkpointed := make(chan struct{})
	go func() {
		defer close(checkpointed)
		for range kick {
			e.checkpoint()
		}
	}()
	defer func() {
		close(kick)
		<-checkpointed
	}()
	var lastKick time.Time
	for m := range results {
		switch {
		case m.reg != nil:
			c := m.reg
			registered[c.seq] = c
			for _, s := range c.steps {
				s.finished = !s.awaiting
			}
			e.mu.Lock()
			e.live.add(c.counts)
			e.mu.Unlock()
		case m.res != nil:
			r := m.res
			if r.status == StatusSkipped {
				continue
			}
			r.step.status, r.step.finished = r.status, true
			e.mu.Lock()
			e.live.addStatus(r.status)
			e.mu.Unlock()
			if e.journal != nil && r.step.writes() && (r.step.Conflict == "" || e.cfg.Force) {
				rec = appendOutcome(rec[:0], r)
				e.journal.append(rec) // errors are sticky; the next sync reports them
			}
			if r.status != StatusWritten {
				e.print(func(dst []byte) []byte { return appendReport(dst, r) })
			}
			r.step.Before, r.step.After, r.step.expect = nil, nil, nil // done: free the items
		}
		advanced := false
		for {
			c, ok := registered[cur]
			if !ok {
				break
			}
			e.mu.Lock()
			for c.next < len(c.steps) && c.steps[c.next].finished {
				s := c.steps[c.next]
				e.done.addAction(s.Action)
				e.done.addStatus(s.status)
				e.watermark, e.wmKey = s.Line, s.Key
				c.next++
				advanced = true
			}
			e.mu.Unlock()
			if c.next < len(c.steps) {
				break
			}
			delete(registered, cur)
			cur++
			<-e.inflight
		}
		if advanced && time.Since(lastKick) > time.Second {
			lastKick = time.Now()
			select {
			case kick <- struct{}{}:
			default: // one is being written: the next kick takes the watermark further
			}
		}
	}
}

// checkpoint syncs the journal, then replaces the checkpoint.
func (e *engine) checkpoint() {
	if e.cpPath == "" || e.cpErr != nil {
		return
	}
	e.mu.Lock()
	cp := e.cpBase
	cp.Line = e.watermark
	if e.wmKey != nil {
		cp.Key = e.wmKey.AppendJSON(nil)
	}
	cp.Counts = e.base
	cp.Counts.add(e.done)
	e.mu.Unlock()
	if cp.Line == 0 {
		return
	}
	cp.Time = e.cfg.now().UTC().Format(time.RFC3339Nano)
	if e.journal != nil {
		if err := e.journal.sync(); err != nil {
			e.cpErr = err
			return
		}
		cp.JournalSeq = e.journal.durableSeq()
	}
	if err := writeCheckpoint(e.cpPath, cp); err != nil {
		e.cpErr = err
		return
	}
}

// finish writes the last checkpoint and closes the journal; completed: the
// run went through all its input, so the journal gets its end record
// (before the checkpoint, which then counts it as durable).
func (e *engine) finish(completed bool) error {
	if completed && e.journal != nil {
		e.journal.end() // errors are sticky; close reports them
	}
	e.checkpoint()
	var err error
	if e.journal != nil {
		err = e.journal.close()
	}
	if e.cpErr != nil {
		return e.cpErr
	}
	return err
}

// print writes one JSON line to Out.
func (e *engine) print(appendLine func([]byte) []byte) {
	e.outMu.Lock()
	defer e.outMu.Unlock()
	e.out = append(appendLine(e.out[:0]), '\n')
	e.cfg.Out.Write(e.out)
}

// appendReport appends a conflict or failure line:
//
//	{"line":7,"key":{"pk":{"S":"t1#42"}},"status":"conflict","action":"restore","error":"...","current":{...}|null}
//
// current is the production item that caused a conflict, when known.
func appendReport(dst []byte, r *result) []byte {
	dst = r.step.appendHead(dst)
	dst = append(dst, `,"status":`...)
	dst = appendString(dst, string(r.status))
	dst = append(dst, `,"action":`...)
	dst = appendString(dst, string(r.step.Action))
	if r.err != nil {
		dst = append(dst, `,"error":`...)
		dst = appendString(dst, r.err.Error())
	}
	if r.hasCurrent {
		dst = append(dst, `,"current":`...)
		dst = appendItemOrNull(dst, r.current)
	}
	return append(dst, '}')
}

// counts returns this run's live counts and the totals including an
// earlier run.
func (e *engine) counts() (run, total Counts) {
	e.mu.Lock()
	defer e.mu.Unlock()
	total = e.base
	total.add(e.live)
	return e.live, total
}

// startProgress reports progress every ProgressEvery until stopped, and
// once more when stopped.
func (e *engine) startProgress() (stop func()) {
	if e.cfg.Progress == nil {
		return func() {}
	}
	start := time.Now()
	e.lastCall.CompareAndSwap(0, start.UnixNano())
	stall := max(e.cfg.ProgressEvery, time.Second)
	report := func(final bool) {
		run, _ := e.counts()
		e.mu.Lock()
		run.Keys = e.done.Keys // keys finished, not merely planned
		e.mu.Unlock()
		p := Progress{Tool: e.tool, Counts: run, Total: e.total, Elapsed: time.Since(start), Final: final, Writes: e.adapt.stats()}
		if n, idle := e.calls.Load(), time.Since(time.Unix(0, e.lastCall.Load())); n > 0 && idle >= stall && !final {
			p.InFlight, p.Idle = n, idle
		}
		e.cfg.Progress(p)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(e.cfg.ProgressEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				report(false)
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
		report(true)
	}
}

// Progress is how far a patch, verify or undo has got.
type Progress struct {
	// Tool is "patch", "verify" or "undo".
	Tool string
	// Counts are this run's (not a resumed patch's earlier runs'); Keys
	// counts the keys finished.
	Counts Counts
	// Total is the keys to do, 0 when not known yet.
	Total   int64
	Elapsed time.Duration
	// InFlight and Idle are set when the run waits on DynamoDB: calls in
	// flight and none ended for ProgressEvery (and at least a second).
	// Then InFlight counts the calls and Idle is the time since the last
	// one ended.
	InFlight int64
	Idle     time.Duration
	// Writes is the adaptive concurrency so far: the writes in flight it
	// allows now and the write attempts throttled.
	Writes WriteStats
	// Final is set on the report made when the work ends.
	Final bool
}

// Report is the progress in the shape every long-running call reports:
// keys done of the total, with the writes, conflicts and failures, and a
// note when the run waits on DynamoDB: then it is stalled on DynamoDB,
// not on rewind.
func (p Progress) Report() rewind.Progress {
	r := rewind.Progress{
		Phase: p.Tool, Unit: "keys", Done: p.Counts.Keys, Total: p.Total, Elapsed: p.Elapsed,
		Counts: []rewind.ProgressCount{
			{Name: "written", N: p.Counts.Written},
			{Name: "conflicts", N: p.Counts.Conflicts},
			{Name: "failures", N: p.Counts.Failures},
		},
		Final: p.Final,
	}
	if p.Writes.Attempts > 0 {
		r.Counts = append(r.Counts,
			rewind.ProgressCount{Name: "writers", N: int64(p.Writes.Concurrency)},
			rewind.ProgressCount{Name: "throttled", N: p.Writes.Throttled})
	}
	if p.InFlight > 0 {
		r.Note = fmt.Sprintf("waiting on DynamoDB for %s (%d %s in flight)", p.Idle.Round(time.Second), p.InFlight, plural(int(p.InFlight), "call", "calls"))
	}
	return r
}
