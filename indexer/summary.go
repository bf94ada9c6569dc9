package indexer

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ddbrewind/rewind"
)

// What the store holds, for telling a filter that names nothing it holds
// (a mistyped table or tenant, a window outside the capture) from one that
// simply matches nothing. Each answer costs a seek or two in the spaces
// the store already has, so the store format does not change.

// HasTenant reports whether the store holds an event of the tenant.
func (s *Store) HasTenant(tenant string) (bool, error) {
	return s.hasPrefix(appendStr([]byte{spaceTenant}, tenant))
}

// HasItem reports whether the store holds a change of the item.
func (s *Store) HasItem(table string, key rewind.Key) (bool, error) {
	return s.hasPrefix(key.AppendEncode(appendStr([]byte{spaceItem}, table)))
}

func (s *Store) hasPrefix(p []byte) (bool, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return false, fmt.Errorf("store %s: %w", s.dir, err)
	}
	ok := it.First()
	if err := it.Close(); err != nil {
		return false, fmt.Errorf("store %s: %w", s.dir, err)
	}
	return ok, nil
}

// Tenants calls fn for each tenant the store holds events of, in order
// ("" for events without a tenant). It seeks once per tenant, skipping
// over the tenant's events.
func (s *Store) Tenants(fn func(tenant string) error) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{spaceTenant}, UpperBound: []byte{spaceTenant + 1}})
	if err != nil {
		return fmt.Errorf("store %s: %w", s.dir, err)
	}
	defer it.Close()
	for ok := it.First(); ok; {
		k := it.Key()
		n, err := skipStr(k[1:])
		if err != nil {
			return fmt.Errorf("store %s: tenant key %q: %w", s.dir, k, err)
		}
		if err := fn(unescapeStr(k[1 : 1+n])); err != nil {
			return err
		}
		ok = it.SeekGE(prefixEnd(k[:1+n]))
	}
	return it.Error()
}

// unescapeStr undoes appendStr; b is a whole str, terminator included.
func unescapeStr(b []byte) string {
	b = b[:len(b)-2]
	return string(bytes.ReplaceAll(b, []byte{0, 0xFF}, []byte{0}))
}

// TimeRange returns the times of the first and last decodable events in
// the store; ok is false when it holds none. Undecodable events are left
// out: their time may be whatever a broken record said.
func (s *Store) TimeRange() (first, last time.Time, ok bool, err error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{spaceTime}, UpperBound: []byte{spaceTime + 1}})
	if err != nil {
		return first, last, false, fmt.Errorf("store %s: %w", s.dir, err)
	}
	defer it.Close()
	at := func(valid bool) (time.Time, bool, error) {
		for ; valid; valid = it.Next() {
			v, err := it.ValueAndErr()
			if err != nil {
				return time.Time{}, false, err
			}
			if len(v) > 0 && v[0]&flagUndecodable == 0 {
				return time.UnixMicro(decodeTS(it.Key()[1:])).UTC(), true, nil
			}
		}
		return time.Time{}, false, it.Error()
	}
	if first, ok, err = at(it.First()); err != nil || !ok {
		return first, last, ok, wrapStore(s, err)
	}
	// Backwards from the end for the last one.
	for valid := it.Last(); valid; valid = it.Prev() {
		v, err := it.ValueAndErr()
		if err != nil {
			return first, last, false, wrapStore(s, err)
		}
		if len(v) > 0 && v[0]&flagUndecodable == 0 {
			return first, time.UnixMicro(decodeTS(it.Key()[1:])).UTC(), true, nil
		}
	}
	return first, first, true, wrapStore(s, it.Error())
}

func wrapStore(s *Store, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("store %s: %w", s.dir, err)
}

// summaries reads the 't' values of the events a tenant or item scan
// meets: those orderings are keys only. Their events come in time order
// (within one tenant or item), so one iterator seeks forward over 't',
// which Pebble turns into a step when the next event is close.
type summaries struct {
	db  *pebble.DB
	it  *pebble.Iterator
	key []byte
}

// get returns the summary of the event with the given ev; it aliases the
// iterator's memory until the next call.
func (s *summaries) get(ev []byte) ([]byte, error) {
	if s.it == nil {
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{spaceTime}, UpperBound: []byte{spaceTime + 1}})
		if err != nil {
			return nil, err
		}
		s.it = it
	}
	s.key = append(append(s.key[:0], spaceTime), ev...)
	if !s.it.SeekGE(s.key) || !bytes.Equal(s.it.Key(), s.key) {
		if err := s.it.Error(); err != nil {
			return nil, err
		}
		return nil, errors.New("no summary in 't' for the event (the store is damaged: move it aside and re-index)")
	}
	return s.it.ValueAndErr()
}

func (s *summaries) close() error {
	if s.it == nil {
		return nil
	}
	err := s.it.Close()
	s.it = nil
	return err
}

// decode fills the iterator's entry from its current key: a 't' key's
// value is the summary; other keys' summaries are read from 't'.
func (it *Iter) decode() error {
	key := it.it.Key()
	ev, err := evOf(key)
	if err != nil {
		return err
	}
	var v []byte
	if key[0] == spaceTime {
		v, err = it.it.ValueAndErr()
	} else {
		v, err = it.sum.get(ev)
	}
	if err != nil {
		return err
	}
	return decodeEntry(&it.e, ev, v)
}
