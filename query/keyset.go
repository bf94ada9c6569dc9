package query

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"math"
	"runtime"
	"slices"
	"strconv"
	"time"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer"
	"github.com/go-json-experiment/json/jsontext"
	"golang.org/x/sync/errgroup"
)

// KeySetOptions bound the memory of KeySet.
type KeySetOptions struct {
	// MaxItems is how many distinct items are aggregated in memory before
	// they are handed to a rewind.KeySetWriter, which spills sorted runs
	// to disk. Default 1<<20 (about 200 MB at most).
	MaxItems int
	// TempDir is where spilled runs go. Default os.TempDir().
	TempDir string
	// Workers is how many parts of a large window are scanned at once,
	// each into an aggregator of its own, merged before the key set is
	// written. A window is split only when it is read through the time
	// ordering (no tenant filter, or tenants dense in it) and holds at
	// least partEvents events per part, and no more than MaxItems/2 in
	// all, so that no part's aggregator needs to spill. Default
	// GOMAXPROCS, at most 4; 1 scans in one pass.
	Workers int
}

// partEvents is the fewest events (estimated) a part of a split key-set
// scan is given: below it, starting a goroutine, an iterator and an
// aggregator, and merging, cost more than they save. Tests lower it.
var partEvents int64 = 16 << 10

// KeySetResult is what KeySet wrote.
type KeySetResult struct {
	Counts
	// Items is the number of key-set lines written.
	Items int64
}

// KeySet writes the key set of the events matching q to w: one line per
// item with its first and last change time in the window, its number of
// changes and the actions seen, sorted by table then canonical key, exactly
// as rewind.KeySetWriter writes it.
func KeySet(ctx context.Context, st *indexer.Store, q Query, w io.Writer, o KeySetOptions) (KeySetResult, error) {
	if o.MaxItems <= 0 {
		o.MaxItems = 1 << 20
	}
	if o.Workers <= 0 {
		o.Workers = min(runtime.GOMAXPROCS(0), 4)
	}
	if err := q.Validate(); err != nil {
		return KeySetResult{}, err
	}
	parts, err := keySetParts(st, &q, o)
	if err != nil {
		return KeySetResult{}, err
	}
	a := newAggregator(o, w)
	var res KeySetResult
	if len(parts) == 1 {
		res.Counts, err = events(ctx, st, &q, parts[0], func(ev *Event) error { return a.add(ev.Entry) })
	} else {
		res.Counts, err = keySetInParts(ctx, st, &q, parts, a)
	}
	if err != nil {
		a.abort()
		return res, err
	}
	n, err := a.write()
	res.Items = n
	return res, err
}

// keySetParts splits q's window into the parts KeySet scans at once (see
// KeySetOptions.Workers): equal spans of time, the first and last open
// where the window is. One part when the split would not pay.
func keySetParts(st *indexer.Store, q *Query, o KeySetOptions) ([]scan, error) {
	w := q.Window()
	one := []scan{{w: w}}
	if o.Workers < 2 || w.Empty() {
		return one, nil
	}
	var n int64
	var err error
	if len(q.Tenants) > 0 {
		var dense bool
		if dense, n, err = st.DenseTenants(normalTenants(q.Tenants), w); err != nil {
			return nil, err
		}
		one[0].known, one[0].dense = true, dense
		if !dense {
			return one, nil
		}
	} else if n, err = st.EstimateEvents(w); err != nil {
		return nil, err
	}
	parts := int(min(int64(o.Workers), n/partEvents))
	if parts < 2 || n > int64(o.MaxItems/2) {
		return one, nil
	}
	from, to := w.From, w.To
	if !w.HasFrom || !w.HasTo {
		first, last, ok, err := st.TimeRange()
		if err != nil || !ok {
			return one, err
		}
		if !w.HasFrom {
			from = first.UnixMicro()
		}
		if !w.HasTo {
			to = last.UnixMicro() + 1
		}
	}
	if to-from < int64(parts) {
		return one, nil
	}
	out := make([]scan, parts)
	for i := range out {
		out[i] = scan{known: one[0].known, dense: one[0].dense, w: indexer.Window{
			From: from + (to-from)*int64(i)/int64(parts), To: from + (to-from)*int64(i+1)/int64(parts),
			HasFrom: true, HasTo: true,
		}}
	}
	out[0].w.From, out[0].w.HasFrom = w.From, w.HasFrom
	out[parts-1].w.To, out[parts-1].w.HasTo = w.To, w.HasTo
	return out, nil
}

// keySetInParts scans each part into an aggregator of its own, at once,
// the first into a, and merges the others into a in time order: an
// item's tenant is the first one seen, as in one pass.
func keySetInParts(ctx context.Context, st *indexer.Store, q *Query, parts []scan, a *aggregator) (Counts, error) {
	aggs := make([]*aggregator, len(parts))
	counts := make([]Counts, len(parts))
	g, gctx := errgroup.WithContext(ctx)
	for i, sc := range parts {
		// The first part is a's; no part spills, as keySetParts splits
		// only windows of at most MaxItems/2 events.
		aggs[i] = a
		if i > 0 {
			aggs[i] = newAggregator(KeySetOptions{MaxItems: math.MaxInt32}, nil)
		}
		g.Go(func() error {
			var err error
			counts[i], err = events(gctx, st, q, sc, func(ev *Event) error { return aggs[i].add(ev.Entry) })
			return err
		})
	}
	var c Counts
	err := g.Wait()
	for _, pc := range counts {
		c.Scanned += pc.Scanned
		c.Matched += pc.Matched
		c.Undecodable += pc.Undecodable
	}
	if err != nil {
		return c, err
	}
	for _, b := range aggs[1:] {
		if err := a.merge(b); err != nil {
			return c, err
		}
	}
	return c, nil
}

type agg struct {
	idChunk  int32  // the id (table 0x00 canonical key, the key set's order) is
	idOff    uint16 // arena[idChunk][idOff:idOff+idLen]
	tableLen uint16
	idLen    int32
	hash     uint32 // of the id: its slot in aggregator.slots, probing on
	tenant   int32  // index in aggregator.tenants; no pointers, so the GC skips items
	first    int64
	last     int64
	count    int64
	actions  uint8 // bit i: actionByIndex[i]
}

// Items and ids live in chunks of a fixed size, so a growing key set
// allocates each byte about once and copies little: append would allocate
// about five times a large slice's final size on the way (it grows by a
// quarter), fresh memory that a new process pays for in page faults.
const (
	itemChunkBits = 10
	itemChunk     = 1 << itemChunkBits
	arenaChunk    = 64 << 10 // an id longer than this gets a chunk of its own
	// The first chunks' capacities: they grow to a full chunk by append.
	firstItems = 32
	firstArena = 2 << 10
	firstSlots = 64
)

// aggregator folds events into one entry per item. Item ids live in the
// arena and are found by hash (linear probing over slots: a Go map of
// 30,000 items cost a fifth of a key set's time), so an event costs no
// allocation; a tenant's key set of 10,000 items is mostly this loop and
// the sort.
type aggregator struct {
	o       KeySetOptions
	w       io.Writer
	seed    maphash.Seed
	slots   []int32 // open addressing by agg.hash: item index + 1, 0 free; a power of two long
	items   [][]agg // chunks of itemChunk
	n       int32   // items
	arena   [][]byte
	buf     []byte
	tenants []string             // tenant names; tenants[0] is ""
	kw      *rewind.KeySetWriter // once spilled
	gate    *gateWriter
}

// gateWriter lets an aborted KeySetWriter close (removing its runs) without
// writing a partial key set.
type gateWriter struct {
	w      io.Writer
	closed bool
}

func (g *gateWriter) Write(p []byte) (int, error) {
	if g.closed {
		return len(p), nil
	}
	return g.w.Write(p)
}

func newAggregator(o KeySetOptions, w io.Writer) *aggregator {
	return &aggregator{o: o, w: w, seed: maphash.MakeSeed(), slots: make([]int32, firstSlots), tenants: []string{""}}
}

func (a *aggregator) id(it *agg) []byte {
	return a.arena[it.idChunk][int32(it.idOff) : int32(it.idOff)+it.idLen]
}

func (a *aggregator) item(i int32) *agg { return &a.items[i>>itemChunkBits][i&(itemChunk-1)] }

// newItem adds an item with the id in a.buf.
func (a *aggregator) newItem(it agg) int32 {
	id := a.buf
	c := len(a.arena) - 1
	if c < 0 || len(a.arena[c])+len(id) > arenaChunk {
		// The first chunk starts small and grows by append (an id's
		// place is its chunk and offset, so moving a chunk moves
		// nothing); a small key set allocates only what it holds.
		size := firstArena
		if c >= 0 {
			size = arenaChunk
		}
		a.arena = append(a.arena, make([]byte, 0, max(size, len(id))))
		c++
	}
	it.idChunk, it.idOff, it.idLen = int32(c), uint16(len(a.arena[c])), int32(len(id))
	a.arena[c] = append(a.arena[c], id...)
	if a.n&(itemChunk-1) == 0 {
		size := firstItems
		if a.n > 0 {
			size = itemChunk
		}
		a.items = append(a.items, make([]agg, 0, size))
	}
	last := len(a.items) - 1
	a.items[last] = append(a.items[last], it)
	a.n++
	return a.n - 1
}

// grow doubles the slots, placing every item again by its hash.
func (a *aggregator) grow() {
	a.slots = make([]int32, 2*len(a.slots))
	mask := uint32(len(a.slots) - 1)
	for i := range a.n {
		p := a.item(i).hash & mask
		for a.slots[p] != 0 {
			p = (p + 1) & mask
		}
		a.slots[p] = i + 1
	}
}

func (a *aggregator) add(e *indexer.Entry) error {
	a.buf = append(append(append(a.buf[:0], e.Table...), 0), e.Key...)
	return fold(a, len(e.Table), e.Tenant, e.Micros, e.Micros, 1, 1<<actionIndex(e.Action))
}

// merge folds b's items into a.
func (a *aggregator) merge(b *aggregator) error {
	for i := range b.n {
		it := b.item(i)
		a.buf = append(a.buf[:0], b.id(it)...)
		if err := fold(a, int(it.tableLen), b.tenants[it.tenant], it.first, it.last, it.count, it.actions); err != nil {
			return err
		}
	}
	return nil
}

// fold adds to the item whose id is in a.buf (its table the first
// tableLen bytes) changes of the tenant from first to last.
func fold[S ~string | ~[]byte](a *aggregator, tableLen int, tenant S, first, last, count int64, actions uint8) error {
	h64 := maphash.Bytes(a.seed, a.buf)
	h := uint32(h64 ^ h64>>32)
	mask := uint32(len(a.slots) - 1)
	p := h & mask
	var i int32
	for {
		s := a.slots[p]
		if s == 0 {
			break
		}
		if it := a.item(s - 1); it.hash == h && bytes.Equal(a.id(it), a.buf) {
			i = s
			break
		}
		p = (p + 1) & mask
	}
	if i == 0 {
		if int(a.n) >= a.o.MaxItems {
			if err := a.spill(); err != nil {
				return err
			}
			p = h & mask // spill freed every slot
		}
		i = a.newItem(agg{
			tableLen: uint16(tableLen), hash: h,
			tenant: tenantIndex(a, tenant), first: first, last: last,
		}) + 1
		a.slots[p] = i
		if 4*int(a.n) >= 3*len(a.slots) {
			a.grow()
		}
	}
	it := a.item(i - 1)
	if it.tenant == 0 && len(tenant) > 0 {
		it.tenant = tenantIndex(a, tenant)
	}
	it.first = min(it.first, first)
	it.last = max(it.last, last)
	it.count += count
	it.actions |= actions
	return nil
}

// tenantIndex returns the index of tenant in a.tenants, adding it. The
// last one added is checked first: a tenant's scan meets only its own.
func tenantIndex[S ~string | ~[]byte](a *aggregator, tenant S) int32 {
	if len(tenant) == 0 {
		return 0
	}
	if last := len(a.tenants) - 1; a.tenants[last] == string(tenant) {
		return int32(last)
	}
	for i, t := range a.tenants {
		if t == string(tenant) {
			return int32(i)
		}
	}
	a.tenants = append(a.tenants, string(tenant))
	return int32(len(a.tenants) - 1)
}

var actionByIndex = [4]rewind.Action{"", rewind.ActionInsert, rewind.ActionModify, rewind.ActionRemove}

func (a *aggregator) entry(it *agg) (rewind.KeySetEntry, error) {
	id := a.id(it)
	k, _, err := rewind.DecodeKey(id[it.tableLen+1:])
	if err != nil {
		return rewind.KeySetEntry{}, err
	}
	e := rewind.KeySetEntry{
		Table: string(id[:it.tableLen]), Key: k, Tenant: a.tenants[it.tenant],
		First: time.UnixMicro(it.first).UTC(), Last: time.UnixMicro(it.last).UTC(), Count: it.count,
	}
	for i := 1; i < 4; i++ {
		if it.actions&(1<<i) != 0 {
			e.Actions = append(e.Actions, actionByIndex[i])
		}
	}
	return e, nil
}

// spill hands the aggregated items to a KeySetWriter, which merges them
// with later ones and sorts on disk.
func (a *aggregator) spill() error {
	if a.kw == nil {
		a.gate = &gateWriter{w: a.w}
		a.kw = rewind.NewKeySetWriter(a.gate)
		a.kw.TempDir = a.o.TempDir
	}
	for i := range a.n {
		e, err := a.entry(a.item(i))
		if err != nil {
			return err
		}
		if err := a.kw.Add(e); err != nil {
			return err
		}
	}
	a.items, a.n, a.arena = nil, 0, nil
	clear(a.slots)
	return nil
}

func (a *aggregator) abort() {
	if a.kw != nil {
		a.gate.closed = true
		a.kw.Close() // removes its spilled runs
	}
}

func (a *aggregator) write() (int64, error) {
	if a.kw != nil {
		if err := a.spill(); err != nil {
			a.abort()
			return 0, err
		}
		err := a.kw.Close()
		return a.kw.Written(), err
	}
	order := a.sorted()
	if a.o.Workers > 1 && len(order) >= 16*writeLines {
		return a.writeInParts(order)
	}
	bw := bufio.NewWriterSize(a.w, 64<<10)
	var line []byte
	var hours hourCache
	for n, i := range order {
		var err error
		it := a.item(i)
		line, err = appendKeySetLine(line[:0], &hours, a.id(it), a.tenants[it.tenant], it)
		if err != nil {
			return int64(n), err
		}
		if _, err := bw.Write(line); err != nil {
			return int64(n), err
		}
	}
	return int64(len(order)), bw.Flush()
}

// writeLines is how many key-set lines a worker formats at a time when a
// key set of at least 16 times as many is written in parts (below that,
// waking the workers costs more than they save: 0.3 ms of a 1 ms key set
// of 1,000 lines). Tests lower it.
var writeLines = 512

// writeInParts formats the key set's lines Workers runs of writeLines at
// a time, at once, and writes each round in order: at most
// Workers×writeLines lines are held.
func (a *aggregator) writeInParts(order []int32) (int64, error) {
	bufs := make([][]byte, a.o.Workers)
	hours := make([]hourCache, a.o.Workers)
	var written int64
	for start := 0; start < len(order); start += len(bufs) * writeLines {
		round := order[start:min(len(order), start+len(bufs)*writeLines)]
		var g errgroup.Group
		for w := range bufs {
			lines := round[min(len(round), w*writeLines):min(len(round), (w+1)*writeLines)]
			g.Go(func() error {
				b := bufs[w][:0]
				for _, i := range lines {
					it := a.item(i)
					var err error
					if b, err = appendKeySetLine(b, &hours[w], a.id(it), a.tenants[it.tenant], it); err != nil {
						return err
					}
				}
				bufs[w] = b
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return written, err
		}
		for w := range bufs {
			if _, err := a.w.Write(bufs[w]); err != nil {
				return written, err
			}
			written += int64(min(len(round), (w+1)*writeLines) - min(len(round), w*writeLines))
		}
	}
	return written, nil
}

// sorted returns the items' indexes in key-set order (table, then
// canonical key). The ids of one query share a long prefix (table, key
// attribute names, often the partition key), so the sort compares the 8
// bytes after the common prefix as an integer and the full ids only on a
// tie.
func (a *aggregator) sorted() []int32 {
	if a.n == 0 {
		return nil
	}
	first := a.id(a.item(0))
	lcp := len(first)
	for i := int32(1); i < a.n; i++ {
		id := a.id(a.item(i))
		n := min(lcp, len(id))
		j := 0
		for j < n && id[j] == first[j] {
			j++
		}
		lcp = j
	}
	type ent struct {
		pfx uint64
		i   int32
	}
	ents := make([]ent, a.n)
	var b [8]byte
	for i := range a.n {
		id := a.id(a.item(i))
		b = [8]byte{}
		copy(b[:], id[lcp:])
		ents[i] = ent{binary.BigEndian.Uint64(b[:]), i}
	}
	byID := func(x, y ent) int { return bytes.Compare(a.id(a.item(x.i)), a.id(a.item(y.i))) }
	if len(ents) < 256 {
		slices.SortFunc(ents, func(x, y ent) int {
			if x.pfx != y.pfx {
				return cmp.Compare(x.pfx, y.pfx)
			}
			return byID(x, y)
		})
	} else {
		// LSD radix sort on the prefix, a byte a pass, skipping the bytes
		// every prefix shares; then the runs of equal prefixes by id.
		tmp := make([]ent, len(ents))
		for shift := 0; shift < 64; shift += 8 {
			var count [256]int
			for _, e := range ents {
				count[byte(e.pfx>>shift)]++
			}
			if count[byte(ents[0].pfx>>shift)] == len(ents) {
				continue
			}
			pos := 0
			for i, c := range count {
				count[i] = pos
				pos += c
			}
			for _, e := range ents {
				b := byte(e.pfx >> shift)
				tmp[count[b]] = e
				count[b]++
			}
			ents, tmp = tmp, ents
		}
		for i := 0; i < len(ents); {
			j := i + 1
			for j < len(ents) && ents[j].pfx == ents[i].pfx {
				j++
			}
			if j-i > 1 {
				slices.SortFunc(ents[i:j], byID)
			}
			i = j
		}
	}
	out := make([]int32, len(ents))
	for i, e := range ents {
		out[i] = e.i
	}
	return out
}

// appendKeySetLine appends the item's key-set line and a newline, byte for
// byte as rewind.KeySetEntry.AppendJSON writes it, without decoding the key
// into attribute values.
func appendKeySetLine(dst []byte, hc *hourCache, id []byte, tenant string, it *agg) ([]byte, error) {
	dst = append(dst, `{"table":`...)
	dst = appendJSONString(dst, id[:it.tableLen])
	dst = append(dst, `,"key":`...)
	var err error
	dst, err = appendKeyJSON(dst, id[it.tableLen+1:])
	if err != nil {
		return dst, err
	}
	dst = append(dst, `,"tenant":`...)
	dst = appendJSONString(dst, tenant)
	dst = append(dst, `,"first":"`...)
	dst = hc.appendTime(dst, it.first)
	dst = append(dst, `","last":"`...)
	dst = hc.appendTime(dst, it.last)
	dst = append(dst, `","count":`...)
	dst = strconv.AppendInt(dst, it.count, 10)
	dst = append(dst, `,"actions":[`...)
	sep := false
	for i := 1; i < 4; i++ {
		if it.actions&(1<<i) != 0 {
			if sep {
				dst = append(dst, ',')
			}
			sep = true
			dst = append(dst, '"')
			dst = append(dst, actionByIndex[i]...)
			dst = append(dst, '"')
		}
	}
	return append(dst, "]}\n"...), nil
}

// appendJSONString quotes s as rewind does (jsontext.AppendQuote: invalid
// UTF-8 replaced), copying printable ASCII straight through.
func appendJSONString[S ~string | ~[]byte](dst []byte, s S) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			out, _ := jsontext.AppendQuote(dst, s)
			return out
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// appendTime appends t (Unix µs) as time.RFC3339Nano in UTC, as rewind's
// key-set writer does, without time.Format for the usual years.
func appendTime(dst []byte, micros int64) []byte {
	t := time.UnixMicro(micros).UTC()
	y, mo, d := t.Date()
	if y < 1000 || y > 9999 {
		return t.AppendFormat(dst, time.RFC3339Nano)
	}
	h, mi, sec := t.Clock()
	dst = appendDigits(dst, y, 4)
	dst = append(dst, '-')
	dst = appendDigits(dst, int(mo), 2)
	dst = append(dst, '-')
	dst = appendDigits(dst, d, 2)
	dst = append(dst, 'T')
	dst = appendDigits(dst, h, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, mi, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, sec, 2)
	frac := int(micros - micros/1e6*1e6)
	if frac < 0 {
		frac += 1e6
	}
	return appendFracZ(dst, frac)
}

// appendFracZ appends the microseconds frac of a second as RFC 3339Nano
// does (a dot and the digits without trailing zeros, none for 0), and Z.
func appendFracZ(dst []byte, frac int) []byte {
	if frac != 0 {
		n := 6
		for frac%10 == 0 {
			frac /= 10
			n--
		}
		dst = append(dst, '.')
		dst = appendDigits(dst, frac, n)
	}
	return append(dst, 'Z')
}

// hourCache appends times as appendTime does, keeping the date and hour
// of the last time it formatted: a key set's times fall in a few hours,
// and the calendar is most of the cost.
type hourCache struct {
	start  int64  // Unix microseconds of the hour's start; prefix is valid when ok
	prefix []byte // "YYYY-MM-DDTHH:"
	ok     bool
}

func (c *hourCache) appendTime(dst []byte, micros int64) []byte {
	if !c.ok || micros < c.start || micros >= c.start+3600e6 {
		start := micros - micros%3600e6
		if micros%3600e6 < 0 {
			start -= 3600e6
		}
		t := time.UnixMicro(start).UTC()
		if y := t.Year(); y < 1000 || y > 9999 {
			c.ok = false
			return appendTime(dst, micros)
		}
		c.start, c.ok = start, true
		c.prefix = appendTime(c.prefix[:0], start)[:len("2006-01-02T15:")]
	}
	dst = append(dst, c.prefix...)
	in := micros - c.start
	sec := in / 1e6
	dst = appendDigits(dst, int(sec/60), 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, int(sec%60), 2)
	return appendFracZ(dst, int(in%1e6))
}

func appendDigits(dst []byte, v, width int) []byte {
	var b [8]byte
	for i := width - 1; i >= 0; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return append(dst, b[:width]...)
}

// appendKeyJSON appends a canonical key encoding as DynamoDB JSON, as
// rewind.Key.AppendJSON does: attributes in name order.
var errBadKey = errors.New("bad key encoding")

func appendKeyJSON(dst, enc []byte) ([]byte, error) {
	bad := errBadKey
	n, off := binary.Uvarint(enc)
	if off <= 0 || n == 0 || n > 2 {
		return dst, bad
	}
	str := func() ([]byte, bool) {
		l, m := binary.Uvarint(enc[off:])
		if m <= 0 || uint64(len(enc)-off-m) < l {
			return nil, false
		}
		s := enc[off+m : off+m+int(l)]
		off += m + int(l)
		return s, true
	}
	dst = append(dst, '{')
	for i := uint64(0); i < n; i++ {
		name, ok := str()
		if !ok || off >= len(enc) {
			return dst, bad
		}
		typ := enc[off]
		off++
		val, ok := str()
		if !ok {
			return dst, bad
		}
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, name)
		switch typ {
		case 'S':
			dst = append(dst, `:{"S":`...)
			dst = appendJSONString(dst, val)
		case 'N':
			dst = append(dst, `:{"N":`...)
			dst = appendJSONString(dst, val)
		case 'B':
			dst = append(dst, `:{"B":"`...)
			dst = base64.StdEncoding.AppendEncode(dst, val)
			dst = append(dst, '"')
		default:
			return dst, fmt.Errorf("bad key encoding: type %q", typ)
		}
		dst = append(dst, '}')
	}
	return append(dst, '}'), nil
}
