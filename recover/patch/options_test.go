package patch

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// TestDefaultOptions: the defaults are the library's, one set for patch,
// verify and undo, and a zero Options means them.
func TestDefaultOptions(t *testing.T) {
	o := DefaultOptions()
	if o.Rate != AutoRate || o.Concurrency != DefaultConcurrency || o.Readers != 4 || o.BatchSize != 100 || o.MaxAttempts != 10 ||
		o.WriteTimeout != 10*time.Second || o.ProgressEvery != 10*time.Second || o.Out == nil || o.Log == nil {
		t.Fatalf("DefaultOptions() = %+v", o)
	}
	if err := o.Validate(); err != nil {
		t.Fatalf("the defaults do not validate: %v", err)
	}
	var c Config
	c.EnsureDefaults()
	if c.Rate != AutoRate || c.Shard != (Shard{0, 1}) {
		t.Errorf("a zero Config defaults to rate %g, shard %s; want AutoRate, 0/1", c.Rate, c.Shard)
	}
	var u UndoConfig
	u.EnsureDefaults()
	if u.Options.Rate != AutoRate || u.Concurrency != DefaultConcurrency {
		t.Errorf("a zero UndoConfig defaults to rate %g, concurrency %d", u.Rate, u.Concurrency)
	}
	if o := (Options{Rate: 250}); func() bool { o.EnsureDefaults(); return o.Rate != 250 }() {
		t.Errorf("EnsureDefaults replaced a Rate of 250")
	}
}

// TestValidateNamesTheField: every bad field is named, in a *ConfigError.
func TestValidateNamesTheField(t *testing.T) {
	good := func() Config {
		c := Config{Keys: "k", From: "a", To: "b"}
		c.EnsureDefaults()
		return c
	}
	for _, tc := range []struct {
		field string
		edit  func(*Config)
	}{
		{"To", func(c *Config) { c.To = "" }},
		{"From", func(c *Config) { c.From = "" }},
		{"From", func(c *Config) { c.From = "b" }},
		{"Keys", func(c *Config) { c.Keys = "" }},
		{"Plan", func(c *Config) { c.Plan = "p" }},
		{"Limit", func(c *Config) { c.Limit = -1 }},
		{"Resume", func(c *Config) { c.Resume = true }},
		{"Shard", func(c *Config) { c.Shard = Shard{2, 2} }},
		{"Rate", func(c *Config) { c.Rate = -2 }},
		{"Rate", func(c *Config) { c.Rate = math.NaN() }},
		{"Concurrency", func(c *Config) { c.Concurrency = 0 }},
		{"Readers", func(c *Config) { c.Readers = -3 }},
		{"BatchSize", func(c *Config) { c.BatchSize = 101 }},
		{"MaxAttempts", func(c *Config) { c.MaxAttempts = 0 }},
		{"WriteTimeout", func(c *Config) { c.WriteTimeout = -time.Second }},
		{"ProgressEvery", func(c *Config) { c.ProgressEvery = -time.Second }},
	} {
		c := good()
		tc.edit(&c)
		err := c.Validate()
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: Validate() = %v; want a ConfigError naming %s", tc.field, err, tc.field)
		}
	}
	if c := good(); c.Validate() != nil {
		t.Errorf("a good config: %v", c.Validate())
	}
	u := UndoConfig{To: "b"}
	u.EnsureDefaults()
	var ce *ConfigError
	if err := u.Validate(); !errors.As(err, &ce) || ce.Field != "Journal" {
		t.Errorf("undo without a journal: %v", err)
	}
}

// TestSummaryOutcome: the summary says how the run ended, whatever the
// tool, so that a caller maps it to an exit code in one place.
func TestSummaryOutcome(t *testing.T) {
	for _, tc := range []struct {
		name string
		sum  Summary
		want Outcome
	}{
		{"patch applied", Summary{Tool: "patch", Counts: Counts{Keys: 3, Written: 3}}, Done},
		{"patch conflicts", Summary{Tool: "patch", Counts: Counts{Keys: 3, Conflicts: 1}}, Partial},
		{"verify differs", Summary{Tool: "verify", Counts: Counts{Keys: 3, Restore: 1}}, Partial},
		{"verify matches", Summary{Tool: "verify", Counts: Counts{Keys: 3, Unchanged: 3}}, Done},
		{"undo skipped damage", Summary{Tool: "undo", Skipped: 2}, Partial},
		{"failed", Summary{Tool: "undo", Err: errors.New("x"), Counts: Counts{Failures: 1}}, Failed},
		{"interrupted", Summary{Tool: "patch", Interrupted: true, Err: errors.New("x")}, Interrupted},
	} {
		s := tc.sum
		if got := s.Outcome(); got != tc.want {
			t.Errorf("%s: Outcome() = %d, want %d", tc.name, got, tc.want)
		}
		if (s.Shortfall() != "") != (tc.want == Partial) {
			t.Errorf("%s: Shortfall() = %q", tc.name, s.Shortfall())
		}
	}
}
