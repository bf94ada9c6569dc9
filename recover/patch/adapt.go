package patch

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go/middleware"
)

// Tuning of the adaptive concurrency (see adaptive).
const (
	// startConcurrency is the writes in flight a run starts with (or the
	// cap, if lower).
	startConcurrency = 16
	// roundMin is the fewest write attempts one round judges latency by.
	roundMin = 8
	// growP50 and growP90: a round grows the limit when its median attempt
	// latency is within growP50 times the best median seen, and its 90th
	// percentile within growP90 times that best.
	growP50, growP90 = 1.5, 3.0
	// shrinkThrottle is the multiplicative decrease on throttling.
	shrinkThrottle = 0.7
)

// adaptive limits the writes in flight and adapts the limit to what the
// table takes, between 1 and a cap (Options.Concurrency), by AIMD as TCP
// does with its window:
//
//   - It counts every attempt of every write, as the SDK's retryer makes
//     them (see observeOption), so throttling the retryer absorbs is seen.
//   - Attempts are judged in rounds of at least max(roundMin, limit)
//     attempts: about one round trip of every write in flight.
//   - Slow start: until the first throttle, a round that
//     used the whole limit and kept its latency doubles the limit. Then
//     such a round adds one (additive increase).
//   - A throttled attempt (ProvisionedThroughputExceededException,
//     ThrottlingException, RequestLimitExceeded, ...: the SDK's own list
//     of throttle errors) multiplies the limit by shrinkThrottle, at most
//     once per epoch: attempts sent before the last decrease cannot
//     decrease it again, since they were sent at the old limit.
//   - A round whose latency left the band (see growP50) holds the limit:
//     the writes queue somewhere (the server, the
//     network, this machine's CPU), so more of them in flight would only
//     add latency. Latency alone never lowers it: a noisy round trip is
//     no reason to slow down, and DynamoDB says when it is overloaded.
//
// A round that did not use the whole limit (the planners are the
// bottleneck, or --rate is) does not grow it.
type adaptive struct {
	mu       sync.Mutex
	wake     chan struct{} // closed when a slot frees
	limit    float64
	max      int
	inflight int

	epoch     uint64 // advanced by every decrease
	slowStart bool
	best      time.Duration // best round median seen
	round     []time.Duration
	saturated bool // the round had every slot in use at some point

	attempts, throttled int64
	peak                int
	recent              [recentRounds]int // the limit after each of the last rounds
	rounds              int
}

// recentRounds is how many rounds the settled range is taken over.
const recentRounds = 32

func newAdaptive(cap int) *adaptive {
	return &adaptive{wake: make(chan struct{}), limit: float64(min(cap, startConcurrency)), max: cap, slowStart: true, peak: min(cap, startConcurrency)}
}

// slots is the limit as a number of writes.
func (a *adaptive) slots() int { return max(1, int(a.limit)) }

// acquire waits for a slot under the limit.
func (a *adaptive) acquire(ctx context.Context) error {
	a.mu.Lock()
	for a.inflight >= a.slots() {
		a.saturated = true
		wake := a.wake
		a.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
		a.mu.Lock()
	}
	a.inflight++
	if a.inflight >= a.slots() {
		a.saturated = true
	}
	a.mu.Unlock()
	return nil
}

// release frees a slot.
func (a *adaptive) release() {
	a.mu.Lock()
	a.inflight--
	a.signal()
	a.mu.Unlock()
}

// signal wakes the writers waiting for a slot; a.mu is held.
func (a *adaptive) signal() {
	close(a.wake)
	a.wake = make(chan struct{})
}

// begin is called when an attempt is sent, and returns the epoch to hand
// to observe with its outcome.
func (a *adaptive) begin() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.epoch
}

// observe records one attempt of a write: sent in epoch, answered after
// latency, throttled or not.
func (a *adaptive) observe(epoch uint64, latency time.Duration, throttled bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.attempts++
	if throttled {
		a.throttled++
		if epoch == a.epoch {
			a.decrease(shrinkThrottle)
		}
		return
	}
	if epoch != a.epoch {
		return // sent at the old limit: says nothing of the new one
	}
	a.round = append(a.round, latency)
	if len(a.round) < max(roundMin, a.slots()) {
		return
	}
	slices.Sort(a.round)
	p50 := a.round[len(a.round)/2]
	p90 := a.round[len(a.round)*9/10]
	if a.best == 0 || p50 < a.best {
		a.best = p50
	}
	switch {
	case float64(p50) > growP50*float64(a.best) || float64(p90) > growP90*float64(a.best):
		// Hold.
	case a.saturated:
		if a.slowStart {
			a.limit *= 2
		} else {
			a.limit++
		}
		a.limit = min(a.limit, float64(a.max))
		a.peak = max(a.peak, a.slots())
		a.signal()
	}
	a.newRound()
}

// decrease multiplies the limit by f (not below 1), ends slow start and
// starts a new epoch; a.mu is held.
func (a *adaptive) decrease(f float64) {
	a.limit = max(1, a.limit*f)
	a.slowStart = false
	a.epoch++
	a.newRound()
}

func (a *adaptive) newRound() {
	a.recent[a.rounds%recentRounds] = a.slots()
	a.rounds++
	a.round = a.round[:0]
	a.saturated = a.inflight >= a.slots()
}

// WriteStats is what the writes of a run found out about the table's
// capacity: the writes in flight the adaptive concurrency settled at, and
// how many attempts DynamoDB throttled.
type WriteStats struct {
	// Concurrency is the limit on writes in flight at the end (or at the
	// time of a progress report).
	Concurrency int
	// Low and High bound the limit over the last rounds (about the last
	// 32 round trips): where it settled. Under throttling it saws between
	// them, about 0.7 times the table's capacity in writes in flight and
	// the capacity.
	Low, High int
	// Peak is the highest limit reached; Cap is Options.Concurrency.
	Peak, Cap int
	// Attempts counts every write attempt sent, retries included;
	// Throttled those DynamoDB throttled (and the SDK retried, unless
	// attempts ran out).
	Attempts, Throttled int64
}

func (a *adaptive) stats() WriteStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	w := WriteStats{Concurrency: a.slots(), Peak: a.peak, Cap: a.max, Attempts: a.attempts, Throttled: a.throttled}
	w.Low, w.High = w.Concurrency, w.Concurrency
	for i := range min(a.rounds, recentRounds) {
		w.Low, w.High = min(w.Low, a.recent[i]), max(w.High, a.recent[i])
	}
	return w
}

// String is the summary line: "settled at 14-21 writes in flight (peak
// 32, cap 128); 15 of 1234 write attempts throttled (1.2%): ...".
func (w WriteStats) String() string {
	settled := strconv.Itoa(w.Low)
	if w.High != w.Low {
		settled += "-" + strconv.Itoa(w.High)
	}
	s := fmt.Sprintf("settled at %s %s in flight (peak %d, cap %d); ", settled, plural(w.High, "write", "writes"), w.Peak, w.Cap)
	if w.Throttled == 0 {
		return s + fmt.Sprintf("none of %d write %s throttled", w.Attempts, plural(int(w.Attempts), "attempt", "attempts"))
	}
	return s + fmt.Sprintf("%d of %d write attempts throttled (%.1f%%): the table's write capacity (or --rate to leave the application some)", w.Throttled, w.Attempts, 100*float64(w.Throttled)/float64(w.Attempts))
}

// isThrottle reports whether err is a throttling error by the SDK's own
// list (retry.DefaultThrottles: ProvisionedThroughputExceededException,
// ThrottlingException, RequestLimitExceeded, HTTP 429, ...), the errors
// the standard retryer retries with backoff.
func isThrottle(err error) bool {
	return err != nil && retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err) == aws.TrueTernary
}

// observeOption is a per-call option that reports every attempt of the
// call to a: it sits in the Finalize step right after the SDK's retry
// middleware ("Retry"), which calls the rest of the stack once per attempt
// (its backoff sleeps are outside what it times).
func observeOption(a *adaptive) func(*dynamodb.Options) {
	mw := middleware.FinalizeMiddlewareFunc("rewindObserveAttempt", func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
		epoch := a.begin()
		start := time.Now()
		out, md, err := next.HandleFinalize(ctx, in)
		a.observe(epoch, time.Since(start), isThrottle(err))
		return out, md, err
	})
	add := func(s *middleware.Stack) error {
		if _, ok := s.Finalize.Get("Retry"); !ok {
			return s.Finalize.Add(mw, middleware.Before)
		}
		return s.Finalize.Insert(mw, "Retry", middleware.After)
	}
	return func(o *dynamodb.Options) {
		o.APIOptions = append(slices.Clip(o.APIOptions), add)
	}
}
