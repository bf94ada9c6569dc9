package query

import (
	"context"
	"fmt"
	"time"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer"
)

// State is an item's state at a point in time, rebuilt from its history.
type State struct {
	// Item is the item at that time; nil when it did not exist.
	Item rewind.Item
	// Known is false when the history cannot prove the state; Reason
	// then says why.
	Known  bool
	Reason string
	// From names the change the state was read from, for messages.
	From string
}

// StateAt rebuilds one item's state at time at from its indexed changes:
//
//   - the newest change at or before at: its new image, or no item if it
//     was a REMOVE;
//   - with no change at or before at, the first change after it: its old
//     image, or no item if it was an INSERT.
//
// A state the history cannot prove is never guessed: the newest change
// before at carries no new image (or the first after it no old image), as
// with a KEYS_ONLY stream or a capture that kept one image only; the first
// change after at comes from an incremental export that does not start at
// at (its old image is the state at the export's start); or the item has
// no indexed change at all. State.Known is then false.
//
// An event of an application's change log (rewind.StreamViewChangeLog)
// proves nothing either, whatever its action: it has no images, and its
// time is the application's clock after its write returned, so another
// process's write may have landed after a REMOVE it logged earlier (or
// before an INSERT it logged later).
//
// Events are ordered by time, then sequence number, as the index keeps
// them; "at or before" includes events stamped exactly at. Stream times are
// those of the capture: DynamoDB rounds them to the second (DynamoDB Local
// to the minute), so pick at between the last good write and the first bad
// one at that resolution.
func StateAt(ctx context.Context, st *indexer.Store, table string, key rewind.Key, at time.Time) (State, error) {
	micros := at.UnixMicro()
	before := indexer.Window{To: micros + 1, HasTo: true}
	last, err := edgeEvent(ctx, st, table, key, before, true)
	if err != nil {
		return State{}, err
	}
	if last != nil {
		from := describe(last)
		if last.StreamViewType == rewind.StreamViewChangeLog {
			return State{Reason: fmt.Sprintf("its last change at or before %s (%s) comes from the application's change log, %s", at.UTC().Format(time.RFC3339Nano), from, changeLogReason), From: from}, nil
		}
		if last.Action == rewind.ActionRemove {
			return State{Known: true, From: from}, nil
		}
		if last.NewImage == nil {
			return State{Reason: fmt.Sprintf("its last change at or before %s (%s) carries no new image", at.UTC().Format(time.RFC3339Nano), from), From: from}, nil
		}
		item, err := last.NewImage.Item()
		if err != nil {
			return State{}, fmt.Errorf("state of %s %s: new image of %s: %w", table, key, from, err)
		}
		return State{Item: item, Known: true, From: from}, nil
	}
	after := indexer.Window{From: micros + 1, HasFrom: true}
	first, err := edgeEvent(ctx, st, table, key, after, false)
	if err != nil {
		return State{}, err
	}
	if first == nil {
		return State{Reason: "no change of this item is indexed"}, nil
	}
	from := describe(first)
	if first.StreamViewType == rewind.StreamViewChangeLog {
		return State{Reason: fmt.Sprintf("its first change after %s (%s) comes from the application's change log, %s", at.UTC().Format(time.RFC3339Nano), from, changeLogReason), From: from}, nil
	}
	if w := first.Export; !w.IsZero() && w.From.UnixMicro() != micros {
		start := w.From
		// An export's line holds the item's state at the export's start,
		// not just before its write: it proves the state at that start
		// only.
		return State{Reason: fmt.Sprintf("its first change after %s comes from an incremental export starting at %s, whose old image is the state at that start, not at %s",
			at.UTC().Format(time.RFC3339Nano), start.Format(time.RFC3339Nano), at.UTC().Format(time.RFC3339Nano)), From: from}, nil
	}
	if first.Action == rewind.ActionInsert {
		return State{Known: true, From: from}, nil
	}
	if first.OldImage == nil {
		return State{Reason: fmt.Sprintf("no change at or before %s, and the first after it (%s) carries no old image", at.UTC().Format(time.RFC3339Nano), from), From: from}, nil
	}
	item, err := first.OldImage.Item()
	if err != nil {
		return State{}, fmt.Errorf("state of %s %s: old image of %s: %w", table, key, from, err)
	}
	return State{Item: item, Known: true, From: from}, nil
}

// changeLogReason ends the reason of a state next to a change-log event.
const changeLogReason = "which carries keys and actions only, stamped by the application's clock: patch this item from a restored table"

// edgeEvent returns the full event of the last (or first) change of an item
// in a window, or nil when there is none. The index is not walked: one
// seek to the window's end (or start) finds the entry, and only that one
// event's images are read.
func edgeEvent(ctx context.Context, st *indexer.Store, table string, key rewind.Key, w indexer.Window, last bool) (*rewind.ChangeEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	it, err := st.ScanItem(table, key, w)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	found := false
	if last {
		found = it.Prev()
	} else {
		found = it.Next()
	}
	if !found {
		return nil, it.Err()
	}
	ev, err := st.Event(it.Entry())
	if err != nil {
		return nil, fmt.Errorf("history of %s %s: %w", table, key, err)
	}
	return &ev, nil
}

func describe(ev *rewind.ChangeEvent) string {
	return fmt.Sprintf("%s at %s, event %s", ev.Action, ev.Time.UTC().Format(time.RFC3339Nano), ev.EventID)
}
