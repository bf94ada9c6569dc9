package patch

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
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
//	{"op":"start","version":2,"tool":"patch","time":"2026-11-20T10:31:12Z","keys":"/inc/impacted.jsonl","from":"orders-restored","to":"orders","shard":"0/1","force":false,"resume":false,"seq":1,"crc":"1c2d3e4f"}
//	{"op":"intent","line":7,"key":{"pk":{"S":"t1#42"}},"action":"restore","before":{...}|null,"after":{...}|null,"seq":2,"crc":"..."}
//	{"op":"replaced","line":7,"key":{"pk":{"S":"t1#42"}},"old":{...}|null,"wrote":{...}|null,"seq":3,"crc":"..."}
//	{"op":"outcome","line":7,"key":{"pk":{"S":"t1#42"}},"status":"written","error":"...","seq":4,"crc":"..."}
//	{"op":"end","records":4,"seq":5,"crc":"..."}
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
// A run that went through all its input closes with an end record:
// records is how many records the run wrote before it, its start record
// included.
//
// Every record ends with its sequence number in the journal (1, 2, 3, ...
// over all runs) and a CRC-32C (Castagnoli), in 8 lowercase hex digits, of
// the line's bytes up to and including the sequence number. The journal
// adds both (see journal.append); readers check them (see journalReader),
// so that a changed byte, a lost, repeated or reordered line, or a cut
// journal is found before undo writes anything from it. Version 1 journals
// have neither and are still read, with a warning (their outcome records
// carry "old" where version 2 has a replaced record).

// journalVersion is the version of the journal and checkpoint formats.
const journalVersion = 2

// maxJournalLine bounds one journal line: two 400 KB items, base64 and
// JSON overhead included, fit with room to spare.
const maxJournalLine = 8 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errJournalDamaged is wrapped by the reader's errors for a journal that
// is not what its writer wrote.
var errJournalDamaged = errors.New("the journal is damaged")

// journal appends records and fsyncs them. It holds the journal's lock
// from when it is created or opened until it is closed.
type journal struct {
	path    string
	mu      sync.Mutex
	f       *os.File
	w       *bufio.Writer
	err     error // sticky
	lock    *journalLock
	ownLock bool  // close releases lock
	seq     int64 // sequence number of the last record appended
	durable int64 // sequence number of the last record fsynced
	syncs   int64 // fsyncs done
	// runStart is the sequence number of this run's start record.
	runStart int64
	tail     []byte
}

// createJournal takes the lock of path and creates a new journal there; it
// fails if path exists (an error wrapping os.ErrExist).
func createJournal(path string) (*journal, error) {
	lk, err := lockJournal(path)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		lk.release()
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("journal %s already exists: pass --resume to continue that patch, or another --journal: %w", path, os.ErrExist)
		}
		return nil, fmt.Errorf("create journal: %w", err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		f.Close()
		lk.release()
		return nil, fmt.Errorf("create journal %s: %w", path, err)
	}
	return &journal{path: path, f: f, w: bufio.NewWriterSize(f, 1<<20), lock: lk, ownLock: true}, nil
}

// openJournal opens an existing journal for appending, under lk, the lock
// its caller took with lockJournal before reading anything of it (nil: take
// it here; it is then released by close). It reads the whole journal first
// and refuses one that is damaged (see journalReader), of version 1, or
// shorter than its checkpoint says was durable; a torn last line (a crash
// in the middle of a write that was never fsynced) is cut off.
func openJournal(path string, lk *journalLock) (*journal, error) {
	own := lk == nil
	if own {
		var err error
		if lk, err = lockJournal(path); err != nil {
			return nil, err
		}
	}
	j, err := openLockedJournal(path)
	if err != nil {
		if own {
			lk.release()
		}
		return nil, err
	}
	j.lock, j.ownLock = lk, own
	return j, nil
}

func openLockedJournal(path string) (*journal, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	jr := newJournalReader(f, path)
	for {
		_, err := jr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%w: resume refused, nothing written: undo what the journal holds with rewind undo --partial, then patch again with a new journal", err)
		}
	}
	if jr.version == 1 {
		f.Close()
		return nil, fmt.Errorf("journal %s is version 1, written by an older rewind: resume it with that version, or undo it (rewind undo reads version 1) and patch again with a new journal", path)
	}
	if err := jr.checkDurable(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: resume refused, nothing written", err)
	}
	size := jr.lineEnd
	if err := f.Truncate(size); err != nil {
		f.Close()
		return nil, fmt.Errorf("journal %s: cut torn last line: %w", path, err)
	}
	return &journal{path: path, f: f, w: bufio.NewWriterSize(f, 1<<20), seq: jr.seq, durable: jr.seq}, nil
}

// append adds one record: rec is one JSON object, with or without its
// newline. append adds the sequence number and checksum.
func (j *journal) append(rec []byte) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil {
		return j.err
	}
	rec = bytes.TrimSuffix(rec, []byte("\n"))
	if len(rec) < 3 || rec[0] != '{' || rec[len(rec)-1] != '}' || bytes.IndexByte(rec, '\n') >= 0 {
		return fmt.Errorf("journal %s: bad record %.80q", j.path, rec) // a bug, not sticky
	}
	j.seq++
	body := rec[:len(rec)-1]
	j.tail = append(j.tail[:0], `,"seq":`...)
	j.tail = strconv.AppendInt(j.tail, j.seq, 10)
	sum := crc32.Update(crc32.Checksum(body, castagnoli), castagnoli, j.tail)
	j.tail = append(j.tail, `,"crc":"`...)
	j.tail = appendHex32(j.tail, sum)
	j.tail = append(j.tail, "\"}\n"...)
	_, err := j.w.Write(body)
	if err == nil {
		_, err = j.w.Write(j.tail)
	}
	if err != nil {
		j.err = fmt.Errorf("journal %s: %w", j.path, err)
	}
	return j.err
}

func appendHex32(dst []byte, v uint32) []byte {
	const hex = "0123456789abcdef"
	for shift := 28; shift >= 0; shift -= 4 {
		dst = append(dst, hex[(v>>uint(shift))&0xf])
	}
	return dst
}

// sync writes out what was appended and fsyncs it: every record appended
// before sync was called is durable when it returns nil. The fsync runs
// outside the lock, so that records keep being appended while the disk
// works (they are made durable by the next sync); fsync covers every write
// to the file made before it was called, whichever goroutine made it
// (fsync(2)).
func (j *journal) sync() error {
	j.mu.Lock()
	if j.err != nil {
		j.mu.Unlock()
		return j.err
	}
	if err := j.w.Flush(); err != nil {
		j.err = fmt.Errorf("journal %s: %w", j.path, err)
		j.mu.Unlock()
		return j.err
	}
	seq := j.seq
	j.mu.Unlock()
	if testHookSync != nil {
		testHookSync(j, seq)
	}
	err := j.f.Sync()
	j.mu.Lock()
	defer j.mu.Unlock()
	if err != nil && j.err == nil {
		j.err = fmt.Errorf("journal %s: fsync: %w", j.path, err)
	}
	if j.err != nil {
		return j.err
	}
	j.syncs++
	j.durable = max(j.durable, seq)
	return nil
}

// testHookSync, when set by a test, runs in each sync before the fsync,
// outside the journal's lock, with the sequence number it makes durable.
var testHookSync func(j *journal, seq int64)

// durableSeq is the sequence number of the last record fsynced: a
// checkpoint written after a sync records it, so that a journal cut
// shorter than that is found.
func (j *journal) durableSeq() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.durable
}

// end appends the end record of a run that went through all its input, and
// fsyncs it.
func (j *journal) end() error {
	j.mu.Lock()
	n := j.seq - j.runStart + 1
	j.mu.Unlock()
	b := append([]byte(`{"op":"end","records":`), strconv.AppendInt(nil, n, 10)...)
	if err := j.append(append(b, '}')); err != nil {
		return err
	}
	return j.sync()
}

// close fsyncs and closes the journal, and releases its lock if it took
// it.
func (j *journal) close() error {
	err := j.sync()
	if cerr := j.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("journal %s: %w", j.path, cerr)
	}
	if j.ownLock {
		j.lock.release()
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
	j.mu.Lock()
	j.runStart = j.seq + 1
	j.mu.Unlock()
	if err := j.append(b); err != nil {
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
	Op      string          `json:"op"`
	Version int             `json:"version"`
	Tool    string          `json:"tool"`
	To      string          `json:"to"`
	Line    int             `json:"line"`
	Key     json.RawMessage `json:"key"`
	Action  string          `json:"action"`
	Before  json.RawMessage `json:"before"`
	After   json.RawMessage `json:"after"`
	Status  string          `json:"status"`
	Old     json.RawMessage `json:"old"`
	Wrote   json.RawMessage `json:"wrote"`
	Force   bool            `json:"force"`
	Records int64           `json:"records"`
}

// journalDamage is one place where a journal is not what its writer
// wrote: a line that fails its checks, or records missing.
type journalDamage struct {
	Line   int        // the line concerned: the damaged one, or the one after missing records
	Key    rewind.Key // the key the line names, if one could be read (unverified); nil if none
	Reason string
	// Missing is how many records are lost at this place (a gap in the
	// sequence numbers, or a truncated journal); 0 for a damaged line.
	Missing int64
}

func (d journalDamage) String() string {
	s := fmt.Sprintf("line %d: %s", d.Line, d.Reason)
	if d.Key != nil {
		s += fmt.Sprintf(" (the line names key %s, unverified)", d.Key)
	}
	return s
}

// journalReader reads journal records, with their offsets and line
// numbers, and checks them: each line's checksum, that the sequence
// numbers run 1, 2, 3 without gap or repeat, and that an end record counts
// its run's records. A torn last line (no newline: the crash of a write
// never fsynced) is ignored; a damaged line anywhere else is an error
// naming the file and line, or with partial, skipped and listed in damage.
// A version 1 journal (no checksums) is read without these checks.
type journalReader struct {
	path   string
	r      *bufio.Reader
	off    int64
	line   int
	buf    []byte
	recOff int64

	// partial: skip damaged lines, listing them in damage, instead of
	// failing at the first.
	partial bool
	damage  []journalDamage
	// version is 0 until the first line is read, then 1 or 2.
	version int
	// seq is the sequence number of the last record returned.
	seq int64
	// noSeq: check checksums only (a reader started in the middle).
	noSeq bool
	// runStart and runLine are the sequence number and line of the last
	// start record; ended says whether its run has an end record.
	runStart int64
	runLine  int
	ended    bool
	// lineEnd is the offset just after the last whole line read; torn
	// says whether a torn last line follows it, once at the end.
	lineEnd int64
	torn    bool
	// bad counts the damaged lines since the last record returned.
	bad int
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
			if len(jr.buf)+len(chunk) > maxJournalLine {
				// Not a line the journal writes: damage, but the lines
				// after it can still be read.
				jr.off += int64(len(chunk))
				jr.buf = jr.buf[:0]
				if errors.Is(err, bufio.ErrBufferFull) {
					err = jr.skipLine()
				}
				if errors.Is(err, io.EOF) {
					jr.torn = true // a torn last line, however long
					return journalRecord{}, io.EOF
				}
				if err != nil {
					return journalRecord{}, fmt.Errorf("journal %s: line %d: %w", jr.path, jr.line+1, err)
				}
				jr.line++
				jr.lineEnd = jr.off
				if derr := jr.damaged(journalDamage{Line: jr.line, Reason: fmt.Sprintf("longer than %d bytes: not a journal record", maxJournalLine)}); derr != nil {
					return journalRecord{}, derr
				}
				jr.bad++
				jr.recOff = jr.off
				continue
			}
			jr.buf = append(jr.buf, chunk...)
			jr.off += int64(len(chunk))
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			if errors.Is(err, io.EOF) {
				// No newline: empty, or a torn line from a crash.
				jr.torn = len(jr.buf) > 0
				return journalRecord{}, io.EOF
			}
			if err != nil {
				return journalRecord{}, fmt.Errorf("journal %s: line %d: %w", jr.path, jr.line+1, err)
			}
			break
		}
		jr.line++
		jr.lineEnd = jr.off
		rec, ok, err := jr.decode()
		if err != nil {
			return journalRecord{}, err
		}
		if ok {
			return rec, nil
		}
	}
}

// skipLine reads to the end of an overlong line.
func (jr *journalReader) skipLine() error {
	for {
		chunk, err := jr.r.ReadSlice('\n')
		jr.off += int64(len(chunk))
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return err
	}
}

// damaged records d, or without partial returns it as the error.
func (jr *journalReader) damaged(d journalDamage) error {
	if !jr.partial {
		return fmt.Errorf("journal %s: %s: %w", jr.path, d, errJournalDamaged)
	}
	jr.damage = append(jr.damage, d)
	return nil
}

// decode checks and decodes the line in buf; ok is false for a line
// skipped (blank in version 1, damaged with partial).
func (jr *journalReader) decode() (rec journalRecord, ok bool, err error) {
	line := bytes.TrimSuffix(jr.buf, []byte("\n"))
	if jr.version == 0 {
		jr.version = 2
		if _, _, framed := splitFrame(line); !framed {
			var first journalRecord
			if json.Unmarshal(line, &first) == nil && first.Op == "start" && first.Version == 1 {
				jr.version = 1
			}
		}
	}
	if jr.version == 1 {
		if len(bytes.TrimSpace(line)) == 0 {
			return rec, false, nil
		}
		if _, _, framed := splitFrame(line); framed {
			return rec, false, jr.damaged(journalDamage{Line: jr.line, Key: lineKey(line),
				Reason: "a version 2 record in a version 1 journal (appended by a newer rewind?)"})
		}
		if err := json.Unmarshal(line, &rec); err != nil {
			return rec, false, jr.damaged(journalDamage{Line: jr.line, Key: lineKey(line), Reason: err.Error()})
		}
		return rec, true, nil
	}

	seq, sum, framed := splitFrame(line)
	var reason string
	switch {
	case !framed:
		reason = "no sequence number and checksum: a torn, overwritten or foreign line"
	case crc32.Checksum(line[:len(line)-len(`,"crc":"01234567"}`)], castagnoli) != sum:
		reason = "checksum mismatch: the line was changed or damaged"
	default:
		if err := json.Unmarshal(line, &rec); err != nil {
			reason = "checksum matches but not JSON: " + err.Error()
		}
	}
	if reason != "" {
		jr.bad++
		return rec, false, jr.damaged(journalDamage{Line: jr.line, Key: lineKey(line), Reason: reason})
	}
	if !jr.noSeq {
		want := jr.seq + 1
		switch {
		case seq < want:
			jr.bad++
			return rec, false, jr.damaged(journalDamage{Line: jr.line, Key: lineKey(line),
				Reason: fmt.Sprintf("sequence number %d repeats or goes back (the record before is %d): a copied or reordered line", seq, jr.seq)})
		case seq > want && seq-want > int64(jr.bad):
			missing := seq - want - int64(jr.bad)
			if err := jr.damaged(journalDamage{Line: jr.line, Missing: missing,
				Reason: fmt.Sprintf("sequence number %d, but the record before is %d: %d missing before this line (the journal was cut or edited)", seq, jr.seq, missing)}); err != nil {
				return rec, false, err
			}
		}
	}
	jr.seq, jr.bad = seq, 0
	switch rec.Op {
	case "start":
		if rec.Version != journalVersion {
			return rec, false, fmt.Errorf("journal %s: line %d: a version %d run in a version %d journal: read it with the rewind that wrote it", jr.path, jr.line, rec.Version, journalVersion)
		}
		jr.runStart, jr.runLine, jr.ended = seq, jr.line, false
	case "end":
		if jr.runStart == 0 || seq-jr.runStart != rec.Records {
			return rec, false, jr.damaged(journalDamage{Line: jr.line,
				Reason: fmt.Sprintf("end record says its run wrote %d records, but %d precede it since the run's start record (line %d)", rec.Records, seq-jr.runStart, jr.runLine)})
		}
		jr.ended = true
	}
	return rec, true, nil
}

// splitFrame parses the sequence number and checksum at the end of a
// version 2 line: ...,"seq":123,"crc":"0a1b2c3d"}
func splitFrame(line []byte) (seq int64, sum uint32, ok bool) {
	const crcTail = `,"crc":"01234567"}`
	n := len(line) - len(crcTail)
	if n < 1 || line[0] != '{' || !bytes.HasPrefix(line[n:], []byte(`,"crc":"`)) || line[len(line)-2] != '"' || line[len(line)-1] != '}' {
		return 0, 0, false
	}
	for _, c := range line[n+8 : len(line)-2] {
		switch {
		case c >= '0' && c <= '9':
			sum = sum<<4 | uint32(c-'0')
		case c >= 'a' && c <= 'f':
			sum = sum<<4 | uint32(c-'a'+10)
		default:
			return 0, 0, false
		}
	}
	body := line[:n]
	i := bytes.LastIndex(body, []byte(`,"seq":`))
	if i < 0 {
		return 0, 0, false
	}
	digits := body[i+len(`,"seq":`):]
	if len(digits) == 0 || len(digits) > 18 || digits[0] == '0' {
		return 0, 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, 0, false
		}
		seq = seq*10 + int64(c-'0')
	}
	return seq, sum, true
}

// lineKey reads, as best it can, the key a damaged line names: for the
// report only, since nothing in the line can be trusted.
func lineKey(line []byte) rewind.Key {
	i := bytes.Index(line, []byte(`"key":`))
	if i < 0 {
		return nil
	}
	var raw json.RawMessage
	if json.NewDecoder(bytes.NewReader(line[i+len(`"key":`):])).Decode(&raw) != nil {
		return nil
	}
	k, err := rewind.ParseKey(raw)
	if err != nil {
		return nil
	}
	return k
}

// checkDurable compares where the journal ends, once read to the end, with
// what its checkpoint says was durable: a journal shorter than that was
// truncated. With partial the missing records are listed in damage.
func (jr *journalReader) checkDurable() error {
	cpPath := checkpointPath(jr.path)
	b, err := os.ReadFile(cpPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("journal %s: checkpoint: %w", jr.path, err)
	}
	var cp checkpoint
	if err := json.Unmarshal(b, &cp); err != nil {
		return jr.damaged(journalDamage{Line: jr.line + 1,
			Reason: fmt.Sprintf("its checkpoint %s is unreadable (%v), so whether the journal is whole cannot be checked", cpPath, err)})
	}
	if jr.version == 2 && cp.JournalSeq > jr.seq {
		missing := cp.JournalSeq - jr.seq
		return jr.damaged(journalDamage{Line: jr.line + 1, Missing: missing,
			Reason: fmt.Sprintf("the journal ends at record %d, but its checkpoint %s says %d records were durable: it was truncated, and records %d-%d are missing", jr.seq, cpPath, cp.JournalSeq, jr.seq+1, cp.JournalSeq)})
	}
	return nil
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
	// JournalSeq is the sequence number of the last journal record that
	// was durable (fsynced) when the checkpoint was written: a journal that
	// ends before it was truncated.
	JournalSeq int64 `json:"journal_seq,omitempty"`
}

// Counts are the numbers a patch reports.
type Counts struct {
	Keys      int64 `json:"keys"` // keys planned
	Restore   int64 `json:"restore"`
	Delete    int64 `json:"delete"`
	Unchanged int64 `json:"unchanged"`
	Absent    int64 `json:"absent"`
	Expired   int64 `json:"expired,omitempty"`
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
	c.Expired += o.Expired
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
	case ActionExpired:
		c.Expired++
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
		return checkpoint{}, fmt.Errorf("checkpoint %s is version %d, not %d: written by another rewind; resume with that version, or undo its journal (rewind undo reads version 1) and patch again with a new journal", path, cp.Version, journalVersion)
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
