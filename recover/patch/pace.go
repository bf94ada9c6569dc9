package patch

import (
	"context"
	"math"
	"sync"
	"time"
)

// pacer spaces write attempts to a rate that can change while writes wait
// on it: the cap (Options.Rate) or, lower, the rate the adaptive control
// found the table takes (see adaptive).
//
// It hands out tickets in order; ticket n is due at anchorT + (n-anchorN)/r,
// so that the pace is set by elapsed time, not by when a waiter's timer
// fires: a waiter woken late on a loaded machine does not push back the
// ones after it, and an idle spell leaves a burst of at most burstTokens.
// A rate change re-anchors the schedule at the first ticket not yet due,
// so that writes already waiting take the new pace at once (after a
// throttle, none of them keeps the old one). golang.org/x/time/rate is not
// used for this because its reservations keep the rate they were made at
// when SetLimit changes it: under throttling, the writers already queued
// would all go at the rate that was just found too high.
type pacer struct {
	now func() time.Time

	mu      sync.Mutex
	r       float64 // writes/s; +Inf: no pacing
	anchorT time.Time
	anchorN int64
	next    int64         // next ticket
	changed chan struct{} // closed when r changes, to wake the waiters
}

// pacerBurst is the burst an idle pacer allows: this share of a second's
// writes (at least one).
const pacerBurst = 0.1

func newPacer(r float64, now func() time.Time) *pacer {
	p := &pacer{now: now, r: r, anchorT: now(), changed: make(chan struct{})}
	return p
}

// due is when ticket n may go; p.mu is held.
func (p *pacer) due(n int64) time.Time {
	if math.IsInf(p.r, 1) {
		return p.anchorT
	}
	return p.anchorT.Add(time.Duration(float64(n-p.anchorN) / p.r * float64(time.Second)))
}

// burst is how far behind now the schedule may fall; p.mu is held.
func (p *pacer) burst() time.Duration {
	return time.Duration(max(1, p.r*pacerBurst) / p.r * float64(time.Second))
}

// ticket takes the next place in the schedule.
func (p *pacer) ticket() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := p.next
	p.next++
	if math.IsInf(p.r, 1) {
		return n
	}
	// Idle: the schedule is behind, every ticket before n is due, and the
	// unused time is credited up to the burst only.
	if floor := p.now().Add(-p.burst()); p.due(n).Before(floor) {
		p.anchorT, p.anchorN = floor, n
	}
	return n
}

// wait blocks until ticket n is due under the current rate.
func (p *pacer) wait(ctx context.Context, n int64) error {
	for {
		p.mu.Lock()
		d := p.due(n).Sub(p.now())
		changed := p.changed
		p.mu.Unlock()
		if d <= 0 {
			return nil
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-changed:
			t.Stop()
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

// take waits for the next place in the schedule.
func (p *pacer) take(ctx context.Context) error {
	if p == nil {
		return ctx.Err()
	}
	return p.wait(ctx, p.ticket())
}

// rate is the pace in writes/s (+Inf: none).
func (p *pacer) rate() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.r
}

// setRate changes the pace from now on, for the writes already waiting too.
func (p *pacer) setRate(r float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r == p.r {
		return
	}
	now := p.now()
	// k is the first ticket not due yet; those before it keep their turn.
	k := p.next
	var untilK time.Duration
	if !math.IsInf(p.r, 1) && p.due(p.next-1).After(now) {
		k = p.anchorN + int64(math.Floor(now.Sub(p.anchorT).Seconds()*p.r)) + 1
		k = max(k, p.anchorN)
		untilK = max(0, p.due(k).Sub(now))
	}
	p.r = r
	p.anchorN = k
	p.anchorT = now
	if !math.IsInf(r, 1) {
		p.anchorT = now.Add(min(untilK, time.Duration(float64(time.Second)/r)))
	}
	close(p.changed)
	p.changed = make(chan struct{})
}
