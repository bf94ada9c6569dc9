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
	for j := 1; j < len(all); j++ {
		if bytes.Equal(all[j].t, all[j-1].t) {
			if err := checkSameID(all[j].t, all[j].id, all[j-1].id, "object "+batch[all[j].obj].obj.Name, "object "+batch[all[j-1].obj].obj.Name); err != nil {
				return fmt.Errorf("store %s: %w", s.dir, err)
			}
			all[j].dup = true
		}
	}
	if err := s.markStored(all, func(p *pending) string { return batch[p.obj].obj.Name }); err != nil {
		return err
	}
	live := all[:0:0]
	for _, p := range all {
		if !p.dup {
			live = append(live, p)
		}
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
	byTenant := slices.Clone(live)
	wg.Go(func() error {
		sortPending(byTenant, func(p *pending) []byte { return p.n })
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

// sortPending sorts events by key, then by object (so the first object in
// listing order keeps a duplicate). Keys of one space share a long prefix
// (the space, the table, a tenant), so it compares the 8 bytes after the
// prefix all keys share as an integer first.
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
	type ent struct {
		pfx uint64
		p   *pending
	}
	ents := make([]ent, len(ps))
	for i, p := range ps {
		var b [8]byte
		copy(b[:], key(p)[lcp:])
		ents[i] = ent{binary.BigEndian.Uint64(b[:]), p}
	}
	slices.SortFunc(ents, func(a, b ent) int {
		if a.pfx != b.pfx {
			return cmp.Compare(a.pfx, b.pfx)
		}
		if c := bytes.Compare(key(a.p)[lcp:], key(b.p)[lcp:]); c != 0 {
			return c
		}
		return cmp.Compare(a.p.obj, b.p.obj)
	})
	for i, e := range ents {
		ps[i] = e.p
	}
}

// checkSameID returns an error when two events with the same ev (time,
// sequence number, stream hash) have different event IDs: the store cannot
// hold both, and dropping one as a duplicate would lose it.
func checkSameID(ev, id, other []byte, where, otherWhere string) error {
	if bytes.Equal(id, other) {
		return nil
	}
	micros, seq, _ := parseEv(ev[1:])
	return fmt.Errorf("event %s (%s) and event %s (%s) share the time %s, the sequence number %q and the hash of their stream (table and shard), which is how the store tells events apart: "+
		"it cannot hold both, and this batch is not ingested (a stream record is delivered with one event ID: check the capture for a rewritten record; to index the rest, index the two objects into separate stores)",
		id, where, other, otherWhere, time.UnixMicro(micros).UTC().Format(time.RFC3339Nano), seq)
}

// markStored marks the events, sorted by time key, that the store already
// holds (objOf names an event's object, for errors). It walks the store's
// time space over the batch's range alongside the batch, so it costs one
// seek when the batch is newer than the store.
func (s *Store) markStored(sorted []*pending, objOf func(*pending) string) error {
	if len(sorted) == 0 {
		return nil
	}
	lo := sorted[0].t
	hi := append(bytes.Clone(sorted[len(sorted)-1].t), 0)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("store %s: %w", s.dir, err)
	}
	defer it.Close()
	valid := it.First()
	for _, p := range sorted {
		if !valid {
			break
		}
		c := bytes.Compare(it.Key(), p.t)
		if c < 0 {
			valid = it.SeekGE(p.t)
			if !valid {
				break
			}
			c = bytes.Compare(it.Key(), p.t)
		}
		if c == 0 {
			v, err := it.ValueAndErr()
			if err != nil {
				return fmt.Errorf("store %s: %w", s.dir, err)
			}
			id, err := summaryID(v)
			if err != nil {
				return fmt.Errorf("store %s: stored event at key %q: %w", s.dir, it.Key(), err)
			}
			if err := checkSameID(p.t, p.id, id, "object "+objOf(p), "already in the store"); err != nil {
				return fmt.Errorf("store %s: %w", s.dir, err)
			}
			p.dup = true
		}
	}
	return it.Error()
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
