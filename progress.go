package rewind

import "time"

// Progress is how far a long-running call has got, in the one shape the
// CLI's renderer draws: the indexer's ingest, a point-in-time restore's
// and an export's wait, and patch, verify and undo each report their own
// typed progress value (with the detail a caller may want) and turn it
// into a Progress with a Report method. The library reports; the caller
// renders (a bar on a terminal, plain lines in a log, nothing at all).
type Progress struct {
	// Phase names the work: "index", "restore", "export", "patch",
	// "verify", "undo".
	Phase string
	// Unit is what Done and Total count: "objects", "keys", "exports".
	Unit string
	// Done units so far; Total units in all, 0 when not known (yet).
	Done, Total int64
	// Elapsed is the time since the work started.
	Elapsed time.Duration
	// Counts are further tallies, in the order to show them, such as
	// {"written", 200} or {"events", 1200}.
	Counts []ProgressCount
	// Note is free text for people, shown after the counts: a state the
	// service reports ("CREATING"), or why the work is slow ("waiting on
	// DynamoDB for 12s (3 calls in flight)"). Empty when there is none.
	Note string
	// Rate is Done per second when the reporter knows it better than
	// Done/Elapsed (it counts something else, such as events); 0: derive
	// it. RateUnit names what Rate counts; empty: Unit.
	Rate     float64
	RateUnit string
	// Final is set on the last report of the work.
	Final bool
}

// ProgressCount is one named tally of a Progress.
type ProgressCount struct {
	Name string
	N    int64
}

// Fraction is Done/Total, or -1 when Total is not known.
func (p Progress) Fraction() float64 {
	if p.Total <= 0 {
		return -1
	}
	return float64(p.Done) / float64(p.Total)
}

// PerSecond is the rate of the work: Rate when the reporter set it, else
// Done per second of Elapsed (0 before any time has passed).
func (p Progress) PerSecond() float64 {
	if p.Rate > 0 {
		return p.Rate
	}
	if p.Elapsed <= 0 {
		return 0
	}
	return float64(p.Done) / p.Elapsed.Seconds()
}

// Remaining estimates the time left from the rate so far, or 0 when it
// cannot be told (Total unknown, nothing done yet, or done).
func (p Progress) Remaining() time.Duration {
	if p.Total <= 0 || p.Done <= 0 || p.Done >= p.Total || p.Elapsed <= 0 {
		return 0
	}
	perUnit := float64(p.Elapsed) / float64(p.Done)
	return time.Duration(perUnit * float64(p.Total-p.Done))
}
