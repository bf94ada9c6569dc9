package indexer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/cockroachdb/pebble/v2"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/streamhandler"
)

// metaFail is the key space of the failure records listed by
// IngestFailures: 'M' "fail/" name → failure listing entry (see doc.go).
const metaFail = "Mfail/"

// maxFailureRecord bounds the size of one failure record read into memory:
// a Lambda invocation payload is at most 6 MB, and the record is that plus
// a little metadata (or, as a JSON string, up to twice that escaped).
const maxFailureRecord = 64 << 20

// FailureSource lists and reads the failure records an event source
// mapping wrote to its Amazon S3 on-failure destination (see
// rewind.FailureRecord for the documented layout and content). Each record
// is one object of the source; Open decodes the stream records in its
// payload with the stream handler's decoder (streamhandler.DecodeEvent), so
// its events are those the handler would have written had the batch
// succeeded, and deduplicate against them.
type FailureSource struct {
	API    S3API
	Bucket string
	// Prefix narrows the listing (for example aws/lambda/<ESM UUID>);
	// without slashes at either end, "" for the whole bucket. Only keys
	// under aws/lambda/ are failure records; others are not listed.
	Prefix string
	// Decode is the stream handler configuration the events are decoded
	// with; only its Tenant, Images and KeyAttributes matter, and they
	// should be the capture's.
	Decode streamhandler.Config

	st *Store
}

var _ Source = (*FailureSource)(nil)

// ParseFailureSource returns the failure source s3://bucket[/prefix] names.
func ParseFailureSource(uri string, api S3API, decode streamhandler.Config) (*FailureSource, error) {
	rest, ok := strings.CutPrefix(uri, "s3://")
	if !ok {
		return nil, fmt.Errorf("failure source %q: want s3://bucket[/prefix], the on-failure destination bucket of the capture's event source mapping", uri)
	}
	bucket, prefix, _ := strings.Cut(rest, "/")
	if bucket == "" {
		return nil, fmt.Errorf("failure source %q: no bucket (want s3://bucket[/prefix])", uri)
	}
	if api == nil {
		return nil, fmt.Errorf("failure source %q: no S3 client", uri)
	}
	return &FailureSource{API: api, Bucket: bucket, Prefix: strings.Trim(prefix, "/"), Decode: decode}, nil
}

// Name implements Source.
func (f *FailureSource) Name() string {
	if f.Prefix == "" {
		return "s3://" + f.Bucket
	}
	return "s3://" + f.Bucket + "/" + f.Prefix
}

// List implements Source: the failure records in key order. An object's
// size is that of the Parquet object Open makes, known once it is decoded:
// for a record the store holds with the same ETag, List gives the size the
// store recorded, so that Ingest skips it; for the others, -1.
func (f *FailureSource) List(ctx context.Context, fn func(Object) error) error {
	return listDecoded(ctx, f.API, f.Bucket, f.Prefix, f.Name(), f.st, func(key string) bool {
		return strings.Contains(key, rewind.FailurePrefix) && !strings.HasSuffix(key, "/")
	}, fn)
}

// listDecoded lists the objects under bucket/prefix whose key keep
// accepts, in key order, for a source whose Open decodes each object into
// a Parquet one: an object's size is the one the store st recorded for the
// same ETag (so that Ingest skips it), else -1. Each page is one call with
// a deadline.
func listDecoded(ctx context.Context, api S3API, bucket, prefix, name string, st *Store, keep func(key string) bool, fn func(Object) error) error {
	in := &s3.ListObjectsV2Input{Bucket: aws.String(bucket)}
	if prefix != "" {
		in.Prefix = aws.String(prefix + "/")
	}
	pg := s3.NewListObjectsV2Paginator(api, in)
	for pg.HasMorePages() {
		lctx, cancel := context.WithTimeout(ctx, time.Minute)
		page, err := pg.NextPage(lctx)
		cancel()
		if err != nil {
			return fmt.Errorf("list %s: %w", name, err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if !keep(key) {
				continue
			}
			obj := Object{Name: "s3://" + bucket + "/" + key, Key: key, ETag: strings.Trim(aws.ToString(o.ETag), `"`), Size: -1}
			if st != nil {
				info, ok, err := st.Object(obj.Name)
				if err != nil {
					return fmt.Errorf("store %s: manifest: %w", st.Dir(), err)
				}
				if ok && info.ETag == obj.ETag {
					obj.Size = info.Size
				}
			}
			if err := fn(obj); err != nil {
				return err
			}
		}
	}
	return nil
}

// Open implements Source: it reads the failure record, decodes the stream
// records of its payload and returns their events as a Parquet object.
func (f *FailureSource) Open(ctx context.Context, o Object) (Content, string, int64, error) {
	gctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	out, err := f.API.GetObject(gctx, &s3.GetObjectInput{Bucket: aws.String(f.Bucket), Key: aws.String(o.Key)})
	if err != nil {
		return nil, "", 0, err
	}
	defer out.Body.Close()
	body, err := io.ReadAll(io.LimitReader(out.Body, maxFailureRecord+1))
	if err != nil {
		return nil, "", 0, fmt.Errorf("read body: %w", err)
	}
	if len(body) > maxFailureRecord {
		return nil, "", 0, fmt.Errorf("failure record is larger than %d MiB", maxFailureRecord>>20)
	}
	rec, err := rewind.ParseFailureRecord(body)
	if err != nil {
		return nil, "", 0, err
	}
	event, err := rec.Event()
	if err != nil {
		return nil, "", 0, err
	}
	evs, err := streamhandler.DecodeEvent(f.Decode, event)
	if err != nil {
		return nil, "", 0, fmt.Errorf("payload of shard %s records %s..%s: %w", rec.BatchInfo.ShardID, rec.BatchInfo.StartSequenceNumber, rec.BatchInfo.EndSequenceNumber, err)
	}
	if n := rec.BatchInfo.BatchSize; n > 0 && n != len(evs) {
		return nil, "", 0, fmt.Errorf("payload holds %d stream records, DDBStreamBatchInfo.batchSize says %d", len(evs), n)
	}
	return eventsContent(evs, strings.Trim(aws.ToString(out.ETag), `"`))
}

// IngestFailures lists the failure records of src, records the listing in
// the store (so that CaptureGaps can tell a failure record that was not
// ingested from one that was), then ingests them like any other source:
// each record is one object in the manifest, its events deduplicated
// against those the store holds (the same stream record from a capture
// object and a failure record is stored once).
func (s *Store) IngestFailures(ctx context.Context, src *FailureSource, cfg Config) (Result, error) {
	if s.ro {
		return Result{}, ErrReadOnly
	}
	// The listing replaces what an earlier run listed under this source:
	// a record deleted from the bucket (expired by the lifecycle rule, or
	// removed once its changes were recovered otherwise) is no longer a
	// gap.
	stale := map[string]bool{}
	if err := s.scanMeta(metaFail+src.Name()+"/", func(name string, _ []byte) error {
		stale[src.Name()+"/"+name] = true
		return nil
	}); err != nil {
		return Result{}, fmt.Errorf("store %s: failure listing: %w", s.dir, err)
	}
	b := s.db.NewBatch()
	defer b.Close()
	err := src.List(ctx, func(o Object) error {
		delete(stale, o.Name)
		written := time.Time{}
		if k, err := rewind.ParseFailureKey(o.Key); err == nil {
			written = k.Written
		}
		return b.Set([]byte(metaFail+o.Name), appendFailureEntry(nil, written), nil)
	})
	if err != nil {
		return Result{}, err
	}
	for name := range stale {
		if err := b.Delete([]byte(metaFail+name), nil); err != nil {
			return Result{}, err
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return Result{}, fmt.Errorf("store %s: record failure listing: %w", s.dir, err)
	}
	src.st = s
	defer func() { src.st = nil }()
	return s.Ingest(ctx, src, cfg)
}

func appendFailureEntry(dst []byte, written time.Time) []byte {
	dst = append(dst, 1)
	var micros int64
	if !written.IsZero() {
		micros = written.UnixMicro()
	}
	return binary.AppendVarint(dst, micros)
}

// CaptureGap is a failure record the store has listed but not ingested:
// change events the capture missed and the store does not hold.
type CaptureGap struct {
	// Object is the failure record's URI.
	Object string
	// From and To bound when its stream records may have been written:
	// the stream keeps records 24 hours before Lambda gives up on them
	// (rewind.FailureKeyInfo.Window). Zero when its key does not say when
	// it was written: it may be anywhere.
	From, To time.Time
}

// CaptureGaps returns the failure records listed by IngestFailures that
// are not in the manifest (they failed to ingest, or were listed by a run
// that stopped) and whose window overlaps w.
func (s *Store) CaptureGaps(w Window) ([]CaptureGap, error) {
	var out []CaptureGap
	err := s.scanMeta(metaFail, func(name string, v []byte) error {
		if len(v) == 0 || v[0] != 1 {
			return fmt.Errorf("store %s: failure listing entry %s: unknown format", s.dir, name)
		}
		micros, n := binary.Varint(v[1:])
		if n <= 0 {
			return fmt.Errorf("store %s: failure listing entry %s: bad varint", s.dir, name)
		}
		if _, ok, err := s.Object(name); err != nil || ok {
			return err
		}
		g := CaptureGap{Object: name}
		if micros != 0 {
			k := rewind.FailureKeyInfo{Written: time.UnixMicro(micros).UTC()}
			g.From, g.To = k.Window()
			from, to := g.From.UnixMicro(), g.To.UnixMicro()
			if (w.HasTo && from >= w.To) || (w.HasFrom && to <= w.From) {
				return nil
			}
		}
		out = append(out, g)
		return nil
	})
	if err != nil && !errors.Is(err, pebble.ErrNotFound) {
		return nil, err
	}
	return out, nil
}
