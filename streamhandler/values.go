package streamhandler

import (
	"bytes"
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
	if depth > rewind.MaxNestingDepth {
		return fmt.Errorf("nested deeper than %d levels", rewind.MaxNestingDepth)
	}
	if err := expectKind(dec, '{'); err != nil {
		return err
	}
	if dec.PeekKind() != '"' {
		return errors.New("attribute value has no type")
	}
	name, err := d.str()
	if err != nil {
		return err
	}
	typ, err := rewind.ParseAttributeType(name)
	if err != nil {
		return err
	}
	switch typ {
	case rewind.TypeS:
		if k := dec.PeekKind(); k != '"' {
			return fmt.Errorf("S: want a string, got %v", k)
		}
		if err := dec.SkipValue(); err != nil {
			return fmt.Errorf("S: %w", err)
		}
	case rewind.TypeN:
		s, err := d.str()
		if err != nil {
			return fmt.Errorf("N: %w", err)
		}
		if err := rewind.CheckNumber(s); err != nil {
			return fmt.Errorf("N: %w", err)
		}
	case rewind.TypeB:
		if err := d.checkBinary(); err != nil {
			return fmt.Errorf("B: %w", err)
		}
	case rewind.TypeBOOL:
		tok, err := dec.ReadToken()
		if err != nil {
			return err
		}
		if k := tok.Kind(); k != 't' && k != 'f' {
			return fmt.Errorf("BOOL: want true or false, got %v", k)
		}
	case rewind.TypeNULL:
		tok, err := dec.ReadToken()
		if err != nil {
			return err
		}
		if tok.Kind() != 't' {
			return fmt.Errorf("NULL: want true, got %v", tok.Kind())
		}
	case rewind.TypeSS, rewind.TypeNS, rewind.TypeBS:
		if err := expectKind(dec, '['); err != nil {
			return fmt.Errorf("%s: %w", typ, err)
		}
		for i := 0; dec.PeekKind() != ']'; i++ {
			switch typ {
			case rewind.TypeSS:
				if k := dec.PeekKind(); k != '"' {
					return fmt.Errorf("SS[%d]: want a string, got %v", i, k)
				}
				if err := dec.SkipValue(); err != nil {
					return fmt.Errorf("SS[%d]: %w", i, err)
				}
			case rewind.TypeNS:
				s, err := d.str()
				if err != nil {
					return fmt.Errorf("NS[%d]: %w", i, err)
				}
				if err := rewind.CheckNumber(s); err != nil {
					return fmt.Errorf("NS[%d]: %w", i, err)
				}
			default:
				if err := d.checkBinary(); err != nil {
					return fmt.Errorf("BS[%d]: %w", i, err)
				}
			}
		}
		dec.ReadToken()
	case rewind.TypeL:
		if err := expectKind(dec, '['); err != nil {
			return fmt.Errorf("L: %w", err)
		}
		for i := 0; dec.PeekKind() != ']'; i++ {
			if err := d.checkAV(depth + 1); err != nil {
				return fmt.Errorf("L[%d]: %w", i, err)
			}
		}
		dec.ReadToken()
	case rewind.TypeM:
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
	d.scratch, err = rewind.DecodeBinary(d.scratch, s)
	return err
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
