package streamhandler

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"

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
	tenant rewind.TenantRule
	images Images

	dec     *jsontext.Decoder
	label   string // stream label of the last payload, cleaned for paths
	keysRaw []byte // Keys of the record being decoded
	// keyAttrs are the configured key attribute names; learned holds, per
	// table, those seen in records (see keys).
	keyAttrs []string
	learned  map[string][]string
	// names interns attribute names: a batch repeats the same few names
	// in every image, and each event keeps them in ChangedAttributes.
	names map[string]string
	// attrsA and attrsB are the top-level attributes of the old and the
	// new image of the record being decoded, for ChangedAttributes.
	attrsA  []rewind.ImageAttribute
	attrsB  []rewind.ImageAttribute
	scratch []byte
}

// decodeOpts keep jsontext's strict defaults: a duplicate attribute name makes an
// image ambiguous, so such a record is kept raw instead.
var decodeOpts = []jsontext.Options{}

func newDecoder(cfg *Config) *decoder {
	d := &decoder{tenant: cfg.Tenant, images: cfg.Images, keyAttrs: cfg.KeyAttributes}
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
func (d *decoder) image(payload []byte, collect bool, attrs []rewind.ImageAttribute) ([]byte, []rewind.ImageAttribute, error) {
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
			attrs = append(attrs, rewind.ImageAttribute{Name: d.intern(name), JSON: raw})
		}
	}
	dec.ReadToken()
	raw := bytes.TrimLeft(payload[start:dec.InputOffset()], " \t\r\n:,")
	if collect {
		// An image is stored and printed as one line of JSON whatever the
		// payload's layout; a compact payload costs a scan, not a copy.
		// The attribute slices keep the payload's layout: they are only
		// compared (rewind.ChangedAttributes), which parses values whose
		// bytes differ.
		im, err := rewind.Image(raw).Compact()
		if err != nil {
			return nil, attrs, err
		}
		raw = im
	}
	return raw, attrs, nil
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
	ev.Tenant = d.tenant.Tenant(ev.Keys)
	ev.ChangedAttributes = rewind.ChangedAttributes(d.imageAttrs(ev.OldImage, d.attrsA), d.imageAttrs(ev.NewImage, d.attrsB))
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

// imageAttrs returns the attributes image() collected for an image, nil
// when the record has no such image (they may be left from an earlier
// record), and an empty list for an image without attributes.
func (d *decoder) imageAttrs(im rewind.Image, attrs []rewind.ImageAttribute) []rewind.ImageAttribute {
	if im == nil {
		return nil
	}
	if attrs == nil {
		return []rewind.ImageAttribute{}
	}
	return attrs
}

// DecodeEvent decodes an invocation payload (a DynamoDB stream event, such
// as the payload of an on-failure record, rewind.FailureRecord.Event) into
// change events exactly as the handler does, with cfg's Tenant, Images and
// KeyAttributes; cfg is defaulted first. The events' slices point into
// payload. A record that cannot be decoded is an event with DecodeError,
// as in the handler; a payload that is not a stream event is an error.
func DecodeEvent(cfg Config, payload []byte) ([]rewind.ChangeEvent, error) {
	cfg.EnsureDefaults()
	if err := cfg.Tenant.Validate(); err != nil {
		return nil, err
	}
	return newDecoder(&cfg).decode(payload, nil)
}
