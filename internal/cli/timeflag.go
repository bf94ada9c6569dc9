package cli

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// parseTime reads a point in time given on the command line, in one of:
//
//   - RFC 3339 with a zone: 2025-03-01T14:05:00Z, 2025-03-01T15:05:00+01:00,
//     fractional seconds allowed. A time without a zone is refused: during
//     an incident, "14:05" in whose time zone is a question nobody should
//     have to ask.
//   - Unix epoch seconds, fraction allowed: 1740837900, 1740837900.250.
//     Values that look like milliseconds are refused.
//   - Relative to now, in the past: -2h, -90m, -1h30m, -3d (days are 24 h),
//     or "now".
//
// The result is in UTC.
func parseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return time.Time{}, errors.New("empty time")
	case s == "now":
		return now.UTC(), nil
	case strings.HasPrefix(s, "-"):
		d, err := parseAgo(s[1:])
		if err != nil {
			return time.Time{}, fmt.Errorf("time %q: %w", s, err)
		}
		return now.Add(-d).UTC(), nil
	case strings.HasPrefix(s, "+"):
		return time.Time{}, fmt.Errorf("time %q: relative times count back from now (-2h), not forward", s)
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && !strings.ContainsAny(s, "eEinfINF") {
		if f >= 1e11 {
			return time.Time{}, fmt.Errorf("time %q: looks like milliseconds; give epoch seconds", s)
		}
		if f < 0 || math.IsNaN(f) {
			return time.Time{}, fmt.Errorf("time %q: epoch seconds must not be negative", s)
		}
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(math.Round(frac*1e9))).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		if _, err2 := time.Parse("2006-01-02T15:04:05.999999999", s); err2 == nil {
			return time.Time{}, fmt.Errorf("time %q has no zone: add Z for UTC or an offset such as +01:00", s)
		}
		return time.Time{}, fmt.Errorf("time %q: want RFC 3339 (2025-03-01T14:05:00Z), epoch seconds, or relative (-2h)", s)
	}
	return t.UTC(), nil
}

// parseAgo reads the duration of a relative time: a Go duration (2h,
// 1h30m) or whole days (3d).
func parseAgo(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("bad number of days %q", days)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d < 0 {
		return 0, errors.New("double negative")
	}
	return d, nil
}

// timeFlag is a flag.Value holding a time parsed with parseTime.
type timeFlag struct {
	t   time.Time
	set bool
	now func() time.Time // default time.Now
}

func (f *timeFlag) Set(s string) error {
	now := time.Now
	if f.now != nil {
		now = f.now
	}
	t, err := parseTime(s, now())
	if err != nil {
		return err
	}
	f.t, f.set = t, true
	return nil
}

func (f *timeFlag) String() string {
	if f == nil || !f.set {
		return ""
	}
	return f.t.Format(time.RFC3339Nano)
}
