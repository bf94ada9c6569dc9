package compact_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer/compact"
	"github.com/ddbrewind/rewind/indexer/indextest"
	"github.com/ddbrewind/rewind/internal/localaws"
	"github.com/parquet-go/parquet-go"
)

// crashS3 fails every call after the first n writes (puts and deletes):
// a process that dies there.
type crashS3 struct {
	compact.S3
	writes, n int
}

var errCrash = errors.New("crash")

func (c *crashS3) write() error {
	c.writes++
	if c.writes > c.n {
		return errCrash
	}
	return nil
}

func (c *crashS3) PutObject(ctx context.Context, in *s3.PutObjectInput, o ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if err := c.write(); err != nil {
		return nil, err
	}
	return c.S3.PutObject(ctx, in, o...)
}

func (c *crashS3) DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, o ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	if err := c.write(); err != nil {
		return nil, err
	}
	return c.S3.DeleteObject(ctx, in, o...)
}

// readAll reads the capture as a reader applying Select does, and
// returns the event IDs it sees, with repeats.
func readAll(t *testing.T, c *s3.Client, bucket string) []string {
	t.Helper()
	ctx := context.Background()
	byHour := map[string][]string{}
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: &bucket})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			byHour[path.Dir(*o.Key)] = append(byHour[path.Dir(*o.Key)], *o.Key)
		}
	}
	var ids []string
	for dir, keys := range byHour {
		var m *compact.Manifest
		if slices.Contains(keys, dir+"/"+compact.ManifestName) {
			var err error
			if m, err = compact.ReadManifest(ctx, c, bucket, dir+"/"+compact.ManifestName, 0); err != nil {
				t.Fatal(err)
			}
		}
		for _, k := range compact.Select(keys, m) {
			out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &k})
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(out.Body)
			out.Body.Close()
			rows, err := parquet.Read[rewind.ParquetRow](bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Fatalf("%s: %v", k, err)
			}
			for _, r := range rows {
				ids = append(ids, r.EventID)
			}
		}
	}
	slices.Sort(ids)
	return ids
}

// TestCompactCrashAnywhere: a compaction that dies after any number of
// writes leaves every event readable exactly once, and a second run
// finishes the job: one file per hour, sorted by tenant, no duplicates.
func TestCompactCrashAnywhere(t *testing.T) {
	ctx := context.Background()
	srv, err := localaws.StartS3(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cfg, err := srv.Config(ctx, "compact")
	if err != nil {
		t.Fatal(err)
	}
	c := localaws.NewS3Client(cfg)
	evs := indextest.NewGen(5).Events(150)
	var want []string
	seen := map[string]bool{}
	for _, e := range evs {
		if !seen[e.EventID] {
			seen[e.EventID] = true
			want = append(want, e.EventID)
		}
	}
	slices.Sort(want)
	now := func() time.Time { return evs[len(evs)-1].Time.Add(3 * time.Hour) }
	// The small objects, encoded once: every crash point starts from the
	// same bytes.
	type object struct {
		key  string
		data []byte
	}
	var encoded []object
	for key, oe := range indextest.Objects("", evs, 15) {
		data, err := indextest.EncodeParquet(oe)
		if err != nil {
			t.Fatal(err)
		}
		encoded = append(encoded, object{key, data})
	}
	for crashAfter := 0; ; crashAfter++ {
		bucket := "b" + strings.Repeat("x", 3) + "-" + string(rune('a'+crashAfter%26)) + string(rune('a'+crashAfter/26))
		if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket}); err != nil {
			t.Fatal(err)
		}
		first := true
		for _, obj := range encoded {
			key, data := obj.key, obj.data
			for _, k := range []string{key, strings.TrimSuffix(key, ".parquet") + "-dup.parquet"} {
				if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String(k), Body: bytes.NewReader(data)}); err != nil {
					t.Fatal(err)
				}
				if !first {
					break
				}
				first = false
			}
		}
		o := compact.Options{Bucket: bucket, Now: now}
		before := readAll(t, c, bucket) // a retried batch: some events twice
		_, err := compact.Run(ctx, &crashS3{S3: c, n: crashAfter}, o)
		// Each event is read at least once and no more often than before.
		got := readAll(t, c, bucket)
		if !slices.Equal(slices.Compact(slices.Clone(got)), want) || len(got) > len(before) {
			t.Fatalf("after a crash at write %d: %d event IDs read (%d distinct), want the %d distinct ones, at most %d reads", crashAfter+1, len(got), len(slices.Compact(slices.Clone(got))), len(want), len(before))
		}
		if err == nil && !slices.Equal(got, want) {
			t.Fatalf("after compaction: %d event IDs read, want %d once each", len(got), len(want))
		}
		if err == nil {
			if crashAfter < 10 {
				t.Fatalf("compaction made only %d writes", crashAfter)
			}
			t.Logf("%d events in %d objects: every one of the %d writes crashed once", len(evs), len(encoded), crashAfter)
			break // no crash: every write point was tried
		}
		if !errors.Is(err, errCrash) {
			t.Fatal(err)
		}
		sum, err := compact.Run(ctx, c, o)
		if err != nil {
			t.Fatalf("run after a crash at write %d: %v", crashAfter+1, err)
		}
		if got := readAll(t, c, bucket); !slices.Equal(got, want) {
			t.Fatalf("after the second run: %d event IDs read, want %d once each", len(got), len(want))
		}
		if sum.ObjectsAfter > len(sum.Hours) {
			t.Fatalf("after the second run (crash at write %d): %d objects in %d hours", crashAfter+1, sum.ObjectsAfter, len(sum.Hours))
		}
	}
}
