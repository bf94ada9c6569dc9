package indexer

import "fmt"

// Prev moves to the previous event and reports whether there is one; on a
// fresh iterator it moves to the scan's last event, so that a caller
// after an item's newest change before some time seeks once instead of
// walking its history. An iterator is walked in one direction: Next or
// Prev.
func (it *Iter) Prev() bool {
	if it.err != nil {
		return false
	}
	if !it.pos {
		it.pos = true
		it.ok = it.it.Last()
	} else {
		it.ok = it.it.Prev()
	}
	if !it.ok {
		return false
	}
	v, err := it.it.ValueAndErr()
	if err != nil {
		it.err = err
		return false
	}
	if err := decodeEntry(&it.e, it.it.Key(), v); err != nil {
		it.err = fmt.Errorf("store key %q: %w", it.it.Key(), err)
		return false
	}
	return true
}
