package indexer

import (
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
	arena  []byte
	evs    []pending
	tables []string
	first  int64
	last   int64
	err    error
	weight int64 // of the ingest's budget, until its batch is handed off
}

// bytes returns the encoded size of the object's events.
func (d *decoded) bytes() int { return len(d.arena) }

type offs struct{ t, n, i, sum, rec, id, end int }

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
	d.arena = make([]byte, 0, int(n)*768) // about what an event with ~300-byte images takes: one growth fewer
	var spans []offs
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
			if len(spans) == 0 || micros < d.first {
				d.first = micros
			}
			if len(spans) == 0 || micros > d.last {
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
			var o offs
			a := d.arena
			o.t = len(a)
			a = append(a, spaceTime)
			evStart := len(a)
			a = appendEv(a, micros, ev.SequenceNumber, ev.EventID, ev.Table, ev.ShardID)
			evEnd := len(a)
			o.n = len(a)
			a = append(a, spaceTenant)
			a = appendStr(a, ev.Tenant)
			a = append(a, a[evStart:evEnd]...)
			o.i = len(a)
			if !undecodable {
				a = append(a, spaceItem)
				a = appendStr(a, ev.Table)
				a = append(a, keyEnc...)
				a = append(a, a[evStart:evEnd]...)
			}
			o.sum = len(a)
			a = appendSummary(a, &ev, keyEnc)
			o.rec = len(a)
			a = appendRecord(a, &ev)
			o.id = len(a)
			a = append(a, ev.EventID...)
			o.end = len(a)
			d.arena = a
			spans = append(spans, o)
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
	a := d.arena
	d.evs = make([]pending, len(spans))
	for j, o := range spans {
		p := &d.evs[j]
		p.t = a[o.t:o.n:o.n]
		p.n = a[o.n:o.i:o.i]
		if o.sum > o.i {
			p.i = a[o.i:o.sum:o.sum]
		}
		p.sum = a[o.sum:o.rec:o.rec]
		p.rec = a[o.rec:o.id:o.id]
		p.id = a[o.id:o.end:o.end]
	}
	return nil
}
