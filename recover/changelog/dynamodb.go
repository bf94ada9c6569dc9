package changelog

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ddbrewind/rewind"
)

// WriteAPI is the part of a DynamoDB client Writer wraps.
type WriteAPI interface {
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
}

var _ WriteAPI = (*dynamodb.Client)(nil)

// Writer is a DynamoDB client that logs each successful PutItem,
// UpdateItem and DeleteItem through a Logger: the application swaps its
// client for one and every single-item write leaves its change line.
// BatchWriteItem, TransactWriteItems and PartiQL writes are not wrapped;
// log those with Logger.Change.
//
// The action comes from what DynamoDB returns, as the stream would tell
// it: a PutItem or DeleteItem that asked for no return values is sent
// with ReturnValues ALL_OLD (the output then carries the old item), and
// an empty old item makes the PutItem an INSERT and the DeleteItem no
// change at all (nothing logged: DeleteItem of a missing item succeeds and
// changes nothing). An UpdateItem that asked for no return values is sent
// with ALL_OLD too, whose empty answer means DynamoDB created the item
// (INSERT); one that asked for return values is logged MODIFY, which it
// may not be (an update can create an item), a difference that does not
// matter to the key set.
type Writer struct {
	API WriteAPI
	Log *Logger
	// Keys names each table's key attributes (partition key, then sort
	// key), which PutItem's item does not tell apart from the others.
	// A PutItem on a table not named here fails before it is sent.
	Keys map[string][]string
}

// PutItem implements WriteAPI.
func (w *Writer) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	table := aws.ToString(in.TableName)
	names, ok := w.Keys[table]
	if !ok {
		return nil, fmt.Errorf("changelog: PutItem on table %s: its key attributes are not in Writer.Keys", table)
	}
	key, err := rewind.KeyFromItemSchema(in.Item, names...)
	if err != nil {
		return nil, fmt.Errorf("changelog: PutItem on table %s: %w", table, err)
	}
	asked := in.ReturnValues
	if asked == "" || asked == types.ReturnValueNone {
		cp := *in
		cp.ReturnValues = types.ReturnValueAllOld
		in = &cp
	}
	out, err := w.API.PutItem(ctx, in, optFns...)
	if err != nil {
		return out, err
	}
	action := rewind.ActionModify
	if len(out.Attributes) == 0 {
		action = rewind.ActionInsert
	}
	if asked == "" || asked == types.ReturnValueNone {
		out.Attributes = nil
	}
	return out, w.Log.Change(ctx, table, key, action)
}

// UpdateItem implements WriteAPI.
func (w *Writer) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	table := aws.ToString(in.TableName)
	key, err := rewind.KeyFromItem(in.Key)
	if err != nil {
		return nil, fmt.Errorf("changelog: UpdateItem on table %s: %w", table, err)
	}
	asked := in.ReturnValues
	if asked == "" || asked == types.ReturnValueNone {
		cp := *in
		cp.ReturnValues = types.ReturnValueAllOld
		in = &cp
	}
	out, err := w.API.UpdateItem(ctx, in, optFns...)
	if err != nil {
		return out, err
	}
	action := rewind.ActionModify
	if asked == "" || asked == types.ReturnValueNone {
		if len(out.Attributes) == 0 {
			action = rewind.ActionInsert
		}
		out.Attributes = nil
	}
	return out, w.Log.Change(ctx, table, key, action)
}

// DeleteItem implements WriteAPI.
func (w *Writer) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	table := aws.ToString(in.TableName)
	key, err := rewind.KeyFromItem(in.Key)
	if err != nil {
		return nil, fmt.Errorf("changelog: DeleteItem on table %s: %w", table, err)
	}
	asked := in.ReturnValues
	if asked == "" || asked == types.ReturnValueNone {
		cp := *in
		cp.ReturnValues = types.ReturnValueAllOld
		in = &cp
	}
	out, err := w.API.DeleteItem(ctx, in, optFns...)
	if err != nil {
		return out, err
	}
	existed := len(out.Attributes) > 0
	if asked == "" || asked == types.ReturnValueNone {
		out.Attributes = nil
	}
	if !existed {
		return out, nil
	}
	return out, w.Log.Change(ctx, table, key, rewind.ActionRemove)
}
