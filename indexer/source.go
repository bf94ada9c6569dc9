package indexer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/ddbrewind/rewind/indexer/compact"
)

// Object is one Parquet object of a source.
type Object struct {
	// Name identifies the object in the manifest and in messages:
	// s3://bucket/key, or the file's absolute path.
	Name string
	// Key is the source's own name for it: the S3 key, or the path
	// relative to the directory.
	Key string
	// ETag is the S3 ETag without quotes, or for a local file
	// "mtime:<nanoseconds>".
	ETag string
	Size int64
}

// Content is an object's bytes, opened for reading.
type Content interface {
	io.ReaderAt
	io.Closer
}

// CaptureLayout is where capture objects sit under a source's prefix or
// directory, as the stream handler writes them; messages about a source
// that holds none quote it.
const CaptureLayout = "table=<table>/dt=YYYY-MM-DD/hour=HH/<name>.parquet"

// Source lists and reads capture objects laid out as the stream handler
// writes them: <prefix>/table=<t>/dt=YYYY-MM-DD/hour=HH/<name>.parquet.
type Source interface {
	// Name is the source's URI: s3://bucket/prefix or a directory's
	// absolute path.
	Name() string
	// List calls fn for every .parquet object a reader must read, in key
	// order: an hour folder with a compaction manifest (compact.ManifestName)
	// through it, as compact.Select says, so that every event is listed
	// once whatever step a compaction stopped at.
	List(ctx context.Context, fn func(Object) error) error
	// Open returns the object's content and the ETag of what it returned,
	// which may differ from the listing's if the object was overwritten
	// since.
	Open(ctx context.Context, o Object) (c Content, etag string, size int64, err error)
}

// ParseSource returns the source a URI names: s3://bucket/prefix for S3
// (through api), else a local directory.
func ParseSource(uri string, api S3API) (Source, error) {
	if rest, ok := strings.CutPrefix(uri, "s3://"); ok {
		bucket, prefix, _ := strings.Cut(rest, "/")
		if bucket == "" {
			return nil, fmt.Errorf("source %q: no bucket (want s3://bucket/prefix)", uri)
		}
		if api == nil {
			return nil, fmt.Errorf("source %q: no S3 client", uri)
		}
		return &S3Source{API: api, Bucket: bucket, Prefix: strings.Trim(prefix, "/")}, nil
	}
	if strings.Contains(uri, "://") {
		return nil, fmt.Errorf("source %q: unknown scheme (want s3://bucket/prefix or a directory)", uri)
	}
	return NewDirSource(uri)
}

// DirSource reads a local directory tree of Parquet files, such as a copy
// of the capture bucket (aws s3 sync).
type DirSource struct {
	dir string
}

// NewDirSource returns a source over dir, which must exist.
func NewDirSource(dir string) (*DirSource, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", dir, err)
	}
	fi, err := os.Stat(abs)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("source %s does not exist (want a directory of capture objects, %s, or s3://bucket/prefix): %w", dir, CaptureLayout, err)
	}
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("source %s: not a directory", dir)
	}
	return &DirSource{dir: abs}, nil
}

// Name implements Source.
func (d *DirSource) Name() string { return d.dir }

// List implements Source. Files are listed in the order of their slash
// separated relative paths, as S3 lists keys; an hour folder compacted by
// rewind compact is listed through its manifest (see folders).
func (d *DirSource) List(ctx context.Context, fn func(Object) error) error {
	return d.walk(ctx, "", fn)
}

// walk lists the files under rel (a slash-separated path relative to the
// directory, "" for all of it), keyed relative to the directory.
func (d *DirSource) walk(ctx context.Context, rel string, fn func(Object) error) error {
	root := filepath.Join(d.dir, filepath.FromSlash(rel))
	fo := &folders{
		emit: fn,
		// A local copy of the capture (aws s3 sync of the bucket or of a
		// prefix) keeps the manifest's S3 keys, so they are matched by
		// their trailing path.
		inFolder: func(entryDir, folder string) bool {
			return entryDir == folder || folder == "." || strings.HasSuffix(entryDir, "/"+folder)
		},
		read: func(_ context.Context, o Object) (*compact.Manifest, error) {
			b, err := os.ReadFile(o.Name)
			if err != nil {
				return nil, fmt.Errorf("source %s: read manifest: %w", d.dir, err)
			}
			return compact.ParseManifest(o.Name, b)
		},
	}
	// WalkDir visits entries in lexical order within a directory, which
	// for the table=/dt=/hour= layout is key order.
	err := filepath.WalkDir(root, func(path string, de fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("source %s: %w", d.dir, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if de.IsDir() || strings.HasPrefix(de.Name(), ".") {
			return nil
		}
		manifest := de.Name() == compact.ManifestName
		if !manifest && !strings.HasSuffix(de.Name(), ".parquet") {
			return nil
		}
		fi, err := de.Info()
		if err != nil {
			return fmt.Errorf("source %s: %w", path, err)
		}
		r, err := filepath.Rel(d.dir, path)
		if err != nil {
			return err
		}
		return fo.add(ctx, Object{
			Name: path,
			Key:  filepath.ToSlash(r),
			ETag: fmt.Sprintf("mtime:%d", fi.ModTime().UnixNano()),
			Size: fi.Size(),
		}, manifest)
	})
	if err != nil {
		return err
	}
	return fo.finish(ctx)
}

// Open implements Source.
func (d *DirSource) Open(ctx context.Context, o Object) (Content, string, int64, error) {
	f, err := os.Open(o.Name)
	if err != nil {
		return nil, "", 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, "", 0, err
	}
	return f, fmt.Sprintf("mtime:%d", fi.ModTime().UnixNano()), fi.Size(), nil
}

// S3API is the part of the S3 client a source uses.
type S3API interface {
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

var _ S3API = (*s3.Client)(nil)

// S3Source reads the capture objects under a bucket prefix.
type S3Source struct {
	API    S3API
	Bucket string
	// Prefix is the key prefix without slashes at either end; "" for the
	// whole bucket.
	Prefix string
	// PageSize is the MaxKeys of each ListObjectsV2 call. Default 0: S3's
	// own (1000).
	PageSize int32
	// CallTimeout bounds the GetObject of each compaction manifest.
	// Default 60s.
	CallTimeout time.Duration
}

// Name implements Source.
func (s *S3Source) Name() string {
	if s.Prefix == "" {
		return "s3://" + s.Bucket
	}
	return "s3://" + s.Bucket + "/" + s.Prefix
}

// List implements Source, following ListObjectsV2 continuation tokens;
// an hour folder compacted by rewind compact is listed through its
// manifest (see folders), read with one GetObject bounded by CallTimeout.
func (s *S3Source) List(ctx context.Context, fn func(Object) error) error {
	in := &s3.ListObjectsV2Input{Bucket: aws.String(s.Bucket)}
	if s.Prefix != "" {
		in.Prefix = aws.String(s.Prefix + "/")
	}
	if s.PageSize > 0 {
		in.MaxKeys = aws.Int32(s.PageSize)
	}
	timeout := s.CallTimeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	fo := &folders{
		emit:     fn,
		inFolder: func(entryDir, folder string) bool { return entryDir == folder },
		read: func(ctx context.Context, o Object) (*compact.Manifest, error) {
			return compact.ReadManifest(ctx, s.API, s.Bucket, o.Key, timeout)
		},
	}
	pg := s3.NewListObjectsV2Paginator(s.API, in)
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list %s: %w", s.Name(), err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			manifest := path.Base(key) == compact.ManifestName
			if !manifest && !strings.HasSuffix(key, ".parquet") {
				continue
			}
			if err := fo.add(ctx, Object{
				Name: "s3://" + s.Bucket + "/" + key,
				Key:  key,
				ETag: strings.Trim(aws.ToString(o.ETag), `"`),
				Size: aws.ToInt64(o.Size),
			}, manifest); err != nil {
				return err
			}
		}
	}
	return fo.finish(ctx)
}

// Open implements Source. The object is read into memory: capture objects
// are one Lambda batch each, a few megabytes at most.
func (s *S3Source) Open(ctx context.Context, o Object) (Content, string, int64, error) {
	out, err := s.API.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(o.Key)})
	if err != nil {
		return nil, "", 0, err
	}
	defer out.Body.Close()
	var buf bytes.Buffer
	if n := aws.ToInt64(out.ContentLength); n > 0 {
		buf.Grow(int(n))
	}
	if _, err := io.Copy(&buf, out.Body); err != nil {
		return nil, "", 0, fmt.Errorf("read body: %w", err)
	}
	if n := aws.ToInt64(out.ContentLength); n > 0 && int64(buf.Len()) != n {
		return nil, "", 0, fmt.Errorf("read body: got %d bytes of %d", buf.Len(), n)
	}
	return nopReaderAt{bytes.NewReader(buf.Bytes())}, strings.Trim(aws.ToString(out.ETag), `"`), int64(buf.Len()), nil
}

type nopReaderAt struct{ *bytes.Reader }

func (nopReaderAt) Close() error { return nil }

// ListWindow implements WindowSource: it walks only the partitions that
// overlap w.
func (d *DirSource) ListWindow(ctx context.Context, w Window, fn func(Object) error) error {
	return listWindow(ctx, dirTree{d}, w, fn)
}

type dirTree struct{ d *DirSource }

func (t dirTree) children(_ context.Context, rel string) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(t.d.dir, filepath.FromSlash(rel)))
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", t.d.dir, err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

func (t dirTree) objects(ctx context.Context, rel string, fn func(Object) error) error {
	if _, err := os.Stat(filepath.Join(t.d.dir, filepath.FromSlash(rel))); errors.Is(err, fs.ErrNotExist) {
		return nil // an hour without objects
	}
	return t.d.walk(ctx, rel, fn)
}

// ListWindow implements WindowSource: one ListObjectsV2 (with "/" as the
// delimiter) for the tables and one per table for its days, then one
// listing per hour partition that overlaps w, listWorkers at a time.
// ListObjectsV2 returns keys in ascending UTF-8 binary order, and with a
// delimiter rolls the keys under each next "/" into one CommonPrefixes
// entry, which is how S3 documents listing "folders".
func (s *S3Source) ListWindow(ctx context.Context, w Window, fn func(Object) error) error {
	return listWindow(ctx, s3Tree{s}, w, fn)
}

type s3Tree struct{ s *S3Source }

func (t s3Tree) prefix(rel string) string {
	p := t.s.Prefix
	if rel != "" {
		if p != "" {
			p += "/"
		}
		p += rel
	}
	if p != "" {
		p += "/"
	}
	return p
}

func (t s3Tree) children(ctx context.Context, rel string) ([]string, error) {
	p := t.prefix(rel)
	in := &s3.ListObjectsV2Input{Bucket: aws.String(t.s.Bucket), Delimiter: aws.String("/")}
	if p != "" {
		in.Prefix = aws.String(p)
	}
	var out []string
	pg := s3.NewListObjectsV2Paginator(t.s.API, in)
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list s3://%s/%s: %w", t.s.Bucket, p, err)
		}
		for _, cp := range page.CommonPrefixes {
			name := strings.TrimSuffix(strings.TrimPrefix(aws.ToString(cp.Prefix), p), "/")
			if name != "" {
				out = append(out, name)
			}
		}
	}
	return out, nil
}

func (t s3Tree) objects(ctx context.Context, rel string, fn func(Object) error) error {
	sub := *t.s
	sub.Prefix = strings.TrimSuffix(t.prefix(rel), "/")
	return sub.List(ctx, fn)
}

// folders groups a listing, given in key order, by folder, and lists each
// folder as compact.Select says a reader must: a folder without a
// manifest through its small objects (a compact-* file there is an orphan
// of a compaction that stopped before its manifest), and one with a
// manifest through the manifest's outputs and the objects it does not
// list (records delivered after compaction). Objects a manifest replaces
// are not listed even while they still exist (a crash between the
// manifest and the deletes), so every event is read once.
//
// An index built before compaction stays valid: the store keeps the
// small objects' events, and a later ingest reads each large file once
// (it is new to the store) and adds none of its events again, since the
// store keys events by event ID.
type folders struct {
	emit func(Object) error
	// read returns the manifest o.
	read func(ctx context.Context, o Object) (*compact.Manifest, error)
	// inFolder reports whether a key the manifest lists, of folder
	// entryDir, is one of folder's (the listing's own folder of the
	// manifest).
	inFolder func(entryDir, folder string) bool

	// open are the folders still being listed, outermost first: with the
	// table=/dt=/hour= layout just one, but a folder's files and its
	// subfolders' interleave in key order.
	open []*folder
}

type folder struct {
	dir      string
	objs     []Object
	manifest *Object
}

// add takes the next object of the listing; manifest says it is a
// folder's compact.ManifestName.
func (f *folders) add(ctx context.Context, o Object, manifest bool) error {
	dir := path.Dir(o.Key)
	for n := len(f.open); n > 0; n = len(f.open) {
		top := f.open[n-1]
		if top.dir == dir || top.dir == "." || strings.HasPrefix(dir, top.dir+"/") {
			break
		}
		f.open = f.open[:n-1]
		if err := f.flush(ctx, top); err != nil {
			return err
		}
	}
	if n := len(f.open); n == 0 || f.open[n-1].dir != dir {
		f.open = append(f.open, &folder{dir: dir})
	}
	top := f.open[len(f.open)-1]
	if manifest {
		top.manifest = &o
		return nil
	}
	top.objs = append(top.objs, o)
	return nil
}

// finish lists the folders still open.
func (f *folders) finish(ctx context.Context) error {
	for n := len(f.open); n > 0; n = len(f.open) {
		top := f.open[n-1]
		f.open = f.open[:n-1]
		if err := f.flush(ctx, top); err != nil {
			return err
		}
	}
	return nil
}

func (f *folders) flush(ctx context.Context, fo *folder) error {
	keys := make([]string, len(fo.objs))
	byKey := make(map[string]Object, len(fo.objs))
	for i, o := range fo.objs {
		keys[i] = o.Key
		byKey[o.Key] = o
	}
	var m *compact.Manifest
	if fo.manifest != nil {
		var err error
		if m, err = f.manifest(ctx, fo); err != nil {
			return err
		}
	}
	for _, k := range compact.Select(keys, m) {
		o, ok := byKey[k]
		if !ok {
			return fmt.Errorf("manifest %s names %s, which is not there: the hour's compacted events are missing; restore the file, or delete the manifest if the hour's small objects are all still there, and run rewind compact again", fo.manifest.Name, path.Base(k))
		}
		if err := f.emit(o); err != nil {
			return err
		}
	}
	return nil
}

// manifest reads fo's manifest with its keys rewritten as the listing's
// own keys of the folder, so that compact.Select can compare them.
func (f *folders) manifest(ctx context.Context, fo *folder) (*compact.Manifest, error) {
	m, err := f.read(ctx, *fo.manifest)
	if err != nil {
		return nil, err
	}
	local := func(k string) (string, error) {
		if !strings.HasSuffix(k, ".parquet") || !f.inFolder(path.Dir(k), fo.dir) {
			return "", fmt.Errorf("manifest %s lists %q, which is not a Parquet object of its own folder; delete the manifest and run rewind compact again", fo.manifest.Name, k)
		}
		if fo.dir == "." {
			return path.Base(k), nil
		}
		return fo.dir + "/" + path.Base(k), nil
	}
	out := &compact.Manifest{Version: m.Version, Events: m.Events, Written: m.Written}
	for _, o := range m.Outputs {
		k, err := local(o.Key)
		if err != nil {
			return nil, err
		}
		o.Key = k
		out.Outputs = append(out.Outputs, o)
	}
	if len(out.Outputs) == 0 && m.Events > 0 {
		return nil, fmt.Errorf("manifest %s: %d events but no outputs; delete the manifest and run rewind compact again", fo.manifest.Name, m.Events)
	}
	for _, in := range m.Inputs {
		k, err := local(in)
		if err != nil {
			return nil, err
		}
		out.Inputs = append(out.Inputs, k)
	}
	return out, nil
}
