package indexer

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/ddbrewind/rewind"
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
