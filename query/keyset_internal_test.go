package query

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer"
)

// The fast paths must write what rewind's key-set writer writes.
func TestAppendTimeAndStringMatchTheSlowPath(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var hours hourCache
	for i := range 200000 {
		var µs int64
		switch i % 4 {
		case 0:
			µs = rng.Int64N(1e17) - 5e16 // years 386 to 3554
		case 1:
			µs = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC).UnixMicro() + rng.Int64N(1e11)
		case 2:
			µs = rng.Int64N(1e12) * 1e6 // whole seconds
		default:
			µs = -rng.Int64N(1e12)
		}
		want := time.UnixMicro(µs).UTC().AppendFormat(nil, time.RFC3339Nano)
		if got := appendTime(nil, µs); string(got) != string(want) {
			t.Fatalf("appendTime(%d) = %s, want %s", µs, got, want)
		}
		// The hour cache, on a fresh hour and again within it.
		for _, d := range []int64{0, rng.Int64N(3600e6) - 1800e6, 1} {
			µs += d
			want := time.UnixMicro(µs).UTC().AppendFormat(nil, time.RFC3339Nano)
			if got := hours.appendTime(nil, µs); string(got) != string(want) {
				t.Fatalf("hourCache.appendTime(%d) = %s, want %s", µs, got, want)
			}
		}
	}
	for _, s := range []string{"", "plain", `q"uote`, `back\slash`, "tab\t", "del\x7f", "ünï", "\xff\xfe", "<&>", "\u2028"} {
		want, _ := jsontext.AppendQuote(nil, s)
		if got := appendJSONString(nil, s); string(got) != string(want) {
			t.Errorf("appendJSONString(%q) = %s, want %s", s, got, want)
		}
	}
}

// The aggregator keeps items and ids in fixed-size chunks: a key set of
// several item chunks, with ids that fill arena chunks unevenly and one id
// longer than a chunk, must come out as rewind's key-set writer writes the
// same events.
func TestAggregatorChunksMatchTheKeySetWriter(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	base := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC).UnixMicro()
	keys := make([]rewind.Key, 3*itemChunk+17)
	for i := range keys {
		n := 1 + rng.IntN(3000)
		if i == 5 {
			n = arenaChunk + 1000
		}
		k, err := rewind.KeyFromItem(rewind.Item{"pk": &types.AttributeValueMemberS{Value: fmt.Sprintf("%06d%s", i, strings.Repeat("x", n))}})
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = k
	}
	for _, maxItems := range []int{1 << 20, 700} {
		var got, want bytes.Buffer
		a := newAggregator(KeySetOptions{MaxItems: maxItems}, &got)
		kw := rewind.NewKeySetWriter(&want)
		actions := []rewind.Action{rewind.ActionInsert, rewind.ActionModify, rewind.ActionRemove}
		for range 2 * len(keys) {
			i := rng.IntN(len(keys))
			table := []string{"orders", "users"}[i%2]
			tenant := fmt.Sprintf("t%d", i%7)
			µs := base + rng.Int64N(3600e6)
			act := actions[rng.IntN(3)]
			e := indexer.Entry{Micros: µs, Table: []byte(table), Tenant: []byte(tenant), Key: keys[i].Encode(), Action: act}
			if err := a.add(&e); err != nil {
				t.Fatal(err)
			}
			tm := time.UnixMicro(µs).UTC()
			if err := kw.Add(rewind.KeySetEntry{Table: table, Key: keys[i], Tenant: tenant, First: tm, Last: tm, Count: 1, Actions: []rewind.Action{act}}); err != nil {
				t.Fatal(err)
			}
		}
		if maxItems > len(keys) && (a.n <= 2*itemChunk || len(a.arena) < 3) {
			t.Fatalf("%d items in %d arena chunks: the test needs several of each", a.n, len(a.arena))
		}
		n, err := a.write()
		if err != nil {
			t.Fatal(err)
		}
		if err := kw.Close(); err != nil {
			t.Fatal(err)
		}
		if n != kw.Written() {
			t.Errorf("aggregator wrote %d items, the key-set writer %d", n, kw.Written())
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			g, w := strings.Split(got.String(), "\n"), strings.Split(want.String(), "\n")
			for i := range min(len(g), len(w)) {
				if g[i] != w[i] {
					t.Fatalf("line %d differs:\n got %.200s\nwant %.200s", i+1, g[i], w[i])
				}
			}
			t.Fatalf("MaxItems %d: %d lines, want %d", maxItems, len(g), len(w))
		}
	}
}
