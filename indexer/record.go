package indexer

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ddbrewind/rewind"
)

// Entry is one event as an index holds it: everything but the images. Its
// byte slices alias the iterator's memory and are valid until the next call
// to Iter.Next; copy what you keep.
type Entry struct {
	// Micros is the event time in Unix microseconds.
	Micros int64
	// Seq is the sequence number without leading zeros; the full event
	// (Store.Event) has it as captured.
	Seq     []byte
	EventID []byte
	Table   []byte
	Tenant  []byte
	// Key is the canonical encoding of the item's key (rewind.Key.Encode);
	// empty for an undecodable event.
	Key         []byte
	Action      rewind.Action
	TTLExpiry   bool
	Undecodable bool

	changed []byte // count, then length-prefixed names
	idBuf   []byte // EventID when the summary keeps it as bytes
	ev      []byte // the ev part of the index key
}

// Time returns the event time in UTC.
func (e *Entry) Time() time.Time { return time.UnixMicro(e.Micros).UTC() }

// ItemKey decodes the item's key.
func (e *Entry) ItemKey() (rewind.Key, error) {
	k, n, err := rewind.DecodeKey(e.Key)
	if err != nil {
		return nil, err
	}
	if n != len(e.Key) {
		return nil, errors.New("trailing bytes after key")
	}
	return k, nil
}

// Changed reports whether the named top-level attribute is among the
// event's changed attributes.
func (e *Entry) Changed(name string) bool {
	found := false
	e.eachChanged(func(n []byte) bool {
		if string(n) == name {
			found = true
			return false
		}
		return true
	})
	return found
}

// ChangedAttributes returns the changed attribute names, sorted as
// captured.
func (e *Entry) ChangedAttributes() []string {
	var out []string
	e.eachChanged(func(n []byte) bool {
		out = append(out, string(n))
		return true
	})
	return out
}

func (e *Entry) eachChanged(fn func([]byte) bool) {
	b := e.changed
	n, m := binary.Uvarint(b)
	if m <= 0 {
		return
	}
	b = b[m:]
	for i := uint64(0); i < n; i++ {
		l, m := binary.Uvarint(b)
		if m <= 0 || uint64(len(b)-m) < l {
			return
		}
		if !fn(b[m : m+int(l)]) {
			return
		}
		b = b[m+int(l):]
	}
}

// Compare orders entries as the store does: by time, then sequence
// number, then stream (a hash of table and shard; see appendEv).
func (e *Entry) Compare(o *Entry) int { return bytes.Compare(e.ev, o.ev) }

// appendSummary appends the summary value of ev, whose key is keyEnc: the
// 't' value. The 'n' and 'i' orderings have empty values; their scans read
// this one.
func appendSummary(dst []byte, ev *rewind.ChangeEvent, keyEnc []byte) []byte {
	flags := actionCode(ev.Action)
	if ev.TTLExpiry {
		flags |= flagTTL
	}
	if ev.DecodeError != "" {
		flags |= flagUndecodable
	}
	dst = append(dst, flags)
	dst = appendBytes(dst, ev.Table)
	dst = appendBytes(dst, ev.Tenant)
	dst = appendBytes(dst, keyEnc)
	dst = appendID(dst, ev.EventID)
	dst = binary.AppendUvarint(dst, uint64(len(ev.ChangedAttributes)))
	for _, a := range ev.ChangedAttributes {
		dst = appendBytes(dst, a)
	}
	return dst
}

// appendID appends an event ID: uvarint n<<1|hex, then n bytes. A DynamoDB
// Streams event ID is 32 lowercase hex digits; it is kept as the 16 bytes
// they spell (hex set), any other ID as it is.
func appendID(dst []byte, id string) []byte {
	if len(id) > 0 && len(id)%2 == 0 && isLowerHex(id) {
		dst = binary.AppendUvarint(dst, uint64(len(id)/2)<<1|1)
		out, _ := hex.AppendDecode(dst, []byte(id)) // checked above
		return out
	}
	dst = binary.AppendUvarint(dst, uint64(len(id))<<1)
	return append(dst, id...)
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// summaryID returns the event ID held in a summary value.
func summaryID(v []byte) ([]byte, error) {
	var e Entry
	if err := decodeSummary(&e, v); err != nil {
		return nil, err
	}
	return e.EventID, nil
}

func appendBytes[T ~string | ~[]byte](dst []byte, s T) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// appendOpt appends an optional value: 0 when absent, else length+1.
func appendOpt[T ~string | ~[]byte](dst []byte, s T, present bool) []byte {
	if !present {
		return append(dst, 0)
	}
	dst = binary.AppendUvarint(dst, uint64(len(s))+1)
	return append(dst, s...)
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	n, m := binary.Uvarint(r.b)
	if m <= 0 {
		r.err = errors.New("bad varint")
		return 0
	}
	r.b = r.b[m:]
	return n
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	n, m := binary.Varint(r.b)
	if m <= 0 {
		r.err = errors.New("bad varint")
		return 0
	}
	r.b = r.b[m:]
	return n
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if uint64(len(r.b)) < n {
		r.err = errors.New("value truncated")
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) opt() ([]byte, bool) {
	n := r.uvarint()
	if r.err != nil || n == 0 {
		return nil, false
	}
	n--
	if uint64(len(r.b)) < n {
		r.err = errors.New("value truncated")
		return nil, false
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out, true
}

// decodeSummary fills e from a summary value; slices alias v.
func decodeSummary(e *Entry, v []byte) error {
	if len(v) == 0 {
		return errors.New("empty summary")
	}
	flags := v[0]
	e.Action = actionByCode[flags&flagActionMask]
	e.TTLExpiry = flags&flagTTL != 0
	e.Undecodable = flags&flagUndecodable != 0
	r := reader{b: v[1:]}
	e.Table = r.bytes()
	e.Tenant = r.bytes()
	e.Key = r.bytes()
	n := r.uvarint()
	if r.err == nil && uint64(len(r.b)) < n>>1 {
		r.err = errors.New("event ID truncated")
	}
	if r.err == nil {
		id := r.b[:n>>1]
		r.b = r.b[n>>1:]
		if n&1 != 0 {
			e.idBuf = hex.AppendEncode(e.idBuf[:0], id)
			id = e.idBuf
		}
		e.EventID = id[:len(id):len(id)]
	}
	e.changed = r.b
	if r.err != nil {
		return fmt.Errorf("summary: %w", r.err)
	}
	return nil
}

// decodeEntry fills e from the ev of an index key and the event's 't'
// value (its summary).
func decodeEntry(e *Entry, ev, summary []byte) error {
	e.ev = ev
	var err error
	if e.Micros, e.Seq, err = parseEv(ev); err != nil {
		return err
	}
	return decodeSummary(e, summary)
}

// appendRecord appends the record value of ev.
func appendRecord(dst []byte, ev *rewind.ChangeEvent) []byte {
	dst = append(dst, recordFormat)
	// The key holds the sequence number without leading zeros (DynamoDB
	// Local pads them); the record keeps how many there were.
	dst = binary.AppendUvarint(dst, uint64(len(ev.SequenceNumber)-len(strings.TrimLeft(ev.SequenceNumber, "0"))))
	dst = appendBytes(dst, ev.Region)
	dst = appendBytes(dst, ev.ShardID)
	dst = appendBytes(dst, ev.Export.ID)
	if ev.Export.ID != "" {
		dst = binary.AppendVarint(dst, ev.Export.From.UnixMicro())
		dst = binary.AppendVarint(dst, ev.Export.To.UnixMicro())
	}
	dst = appendBytes(dst, ev.StreamViewType)
	dst = binary.AppendVarint(dst, ev.SizeBytes)
	dst = appendOpt(dst, ev.OldImage, ev.OldImage != nil)
	dst = appendOpt(dst, ev.NewImage, ev.NewImage != nil)
	dst = appendOpt(dst, ev.DecodeError, ev.DecodeError != "")
	// Parquet does not tell an empty raw record from a missing one.
	dst = appendOpt(dst, ev.Raw, len(ev.Raw) > 0)
	return dst
}

// eventFrom rebuilds a full change event from an entry and its record. The
// event owns its memory.
func eventFrom(e *Entry, rec []byte) (rewind.ChangeEvent, error) {
	ev := rewind.ChangeEvent{
		EventID:           string(e.EventID),
		Table:             string(e.Table),
		Tenant:            string(e.Tenant),
		Action:            e.Action,
		TTLExpiry:         e.TTLExpiry,
		Time:              e.Time(),
		SequenceNumber:    string(e.Seq),
		ChangedAttributes: e.ChangedAttributes(),
	}
	if len(e.Key) > 0 {
		k, err := e.ItemKey()
		if err != nil {
			return ev, err
		}
		ev.Keys = k
	}
	if len(rec) == 0 || rec[0] != recordFormat {
		return ev, errors.New("unknown record format")
	}
	r := reader{b: rec[1:]}
	if zeros := r.uvarint(); zeros > 0 && zeros <= 1<<16 {
		ev.SequenceNumber = strings.Repeat("0", int(zeros)) + ev.SequenceNumber
	} else if zeros > 1<<16 {
		r.err = fmt.Errorf("%d leading zeros in the sequence number", zeros)
	}
	ev.Region = string(r.bytes())
	ev.ShardID = string(r.bytes())
	if id := r.bytes(); len(id) > 0 {
		from, to := r.varint(), r.varint()
		ev.Export = rewind.ExportWindow{ID: string(id), From: time.UnixMicro(from).UTC(), To: time.UnixMicro(to).UTC()}
	}
	ev.StreamViewType = string(r.bytes())
	if r.err == nil {
		n, m := binary.Varint(r.b)
		if m <= 0 {
			r.err = errors.New("bad size")
		} else {
			ev.SizeBytes = n
			r.b = r.b[m:]
		}
	}
	if b, ok := r.opt(); ok {
		ev.OldImage = rewind.Image(bytes.Clone(b))
	}
	if b, ok := r.opt(); ok {
		ev.NewImage = rewind.Image(bytes.Clone(b))
	}
	if b, ok := r.opt(); ok {
		ev.DecodeError = string(b)
	}
	if b, ok := r.opt(); ok {
		ev.Raw = bytes.Clone(b)
	}
	if r.err != nil {
		return ev, fmt.Errorf("record: %w", r.err)
	}
	return ev, nil
}
