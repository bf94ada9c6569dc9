package changelog

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ddbrewind/rewind"
)

func TestChangeRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	at := time.Date(2026, 12, 2, 0, 10, 11, 123456789, time.UTC)
	l, err := New(Config{Handler: slog.NewJSONHandler(&buf, nil), Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	item := rewind.Item{"pk": &types.AttributeValueMemberS{Value: "t1"}, "sk": &types.AttributeValueMemberS{Value: "ORDER#42"}, "n": &types.AttributeValueMemberN{Value: "1"}}
	if err := l.ChangeItem(context.Background(), "orders", item, rewind.ActionModify, "pk", "sk"); err != nil {
		t.Fatal(err)
	}
	out := strings.TrimSpace(buf.String())
	if strings.Count(out, "\n") != 0 {
		t.Fatalf("want one line, got %q", out)
	}
	if !strings.Contains(out, `"key":{"pk":{"S":"t1"},"sk":{"S":"ORDER#42"}}`) || !strings.Contains(out, `"operation":"itemChange"`) {
		t.Fatalf("line %s: want the key as DynamoDB JSON and the operation", out)
	}
	rec, ok, err := Parse([]byte(out))
	if !ok || err != nil {
		t.Fatalf("Parse: ok %v err %v", ok, err)
	}
	key, _ := rewind.KeyFromItemSchema(item, "pk", "sk")
	if rec.Table != "orders" || !rec.Key.Equal(key) || rec.Tenant != "t1" || rec.Action != rewind.ActionModify || !rec.Time.Equal(at) || len(rec.ID) != 32 {
		t.Fatalf("record %+v", rec)
	}
	ev := rec.Event()
	if ev.StreamViewType != rewind.StreamViewChangeLog || ev.NewImage != nil || ev.OldImage != nil || ev.EventID != "changelog:"+rec.ID {
		t.Fatalf("event %+v", ev)
	}
	// A runtime prefix before the object is allowed.
	if _, ok, err := Parse([]byte("2026-12-02T00:10:11Z 1234-abcd INFO " + out)); !ok || err != nil {
		t.Fatalf("prefixed line: ok %v err %v", ok, err)
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, msg string
		ok        bool
		err       string
	}{
		{"plain text", "START RequestId: 1 Version: $LATEST", false, ""},
		{"other json", `{"msg":"hello","operation":"getItem"}`, false, ""},
		{"mentions the term", `{"msg":"itemChange happened"}`, false, ""},
		{"broken json", `{"operation":"itemChange","id":"x"`, true, "not a valid JSON"},
		{"no id", `{"time":"2026-12-02T00:00:00Z","operation":"itemChange","table":"t","key":{"pk":{"S":"a"}},"tenant":"a","action":"INSERT"}`, true, `no "id"`},
		{"bad action", `{"time":"2026-12-02T00:00:00Z","operation":"itemChange","id":"1","table":"t","key":{"pk":{"S":"a"}},"tenant":"a","action":"PUT"}`, true, `"action"`},
		{"bad key", `{"time":"2026-12-02T00:00:00Z","operation":"itemChange","id":"1","table":"t","key":{"pk":"a"},"tenant":"a","action":"INSERT"}`, true, `"key"`},
		{"bad time", `{"time":"yesterday","operation":"itemChange","id":"1","table":"t","key":{"pk":{"S":"a"}},"tenant":"a","action":"INSERT"}`, true, `"time"`},
		{"good", `{"time":"2026-12-02T00:00:00Z","operation":"itemChange","id":"1","table":"t","key":{"pk":{"S":"a"}},"tenant":"a","action":"REMOVE"}`, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ok, err := Parse([]byte(tc.msg))
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v (err %v)", ok, tc.ok, err)
			}
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("err = %v, want %q", err, tc.err)
			}
		})
	}
}

func TestChangeRejects(t *testing.T) {
	l, _ := New(Config{Handler: slog.NewJSONHandler(&bytes.Buffer{}, nil)})
	key := rewind.Key{{Name: "pk", Type: 'S', Value: "a"}}
	if err := l.Change(context.Background(), "t", key, "PUT"); err == nil {
		t.Fatal("want an error for action PUT")
	}
	if err := l.Change(context.Background(), "", key, rewind.ActionInsert); err == nil {
		t.Fatal("want an error for an empty table")
	}
}
