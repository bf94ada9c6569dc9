// Package compact rewrites each closed hour of the capture (the stream
// handler's many small Parquet objects under
// PREFIX/table=T/dt=D/hour=H/) into a few large files, sorted by tenant
// then time, deduplicated by event ID, with row groups sized so a reader
// that filters by tenant skips most of them. Entry point: Run.
//
// Crash safety. An hour is compacted in three steps, each durable before
// the next (an S3 PutObject that returned is durable):
//
//  1. the large files are written, named compact-<digest of the inputs>-N.parquet;
//  2. the hour's manifest, _manifest.json, is written: the large files it
//     holds and the small objects they replace;
//  3. the small objects are deleted.
//
// A reader that applies Select reads every event exactly once whatever
// step a crash stopped at: without a manifest it reads the small objects
// and ignores large files (orphans of step 1); with one it reads the
// manifest's files and any small object the manifest does not list (a
// record delivered late), and ignores the listed ones (not yet deleted).
// Readers that do not know manifests (Athena, DuckDB) still count each
// event once: rewind's SQL and the indexer deduplicate by event ID.
// Running Run again finishes an interrupted hour and is a no-op on a
// compacted one.
package compact

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/ddbrewind/rewind"
	"github.com/parquet-go/parquet-go"
)

// ManifestName is the name of an hour's manifest, in the hour's folder.
const ManifestName = "_manifest.json"

// OutputPrefix starts the name of every file compaction writes.
const OutputPrefix = "compact-"

// Manifest records a compacted hour.
type Manifest struct {
	// Version is 1.
	Version int `json:"version"`
	// Outputs are the hour's large files, by key.
	Outputs []Output `json:"outputs"`
	// Inputs are the keys of the objects the outputs replace.
	Inputs []string `json:"inputs"`
	// Events is the number of distinct events in the outputs.
	Events int64 `json:"events"`
	// Written is when the manifest was written, UTC.
	Written time.Time `json:"written"`
}

// Output is one large file.
type Output struct {
	Key  string `json:"key"`
	Rows int64  `json:"rows"`
	Size int64  `json:"size"`
}

// Select returns the keys of an hour a reader must read, given the keys
// listed in the hour's folder and its manifest (nil when it has none):
// see the package comment. The manifest itself is never among them.
func Select(keys []string, m *Manifest) []string {
	var out []string
	if m == nil {
		for _, k := range keys {
			if base := path.Base(k); base != ManifestName && !strings.HasPrefix(base, OutputPrefix) {
				out = append(out, k)
			}
		}
		return out
	}
	replaced := map[string]bool{}
	for _, k := range m.Inputs {
		replaced[k] = true
	}
	current := map[string]bool{}
	for _, o := range m.Outputs {
		current[o.Key] = true
		out = append(out, o.Key)
	}
	for _, k := range keys {
		base := path.Base(k)
		if base == ManifestName || current[k] || replaced[k] || strings.HasPrefix(base, OutputPrefix) {
			continue
		}
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// S3 is the part of the S3 client compaction uses.
type S3 interface {
	ListObjectsV2(context.Context, *s3.ListObjectsV2Input, ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(context.Context, *s3.PutObjectInput, ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	DeleteObject(context.Context, *s3.DeleteObjectInput, ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
}

var _ S3 = (*s3.Client)(nil)

// Options say what Run compacts.
type Options struct {
	// Bucket and Prefix locate the capture (the stream handler's
	// ParquetPrefix, without a trailing slash). Bucket is required.
	Bucket, Prefix string
	// Now is the current time. Default time.Now.
	Now func() time.Time
	// Grace is how long after its end an hour is closed: no more
	// objects are expected in it. Default 1h (a stream batch the Lambda
	// retries lands in the hour of its first record).
	Grace time.Duration
	// From and To, when set, keep hours that start in [From, To).
	From, To time.Time
	// RowGroupRows is the rows per row group. Default 50,000: a few MB, so
	// min/max statistics on tenant and event_time prune.
	RowGroupRows int64
	// FileRows is the most rows per output file. Default 2,000,000.
	FileRows int
	// MinObjects skips an hour with fewer small objects. Default 2.
	MinObjects int
	// CallTimeout bounds each S3 call. Default 60s.
	CallTimeout time.Duration
	// DryRun lists what would be compacted and writes nothing.
	DryRun bool
	// Progress, when set, is called after each hour.
	Progress func(Hour)
}

// EnsureDefaults fills the zero fields.
func (o *Options) EnsureDefaults() {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Grace <= 0 {
		o.Grace = time.Hour
	}
	if o.RowGroupRows <= 0 {
		o.RowGroupRows = 50_000
	}
	if o.FileRows <= 0 {
		o.FileRows = 2_000_000
	}
	if o.MinObjects <= 0 {
		o.MinObjects = 2
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 60 * time.Second
	}
	o.Prefix = strings.Trim(o.Prefix, "/")
}

// Validate reports the first bad field.
func (o *Options) Validate() error {
	if o.Bucket == "" {
		return errors.New("compact: Bucket is required")
	}
	if !o.From.IsZero() && !o.To.IsZero() && !o.To.After(o.From) {
		return fmt.Errorf("compact: To %s is not after From %s", o.To.Format(time.RFC3339), o.From.Format(time.RFC3339))
	}
	return nil
}

// Hour is what Run did to one hour's folder.
type Hour struct {
	// Folder is the hour's key prefix, PREFIX/table=T/dt=D/hour=H/.
	Folder string `json:"folder"`
	// Status is compacted, finished (an interrupted run's deletions
	// done), skipped (already compacted, too few objects) or open (not
	// closed yet).
	Status string `json:"status"`
	// ObjectsBefore and ObjectsAfter count the hour's data objects.
	ObjectsBefore int `json:"objects_before"`
	ObjectsAfter  int `json:"objects_after"`
	// Rows read, Events written (Rows less duplicates).
	Rows   int64 `json:"rows"`
	Events int64 `json:"events"`
	// BytesBefore and BytesAfter are the data objects' sizes.
	BytesBefore int64 `json:"bytes_before"`
	BytesAfter  int64 `json:"bytes_after"`
}

// Summary is what Run did.
type Summary struct {
	Hours                       []Hour `json:"-"`
	Compacted, Skipped, Open    int
	ObjectsBefore, ObjectsAfter int
	Rows, Events                int64
}

type object struct {
	key  string
	size int64
}

// Run compacts every closed hour under the prefix.
func Run(ctx context.Context, c S3, o Options) (Summary, error) {
	o.EnsureDefaults()
	var sum Summary
	if err := o.Validate(); err != nil {
		return sum, err
	}
	hours, err := listHours(ctx, c, &o)
	if err != nil {
		return sum, err
	}
	folders := slices.Sorted(func(yield func(string) bool) {
		for f := range hours {
			if !yield(f) {
				return
			}
		}
	})
	for _, f := range folders {
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		h, err := compactHour(ctx, c, &o, f, hours[f])
		if err != nil {
			return sum, err
		}
		sum.Hours = append(sum.Hours, h)
		switch h.Status {
		case "compacted", "finished":
			sum.Compacted++
		case "open":
			sum.Open++
		default:
			sum.Skipped++
		}
		sum.ObjectsBefore += h.ObjectsBefore
		sum.ObjectsAfter += h.ObjectsAfter
		sum.Rows += h.Rows
		sum.Events += h.Events
		if o.Progress != nil {
			o.Progress(h)
		}
	}
	return sum, nil
}

// hourStart parses the hour of a folder table=T/dt=D/hour=H/.
func hourStart(folder string) (time.Time, bool) {
	parts := strings.Split(strings.TrimSuffix(folder, "/"), "/")
	if len(parts) < 3 {
		return time.Time{}, false
	}
	d, h := parts[len(parts)-2], parts[len(parts)-1]
	if !strings.HasPrefix(parts[len(parts)-3], "table=") || !strings.HasPrefix(d, "dt=") || !strings.HasPrefix(h, "hour=") {
		return time.Time{}, false
	}
	t, err := time.Parse("2006-01-02 15", strings.TrimPrefix(d, "dt=")+" "+strings.TrimPrefix(h, "hour="))
	return t, err == nil
}

func listHours(ctx context.Context, c S3, o *Options) (map[string][]object, error) {
	prefix := "table="
	if o.Prefix != "" {
		prefix = o.Prefix + "/table="
	}
	hours := map[string][]object{}
	in := &s3.ListObjectsV2Input{Bucket: &o.Bucket, Prefix: &prefix}
	for {
		cctx, cancel := context.WithTimeout(ctx, o.CallTimeout)
		out, err := c.ListObjectsV2(cctx, in)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("compact: list s3://%s/%s: %w", o.Bucket, prefix, err)
		}
		for _, ob := range out.Contents {
			key := aws.ToString(ob.Key)
			folder := path.Dir(key) + "/"
			if _, ok := hourStart(folder); !ok {
				continue
			}
			if base := path.Base(key); base != ManifestName && !strings.HasSuffix(base, ".parquet") {
				continue
			}
			hours[folder] = append(hours[folder], object{key, aws.ToInt64(ob.Size)})
		}
		if !aws.ToBool(out.IsTruncated) || out.NextContinuationToken == nil {
			return hours, nil
		}
		in.ContinuationToken = out.NextContinuationToken
	}
}

func (o *Options) call(ctx context.Context, f func(context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, o.CallTimeout)
	defer cancel()
	return f(cctx)
}

func (o *Options) get(ctx context.Context, c Getter, key string) ([]byte, error) {
	var b []byte
	err := o.call(ctx, func(ctx context.Context) error {
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &o.Bucket, Key: &key})
		if err != nil {
			return err
		}
		defer out.Body.Close()
		b, err = io.ReadAll(out.Body)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("compact: get s3://%s/%s: %w", o.Bucket, key, err)
	}
	return b, nil
}

func (o *Options) put(ctx context.Context, c S3, key string, b []byte, contentType string) error {
	err := o.call(ctx, func(ctx context.Context) error {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &o.Bucket, Key: &key, Body: bytes.NewReader(b), ContentType: &contentType})
		return err
	})
	if err != nil {
		return fmt.Errorf("compact: put s3://%s/%s: %w", o.Bucket, key, err)
	}
	return nil
}

// Getter is the part of the S3 client ReadManifest uses.
type Getter interface {
	GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// ReadManifest reads the manifest at key, the GetObject bounded by
// callTimeout (default 60s).
func ReadManifest(ctx context.Context, c Getter, bucket, key string, callTimeout time.Duration) (*Manifest, error) {
	o := Options{Bucket: bucket, CallTimeout: callTimeout}
	o.EnsureDefaults()
	b, err := o.get(ctx, c, key)
	if err != nil {
		return nil, err
	}
	return ParseManifest("s3://"+bucket+"/"+key, b)
}

// ParseManifest decodes a manifest's bytes; name (its URI or path) is for
// the error.
func ParseManifest(name string, b []byte) (*Manifest, error) {
	var m Manifest
	err := json.Unmarshal(b, &m)
	if err == nil && m.Version != 1 {
		err = fmt.Errorf("version %d", m.Version)
	}
	if err != nil {
		return nil, fmt.Errorf("compact: manifest %s: not a version 1 manifest (%v); delete it and run rewind compact again", name, err)
	}
	return &m, nil
}

func compactHour(ctx context.Context, c S3, o *Options, folder string, objs []object) (Hour, error) {
	h := Hour{Folder: folder}
	start, _ := hourStart(folder)
	var keys []string
	var m *Manifest
	for _, ob := range objs {
		if path.Base(ob.key) == ManifestName {
			var err error
			if m, err = ReadManifest(ctx, c, o.Bucket, ob.key, o.CallTimeout); err != nil {
				return h, err
			}
			continue
		}
		keys = append(keys, ob.key)
	}
	size := map[string]int64{}
	for _, ob := range objs {
		size[ob.key] = ob.size
	}
	read := Select(keys, m)
	h.ObjectsBefore = len(read)
	for _, k := range read {
		h.BytesBefore += size[k]
	}
	if (!o.From.IsZero() && start.Before(o.From)) || (!o.To.IsZero() && !start.Before(o.To)) {
		h.Status, h.ObjectsAfter, h.BytesAfter = "skipped", h.ObjectsBefore, h.BytesBefore
		return h, nil
	}
	if start.Add(time.Hour + o.Grace).After(o.Now()) {
		h.Status, h.ObjectsAfter, h.BytesAfter = "open", h.ObjectsBefore, h.BytesBefore
		return h, nil
	}
	// What is to delete once the manifest is durable: the replaced small
	// objects still there, and large files of earlier runs no manifest
	// names.
	var stale []string
	if m == nil {
		for _, k := range keys {
			if strings.HasPrefix(path.Base(k), OutputPrefix) {
				stale = append(stale, k) // orphans of a run that stopped before its manifest
			}
		}
	} else {
		current := map[string]bool{}
		for _, out := range m.Outputs {
			current[out.Key] = true
		}
		for _, k := range keys {
			if !current[k] && !slices.Contains(read, k) {
				stale = append(stale, k)
			}
		}
	}
	var smallNew []string
	for _, k := range read {
		if !strings.HasPrefix(path.Base(k), OutputPrefix) {
			smallNew = append(smallNew, k)
		}
	}
	if m != nil && len(smallNew) == 0 {
		// Compacted; finish an interrupted run's deletions.
		h.Status, h.ObjectsAfter, h.BytesAfter, h.Events = "skipped", h.ObjectsBefore, h.BytesBefore, m.Events
		if len(stale) > 0 {
			h.Status = "finished"
			if !o.DryRun {
				if err := o.delete(ctx, c, stale); err != nil {
					return h, err
				}
			}
		}
		return h, nil
	}
	if m == nil && len(read) < o.MinObjects {
		h.Status, h.ObjectsAfter, h.BytesAfter = "skipped", h.ObjectsBefore, h.BytesBefore
		return h, nil
	}
	if o.DryRun {
		h.Status = "compacted"
		return h, nil
	}
	rows, n, err := o.readRows(ctx, c, read)
	if err != nil {
		return h, err
	}
	h.Rows = n
	h.Events = int64(len(rows))
	digest := sha256.New()
	for _, k := range read {
		digest.Write([]byte(k + "\n"))
	}
	tag := hex.EncodeToString(digest.Sum(nil))[:16]
	nm := &Manifest{Version: 1, Events: int64(len(rows)), Written: o.Now().UTC()}
	for i := 0; i < len(rows) || i == 0; i += o.FileRows {
		part := rows[i:min(i+o.FileRows, len(rows))]
		b, err := o.encode(part)
		if err != nil {
			return h, fmt.Errorf("compact: %s: encode: %w", folder, err)
		}
		key := fmt.Sprintf("%s%s%s-%03d.parquet", folder, OutputPrefix, tag, i/o.FileRows)
		if err := o.put(ctx, c, key, b, "application/vnd.apache.parquet"); err != nil {
			return h, err
		}
		nm.Outputs = append(nm.Outputs, Output{Key: key, Rows: int64(len(part)), Size: int64(len(b))})
		h.BytesAfter += int64(len(b))
		if len(rows) == 0 {
			break
		}
	}
	h.ObjectsAfter = len(nm.Outputs)
	// Everything the new outputs replace: what was read and what the old
	// manifest replaced, so a reader ignores them until they are gone.
	nm.Inputs = slices.Compact(slices.Sorted(slices.Values(append(append([]string{}, read...), stale...))))
	if m != nil {
		nm.Inputs = slices.Compact(slices.Sorted(slices.Values(append(nm.Inputs, m.Inputs...))))
	}
	mb, err := json.MarshalIndent(nm, "", "  ")
	if err != nil {
		return h, err
	}
	if err := o.put(ctx, c, folder+ManifestName, append(mb, '\n'), "application/json"); err != nil {
		return h, err
	}
	var del []string
	for _, k := range append(read, stale...) {
		if !slices.ContainsFunc(nm.Outputs, func(out Output) bool { return out.Key == k }) {
			del = append(del, k)
		}
	}
	if err := o.delete(ctx, c, del); err != nil {
		return h, err
	}
	h.Status = "compacted"
	return h, nil
}

func (o *Options) delete(ctx context.Context, c S3, keys []string) error {
	for _, k := range keys {
		err := o.call(ctx, func(ctx context.Context) error {
			_, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &o.Bucket, Key: &k})
			return err
		})
		if err != nil {
			return fmt.Errorf("compact: delete s3://%s/%s (the manifest already replaces it; run rewind compact again to finish): %w", o.Bucket, k, err)
		}
	}
	return nil
}

// readRows reads the objects' rows, keeps the first copy of each event
// ID, and sorts them by tenant, time, sequence number and event ID.
func (o *Options) readRows(ctx context.Context, c S3, keys []string) ([]rewind.ParquetRow, int64, error) {
	var all []rewind.ParquetRow
	seen := map[string]bool{}
	var n int64
	for _, k := range keys {
		b, err := o.get(ctx, c, k)
		if err != nil {
			return nil, 0, err
		}
		r := parquet.NewGenericReader[rewind.ParquetRow](bytes.NewReader(b))
		rows := make([]rewind.ParquetRow, r.NumRows())
		got, err := r.Read(rows)
		r.Close()
		if err != nil && !errors.Is(err, io.EOF) || int64(got) != int64(len(rows)) {
			return nil, 0, fmt.Errorf("compact: read s3://%s/%s: %d of %d rows: %v (move the object aside and run again)", o.Bucket, k, got, len(rows), err)
		}
		n += int64(got)
		for _, row := range rows[:got] {
			if seen[row.EventID] {
				continue
			}
			seen[row.EventID] = true
			all = append(all, row)
		}
	}
	slices.SortFunc(all, func(a, b rewind.ParquetRow) int {
		return cmp.Or(strings.Compare(a.Tenant, b.Tenant), cmp.Compare(a.EventTime, b.EventTime),
			rewind.CompareSequenceNumbers(a.SequenceNumber, b.SequenceNumber), strings.Compare(a.EventID, b.EventID))
	})
	return all, n, nil
}

func (o *Options) encode(rows []rewind.ParquetRow) ([]byte, error) {
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[rewind.ParquetRow](&buf,
		parquet.Compression(&parquet.Zstd),
		parquet.MaxRowsPerRowGroup(o.RowGroupRows),
		parquet.CreatedBy("rewind compact", "1", ""),
	)
	if _, err := w.Write(rows); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
