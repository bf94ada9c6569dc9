package query

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"
)

// The fast paths must write what rewind's key-set writer writes.
func TestAppendTimeAndStringMatchTheSlowPath(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 200000 {
		var µs int64
		switch i % 4 {
		case 0:
			µs = rng.Int64N(1e17) - 5e16 // years 386 to 3554
		case 1:
			µs = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC).UnixMicro() + rng.Int64N(1e11)
		case 2:
			µs = rng.Int64N(1e12) * 1e6 // whole seconds
		default:
			µs = -rng.Int64N(1e12)
		}
		want := time.UnixMicro(µs).UTC().AppendFormat(nil, time.RFC3339Nano)
		if got := appendTime(nil, µs); string(got) != string(want) {
			t.Fatalf("appendTime(%d) = %s, want %s", µs, got, want)
		}
	}
	for _, s := range []string{"", "plain", `q"uote`, `back\slash`, "tab\t", "del\x7f", "ünï", "\xff\xfe", "<&>", "\u2028"} {
		want, _ := jsontext.AppendQuote(nil, s)
		if got := appendJSONString(nil, s); string(got) != string(want) {
			t.Errorf("appendJSONString(%q) = %s, want %s", s, got, want)
		}
	}
}
