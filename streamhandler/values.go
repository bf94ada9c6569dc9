package streamhandler

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"

	"github.com/ddbrewind/rewind"
)

type attrSlice struct {
	name string
	raw  []byte
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
