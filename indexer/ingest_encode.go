package indexer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ddbrewind/rewind"
	"github.com/parquet-go/parquet-go"
)

// pending is one decoded event, as the keys and values it will be stored
// under. The slices point into its object's arena.
type pending struct {
	t, n, i []byte // index keys; i is nil for an undecodable event
	// sum is the 't' value (the 'n' and 'i' values are empty), rec the
	// 'r' value, id the event ID (in sum too).
	sum, rec, id []byte
	obj          int32 // the object's position in its batch
	dup          bool
}

type decoded struct {
	obj    Object
	etag   string
	size   int64
	nbytes int // encoded bytes of evs
	evs    []pending
	tables []string
	first  int64
	last   int64
	err    error
	weight int64 // of the ingest's budget, until its batch is handed off
}

// bytes returns the encoded size of the object's events.
func (d *decoded) bytes() int { return d.nbytes }

// arenaChunk is the size of the buffers decode writes events into. A
// buffer is never grown: an event that does not fit starts the next one.
// (One buffer per object, grown by append, cost a twentieth of an
// ingest's CPU in copies of what it held.)
const arenaChunk = 1 << 20

// chunkSize is the size of the next buffer: room for need bytes, and for
// the rest of the object's rows if they are like those so far (the rows
// left at need bytes each for the first buffer), up to arenaChunk. The
// ingest's memory budget counts the bytes written, so the last buffer of
// an object is not left mostly empty.
func chunkSize(need, written, rows, left int) int {
	est := need * left
	if rows > 0 {
		avg := written / rows
		est = (avg+avg/8)*left + need // a row's average and an eighth
	}
	return max(need, min(est, arenaChunk))
}

// encodedBound is more than the bytes encodeEvent writes for ev.
func encodedBound(ev *rewind.ChangeEvent, keyEnc int) int {
	evb := 2*binary.MaxVarintLen64 + len(ev.SequenceNumber) + len(ev.EventID)
	n := 3*evb + 3*(len(ev.Table)+len(ev.Tenant)) + 2*keyEnc + 2*len(ev.EventID) +
		len(ev.Region) + len(ev.ShardID) + len(ev.Export.ID) + len(ev.StreamViewType) +
		len(ev.OldImage) + len(ev.NewImage) + len(ev.DecodeError) + len(ev.Raw) +
		24*binary.MaxVarintLen64
	for _, a := range ev.ChangedAttributes {
		n += binary.MaxVarintLen64 + len(a)
	}
	return n
}

// encodeEvent appends ev's keys and values to a and returns them as a
// pending event, whose slices alias a's array.
func encodeEvent(a []byte, ev *rewind.ChangeEvent, micros int64, keyEnc []byte) ([]byte, pending) {
	undecodable := ev.DecodeError != ""
	var p pending
	t := len(a)
	a = append(a, spaceTime)
	evStart := len(a)
	a = appendEv(a, micros, ev.SequenceNumber, ev.EventID, ev.Table, ev.ShardID)
	evEnd := len(a)
	n := len(a)
	a = append(a, spaceTenant)
	a = appendStr(a, ev.Tenant)
	a = append(a, a[evStart:evEnd]...)
	i := len(a)
	if !undecodable {
		a = append(a, spaceItem)
		a = appendStr(a, ev.Table)
		a = append(a, keyEnc...)
		a = append(a, a[evStart:evEnd]...)
	}
	sum := len(a)
	a = appendSummary(a, ev, keyEnc)
	rec := len(a)
	a = appendRecord(a, ev)
	id := len(a)
	a = append(a, ev.EventID...)
	end := len(a)
	p.t = a[t:n:n]
	p.n = a[n:i:i]
	if sum > i {
		p.i = a[i:sum:sum]
	}
	p.sum = a[sum:rec:rec]
	p.rec = a[rec:id:id]
	p.id = a[id:end:end]
	return a, p
}

// Event times outside [earliestEvent, now+maxFutureSkew] are refused: a
// stream record older than DynamoDB or from the future says a clock or a
// writer is wrong, and one such event would stretch every default window
// (and stats' timeline) over centuries. The object fails, named, and the
// others are still ingested.
var earliestEvent = time.Date(2012, 1, 1, 0, 0, 0, 0, time.UTC)

const maxFutureSkew = time.Hour

func plausibleTime(micros int64, now time.Time) error {
	t := time.UnixMicro(micros).UTC()
	switch {
	case t.Before(earliestEvent):
		return fmt.Errorf("event time %s is before DynamoDB existed (a skewed clock or a bad writer)", t.Format(time.RFC3339Nano))
	case t.After(now.Add(maxFutureSkew)):
		return fmt.Errorf("event time %s is more than %s ahead of this machine's clock (%s)", t.Format(time.RFC3339Nano), maxFutureSkew, now.UTC().Format(time.RFC3339))
	}
	return nil
}

func (d *decoded) decode(r io.ReaderAt, size int64) error {
	f, err := parquet.OpenFile(r, size)
	if err != nil {
		return fmt.Errorf("corrupt parquet: %w", err)
	}
	pr := parquet.NewGenericReader[rewind.ParquetRow](f)
	defer pr.Close()
	n := pr.NumRows()
	// No more than a million up front: the footer may lie.
	d.evs = make([]pending, 0, min(n, 1<<20))
	var a []byte // the buffer being written
	rows := make([]rewind.ParquetRow, 128)
	var keyEnc []byte
	rowNum := 0
	tables := map[string]bool{}
	d.first, d.last = 0, 0
	now := time.Now()
	for {
		k, err := pr.Read(rows)
		for i := range rows[:k] {
			row := &rows[i]
			rowNum++
			if row.EventID == "" {
				return fmt.Errorf("row %d: no event_id", rowNum)
			}
			ev, cerr := row.ChangeEvent()
			if cerr != nil {
				return fmt.Errorf("row %d (event %s): %w", rowNum, row.EventID, cerr)
			}
			undecodable := ev.DecodeError != ""
			if !undecodable && ev.Table == "" {
				return fmt.Errorf("row %d (event %s): no source_table", rowNum, row.EventID)
			}
			micros := row.EventTime
			if !undecodable {
				if err := plausibleTime(micros, now); err != nil {
					return fmt.Errorf("row %d (event %s): %w", rowNum, row.EventID, err)
				}
			}
			if len(d.evs) == 0 || micros < d.first {
				d.first = micros
			}
			if len(d.evs) == 0 || micros > d.last {
				d.last = micros
			}
			if ev.Table != "" && !tables[ev.Table] {
				tables[ev.Table] = true
				d.tables = append(d.tables, ev.Table)
			}
			keyEnc = keyEnc[:0]
			if !undecodable {
				keyEnc = ev.Keys.AppendEncode(keyEnc)
			}
			if need := encodedBound(&ev, len(keyEnc)); cap(a)-len(a) < need {
				a = make([]byte, 0, chunkSize(need, d.nbytes, len(d.evs), int(n)-len(d.evs)))
			}
			start := len(a)
			var p pending
			a, p = encodeEvent(a, &ev, micros, keyEnc)
			d.nbytes += len(a) - start
			d.evs = append(d.evs, p)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("corrupt parquet after row %d: %w", rowNum, err)
		}
		if k == 0 {
			return fmt.Errorf("corrupt parquet: reader stalled after row %d", rowNum)
		}
	}
	if int64(rowNum) != n {
		return fmt.Errorf("corrupt parquet: read %d rows, footer says %d", rowNum, n)
	}
	return nil
}
