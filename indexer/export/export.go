package export

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ddbrewind/rewind"
)

// S3API is the part of the S3 client an export read uses.
type S3API interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, opts ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
}

var _ S3API = (*s3.Client)(nil)

// Config configures Open.
type Config struct {
	// S3 reads s3:// locations. Required for them; unused for directories.
	S3 S3API
	// Tenant says which key attribute (default "pk") and regex give an
	// item's tenant; use the capture's settings (REWIND_TENANT_ATTRIBUTE,
	// REWIND_TENANT_REGEX) so tenants match across sources.
	Tenant rewind.TenantRule
	// TTLAttribute is the table's TTL attribute, as DescribeTimeToLive
	// names it. An incremental export carries no userIdentity, so nothing
	// in it tells a TTL expiry from a delete: a removal whose old image
	// holds a Number in this attribute at or before the export window's
	// end, in epoch seconds, is taken for a TTL expiry (DynamoDB documents
	// that TTL deletes an item once the epoch seconds in its TTL attribute
	// are less than the current time). Default empty: unknown, no removal
	// is marked, and TTLCounts says how many could not be checked.
	TTLAttribute string
	// Log receives warnings about oddities that do not stop the read.
	// Default slog.Default().
	Log *slog.Logger
}

// TTLCounts are the removals an export's reads went through, by what they
// say about TTL. The counts grow as data files are read.
type TTLCounts struct {
	// Inferred removals were taken for TTL expiries.
	Inferred int64
	// NoAttribute removals could not be checked: no TTLAttribute known.
	NoAttribute int64
	// NoOldImage removals could not be checked: the export has no old
	// image of the item (a NEW_IMAGE export).
	NoOldImage int64
}

// Unchecked is how many removals could not be checked.
func (c TTLCounts) Unchecked() int64 { return c.NoAttribute + c.NoOldImage }

// DataFile is one data file of an export, as its manifest lists it.
type DataFile struct {
	FileEntry
	// ManifestLine is the entry's line in manifest-files.json.
	ManifestLine int
	// Name is where the file is read from: s3://bucket/key or a path.
	Name string

	rel string // key under the store's root
}

// Export is an opened incremental export.
type Export struct {
	// ID is the export id (the last part of the export ARN), ARN the
	// export's ARN.
	ID, ARN string
	// Table and Region are the exported table's, from its ARN.
	Table, Region string
	// From and To are the export window [From, To).
	From, To time.Time
	// View is the export's view type: NEW_AND_OLD_IMAGES or NEW_IMAGE.
	View string
	// Summary is manifest-summary.json as read.
	Summary Summary
	// Files are the data files, in manifest order.
	Files []DataFile

	loc     string
	st      store
	tenant  rewind.TenantRule
	ttlAttr string
	log     *slog.Logger

	ttlInferred, ttlNoAttr, ttlNoOld atomic.Int64
}

// TTLCounts returns what the reads so far found about TTL expiries.
func (e *Export) TTLCounts() TTLCounts {
	return TTLCounts{Inferred: e.ttlInferred.Load(), NoAttribute: e.ttlNoAttr.Load(), NoOldImage: e.ttlNoOld.Load()}
}

// store reads objects by key relative to the root the export's layout
// starts from (the directory or key prefix holding AWSDynamoDB/).
type store interface {
	name(rel string) string
	open(ctx context.Context, rel string) (io.ReadCloser, error)
	size(ctx context.Context, rel string) (int64, error)
}

// layoutDir is the directory exports are written under.
const layoutDir = "AWSDynamoDB"

// splitLocation splits an export location into the root (everything before
// AWSDynamoDB/) and the export's directory name. The location is the
// export's directory (trailing slash optional) or its manifest-summary.json.
func splitLocation(p string) (root, id string, err error) {
	p = strings.TrimSuffix(p, "/")
	p = strings.TrimSuffix(p, "/manifest-summary.json")
	dir, id := path.Split(p)
	dir = strings.TrimSuffix(dir, "/")
	parent := path.Base(dir)
	if id == "" || parent != layoutDir {
		return "", "", fmt.Errorf("want the export's directory, .../%s/<export-id>/", layoutDir)
	}
	return strings.TrimSuffix(dir, layoutDir), id, nil
}

// Open reads and checks the manifests of the export at location: an S3
// URI s3://bucket/prefix/AWSDynamoDB/<export-id>/ or a local directory
// of the same layout (a copy of the bucket prefix, so that the data files
// are in ../data/). The data files are read later, by ReadFile.
func Open(ctx context.Context, location string, cfg Config) (*Export, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if err := cfg.Tenant.Validate(); err != nil {
		return nil, err
	}
	e := &Export{tenant: cfg.Tenant, ttlAttr: cfg.TTLAttribute, log: cfg.Log}
	var dirRel string
	if rest, ok := strings.CutPrefix(location, "s3://"); ok {
		bucket, key, _ := strings.Cut(rest, "/")
		if bucket == "" {
			return nil, fmt.Errorf("export %s: no bucket", location)
		}
		root, id, err := splitLocation(key)
		if err != nil {
			return nil, fmt.Errorf("export %s: %w", location, err)
		}
		if cfg.S3 == nil {
			return nil, fmt.Errorf("export %s: no S3 client", location)
		}
		e.st = &s3Store{api: cfg.S3, bucket: bucket, root: root}
		dirRel = layoutDir + "/" + id
		e.loc = "s3://" + bucket + "/" + root + dirRel + "/"
	} else {
		if strings.Contains(location, "://") {
			return nil, fmt.Errorf("export %s: unknown scheme (want s3://bucket/prefix/%s/<export-id>/ or a directory)", location, layoutDir)
		}
		abs, err := filepath.Abs(location)
		if err != nil {
			return nil, fmt.Errorf("export %s: %w", location, err)
		}
		root, id, err := splitLocation(filepath.ToSlash(abs))
		if err != nil {
			return nil, fmt.Errorf("export %s: %w", location, err)
		}
		e.st = &dirStore{root: filepath.FromSlash(root)}
		dirRel = layoutDir + "/" + id
		e.loc = filepath.Join(filepath.FromSlash(root), layoutDir, id)
	}

	summaryRel := dirRel + "/manifest-summary.json"
	data, err := readAll(ctx, e.st, summaryRel)
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", e.loc, err)
	}
	sum, in, err := parseSummary(data)
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", e.st.name(summaryRel), err)
	}
	e.Summary = sum
	e.ID, e.ARN, e.Table, e.Region = in.id, in.arn, in.table, in.region
	e.From, e.To, e.View = in.from, in.to, in.view
	if in.id != path.Base(dirRel) {
		cfg.Log.Warn("export directory is not named after the export id in its manifest",
			slog.String("export", e.loc), slog.String("id", in.id))
	}

	filesRel := dirRel + "/manifest-files.json"
	rc, err := e.st.open(ctx, filesRel)
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", e.loc, err)
	}
	entries, err := parseFiles(rc)
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", e.st.name(filesRel), err)
	}
	var total int64
	for i, f := range entries {
		rel, err := relKey(in.prefix, f.DataFileS3Key)
		if err != nil {
			return nil, fmt.Errorf("export %s line %d: %w", e.st.name(filesRel), i+1, err)
		}
		e.Files = append(e.Files, DataFile{FileEntry: f, ManifestLine: i + 1, Name: e.st.name(rel), rel: rel})
		total += f.ItemCount
	}
	if total != sum.ItemCount {
		cfg.Log.Warn("export's files manifest and summary disagree on the item count",
			slog.String("export", e.loc), slog.Int64("files", total), slog.Int64("summary", sum.ItemCount))
	}
	return e, nil
}

// relKey turns a dataFileS3Key (from the bucket root) into a key relative
// to the layout's root: the export may have been copied to another bucket,
// prefix or directory since it was written.
func relKey(prefix, key string) (string, error) {
	rel := key
	if prefix != "" {
		rel = strings.TrimPrefix(rel, prefix+"/")
	}
	if !strings.HasPrefix(rel, layoutDir+"/") || !filepath.IsLocal(filepath.FromSlash(rel)) || path.Clean(rel) != rel {
		return "", fmt.Errorf("dataFileS3Key %q is not under %s/%s/", key, prefix, layoutDir)
	}
	return rel, nil
}

// Location is where the export was opened: s3://bucket/prefix/AWSDynamoDB/<id>/
// or the directory's absolute path.
func (e *Export) Location() string { return e.loc }

// Size returns the size of a data file as stored.
func (e *Export) Size(ctx context.Context, f DataFile) (int64, error) {
	n, err := e.st.size(ctx, f.rel)
	if err != nil {
		return 0, fmt.Errorf("data file %s: %w", f.Name, err)
	}
	return n, nil
}

func readAll(ctx context.Context, st store, rel string) ([]byte, error) {
	rc, err := st.open(ctx, rel)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", st.name(rel), err)
	}
	return b, nil
}

// dirStore reads a local directory.
type dirStore struct{ root string }

func (d *dirStore) name(rel string) string { return filepath.Join(d.root, filepath.FromSlash(rel)) }

func (d *dirStore) open(_ context.Context, rel string) (io.ReadCloser, error) {
	return os.Open(d.name(rel))
}

func (d *dirStore) size(_ context.Context, rel string) (int64, error) {
	fi, err := os.Stat(d.name(rel))
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// s3Store reads keys under a bucket prefix.
type s3Store struct {
	api    S3API
	bucket string
	root   string // "" or ends with "/"
}

func (s *s3Store) name(rel string) string { return "s3://" + s.bucket + "/" + s.root + rel }

func (s *s3Store) open(ctx context.Context, rel string) (io.ReadCloser, error) {
	out, err := s.api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.root + rel)})
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", s.name(rel), err)
	}
	return out.Body, nil
}

func (s *s3Store) size(ctx context.Context, rel string) (int64, error) {
	out, err := s.api.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.root + rel)})
	if err != nil {
		return 0, fmt.Errorf("head %s: %w", s.name(rel), err)
	}
	if out.ContentLength == nil {
		return 0, errors.New("no content length")
	}
	return *out.ContentLength, nil
}
