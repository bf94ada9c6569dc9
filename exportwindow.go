package rewind

import (
	"time"
)

// ExportWindow says which DynamoDB incremental export an event was read
// from. An export holds one line per item changed in its window
// [From, To), whose old image is the item's state at From (not just
// before the event's time) and whose new image is its state at To.
// Whoever rebuilds an item's state at a time T from such an event needs
// the window: the old image proves the state at T only when T is From.
//
// The zero ExportWindow is that of an event read from a stream.
type ExportWindow struct {
	// ID is the export's id, the last part of its ARN
	// (01795172412345-a1b2c3d4).
	ID string
	// From and To are the window's ends, in UTC.
	From, To time.Time
}

// IsZero reports whether w is the zero window: the event was not read
// from an export.
func (w ExportWindow) IsZero() bool { return w.ID == "" && w.From.IsZero() && w.To.IsZero() }

// String returns "export <id> [<from>, <to>)", times in RFC 3339, for
// messages.
func (w ExportWindow) String() string {
	if w.IsZero() {
		return "no export"
	}
	return "export " + w.ID + " [" + w.From.UTC().Format(time.RFC3339Nano) + ", " + w.To.UTC().Format(time.RFC3339Nano) + ")"
}
