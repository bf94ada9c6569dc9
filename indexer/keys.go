package indexer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/ddbrewind/rewind"
)

// Key spaces; see the package documentation.
const (
	spaceTime   = 't'
	spaceTenant = 'n'
	spaceItem   = 'i'
	spaceRecord = 'r'
	spaceMeta   = 'M'
)

var (
	metaCount   = []byte("Mcount")
	metaVersion = []byte("Mversion")
	metaObj     = "Mobj/"
	metaSrc     = "Msrc/"
	metaTable   = "Mtable/"
)

// storeVersion is the format written to Mversion; Open refuses others.
// Version 2 gave the export window a field of its own in records (version
// 1 carried it in the shard ID). Version 3 keeps one copy of each summary
// (the 'n' and 'i' values leave out what their keys say), compresses with
// zstd, and records the windows of each source it indexed ('M' "win/").
// Version 4 keys an event by time, sequence number and a 2-byte hash of
// its stream (table and shard) instead of its event ID (the ID stays in
// the key only for events without a sequence number), keeps the ID once
// (in the 't' summary), and makes the tenant and item orderings keys
// only: their scans read the summary from 't'.
const storeVersion = "4"

// recordFormat is the first byte of a record value (see doc.go).
const recordFormat = 3

// streamHashLen is the length of the stream hash at the end of an ev.
const streamHashLen = 2

// Summary flags.
const (
	flagActionMask  = 3
	flagTTL         = 4
	flagUndecodable = 8
)

func actionCode(a rewind.Action) byte {
	switch a {
	case rewind.ActionInsert:
		return 1
	case rewind.ActionModify:
		return 2
	case rewind.ActionRemove:
		return 3
	}
	return 0
}

var actionByCode = [4]rewind.Action{"", rewind.ActionInsert, rewind.ActionModify, rewind.ActionRemove}

// appendTS appends t (Unix microseconds) so that byte order is time order.
func appendTS(dst []byte, micros int64) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(micros)^(1<<63))
}

func decodeTS(b []byte) int64 {
	return int64(binary.BigEndian.Uint64(b) ^ (1 << 63))
}

// appendEv appends the ev part of a key: ts seq tail. The tail tells
// apart events that share a time and a sequence number, which only events
// of different streams can (a stream's sequence numbers are unique): it is
// a 2-byte hash of the table and shard, which the events of a store share
// so that it costs next to nothing compressed. An event without a sequence
// number (an export's, an undecodable one) has its event ID as the tail.
// When two different events still get one ev, the second gets the ev
// with its event ID appended (see Store.dedup).
func appendEv(dst []byte, micros int64, seq, id, table, shard string) []byte {
	dst = appendTS(dst, micros)
	seq = strings.TrimLeft(seq, "0")
	dst = binary.AppendUvarint(dst, uint64(len(seq)))
	if seq == "" {
		return append(dst, id...)
	}
	dst = append(dst, seq...)
	return binary.BigEndian.AppendUint16(dst, streamHash(table, shard))
}

// streamHash is a 16-bit FNV-1a hash of table, a zero byte, and shard.
func streamHash(table, shard string) uint16 {
	h := uint32(2166136261)
	for i := 0; i < len(table); i++ {
		h ^= uint32(table[i])
		h *= 16777619
	}
	h *= 16777619 // the zero byte
	for i := 0; i < len(shard); i++ {
		h ^= uint32(shard[i])
		h *= 16777619
	}
	return uint16(h ^ h>>16)
}

// parseEv splits an ev into its time and sequence number; seq aliases b.
func parseEv(b []byte) (micros int64, seq []byte, err error) {
	if len(b) < 9 {
		return 0, nil, errors.New("event key too short")
	}
	micros = decodeTS(b)
	n, m := binary.Uvarint(b[8:])
	if m <= 0 || (n > 0 && uint64(len(b)-8-m) < n+streamHashLen) {
		return 0, nil, errors.New("bad sequence number in event key")
	}
	off := 8 + m
	return micros, b[off : off+int(n)], nil
}

// appendStr appends str(s): order-preserving and prefix-free.
func appendStr(dst []byte, s string) []byte {
	for {
		i := strings.IndexByte(s, 0)
		if i < 0 {
			break
		}
		dst = append(dst, s[:i+1]...)
		dst = append(dst, 0xFF)
		s = s[i+1:]
	}
	dst = append(dst, s...)
	return append(dst, 0, 1)
}

// skipStr returns the length of the str at the start of b.
func skipStr(b []byte) (int, error) {
	off := 0
	for {
		i := bytes.IndexByte(b[off:], 0)
		if i < 0 || off+i+1 >= len(b) {
			return 0, errors.New("unterminated string in key")
		}
		off += i + 1
		switch b[off] {
		case 1:
			return off + 1, nil
		case 0xFF:
			off++
		default:
			return 0, errors.New("bad escape in key string")
		}
	}
}

// skipKey returns the length of the canonical key encoding at the start of b.
func skipKey(b []byte) (int, error) {
	n, off := binary.Uvarint(b)
	if off <= 0 || n == 0 || n > 2 {
		return 0, errors.New("bad key encoding")
	}
	for i := uint64(0); i < n; i++ {
		l, m := binary.Uvarint(b[off:])
		if m <= 0 || uint64(len(b)-off-m) < l {
			return 0, errors.New("bad key encoding")
		}
		off += m + int(l) + 1 // name, type byte
		if off > len(b) {
			return 0, errors.New("bad key encoding")
		}
		l, m = binary.Uvarint(b[off:])
		if m <= 0 || uint64(len(b)-off-m) < l {
			return 0, errors.New("bad key encoding")
		}
		off += m + int(l)
	}
	return off, nil
}

// evOf returns the ev part of an index key of any data space.
func evOf(key []byte) ([]byte, error) {
	if len(key) == 0 {
		return nil, errors.New("empty key")
	}
	switch key[0] {
	case spaceTime, spaceRecord:
		return key[1:], nil
	case spaceTenant:
		n, err := skipStr(key[1:])
		if err != nil {
			return nil, err
		}
		return key[1+n:], nil
	case spaceItem:
		n, err := skipStr(key[1:])
		if err != nil {
			return nil, err
		}
		m, err := skipKey(key[1+n:])
		if err != nil {
			return nil, err
		}
		return key[1+n+m:], nil
	}
	return nil, fmt.Errorf("key space %q has no events", key[0])
}

// prefixEnd returns the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xFF {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// span returns the [lower, upper) bounds of prefix narrowed to a window of
// event times.
func span(prefix []byte, w Window) (lower, upper []byte) {
	lower = bytes.Clone(prefix)
	if w.HasFrom {
		lower = appendTS(lower, w.From)
	}
	if w.HasTo {
		upper = appendTS(bytes.Clone(prefix), w.To)
	} else {
		upper = prefixEnd(prefix)
	}
	return lower, upper
}

// Window is a half-open window [From, To) of event times in Unix
// microseconds. A bound is used only when its Has flag is set.
type Window struct {
	From, To       int64
	HasFrom, HasTo bool
}

// Contains reports whether micros falls in the window.
func (w Window) Contains(micros int64) bool {
	return (!w.HasFrom || micros >= w.From) && (!w.HasTo || micros < w.To)
}

// Empty reports whether no time can fall in the window.
func (w Window) Empty() bool {
	return w.HasFrom && w.HasTo && w.From >= w.To
}
