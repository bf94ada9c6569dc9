package patch

import (
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
	// ActionUnknown does nothing: the source cannot prove the wanted state
	// (a StateSource said why). The key is listed and left for another
	// source, such as a table restore; the run is partial.
	ActionUnknown Action = "unknown"
)

// Step is the plan for one key.
type Step struct {
	// Line is the key's line in the key set (or the journal, for Undo).
	Line int
	Key  rewind.Key
	// Action is what the plan does.
	Action Action
	// Before is the production item when planned: the pre-image a write
	// is conditional on. Nil when absent.
	Before rewind.Item
	// After is the wanted item. Nil when the item should not exist.
	After rewind.Item
	// Unknown, when not empty, says why the source cannot tell the
	// wanted state (see StateSource); the step is ActionUnknown.
	Unknown string
	// Conflict, when not empty, says why the plan must not touch this key
	// without Force (Undo: the item is neither what the patch wrote nor
	// what it replaced).
	Conflict string

	// expect is, for Undo, the item the patch wrote; see Conflict.
	expect    rewind.Item
	hasExpect bool

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
	case s.After == nil:
		s.Action = ActionDelete
	case s.Before != nil && rewind.EqualItems(s.Before, s.After):
		s.Action = ActionUnchanged
	default:
		s.Action = ActionRestore
	}
	if s.hasExpect && s.Action != ActionUnchanged && s.Action != ActionAbsent &&
		!sameState(s.Before, s.expect) {
		s.Conflict = "production item is neither what the patch wrote nor what it replaced"
	}
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
//	{"line":7,"key":{"pk":{"S":"t1#42"}},"action":"restore","diff":[{"attr":"n","before":{"N":"1"},"after":{"N":"2"}}]}
//
// diff lists the differing top-level attributes with their values in
// DynamoDB JSON; before or after is left out where the attribute is
// absent. It is empty for unchanged and absent keys. conflict appears
// when the step is a plan-time conflict.
func (s *Step) AppendJSON(dst []byte) []byte {
	dst = s.appendHead(dst)
	dst = append(dst, `,"action":`...)
	dst = appendString(dst, string(s.Action))
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
