package patch

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
)

// simulate drives a through n write attempts against a model server with
// a round trip of rtt that takes at most capacity writes in flight:
// attempts beyond it are throttled (capacity 0: never). Each step fills
// the limit, then answers every attempt in flight, as a round trip does.
// It returns the limit after each step. No clock: latencies are values.
func simulate(a *testAdaptive, steps int, rtt time.Duration, capacity int, latencyAt func(inflight int) time.Duration) (limits []int, throttled int64) {
	ctx := context.Background()
	for range steps {
		n := a.slots()
		epochs := make([]uint64, n)
		for i := range n {
			if err := a.acquire(ctx); err != nil {
				panic(err)
			}
			epochs[i] = a.begin()
		}
		for i := range n {
			lat := rtt
			if latencyAt != nil {
				lat = latencyAt(n)
			}
			th := capacity > 0 && i >= capacity
			if th {
				throttled++
			}
			a.observe(epochs[i], lat, th)
			a.release()
		}
		limits = append(limits, a.slots())
		a.clock.advance(rtt)
	}
	return limits, throttled
}

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_800_000_000, 0)} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testAdaptive is an adaptive on a fake clock, with no cap on the rate.
type testAdaptive struct {
	*adaptive
	clock *fakeClock
}

func newTestAdaptive(cap int) *testAdaptive {
	c := newFakeClock()
	return &testAdaptive{adaptive: newAdaptive(cap, math.Inf(1), c.now), clock: c}
}

// TestAdaptiveGrowsAgainstAFastServer: while latency holds and nothing is
// throttled, the limit rises from the start to the cap, and no further.
func TestAdaptiveGrowsAgainstAFastServer(t *testing.T) {
	a := newTestAdaptive(128)
	if a.slots() != startConcurrency {
		t.Fatalf("starts at %d, want %d", a.slots(), startConcurrency)
	}
	limits, _ := simulate(a, 10, 5*time.Millisecond, 0, nil)
	if limits[0] <= startConcurrency || limits[len(limits)-1] != 128 {
		t.Fatalf("limits %v: want a rise from %d to the cap 128", limits, startConcurrency)
	}
	st := a.stats()
	if st.Peak != 128 || st.Throttled != 0 || st.Attempts == 0 {
		t.Errorf("stats %+v", st)
	}
	// A cap below the start is where it starts.
	if b := newTestAdaptive(4); b.slots() != 4 {
		t.Errorf("cap 4 starts at %d", b.slots())
	}
}

// TestAdaptiveRampsUpFast: at a steady latency and no throttling, the
// limit reaches a cap of 128 within 64 answered attempts (slow start from
// 32, doubling every half round: 16 answers to 64, 32 more to 128); from
// 16, doubling once per full round, it took 16+32+64 = 112. Counted on the
// answers, one at a time, so no clock is involved.
func TestAdaptiveRampsUpFast(t *testing.T) {
	a := newTestAdaptive(128)
	ctx := context.Background()
	answered := 0
	var pending []uint64
	for a.slots() < 128 {
		if answered > 64 {
			t.Fatalf("limit %d after %d answered attempts, want the cap 128 within 64", a.slots(), answered)
		}
		// Keep every slot busy, then answer the oldest attempt.
		for a.inflight < a.slots() {
			if err := a.acquire(ctx); err != nil {
				t.Fatal(err)
			}
			pending = append(pending, a.begin())
		}
		a.observe(pending[0], 5*time.Millisecond, false)
		a.release()
		pending = pending[1:]
		answered++
	}
	t.Logf("cap 128 reached after %d answered attempts", answered)
	// Slow start still ends at the first throttle, which sets a rate
	// (the pace then holds the writes; see throttle).
	a.observe(a.begin(), 5*time.Millisecond, true)
	if a.slowStart || math.IsInf(a.rate, 1) {
		t.Errorf("after a throttle: slow start %v, rate %v, want slow start over and a finite rate", a.slowStart, a.rate)
	}
	if a.roundLen() != a.slots() && a.roundLen() != roundMin {
		t.Errorf("after slow start a round is %d attempts, want the limit %d", a.roundLen(), a.slots())
	}
}

// TestAdaptiveBacksOffOnThrottling: against a server taking 20 writes in
// flight, the limit falls from its peak and settles near 20 (between
// 0.7×20 and 20+a few), with throttled attempts a small fraction.
func TestAdaptiveBacksOffOnThrottling(t *testing.T) {
	a := newTestAdaptive(128)
	limits, throttled := simulate(a, 400, 5*time.Millisecond, 20, nil)
	st := a.stats()
	if st.Peak <= 20 {
		t.Fatalf("peak %d: it never probed above the capacity (limits %v)", st.Peak, limits)
	}
	for i, l := range limits[200:] {
		if l < 14 || l > 22 {
			t.Fatalf("step %d: limit %d, want it settled within 14..22 of capacity 20 (limits %v)", 200+i, l, limits)
		}
	}
	if st.Low < 14 || st.High > 22 || st.High >= st.Peak {
		t.Errorf("settled range %d-%d (peak %d), want within 14..22, below the peak", st.Low, st.High, st.Peak)
	}
	if st.Throttled != throttled {
		t.Errorf("throttled %d, the server throttled %d", st.Throttled, throttled)
	}
	if frac := float64(st.Throttled) / float64(st.Attempts); frac > 0.05 {
		t.Errorf("%d of %d attempts throttled (%.1f%%): it hammers the table", st.Throttled, st.Attempts, 100*frac)
	}
}

// TestAdaptiveOneDecreasePerEpoch: a burst of throttles from attempts sent
// at one limit lowers it once, not once per attempt.
func TestAdaptiveOneDecreasePerEpoch(t *testing.T) {
	a := newTestAdaptive(64)
	ep := a.begin()
	for range 16 {
		a.observe(ep, time.Millisecond, true)
	}
	once := float64(startConcurrency) * shrinkThrottle
	if got, want := a.slots(), int(once); got != want {
		t.Fatalf("16 throttles of one epoch: limit %d, want %d", got, want)
	}
	a.observe(a.begin(), time.Millisecond, true)
	if got, want := a.slots(), int(once*shrinkThrottle); got != want {
		t.Fatalf("a throttle of the next epoch: limit %d, want %d", got, want)
	}
	for range 100 {
		a.observe(a.begin(), time.Millisecond, true)
	}
	if a.slots() != 1 {
		t.Fatalf("floor: limit %d, want 1", a.slots())
	}
}

// TestAdaptiveHoldsWhenLatencyGrows: a server whose latency grows with
// the writes in flight (it queues them: DynamoDB Local's CPU) stops the
// rise where latency passes the band, instead of going to the cap.
func TestAdaptiveHoldsWhenLatencyGrows(t *testing.T) {
	a := newTestAdaptive(128)
	// Serves 8 at 5 ms; beyond that the queue adds latency in proportion.
	lat := func(n int) time.Duration {
		return time.Duration(float64(5*time.Millisecond) * max(1, float64(n)/8))
	}
	// Start below the knee so the best latency seen is the server's.
	a.limit = 4
	limits, _ := simulate(a, 200, 0, 0, lat)
	for i, l := range limits[100:] {
		if l > 24 {
			t.Fatalf("step %d: limit %d, beyond where latency tripled (limits %v)", 100+i, l, limits)
		}
	}
	if a.stats().Peak >= 128 {
		t.Errorf("reached the cap although latency grew")
	}
}

// TestAdaptiveNotSaturatedDoesNotGrow: rounds that never use the whole
// limit (the planners or --rate are the bottleneck) leave it alone.
func TestAdaptiveNotSaturatedDoesNotGrow(t *testing.T) {
	a := newTestAdaptive(128)
	ctx := context.Background()
	for range 100 {
		if err := a.acquire(ctx); err != nil {
			t.Fatal(err)
		}
		a.observe(a.begin(), 5*time.Millisecond, false)
		a.release()
	}
	if a.slots() != startConcurrency {
		t.Fatalf("one write at a time grew the limit to %d", a.slots())
	}
}

// TestAdaptiveAcquireHonoursContext: a writer waiting for a slot stops
// when the run is cancelled.
func TestAdaptiveAcquireHonoursContext(t *testing.T) {
	a := newTestAdaptive(1)
	if err := a.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.acquire(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("acquire over the limit with a cancelled context: %v", err)
	}
}

// TestIsThrottle: the throttling errors DynamoDB returns count, others
// do not.
func TestIsThrottle(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&types.ProvisionedThroughputExceededException{}, true},
		{&smithy.GenericAPIError{Code: "ThrottlingException"}, true},
		{&types.RequestLimitExceeded{}, true},
		{&types.ConditionalCheckFailedException{}, false},
		{errors.New("connection reset"), false},
		{nil, false},
	} {
		if got := isThrottle(c.err); got != c.want {
			t.Errorf("isThrottle(%T %v) = %v, want %v", c.err, c.err, got, c.want)
		}
	}
}
