package cli

import (
	"testing"
	"time"
)

// FuzzParseTime: any command-line string either fails or yields a UTC time
// that prints back as RFC 3339 and parses to the same instant.
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"2025-03-01T14:05:00Z", "2025-03-01T15:05:00+01:00", "1740837900.25", "-2h", "-3d", "now", "+1h", "1e9", "-"} {
		f.Add(s)
	}
	now := time.Date(2025, 3, 1, 14, 5, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseTime(s, now)
		if err != nil {
			return
		}
		if got.Location() != time.UTC {
			t.Fatalf("parseTime(%q) not UTC: %v", s, got)
		}
		back, err := parseTime(got.Format(time.RFC3339Nano), now)
		if err != nil || !back.Equal(got) {
			t.Fatalf("parseTime(%q) = %v, which does not round-trip: %v, %v", s, got, back, err)
		}
	})
}
