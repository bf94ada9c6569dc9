package rewind

import (
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
