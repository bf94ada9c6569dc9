package streamhandler

import (
	"errors"
	"fmt"

	"github.com/ddbrewind/rewind"
)

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
