package patch

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/ddbrewind/rewind"
)

// The journal is JSON Lines, append-only. Records:
//
//	{"op":"start","version":1,"tool":"patch","time":"2026-11-20T10:31:12Z","keys":"/inc/impacted.jsonl","from":"orders-restored","to":"orders","shard":"0/1","force":false,"resume":false}
//	{"op":"intent","line":7,"key":{"pk":{"S":"t1#42"}},"action":"restore","before":{...}|null,"after":{...}|null}
//	{"op":"replaced","line":7,"key":{"pk":{"S":"t1#42"}},"old":{...}|null,"wrote":{...}|null}
//	{"op":"outcome","line":7,"key":{"pk":{"S":"t1#42"}},"status":"written","error":"..."}
//
// A start record opens every run (a resumed run appends another). An intent
// record holds the production pre-image (before) and the item about to be
// written (after; null for a delete); it is fsynced before the write is
// sent. An outcome record follows the write; it is not fsynced on its own
// (the next intent's fsync carries it) and may be missing after a crash.
// A replaced record is written, and fsynced, the moment a write is found
// to have replaced something other than "before" (an item changed since
// planning, under a put, a delete or a forced write): its "old", not
// "before", is then the true pre-image, and "wrote" what the write left.
// Without force a revert follows; the key's outcome record says it is
// done. A replaced record with no later outcome for its key (a crash
// between the two) is a revert still owed, which a resume does first.

// journalVersion is the version of the journal and checkpoint formats.
const journalVersion = 1

// maxJournalLine bounds one journal line: two 400 KB items, base64 and
// JSON overhead included, fit with room to spare.
const maxJournalLine = 8 << 20

// journal appends records and fsyncs them.
type journal struct {
	path string
	mu   sync.Mutex
	f    *os.File
	w    *bufio.Writer
	buf  []byte
	err  error // sticky
}

// createJournal creates a new journal; it fails if path exists.
func createJournal(path string) (*journal, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("journal %s already exists: pass --resume to continue that patch, or another --journal", path)
		}
		return nil, fmt.Errorf("create journal: %w", err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		f.Close()
		return nil, fmt.Errorf("create journal %s: %w", path, err)
	}
	return &journal{path: path, f: f, w: bufio.NewWriterSize(f, 1<<20)}, nil
}

// openJournal opens an existing journal for appending. A torn last line (a
// crash in the middle of a write that was never fsynced) is cut off first.
func openJournal(path string) (*journal, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	size, err := endOfLastLine(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("journal %s: %w", path, err)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return nil, fmt.Errorf("journal %s: cut torn last line: %w", path, err)
	}
	if _, err := f.Seek(size, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("journal %s: %w", path, err)
	}
	return &journal{path: path, f: f, w: bufio.NewWriterSize(f, 1<<20)}, nil
}

// endOfLastLine returns the offset just after the file's last newline.
func endOfLastLine(f *os.File) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	end := st.Size()
	buf := make([]byte, 64<<10)
	for end > 0 {
		n := int64(len(buf))
		if n > end {
			n = end
		}
		if _, err := f.ReadAt(buf[:n], end-n); err != nil {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return end - n + int64(i) + 1, nil
		}
		end -= n
	}
	return 0, nil
}

func (j *journal) append(rec []byte) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil {
		return j.err
	}
	if _, err := j.w.Write(rec); err != nil {
		j.err = fmt.Errorf("journal %s: %w", j.path, err)
	}
	return j.err
}

// sync writes out what was appended and fsyncs it.
func (j *journal) sync() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil {
		return j.err
	}
	if err := j.w.Flush(); err != nil {
		j.err = fmt.Errorf("journal %s: %w", j.path, err)
		return j.err
	}
	if err := j.f.Sync(); err != nil {
		j.err = fmt.Errorf("journal %s: fsync: %w", j.path, err)
	}
	return j.err
}

func (j *journal) close() error {
	err := j.sync()
	if cerr := j.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("journal %s: %w", j.path, cerr)
	}
	return err
}

// startRecord describes a run at the top of its part of the journal.
type startRecord struct {
	Op      string `json:"op"`
	Version int    `json:"version"`
	Tool    string `json:"tool"`
	Time    string `json:"time"`
	Keys    string `json:"keys,omitempty"`
	From    string `json:"from,omitempty"`
	To      string `json:"to"`
	Shard   string `json:"shard,omitempty"`
	Force   bool   `json:"force"`
	Resume  bool   `json:"resume"`
}

func (j *journal) start(r startRecord) error {
	r.Op, r.Version = "start", journalVersion
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := j.append(append(b, '\n')); err != nil {
		return err
	}
	return j.sync()
}

func appendIntent(dst []byte, s *Step) []byte {
	dst = append(dst, `{"op":"intent","line":`...)
	dst = strconv.AppendInt(dst, int64(s.Line), 10)
	dst = append(dst, `,"key":`...)
	dst = s.Key.AppendJSON(dst)
	dst = append(dst, `,"action":`...)
	dst = appendString(dst, string(s.Action))
	dst = append(dst, `,"before":`...)
	dst = appendItemOrNull(dst, s.Before)
	dst = append(dst, `,"after":`...)
	dst = appendItemOrNull(dst, s.After)
	return append(dst, "}\n"...)
}

func appendOutcome(dst []byte, r *result) []byte {
	dst = append(dst, `{"op":"outcome","line":`...)
	dst = strconv.AppendInt(dst, int64(r.step.Line), 10)
	dst = append(dst, `,"key":`...)
	dst = r.step.Key.AppendJSON(dst)
	dst = append(dst, `,"status":`...)
	dst = appendString(dst, string(r.status))
	if r.err != nil {
		dst = append(dst, `,"error":`...)
		dst = appendString(dst, r.err.Error())
	}
	return append(dst, "}\n"...)
}

// appendReplaced appends a "replaced" record: the write of line's key
// landed (it wrote wrote; null for a delete) and replaced old, which is
// not the item it was planned against.
func appendReplaced(dst []byte, line int, key rewind.Key, old, wrote rewind.Item) []byte {
	dst = append(dst, `{"op":"replaced","line":`...)
	dst = strconv.AppendInt(dst, int64(line), 10)
	dst = append(dst, `,"key":`...)
	dst = key.AppendJSON(dst)
	dst = append(dst, `,"old":`...)
	dst = appendItemOrNull(dst, old)
	dst = append(dst, `,"wrote":`...)
	dst = appendItemOrNull(dst, wrote)
	return append(dst, "}\n"...)
}

// journalRecord is any journal line, decoded.
type journalRecord struct {
	Op     string          `json:"op"`
	Tool   string          `json:"tool"`
	To     string          `json:"to"`
	Line   int             `json:"line"`
	Key    json.RawMessage `json:"key"`
	Action string          `json:"action"`
	Before json.RawMessage `json:"before"`
	After  json.RawMessage `json:"after"`
	Status string          `json:"status"`
	Old    json.RawMessage `json:"old"`
	Wrote  json.RawMessage `json:"wrote"`
	Force  bool            `json:"force"`
}

// journalReader reads journal records, with their offsets and line
// numbers. A torn last line is ignored.
type journalReader struct {
	path   string
	r      *bufio.Reader
	off    int64
	line   int
	buf    []byte
	recOff int64
}

func newJournalReader(r io.Reader, path string) *journalReader {
	return &journalReader{path: path, r: bufio.NewReaderSize(r, 1<<20)}
}

// next returns the next record, or io.EOF.
func (jr *journalReader) next() (journalRecord, error) {
	for {
		jr.buf = jr.buf[:0]
		jr.recOff = jr.off
		for {
			chunk, err := jr.r.ReadSlice('\n')
			jr.buf = append(jr.buf, chunk...)
			jr.off += int64(len(chunk))
			if len(jr.buf) > maxJournalLine {
				return journalRecord{}, fmt.Errorf("journal %s: line %d: longer than %d bytes", jr.path, jr.line+1, maxJournalLine)
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			if errors.Is(err, io.EOF) {
				// No newline: empty, or a torn line from a crash.
				return journalRecord{}, io.EOF
			}
			if err != nil {
				return journalRecord{}, fmt.Errorf("journal %s: line %d: %w", jr.path, jr.line+1, err)
			}
			break
		}
		jr.line++
		if len(bytes.TrimSpace(jr.buf)) == 0 {
			continue
		}
		var rec journalRecord
		if err := json.Unmarshal(jr.buf, &rec); err != nil {
			return journalRecord{}, fmt.Errorf("journal %s: line %d: %w", jr.path, jr.line, err)
		}
		return rec, nil
	}
}

// parseJournalItem decodes a before/after/old field; null is absent.
func parseJournalItem(raw json.RawMessage) (rewind.Item, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	return rewind.ParseItem(raw)
}

// checkpoint records how far a patch got: every key-set line up to Line is
// finished (planned, and written, found unchanged, or reported as a
// conflict or failure). It is replaced atomically (write a temporary file,
// fsync, rename, fsync the directory), so it is always either the previous
// or the next checkpoint, never a torn one.
type checkpoint struct {
	Version int    `json:"version"`
	Keys    string `json:"keys"`
	From    string `json:"from"`
	To      string `json:"to"`
	Shard   string `json:"shard"`
	Limit   int64  `json:"limit"`
	// Line is the last key-set line finished, with everything before it.
	Line int `json:"line"`
	// Key is the key on Line, checked on resume so that a different key
	// set under the same name is refused.
	Key json.RawMessage `json:"key,omitempty"`
	// Counts are the totals for lines up to Line.
	Counts Counts `json:"counts"`
	Time   string `json:"time"`
}

// Counts are the numbers a patch reports.
type Counts struct {
	Keys      int64 `json:"keys"` // keys planned
	Restore   int64 `json:"restore"`
	Delete    int64 `json:"delete"`
	Unchanged int64 `json:"unchanged"`
	Absent    int64 `json:"absent"`
	Unknown   int64 `json:"unknown,omitempty"`
	Written   int64 `json:"written"`
	Already   int64 `json:"already,omitempty"`
	Conflicts int64 `json:"conflicts"`
	Failures  int64 `json:"failures"`
}

func (c *Counts) add(o Counts) {
	c.Keys += o.Keys
	c.Restore += o.Restore
	c.Delete += o.Delete
	c.Unchanged += o.Unchanged
	c.Absent += o.Absent
	c.Unknown += o.Unknown
	c.Written += o.Written
	c.Already += o.Already
	c.Conflicts += o.Conflicts
	c.Failures += o.Failures
}

func (c *Counts) addAction(a Action) {
	c.Keys++
	switch a {
	case ActionRestore:
		c.Restore++
	case ActionDelete:
		c.Delete++
	case ActionUnchanged:
		c.Unchanged++
	case ActionAbsent:
		c.Absent++
	case ActionUnknown:
		c.Unknown++
	}
}

func (c *Counts) addStatus(s Status) {
	switch s {
	case StatusWritten:
		c.Written++
	case StatusAlready:
		c.Already++
	case StatusConflict:
		c.Conflicts++
	case StatusFailed:
		c.Failures++
	}
}

func checkpointPath(journal string) string { return journal + ".checkpoint" }

func writeCheckpoint(path string, cp checkpoint) error {
	cp.Version = journalVersion
	b, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	return nil
}

func readCheckpoint(path string) (checkpoint, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return checkpoint{}, fmt.Errorf("read checkpoint: %w", err)
	}
	var cp checkpoint
	if err := json.Unmarshal(b, &cp); err != nil {
		return checkpoint{}, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	if cp.Version != journalVersion {
		return checkpoint{}, fmt.Errorf("checkpoint %s: version %d, want %d", path, cp.Version, journalVersion)
	}
	return cp, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// DefaultJournal returns the journal path a patch of input (a key set or a
// plan) started at t uses by default: next to the input, named after it
// and the time; for a pipe or standard input, in the current directory.
func DefaultJournal(input string, t time.Time) string {
	if rewind.KeySetIsSpooled(input) || input == "" {
		input = "rewind-input"
	}
	return input + ".patch-" + t.UTC().Format("20060102T150405Z") + ".journal"
}

// KeptInput is where an apply from a pipe keeps its copy of the input, for
// a resume to read: next to the journal.
func KeptInput(journal string) string { return journal + ".input" }
