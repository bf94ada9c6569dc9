package indexer

import (
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
)

// A tenant scan reads the tenant ordering's keys and, for each, seeks the
// time ordering for the event's summary; a time scan steps through every
// event of the window. On the bench (10 M events, one hour: 59,524
// events, 10,067 of the busiest tenant) a seek and its decode cost ~1.2 us
// and a step ~0.1 us, so once the tenants hold a tenth of the window's
// events, one pass over the window that skips the others reads less.
const denseShare = 10

// sparseBelow is how many events the tenants must have in a window before
// DenseTenants estimates the window's: fewer are read sooner by their own
// scans than a window of ten times as many by the time ordering, and
// their count costs no estimate.
const sparseBelow = 256

// DenseTenants reports whether the tenants' events are dense enough in
// the window that ScanTimeOf answers sooner than one ScanTenant per
// tenant: at least sparseBelow, and a denseShare-th of the window's
// events. It counts their keys in the tenant ordering (keys only, a step
// each) and stops as soon as that share is reached, so the count costs
// at most a tenth of the scan it saves; the window's events are estimated
// by EstimateEvents, and that estimate is returned too (0 when the count
// stopped short of needing it), for a caller that sizes the scan. An
// event without a tenant is in no tenant's scan, so a tenant "" never
// makes the tenants dense.
func (s *Store) DenseTenants(tenants []string, w Window) (dense bool, inWindow int64, err error) {
	if len(tenants) == 0 || slices.Contains(tenants, "") {
		return false, 0, nil
	}
	if n, err := s.countTenants(tenants, w, sparseBelow); err != nil || n < sparseBelow {
		return false, 0, err
	}
	if inWindow, err = s.EstimateEvents(w); err != nil {
		return false, 0, err
	}
	need := max(sparseBelow, inWindow/denseShare)
	n, err := s.countTenants(tenants, w, need)
	return n >= need, inWindow, err
}

// countTenants counts the tenants' events in the window, up to limit.
func (s *Store) countTenants(tenants []string, w Window, limit int64) (int64, error) {
	var n int64
	for _, t := range tenants {
		lo, hi := span(appendStr([]byte{spaceTenant}, t), w)
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			return n, wrapStore(s, err)
		}
		for ok := it.First(); ok && n < limit; ok = it.Next() {
			n++
		}
		if err := it.Close(); err != nil {
			return n, wrapStore(s, err)
		}
		if n >= limit {
			break
		}
	}
	return n, nil
}

// EstimateEvents estimates the number of events in the window from the
// time ordering's bytes in it (Pebble's estimate, to a data block at each
// end, from the sstables' index blocks) against the store's event count.
func (s *Store) EstimateEvents(w Window) (int64, error) {
	total, err := s.Count()
	if err != nil || total == 0 {
		return 0, err
	}
	lo, hi := span([]byte{spaceTime}, w)
	inWindow, err := s.db.EstimateDiskUsage(lo, hi)
	if err != nil {
		return 0, wrapStore(s, err)
	}
	all, err := s.db.EstimateDiskUsage([]byte{spaceTime}, []byte{spaceTime + 1})
	if err != nil || all == 0 {
		return 0, wrapStore(s, err)
	}
	return int64(float64(total) * min(1, float64(inWindow)/float64(all))), nil
}

// ScanTimeOf iterates over the events of the tenants in the window, in
// time order: the events of ScanTenant for each, merged, read from the
// time ordering instead, skipping the other tenants' events before
// decoding them. See DenseTenants for when it is the cheaper scan.
func (s *Store) ScanTimeOf(tenants []string, w Window) (*Iter, error) {
	it, err := s.ScanTime(w)
	if err != nil {
		return nil, err
	}
	for _, t := range tenants {
		if t != "" {
			it.tenants = append(it.tenants, []byte(t))
		}
	}
	if len(it.tenants) == 0 {
		it.Close()
		return nil, fmt.Errorf("store %s: ScanTimeOf needs a tenant", s.dir)
	}
	return it, nil
}

// wanted reports whether the time ordering's current event belongs to one
// of it.tenants, reading the tenant from the summary (flags, table,
// tenant) without decoding the rest. A summary it cannot read is wanted,
// so that decode reports it.
func (it *Iter) wanted() (bool, error) {
	v, err := it.it.ValueAndErr()
	if err != nil {
		return false, err
	}
	if len(v) == 0 {
		return true, nil
	}
	r := reader{b: v[1:]}
	r.bytes() // table
	tenant := r.bytes()
	if r.err != nil {
		return true, nil
	}
	for _, t := range it.tenants {
		if string(t) == string(tenant) {
			return true, nil
		}
	}
	return false, nil
}
