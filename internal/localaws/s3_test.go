package localaws_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/ddbrewind/rewind/internal/localaws"
)

func TestS3RoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func(context.Context) (*localaws.S3, error)
	}{
		{"http", localaws.StartS3},
		{"https", localaws.StartS3TLS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			srv, err := tc.start(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			cfg, err := srv.Config(ctx, "roundtrip")
			if err != nil {
				t.Fatal(err)
			}
			c := localaws.NewS3Client(cfg)
			bucket := aws.String("rewind-roundtrip")
			if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: bucket}); err != nil {
				t.Fatalf("CreateBucket: %v", err)
			}
			https := tc.name == "https"
			testS3RoundTrip(t, c, bucket, https)
		})
	}
}

func testS3RoundTrip(t *testing.T, c *s3.Client, bucket *string, https bool) {
	ctx := t.Context()
	body := bytes.Repeat([]byte("rewind "), 10000)
	get := func(t *testing.T, key string) {
		t.Helper()
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: aws.String(key), ChecksumMode: types.ChecksumModeEnabled})
		if err != nil {
			t.Fatalf("GetObject %s: %v", key, err)
		}
		got, err := io.ReadAll(out.Body)
		out.Body.Close()
		if err != nil {
			t.Fatalf("GetObject %s: read: %v", key, err)
		}
		if !bytes.Equal(got, body) {
			t.Fatalf("GetObject %s: got %d bytes %.20q..., want the %d put", key, len(got), got, len(body))
		}
	}
	algs := []types.ChecksumAlgorithm{"", types.ChecksumAlgorithmCrc32, types.ChecksumAlgorithmCrc32c,
		types.ChecksumAlgorithmCrc64nvme, types.ChecksumAlgorithmSha1, types.ChecksumAlgorithmSha256}
	for _, alg := range algs {
		name := strings.ToLower(string(alg))
		if alg == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) {
			key := "obj/" + name + ".bin"
			_, err := c.PutObject(ctx, &s3.PutObjectInput{
				Bucket:            bucket,
				Key:               aws.String(key),
				Body:              bytes.NewReader(body),
				ChecksumAlgorithm: alg,
				ContentType:       aws.String("application/octet-stream"),
				Metadata:          map[string]string{"rewind-test": "yes"},
			})
			if err != nil {
				t.Fatalf("PutObject: %v", err)
			}
			get(t, key)
			head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: bucket, Key: aws.String(key)})
			if err != nil {
				t.Fatalf("HeadObject: %v", err)
			}
			if aws.ToInt64(head.ContentLength) != int64(len(body)) || head.Metadata["rewind-test"] != "yes" {
				t.Errorf("HeadObject: length %d metadata %v", aws.ToInt64(head.ContentLength), head.Metadata)
			}

			// A body that cannot seek: over HTTPS the SDK sends it
			// aws-chunked with a trailing checksum; over HTTP it refuses.
			_, err = c.PutObject(ctx, &s3.PutObjectInput{
				Bucket:            bucket,
				Key:               aws.String(key + ".stream"),
				Body:              io.MultiReader(bytes.NewReader(body)),
				ContentLength:     aws.Int64(int64(len(body))),
				ChecksumAlgorithm: alg,
			})
			switch {
			case https && err != nil:
				t.Fatalf("PutObject unseekable: %v", err)
			case https:
				get(t, key+".stream")
			case err == nil:
				t.Errorf("PutObject unseekable over HTTP worked; the SDK used to refuse it: update StartS3's doc")
			}
		})
	}

	t.Run("BadDigest", func(t *testing.T) {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{
			Bucket:        bucket,
			Key:           aws.String("bad-digest"),
			Body:          bytes.NewReader(body),
			ChecksumCRC32: aws.String("AAAAAA=="),
		})
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != "BadDigest" {
			t.Errorf("PutObject with a wrong CRC32: got %v, want BadDigest", err)
		}
	})

	t.Run("NoSuchKey", func(t *testing.T) {
		_, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: aws.String("missing")})
		var nsk *types.NoSuchKey
		if !errors.As(err, &nsk) {
			t.Errorf("GetObject missing key: got %v, want NoSuchKey", err)
		}
	})
}

func TestS3ListPagination(t *testing.T) {
	env := localaws.S3ForTest(t)
	ctx := t.Context()
	c := env.Client

	// More than 1000 keys: the server's own page limit applies too.
	const n = 1005
	var want []string
	for i := range n {
		key := fmt.Sprintf("events/p%02d/%05d.parquet", i%3, i)
		want = append(want, key)
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(env.Bucket),
			Key:    aws.String(key),
			Body:   strings.NewReader(key),
		}); err != nil {
			t.Fatalf("PutObject %s: %v", key, err)
		}
	}
	slices.Sort(want)

	list := func(t *testing.T, in *s3.ListObjectsV2Input) (keys []string, prefixes []string, pages int) {
		t.Helper()
		p := s3.NewListObjectsV2Paginator(c, in)
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				t.Fatalf("ListObjectsV2 page %d: %v", pages, err)
			}
			pages++
			for _, o := range out.Contents {
				keys = append(keys, aws.ToString(o.Key))
			}
			for _, cp := range out.CommonPrefixes {
				prefixes = append(prefixes, aws.ToString(cp.Prefix))
			}
		}
		return keys, prefixes, pages
	}

	t.Run("default page size", func(t *testing.T) {
		keys, _, pages := list(t, &s3.ListObjectsV2Input{Bucket: aws.String(env.Bucket)})
		if !slices.Equal(keys, want) {
			t.Errorf("got %d keys, want %d", len(keys), len(want))
		}
		if pages != 2 {
			t.Errorf("got %d pages, want 2 (1000 + 5)", pages)
		}
	})
	t.Run("MaxKeys 7 with prefix", func(t *testing.T) {
		keys, _, pages := list(t, &s3.ListObjectsV2Input{
			Bucket:  aws.String(env.Bucket),
			Prefix:  aws.String("events/p01/"),
			MaxKeys: aws.Int32(7),
		})
		var wantP []string
		for _, k := range want {
			if strings.HasPrefix(k, "events/p01/") {
				wantP = append(wantP, k)
			}
		}
		if !slices.Equal(keys, wantP) {
			t.Errorf("got %d keys, want %d", len(keys), len(wantP))
		}
		if wantPages := (len(wantP) + 6) / 7; pages != wantPages {
			t.Errorf("got %d pages, want %d", pages, wantPages)
		}
	})
	t.Run("delimiter", func(t *testing.T) {
		keys, prefixes, _ := list(t, &s3.ListObjectsV2Input{
			Bucket:    aws.String(env.Bucket),
			Prefix:    aws.String("events/"),
			Delimiter: aws.String("/"),
		})
		if len(keys) != 0 || !slices.Equal(prefixes, []string{"events/p00/", "events/p01/", "events/p02/"}) {
			t.Errorf("got keys %v prefixes %v", keys, prefixes)
		}
	})
	t.Run("StartAfter", func(t *testing.T) {
		keys, _, _ := list(t, &s3.ListObjectsV2Input{
			Bucket:     aws.String(env.Bucket),
			StartAfter: aws.String(want[n-3]),
		})
		if !slices.Equal(keys, want[n-2:]) {
			t.Errorf("got %v, want %v", keys, want[n-2:])
		}
	})
}
