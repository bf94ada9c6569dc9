package query_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer"
	"github.com/ddbrewind/rewind/indexer/indextest"
	"github.com/ddbrewind/rewind/query"
)

func TestStateAt(t *testing.T) {
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	item := func(k rewind.Key, v string) rewind.Item {
		it := k.Item()
		it["v"] = &types.AttributeValueMemberS{Value: v}
		return it
	}
	seq := 1000
	var evs []rewind.ChangeEvent
	add := func(k rewind.Key, a rewind.Action, m int, old, nw rewind.Item, view string) {
		seq++
		evs = append(evs, rewind.ChangeEvent{
			EventID: fmt.Sprintf("e%d", seq), Table: "orders", Tenant: "t", Action: a, Time: at(m),
			SequenceNumber: fmt.Sprint(seq), Keys: k, OldImage: rewind.ItemJSON(old), NewImage: rewind.ItemJSON(nw),
			StreamViewType: view,
		})
	}
	key := func(s string) rewind.Key { return rewind.Key{{Name: "pk", Type: 'S', Value: s}} }
	both := "NEW_AND_OLD_IMAGES"

	modified := key("modified") // v1 at 1, v2 at 5, v3 at 10
	add(modified, rewind.ActionInsert, 1, nil, item(modified, "v1"), both)
	add(modified, rewind.ActionModify, 5, item(modified, "v1"), item(modified, "v2"), both)
	add(modified, rewind.ActionModify, 10, item(modified, "v2"), item(modified, "v3"), both)
	removed := key("removed") // exists, removed at 4
	add(removed, rewind.ActionModify, 2, item(removed, "a"), item(removed, "b"), both)
	add(removed, rewind.ActionRemove, 4, item(removed, "b"), nil, both)
	junk := key("junk") // created at 8
	add(junk, rewind.ActionInsert, 8, nil, item(junk, "junk"), both)
	older := key("older") // first change at 9: its old image is the state before
	add(older, rewind.ActionModify, 9, item(older, "before"), item(older, "after"), both)
	keysOnly := key("keys-only")
	add(keysOnly, rewind.ActionModify, 9, nil, nil, "KEYS_ONLY")
	newOnly := key("new-only") // only new images: the state before its first change is unknowable
	add(newOnly, rewind.ActionModify, 9, nil, item(newOnly, "n"), "NEW_IMAGE")
	sameTime := key("same-time") // two changes stamped at minute 6: both count as "at or before 6"
	add(sameTime, rewind.ActionModify, 6, item(sameTime, "s0"), item(sameTime, "s1"), both)
	add(sameTime, rewind.ActionModify, 6, item(sameTime, "s1"), item(sameTime, "s2"), both)

	logRemoved := key("log-removed") // captured at 2, then a change-log REMOVE at 4
	add(logRemoved, rewind.ActionModify, 2, item(logRemoved, "a"), item(logRemoved, "b"), both)
	add(logRemoved, rewind.ActionRemove, 4, nil, nil, rewind.StreamViewChangeLog)
	logInserted := key("log-inserted") // a change-log INSERT at 8
	add(logInserted, rewind.ActionInsert, 8, nil, nil, rewind.StreamViewChangeLog)

	exported := key("exported") // from an export of [minute 3, minute 20): old image is the state at minute 3
	exportEv := func(m int) rewind.ChangeEvent {
		seq++
		return rewind.ChangeEvent{
			EventID: fmt.Sprintf("x%d", seq), Table: "orders", Tenant: "t", Action: rewind.ActionModify, Time: at(m),
			Export: rewind.ExportWindow{ID: "0123-abc", From: at(3), To: at(20)}, Keys: exported,
			OldImage: rewind.ItemJSON(item(exported, "at-start")), NewImage: rewind.ItemJSON(item(exported, "at-end")),
		}
	}
	evs = append(evs, exportEv(12))

	dir := t.TempDir()
	if err := indextest.WriteDir(dir, indextest.Objects("capture", evs, 4)); err != nil {
		t.Fatal(err)
	}
	st, err := indexer.Open(t.TempDir(), indexer.Options{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	src, _ := indexer.NewDirSource(dir)
	if _, err := st.Ingest(context.Background(), src, indexer.Config{Log: quiet}); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name  string
		key   rewind.Key
		at    time.Time
		known bool
		want  string // "v" of the item, "" for none
	}{
		{"before the first change of an insert: absent", modified, at(0), true, ""},
		{"exactly at a change: its new image", modified, at(5), true, "v2"},
		{"between changes: the newest before", modified, at(7), true, "v2"},
		{"after the last change", modified, at(11), true, "v3"},
		{"after a remove: absent", removed, at(4), true, ""},
		{"before a remove: the image before", removed, at(3), true, "b"},
		{"before the first change, a modify: its old image", removed, at(1), true, "a"},
		{"junk before it was created: absent", junk, at(7), true, ""},
		{"first change after, a modify: its old image", older, at(8), true, "before"},
		{"keys-only capture: unknown", keysOnly, at(10), false, ""},
		{"keys-only before: unknown", keysOnly, at(8), false, ""},
		{"new image only, before its first change: unknown", newOnly, at(8), false, ""},
		{"new image only, after: known", newOnly, at(9), true, "n"},
		{"equal times: the later sequence number wins", sameTime, at(6), true, "s2"},
		{"no indexed change: unknown", key("never"), at(6), false, ""},
		{"change log: a REMOVE before proves nothing", logRemoved, at(5), false, ""},
		{"change log: a captured change before it still counts", logRemoved, at(3), true, "b"},
		{"change log: an INSERT after proves nothing", logInserted, at(7), false, ""},
		{"change log: after its INSERT: unknown", logInserted, at(9), false, ""},
		{"export: at its start, the old image", exported, at(3), true, "at-start"},
		{"export: inside its window before the write: unknown", exported, at(7), false, ""},
		{"export: before its start: unknown", exported, at(1), false, ""},
		{"export: after the write: the new image", exported, at(12), true, "at-end"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := query.StateAt(context.Background(), st, "orders", tc.key, tc.at)
			if err != nil {
				t.Fatal(err)
			}
			if s.Known != tc.known {
				t.Fatalf("known %v (%s), want %v", s.Known, s.Reason, tc.known)
			}
			if !s.Known {
				if s.Reason == "" {
					t.Fatal("unknown state without a reason")
				}
				return
			}
			got := ""
			if s.Item != nil {
				got = s.Item["v"].(*types.AttributeValueMemberS).Value
			}
			if got != tc.want {
				t.Fatalf("state %q (from %s), want %q", got, s.From, tc.want)
			}
		})
	}
}
