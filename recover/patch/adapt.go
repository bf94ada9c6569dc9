package patch

import (
	"context"
	"fmt"
	"math"
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
	// cap, if lower): 32 at a 5 ms round trip is 6,400 writes/s, within
	// what a new on-demand table takes (4,000 WCU, with bursts above) and
	// within the burst capacity a provisioned table keeps (300 seconds of
	// its unused throughput); a table that takes less throttles, and the
	// first throttle cuts it (see throttle). Starting lower costs a run of
	// a few thousand keys a noticeable part of its length in ramp-up.
	startConcurrency = 32
	// roundMin is the fewest write attempts one round judges latency by.
	roundMin = 8
	// slowStartRound: in slow start a round is judged after this share of
	// the limit's attempts (at least roundMin), so that the limit doubles
	// every half round trip while latency holds, not every round trip.
	// Once throttled (or after slow start), a round is the whole limit.
	slowStartRound = 0.5
	// growP50 and growP90: a round grows the limit when its median attempt
	// latency is within growP50 times the best median seen, and its 90th
	// percentile within growP90 times that best.
	growP50, growP90 = 1.5, 3.0
	// shrinkThrottle is the multiplicative decrease of the writes in
	// flight on throttling.
	shrinkThrottle = 0.7
	// needHeadroom: on throttling the writes in flight are not cut below
	// what the new rate needs at the best latency seen, times this, so
	// that the rate (not the writes in flight) is what holds the pace.
	needHeadroom = 1.5

	// Tuning of the adaptive rate (see adaptive).
	//
	// rateShrink is the multiplicative decrease of the rate on
	// throttling, applied to the lower of the pace and the rate measured
	// over the last rateWindow.
	rateShrink = 0.85
	// rateStep is the increase: this share of the pace, every rateEvery
	// while the writes keep up with it (so a first estimate far too low,
	// as from a handful of writes, is left within seconds).
	rateStep  = 0.03
	rateEvery = 100 * time.Millisecond
	// rateBuckets of rateBucket each measure the writes/s that succeed:
	// over a second, since a process short of CPU sends in clumps and a
	// shorter window mistakes a stall for the table's limit.
	rateBuckets = 20
	rateBucket  = 50 * time.Millisecond
	rateWindow  = rateBuckets * rateBucket
)

// adaptive limits the writes in flight and adapts the limit to what the
// table takes, between 1 and a cap (Options.Concurrency), by AIMD as TCP
// does with its window:
//
//   - It counts every attempt of every write, as the SDK's retryer makes
//     them (see observeOption), so throttling the retryer absorbs is seen.
//   - Attempts are judged in rounds of at least max(roundMin, limit)
//     attempts: about one round trip of every write in flight (half of
//     that in slow start, see slowStartRound).
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
//
// Throttling is a limit on writes per second, so the writes in flight
// alone cannot hold a pace under it: at a given concurrency the pace
// follows the latency. The adaptive control therefore paces the attempts
// too (pacer), by AIMD on a rate:
//
//   - Until the first throttle the pace is the cap (Options.Rate), none
//     by default.
//   - A throttled attempt (once per epoch, as above) sets the rate to
//     rateShrink times the lower of the pace and the writes/s that
//     succeeded over the last rateWindow: just under what the table took.
//   - Every rateEvery in which the writes kept up with the pace (and no
//     throttle came) adds rateStep of it.
//
// Every attempt, retries included, takes its turn from the pacer and then
// a slot, and gives the slot back when it is answered: a write waiting in
// the retryer's backoff holds no slot (see slotHolder).
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

	// The adaptive rate.
	now       func() time.Time
	pace      *pacer
	capRate   float64 // Options.Rate as writes/s; +Inf: none
	rate      float64 // the adapted rate; +Inf until the first throttle
	lastRate  time.Time
	okBuckets [rateBuckets]int64 // successful attempts per rateBucket
	okBucket  int64              // index (time / rateBucket) of the newest bucket
	start     time.Time          // of the first attempt: the rate is measured from it
	started   bool
	rateLo    float64 // lowest rate set since the first throttle
	rateDrops int
}

// recentRounds is how many rounds the settled range is taken over.
const recentRounds = 32

// newAdaptive returns the control of writes in flight up to cap, paced
// at no more than capRate writes/s (+Inf: no cap), on the clock now.
func newAdaptive(cap int, capRate float64, now func() time.Time) *adaptive {
	if now == nil {
		now = time.Now
	}
	t := now()
	return &adaptive{wake: make(chan struct{}), limit: float64(min(cap, startConcurrency)), max: cap, slowStart: true, peak: min(cap, startConcurrency),
		now: now, pace: newPacer(capRate, now), capRate: capRate, rate: math.Inf(1), start: t, lastRate: t, okBucket: t.UnixNano() / int64(rateBucket)}
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
	if !a.started {
		a.started = true
		a.start = a.now()
		a.lastRate = a.start
	}
	return a.epoch
}

// observe records one attempt of a write: sent in epoch, answered after
// latency, throttled or not.
func (a *adaptive) observe(epoch uint64, latency time.Duration, throttled bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.attempts++
	now := a.now()
	if throttled {
		a.throttled++
		if epoch == a.epoch {
			a.throttle(now, latency)
		}
		return
	}
	a.countOK(now)
	a.probeRate(now)
	if epoch != a.epoch {
		return // sent at the old limit: says nothing of the new one
	}
	a.round = append(a.round, latency)
	if len(a.round) < a.roundLen() {
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

// roundLen is the number of attempts a round judges latency by: the
// limit (at least roundMin), or in slow start slowStartRound of it; a.mu
// is held.
func (a *adaptive) roundLen() int {
	if a.slowStart {
		return max(roundMin, int(slowStartRound*float64(a.slots())))
	}
	return max(roundMin, a.slots())
}

// throttle is the decrease on a throttled attempt of the current epoch:
// the rate to rateShrink times what the table took, and the writes in
// flight by shrinkThrottle, not below what the new rate needs. It ends
// slow start and starts a new epoch; a.mu is held.
func (a *adaptive) throttle(now time.Time, latency time.Duration) {
	base := min(a.rate, a.capRate)
	if m := a.measured(now); m > 0 {
		base = min(base, m)
	}
	if math.IsInf(base, 1) {
		// Throttled before any write succeeded: start from what the
		// writes in flight would send at this latency.
		base = float64(a.slots()) / max(latency, time.Millisecond).Seconds()
	}
	a.setRate(now, max(1, rateShrink*base))
	a.rateDrops++
	if a.rateLo == 0 || a.rate < a.rateLo {
		a.rateLo = a.rate
	}
	limit := a.limit * shrinkThrottle
	if a.best > 0 {
		limit = max(limit, math.Ceil(a.rate*a.best.Seconds()*needHeadroom))
	}
	a.limit = max(1, min(a.limit, limit))
	a.slowStart = false
	a.epoch++
	a.newRound()
}

// setRate sets the adapted rate and the pace (the lower of it and the
// cap); a.mu is held.
func (a *adaptive) setRate(now time.Time, r float64) {
	a.rate = r
	a.lastRate = now
	a.pace.setRate(min(r, a.capRate))
}

// probeRate is the increase of the adapted rate: every rateEvery in
// which the successful writes kept up with the pace (at least 0.8 of it),
// rateStep of it; a.mu is held. It stops once the cap is the lower of the
// two by a margin.
func (a *adaptive) probeRate(now time.Time) {
	if math.IsInf(a.rate, 1) || now.Sub(a.lastRate) < rateEvery {
		return
	}
	if a.rate > 1.5*a.capRate {
		return
	}
	if a.measured(now) < 0.8*min(a.rate, a.capRate) {
		a.lastRate = now // the writes did not keep up: the pace is not what holds them
		return
	}
	a.setRate(now, a.rate+max(1, rateStep*min(a.rate, a.capRate)))
}

// countOK counts a successful attempt in the bucket of now; a.mu is held.
func (a *adaptive) countOK(now time.Time) {
	a.roll(now)
	a.okBuckets[a.okBucket%rateBuckets]++
}

// roll advances the buckets to now, emptying those that fell out of the
// window; a.mu is held.
func (a *adaptive) roll(now time.Time) {
	b := now.UnixNano() / int64(rateBucket)
	if b-a.okBucket >= rateBuckets {
		a.okBuckets = [rateBuckets]int64{}
		a.okBucket = b
		return
	}
	for a.okBucket < b {
		a.okBucket++
		a.okBuckets[a.okBucket%rateBuckets] = 0
	}
}

// measured is the writes/s that succeeded over the last rateWindow (or
// since the start, if shorter); a.mu is held.
func (a *adaptive) measured(now time.Time) float64 {
	a.roll(now)
	var n int64
	for _, c := range a.okBuckets {
		n += c
	}
	// The newest bucket is partly filled: the window ends now.
	span := rateWindow - rateBucket + time.Duration(now.UnixNano()%int64(rateBucket))
	span = min(span, now.Sub(a.start))
	if span <= 0 {
		return 0
	}
	return float64(n) / span.Seconds()
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
	// Rate is the pace the adaptive rate holds at the end, in writes/s,
	// and RateLow the lowest it set, both 0 if nothing was throttled
	// (then the pace is the cap, Summary.Rate). RateDrops counts its
	// decreases.
	Rate, RateLow float64
	RateDrops     int
}

func (a *adaptive) stats() WriteStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	w := WriteStats{Concurrency: a.slots(), Peak: a.peak, Cap: a.max, Attempts: a.attempts, Throttled: a.throttled, RateDrops: a.rateDrops, RateLow: a.rateLo}
	if !math.IsInf(a.rate, 1) {
		w.Rate = min(a.rate, a.capRate)
	}
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
	s += fmt.Sprintf("%d of %d write attempts throttled (%.1f%%): the table's write capacity (or --rate to leave the application some)", w.Throttled, w.Attempts, 100*float64(w.Throttled)/float64(w.Attempts))
	if w.Rate > 0 {
		s += fmt.Sprintf("; paced at %.0f writes/s at the end (lowest %.0f, %d %s)", w.Rate, w.RateLow, w.RateDrops, plural(w.RateDrops, "decrease", "decreases"))
	}
	return s
}

// isThrottle reports whether err is a throttling error by the SDK's own
// list (retry.DefaultThrottles: ProvisionedThroughputExceededException,
// ThrottlingException, RequestLimitExceeded, HTTP 429, ...), the errors
// the standard retryer retries with backoff.
func isThrottle(err error) bool {
	return err != nil && retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err) == aws.TrueTernary
}

// slotHolder is one write call's slot under the limit, and its turn in
// the pace: the engine takes both for the call's first attempt (so that
// an interrupt before it skips the write), and the attempt middleware
// gives the slot back when each attempt is answered and takes a turn and
// a slot again before each retry. So a write sleeping in the retryer's
// backoff holds no slot, and every attempt, retries included, is paced.
type slotHolder struct {
	held bool
}

type slotKey struct{}

// withSlot returns ctx carrying h, for the attempt middleware.
func withSlot(ctx context.Context, h *slotHolder) context.Context {
	return context.WithValue(ctx, slotKey{}, h)
}

// take waits for a turn in the pace and then a slot.
func (a *adaptive) take(ctx context.Context, h *slotHolder) error {
	if err := a.pace.take(ctx); err != nil {
		return err
	}
	if err := a.acquire(ctx); err != nil {
		return err
	}
	h.held = true
	return nil
}

// give gives h's slot back, if it holds one.
func (a *adaptive) give(h *slotHolder) {
	if h.held {
		h.held = false
		a.release()
	}
}

// observeOption is a per-call option that reports every attempt of the
// call to a: it sits in the Finalize step right after the SDK's retry
// middleware ("Retry"), which calls the rest of the stack once per attempt
// (its backoff sleeps are outside what it times). When the call's context
// carries a slotHolder (see withSlot), each attempt takes a turn and a
// slot if the holder has none, and gives the slot back when answered.
func observeOption(a *adaptive) func(*dynamodb.Options) {
	mw := middleware.FinalizeMiddlewareFunc("rewindObserveAttempt", func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
		h, _ := ctx.Value(slotKey{}).(*slotHolder)
		if h != nil {
			if !h.held {
				if err := a.take(ctx, h); err != nil {
					return middleware.FinalizeOutput{}, middleware.Metadata{}, err
				}
			}
			defer a.give(h)
		}
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
