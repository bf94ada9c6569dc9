// Package diff compares two DynamoDB tables item by item: the runbook's
// last resort when the capture cannot say which items a bad deploy
// touched. Diff scans a restored table (From) and production (To) with
// parallel segmented Scans, matches their items by canonical key
// (rewind.Key.Encode) with memory bounded by spilling sorted runs to disk,
// and calls back once per item that differs, in canonical key order: the
// order of a key set, so the CLI writes the callbacks as one.
//
// What a difference means for a patch from From into To:
//
//	Changed    in both, different: a patch restores it   (action MODIFY)
//	OnlyInTo   created after the restore point: deleted  (action INSERT)
//	OnlyInFrom deleted in production since: put back     (action REMOVE)
//
// The actions are the stream event names production saw, the vocabulary
// of rewind.KeySetEntry.Actions. A diff cannot tell a bad write from a
// good one: every write made after the restore point differs, and the
// summary says so.
package diff
