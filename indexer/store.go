package indexer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ddbrewind/rewind"
)

// ErrLocked is returned (wrapped) by Open when another process has the
// store open.
var ErrLocked = errors.New("store is locked")

// ErrNoStore is returned (wrapped) by a read-only Open of a directory that
// holds no store.
var ErrNoStore = errors.New("no index store")

// Options configure Open.
type Options struct {
	// ReadOnly opens the store for queries: nothing is written, and the
	// store must exist. Default false: the store is created if missing.
	ReadOnly bool
	// CacheSize is the block cache size in bytes. Default 64 MiB for a
	// read-only Open (a query re-reads the index blocks it seeks through),
	// 8 MiB otherwise: an ingest writes sstables and reads back only the
	// time ordering's newest entries (to deduplicate), so a larger cache
	// would only fill with blocks nobody reads again and count against
	// the ingest's peak memory. A process that opens the store for one
	// scan of summaries sets ScanCacheSize.
	CacheSize int64
	// Log receives Pebble's errors and the store's warnings. Default
	// slog.Default().
	Log *slog.Logger
	// FS is the file system Pebble reads and writes the store's files
	// through. Default the operating system's (vfs.Default). Tests wrap it
	// to count what a query opens; the store's lock file is always the
	// operating system's.
	FS vfs.FS
}

// ScanCacheSize is the block cache for a process that opens the store to
// answer one question from the summaries alone (a key set, statistics: no
// images, so no 1 MiB record blocks): room for the blocks its iterators
// stand on and the index blocks they seek through. A scan reads each data
// block once, so a larger cache would hold only blocks nobody reads again,
// each in memory the process touches for the first time: on the bench's
// VM a page fault costs ~15 us, and a fresh `rewind query` for a tenant's
// 10,000 keys faulted ~1,500 pages more with the 64 MiB default than with
// this (it now reuses the memory of the blocks it has left behind).
const ScanCacheSize = 1 << 20

// EnsureDefaults fills in the defaults documented on Options.
func (o *Options) EnsureDefaults() {
	if o.CacheSize == 0 {
		o.CacheSize = 8 << 20
		if o.ReadOnly {
			o.CacheSize = 64 << 20
		}
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
}

// Validate reports the first bad field.
func (o *Options) Validate() error {
	if o.CacheSize < 0 {
		return fmt.Errorf("indexer options: CacheSize %d is negative", o.CacheSize)
	}
	return nil
}

// Block sizes, uncompressed. Records are read one at a time (history,
// query --format json, patch --from-history), so a larger block costs one
// decompression per lookup and saves most of their bytes: zstd finds the
// repeats between images only within a block.
const (
	indexBlockSize  = 32 << 10
	recordBlockSize = 1 << 20
)

// Store is an open index store. Its read methods are safe for concurrent
// use; Ingest runs one at a time.
type Store struct {
	dir  string
	db   *pebble.DB
	opts *pebble.Options
	lock io.Closer
	log  *slog.Logger
	ro   bool

	closed bool
}

// Open opens the store in dir. Only one process may have a store open at a
// time: a second gets an error wrapping ErrLocked that names the holder.
func Open(dir string, o Options) (*Store, error) {
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.ReadOnly {
		// Pebble writes an OPTIONS file when it creates a store.
		if m, _ := filepath.Glob(filepath.Join(dir, "OPTIONS-*")); len(m) == 0 {
			if _, err := os.Stat(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("open store %s: %w", dir, err)
			}
			return nil, fmt.Errorf("open store %s: %w (run `rewind index` first)", dir, ErrNoStore)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	cache := pebble.NewCache(o.CacheSize)
	defer cache.Unref()
	opts := &pebble.Options{
		Cache:              cache,
		ReadOnly:           o.ReadOnly,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{o.Log},
		// The store is written only by ingesting sstables: the memtable
		// holds nothing.
		MemTableSize: 4 << 20,
		FS:           o.FS,
	}
	// Fewer, larger files: a cold query opens the store, and Open's cost
	// grows with the number of files (a week of 10 M events is ~100 files
	// instead of ~450).
	for i := range opts.TargetFileSizes {
		opts.TargetFileSizes[i] = 64 << 20
	}
	// Open replays the MANIFEST: let Pebble start a new one (a snapshot
	// of the live files) as soon as the edits since the last one name more
	// files than it, rather than at 128 MiB. Ingest's edits are few and
	// large (a batch, a consolidation: see consolidate), so the MANIFEST
	// stays within a few times the live files' entries, whatever the
	// store's history.
	opts.MaxManifestFileSize = 4 << 10
	// Images are most of the bytes and compress well only with an entropy
	// coder over a large block: zstd everywhere, 32 KiB blocks for the
	// index spaces, and the ingester writes the records' sstables in
	// blocks of recordBlockSize (see flush). Ingested sstables land in the
	// lower levels as written; the bottom level, where a compaction that
	// rewrites records puts them, uses the records' block size.
	for i := range opts.Levels {
		opts.Levels[i].BlockSize = indexBlockSize
		opts.Levels[i].IndexBlockSize = indexBlockSize
		opts.Levels[i].Compression = func() *sstable.CompressionProfile { return sstable.ZstdCompression }
	}
	// Pebble samples reads to compact what scans read often. A query's
	// store never compacts, and an ingest's reads (dedup's walk over the
	// time ordering) are not worth a compaction: sampling was 3% of the
	// CPU of the busiest tenant's key set in a profile.
	opts.Experimental.ReadSamplingMultiplier = -1
	if o.ReadOnly {
		// A query's Open: Pebble's consistency check stats every sstable
		// the MANIFEST names (one syscall per file, at every cold query).
		// A read-only Open writes nothing that a missing file could
		// corrupt, and a read of one that is gone fails with its name.
		opts.DisableConsistencyCheck = true
	}
	opts.EnsureDefaults()
	db, err := pebble.Open(dir, opts)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	s := &Store{dir: dir, db: db, opts: opts, lock: lock, log: o.Log, ro: o.ReadOnly}
	if err := s.checkVersion(); err != nil {
		s.Close()
		return nil, err
	}
	if !o.ReadOnly {
		// Sstables written by an ingest that was killed before Pebble took
		// them.
		if err := os.RemoveAll(s.tmpDir()); err != nil {
			s.Close()
			return nil, fmt.Errorf("open store %s: remove leftovers: %w", dir, err)
		}
	}
	return s, nil
}

func (s *Store) tmpDir() string { return filepath.Join(s.dir, "ingest-tmp") }

func (s *Store) checkVersion() error {
	v, ok, err := s.get(metaVersion)
	if err != nil {
		return fmt.Errorf("open store %s: %w", s.dir, err)
	}
	if ok && string(v) != storeVersion {
		return s.versionError(string(v))
	}
	return nil
}

// versionError says that the store has another format and how to rebuild
// it: one `rewind index` per source the store was built from, which the
// store still lists.
func (s *Store) versionError(v string) error {
	var why string
	switch v {
	case "1":
		why = " (version 1 kept an export's window in the shard ID; version 2 gives it a field of its own)"
	case "2":
		why = " (version 2 kept a copy of each summary per key space, with Snappy-compressed 4 KiB blocks; version 3 keeps one, zstd-compressed, and records the windows indexed)"
	case "3":
		why = " (version 3 keyed every event by its whole event ID, in each key space; version 4 keys it by a hash of the ID and keeps the ID once)"
	}
	msg := fmt.Sprintf("open store %s: format version %q, but this rewind reads version %q%s. Rebuild the store: move %s aside, then run", s.dir, v, storeVersion, why, s.dir)
	srcs, err := s.Sources()
	if err != nil || len(srcs) == 0 {
		return fmt.Errorf("%s `rewind index --store %s --source <capture>` (and `--export <export>` for each incremental export it held)", msg, s.dir)
	}
	var b strings.Builder
	b.WriteString(msg)
	for i, src := range srcs {
		if i > 0 {
			b.WriteString(",")
		}
		flag, more := "--source", ""
		if strings.Contains(filepath.ToSlash(src), "/AWSDynamoDB/") {
			// An incremental export's location (see indexer/export).
			flag, more = "--export", " (with the --tenant-attribute and --tenant-regex it was indexed with)"
		}
		fmt.Fprintf(&b, " `rewind index --store %s %s %s`%s", s.dir, flag, src, more)
	}
	return errors.New(b.String())
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// Close closes the store and releases its lock. Closing twice is a no-op.
func (s *Store) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.db.Close()
	if lerr := s.lock.Close(); err == nil {
		err = lerr
	}
	if err != nil {
		return fmt.Errorf("close store %s: %w", s.dir, err)
	}
	return nil
}

// get returns a copy of the value of key.
func (s *Store) get(key []byte) ([]byte, bool, error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := bytes.Clone(v)
	closer.Close()
	return out, true, nil
}

// Count returns the number of events in the store.
func (s *Store) Count() (int64, error) {
	v, ok, err := s.get(metaCount)
	if err != nil || !ok {
		return 0, err
	}
	n, m := binary.Uvarint(v)
	if m <= 0 {
		return 0, errors.New("store: bad event count")
	}
	return int64(n), nil
}

// ObjectInfo is one object's manifest entry.
type ObjectInfo struct {
	// Name is the object's URI: s3://bucket/key, or a file's path.
	Name string
	// ETag is the S3 ETag of the content ingested, or for a local file
	// "mtime:<nanoseconds>".
	ETag string
	Size int64
	// Rows is the number of rows in the object; New of them were stored
	// and Duplicates were already in the store or earlier in the run.
	Rows, New, Duplicates int64
	// First and Last are the object's earliest and latest event times in
	// Unix microseconds.
	First, Last int64
}

func appendManifest(dst []byte, o *ObjectInfo) []byte {
	dst = append(dst, 1)
	dst = appendBytes(dst, o.ETag)
	dst = binary.AppendVarint(dst, o.Size)
	dst = binary.AppendVarint(dst, o.Rows)
	dst = binary.AppendVarint(dst, o.New)
	dst = binary.AppendVarint(dst, o.Duplicates)
	dst = binary.AppendVarint(dst, o.First)
	dst = binary.AppendVarint(dst, o.Last)
	return dst
}

func decodeManifest(name string, v []byte) (ObjectInfo, error) {
	o := ObjectInfo{Name: name}
	if len(v) == 0 || v[0] != 1 {
		return o, fmt.Errorf("manifest entry %s: unknown format", name)
	}
	r := reader{b: v[1:]}
	o.ETag = string(r.bytes())
	for _, p := range []*int64{&o.Size, &o.Rows, &o.New, &o.Duplicates, &o.First, &o.Last} {
		if r.err != nil {
			break
		}
		n, m := binary.Varint(r.b)
		if m <= 0 {
			r.err = errors.New("bad varint")
			break
		}
		*p = n
		r.b = r.b[m:]
	}
	if r.err != nil {
		return o, fmt.Errorf("manifest entry %s: %w", name, r.err)
	}
	return o, nil
}

// Object returns the manifest entry of the named object.
func (s *Store) Object(name string) (ObjectInfo, bool, error) {
	v, ok, err := s.get([]byte(metaObj + name))
	if err != nil || !ok {
		return ObjectInfo{}, ok, err
	}
	o, err := decodeManifest(name, v)
	return o, err == nil, err
}

// Objects calls fn for every manifest entry, in name order.
func (s *Store) Objects(fn func(ObjectInfo) error) error {
	return s.scanMeta(metaObj, func(name string, v []byte) error {
		o, err := decodeManifest(name, v)
		if err != nil {
			return err
		}
		return fn(o)
	})
}

// Tables returns the names of the tables seen, sorted.
func (s *Store) Tables() ([]string, error) { return s.metaNames(metaTable) }

// Sources returns the sources ingested from (s3://bucket/prefix or a
// directory), sorted.
func (s *Store) Sources() ([]string, error) { return s.metaNames(metaSrc) }

func (s *Store) metaNames(prefix string) ([]string, error) {
	var out []string
	err := s.scanMeta(prefix, func(name string, _ []byte) error {
		out = append(out, name)
		return nil
	})
	return out, err
}

func (s *Store) scanMeta(prefix string, fn func(name string, v []byte) error) error {
	p := []byte(prefix)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		if err := fn(string(it.Key()[len(p):]), v); err != nil {
			return err
		}
	}
	return it.Error()
}

// Iter iterates over the events of one scan, in key order: by time for
// ScanTime and ScanTenant, by time within the item for ScanItem.
type Iter struct {
	it      *pebble.Iterator
	sum     summaries // for a tenant or item scan
	tenants [][]byte  // ScanTimeOf: the events of other tenants are skipped
	e       Entry
	err     error
	ok      bool
	pos     bool
}

// Next advances to the next event and reports whether there is one.
func (it *Iter) Next() bool { return it.step(it.it.First, it.it.Next) }

// Prev moves to the previous event and reports whether there is one; on a
// fresh iterator it moves to the scan's last event, so that a caller
// after an item's newest change before some time seeks once instead of
// walking its history. An iterator is walked in one direction: Next or
// Prev.
func (it *Iter) Prev() bool { return it.step(it.it.Last, it.it.Prev) }

// step positions the iterator with first on a fresh iterator, else moves
// it with move, and decodes the event there.
func (it *Iter) step(first, move func() bool) bool {
	if it.err != nil {
		return false
	}
	for {
		if !it.pos {
			it.pos = true
			it.ok = first()
		} else {
			it.ok = move()
		}
		if !it.ok {
			return false
		}
		if it.tenants == nil {
			break
		}
		ok, err := it.wanted()
		if err != nil {
			it.err = fmt.Errorf("store key %q: %w", it.it.Key(), err)
			return false
		}
		if ok {
			break
		}
	}
	if err := it.decode(); err != nil {
		it.err = fmt.Errorf("store key %q: %w", it.it.Key(), err)
		return false
	}
	return true
}

// Entry returns the current event; see Entry for how long it is valid.
func (it *Iter) Entry() *Entry { return &it.e }

// Err returns the error that stopped the iteration, if any.
func (it *Iter) Err() error {
	if it.err != nil {
		return it.err
	}
	return it.it.Error()
}

// Close releases the iterator.
func (it *Iter) Close() error {
	err := it.it.Close()
	if serr := it.sum.close(); err == nil {
		err = serr
	}
	if it.err != nil {
		return it.err
	}
	return err
}

func (s *Store) scan(lower, upper []byte) (*Iter, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", s.dir, err)
	}
	return &Iter{it: it, sum: summaries{db: s.db}}, nil
}

// ScanTime iterates over every event in the window, in time order.
func (s *Store) ScanTime(w Window) (*Iter, error) {
	lo, hi := span([]byte{spaceTime}, w)
	return s.scan(lo, hi)
}

// ScanTenant iterates over the events of one tenant in the window, in time
// order.
func (s *Store) ScanTenant(tenant string, w Window) (*Iter, error) {
	lo, hi := span(appendStr([]byte{spaceTenant}, tenant), w)
	return s.scan(lo, hi)
}

// ScanItem iterates over the changes of one item in the window, in time
// then sequence order.
func (s *Store) ScanItem(table string, key rewind.Key, w Window) (*Iter, error) {
	p := appendStr([]byte{spaceItem}, table)
	p = key.AppendEncode(p)
	lo, hi := span(p, w)
	return s.scan(lo, hi)
}

// Event returns the full change event of an entry, with its images.
func (s *Store) Event(e *Entry) (rewind.ChangeEvent, error) {
	key := append([]byte{spaceRecord}, e.ev...)
	v, closer, err := s.db.Get(key)
	if err != nil {
		return rewind.ChangeEvent{}, fmt.Errorf("store %s: event %s: %w", s.dir, e.EventID, err)
	}
	defer closer.Close()
	ev, err := eventFrom(e, v)
	if err != nil {
		return ev, fmt.Errorf("store %s: event %s: %w", s.dir, e.EventID, err)
	}
	return ev, nil
}

// Records reads the full events of entries met in store order. It keeps
// one iterator over the records and seeks it forward, which is much cheaper
// than a point lookup per event. Close it when done.
type Records struct {
	st  *Store
	it  *pebble.Iterator
	key []byte
}

// Records returns a reader of the full events of entries in the window.
func (s *Store) Records(w Window) (*Records, error) {
	lo, hi := span([]byte{spaceRecord}, w)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", s.dir, err)
	}
	return &Records{st: s, it: it}, nil
}

// Event returns the full change event of e, which must fall in the
// Records' window. Entries are best given in store order.
func (r *Records) Event(e *Entry) (rewind.ChangeEvent, error) {
	r.key = append(append(r.key[:0], spaceRecord), e.ev...)
	if !r.it.SeekGE(r.key) || !bytes.Equal(r.it.Key(), r.key) {
		if err := r.it.Error(); err != nil {
			return rewind.ChangeEvent{}, fmt.Errorf("store %s: event %s: %w", r.st.dir, e.EventID, err)
		}
		return rewind.ChangeEvent{}, fmt.Errorf("store %s: event %s: record missing", r.st.dir, e.EventID)
	}
	v, err := r.it.ValueAndErr()
	if err != nil {
		return rewind.ChangeEvent{}, fmt.Errorf("store %s: event %s: %w", r.st.dir, e.EventID, err)
	}
	ev, err := eventFrom(e, v)
	if err != nil {
		return ev, fmt.Errorf("store %s: event %s: %w", r.st.dir, e.EventID, err)
	}
	return ev, nil
}

// Close releases the reader.
func (r *Records) Close() error { return r.it.Close() }

// pebbleLogger sends Pebble's errors to slog and drops its chatter.
type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(string, ...any) {}
func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error("pebble: " + fmt.Sprintf(format, args...))
}
func (l pebbleLogger) Fatalf(format string, args ...any) {
	l.log.Error("pebble: " + fmt.Sprintf(format, args...))
	os.Exit(1)
}
