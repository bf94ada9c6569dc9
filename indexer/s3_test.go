package indexer_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/ddbrewind/rewind/indexer"
	"github.com/ddbrewind/rewind/indexer/indextest"
	"github.com/ddbrewind/rewind/internal/localaws"
	"github.com/parquet-go/parquet-go"
)

// countingS3 counts ListObjectsV2 calls, which may be concurrent.
type countingS3 struct {
	indexer.S3API
	lists atomic.Int64
}

func (c *countingS3) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	c.lists.Add(1)
	return c.S3API.ListObjectsV2(ctx, in, opts...)
}

func TestIngestFromS3(t *testing.T) {
	env := localaws.S3ForTest(t)
	ctx := context.Background()
	evs := indextest.NewGen(4).Events(900)
	objs := indextest.Objects("capture", evs, 40)
	put := func(key string, body []byte) {
		t.Helper()
		if _, err := env.Client.PutObject(ctx, &s3.PutObjectInput{Bucket: &env.Bucket, Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}
	var keys []string
	for k, v := range objs {
		data, err := indextest.EncodeParquet(v, parquet.Compression(&parquet.Zstd))
		if err != nil {
			t.Fatal(err)
		}
		put(k, data)
		keys = append(keys, k)
	}
	slices.Sort(keys)
	// Outside the prefix, and not Parquet: both ignored.
	put("other/table=x/dt=2026-11-20/hour=10/a.parquet", []byte("not read"))
	put("capture/_SUCCESS", []byte(""))
	put("capture/table=orders/dt=2026-11-20/hour=10/zz-broken.parquet", []byte("PAR1garbagePAR1"))

	api := &countingS3{S3API: env.Client}
	src, err := indexer.ParseSource("s3://"+env.Bucket+"/capture/", api)
	if err != nil {
		t.Fatal(err)
	}
	src.(*indexer.S3Source).PageSize = 7
	if src.Name() != "s3://"+env.Bucket+"/capture" {
		t.Fatalf("source name %q", src.Name())
	}
	s := openStore(t, t.TempDir())
	res, err := s.Ingest(ctx, src, indexer.Config{Log: quiet})
	var pe *indexer.PartialError
	if !errors.As(err, &pe) || len(pe.Failed) != 1 || pe.Failed[0].Object != "s3://"+env.Bucket+"/capture/table=orders/dt=2026-11-20/hour=10/zz-broken.parquet" {
		t.Fatalf("err = %v; want the broken object named", err)
	}
	if res.Listed != len(objs)+1 || res.Events != int64(len(evs)) {
		t.Fatalf("ingest: %+v; want %d objects listed, %d events", res.Progress, len(objs)+1, len(evs))
	}
	if want := (len(objs)+2)/7 + 1; int(api.lists.Load()) < want {
		t.Fatalf("%d ListObjectsV2 calls for %d keys in pages of 7; pagination not followed", api.lists.Load(), len(objs)+2)
	}
	var etags []string
	s.Objects(func(o indexer.ObjectInfo) error {
		etags = append(etags, o.ETag)
		return nil
	})
	if len(etags) != len(objs) || etags[0] == "" || etags[0][0] == '"' {
		t.Fatalf("manifest ETags %v; want %d unquoted", etags[:min(3, len(etags))], len(objs))
	}

	// Overwriting an object changes its ETag: read again, nothing new.
	data, _ := indextest.EncodeParquet(objs[keys[0]], parquet.Compression(&parquet.Snappy))
	put(keys[0], data)
	res, _ = s.Ingest(ctx, src, indexer.Config{Log: quiet})
	if res.Ingested != 1 || res.Events != 0 || res.Duplicates != int64(len(objs[keys[0]])) {
		t.Fatalf("after overwrite: %+v; want 1 object re-read, all duplicates", res.Progress)
	}
}
