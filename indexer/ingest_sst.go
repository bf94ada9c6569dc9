package indexer

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"
	"golang.org/x/sync/errgroup"
)

// flush writes a batch as sstables and ingests them in one atomic step.
// Only the flusher goroutine calls it.
func (in *ingest) flush(ctx context.Context, batch []*decoded) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s := in.s
	var all []*pending
	for oi, d := range batch {
		for j := range d.evs {
			d.evs[j].obj = int32(oi)
			all = append(all, &d.evs[j])
		}
	}
	// Time order; the first object in listing order keeps a duplicate.
	sortPending(all, func(p *pending) []byte { return p.t })
	rekeyed, err := s.dedup(all)
	if err != nil {
		return err
	}
	live := all[:0:0]
	for _, p := range all {
		if !p.dup {
			live = append(live, p)
		}
	}
	if rekeyed {
		sortPending(live, func(p *pending) []byte { return p.t })
	}
	newByObj := make([]int64, len(batch))
	for _, p := range live {
		newByObj[p.obj]++
	}

	// The spaces' sstables are written at once: they share no data, and
	// each one's fsync then overlaps the others' work.
	var (
		pathMu sync.Mutex
		paths  []string
		wg     errgroup.Group
	)
	write := func(space string, n int, kv func(int) ([]byte, []byte)) error {
		if n == 0 {
			return nil
		}
		path := filepath.Join(s.tmpDir(), fmt.Sprintf("%06d-%s.sst", in.nflush, space))
		block := indexBlockSize
		if space == "r" {
			block = recordBlockSize
		}
		if err := s.writeSST(path, n, block, kv); err != nil {
			return fmt.Errorf("store %s: write %s: %w", s.dir, path, err)
		}
		pathMu.Lock()
		paths = append(paths, path)
		pathMu.Unlock()
		return nil
	}
	wg.Go(func() error {
		var rk []byte
		return write("r", len(live), func(j int) ([]byte, []byte) {
			rk = append(append(rk[:0], spaceRecord), live[j].t[1:]...)
			return rk, live[j].rec
		})
	})
	wg.Go(func() error {
		return write("t", len(live), func(j int) ([]byte, []byte) { return live[j].t, live[j].sum })
	})
	wg.Go(func() error {
		byTenant, err := groupByTenant(live)
		if err != nil {
			return fmt.Errorf("store %s: %w", s.dir, err)
		}
		return write("n", len(byTenant), func(j int) ([]byte, []byte) { return byTenant[j].n, nil })
	})
	var items []*pending
	for _, p := range live {
		if p.i != nil {
			items = append(items, p)
		}
	}
	wg.Go(func() error {
		sortPending(items, func(p *pending) []byte { return p.i })
		return write("i", len(items), func(j int) ([]byte, []byte) { return items[j].i, nil })
	})

	// Metadata: manifest entries, the event count, sources and tables.
	type kv struct{ k, v []byte }
	var meta []kv
	var rows, dups int64
	tables := map[string]bool{}
	for oi, d := range batch {
		info := ObjectInfo{
			Name: d.obj.Name, ETag: d.etag, Size: d.size,
			Rows: int64(len(d.evs)), New: newByObj[oi], Duplicates: int64(len(d.evs)) - newByObj[oi],
			First: d.first, Last: d.last,
		}
		rows += info.Rows
		dups += info.Duplicates
		meta = append(meta, kv{[]byte(metaObj + d.obj.Name), appendManifest(nil, &info)})
		for _, t := range d.tables {
			tables[t] = true
		}
	}
	for t := range tables {
		meta = append(meta, kv{[]byte(metaTable + t), nil})
	}
	newCount := in.count + int64(len(live))
	meta = append(meta,
		kv{metaCount, binary.AppendUvarint(nil, uint64(newCount))},
		kv{[]byte(metaSrc + in.src.Name()), nil},
		kv{metaVersion, []byte(storeVersion)},
	)
	slices.SortFunc(meta, func(a, b kv) int { return bytes.Compare(a.k, b.k) })
	meta = slices.CompactFunc(meta, func(a, b kv) bool { return bytes.Equal(a.k, b.k) })
	wg.Go(func() error {
		return write("M", len(meta), func(j int) ([]byte, []byte) { return meta[j].k, meta[j].v })
	})
	if err := wg.Wait(); err != nil {
		return err
	}
	if err := s.db.Ingest(ctx, paths); err != nil {
		return fmt.Errorf("store %s: ingest batch of %d objects (%s ... %s): %w",
			s.dir, len(batch), batch[0].obj.Name, batch[len(batch)-1].obj.Name, err)
	}
	for _, p := range paths {
		os.Remove(p)
	}
	in.count = newCount
	in.nflush++
	in.mu.Lock()
	in.p.Batches++
	in.p.Ingested += len(batch)
	in.p.Rows += rows
	in.p.Events += int64(len(live))
	in.p.Duplicates += dups
	for _, d := range batch {
		in.p.Bytes += d.size
	}
	in.mu.Unlock()
	return nil
}

// bigWritable is an objstorage.Writable that writes in 1 MiB chunks:
// Pebble's own file writable buffers 4 KiB, a system call per data block,
// which costs as much as encoding the block.
type bigWritable struct {
	f *os.File
	w *bufio.Writer
}

func (b *bigWritable) Write(p []byte) error {
	_, err := b.w.Write(p)
	return err
}

// Finish flushes and syncs the file: Ingest needs it durable.
func (b *bigWritable) Finish() error {
	err := b.w.Flush()
	if err == nil {
		err = b.f.Sync()
	}
	if cerr := b.f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (b *bigWritable) Abort() { b.f.Close() }

// settle waits until Pebble has compacted level 0 back to its usual depth.
// Queries open the store read-only, and a read-only store never compacts:
// without this, every query would pay for the sublevels the last batches
// left, a seek into each.
// It gives up, leaving the rest to the next write, when Pebble runs no
// compaction for a second.
func (s *Store) settle(ctx context.Context) error {
	idle := 0
	for {
		m := s.db.Metrics()
		if int(m.Levels[0].Sublevels) <= s.opts.L0CompactionThreshold && m.Compact.NumInProgress == 0 {
			return nil
		}
		if m.Compact.NumInProgress == 0 {
			if idle++; idle >= 50 {
				return nil
			}
		} else {
			idle = 0
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// groupByTenant returns live, which is in time order, in the tenant
// ordering's: a tenant key is the tenant, then the same ev (and event ID,
// for a rekeyed event) as the time key, so the tenant ordering is the time
// ordering grouped by tenant, in tenant order. A stable grouping costs a
// map lookup an event instead of a sort's ~17 comparisons.
func groupByTenant(live []*pending) ([]*pending, error) {
	type group struct {
		str      []byte // the tenant's str, as in its key
		n, start int    // its events, and where the next one goes
	}
	index := map[string]int{}
	var groups []group
	of := make([]int32, len(live))
	for j, p := range live {
		n, err := skipStr(p.n[1:])
		if err != nil {
			return nil, fmt.Errorf("tenant key %x: %w", p.n, err)
		}
		str := p.n[1 : 1+n]
		g, ok := index[string(str)]
		if !ok {
			g = len(groups)
			index[string(str)] = g
			groups = append(groups, group{str: str})
		}
		of[j] = int32(g)
		groups[g].n++
	}
	order := make([]int, len(groups))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return bytes.Compare(groups[a].str, groups[b].str) })
	at := 0
	for _, g := range order {
		groups[g].start = at
		at += groups[g].n
	}
	out := make([]*pending, len(live))
	for j, p := range live {
		g := &groups[of[j]]
		out[g.start] = p
		g.start++
	}
	return out, nil
}

// sortPending sorts events by key, then by object (so the first object in
// listing order keeps a duplicate). Keys of one space share a long prefix
// (the space, the table, a tenant), so it compares the 8 bytes after the
// prefix all keys share as two integers first.
func sortPending(ps []*pending, key func(*pending) []byte) {
	if len(ps) < 2 {
		return
	}
	first := key(ps[0])
	lcp := len(first)
	for _, p := range ps[1:] {
		k := key(p)
		n := min(lcp, len(k))
		j := 0
		for j < n && k[j] == first[j] {
			j++
		}
		lcp = j
	}
	// Two integers of the 16 bytes after the common prefix: within a
	// tenant or an item key most keys still differ there.
	type ent struct {
		a, b uint64
		rest []byte // the key after the common prefix (a shorter key pads with zeros in a and b)
		p    *pending
	}
	ents := make([]ent, len(ps))
	for i, p := range ps {
		var buf [16]byte
		k := key(p)[lcp:]
		copy(buf[:], k)
		ents[i] = ent{binary.BigEndian.Uint64(buf[:8]), binary.BigEndian.Uint64(buf[8:]), k, p}
	}
	slices.SortFunc(ents, func(x, y ent) int {
		if x.a != y.a {
			return cmp.Compare(x.a, y.a)
		}
		if x.b != y.b {
			return cmp.Compare(x.b, y.b)
		}
		if c := bytes.Compare(x.rest, y.rest); c != 0 {
			return c
		}
		return cmp.Compare(x.p.obj, y.p.obj)
	})
	for i, e := range ents {
		ps[i] = e.p
	}
}

// dedup marks the events, sorted by time key, that are already in the
// store or earlier in the batch (the first object in listing order keeps
// an event), and gives a key of its own to an event whose key another
// event ID holds; it reports whether it did.
//
// An event's key is its time, sequence number and stream hash (appendEv),
// which a redelivered record repeats. Two different events can have the
// same only if their streams' hashes clash and they share a time and a
// sequence number; the first one stored keeps the key, and each other
// gets the key with its event ID appended (in every key space), which
// sorts right after it and before any other event. Either way an event ID
// seen under the key again is a duplicate.
//
// It walks the store's time space over the batch's range alongside the
// batch, so it costs one seek when the batch is newer than the store.
func (s *Store) dedup(sorted []*pending) (rekeyed bool, err error) {
	if len(sorted) == 0 {
		return false, nil
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: sorted[0].t, UpperBound: prefixEnd(sorted[len(sorted)-1].t)})
	if err != nil {
		return false, fmt.Errorf("store %s: %w", s.dir, err)
	}
	defer it.Close()
	valid := it.First()
	// stored reports whether the store holds key; keys must come in
	// increasing order. v is the value, valid until the next call.
	stored := func(key []byte) (v []byte, ok bool, err error) {
		if !valid {
			return nil, false, nil
		}
		c := bytes.Compare(it.Key(), key)
		if c < 0 {
			if valid = it.SeekGE(key); !valid {
				return nil, false, it.Error()
			}
			c = bytes.Compare(it.Key(), key)
		}
		if c != 0 {
			return nil, false, nil
		}
		v, err = it.ValueAndErr()
		return v, err == nil, err
	}
	var others []*pending
	for j := 0; j < len(sorted); {
		k := j + 1
		for k < len(sorted) && bytes.Equal(sorted[k].t, sorted[j].t) {
			k++
		}
		run := sorted[j:k]
		j = k
		var owner []byte // the event ID that has the key
		v, ok, err := stored(run[0].t)
		if err != nil {
			return false, fmt.Errorf("store %s: %w", s.dir, err)
		}
		if ok {
			if owner, err = summaryID(v); err != nil {
				return false, fmt.Errorf("store %s: stored event at key %q: %w", s.dir, run[0].t, err)
			}
			owner = bytes.Clone(owner)
		}
		others = others[:0]
		for i, p := range run {
			switch {
			case owner == nil:
				owner = p.id
			case bytes.Equal(p.id, owner) || slices.ContainsFunc(run[:i], func(q *pending) bool { return !q.dup && bytes.Equal(q.id, p.id) }):
				p.dup = true
			default:
				others = append(others, p)
			}
		}
		if len(others) == 0 {
			continue
		}
		// In key order: ID order.
		slices.SortStableFunc(others, func(a, b *pending) int { return bytes.Compare(a.id, b.id) })
		for _, p := range others {
			p.rekey()
			rekeyed = true
			if _, ok, err := stored(p.t); err != nil {
				return false, fmt.Errorf("store %s: %w", s.dir, err)
			} else if ok {
				p.dup = true // the key holds the ID
			}
		}
	}
	return rekeyed, it.Error()
}

// rekey appends the event ID to the event's keys: see dedup.
func (p *pending) rekey() {
	p.t = append(bytes.Clone(p.t), p.id...)
	p.n = append(bytes.Clone(p.n), p.id...)
	if p.i != nil {
		p.i = append(bytes.Clone(p.i), p.id...)
	}
}

// writeSST writes n keys and values as an sstable of blocks of about
// block bytes.
func (s *Store) writeSST(path string, n, block int, kv func(int) ([]byte, []byte)) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	wo := s.opts.MakeWriterOptions(0, s.db.TableFormat())
	wo.BlockSize = block
	w := sstable.NewWriter(&bigWritable{f: f, w: bufio.NewWriterSize(f, 1<<20)}, wo)
	for j := range n {
		k, v := kv(j)
		if err := w.Set(k, v); err != nil {
			w.Close()
			return err
		}
	}
	return w.Close()
}
