package patch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/ddbrewind/rewind"
)

// Limits of a condition expression (DynamoDB's constraints on expression
// parameters: 4 KB per expression string, 300 operators and functions per
// expression, 2 MB of substitution values in all). The budgets leave room
// below each.
const (
	maxExprBytes   = 3800
	maxExprCompare = 140 // each comparison costs "=" and "AND"
	maxExprValues  = 1 << 20
)

// condition is a ConditionExpression that holds while the production item
// is still state.
type condition struct {
	expr   string
	names  map[string]string
	values map[string]types.AttributeValue
	// complete is true when the expression checks every attribute of
	// state. It is false for items with too many attributes (or too large
	// values) for one expression: the write then relies on its ALL_OLD
	// return value to notice a change (see apply).
	complete bool
	// firstCovered is true when every attribute named in first (see
	// buildCondition) is checked.
	firstCovered bool
}

// buildCondition returns the condition "the item is still state": for an
// absent state, attribute_not_exists on the partition key; otherwise
// attribute_exists and, for each non-key attribute, "#a = :v" (or
// attribute_not_exists for a name in first that state lacks), as many as
// the expression limits allow: the names in first first, then the rest of
// state's in name order.
//
// "=" compares every type, lists and maps included; numbers compare by
// value and sets regardless of order, as rewind.EqualItems does. NULL is
// checked with attribute_type, the one type "=" is not documented for.
//
// The condition cannot say "and no other attribute": an attribute added
// since planning is caught by comparing the write's ALL_OLD return value
// with the planned pre-image instead.
func buildCondition(state rewind.Item, keyNames []string, first ...string) condition {
	c := condition{names: map[string]string{"#k": keyNames[0]}, complete: true, firstCovered: true}
	if state == nil {
		c.expr = "attribute_not_exists(#k)"
		return c
	}
	var b strings.Builder
	b.WriteString("attribute_exists(#k)")
	rest := make([]string, 0, len(state))
	for n := range state {
		if !slices.Contains(keyNames, n) && !slices.Contains(first, n) {
			rest = append(rest, n)
		}
	}
	slices.Sort(rest)
	c.values = map[string]types.AttributeValue{}
	valueBytes := 0
	for i, n := range append(slices.Clone(first), rest...) {
		av, present := state[n]
		ph, vph := "#a"+strconv.Itoa(i), ":v"+strconv.Itoa(i)
		_, isNull := av.(*types.AttributeValueMemberNULL)
		var term string
		switch {
		case !present:
			term = " AND attribute_not_exists(" + ph + ")"
		case isNull:
			term = " AND attribute_type(" + ph + ", :null)"
		default:
			term = " AND " + ph + " = " + vph
		}
		sz := 0
		if present && !isNull {
			sz = avSize(av)
		}
		if i >= maxExprCompare || b.Len()+len(term) > maxExprBytes || valueBytes+sz > maxExprValues {
			c.complete = false
			c.firstCovered = i >= len(first)
			break
		}
		b.WriteString(term)
		c.names[ph] = n
		switch {
		case !present:
		case isNull:
			c.values[":null"] = &types.AttributeValueMemberS{Value: "NULL"}
		default:
			c.values[vph] = av
			valueBytes += sz
		}
	}
	if len(c.values) == 0 {
		c.values = nil
	}
	c.expr = b.String()
	return c
}

// avSize approximates the size of a value as DynamoDB counts it.
func avSize(av types.AttributeValue) int {
	switch v := av.(type) {
	case *types.AttributeValueMemberS:
		return len(v.Value)
	case *types.AttributeValueMemberN:
		return len(v.Value)
	case *types.AttributeValueMemberB:
		return len(v.Value)
	case *types.AttributeValueMemberSS:
		n := 0
		for _, s := range v.Value {
			n += len(s)
		}
		return n
	case *types.AttributeValueMemberNS:
		n := 0
		for _, s := range v.Value {
			n += len(s)
		}
		return n
	case *types.AttributeValueMemberBS:
		n := 0
		for _, s := range v.Value {
			n += len(s)
		}
		return n
	case *types.AttributeValueMemberL:
		n := 3
		for _, e := range v.Value {
			n += 1 + avSize(e)
		}
		return n
	case *types.AttributeValueMemberM:
		n := 3
		for k, e := range v.Value {
			n += 1 + len(k) + avSize(e)
		}
		return n
	}
	return 1
}

// Status is the outcome of one key in an apply.
type Status string

// Outcomes of applying a step.
const (
	StatusWritten Status = "written"
	// StatusAlready: the production item already was the wanted one when
	// written: another run wrote it, or an earlier attempt of this write
	// landed and its response was lost. Not counted as written, so that
	// the counts of concurrent runs add up.
	StatusAlready  Status = "already"
	StatusConflict Status = "conflict"
	StatusFailed   Status = "failed"
	// StatusSkipped: not attempted because the run was interrupted.
	StatusSkipped Status = "skipped"
)

// result is the outcome of one step.
type result struct {
	step   *Step
	status Status
	// current is the production item that made a conflict, when known.
	current    rewind.Item
	hasCurrent bool
	err        error
}

// writer performs the conditional writes of an apply.
type writer struct {
	client   Client
	table    string
	keyNames []string // partition key first
	force    bool
	opts     []func(*dynamodb.Options)
	// journal, when set, receives a "replaced" record, fsynced, the moment
	// a write is found to have replaced something other than the planned
	// item, before anything else is done about it. Nil in a dry run.
	journal *journal
}

// apply writes one step and classifies the outcome.
//
// Without force, the write is conditional on the production item still
// being step.Before (see do). If the condition fails, the item changed
// since planning: a conflict, unless it already is step.After (StatusAlready:
// another run wrote it, or an earlier attempt of this same write landed and
// the SDK retried it).
//
// Every write asks for the replaced item (ALL_OLD). A restore over an
// existing item is an UpdateItem conditional on every planned attribute,
// which can succeed over a changed item only when attributes were added
// since planning; it keeps them, so nothing is lost, and the key is
// reported as a conflict. Where the write replaced the whole item (a put
// too large for one update expression, a delete, or a forced write) and
// what it replaced is not the planned item, that item is journaled and
// fsynced at once; then, without force, it is put back, conditional on the
// item still being what was just written, and the key reported as a
// conflict. A crash in between leaves the "replaced" record, and a resume
// finishes the revert before any new work (see repairPending).
func (w *writer) apply(ctx context.Context, s *Step) result {
	old, merged, err := w.do(ctx, s.Key, s.After, s.Before, !w.force)
	var ccf *types.ConditionalCheckFailedException
	switch {
	case errors.As(err, &ccf):
		cur := nilIfEmpty(ccf.Item)
		if sameState(cur, s.After) {
			return result{step: s, status: StatusAlready}
		}
		return result{step: s, status: StatusConflict, current: cur, hasCurrent: true,
			err: fmt.Errorf("key %s: production item changed since it was planned (use --force to overwrite)", s.Key)}
	case err != nil:
		return result{step: s, status: StatusFailed, err: fmt.Errorf("key %s: %s: %w", s.Key, s.Action, err)}
	}
	if sameState(old, s.Before) {
		return result{step: s, status: StatusWritten}
	}
	if sameState(old, s.After) {
		// An earlier attempt of this write landed and its response was
		// lost, or another run wrote the same item.
		return result{step: s, status: StatusAlready}
	}
	if merged {
		// Only the attributes the update named were written; what the
		// application changed of the others since planning is kept.
		changed, now := mergedState(s.After, s.Before, old)
		return result{step: s, status: StatusConflict, current: now, hasCurrent: true,
			err: fmt.Errorf("key %s: attribute(s) %s changed since it was planned; the planned attributes were written and those kept as the application left them: check the item", s.Key, strings.Join(changed, ", "))}
	}
	if err := w.recordReplaced(s, old); err != nil {
		return result{step: s, status: StatusFailed, current: old, hasCurrent: true,
			err: fmt.Errorf("key %s: the write replaced an item that changed since it was planned, and journaling that item failed (it is the \"current\" of this line): %w", s.Key, err)}
	}
	if w.force {
		return result{step: s, status: StatusWritten}
	}
	// The condition held but the item was not the planned one: put back
	// what was there, unless it changed yet again.
	if _, _, err := w.do(ctx, s.Key, old, s.After, true); err != nil {
		return result{step: s, status: StatusFailed, current: old, hasCurrent: true,
			err: fmt.Errorf("key %s: changed since it was planned, was overwritten, and putting it back failed (the replaced item is in the journal; --resume puts it back): %w", s.Key, err)}
	}
	return result{step: s, status: StatusConflict, current: old, hasCurrent: true,
		err: fmt.Errorf("key %s: production item changed since it was planned; the write was reverted (use --force to overwrite)", s.Key)}
}

// recordReplaced journals, fsynced, that the write of s replaced old.
func (w *writer) recordReplaced(s *Step, old rewind.Item) error {
	if w.journal == nil {
		return nil
	}
	if err := w.journal.append(appendReplaced(nil, s.Line, s.Key, old, s.After)); err != nil {
		return err
	}
	return w.journal.sync()
}

// mergedState returns the attributes in which old, the item an update
// replaced, differs from planned (the item it was planned against), sorted,
// and the item the update left: wrote with those attributes as in old.
func mergedState(wrote, planned, old rewind.Item) ([]string, rewind.Item) {
	var changed []string
	now := rewind.Item{}
	for n, v := range wrote {
		now[n] = v
	}
	for n, v := range old {
		if p, ok := planned[n]; !ok || !rewind.EqualAttributeValues(p, v) {
			changed = append(changed, n)
			now[n] = v
		}
	}
	for n := range planned {
		if _, ok := old[n]; !ok {
			changed = append(changed, n)
			delete(now, n)
		}
	}
	slices.Sort(changed)
	return changed, now
}

// do makes production hold want (put, or delete when want is nil), when
// conditional only if it still holds expect, and returns the replaced item.
//
// A conditional restore over an existing item is an UpdateItem that sets
// want's attributes and removes expect's attributes want lacks, conditional
// on every attribute of expect: an attribute added meanwhile survives it
// (merged is true). Where the expressions would exceed DynamoDB's limits it
// falls back to a PutItem conditional on as many attributes as fit.
func (w *writer) do(ctx context.Context, key rewind.Key, want, expect rewind.Item, conditional bool) (old rewind.Item, merged bool, err error) {
	var cond condition
	var set, remove []string
	if conditional && want != nil && expect != nil {
		set, remove = updateNames(want, expect, w.keyNames)
		cond = buildCondition(expect, w.keyNames, append(slices.Clone(set), remove...)...)
	} else if conditional {
		cond = buildCondition(expect, w.keyNames)
	}
	var expr *string
	if cond.expr != "" {
		expr = aws.String(cond.expr)
	}
	rvf := types.ReturnValuesOnConditionCheckFailureNone
	if conditional {
		rvf = types.ReturnValuesOnConditionCheckFailureAllOld
	}
	if want == nil {
		out, err := w.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
			TableName:                           aws.String(w.table),
			Key:                                 key.Item(),
			ConditionExpression:                 expr,
			ExpressionAttributeNames:            cond.names,
			ExpressionAttributeValues:           cond.values,
			ReturnValues:                        types.ReturnValueAllOld,
			ReturnValuesOnConditionCheckFailure: rvf,
		}, w.opts...)
		if err != nil {
			return nil, false, err
		}
		return nilIfEmpty(out.Attributes), false, nil
	}
	if conditional && expect != nil && cond.firstCovered {
		if upd, ok := buildUpdate(want, set, remove, &cond); ok {
			out, err := w.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
				TableName:                           aws.String(w.table),
				Key:                                 key.Item(),
				UpdateExpression:                    aws.String(upd),
				ConditionExpression:                 expr,
				ExpressionAttributeNames:            cond.names,
				ExpressionAttributeValues:           cond.values,
				ReturnValues:                        types.ReturnValueAllOld,
				ReturnValuesOnConditionCheckFailure: rvf,
			}, w.opts...)
			if err != nil {
				return nil, true, err
			}
			return nilIfEmpty(out.Attributes), true, nil
		}
	}
	out, err := w.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                           aws.String(w.table),
		Item:                                want,
		ConditionExpression:                 expr,
		ExpressionAttributeNames:            cond.names,
		ExpressionAttributeValues:           cond.values,
		ReturnValues:                        types.ReturnValueAllOld,
		ReturnValuesOnConditionCheckFailure: rvf,
	}, w.opts...)
	if err != nil {
		return nil, false, err
	}
	return nilIfEmpty(out.Attributes), false, nil
}

// updateNames returns the non-key attributes an update from expect to want
// sets (those want holds and expect lacks or holds another value of) and
// removes (those expect holds and want lacks), each sorted.
func updateNames(want, expect rewind.Item, keyNames []string) (set, remove []string) {
	for n, v := range want {
		if slices.Contains(keyNames, n) {
			continue
		}
		if e, ok := expect[n]; ok && rewind.EqualAttributeValues(e, v) {
			continue
		}
		set = append(set, n)
	}
	for n := range expect {
		if _, ok := want[n]; !ok && !slices.Contains(keyNames, n) {
			remove = append(remove, n)
		}
	}
	slices.Sort(set)
	slices.Sort(remove)
	return set, remove
}

// buildUpdate returns the UpdateExpression that SETs the attributes set to
// their values in want and REMOVEs the attributes remove. Its names and
// values are added to cond's. ok is false when there is nothing to update
// or the expression would exceed the limits (then cond is unchanged).
//
// Attributes it does not name are left as they are, so a change the
// application made since planning to one of them survives the write; the
// condition (buildCondition with set and remove first) guards every
// attribute it does name.
func buildUpdate(want rewind.Item, set, remove []string, cond *condition) (string, bool) {
	if len(set)+len(remove) == 0 || len(set)+len(remove) > maxExprCompare {
		return "", false
	}

	var b strings.Builder
	names := map[string]string{}
	values := map[string]types.AttributeValue{}
	valueBytes := 0
	for i, n := range set {
		if i == 0 {
			b.WriteString("SET ")
		} else {
			b.WriteString(", ")
		}
		ph, vph := "#u"+strconv.Itoa(i), ":u"+strconv.Itoa(i)
		b.WriteString(ph + " = " + vph)
		names[ph], values[vph] = n, want[n]
		valueBytes += avSize(want[n])
	}
	for i, n := range remove {
		if i == 0 {
			if len(set) > 0 {
				b.WriteByte(' ')
			}
			b.WriteString("REMOVE ")
		} else {
			b.WriteString(", ")
		}
		ph := "#r" + strconv.Itoa(i)
		b.WriteString(ph)
		names[ph] = n
	}
	for _, v := range cond.values {
		valueBytes += avSize(v)
	}
	if b.Len() > maxExprBytes || valueBytes > maxExprValues {
		return "", false
	}
	for k, v := range names {
		cond.names[k] = v
	}
	if cond.values == nil && len(values) > 0 {
		cond.values = map[string]types.AttributeValue{}
	}
	for k, v := range values {
		cond.values[k] = v
	}
	return b.String(), true
}

func nilIfEmpty(item rewind.Item) rewind.Item {
	if len(item) == 0 {
		return nil
	}
	return item
}
