package rewind

import (
	"encoding/base64"
	"errors"
	"fmt"
)

// CheckNumber reports whether s is a number DynamoDB stores: the number
// grammar ([+-] digits [. digits] [e|E [+-] digits], at least one digit
// before the exponent), at most 38 significant digits, and zero or a
// magnitude from 1E-130 to 9.9999999999999999999999999999999999999E+125.
// It does not allocate unless it fails, so decoders of stream records can
// call it on every number.
func CheckNumber[T ~string | ~[]byte](s T) error {
	_, err := scanNumber(s)
	return err
}

// decimal is a DynamoDB number taken apart by scanNumber: its significant
// digits are s[first:last+1] with any '.' skipped, and its value is
// d.ddd × 10^adj.
type decimal struct {
	neg         bool
	zero        bool
	first, last int // indexes in s of the first and last nonzero digits
	sig         int // significant digits
	adj         int // power of ten of the first significant digit
}

// errNotANumber is the cause of a syntax error; numberError adds the number.
var errNotANumber = errors.New("is not a number: DynamoDB numbers are [+-]digits[.digits][e[+-]digits]")

// scanNumber parses and checks a DynamoDB number. It is the one place the
// number grammar and DynamoDB's precision and range are written.
func scanNumber[T ~string | ~[]byte](s T) (decimal, error) {
	var d decimal
	i := 0
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		d.neg = s[i] == '-'
		i++
	}
	dot := -1
	d.first, d.last = -1, -1
	digits := 0
	for ; i < len(s); i++ {
		c := s[i]
		if c == '.' && dot < 0 {
			dot = i
			continue
		}
		if c < '0' || c > '9' {
			break
		}
		digits++
		if c != '0' {
			if d.first < 0 {
				d.first = i
			}
			d.last = i
		}
	}
	mantEnd := i
	if digits == 0 {
		return decimal{}, numberError(s, errNotANumber)
	}
	// The exponent, clamped far beyond DynamoDB's range so it cannot
	// overflow; leading zeros are allowed.
	exp := 0
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		neg := false
		if i < len(s) && (s[i] == '-' || s[i] == '+') {
			neg = s[i] == '-'
			i++
		}
		start := i
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			// Past 10^8 the number is out of range whatever its
			// mantissa, short of a mantissa of 10^8 characters.
			if exp < 1e8 {
				exp = exp*10 + int(s[i]-'0')
			}
		}
		if i == start {
			return decimal{}, numberError(s, errNotANumber)
		}
		if neg {
			exp = -exp
		}
	}
	if i != len(s) {
		return decimal{}, numberError(s, errNotANumber)
	}
	if d.first < 0 {
		// Zero, whatever its exponent, unless the exponent is past what
		// any decimal arithmetic (Java's BigDecimal, big.Rat) takes.
		if exp >= 1e8 || exp <= -1e8 {
			return decimal{}, numberError(s, errors.New("has an exponent out of DynamoDB's range (-130 to 125)"))
		}
		d.zero, d.neg = true, false
		return d, nil
	}
	if dot < 0 {
		dot = mantEnd
	}
	power := func(j int) int {
		if j < dot {
			return dot - 1 - j
		}
		return dot - j
	}
	d.sig = power(d.first) - power(d.last) + 1
	d.adj = power(d.first) + exp
	if d.sig > MaxNumberDigits {
		return decimal{}, numberError(s, fmt.Errorf("has %d significant digits, more than DynamoDB's %d", d.sig, MaxNumberDigits))
	}
	if d.adj > MaxNumberExponent {
		return decimal{}, numberError(s, errors.New("is too large: DynamoDB's largest magnitude is 9.9999999999999999999999999999999999999E+125"))
	}
	if d.adj < MinNumberExponent {
		return decimal{}, numberError(s, errors.New("is too small: DynamoDB's smallest nonzero magnitude is 1E-130"))
	}
	return d, nil
}

// numberError says which number broke which rule, shortening a long one.
func numberError[T ~string | ~[]byte](s T, cause error) error {
	if cause == errNotANumber {
		return fmt.Errorf("%s %w", shortNumber(string(s)), cause)
	}
	return fmt.Errorf("number %s %w", shortNumber(string(s)), cause)
}

func shortNumber(s string) string {
	const max = 48
	if len(s) <= max {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q...(%d characters)", s[:20], len(s))
}

// The rest of the grammar of DynamoDB JSON ({"S":"x"}, {"N":"42"},
// {"L":[...]}, ...), written once for every reader of it. ParseItem and
// ParseAttributeValue build values; the stream handler's decoder checks
// values in place, without building them, to keep the Lambda fast. Both
// walk the JSON with jsontext (strict: valid UTF-8, no duplicate names)
// and decide what each value may be with these functions and CheckNumber,
// so they accept and refuse the same inputs (FuzzFastDecoderAgainstParseItem
// in package streamhandler checks it).

// MaxNestingDepth is how deep values nest: DynamoDB supports nested
// attributes up to 32 levels deep ("Constraints in Amazon DynamoDB").
// A top-level attribute's value is at depth 0, each list element or map
// value one deeper; a value deeper than MaxNestingDepth is refused.
const MaxNestingDepth = 32

// AttributeType is a DynamoDB JSON data type descriptor, the one name of
// an attribute value object.
type AttributeType uint8

// The ten data type descriptors of DynamoDB JSON.
const (
	TypeS AttributeType = iota + 1
	TypeN
	TypeB
	TypeBOOL
	TypeNULL
	TypeSS
	TypeNS
	TypeBS
	TypeL
	TypeM
)

var attributeTypeNames = [...]string{"", "S", "N", "B", "BOOL", "NULL", "SS", "NS", "BS", "L", "M"}

// String returns the descriptor as DynamoDB JSON writes it.
func (t AttributeType) String() string {
	if int(t) < len(attributeTypeNames) && t != 0 {
		return attributeTypeNames[t]
	}
	return fmt.Sprintf("AttributeType(%d)", uint8(t))
}

// ParseAttributeType returns the type descriptor s names (s unquoted, as
// in {"S":...}). Descriptors are case-sensitive. It does not allocate
// unless it fails.
func ParseAttributeType[T ~string | ~[]byte](s T) (AttributeType, error) {
	switch len(s) {
	case 1:
		switch s[0] {
		case 'S':
			return TypeS, nil
		case 'N':
			return TypeN, nil
		case 'B':
			return TypeB, nil
		case 'L':
			return TypeL, nil
		case 'M':
			return TypeM, nil
		}
	case 2:
		if s[1] == 'S' {
			switch s[0] {
			case 'S':
				return TypeSS, nil
			case 'N':
				return TypeNS, nil
			case 'B':
				return TypeBS, nil
			}
		}
	case 4:
		// Byte by byte: a string conversion of a generic []byte may copy.
		if s[0] == 'B' && s[1] == 'O' && s[2] == 'O' && s[3] == 'L' {
			return TypeBOOL, nil
		}
		if s[0] == 'N' && s[1] == 'U' && s[2] == 'L' && s[3] == 'L' {
			return TypeNULL, nil
		}
	}
	return 0, fmt.Errorf("unknown attribute type %q", string(s))
}

// DecodeBinary decodes the value of a B (or an element of a BS) as
// DynamoDB JSON writes it, standard base64 with padding, into dst's
// storage (dst[:0]), so a checker can reuse one buffer.
func DecodeBinary(dst, s []byte) ([]byte, error) {
	out, err := base64.StdEncoding.AppendDecode(dst[:0], s)
	if err != nil {
		return dst[:0], fmt.Errorf("not base64: %w", err)
	}
	return out, nil
}
