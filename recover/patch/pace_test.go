package patch

import (
	"context"
	"math"
	"testing"
	"time"
)

// dueAt is when ticket n is due.
func (p *pacer) dueAt(n int64) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.due(n)
}

// TestPacerPacesByElapsedTime: tickets are spaced by 1/rate from one
// another whenever they are taken (a waiter late to take or to wake does
// not push back the ones after it), and an idle spell credits a burst of
// a tenth of a second's writes, no more.
func TestPacerPacesByElapsedTime(t *testing.T) {
	c := newFakeClock()
	p := newPacer(1000, c.now)
	first := p.ticket()
	for i := range 50 {
		if i%10 == 0 {
			c.advance(3 * time.Millisecond) // takers come late, in bunches
		}
		p.ticket()
	}
	last := p.ticket()
	if got, want := p.dueAt(last).Sub(p.dueAt(first)), time.Duration(last-first)*time.Millisecond; got != want {
		t.Fatalf("tickets %d..%d span %s, want %s (1 ms apart at 1000/s)", first, last, got, want)
	}

	// Idle for a second: 100 tickets (0.1 s at 1000/s) are due at once,
	// then the pace resumes at 1 ms.
	c.advance(time.Second)
	now := c.now()
	dueNow := 0
	var n int64
	for {
		n = p.ticket()
		if p.dueAt(n).After(now) {
			break
		}
		dueNow++
	}
	if dueNow != 101 { // the ticket due at now and the 100 of the burst before it
		t.Fatalf("after an idle second, %d tickets due at once, want 101 (a burst of 100)", dueNow)
	}
	if got := p.dueAt(n).Sub(now); got != time.Millisecond {
		t.Fatalf("the first ticket after the burst is due in %s, want 1ms", got)
	}
}

// TestPacerRateChangeRetimesWaiters: a lower rate applies at once to the
// tickets already handed out and not yet due, and wakes a waiter whose
// turn the change moved.
func TestPacerRateChangeRetimesWaiters(t *testing.T) {
	c := newFakeClock()
	p := newPacer(1000, c.now)
	c.advance(time.Second) // idle: a burst is due at once
	var tickets []int64
	for range 300 {
		tickets = append(tickets, p.ticket())
	}
	// 101 tickets are due now (the burst); ticket 200 is due in 100 ms.
	now := c.now()
	if got := p.dueAt(tickets[200]).Sub(now); got != 100*time.Millisecond {
		t.Fatalf("ticket 200 due in %s, want 100ms", got)
	}
	p.setRate(100)
	for _, n := range tickets[:101] {
		if p.dueAt(n).After(now) {
			t.Fatalf("ticket %d was due before the change and is no longer", n)
		}
	}
	// From ticket 101 on: 10 ms apart, starting within 10 ms.
	d101 := p.dueAt(tickets[101]).Sub(now)
	if d101 <= 0 || d101 > 10*time.Millisecond {
		t.Fatalf("ticket 101 due in %s, want within (0, 10ms]", d101)
	}
	if got, want := p.dueAt(tickets[200]).Sub(p.dueAt(tickets[101])), 99*10*time.Millisecond; got != want {
		t.Fatalf("tickets 101..200 span %s at 100/s, want %s", got, want)
	}

	// A waiter far in the future is released by lifting the rate.
	p.setRate(1)
	n := p.ticket()
	if p.dueAt(n).Sub(c.now()) < time.Minute {
		t.Fatalf("at 1/s after 300 tickets at 1000/s, ticket %d is due in %s", n, p.dueAt(n).Sub(c.now()))
	}
	done := make(chan error, 1)
	go func() { done <- p.wait(context.Background(), n) }()
	p.setRate(math.Inf(1))
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute): // a hang, not a timing check
		t.Fatal("the waiter did not wake when the rate was lifted")
	}

	// And a waiter's context still stops it.
	p.setRate(1)
	p.ticket() // due at once
	n = p.ticket()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.wait(ctx, n); err == nil {
		t.Fatal("wait with a cancelled context returned nil")
	}
}

// rateServer models a table with a write capacity in writes/s (a token
// bucket with a tenth of a second of burst, as the bench's fast server)
// and a round trip that varies, for a client driven step by step on a
// fake clock: what adaptive and pacer see in a patch.
type rateServer struct {
	capacity float64
	tokens   float64
	last     time.Time
}

func (s *rateServer) allow(now time.Time) bool {
	if !s.last.IsZero() {
		s.tokens = min(s.capacity/10, s.tokens+now.Sub(s.last).Seconds()*s.capacity)
	}
	s.last = now
	if s.tokens >= 1 {
		s.tokens--
		return true
	}
	return false
}

type rateTally struct{ ok, throttled int64 }

// runPaced drives a for d of fake time in 1 ms steps against s, with a
// backlog of writes that never runs out: each step answers the attempts
// whose round trip ended, then sends attempts while the pace and the
// limit allow. rtt gives the round trip at a time. It returns the tally
// of attempts answered in the second half of d.
func runPaced(a *testAdaptive, s *rateServer, d time.Duration, rtt func(time.Time) time.Duration) rateTally {
	type pending struct {
		at        time.Time
		epoch     uint64
		lat       time.Duration
		throttled bool
	}
	var inflight []pending
	var tally rateTally
	start := a.clock.now()
	ctx := context.Background()
	for step := time.Duration(0); step < d; step += time.Millisecond {
		now := a.clock.now()
		keep := inflight[:0]
		for _, p := range inflight {
			if p.at.After(now) {
				keep = append(keep, p)
				continue
			}
			a.observe(p.epoch, p.lat, p.throttled)
			a.release()
			if now.Sub(start) >= d/2 {
				if p.throttled {
					tally.throttled++
				} else {
					tally.ok++
				}
			}
		}
		inflight = keep
		for {
			a.mu.Lock()
			room := a.inflight < a.slots()
			a.mu.Unlock()
			if !room || a.pace.dueAt(a.pace.next).After(now) {
				break
			}
			a.pace.ticket()
			if err := a.acquire(ctx); err != nil {
				panic(err)
			}
			lat := rtt(now)
			inflight = append(inflight, pending{at: now.Add(lat), epoch: a.begin(), lat: lat, throttled: !s.allow(now)})
		}
		a.clock.advance(time.Millisecond)
	}
	for _, p := range inflight { // answered after the end: not tallied
		a.observe(p.epoch, p.lat, p.throttled)
		a.release()
	}
	return tally
}

// TestAdaptiveRateHoldsUnderThrottling: against a table taking 2,000
// writes/s with a round trip that swings between 4 and 12 ms (a client
// whose CPU is shared), the writes settle at 0.8 of the capacity or more
// with under 5% of attempts throttled: the pace follows the capacity,
// whatever the latency. Writes in flight alone (the limit without the
// pace) would swing with the latency, above the capacity when it is
// short and below when it is long.
func TestAdaptiveRateHoldsUnderThrottling(t *testing.T) {
	a := newTestAdaptive(128)
	// Planning the first chunks takes a while before the first write: it
	// must not count as time the writes took.
	a.clock.advance(2 * time.Second)
	s := &rateServer{capacity: 2000}
	swing := func(now time.Time) time.Duration {
		if now.UnixMilli()/700%2 == 0 {
			return 4 * time.Millisecond
		}
		return 12 * time.Millisecond
	}
	const d = 10 * time.Second
	got := runPaced(a, s, d, swing)
	perSec := float64(got.ok) / (d / 2).Seconds()
	frac := float64(got.throttled) / float64(got.ok+got.throttled)
	st := a.stats()
	t.Logf("%.0f writes/s of 2000, %.1f%% throttled, paced at %.0f (lowest %.0f, %d decreases), writers %d-%d", perSec, 100*frac, st.Rate, st.RateLow, st.RateDrops, st.Low, st.High)
	if perSec < 0.8*s.capacity || perSec > 1.01*s.capacity {
		t.Errorf("%.0f writes/s succeeded: want 0.8 to 1 of the capacity %g", perSec, s.capacity)
	}
	if frac >= 0.05 {
		t.Errorf("%.1f%% of attempts throttled: want under 5%%", 100*frac)
	}
	if st.Rate == 0 || st.RateDrops == 0 {
		t.Errorf("stats %+v: want the pace adapted", st)
	}

	// The table's capacity doubles (scaled up): the pace finds it.
	s.capacity = 4000
	got = runPaced(a, s, d, swing)
	perSec = float64(got.ok) / (d / 2).Seconds()
	if perSec < 0.8*s.capacity {
		t.Errorf("after the capacity doubled to %g: %.0f writes/s", s.capacity, perSec)
	}
}

// TestAdaptiveRateBelowCap: the pace never exceeds the cap (Options.Rate),
// and with no throttling the writes reach it.
func TestAdaptiveRateBelowCap(t *testing.T) {
	c := newFakeClock()
	a := &testAdaptive{adaptive: newAdaptive(128, 500, c.now), clock: c}
	s := &rateServer{capacity: 1e9}
	const d = 10 * time.Second
	got := runPaced(a, s, d, func(time.Time) time.Duration { return 5 * time.Millisecond })
	perSec := float64(got.ok) / (d / 2).Seconds()
	if perSec < 0.99*500 || perSec > 1.01*500 {
		t.Errorf("%.0f writes/s at a cap of 500", perSec)
	}
	if got.throttled != 0 {
		t.Errorf("%d throttled", got.throttled)
	}
	// Paced at the cap, the writes in flight (about 3 at 5 ms) never fill
	// the limit, so it does not grow.
	if st := a.stats(); st.Peak > startConcurrency {
		t.Errorf("limit grew to %d although the cap, not the limit, held the writes", st.Peak)
	}
}

// TestThrottleDelay: a throttled write is retried after a short jittered
// backoff (the pace holds the load), doubling per retry up to 2 s.
func TestThrottleDelay(t *testing.T) {
	for _, c := range []struct {
		attempt int
		u       float64
		want    time.Duration
	}{
		{1, 0.999999, 25 * time.Millisecond},
		{1, 0.5, 12500 * time.Microsecond},
		{2, 0.5, 25 * time.Millisecond},
		{5, 0.999999, 400 * time.Millisecond},
		{9, 0.5, time.Second},
		{30, 0.5, time.Second},
	} {
		got := throttleDelay(c.attempt, c.u)
		if d := got - c.want; d < -time.Microsecond || d > time.Microsecond {
			t.Errorf("throttleDelay(%d, %g) = %s, want %s", c.attempt, c.u, got, c.want)
		}
	}
}
