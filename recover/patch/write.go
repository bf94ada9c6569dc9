package patch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

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
}

// buildCondition returns the condition "the item is still state": for an
// absent state, attribute_not_exists on the partition key; otherwise
// attribute_exists and "#a = :v" for every non-key attribute, as many as
// the expression limits allow, in name order.
//
// "=" compares every type, lists and maps included; numbers compare by
// value and sets regardless of order, as rewind.EqualItems does. NULL is
// checked with attribute_type, the one type "=" is not documented for.
//
// The condition cannot say "and no other attribute": an attribute added
// since planning is caught by comparing the write's ALL_OLD return value
// with the planned pre-image instead.
func buildCondition(state rewind.Item, keyNames []string) condition {
	c := condition{names: map[string]string{"#k": keyNames[0]}, complete: true}
	if state == nil {
		c.expr = "attribute_not_exists(#k)"
		return c
	}
	var b strings.Builder
	b.WriteString("attribute_exists(#k)")
	names := make([]string, 0, len(state))
	for n := range state {
		if !slices.Contains(keyNames, n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	c.values = map[string]types.AttributeValue{}
	valueBytes := 0
	for i, n := range names {
		av := state[n]
		sz := avSize(av)
		ph, vph := "#a"+strconv.Itoa(i), ":v"+strconv.Itoa(i)
		var term string
		if _, isNull := av.(*types.AttributeValueMemberNULL); isNull {
			term = " AND attribute_type(" + ph + ", :null)"
		} else {
			term = " AND " + ph + " = " + vph
		}
		if i >= maxExprCompare || b.Len()+len(term) > maxExprBytes || valueBytes+sz > maxExprValues {
			c.complete = false
			break
		}
		b.WriteString(term)
		c.names[ph] = n
		if _, isNull := av.(*types.AttributeValueMemberNULL); isNull {
			c.values[":null"] = &types.AttributeValueMemberS{Value: "NULL"}
		} else {
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
	StatusWritten  Status = "written"
	StatusConflict Status = "conflict"
	StatusFailed   Status = "failed"
	// StatusSkipped: not attempted because the run was interrupted.
	StatusSkipped Status = "skipped"
)

// result is the outcome of one step.
type result struct {
	step   *Step
	status Status
	// old is the item the write actually replaced, when it is known and
	// differs from step.Before (a forced write over a changed item).
	old    rewind.Item
	hasOld bool
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
}

// apply writes one step and classifies the outcome.
//
// Without force, the write is conditional on the production item still
// being step.Before. If the condition fails, the item changed since
// planning: a conflict, unless the item already is step.After, which
// happens when an earlier attempt of this same write succeeded but its
// response was lost (the SDK then retried it); that is a success.
//
// Every write asks for the replaced item (ALL_OLD). If it is step.After, an
// earlier attempt landed: a success. If it differs from step.Before
// although the condition held (an attribute the condition could
// not cover), the write is reverted at once, conditional on the item still
// being what was just written, and reported as a conflict.
func (w *writer) apply(ctx context.Context, s *Step) result {
	old, err := w.do(ctx, s.Key, s.After, s.Before, !w.force)
	var ccf *types.ConditionalCheckFailedException
	switch {
	case errors.As(err, &ccf):
		cur := nilIfEmpty(ccf.Item)
		if sameState(cur, s.After) {
			return result{step: s, status: StatusWritten}
		}
		return result{step: s, status: StatusConflict, current: cur, hasCurrent: true,
			err: fmt.Errorf("patch: key %s: target item changed since plan (use --force to overwrite)", s.Key)}
	case err != nil:
		return result{step: s, status: StatusFailed, err: fmt.Errorf("patch: key %s: %s: %w", s.Key, s.Action, err)}
	}
	if sameState(old, s.Before) {
		return result{step: s, status: StatusWritten}
	}
	if sameState(old, s.After) {
		// An earlier attempt of this write landed and its response was
		// lost; the condition could not tell, because the planned item
		// lacked an attribute the written one has.
		return result{step: s, status: StatusWritten}
	}
	if w.force {
		return result{step: s, status: StatusWritten, old: old, hasOld: true}
	}
	// The condition held but the item was not the planned one: put back
	// what was there, unless it changed yet again.
	if _, err := w.do(ctx, s.Key, old, s.After, true); err != nil {
		return result{step: s, status: StatusFailed, old: old, hasOld: true,
			err: fmt.Errorf("patch: key %s: target item changed since plan, was overwritten, and putting it back failed (its replaced value is in the journal): %w", s.Key, err)}
	}
	return result{step: s, status: StatusConflict, current: old, hasCurrent: true,
		err: fmt.Errorf("patch: key %s: target item changed since plan; the write was reverted (use --force to overwrite)", s.Key)}
}

// do makes production hold want (put, or delete when want is nil), when
// conditional only if it still holds expect, and returns the replaced item.
func (w *writer) do(ctx context.Context, key rewind.Key, want, expect rewind.Item, conditional bool) (rewind.Item, error) {
	var cond condition
	if conditional {
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
			return nil, err
		}
		return nilIfEmpty(out.Attributes), nil
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
		return nil, err
	}
	return nilIfEmpty(out.Attributes), nil
}

func nilIfEmpty(item rewind.Item) rewind.Item {
	if len(item) == 0 {
		return nil
	}
	return item
}

// writeTimeout is how long a write already started is let finish after an
// interrupt: long enough for a healthy endpoint to answer, short enough
// that Ctrl-C acts within seconds. A write cut by it is left for a resume
// to plan again.
const writeTimeout = 10 * time.Second
