package changelog

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ddbrewind/rewind"
)

// memTable is a one-table DynamoDB stand-in keyed by pk, honouring
// ReturnValues ALL_OLD, enough to check which action Writer logs.
type memTable struct {
	items map[string]rewind.Item
	seen  []types.ReturnValue
}

func (m *memTable) old(pk string, rv types.ReturnValue) rewind.Item {
	m.seen = append(m.seen, rv)
	if rv == types.ReturnValueAllOld {
		return m.items[pk]
	}
	return nil
}

func pkOf(it rewind.Item) string { return it["pk"].(*types.AttributeValueMemberS).Value }

func (m *memTable) PutItem(_ context.Context, in *dynamodb.PutItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	out := &dynamodb.PutItemOutput{Attributes: m.old(pkOf(in.Item), in.ReturnValues)}
	m.items[pkOf(in.Item)] = in.Item
	return out, nil
}

func (m *memTable) UpdateItem(_ context.Context, in *dynamodb.UpdateItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	out := &dynamodb.UpdateItemOutput{Attributes: m.old(pkOf(in.Key), in.ReturnValues)}
	m.items[pkOf(in.Key)] = in.Key
	return out, nil
}

func (m *memTable) DeleteItem(_ context.Context, in *dynamodb.DeleteItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	out := &dynamodb.DeleteItemOutput{Attributes: m.old(pkOf(in.Key), in.ReturnValues)}
	delete(m.items, pkOf(in.Key))
	return out, nil
}

func TestWriterActions(t *testing.T) {
	ctx := context.Background()
	var buf bytes.Buffer
	l, _ := New(Config{Handler: slog.NewJSONHandler(&buf, nil)})
	m := &memTable{items: map[string]rewind.Item{}}
	w := &Writer{API: m, Log: l, Keys: map[string][]string{"t": {"pk"}}}
	k := func(v string) rewind.Item { return rewind.Item{"pk": &types.AttributeValueMemberS{Value: v}} }
	tbl := aws.String("t")
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(w.PutItem(ctx, &dynamodb.PutItemInput{TableName: tbl, Item: k("a")}))      // INSERT
	must(w.PutItem(ctx, &dynamodb.PutItemInput{TableName: tbl, Item: k("a")}))      // MODIFY
	must(w.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: tbl, Key: k("b")})) // INSERT
	must(w.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: tbl, Key: k("b")})) // MODIFY
	must(w.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: tbl, Key: k("b")})) // REMOVE
	must(w.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: tbl, Key: k("b")})) // nothing: no item
	out, err := w.PutItem(ctx, &dynamodb.PutItemInput{TableName: tbl, Item: k("a")})
	if err != nil || out.Attributes != nil {
		t.Fatalf("PutItem that asked for no return values got %v, %v", out.Attributes, err)
	}
	var got []string
	for _, ln := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		rec, ok, err := Parse([]byte(ln))
		if !ok || err != nil {
			t.Fatalf("line %s: %v", ln, err)
		}
		got = append(got, rec.Key.String()+" "+string(rec.Action))
	}
	want := []string{`{"pk":{"S":"a"}} INSERT`, `{"pk":{"S":"a"}} MODIFY`, `{"pk":{"S":"b"}} INSERT`, `{"pk":{"S":"b"}} MODIFY`, `{"pk":{"S":"b"}} REMOVE`, `{"pk":{"S":"a"}} MODIFY`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("logged:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := w.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("other"), Item: k("x")}); err == nil || !strings.Contains(err.Error(), "Writer.Keys") {
		t.Fatalf("PutItem on an unknown table: %v", err)
	}
}
