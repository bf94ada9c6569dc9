package rewind

import (
	"bufio"
	"bytes"
	"container/heap"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// KeySetEntry is one line of a key set: one impacted item, with when and how
// often it changed. A key set is JSON Lines of these, sorted by table and
// canonical key, one line per item:
//
//	{"table":"orders","key":{"pk":{"S":"t1"},"sk":{"S":"order#42"}},"tenant":"t1","first":"2026-11-20T10:04:05Z","last":"2026-11-20T10:31:12Z","count":3,"actions":["MODIFY","REMOVE"]}
//
// Only table and key are required; key is DynamoDB JSON exactly as
// `aws dynamodb get-item --key` takes it.
type KeySetEntry struct {
	Table   string    `json:"table"`
	Key     Key       `json:"key"`
	Tenant  string    `json:"tenant"`
	First   time.Time `json:"first"`
	Last    time.Time `json:"last"`
	Count   int64     `json:"count"`
	Actions []Action  `json:"actions"`
}

// sortKey orders entries by table, then canonical key.
func (e *KeySetEntry) sortKey() string {
	return e.Table + "\x00" + string(e.Key.Encode())
}

// Merge folds o, an entry for the same item, into e.
func (e *KeySetEntry) Merge(o KeySetEntry) {
	if e.Tenant == "" {
		e.Tenant = o.Tenant
	}
	if !o.First.IsZero() && (e.First.IsZero() || o.First.Before(e.First)) {
		e.First = o.First
	}
	if o.Last.After(e.Last) {
		e.Last = o.Last
	}
	e.Count += o.Count
	for _, a := range o.Actions {
		if !slices.Contains(e.Actions, a) {
			e.Actions = append(e.Actions, a)
		}
	}
	sortActions(e.Actions)
}

var actionOrder = map[Action]int{ActionInsert: 0, ActionModify: 1, ActionRemove: 2}

func sortActions(a []Action) {
	slices.SortFunc(a, func(x, y Action) int { return actionOrder[x] - actionOrder[y] })
}

type keySetLine struct {
	Table   string          `json:"table"`
	Key     json.RawMessage `json:"key"`
	Tenant  string          `json:"tenant"`
	First   string          `json:"first"`
	Last    string          `json:"last"`
	Count   int64           `json:"count"`
	Actions []string        `json:"actions"`
}

// AppendJSON appends the entry as one JSON line, without the newline.
func (e *KeySetEntry) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"table":`...)
	dst = appendJSONString(dst, e.Table)
	dst = append(dst, `,"key":`...)
	dst = e.Key.AppendJSON(dst)
	dst = append(dst, `,"tenant":`...)
	dst = appendJSONString(dst, e.Tenant)
	dst = append(dst, `,"first":"`...)
	dst = e.First.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","last":"`...)
	dst = e.Last.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","count":`...)
	dst = fmt.Appendf(dst, "%d", e.Count)
	dst = append(dst, `,"actions":[`...)
	for i, a := range e.Actions {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, string(a))
	}
	return append(dst, "]}"...)
}

// ParseKeySetLine decodes and checks one key-set line.
func ParseKeySetLine(line []byte) (KeySetEntry, error) {
	var l keySetLine
	dec := json.NewDecoder(bytes.NewReader(line))
	if err := dec.Decode(&l); err != nil {
		return KeySetEntry{}, fmt.Errorf("not a key-set line: %w", err)
	}
	if dec.More() {
		return KeySetEntry{}, errors.New("more than one JSON value on the line")
	}
	if l.Table == "" {
		return KeySetEntry{}, errors.New(`missing "table"`)
	}
	if len(l.Key) == 0 || string(l.Key) == "null" {
		return KeySetEntry{}, errors.New(`missing "key"`)
	}
	key, err := ParseKey(l.Key)
	if err != nil {
		return KeySetEntry{}, fmt.Errorf("key %s: %w", l.Key, err)
	}
	e := KeySetEntry{Table: l.Table, Key: key, Tenant: l.Tenant, Count: l.Count}
	if l.Count < 0 {
		return KeySetEntry{}, fmt.Errorf("negative count %d", l.Count)
	}
	for _, f := range []struct {
		name string
		s    string
		t    *time.Time
	}{{"first", l.First, &e.First}, {"last", l.Last, &e.Last}} {
		if f.s == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, f.s)
		if err != nil {
			return KeySetEntry{}, fmt.Errorf("%q is not an RFC 3339 time: %q", f.name, f.s)
		}
		*f.t = t.UTC()
	}
	if !e.First.IsZero() && !e.Last.IsZero() && e.Last.Before(e.First) {
		return KeySetEntry{}, fmt.Errorf("last %s is before first %s", l.Last, l.First)
	}
	for _, s := range l.Actions {
		a, err := ParseAction(s)
		if err != nil {
			return KeySetEntry{}, err
		}
		if !slices.Contains(e.Actions, a) {
			e.Actions = append(e.Actions, a)
		}
	}
	sortActions(e.Actions)
	return e, nil
}

// KeySetReader streams the entries of a key set, one line at a time, in
// constant memory.
type KeySetReader struct {
	r    *bufio.Reader
	name string
	line int
	buf  []byte
	max  int
}

// maxKeySetLine bounds a line: a key is at most 2 KB of partition key and
// 1 KB of sort key, base64 makes that 4 KB, and the rest is small.
const maxKeySetLine = 64 << 10

// NewKeySetReader reads a key set from r. name (a file name, or "-") is
// used in errors.
func NewKeySetReader(r io.Reader, name string) *KeySetReader {
	return &KeySetReader{r: bufio.NewReaderSize(r, 64<<10), name: name, max: maxKeySetLine}
}

// SetMaxLine sets the longest line accepted (default 64 KiB), for files
// whose lines are key-set lines with more fields, such as patch plans.
func (r *KeySetReader) SetMaxLine(n int) { r.max = n }

// Bytes returns the line last returned by Next, valid until the next call.
func (r *KeySetReader) Bytes() []byte { return r.buf }

// Line returns the number of the line last read.
func (r *KeySetReader) Line() int { return r.line }

// Next returns the next entry, or io.EOF after the last. Blank lines are
// skipped, and so is a UTF-8 byte-order mark at the very start of the key
// set (PowerShell and some editors write one). Errors name the file and
// line.
func (r *KeySetReader) Next() (KeySetEntry, error) {
	for {
		line, err := r.readLine()
		if err != nil {
			return KeySetEntry{}, err
		}
		if r.line == 1 {
			if line, err = r.firstLine(line); err != nil {
				return KeySetEntry{}, err
			}
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		e, err := ParseKeySetLine(line)
		if err != nil {
			if at := bomOutsideStrings(line); at >= 0 {
				where := "at the start of the line"
				if at > 0 {
					where = fmt.Sprintf("at byte offset %d", at)
				}
				return KeySetEntry{}, fmt.Errorf("%s: line %d: byte-order mark (U+FEFF, bytes EF BB BF) %s: only the start of a key set may have one; remove it (were files with byte-order marks joined together?)", r.name, r.line, where)
			}
			return KeySetEntry{}, fmt.Errorf("%s: line %d: %w", r.name, r.line, err)
		}
		return e, nil
	}
}

var (
	utf8BOM    = []byte{0xEF, 0xBB, 0xBF}
	utf16LEBOM = []byte{0xFF, 0xFE}
	utf16BEBOM = []byte{0xFE, 0xFF}
)

// firstLine drops a UTF-8 byte-order mark from the first line and refuses
// UTF-16, which Windows PowerShell 5's > writes.
func (r *KeySetReader) firstLine(line []byte) ([]byte, error) {
	if bytes.HasPrefix(line, utf8BOM) {
		return line[len(utf8BOM):], nil
	}
	if bytes.HasPrefix(line, utf16LEBOM) || bytes.HasPrefix(line, utf16BEBOM) {
		return nil, fmt.Errorf("%s: line 1: starts with a UTF-16 byte-order mark (bytes %X %X): a key set is UTF-8; convert it (in PowerShell: Get-Content in.jsonl | Set-Content -Encoding utf8 out.jsonl)", r.name, line[0], line[1])
	}
	return line, nil
}

// bomOutsideStrings returns the offset of the first UTF-8 byte-order mark
// in line that is not inside a JSON string, or -1. Inside a string U+FEFF
// is a character like any other and may be part of a key.
func bomOutsideStrings(line []byte) int {
	inString, escaped := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case inString && escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case !inString && bytes.HasPrefix(line[i:], utf8BOM):
			return i
		}
	}
	return -1
}

func (r *KeySetReader) readLine() ([]byte, error) {
	r.buf = r.buf[:0]
	for {
		chunk, err := r.r.ReadSlice('\n')
		r.buf = append(r.buf, chunk...)
		if len(r.buf) > r.max {
			r.line++
			return nil, fmt.Errorf("%s: line %d: longer than %d bytes", r.name, r.line, r.max)
		}
		switch {
		case err == nil:
			r.line++
			return r.buf, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(r.buf) == 0 {
				return nil, io.EOF
			}
			r.line++
			return r.buf, nil
		default:
			return nil, fmt.Errorf("%s: line %d: %w", r.name, r.line+1, err)
		}
	}
}

// ReadKeySetFile opens a key set and calls fn for each entry in order.
func ReadKeySetFile(path string, fn func(KeySetEntry) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read key set: %w", err)
	}
	defer f.Close()
	r := NewKeySetReader(f, path)
	for {
		e, err := r.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read key set: %w", err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}

// KeySetWriter writes a key set sorted by (table, canonical key) with one
// line per item: entries added for the same item are merged. Entries may be
// added in any order. Memory is bounded: past RunSize entries, sorted runs
// are spilled to temporary files and merged on Close.
type KeySetWriter struct {
	w       io.Writer
	RunSize int    // entries held in memory before spilling; default 1<<18
	TempDir string // where runs are spilled; default os.TempDir()

	buf  []KeySetEntry
	runs []string
	n    int64
	err  error
}

// NewKeySetWriter returns a writer that writes the key set to w on Close.
func NewKeySetWriter(w io.Writer) *KeySetWriter {
	return &KeySetWriter{w: w}
}

// Add adds an entry.
func (kw *KeySetWriter) Add(e KeySetEntry) error {
	if kw.err != nil {
		return kw.err
	}
	if e.Table == "" || len(e.Key) == 0 {
		return errors.New("key set entry needs a table and a key")
	}
	kw.buf = append(kw.buf, e)
	size := kw.RunSize
	if size <= 0 {
		size = 1 << 18
	}
	if len(kw.buf) >= size {
		kw.err = kw.spill()
	}
	return kw.err
}

// Written returns the number of lines written by Close.
func (kw *KeySetWriter) Written() int64 { return kw.n }

func sortAndMerge(buf []KeySetEntry) []KeySetEntry {
	slices.SortFunc(buf, func(a, b KeySetEntry) int { return strings.Compare(a.sortKey(), b.sortKey()) })
	out := buf[:0]
	for _, e := range buf {
		if len(out) > 0 && out[len(out)-1].Table == e.Table && out[len(out)-1].Key.Equal(e.Key) {
			out[len(out)-1].Merge(e)
			continue
		}
		sortActions(e.Actions)
		out = append(out, e)
	}
	return out
}

func (kw *KeySetWriter) spill() error {
	f, err := os.CreateTemp(kw.TempDir, "rewind-keyset-run-*.jsonl")
	if err != nil {
		return fmt.Errorf("spill key set run: %w", err)
	}
	kw.runs = append(kw.runs, f.Name())
	bw := bufio.NewWriter(f)
	var line []byte
	for _, e := range sortAndMerge(kw.buf) {
		line = append(e.AppendJSON(line[:0]), '\n')
		bw.Write(line)
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("spill key set run: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("spill key set run: %w", err)
	}
	kw.buf = kw.buf[:0]
	return nil
}

// Close sorts, merges and writes every entry, and removes spilled runs. It
// does not close the underlying writer.
func (kw *KeySetWriter) Close() error {
	defer func() {
		for _, r := range kw.runs {
			os.Remove(r)
		}
		kw.runs = nil
	}()
	if kw.err != nil {
		return kw.err
	}
	bw := bufio.NewWriterSize(kw.w, 64<<10)
	var line []byte
	emit := func(e KeySetEntry) error {
		line = append(e.AppendJSON(line[:0]), '\n')
		kw.n++
		_, err := bw.Write(line)
		return err
	}
	if len(kw.runs) == 0 {
		for _, e := range sortAndMerge(kw.buf) {
			if err := emit(e); err != nil {
				return fmt.Errorf("write key set: %w", err)
			}
		}
		kw.buf = nil
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("write key set: %w", err)
		}
		return nil
	}
	if len(kw.buf) > 0 {
		if err := kw.spill(); err != nil {
			return err
		}
	}
	kw.buf = nil
	if err := mergeRuns(kw.runs, emit); err != nil {
		return fmt.Errorf("write key set: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write key set: %w", err)
	}
	return nil
}

type runHead struct {
	e   KeySetEntry
	key string
	r   *KeySetReader
}

type runHeap []*runHead

func (h runHeap) Len() int           { return len(h) }
func (h runHeap) Less(i, j int) bool { return h[i].key < h[j].key }
func (h runHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)        { *h = append(*h, x.(*runHead)) }
func (h *runHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func mergeRuns(paths []string, emit func(KeySetEntry) error) error {
	var h runHeap
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		r := NewKeySetReader(f, p)
		e, err := r.Next()
		if errors.Is(err, io.EOF) {
			continue
		}
		if err != nil {
			return err
		}
		h = append(h, &runHead{e: e, key: e.sortKey(), r: r})
	}
	heap.Init(&h)
	var cur *KeySetEntry
	var curKey string
	for h.Len() > 0 {
		top := h[0]
		if cur != nil && top.key == curKey {
			cur.Merge(top.e)
		} else {
			if cur != nil {
				if err := emit(*cur); err != nil {
					return err
				}
			}
			e := top.e
			cur, curKey = &e, top.key
		}
		e, err := top.r.Next()
		if errors.Is(err, io.EOF) {
			heap.Pop(&h)
			continue
		}
		if err != nil {
			return err
		}
		top.e, top.key = e, e.sortKey()
		heap.Fix(&h, 0)
	}
	if cur != nil {
		return emit(*cur)
	}
	return nil
}
