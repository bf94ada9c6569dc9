package query

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer"
	"github.com/go-json-experiment/json/jsontext"
)

// KeySetOptions bound the memory of KeySet.
type KeySetOptions struct {
	// MaxItems is how many distinct items are aggregated in memory before
	// they are handed to a rewind.KeySetWriter, which spills sorted runs
	// to disk. Default 1<<20 (about 200 MB at most).
	MaxItems int
	// TempDir is where spilled runs go. Default os.TempDir().
	TempDir string
}

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
	a := newAggregator(o, w)
	c, err := Events(ctx, st, q, func(ev *Event) error { return a.add(ev.Entry) })
	res := KeySetResult{Counts: c}
	if err != nil {
		a.abort()
		return res, err
	}
	n, err := a.write()
	res.Items = n
	return res, err
}

type agg struct {
	id          string // table 0x00 canonical key: the key set's order
	tableLen    int
	tenant      string
	first, last int64
	count       int64
	actions     uint8 // bit i: actionByIndex[i]
}

type aggregator struct {
	o     KeySetOptions
	w     io.Writer
	idx   map[string]int32
	items []agg
	buf   []byte
	kw    *rewind.KeySetWriter // once spilled
	gate  *gateWriter
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
	return &aggregator{o: o, w: w, idx: map[string]int32{}}
}

func (a *aggregator) add(e *indexer.Entry) error {
	a.buf = append(append(append(a.buf[:0], e.Table...), 0), e.Key...)
	i, ok := a.idx[string(a.buf)]
	if !ok {
		if len(a.items) >= a.o.MaxItems {
			if err := a.spill(); err != nil {
				return err
			}
		}
		i = int32(len(a.items))
		id := string(a.buf)
		a.idx[id] = i
		a.items = append(a.items, agg{id: id, tableLen: len(e.Table), tenant: string(e.Tenant), first: e.Micros, last: e.Micros})
	}
	it := &a.items[i]
	if it.tenant == "" && len(e.Tenant) > 0 {
		it.tenant = string(e.Tenant)
	}
	if e.Micros < it.first {
		it.first = e.Micros
	}
	if e.Micros > it.last {
		it.last = e.Micros
	}
	it.count++
	it.actions |= 1 << actionIndex(e.Action)
	return nil
}

var actionByIndex = [4]rewind.Action{"", rewind.ActionInsert, rewind.ActionModify, rewind.ActionRemove}

func (it *agg) entry() (rewind.KeySetEntry, error) {
	k, _, err := rewind.DecodeKey([]byte(it.id[it.tableLen+1:]))
	if err != nil {
		return rewind.KeySetEntry{}, err
	}
	e := rewind.KeySetEntry{
		Table: it.id[:it.tableLen], Key: k, Tenant: it.tenant,
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
	for i := range a.items {
		e, err := a.items[i].entry()
		if err != nil {
			return err
		}
		if err := a.kw.Add(e); err != nil {
			return err
		}
	}
	a.items = a.items[:0]
	clear(a.idx)
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
	slices.SortFunc(a.items, func(x, y agg) int { return strings.Compare(x.id, y.id) })
	bw := bufio.NewWriterSize(a.w, 64<<10)
	var line []byte
	for i := range a.items {
		var err error
		line, err = appendKeySetLine(line[:0], &a.items[i])
		if err != nil {
			return int64(i), err
		}
		if _, err := bw.Write(line); err != nil {
			return int64(i), err
		}
	}
	return int64(len(a.items)), bw.Flush()
}

// appendKeySetLine appends the item's key-set line and a newline, byte for
// byte as rewind.KeySetEntry.AppendJSON writes it, without decoding the key
// into attribute values.
func appendKeySetLine(dst []byte, it *agg) ([]byte, error) {
	dst = append(dst, `{"table":`...)
	dst = appendJSONString(dst, it.id[:it.tableLen])
	dst = append(dst, `,"key":`...)
	var err error
	dst, err = appendKeyJSON(dst, it.id[it.tableLen+1:])
	if err != nil {
		return dst, err
	}
	dst = append(dst, `,"tenant":`...)
	dst = appendJSONString(dst, it.tenant)
	dst = append(dst, `,"first":"`...)
	dst = time.UnixMicro(it.first).UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","last":"`...)
	dst = time.UnixMicro(it.last).UTC().AppendFormat(dst, time.RFC3339Nano)
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

func appendJSONString(dst []byte, s string) []byte {
	out, _ := jsontext.AppendQuote(dst, s) // as rewind does: invalid UTF-8 is replaced
	return out
}

// appendKeyJSON appends a canonical key encoding as DynamoDB JSON, as
// rewind.Key.AppendJSON does: attributes in name order.
func appendKeyJSON(dst []byte, enc string) ([]byte, error) {
	bad := errors.New("bad key encoding")
	n, off := binary.Uvarint([]byte(enc[:min(len(enc), binary.MaxVarintLen64)]))
	if off <= 0 || n == 0 || n > 2 {
		return dst, bad
	}
	str := func() (string, bool) {
		l, m := binary.Uvarint([]byte(enc[off:min(len(enc), off+binary.MaxVarintLen64)]))
		if m <= 0 || uint64(len(enc)-off-m) < l {
			return "", false
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
			dst = base64.StdEncoding.AppendEncode(dst, []byte(val))
			dst = append(dst, '"')
		default:
			return dst, fmt.Errorf("bad key encoding: type %q", typ)
		}
		dst = append(dst, '}')
	}
	return append(dst, '}'), nil
}
