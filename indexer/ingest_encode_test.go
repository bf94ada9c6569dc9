package indexer

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer/indextest"
	"github.com/parquet-go/parquet-go"
)

// TestEncodedBound: encodeEvent never writes more than encodedBound says,
// whatever the sizes of the event's parts (a zero in a tenant or a table
// is written as two bytes), so decode's buffers are never grown.
func TestEncodedBound(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	str := func(max int) string {
		b := make([]byte, r.IntN(max+1))
		for i := range b {
			b[i] = byte(r.IntN(256))
			if r.IntN(4) == 0 {
				b[i] = 0
			}
		}
		return string(b)
	}
	img := func() []byte {
		if r.IntN(3) == 0 {
			return nil
		}
		return []byte(str(2000))
	}
	for range 5000 {
		ev := rewind.ChangeEvent{
			EventID: str(64), Table: str(40), Tenant: str(40), Region: str(20), ShardID: str(80),
			SequenceNumber: strings.Repeat("0", r.IntN(5)) + str(40), StreamViewType: str(20),
			Action: rewind.Action([]string{"INSERT", "MODIFY", "REMOVE"}[r.IntN(3)]), TTLExpiry: r.IntN(2) == 0,
			OldImage: img(), NewImage: img(), Raw: img(), SizeBytes: r.Int64(),
			Keys: rewind.Key{{Name: str(10) + "k", Type: 'S', Value: str(100)}},
		}
		if r.IntN(10) == 0 {
			ev.DecodeError = str(200)
		}
		if r.IntN(5) == 0 {
			ev.Export = rewind.ExportWindow{ID: str(30) + "x", From: time.UnixMicro(r.Int64N(1 << 50)), To: time.UnixMicro(r.Int64N(1 << 50))}
		}
		for range r.IntN(6) {
			ev.ChangedAttributes = append(ev.ChangedAttributes, str(30))
		}
		var keyEnc []byte
		if ev.DecodeError == "" {
			keyEnc = ev.Keys.AppendEncode(nil)
		}
		bound := encodedBound(&ev, len(keyEnc))
		a, p := encodeEvent(make([]byte, 0, bound), &ev, r.Int64N(1<<52), keyEnc)
		if len(a) > bound {
			t.Fatalf("encodeEvent wrote %d bytes; encodedBound said %d", len(a), bound)
		}
		if got := len(p.t) + len(p.n) + len(p.i) + len(p.sum) + len(p.rec) + len(p.id); got != len(a) {
			t.Fatalf("pending's slices hold %d of the %d bytes written", got, len(a))
		}
		if &p.t[0] != &a[0] {
			t.Fatalf("pending does not alias the buffer")
		}
	}
}

// TestChunkSize: a buffer always has room for the event, never exceeds
// arenaChunk unless the event does, and the last one of an object is
// about what its remaining rows need.
func TestChunkSize(t *testing.T) {
	for _, tc := range []struct{ need, written, rows, left, want int }{
		{need: 2000, written: 0, rows: 0, left: 100, want: 200_000},
		{need: 2000, written: 0, rows: 0, left: 10_000, want: arenaChunk},
		{need: 2000, written: 1000 * 1000, rows: 1000, left: 500, want: 1000*500 + 125*500 + 2000},
		{need: 2000, written: 1000 * 1000, rows: 1000, left: 0, want: 2000},
		{need: 3 << 20, written: 0, rows: 0, left: 1, want: 3 << 20},
	} {
		if got := chunkSize(tc.need, tc.written, tc.rows, tc.left); got != tc.want {
			t.Errorf("chunkSize(%d, %d, %d, %d) = %d, want %d", tc.need, tc.written, tc.rows, tc.left, got, tc.want)
		}
	}
}

// TestGroupByTenantIsTheTenantSort: for batches in time order, grouping by
// tenant gives the order sorting by tenant key does, with tenants that are
// prefixes of one another, hold zero bytes, or are empty, and with events
// rekeyed by their event ID.
func TestGroupByTenantIsTheTenantSort(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	tenants := []string{"", "a", "ab", "a\x00", "a\x00b", "a\x01", "\x00", "t0001", "t0002", "t00010", "\xff"}
	for round := range 300 {
		n := 1 + r.IntN(400)
		var live []*pending
		for range n {
			ev := rewind.ChangeEvent{
				EventID: fmt.Sprintf("%032x", r.Uint64()), Table: "orders", Tenant: tenants[r.IntN(len(tenants))],
				SequenceNumber: fmt.Sprint(r.IntN(50)), ShardID: "s", Action: rewind.ActionModify,
				Keys: rewind.Key{{Name: "pk", Type: 'S', Value: fmt.Sprint(r.IntN(20))}},
			}
			micros := int64(1_700_000_000_000_000 + r.IntN(30))
			_, p := encodeEvent(nil, &ev, micros, ev.Keys.AppendEncode(nil))
			if r.IntN(10) == 0 { // rekeyed: the event ID after the ev, in every space
				p.t = append(slices.Clone(p.t), p.id...)
				p.n = append(slices.Clone(p.n), p.id...)
			}
			live = append(live, &p)
		}
		sortPending(live, func(p *pending) []byte { return p.t })
		want := slices.Clone(live)
		sortPending(want, func(p *pending) []byte { return p.n })
		got, err := groupByTenant(live)
		if err != nil {
			t.Fatal(err)
		}
		for j := range want {
			if !bytes.Equal(got[j].n, want[j].n) {
				t.Fatalf("round %d: entry %d is %q, the sort has %q", round, j, got[j].n, want[j].n)
			}
		}
	}
}

// BenchmarkTenantOrder: a batch of 40,000 events over 2,000 tenants, in
// time order, put in the tenant ordering by grouping and by sorting.
func BenchmarkTenantOrder(b *testing.B) {
	r := rand.New(rand.NewPCG(7, 8))
	var live []*pending
	for j := range 40000 {
		ev := rewind.ChangeEvent{
			EventID: fmt.Sprintf("%032x", r.Uint64()), Table: "orders", Tenant: fmt.Sprintf("t%04d", int(r.ExpFloat64()*300)%2000),
			SequenceNumber: fmt.Sprint(1e20 + float64(j)), ShardID: "s", Action: rewind.ActionModify,
			Keys: rewind.Key{{Name: "pk", Type: 'S', Value: fmt.Sprint(j)}},
		}
		_, p := encodeEvent(nil, &ev, int64(1_700_000_000_000_000+j*50), ev.Keys.AppendEncode(nil))
		live = append(live, &p)
	}
	b.Run("group", func(b *testing.B) {
		for range b.N {
			if _, err := groupByTenant(live); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sort", func(b *testing.B) {
		for range b.N {
			out := slices.Clone(live)
			sortPending(out, func(p *pending) []byte { return p.n })
		}
	})
}

// BenchmarkDecode: one capture object of 20,000 events like the bench's
// (two-attribute keys, ~300-byte images), decoded into its pending events.
func BenchmarkDecode(b *testing.B) {
	r := rand.New(rand.NewPCG(9, 10))
	evs := make([]rewind.ChangeEvent, 20000)
	note := strings.Repeat("lorem ipsum dolor sit amet ", 8)
	for j := range evs {
		pk, sk := fmt.Sprintf("TENANT#t%04d", r.IntN(2000)), fmt.Sprintf("ITEM#%07d", r.IntN(100000))
		image := func() []byte {
			return fmt.Appendf(nil, `{"amount":{"N":"%d.%02d"},"note":{"S":"%s"},"pk":{"S":"%s"},"sk":{"S":"%s"}}`, r.IntN(100000), r.IntN(100), note[r.IntN(20):], pk, sk)
		}
		evs[j] = rewind.ChangeEvent{
			EventID: fmt.Sprintf("%016x%016x", r.Uint64(), r.Uint64()), Table: "orders", Region: "eu-west-1",
			Tenant: pk[7:], Action: rewind.ActionModify, Time: time.UnixMicro(1_780_000_000_000_000 + int64(j)*1000).UTC(),
			SequenceNumber: fmt.Sprint(100000000000000000 + j*7), ShardID: "shardId-000000000001", StreamViewType: "NEW_AND_OLD_IMAGES",
			Keys:     rewind.Key{{Name: "pk", Type: 'S', Value: pk}, {Name: "sk", Type: 'S', Value: sk}},
			OldImage: image(), NewImage: image(), ChangedAttributes: []string{"amount", "note"}, SizeBytes: 700,
		}
	}
	data, err := indextest.EncodeParquet(evs, parquet.Compression(&parquet.Zstd))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		var d decoded
		if err := d.decode(bytes.NewReader(data), int64(len(data))); err != nil {
			b.Fatal(err)
		}
	}
}
