package rewind

import "strings"

// CompareSequenceNumbers compares two stream sequence numbers numerically.
// They are decimal strings of varying length, so "9" < "10" although "9" >
// "10" as text. It returns -1, 0 or +1.
func CompareSequenceNumbers(a, b string) int {
	a = strings.TrimLeft(a, "0")
	b = strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}
