package cli

import (
	"strings"
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	now := time.Date(2025, 3, 1, 14, 5, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
		err  string
	}{
		{in: "2025-03-01T14:05:00Z", want: now},
		{in: "2025-03-01T15:05:00+01:00", want: now},
		{in: "2025-03-01T14:05:00.5Z", want: now.Add(500 * time.Millisecond)},
		{in: "1740837900", want: now},
		{in: "1740837900.25", want: now.Add(250 * time.Millisecond)},
		{in: "-2h", want: now.Add(-2 * time.Hour)},
		{in: "-1h30m", want: now.Add(-90 * time.Minute)},
		{in: "-3d", want: now.Add(-72 * time.Hour)},
		{in: "now", want: now},
		{in: " -5m ", want: now.Add(-5 * time.Minute)},
		{in: "2025-03-01T14:05:00", err: "no zone"},
		{in: "1740837900000", err: "milliseconds"},
		{in: "+2h", err: "back from now"},
		{in: "--2h", err: "double negative"},
		{in: "-xd", err: "days"},
		{in: "yesterday", err: "RFC 3339"},
		{in: "", err: "empty"},
		{in: "1e9", err: "RFC 3339"},
	} {
		got, err := parseTime(tc.in, now)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseTime(%q) = %v, %v; want error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || !got.Equal(tc.want) || got.Location() != time.UTC {
			t.Errorf("parseTime(%q) = %v, %v; want %v UTC", tc.in, got, err, tc.want)
		}
	}
}

func TestTimeFlag(t *testing.T) {
	now := time.Date(2025, 3, 1, 14, 5, 0, 0, time.UTC)
	f := &timeFlag{now: func() time.Time { return now }}
	if f.String() != "" {
		t.Errorf("unset flag prints %q", f.String())
	}
	if err := f.Set("-1h"); err != nil {
		t.Fatal(err)
	}
	if !f.set || !f.t.Equal(now.Add(-time.Hour)) || f.String() != "2025-03-01T13:05:00Z" {
		t.Errorf("after Set(-1h): %v %v %q", f.set, f.t, f.String())
	}
	if err := f.Set("bad"); err == nil {
		t.Error("Set(bad) succeeded")
	}
}
