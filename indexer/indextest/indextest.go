// Package indextest makes capture data for the tests and benchmarks of the
// indexer and query packages: random change events with the awkward cases
// (equal timestamps, S/N/B keys, deletes, TTL expiries, undecodable
// records, duplicates across objects) and Parquet objects laid out as the
// stream handler writes them.
package indextest

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/ddbrewind/rewind"
	"github.com/parquet-go/parquet-go"
)

// Gen makes random change events.
type Gen struct {
	Rng *rand.Rand
	// Tables, Tenants and Versions to draw from.
	Tables   []string
	Tenants  []string
	Versions []string
	// Items per table.
	Items int
	// Start is the earliest event time; events fall in Start + [0, Span),
	// on whole seconds half of the time so that timestamps collide.
	Start time.Time
	Span  time.Duration
	// UndecodableFraction of events are kept raw with a decode error.
	UndecodableFraction float64

	seq   int64
	live  map[string]rewind.Item
	items []item
}

type item struct {
	table  string
	tenant string
	key    rewind.Key
}

// NewGen returns a generator with small defaults, seeded.
func NewGen(seed uint64) *Gen {
	return &Gen{
		Rng:                 rand.New(rand.NewPCG(seed, seed*0x9e3779b97f4a7c15+1)),
		Tables:              []string{"orders", "users", "ledger"},
		Tenants:             []string{"acme", "globex", "initech", "umbrella", "hooli", "", "ünïcødé", "a#b", "acme2"},
		Versions:            []string{"v41", "v42", "v43"},
		Items:               60,
		Start:               time.Date(2026, 11, 20, 9, 58, 0, 0, time.UTC),
		Span:                3 * time.Hour,
		UndecodableFraction: 0.01,
		seq:                 100000000000000,
	}
}

func (g *Gen) init() {
	if g.live != nil {
		return
	}
	g.live = map[string]rewind.Item{}
	for _, table := range g.Tables {
		for n := range g.Items {
			tenant := g.Tenants[g.Rng.IntN(len(g.Tenants))]
			var key rewind.Key
			switch n % 4 {
			case 0: // S partition + S sort key
				key = rewind.Key{{Name: "pk", Type: 'S', Value: "TENANT#" + tenant}, {Name: "sk", Type: 'S', Value: fmt.Sprintf("ORDER#%04d", n)}}
			case 1: // N partition key only
				key = rewind.Key{{Name: "id", Type: 'N', Value: strconv.Itoa(n*37 - 500)}}
			case 2: // B partition key + N sort key
				key = rewind.Key{{Name: "bk", Type: 'B', Value: string([]byte{byte(n), 0, 0xFF, byte(n >> 8)})}, {Name: "n", Type: 'N', Value: strconv.Itoa(n) + ".5"}}
			default: // S key with awkward bytes
				key = rewind.Key{{Name: "pk", Type: 'S', Value: fmt.Sprintf("TENANT#%s#\"q\"\\%d", tenant, n)}}
			}
			g.items = append(g.items, item{table: table, tenant: tenant, key: key})
		}
	}
}

// Events makes n events in time order.
func (g *Gen) Events(n int) []rewind.ChangeEvent {
	g.init()
	out := make([]rewind.ChangeEvent, 0, n)
	times := make([]time.Time, n)
	for i := range times {
		d := time.Duration(g.Rng.Int64N(int64(g.Span)))
		if g.Rng.IntN(2) == 0 {
			d = d.Truncate(time.Second)
		}
		if g.Rng.IntN(10) == 0 {
			d = d.Truncate(time.Minute)
		}
		times[i] = g.Start.Add(d).Truncate(time.Microsecond)
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	for _, at := range times {
		out = append(out, g.event(at))
	}
	return out
}

func (g *Gen) event(at time.Time) rewind.ChangeEvent {
	g.seq += 1 + g.Rng.Int64N(1000)
	if g.Rng.IntN(200) == 0 && g.seq < 1e17 {
		g.seq *= 10 // sequence numbers grow a digit now and then
	}
	it := g.items[g.Rng.IntN(len(g.items))]
	id := string(it.key.Encode())
	ev := rewind.ChangeEvent{
		EventID:        fmt.Sprintf("%016x%016x", g.Rng.Uint64(), g.Rng.Uint64()),
		Table:          it.table,
		Region:         "eu-west-1",
		Tenant:         it.tenant,
		Time:           at,
		SequenceNumber: strconv.FormatInt(g.seq, 10),
		ShardID:        "shardId-00000001",
		StreamViewType: "NEW_AND_OLD_IMAGES",
		Keys:           it.key,
		SizeBytes:      int64(100 + g.Rng.IntN(300)),
	}
	if g.Rng.IntN(4) == 0 {
		// DynamoDB Local pads sequence numbers to 21 digits.
		ev.SequenceNumber = fmt.Sprintf("%021d", g.seq)
	}
	if g.Rng.Float64() < g.UndecodableFraction {
		ev.Keys = nil
		ev.Action = ""
		ev.DecodeError = "dynamodb record: keys: unexpected end of JSON input"
		ev.Raw = []byte(`{"eventID":"` + ev.EventID + `","dynamodb":{"Keys":`)
		return ev
	}
	old := g.live[it.table+"\x00"+id]
	var nw rewind.Item
	switch r := g.Rng.IntN(10); {
	case old == nil:
		ev.Action = rewind.ActionInsert
		nw = g.image(it)
	case r < 6:
		ev.Action = rewind.ActionModify
		nw = g.modify(old)
	default:
		ev.Action = rewind.ActionRemove
		ev.TTLExpiry = g.Rng.IntN(3) == 0
	}
	if old != nil {
		ev.OldImage = rewind.ItemJSON(old)
	}
	if nw != nil {
		ev.NewImage = rewind.ItemJSON(nw)
	}
	ev.ChangedAttributes = rewind.ChangedAttributes(rewind.ItemAttributes(old), rewind.ItemAttributes(nw))
	if len(ev.ChangedAttributes) == 0 {
		// The store keeps no difference between an empty list and none,
		// and tests compare what they generate with what it returns.
		ev.ChangedAttributes = nil
	}
	if nw == nil {
		delete(g.live, it.table+"\x00"+id)
	} else {
		g.live[it.table+"\x00"+id] = nw
	}
	return ev
}

func (g *Gen) image(it item) rewind.Item {
	im := it.key.Item()
	im["status"] = &types.AttributeValueMemberS{Value: []string{"new", "paid", "shipped"}[g.Rng.IntN(3)]}
	im["deployVersion"] = &types.AttributeValueMemberS{Value: g.Versions[g.Rng.IntN(len(g.Versions))]}
	im["amount"] = &types.AttributeValueMemberN{Value: strconv.Itoa(g.Rng.IntN(1000)) + ".50"}
	im["paid"] = &types.AttributeValueMemberBOOL{Value: g.Rng.IntN(2) == 0}
	im["blob"] = &types.AttributeValueMemberB{Value: []byte{byte(g.Rng.IntN(256)), 0}}
	return im
}

func (g *Gen) modify(old rewind.Item) rewind.Item {
	nw := make(rewind.Item, len(old))
	for k, v := range old {
		nw[k] = v
	}
	if g.Rng.IntN(2) == 0 {
		nw["status"] = &types.AttributeValueMemberS{Value: []string{"new", "paid", "shipped", "refunded"}[g.Rng.IntN(4)]}
	}
	nw["deployVersion"] = &types.AttributeValueMemberS{Value: g.Versions[g.Rng.IntN(len(g.Versions))]}
	if g.Rng.IntN(3) == 0 {
		nw["amount"] = &types.AttributeValueMemberN{Value: strconv.Itoa(g.Rng.IntN(1000))}
	}
	if g.Rng.IntN(4) == 0 {
		delete(nw, "paid")
	}
	return nw
}

// ObjectKey returns the key the stream handler gives an object holding
// evs (all of one table and hour), under prefix.
func ObjectKey(prefix string, evs []rewind.ChangeEvent) string {
	first, last := &evs[0], &evs[len(evs)-1]
	t := first.Time
	p := fmt.Sprintf("table=%s/dt=%s/hour=%02d/stream-%s-%s.parquet",
		first.Table, t.Format("2006-01-02"), t.Hour(), seqOrID(first), seqOrID(last))
	if prefix != "" {
		p = prefix + "/" + p
	}
	return p
}

func seqOrID(e *rewind.ChangeEvent) string {
	if e.SequenceNumber != "" {
		return e.SequenceNumber
	}
	return e.EventID
}

// Objects splits events (in stream order) into objects of at most per
// events that share a table and hour, as the stream handler's batches do,
// and returns them by key.
func Objects(prefix string, evs []rewind.ChangeEvent, per int) map[string][]rewind.ChangeEvent {
	out := map[string][]rewind.ChangeEvent{}
	byTable := map[string][]rewind.ChangeEvent{}
	var tables []string
	for _, e := range evs {
		t := e.Table
		if t == "" {
			t = "_unknown"
		}
		if _, ok := byTable[t]; !ok {
			tables = append(tables, t)
		}
		byTable[t] = append(byTable[t], e)
	}
	for _, t := range tables {
		run := byTable[t]
		for len(run) > 0 {
			n := 1
			h := run[0].Time.Truncate(time.Hour)
			for n < len(run) && n < per && run[n].Time.Truncate(time.Hour).Equal(h) {
				n++
			}
			objEvs := slices.Clone(run[:n])
			for i := range objEvs {
				if objEvs[i].Table == "" {
					objEvs[i].Table = t
				}
			}
			key := ObjectKey(prefix, objEvs)
			for i := range objEvs {
				objEvs[i].Table = run[i].Table
			}
			out[key] = objEvs
			run = run[n:]
		}
	}
	return out
}

// EncodeParquet returns evs as a capture Parquet file.
func EncodeParquet(evs []rewind.ChangeEvent, opts ...parquet.WriterOption) ([]byte, error) {
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[rewind.ParquetRow](&buf, opts...)
	rows := make([]rewind.ParquetRow, len(evs))
	for i := range evs {
		evs[i].ToParquetRow(&rows[i])
	}
	if _, err := w.Write(rows); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteDir writes objects (by key) under dir.
func WriteDir(dir string, objects map[string][]rewind.ChangeEvent) error {
	for key, evs := range objects {
		data, err := EncodeParquet(evs, parquet.Compression(&parquet.Zstd))
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		path := filepath.Join(dir, filepath.FromSlash(key))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// B64 is base64 of s, for building expected DynamoDB JSON.
func B64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
