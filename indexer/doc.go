// Package indexer builds rewind's local index of every captured change: a
// Pebble store that answers "what changed when, for which tenant, to which
// item" with bounded range scans, over weeks of history.
//
// Open opens (or creates) a store; Store.Ingest reads the capture Parquet
// objects from a Source (an S3 prefix, see S3Source, or a local directory
// of the same layout, see DirSource; ParseSource picks one from a URI) and
// adds the objects it has not seen. The query package reads the store
// through Store.Scan and Store.Event.
//
// # Ingest
//
// Objects are listed in key order and decoded in parallel, but committed in
// listing order, a batch of whole objects at a time. A batch becomes one
// sorted SSTable per key space (below) plus one for the metadata, written
// concurrently and ingested into Pebble with a single DB.Ingest call: the
// events of every object in the batch and the objects' manifest entries
// become visible together or not at all, and Ingest syncs before it
// returns. Before Ingest returns it waits for Pebble to compact level 0 back
// to its usual depth, because queries open the store read-only and a
// read-only store never compacts. A process killed at any
// point leaves the store as it was after the last ingested batch; the rerun
// skips the objects in the manifest and redoes the others. Nothing written
// depends on the wall clock or on batch boundaries, so an interrupted run
// followed by a rerun leaves the same logical contents as one clean run.
//
// Memory is bounded by Config.BatchBytes and Config.Workers: a batch is
// written out once its encoded entries reach BatchBytes (while the next one
// is collected), and at most 2×Workers objects are decoded ahead of the
// committer.
//
// An object whose Parquet is corrupt or truncated, or whose rows do not
// carry a valid event (an event time before 2012 or more than an hour
// ahead of the clock counts as invalid: a skewed clock would stretch every
// window), is skipped with an error naming it (see ObjectError); it stays
// out of the manifest, so the next run retries it.
//
// Events are deduplicated: the same stream record delivered in two objects
// (an overlapping batch after a retry, a re-uploaded object) is stored
// once. A redelivered record repeats its creation time, sequence number,
// table and shard, so its keys below are the same; the ingester drops an
// event whose time-ordered key is already in the batch or in the store
// with the same event ID. A different event ID under the key (two streams
// whose hashes clash, at one time and sequence number) is a different
// event: it is kept under the key with its event ID appended, in every
// key space (see Store.dedup).
//
// # Key encoding
//
// Every key starts with a one-byte key space. Within a key space the keys
// sort so that each query is one bounded range scan. The pieces are:
//
//	ts       8 bytes: event time in Unix microseconds, big-endian, with the
//	         sign bit flipped so that negative times sort first
//	seq      uvarint length, then the stream sequence number's decimal digits
//	         with leading zeros trimmed: shorter numbers sort first, so
//	         sequence numbers sort numerically
//	tail     2 bytes: a hash of the table and shard (the stream), which
//	         tells apart events of different streams that share a time and
//	         a sequence number; for an event without a sequence number (an
//	         export's, an undecodable one), its event ID instead
//	ev       ts seq tail: one event, in time order, then stream order
//	str(s)   s with every 0x00 byte written 0x00 0xFF, then 0x00 0x01: sorts
//	         like s and is never a prefix of another str
//	key      rewind.Key.Encode(), the canonical key encoding (self-delimiting)
//
// The key spaces:
//
//	't' ev                  → summary   every event, by time
//	'n' str(tenant) ev      → empty     events of one tenant, by time
//	'i' str(table) key ev   → empty     changes of one item, by time
//	'r' ev                  → record    the rest of the event (images)
//	'M' "count"             → uvarint   number of events stored
//	'M' "obj/" object       → manifest  one ingested object
//	'M' "src/" source       → empty     sources ingested from
//	'M' "table/" table      → empty     tables seen
//	'M' "fail/" object      → listing   failure record listed (IngestFailures)
//	'M' "win/" source       → windows   the event-time windows of the source indexed
//	'M' "version"           → "4"       store format version
//
// What the store holds is read from these spaces, without a key of its
// own: Store.Tables from 'M' "table/", Store.HasTenant and Store.HasItem
// with one seek into 'n' or 'i', Store.Tenants with one seek per tenant
// over 'n', and Store.TimeRange from the ends of 't'.
//
// A time window [from, to) of all events is the scan ['t' ts(from),
// 't' ts(to)); a tenant's window is ['n' str(tenant) ts(from), ... ts(to));
// an item's history is the prefix 'i' str(table) key, narrowed the same way
// by a window. Undecodable events (rewind.ChangeEvent.DecodeError) have no
// key: they are in 't' and 'r' only, and in 'n' when they have a tenant.
//
// A summary is what key sets, filters and statistics need without the
// images. It is kept once, as the 't' value; a tenant or item scan reads
// the 'n' or 'i' keys and, for each, the 't' value of the same ev (one
// iterator over 't' seeking forward, as the scan is in time order). When
// the tenants asked about hold a tenth of the window's events or more
// (Store.DenseTenants counts their 'n' keys up to that share), a seek per
// event costs more than stepping through the window: Store.ScanTimeOf
// reads 't' and skips the other tenants' events by the tenant in their
// summary. The summary:
//
//	flags            1 byte: action (0 none, 1 INSERT, 2 MODIFY, 3 REMOVE)
//	                 | 4 TTL expiry | 8 undecodable
//	table, tenant    uvarint length + bytes each
//	key              uvarint length + canonical key encoding
//	event ID         uvarint n<<1|hex, then n bytes: hex set, the ID is 2n
//	                 lowercase hex digits kept as the n bytes they spell
//	                 (DynamoDB Streams' IDs are 32); else the ID as it is
//	changed          uvarint count, then uvarint length + name for each
//	                 changed attribute
//
// A record holds the rest of rewind.ChangeEvent: a format byte (3), the
// number of leading zeros the key's sequence number lost (uvarint), region,
// shard ID (each uvarint length + bytes), the export window
// (rewind.ExportWindow: the export id as uvarint length + bytes, then,
// when the id is not empty, its from and to in Unix microseconds as
// varints), stream view type (uvarint length + bytes), size (varint), then
// old image, new image, decode error and raw record, each as uvarint
// (length+1) + bytes, 0 meaning absent.
//
// Every block is zstd-compressed; the index spaces use 32 KiB blocks and
// the records 1 MiB ones (zstd finds the repeats between images only
// within a block).
//
// Version 3 stores keyed every event by its whole event ID in each of the
// four spaces and kept a summary (less what the key said) in 'n' and 'i':
// 1.5× the bytes of the Parquet on the bench. Open refuses them, and
// version 2 and 1 ones.
//
// Version 2 stores kept the whole summary in each of 't', 'n' and 'i', in
// Snappy-compressed 4 KiB blocks: 3.7× the bytes of the Parquet they were
// built from on the bench. Open refuses them like version 1 ones.
//
// Version 1 stores (record format 1) carried an export's window in the
// shard ID; Open refuses them, naming the sources to rebuild from with
// `rewind index`.
//
// A failure listing entry is a format byte (1) and, as a varint, the Unix
// microseconds at which Lambda wrote the failure record (from its key; 0
// when the key does not say). IngestFailures writes one for every failure
// record it lists, before ingesting them; a failure record listed but not in
// the manifest ('M' "obj/") is a capture gap (Store.CaptureGaps): events the
// stream had that the store does not hold.
//
// A manifest entry holds the object's ETag (for a local file, its
// modification time and size), size, and the number of rows, new events and
// duplicate events it held, and its first and last event time. The events
// of the 't' and 'r' spaces of a batch are mostly in time order, so their
// SSTables rarely overlap those already ingested and land in the bottom
// level; 'n' and 'i' tables are compacted by Pebble as usual.
package indexer
