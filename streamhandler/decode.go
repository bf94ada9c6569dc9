package streamhandler

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ddbrewind/rewind"
	"github.com/go-json-experiment/json/jsontext"
)

// The handler reads the invocation payload once, with a streaming
// tokenizer, and slices keys and images out of it instead of decoding them
// into attribute values and encoding them again. Each record is decoded on
// its own: a record that cannot be decoded is kept whole (its raw JSON and
// the error) and never fails the others.

// decoder turns an invocation payload into change events. It is reused
// across invocations; it is not safe for concurrent use.
type decoder struct {
	tenantAttr  string
	tenantRegex *regexp.Regexp
	images      Images

	dec     *jsontext.Decoder
	label   string // stream label of the last payload, cleaned for paths
	keysRaw []byte // Keys of the record being decoded
	// keyAttrs are the configured key attribute names; learned holds, per
	// table, those seen in records (see keys).
	keyAttrs []string
	learned  map[string][]string
	// names interns attribute names: a batch repeats the same few names
	// in every image, and each event keeps them in ChangedAttributes.
	names   map[string]string
	attrsA  []attrSlice
	attrsB  []attrSlice
	scratch []byte
}

type attrSlice struct {
	name string
	raw  []byte
}

// decodeOpts keep jsontext's strict defaults: a duplicate attribute name makes an
// image ambiguous, so such a record is kept raw instead.
var decodeOpts = []jsontext.Options{}

func newDecoder(cfg *Config) *decoder {
	d := &decoder{tenantAttr: cfg.TenantAttribute, tenantRegex: cfg.TenantRegex, images: cfg.Images, keyAttrs: cfg.KeyAttributes}
	d.dec = jsontext.NewDecoder(bytes.NewBuffer(nil), decodeOpts...)
	return d
}

// payloadError is an invocation payload that is not a stream event at all.
type payloadError struct{ err error }

func (e *payloadError) Error() string { return "invocation payload: " + e.err.Error() }
func (e *payloadError) Unwrap() error { return e.err }

// decode appends the payload's records to evs. Slices in the events point
// into payload, but for the images of a payload with whitespace between
// its tokens, which are compact copies. A payload that is not a JSON
// object with a Records array is an error; a record that cannot be decoded
// is not.
func (d *decoder) decode(payload []byte, evs []rewind.ChangeEvent) ([]rewind.ChangeEvent, error) {
	// The decoder parses a bytes.Buffer in place, without copying, so its
	// offsets are offsets into payload.
	d.dec.Reset(bytes.NewBuffer(payload), decodeOpts...)
	d.label = ""
	dec := d.dec
	if err := expectKind(dec, '{'); err != nil {
		return evs, &payloadError{err}
	}
	found := false
	for dec.PeekKind() != '}' {
		name, err := dec.ReadValue()
		if err != nil {
			return evs, &payloadError{err}
		}
		if string(name) != `"Records"` {
			if err := dec.SkipValue(); err != nil {
				return evs, &payloadError{err}
			}
			continue
		}
		found = true
		if dec.PeekKind() == 'n' {
			dec.ReadToken()
			continue
		}
		if err := expectKind(dec, '['); err != nil {
			return evs, &payloadError{fmt.Errorf("Records: %w", err)}
		}
		for dec.PeekKind() != ']' {
			if k := dec.PeekKind(); k == 0 {
				_, err := dec.ReadToken()
				return evs, &payloadError{err}
			}
			start := int(dec.InputOffset())
			depth := dec.StackDepth()
			d.keysRaw = nil
			var ev rewind.ChangeEvent
			derr := d.record(payload, &ev)
			if derr != nil {
				// Skip what is left of this record.
				for dec.StackDepth() > depth {
					if k := dec.PeekKind(); k == '}' || k == ']' {
						if _, err := dec.ReadToken(); err != nil {
							return evs, &payloadError{err}
						}
					} else if k == 0 {
						_, err := dec.ReadToken()
						return evs, &payloadError{err}
					} else if err := dec.SkipValue(); err != nil {
						return evs, &payloadError{err}
					}
				}
			}
			end := int(dec.InputOffset())
			if end == start {
				// Nothing could be read: the payload itself is broken
				// here (a '}' inside the array, say), not one record.
				_, err := dec.ReadToken()
				if err == nil {
					err = fmt.Errorf("unexpected %v in Records", dec.PeekKind())
				}
				return evs, &payloadError{err}
			}
			raw := bytes.TrimLeft(payload[start:end], " \t\r\n,")
			if derr == nil {
				derr = d.finish(&ev)
			}
			if derr != nil {
				ev = undecodable(ev, raw, derr)
			}
			evs = append(evs, ev)
		}
		dec.ReadToken()
	}
	if _, err := dec.ReadToken(); err != nil {
		return evs, &payloadError{err}
	}
	if !found {
		return evs, &payloadError{errors.New(`no "Records" array`)}
	}
	return evs, nil
}

// undecodable keeps what could be read of a record, its raw JSON and the
// error. The event ID, when missing, is derived from the raw bytes so a
// redelivery still overwrites its own audit item.
func undecodable(ev rewind.ChangeEvent, raw []byte, err error) rewind.ChangeEvent {
	out := rewind.ChangeEvent{
		EventID:        ev.EventID,
		Table:          ev.Table,
		Region:         ev.Region,
		Action:         ev.Action,
		Time:           ev.Time,
		SequenceNumber: ev.SequenceNumber,
		SizeBytes:      ev.SizeBytes,
		StreamViewType: ev.StreamViewType,
		DecodeError:    err.Error(),
		Raw:            raw,
	}
	salvage(&out, raw)
	if out.EventID == "" {
		sum := sha256.Sum256(raw)
		out.EventID = "undecodable-" + hex.EncodeToString(sum[:16])
	}
	return out
}

// salvage fills what a failed decode left empty from a lenient reading
// of the raw record, so an undecodable record still has its sequence
// number (to be retried from), table and time (to be filed under).
func salvage(ev *rewind.ChangeEvent, raw []byte) {
	var r struct {
		EventID        any `json:"eventID"`
		EventName      any `json:"eventName"`
		EventSourceARN any `json:"eventSourceARN"`
		AWSRegion      any `json:"awsRegion"`
		DynamoDB       struct {
			ApproximateCreationDateTime json.Number `json:"ApproximateCreationDateTime"`
			SequenceNumber              any         `json:"SequenceNumber"`
			StreamViewType              any         `json:"StreamViewType"`
			SizeBytes                   json.Number `json:"SizeBytes"`
		} `json:"dynamodb"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	_ = dec.Decode(&r) // partial results are what we want
	str := func(v any) string { s, _ := v.(string); return s }
	if ev.EventID == "" {
		ev.EventID = str(r.EventID)
	}
	if ev.SequenceNumber == "" {
		if s := str(r.DynamoDB.SequenceNumber); s != "" && strings.Trim(s, "0123456789") == "" {
			ev.SequenceNumber = s
		}
	}
	if ev.Table == "" {
		if t, region, err := parseStreamARN(str(r.EventSourceARN)); err == nil {
			ev.Table, ev.Region = t, region
		}
	}
	if ev.Region == "" {
		ev.Region = str(r.AWSRegion)
	}
	if ev.Time.IsZero() && r.DynamoDB.ApproximateCreationDateTime != "" {
		if t, err := parseEpoch(jsontext.Value(r.DynamoDB.ApproximateCreationDateTime)); err == nil {
			ev.Time = t
		}
	}
	if ev.StreamViewType == "" {
		ev.StreamViewType = str(r.DynamoDB.StreamViewType)
	}
	if ev.SizeBytes == 0 {
		ev.SizeBytes, _ = r.DynamoDB.SizeBytes.Int64()
	}
	if ev.Action == "" {
		if a, err := rewind.ParseAction(str(r.EventName)); err == nil {
			ev.Action = a
		}
	}
}

func expectKind(dec *jsontext.Decoder, k jsontext.Kind) error {
	tok, err := dec.ReadToken()
	if err != nil {
		return err
	}
	if tok.Kind() != k {
		return fmt.Errorf("want %v, got %v", k, tok.Kind())
	}
	return nil
}

// str reads a JSON string and returns its contents. The result aliases the
// decoder's buffer unless it had escapes.
func (d *decoder) str() ([]byte, error) {
	v, err := d.dec.ReadValue()
	if err != nil {
		return nil, err
	}
	if v.Kind() != '"' {
		return nil, fmt.Errorf("want a string, got %v", v.Kind())
	}
	if bytes.IndexByte(v, '\\') < 0 {
		return v[1 : len(v)-1], nil
	}
	return jsontext.AppendUnquote(nil, v)
}

// record reads one record object.
func (d *decoder) record(payload []byte, ev *rewind.ChangeEvent) error {
	dec := d.dec
	if err := expectKind(dec, '{'); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	var region, arn string
	for dec.PeekKind() != '}' {
		name, err := dec.ReadValue()
		if err != nil {
			return err
		}
		switch string(name) {
		case `"eventID"`:
			s, err := d.str()
			if err != nil {
				return fmt.Errorf("eventID: %w", err)
			}
			ev.EventID = string(s)
		case `"eventName"`:
			s, err := d.str()
			if err != nil {
				return fmt.Errorf("eventName: %w", err)
			}
			a, err := rewind.ParseAction(string(s))
			if err != nil {
				return fmt.Errorf("eventName: %w", err)
			}
			ev.Action = a
		case `"awsRegion"`:
			s, err := d.str()
			if err != nil {
				return fmt.Errorf("awsRegion: %w", err)
			}
			region = string(s)
		case `"eventSourceARN"`:
			s, err := d.str()
			if err != nil {
				return fmt.Errorf("eventSourceARN: %w", err)
			}
			arn = string(s)
		case `"userIdentity"`:
			if err := d.userIdentity(ev); err != nil {
				return fmt.Errorf("userIdentity: %w", err)
			}
		case `"dynamodb"`:
			if err := d.streamRecord(payload, ev); err != nil {
				return fmt.Errorf("dynamodb: %w", err)
			}
		default:
			if err := dec.SkipValue(); err != nil {
				return err
			}
		}
	}
	if _, err := dec.ReadToken(); err != nil {
		return err
	}
	table, arnRegion, err := parseStreamARN(arn)
	if err != nil {
		return err
	}
	ev.Table = table
	ev.Region = arnRegion
	if d.label == "" {
		d.label = cleanLabel(streamLabel(arn))
	}
	if ev.Region == "" {
		ev.Region = region
	}
	return nil
}

func (d *decoder) userIdentity(ev *rewind.ChangeEvent) error {
	dec := d.dec
	if dec.PeekKind() == 'n' {
		_, err := dec.ReadToken()
		return err
	}
	if err := expectKind(dec, '{'); err != nil {
		return err
	}
	var typ, principal string
	for dec.PeekKind() != '}' {
		name, err := dec.ReadValue()
		if err != nil {
			return err
		}
		switch string(name) {
		case `"type"`:
			s, err := d.str()
			if err != nil {
				return fmt.Errorf("type: %w", err)
			}
			typ = string(s)
		case `"principalId"`:
			s, err := d.str()
			if err != nil {
				return fmt.Errorf("principalId: %w", err)
			}
			principal = string(s)
		default:
			if err := dec.SkipValue(); err != nil {
				return err
			}
		}
	}
	dec.ReadToken()
	ev.TTLExpiry = typ == "Service" && principal == "dynamodb.amazonaws.com"
	return nil
}

func (d *decoder) streamRecord(payload []byte, ev *rewind.ChangeEvent) error {
	dec := d.dec
	if err := expectKind(dec, '{'); err != nil {
		return err
	}
	var keysRaw []byte
	for dec.PeekKind() != '}' {
		name, err := dec.ReadValue()
		if err != nil {
			return err
		}
		switch string(name) {
		case `"ApproximateCreationDateTime"`:
			v, err := dec.ReadValue()
			if err != nil {
				return err
			}
			t, err := parseEpoch(v)
			if err != nil {
				return fmt.Errorf("ApproximateCreationDateTime: %w", err)
			}
			ev.Time = t
		case `"Keys"`:
			raw, _, err := d.image(payload, false, nil)
			if err != nil {
				return fmt.Errorf("Keys: %w", err)
			}
			keysRaw = raw
		case `"NewImage"`:
			raw, attrs, err := d.image(payload, true, d.attrsB[:0])
			if err != nil {
				return fmt.Errorf("NewImage: %w", err)
			}
			ev.NewImage, d.attrsB = raw, attrs
		case `"OldImage"`:
			raw, attrs, err := d.image(payload, true, d.attrsA[:0])
			if err != nil {
				return fmt.Errorf("OldImage: %w", err)
			}
			ev.OldImage, d.attrsA = raw, attrs
		case `"SequenceNumber"`:
			s, err := d.str()
			if err != nil {
				return fmt.Errorf("SequenceNumber: %w", err)
			}
			if len(s) == 0 || bytes.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
				return fmt.Errorf("SequenceNumber %q is not a decimal number", s)
			}
			ev.SequenceNumber = string(s)
		case `"SizeBytes"`:
			v, err := dec.ReadValue()
			if err != nil {
				return err
			}
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				return fmt.Errorf("SizeBytes: %s is not a whole number", v)
			}
			ev.SizeBytes = n
		case `"StreamViewType"`:
			s, err := d.str()
			if err != nil {
				return fmt.Errorf("StreamViewType: %w", err)
			}
			ev.StreamViewType = string(s)
		default:
			if err := dec.SkipValue(); err != nil {
				return err
			}
		}
	}
	dec.ReadToken()
	if keysRaw == nil {
		return errors.New("no Keys")
	}
	d.keysRaw = keysRaw
	return nil
}

// keys builds the event's key from the record's Keys. Real DynamoDB puts
// only the primary key there; DynamoDB Local also puts secondary index key
// attributes in the Keys of TTL deletes. Extra attributes are dropped using
// the configured key attributes, or those learned from earlier records of
// the same table; with neither, the record is undecodable (and kept raw).
func (d *decoder) keys(ev *rewind.ChangeEvent) error {
	item, err := rewind.ParseItem(d.keysRaw)
	if err != nil {
		return fmt.Errorf("Keys: %w", err)
	}
	names := d.keyAttrs
	if names == nil {
		names = d.learned[ev.Table]
	}
	if names != nil && len(item) > len(names) {
		kept := make(rewind.Item, len(names))
		for _, n := range names {
			if v, ok := item[n]; ok {
				kept[n] = v
			}
		}
		item = kept
	}
	k, err := rewind.KeyFromItem(item)
	if err != nil {
		if names == nil && len(item) > 2 {
			return fmt.Errorf("Keys: %w; the table's key attributes are not known yet (set REWIND_KEY_ATTRIBUTES)", err)
		}
		return fmt.Errorf("Keys: %w", err)
	}
	if d.keyAttrs == nil && ev.Table != "" {
		if d.learned == nil {
			d.learned = map[string][]string{}
		}
		if _, ok := d.learned[ev.Table]; !ok {
			d.learned[ev.Table] = k.Names()
		}
	}
	ev.Keys = k
	return nil
}

// image reads a DynamoDB JSON object of attributes, checks it, and returns
// the slice of payload holding it and, if collect, appends each top-level
// attribute's slice to attrs and compacts the image (a copy, only when the
// payload has whitespace between its tokens). A null image is returned as
// nil.
func (d *decoder) image(payload []byte, collect bool, attrs []attrSlice) ([]byte, []attrSlice, error) {
	dec := d.dec
	if dec.PeekKind() == 'n' {
		_, err := dec.ReadToken()
		return nil, attrs, err
	}
	start := int(dec.InputOffset())
	if err := expectKind(dec, '{'); err != nil {
		return nil, attrs, err
	}
	for dec.PeekKind() != '}' {
		name, err := d.str()
		if err != nil {
			return nil, attrs, err
		}
		vstart := int(dec.InputOffset())
		if err := d.checkAV(0); err != nil {
			return nil, attrs, fmt.Errorf("attribute %q: %w", name, err)
		}
		if collect {
			raw := bytes.TrimLeft(payload[vstart:dec.InputOffset()], " \t\r\n:")
			attrs = append(attrs, attrSlice{name: d.intern(name), raw: raw})
		}
	}
	dec.ReadToken()
	raw := bytes.TrimLeft(payload[start:dec.InputOffset()], " \t\r\n:,")
	if collect {
		// An image is stored and printed as one line of JSON whatever the
		// payload's layout; a compact payload costs a scan, not a copy.
		// The attribute slices keep the payload's layout: they are only
		// compared (see changed), and equalRaw looks past whitespace.
		im, err := rewind.Image(raw).Compact()
		if err != nil {
			return nil, attrs, err
		}
		raw = im
	}
	return raw, attrs, nil
}

// checkAV checks one DynamoDB JSON attribute value without building it.
func (d *decoder) checkAV(depth int) error {
	dec := d.dec
	if depth > 32 {
		return errors.New("nested deeper than 32 levels")
	}
	if err := expectKind(dec, '{'); err != nil {
		return err
	}
	if dec.PeekKind() != '"' {
		return errors.New("attribute value has no type")
	}
	typ, err := dec.ReadValue()
	if err != nil {
		return err
	}
	switch string(typ) {
	case `"S"`:
		if k := dec.PeekKind(); k != '"' {
			return fmt.Errorf("S: want a string, got %v", k)
		}
		if err := dec.SkipValue(); err != nil {
			return fmt.Errorf("S: %w", err)
		}
	case `"N"`:
		s, err := d.str()
		if err != nil {
			return fmt.Errorf("N: %w", err)
		}
		if !validNumber(s) {
			return fmt.Errorf("N: %q is not a number", s)
		}
	case `"B"`:
		if err := d.checkBinary(); err != nil {
			return fmt.Errorf("B: %w", err)
		}
	case `"BOOL"`:
		tok, err := dec.ReadToken()
		if err != nil {
			return err
		}
		if k := tok.Kind(); k != 't' && k != 'f' {
			return fmt.Errorf("BOOL: want true or false, got %v", k)
		}
	case `"NULL"`:
		tok, err := dec.ReadToken()
		if err != nil {
			return err
		}
		if tok.Kind() != 't' {
			return fmt.Errorf("NULL: want true, got %v", tok.Kind())
		}
	case `"SS"`, `"NS"`, `"BS"`:
		if err := expectKind(dec, '['); err != nil {
			return fmt.Errorf("%s: %w", typ, err)
		}
		for i := 0; dec.PeekKind() != ']'; i++ {
			switch string(typ) {
			case `"SS"`:
				if k := dec.PeekKind(); k != '"' {
					return fmt.Errorf("SS[%d]: want a string, got %v", i, k)
				}
				if err := dec.SkipValue(); err != nil {
					return fmt.Errorf("SS[%d]: %w", i, err)
				}
			case `"NS"`:
				s, err := d.str()
				if err != nil {
					return fmt.Errorf("NS[%d]: %w", i, err)
				}
				if !validNumber(s) {
					return fmt.Errorf("NS[%d]: %q is not a number", i, s)
				}
			default:
				if err := d.checkBinary(); err != nil {
					return fmt.Errorf("BS[%d]: %w", i, err)
				}
			}
		}
		dec.ReadToken()
	case `"L"`:
		if err := expectKind(dec, '['); err != nil {
			return fmt.Errorf("L: %w", err)
		}
		for i := 0; dec.PeekKind() != ']'; i++ {
			if err := d.checkAV(depth + 1); err != nil {
				return fmt.Errorf("L[%d]: %w", i, err)
			}
		}
		dec.ReadToken()
	case `"M"`:
		if err := expectKind(dec, '{'); err != nil {
			return fmt.Errorf("M: %w", err)
		}
		for dec.PeekKind() != '}' {
			name, err := d.str()
			if err != nil {
				return err
			}
			if err := d.checkAV(depth + 1); err != nil {
				return fmt.Errorf("M.%s: %w", name, err)
			}
		}
		dec.ReadToken()
	default:
		return fmt.Errorf("unknown attribute type %s", typ)
	}
	tok, err := dec.ReadToken()
	if err != nil {
		return err
	}
	if tok.Kind() != '}' {
		return fmt.Errorf("attribute value has more than one type (%s and more)", typ)
	}
	return nil
}

func (d *decoder) checkBinary() error {
	s, err := d.str()
	if err != nil {
		return err
	}
	n := base64.StdEncoding.DecodedLen(len(s))
	if cap(d.scratch) < n {
		d.scratch = make([]byte, n)
	}
	if _, err := base64.StdEncoding.Decode(d.scratch[:n], s); err != nil {
		return fmt.Errorf("not base64: %w", err)
	}
	return nil
}

// validNumber checks the DynamoDB number syntax without allocating.
func validNumber(s []byte) bool {
	i := 0
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		i++
	}
	digits := 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		digits++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			digits++
		}
	}
	if digits == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '-' || s[i] == '+') {
			i++
		}
		e := 0
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			e++
		}
		if e == 0 {
			return false
		}
	}
	return i == len(s)
}

// parseEpoch reads ApproximateCreationDateTime: epoch seconds, possibly
// with a fraction (milliseconds when the stream is configured for them).
func parseEpoch(v jsontext.Value) (time.Time, error) {
	if v.Kind() != '0' {
		return time.Time{}, fmt.Errorf("want epoch seconds, got %s", v)
	}
	s := string(v)
	if strings.ContainsAny(s, "eE") {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f < 0 || f > math.MaxInt32*4 {
			return time.Time{}, fmt.Errorf("bad epoch seconds %s", s)
		}
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(math.Round(frac*1e6))*1000).UTC(), nil
	}
	ip, fp, _ := strings.Cut(s, ".")
	sec, err := strconv.ParseInt(ip, 10, 64)
	if err != nil || sec < 0 {
		return time.Time{}, fmt.Errorf("bad epoch seconds %s", s)
	}
	var nsec int64
	if fp != "" {
		if len(fp) > 9 {
			fp = fp[:9]
		}
		n, err := strconv.ParseInt(fp, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("bad epoch seconds %s", s)
		}
		for i := len(fp); i < 9; i++ {
			n *= 10
		}
		nsec = n
	}
	// Parquet and the audit table keep microseconds.
	return time.Unix(sec, nsec).UTC().Truncate(time.Microsecond), nil
}

// parseStreamARN returns the table name and region of a stream ARN:
// arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-11-20T10:00:00.000
func parseStreamARN(arn string) (table, region string, err error) {
	if arn == "" {
		return "", "", errors.New("no eventSourceARN")
	}
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "dynamodb" {
		return "", "", fmt.Errorf("eventSourceARN %q is not a DynamoDB stream ARN", arn)
	}
	res, ok := strings.CutPrefix(parts[5], "table/")
	if !ok {
		return "", "", fmt.Errorf("eventSourceARN %q is not a DynamoDB stream ARN", arn)
	}
	table, _, _ = strings.Cut(res, "/stream/")
	if table == "" {
		return "", "", fmt.Errorf("eventSourceARN %q names no table", arn)
	}
	return table, parts[3], nil
}

// streamLabel returns the stream label of a stream ARN, the part after
// "/stream/", which tells streams of one table apart.
func streamLabel(arn string) string {
	_, label, _ := strings.Cut(arn, "/stream/")
	return label
}

// intern returns name as a string, shared with every earlier use of the
// same name. The table is dropped if it grows past 4096 names (items
// with generated attribute names).
func (d *decoder) intern(name []byte) string {
	if s, ok := d.names[string(name)]; ok {
		return s
	}
	if d.names == nil || len(d.names) >= 4096 {
		d.names = make(map[string]string, 64)
	}
	s := string(name)
	d.names[s] = s
	return s
}

// cleanLabel keeps letters and digits of a stream label and turns the rest
// into '-', so it is safe in object keys and Hadoop paths.
func cleanLabel(s string) string {
	if s == "" {
		return "stream"
	}
	b := []byte(s)
	for i, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			b[i] = '-'
		}
	}
	return string(b)
}

// finish fills the derived fields of a decoded event: tenant, changed
// attributes, and drops the images the configuration does not keep.
func (d *decoder) finish(ev *rewind.ChangeEvent) error {
	if ev.EventID == "" {
		return errors.New("no eventID")
	}
	if ev.Action == "" {
		return errors.New("no eventName")
	}
	if ev.SequenceNumber == "" {
		return errors.New("no SequenceNumber")
	}
	if ev.TTLExpiry && ev.Action != rewind.ActionRemove {
		ev.TTLExpiry = false
	}
	if err := d.keys(ev); err != nil {
		return err
	}
	ev.Tenant = d.tenant(ev.Keys)
	changed, err := d.changed(ev.OldImage, ev.NewImage)
	if err != nil {
		return err
	}
	ev.ChangedAttributes = changed
	switch d.images {
	case ImagesNew:
		ev.OldImage = nil
	case ImagesOld:
		ev.NewImage = nil
	case ImagesNone:
		ev.OldImage, ev.NewImage = nil, nil
	}
	return nil
}

func (d *decoder) tenant(k rewind.Key) string {
	a, ok := k.Get(d.tenantAttr)
	if !ok {
		return ""
	}
	v := a.Value
	if a.Type == 'B' {
		v = base64.StdEncoding.EncodeToString([]byte(v))
	}
	if d.tenantRegex == nil {
		return v
	}
	m := d.tenantRegex.FindStringSubmatch(v)
	if len(m) < 2 {
		return ""
	}
	return m[1]
}

// changed lists the top-level attributes that differ between the images.
func (d *decoder) changed(oldIm, newIm []byte) ([]string, error) {
	// The image slices were collected by image() while reading the record.
	if oldIm == nil && newIm == nil {
		return nil, nil
	}
	if oldIm == nil {
		d.attrsA = d.attrsA[:0]
	}
	if newIm == nil {
		d.attrsB = d.attrsB[:0]
	}
	out := []string{}
	for _, b := range d.attrsB {
		i := slices.IndexFunc(d.attrsA, func(a attrSlice) bool { return a.name == b.name })
		if i < 0 {
			out = append(out, b.name)
			continue
		}
		if !bytes.Equal(d.attrsA[i].raw, b.raw) && !equalRaw(d.attrsA[i].raw, b.raw) {
			out = append(out, b.name)
		}
	}
	for _, a := range d.attrsA {
		if !slices.ContainsFunc(d.attrsB, func(b attrSlice) bool { return a.name == b.name }) {
			out = append(out, a.name)
		}
	}
	slices.Sort(out)
	return out, nil
}

// equalRaw compares two attribute values whose bytes differ by value, for
// sets in another order or numbers written differently.
func equalRaw(a, b []byte) bool {
	x, err1 := rewind.ParseAttributeValue(a)
	y, err2 := rewind.ParseAttributeValue(b)
	return err1 == nil && err2 == nil && rewind.EqualAttributeValues(x, y)
}
