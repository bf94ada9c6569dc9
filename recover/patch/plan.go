package patch

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/ddbrewind/rewind"
	"github.com/go-json-experiment/json/jsontext"
)

// Action is what the plan does to one key.
type Action string

// The four actions of a plan.
const (
	// ActionRestore puts the wanted item (the production item is missing
	// or differs).
	ActionRestore Action = "restore"
	// ActionDelete deletes the production item: the wanted state has no
	// item (the bug created it).
	ActionDelete Action = "delete"
	// ActionUnchanged does nothing: production already holds the wanted
	// item (equal by rewind.EqualItems).
	ActionUnchanged Action = "unchanged"
	// ActionAbsent does nothing: the item exists in neither.
	ActionAbsent Action = "absent"
	// ActionExpired does nothing: production has no item and the wanted
	// item's TTL attribute (the production table's, DescribeTimeToLive)
	// holds a time already past. DynamoDB's TTL process deletes such an
	// item at any time ("typically within two days of expiration"), so
	// putting it back would undo a deletion the table itself made; most
	// often TTL deleted it between the restore point and now.
	ActionExpired Action = "expired"
	// ActionUnknown does nothing: the source cannot prove the wanted state
	// (the Source said why). The key is listed and left for another
	// source, such as a table restore; the run is partial.
	ActionUnknown Action = "unknown"
)

// Step is the plan for one key.
type Step struct {
	// Line is the key's line in the key set (or the journal, for Undo).
	Line int
	// Table is the production table's name, printed on plan lines so that
	// a plan is also a key set.
	Table string
	Key   rewind.Key
	// Action is what the plan does.
	Action Action
	// Before is the production item when planned: the pre-image a write
	// is conditional on. Nil when absent.
	Before rewind.Item
	// After is the wanted item. Nil when the item should not exist.
	After rewind.Item
	// Unknown, when not empty, says why the source cannot tell the
	// wanted state (see State.Unknown); the step is ActionUnknown.
	Unknown string
	// Conflict, when not empty, says why the plan must not touch this key
	// without Force (Undo: the item is neither what the patch wrote nor
	// what it replaced).
	Conflict string

	// wantExpired: After's TTL attribute holds a time already past (set
	// before classify; see ActionExpired).
	wantExpired bool

	// expect is, for Undo, the item the patch wrote; see Conflict.
	expect    rewind.Item
	hasExpect bool
	// planned is, when applying a reviewed plan, what the dry run saw.
	planned *plannedState

	// Set by the dispatcher before the chunk is registered: an outcome
	// is to come. Then owned by the collector.
	awaiting bool
	finished bool
	status   Status
}

// classify sets Action from Before and After.
func (s *Step) classify() {
	if s.Unknown != "" {
		s.Action = ActionUnknown
		return
	}
	switch {
	case s.After == nil && s.Before == nil:
		s.Action = ActionAbsent
	case s.Before == nil && s.wantExpired:
		s.Action = ActionExpired
	case s.After == nil:
		s.Action = ActionDelete
	case s.Before != nil && rewind.EqualItems(s.Before, s.After):
		s.Action = ActionUnchanged
	default:
		s.Action = ActionRestore
	}
	if s.hasExpect && s.Action != ActionUnchanged && s.Action != ActionAbsent && s.Action != ActionExpired &&
		!sameState(s.Before, s.expect) {
		s.Conflict = "production item is neither what the patch wrote nor what it replaced"
	}
	if p := s.planned; p != nil && s.writes() && s.Conflict == "" {
		switch {
		case rewind.ItemDigest(s.Before) != p.before:
			s.Conflict = "production item changed since " + p.by() + ": left alone; review it and make a new dry run"
		case rewind.ItemDigest(s.After) != p.after:
			s.Conflict = "the wanted state differs from what " + p.by() + " saw (the source changed since): left alone; make a new dry run"
		}
	}
}

// plannedState is what a dry run saw of one key: the digests
// (rewind.ItemDigest) of the production item and the wanted item.
type plannedState struct {
	before, after string
	// resumed: recorded by an interrupted run's intent, not a dry run.
	resumed bool
}

func (p *plannedState) by() string {
	if p.resumed {
		return "the interrupted run planned it"
	}
	return "the dry run (the reviewed plan)"
}

// parsePlanned reads the digests of a plan line (see AppendJSON).
func parsePlanned(line []byte) (*plannedState, error) {
	var l struct {
		Action string `json:"action"`
		Digest *struct {
			Before string `json:"before"`
			After  string `json:"after"`
		} `json:"digest"`
	}
	if err := json.Unmarshal(line, &l); err != nil {
		return nil, fmt.Errorf("not a plan line: %w", err)
	}
	if l.Digest == nil || l.Digest.Before == "" || l.Digest.After == "" {
		return nil, errors.New(`not a plan line: no "digest" of the states the dry run saw (is it a key set? pass it as --keys; or a plan from an older rewind? make a new dry run)`)
	}
	switch Action(l.Action) {
	case ActionRestore, ActionDelete, ActionUnchanged, ActionAbsent, ActionExpired, ActionUnknown:
	default:
		return nil, fmt.Errorf("plan line with unknown action %q", l.Action)
	}
	return &plannedState{before: l.Digest.Before, after: l.Digest.After}, nil
}

// writes reports whether the step needs a write.
func (s *Step) writes() bool { return s.Action == ActionRestore || s.Action == ActionDelete }

// sameState reports whether two item states are equal, absent equal to
// absent.
func sameState(a, b rewind.Item) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return rewind.EqualItems(a, b)
}

// AttrDiff is one top-level attribute that differs between the production
// item and the wanted item.
type AttrDiff struct {
	Attr   string
	Before types.AttributeValue // nil: not in the production item
	After  types.AttributeValue // nil: not in the wanted item
}

// Diff returns the attributes that differ, sorted by name.
func (s *Step) Diff() []AttrDiff {
	names := make([]string, 0, len(s.Before)+len(s.After))
	for n := range s.Before {
		names = append(names, n)
	}
	for n := range s.After {
		if _, ok := s.Before[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	var d []AttrDiff
	for _, n := range names {
		b, a := s.Before[n], s.After[n]
		if b != nil && a != nil && rewind.EqualAttributeValues(b, a) {
			continue
		}
		d = append(d, AttrDiff{Attr: n, Before: b, After: a})
	}
	return d
}

// AppendJSON appends the step as one plan line (no newline):
//
//	{"line":7,"table":"orders","key":{"pk":{"S":"t1#42"}},"action":"restore","digest":{"before":"9f2c…","after":"41d0…"},"diff":[{"attr":"n","before":{"N":"1"},"after":{"N":"2"}}]}
//
// line is the line of the input (key set or plan); table and key make the
// line a key-set line too. digest holds rewind.ItemDigest of the
// production item and of the wanted item as planned ("absent" for none):
// applying the plan (--plan) refuses to write a key where either changed
// since. diff lists the differing top-level attributes with their values
// in DynamoDB JSON; before or after is left out where the attribute is
// absent. It is empty for unchanged and absent keys. conflict appears
// when the step is a plan-time conflict, reason when its state is unknown.
func (s *Step) AppendJSON(dst []byte) []byte {
	dst = s.appendHead(dst)
	dst = append(dst, `,"action":`...)
	dst = appendString(dst, string(s.Action))
	dst = append(dst, `,"digest":{"before":"`...)
	dst = append(dst, rewind.ItemDigest(s.Before)...)
	dst = append(dst, `","after":"`...)
	dst = append(dst, rewind.ItemDigest(s.After)...)
	dst = append(dst, `"}`...)
	if s.Conflict != "" {
		dst = append(dst, `,"conflict":`...)
		dst = appendString(dst, s.Conflict)
	}
	if s.Unknown != "" {
		dst = append(dst, `,"reason":`...)
		dst = appendString(dst, s.Unknown)
	}
	dst = append(dst, `,"diff":[`...)
	for i, d := range s.Diff() {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"attr":`...)
		dst = appendString(dst, d.Attr)
		if d.Before != nil {
			dst = append(dst, `,"before":`...)
			dst = rewind.AppendAttributeValueJSON(dst, d.Before)
		}
		if d.After != nil {
			dst = append(dst, `,"after":`...)
			dst = rewind.AppendAttributeValueJSON(dst, d.After)
		}
		dst = append(dst, '}')
	}
	return append(dst, "]}"...)
}

func (s *Step) appendHead(dst []byte) []byte {
	dst = append(dst, `{"line":`...)
	dst = strconv.AppendInt(dst, int64(s.Line), 10)
	if s.Table != "" {
		dst = append(dst, `,"table":`...)
		dst = appendString(dst, s.Table)
	}
	dst = append(dst, `,"key":`...)
	return s.Key.AppendJSON(dst)
}

func appendString(dst []byte, s string) []byte {
	out, _ := jsontext.AppendQuote(dst, s)
	return out
}

// appendItemOrNull appends item as DynamoDB JSON, or null when nil.
func appendItemOrNull(dst []byte, item rewind.Item) []byte {
	if item == nil {
		return append(dst, "null"...)
	}
	return rewind.AppendItemJSON(dst, item)
}
