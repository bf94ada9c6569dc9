package indexer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
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
	// List calls fn for every .parquet object, in key order.
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
// separated relative paths, as S3 lists keys.
func (d *DirSource) List(ctx context.Context, fn func(Object) error) error {
	// WalkDir visits entries in lexical order within a directory, which
	// for the table=/dt=/hour= layout is key order.
	return filepath.WalkDir(d.dir, func(path string, de fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("source %s: %w", d.dir, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if de.IsDir() || !strings.HasSuffix(de.Name(), ".parquet") || strings.HasPrefix(de.Name(), ".") {
			return nil
		}
		fi, err := de.Info()
		if err != nil {
			return fmt.Errorf("source %s: %w", path, err)
		}
		rel, err := filepath.Rel(d.dir, path)
		if err != nil {
			return err
		}
		return fn(Object{
			Name: path,
			Key:  filepath.ToSlash(rel),
			ETag: fmt.Sprintf("mtime:%d", fi.ModTime().UnixNano()),
			Size: fi.Size(),
		})
	})
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
}

// Name implements Source.
func (s *S3Source) Name() string {
	if s.Prefix == "" {
		return "s3://" + s.Bucket
	}
	return "s3://" + s.Bucket + "/" + s.Prefix
}

// List implements Source, following ListObjectsV2 continuation tokens.
func (s *S3Source) List(ctx context.Context, fn func(Object) error) error {
	in := &s3.ListObjectsV2Input{Bucket: aws.String(s.Bucket)}
	if s.Prefix != "" {
		in.Prefix = aws.String(s.Prefix + "/")
	}
	if s.PageSize > 0 {
		in.MaxKeys = aws.Int32(s.PageSize)
	}
	pg := s3.NewListObjectsV2Paginator(s.API, in)
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list %s: %w", s.Name(), err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if !strings.HasSuffix(key, ".parquet") {
				continue
			}
			if err := fn(Object{
				Name: "s3://" + s.Bucket + "/" + key,
				Key:  key,
				ETag: strings.Trim(aws.ToString(o.ETag), `"`),
				Size: aws.ToInt64(o.Size),
			}); err != nil {
				return err
			}
		}
	}
	return nil
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
	root := filepath.Join(t.d.dir, filepath.FromSlash(rel))
	if _, err := os.Stat(root); errors.Is(err, fs.ErrNotExist) {
		return nil // an hour without objects
	}
	sub := &DirSource{dir: root}
	return sub.List(ctx, func(o Object) error {
		o.Key = rel + "/" + o.Key
		return fn(o)
	})
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
