package patch

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/recover/patch/patchtest"
)

// partlyKnown wraps the restored table as a Source that cannot tell
// every third key's state, as a history with gaps would.
type partlyKnown struct{ t *Table }

func (p partlyKnown) States(ctx context.Context, keys []rewind.Key) ([]State, error) {
	items, err := p.t.Get(ctx, keys)
	if err != nil {
		return nil, err
	}
	out := make([]State, len(keys))
	for i, k := range keys {
		if unknownKey(k) {
			out[i] = State{Unknown: "no change of this item is indexed"}
			continue
		}
		out[i] = State{Item: items[i]}
	}
	return out, nil
}

func unknownKey(k rewind.Key) bool { return len(k.Encode())%3 == 0 }

func TestUnknownStatesAreListedNeverGuessed(t *testing.T) {
	o := defaultOpts()
	o.BigItem, o.WideItem = false, false
	env, s, keys := scenario(t, o)
	c := env.DynamoDB
	ctx := t.Context()
	src := partlyKnown{t: NewTable(c, "orders-restored")}
	unknown := 0
	for _, k := range s.Keys {
		key, _ := rewind.KeyFromItem(k)
		if unknownKey(key) {
			unknown++
		}
	}
	if unknown == 0 || unknown == len(s.Keys) {
		t.Fatalf("%d of %d keys unknown: the test needs some of each", unknown, len(s.Keys))
	}

	// Dry run: unknown keys are planned as unknown, with the reason.
	var out bytes.Buffer
	sum, err := Patch(ctx, c, Config{Keys: keys, Source: src, To: "orders", Options: Options{Out: &out}})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Unknown != int64(unknown) || !sum.Partial() {
		t.Fatalf("dry run: %d unknown (partial %v), want %d", sum.Unknown, sum.Partial(), unknown)
	}
	n := 0
	for _, l := range planLines(t, out.Bytes()) {
		if l["action"] == "unknown" {
			n++
			if l["reason"] != "no change of this item is indexed" {
				t.Fatalf("unknown line without its reason: %v", l)
			}
		}
	}
	if n != unknown {
		t.Fatalf("%d unknown plan lines, want %d", n, unknown)
	}

	// Apply: every other key is patched; unknown keys are left as the
	// damage left them, and listed.
	out.Reset()
	sum, err = Patch(ctx, c, Config{Keys: keys, Source: src, To: "orders", Apply: true, Journal: t.TempDir() + "/j", Options: Options{Out: &out}})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Unknown != int64(unknown) || !sum.Partial() || sum.Conflicts != 0 || sum.Failures != 0 {
		t.Fatalf("apply: %+v", sum.Counts)
	}
	if got := bytes.Count(out.Bytes(), []byte(`"action":"unknown"`)); got != unknown {
		t.Fatalf("apply listed %d unknown keys, want %d", got, unknown)
	}
	want := map[string]rewind.Item{}
	for id, item := range s.Expected {
		want[id] = item
	}
	for _, k := range s.Keys {
		key, _ := rewind.KeyFromItem(k)
		if !unknownKey(key) {
			continue
		}
		id := patchtest.EncodeKey(k)
		if item, ok := s.Damaged[id]; ok {
			want[id] = item
		} else {
			delete(want, id)
		}
	}
	assertTable(t, c, "orders", want, fmt.Sprintf("after a patch with %d unknown keys", unknown))
}
