package export

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"strconv"
	"sync"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/ddbrewind/rewind"
)

// ReadFile decodes data file f and calls fn with each of its events, in
// file order. The event and its slices are fn's to keep.
//
// Events are delivered as the file is read; the file is checked against
// its manifest entry (MD5 of the stored bytes, number of items) only at
// the end, so a caller must discard what it got when ReadFile returns an
// error. Errors name the file and, for a bad line, the line and key.
func (e *Export) ReadFile(ctx context.Context, f DataFile, fn func(*rewind.ChangeEvent) error) error {
	rc, err := e.st.open(ctx, f.rel)
	if err != nil {
		return fmt.Errorf("data file %s: %w", f.Name, err)
	}
	defer rc.Close()
	if err := e.readFile(rc, f, fn); err != nil {
		return fmt.Errorf("data file %s: %w", f.Name, err)
	}
	return nil
}

func (e *Export) readFile(r io.Reader, f DataFile, fn func(*rewind.ChangeEvent) error) error {
	sum := md5.New()
	raw := bufio.NewReaderSize(io.TeeReader(r, sum), 64<<10)
	n := 0
	zr, err := gzip.NewReader(raw)
	switch {
	case errors.Is(err, io.EOF):
		// An empty object: AWS writes one for an empty partition.
	case err != nil:
		return fmt.Errorf("not gzip: %w", err)
	default:
		br := bufio.NewReaderSize(zr, 256<<10)
		for {
			line, rerr := br.ReadBytes('\n')
			if len(bytes.TrimSpace(line)) > 0 && (rerr == nil || errors.Is(rerr, io.EOF)) {
				n++
				ev, err := e.decodeLine(line)
				if err != nil {
					return fmt.Errorf("line %d: %w", n, err)
				}
				if err := fn(&ev); err != nil {
					return err
				}
			}
			if errors.Is(rerr, io.EOF) {
				break
			}
			if rerr != nil {
				return fmt.Errorf("corrupt or truncated gzip after line %d: %w", n, rerr)
			}
		}
	}
	// gzip stops at the end of its last member; the MD5 covers every byte.
	if _, err := io.Copy(io.Discard, raw); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if got := base64.StdEncoding.EncodeToString(sum.Sum(nil)); got != f.MD5Checksum {
		return fmt.Errorf("MD5 %s does not match md5Checksum %s in manifest-files.json line %d: the file is corrupt or changed since the export", got, f.MD5Checksum, f.ManifestLine)
	}
	if int64(n) != f.ItemCount {
		return fmt.Errorf("%d items, but manifest-files.json line %d says itemCount %d", n, f.ManifestLine, f.ItemCount)
	}
	return nil
}

// line is one line of a data file; each field is nil when absent.
type line struct {
	Micros                   []byte // Metadata.WriteTimestampMicros
	Keys, OldImage, NewImage []byte
}

func present(raw []byte) bool { return len(raw) > 0 && string(raw) != "null" }

// decoders pools JSON decoders: a new one costs a few KB per line.
var decoders = sync.Pool{New: func() any { return jsontext.NewDecoder(bytes.NewReader(nil)) }}

// parseLine splits a data line into its fields. jsontext checks the JSON
// once, and refuses duplicate names.
func parseLine(data []byte) (line, error) {
	var l line
	dec := decoders.Get().(*jsontext.Decoder)
	dec.Reset(bytes.NewReader(data))
	defer func() {
		dec.Reset(bytes.NewReader(nil))
		decoders.Put(dec)
	}()
	field := func(obj string, fn func(name string, v jsontext.Value) error) error {
		if tok, err := dec.ReadToken(); err != nil {
			return err
		} else if tok.Kind() != '{' {
			return fmt.Errorf("%s is not an object", obj)
		}
		for dec.PeekKind() != '}' {
			tok, err := dec.ReadToken()
			if err != nil {
				return err
			}
			name := tok.String() // the token is void after the next read
			v, err := dec.ReadValue()
			if err != nil {
				return err
			}
			if err := fn(name, v); err != nil {
				return err
			}
		}
		_, err := dec.ReadToken()
		return err
	}
	err := field("the line", func(name string, v jsontext.Value) error {
		switch name {
		case "Keys":
			l.Keys = bytes.Clone(v)
		case "OldImage":
			l.OldImage = bytes.Clone(v)
		case "NewImage":
			l.NewImage = bytes.Clone(v)
		case "Metadata":
			if v.Kind() != '{' {
				return errors.New("Metadata is not an object")
			}
			var m struct {
				WriteTimestampMicros json.RawMessage
			}
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("Metadata: %w", err)
			}
			l.Micros = m.WriteTimestampMicros
		}
		return nil
	})
	if err != nil {
		return l, err
	}
	if _, err := dec.ReadToken(); !errors.Is(err, io.EOF) {
		return l, errors.New("trailing data after the object")
	}
	return l, nil
}

// decodeLine turns one data line into an event. Errors name the key when
// it could be read.
func (e *Export) decodeLine(data []byte) (rewind.ChangeEvent, error) {
	l, err := parseLine(data)
	if err != nil {
		return rewind.ChangeEvent{}, fmt.Errorf("not a data line: %w", err)
	}
	if !present(l.Keys) {
		return rewind.ChangeEvent{}, errors.New("no Keys")
	}
	key, err := rewind.ParseKey(l.Keys)
	if err != nil {
		return rewind.ChangeEvent{}, fmt.Errorf("Keys: %w", err)
	}
	ev := rewind.ChangeEvent{
		EventID:        e.eventID(key),
		Table:          e.Table,
		Region:         e.Region,
		Tenant:         e.tenant.Tenant(key),
		StreamViewType: e.View,
		Export:         rewind.ExportWindow{ID: e.ID, From: e.From.UTC(), To: e.To.UTC()},
		Keys:           key,
		SizeBytes:      int64(len(bytes.TrimRight(data, "\r\n"))),
		Time:           e.To.Add(-time.Microsecond),
	}
	if present(l.Micros) {
		micros, err := parseMicros(l.Micros)
		if err != nil {
			return ev, fmt.Errorf("key %s: Metadata.WriteTimestampMicros: %w", key, err)
		}
		ev.Time = time.UnixMicro(micros).UTC()
	}
	var oldItem, newItem rewind.Item
	if present(l.OldImage) {
		if oldItem, err = rewind.ParseItem(l.OldImage); err != nil {
			return ev, fmt.Errorf("key %s: OldImage: %w", key, err)
		}
		ev.OldImage = rewind.ItemJSON(oldItem)
	}
	if present(l.NewImage) {
		if newItem, err = rewind.ParseItem(l.NewImage); err != nil {
			return ev, fmt.Errorf("key %s: NewImage: %w", key, err)
		}
		ev.NewImage = rewind.ItemJSON(newItem)
	}
	switch {
	case newItem == nil:
		ev.Action = rewind.ActionRemove
	case oldItem == nil && e.View == ViewNewAndOld:
		ev.Action = rewind.ActionInsert
	default:
		// Both images; or a NEW_IMAGE export, which cannot tell an insert
		// from an update: MODIFY without an old image proves nothing about
		// the item before the window.
		ev.Action = rewind.ActionModify
	}
	ev.ChangedAttributes = rewind.ChangedAttributes(rewind.ItemAttributes(oldItem), rewind.ItemAttributes(newItem))
	if ev.Action == rewind.ActionRemove {
		ev.TTLExpiry = e.ttlExpired(oldItem)
	}
	return ev, nil
}

// ttlExpired infers whether a removal was DynamoDB's TTL: the old image's
// TTL attribute is a Number of epoch seconds at or before the window's end
// (TTL deletes an item whose value is less than the current time, and the
// removal happened before the end). It counts the removals it cannot
// check.
func (e *Export) ttlExpired(old rewind.Item) bool {
	switch {
	case e.ttlAttr == "":
		e.ttlNoAttr.Add(1)
		return false
	case old == nil:
		e.ttlNoOld.Add(1)
		return false
	}
	n, ok := old[e.ttlAttr].(*types.AttributeValueMemberN)
	if !ok {
		return false // no TTL value, or not a Number: TTL never deletes it
	}
	v, err := strconv.ParseFloat(n.Value, 64)
	if err != nil || v > float64(e.To.UnixMicro())/1e6 {
		return false
	}
	e.ttlInferred.Add(1)
	return true
}

// parseMicros reads WriteTimestampMicros: {"N":"..."} as AWS writes it, or
// a bare number.
func parseMicros(raw []byte) (int64, error) {
	s := string(raw)
	if raw[0] == '{' {
		var n struct{ N *string }
		if err := json.Unmarshal(raw, &n); err != nil || n.N == nil {
			return 0, fmt.Errorf("%s is not a number attribute", raw)
		}
		s = *n.N
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not whole microseconds", s)
	}
	return v, nil
}

// eventID is unique per item and export, and the same at every read.
func (e *Export) eventID(k rewind.Key) string {
	h := sha256.New()
	h.Write([]byte(e.Table))
	h.Write([]byte{0})
	h.Write(k.Encode())
	return "export:" + e.ID + ":" + hex.EncodeToString(h.Sum(nil)[:16])
}

// Events reads every data file in manifest order. A file that fails stops
// the iteration after its error; events already yielded from that file
// must be discarded (see ReadFile).
func (e *Export) Events(ctx context.Context) iter.Seq2[*rewind.ChangeEvent, error] {
	return func(yield func(*rewind.ChangeEvent, error) bool) {
		stop := errors.New("stop")
		for _, f := range e.Files {
			err := e.ReadFile(ctx, f, func(ev *rewind.ChangeEvent) error {
				if !yield(ev, nil) {
					return stop
				}
				return nil
			})
			if errors.Is(err, stop) {
				return
			}
			if err != nil {
				yield(nil, err)
				return
			}
		}
	}
}
