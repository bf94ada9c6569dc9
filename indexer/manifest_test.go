package indexer_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/ddbrewind/rewind/indexer"
	"github.com/ddbrewind/rewind/indexer/compact"
	"github.com/ddbrewind/rewind/indexer/indextest"
	"github.com/ddbrewind/rewind/internal/localaws"
	"github.com/ddbrewind/rewind/query"
)

// gettingS3 counts GetObject calls by key.
type gettingS3 struct {
	indexer.S3API
	mu   sync.Mutex
	gets map[string]int
}

func (c *gettingS3) GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	c.mu.Lock()
	if c.gets == nil {
		c.gets = map[string]int{}
	}
	c.gets[aws.ToString(in.Key)]++
	c.mu.Unlock()
	return c.S3API.GetObject(ctx, in, opts...)
}

func (c *gettingS3) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.gets
	c.gets = nil
	return g
}

// answers is what queries say of a store: its event count, every event
// with images, and the key set of the whole time line.
func answers(t *testing.T, s *indexer.Store) string {
	t.Helper()
	n, err := s.Count()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	res, err := query.KeySet(context.Background(), s, query.Query{}, &b, query.KeySetOptions{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	evs := allEvents(t, s)
	var ids []string
	for _, e := range evs {
		ids = append(ids, e.EventID+"@"+e.Time.Format(time.RFC3339Nano))
	}
	return strings.Join([]string{
		"count " + strconv.FormatInt(n, 10), "keyset items " + strconv.FormatInt(res.Items, 10), b.String(), strings.Join(ids, "\n"),
	}, "\n")
}

// compactedCapture puts a capture of several hours under capture/ in a
// local S3 bucket and returns its small objects, by key.
func compactedCapture(t *testing.T) (*localaws.S3Env, map[string][]byte, time.Time) {
	t.Helper()
	env := localaws.S3ForTest(t)
	evs := indextest.NewGen(7).Events(600)
	small := map[string][]byte{}
	for k, v := range indextest.Objects("capture", evs, 25) {
		data, err := indextest.EncodeParquet(v)
		if err != nil {
			t.Fatal(err)
		}
		small[k] = data
		putObject(t, env, k, data)
	}
	return env, small, evs[len(evs)-1].Time.Add(3 * time.Hour)
}

func putObject(t *testing.T, env *localaws.S3Env, key string, data []byte) {
	t.Helper()
	if _, err := env.Client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &env.Bucket, Key: aws.String(key), Body: bytes.NewReader(data)}); err != nil {
		t.Fatal(err)
	}
}

func runCompact(t *testing.T, env *localaws.S3Env, now time.Time) map[string]*compact.Manifest {
	t.Helper()
	ctx := context.Background()
	sum, err := compact.Run(ctx, env.Client, compact.Options{Bucket: env.Bucket, Prefix: "capture", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Compacted < 2 {
		t.Fatalf("compaction: %+v; want several hours compacted", sum)
	}
	manifests := map[string]*compact.Manifest{}
	for _, k := range listKeys(t, env) {
		if path.Base(k) == compact.ManifestName {
			m, err := compact.ReadManifest(ctx, env.Client, env.Bucket, k, 0)
			if err != nil {
				t.Fatal(err)
			}
			manifests[k] = m
		}
	}
	return manifests
}

func listKeys(t *testing.T, env *localaws.S3Env) []string {
	t.Helper()
	var keys []string
	pg := s3.NewListObjectsV2Paginator(env.Client, &s3.ListObjectsV2Input{Bucket: &env.Bucket})
	for pg.HasMorePages() {
		page, err := pg.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys
}

func s3Source(t *testing.T, env *localaws.S3Env, api indexer.S3API) indexer.Source {
	t.Helper()
	src, err := indexer.ParseSource("s3://"+env.Bucket+"/capture", api)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// ingestAll ingests src whole, or through its windowed listing.
func ingestAll(t *testing.T, s *indexer.Store, src indexer.Source, windowed bool) indexer.Result {
	t.Helper()
	cfg := indexer.Config{Log: quiet}
	if windowed {
		cfg.Window = win(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC))
	}
	res, err := s.Ingest(context.Background(), src, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func outputsOf(ms map[string]*compact.Manifest) (outputs, inputs []string) {
	for _, m := range ms {
		for _, o := range m.Outputs {
			outputs = append(outputs, o.Key)
		}
		inputs = append(inputs, m.Inputs...)
	}
	slices.Sort(outputs)
	slices.Sort(inputs)
	return outputs, inputs
}

// An index built before compaction stays valid: indexing again after
// rewind compact reads each large file once, adds none of its events
// again, and answers as before and as a fresh index of the compacted
// capture; the small objects a manifest replaces are never read, even
// while they still exist (a crash between the manifest and the deletes).
func TestIngestCompactedS3(t *testing.T) {
	for _, windowed := range []bool{false, true} {
		name := "full"
		if windowed {
			name = "window"
		}
		t.Run(name, func(t *testing.T) {
			env, small, now := compactedCapture(t)
			api := &gettingS3{S3API: env.Client}
			before := openStore(t, t.TempDir())
			ingestAll(t, before, s3Source(t, env, api), windowed)
			want := answers(t, before)
			api.take()

			manifests := runCompact(t, env, now)
			outputs, inputs := outputsOf(manifests)
			replaced := map[string]bool{}
			for _, k := range inputs {
				replaced[k] = true
			}
			if len(inputs) < len(small)/2 {
				t.Fatalf("manifests replace %d objects of %d", len(inputs), len(small))
			}
			checkGets := func(what string, gets map[string]int, wantOutputs int) {
				t.Helper()
				for k, n := range gets {
					if replaced[k] {
						t.Errorf("%s: replaced object %s read %d times", what, k, n)
					}
				}
				for _, k := range outputs {
					if gets[k] != wantOutputs {
						t.Errorf("%s: large file %s read %d times, want %d", what, k, gets[k], wantOutputs)
					}
				}
				for k := range manifests {
					if gets[k] != 1 {
						t.Errorf("%s: manifest %s read %d times, want 1", what, k, gets[k])
					}
				}
			}

			// The same store, again: each large file read once, no
			// event counted twice.
			res := ingestAll(t, before, s3Source(t, env, api), windowed)
			checkGets("re-index", api.take(), 1)
			if res.Ingested != len(outputs) {
				t.Errorf("re-index ingested %d objects, want the %d large files", res.Ingested, len(outputs))
			}
			if got := answers(t, before); got != want {
				t.Fatalf("re-index after compaction answers differently:\n%.2000s\nwant\n%.2000s", got, want)
			}
			// And a third time: nothing new to read.
			ingestAll(t, before, s3Source(t, env, api), windowed)
			checkGets("third index", api.take(), 0)

			// A crash left the small objects behind the manifests.
			for k, v := range small {
				putObject(t, env, k, v)
			}
			fresh := openStore(t, t.TempDir())
			res = ingestAll(t, fresh, s3Source(t, env, api), windowed)
			checkGets("fresh index of a crash-left capture", api.take(), 1)
			if want := len(outputs) + len(small) - len(inputs); res.Listed != want {
				t.Errorf("crash-left capture: %d objects listed, want the %d large files and the %d objects of hours not compacted", res.Listed, len(outputs), len(small)-len(inputs))
			}
			if got := answers(t, fresh); got != want {
				t.Fatalf("fresh index of the compacted capture answers differently:\n%.2000s\nwant\n%.2000s", got, want)
			}
		})
	}
}

// The same through a local copy of the bucket (aws s3 sync of the
// capture prefix), whose manifests keep the S3 keys.
func TestIngestCompactedDir(t *testing.T) {
	env, small, now := compactedCapture(t)
	ref := openStore(t, t.TempDir())
	ingestAll(t, ref, s3Source(t, env, env.Client), false)
	want := answers(t, ref)
	manifests := runCompact(t, env, now)
	outputs, inputs := outputsOf(manifests)
	kept := len(small) - len(inputs) // in hours not compacted

	dir := t.TempDir()
	for _, k := range listKeys(t, env) {
		out, err := env.Client.GetObject(context.Background(), &s3.GetObjectInput{Bucket: &env.Bucket, Key: aws.String(k)})
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(out.Body)
		out.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, filepath.FromSlash(k)), b)
	}
	// Crash-left: the small objects are still there, and garbage in them
	// would fail the ingest if they were read.
	for _, k := range inputs {
		writeFile(t, filepath.Join(dir, filepath.FromSlash(k)), []byte("PAR1garbagePAR1"))
	}
	for _, windowed := range []bool{false, true} {
		src, err := indexer.NewDirSource(filepath.Join(dir, "capture"))
		if err != nil {
			t.Fatal(err)
		}
		s := openStore(t, t.TempDir())
		res := ingestAll(t, s, src, windowed)
		if res.Listed != len(outputs)+kept || res.Ingested != len(outputs)+kept {
			t.Errorf("windowed %v: %+v; want the %d large files and %d small objects of hours not compacted listed and ingested", windowed, res.Progress, len(outputs), kept)
		}
		if got := answers(t, s); got != want {
			t.Fatalf("windowed %v: the compacted copy answers differently:\n%.2000s\nwant\n%.2000s", windowed, got, want)
		}
	}
}

func writeFile(t *testing.T, name string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A manifest that does not parse stops the listing with an error naming
// it; the hour is not read some other way.
func TestIngestMalformedManifest(t *testing.T) {
	env, _, now := compactedCapture(t)
	manifests := runCompact(t, env, now)
	var bad string
	for k := range manifests {
		bad = k
		break
	}
	putObject(t, env, bad, []byte(`{"version": 1, "outputs": [`))
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, filepath.FromSlash(bad)), []byte(`{"version": 2}`))
	for name, src := range map[string]indexer.Source{
		"s3://" + env.Bucket + "/" + bad: s3Source(t, env, env.Client),
		filepath.Join(dir, filepath.FromSlash(bad)): func() indexer.Source {
			src, err := indexer.NewDirSource(filepath.Join(dir, "capture"))
			if err != nil {
				t.Fatal(err)
			}
			return src
		}(),
	} {
		for _, windowed := range []bool{false, true} {
			cfg := indexer.Config{Log: quiet}
			if windowed {
				cfg.Window = win(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC))
			}
			_, err := openStore(t, t.TempDir()).Ingest(context.Background(), src, cfg)
			if err == nil || !strings.Contains(err.Error(), "manifest "+name+": not a version 1 manifest") {
				t.Errorf("%s (windowed %v): err = %v; want the manifest named", src.Name(), windowed, err)
			}
		}
	}
}

// After compaction, a record delivered late to a compacted hour (a small
// object the manifest does not list) is read with the large files; a
// large file the manifest names but that is gone is an error naming the
// manifest, not a silent loss of the hour.
func TestIngestCompactedLateAndMissing(t *testing.T) {
	env, small, now := compactedCapture(t)
	manifests := runCompact(t, env, now)
	var mkey string
	for k := range manifests {
		if mkey == "" || k < mkey {
			mkey = k
		}
	}
	m := manifests[mkey]
	// The late object: one of the hour's replaced objects under a new
	// name, with events that are already in the large files, plus none
	// new; so reading it changes nothing but is seen in the listing.
	late := path.Dir(mkey) + "/stream-late.parquet"
	putObject(t, env, late, small[m.Inputs[0]])
	api := &gettingS3{S3API: env.Client}
	s := openStore(t, t.TempDir())
	res := ingestAll(t, s, s3Source(t, env, api), false)
	outputs, inputs := outputsOf(manifests)
	if want := len(outputs) + len(small) - len(inputs) + 1; res.Listed != want {
		t.Errorf("%d objects listed, want %d (the large files, the hours not compacted and the late object)", res.Listed, want)
	}
	if gets := api.take(); gets[late] != 1 {
		t.Errorf("late object read %d times, want 1", gets[late])
	}

	if _, err := env.Client.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: &env.Bucket, Key: aws.String(m.Outputs[0].Key)}); err != nil {
		t.Fatal(err)
	}
	_, err := openStore(t, t.TempDir()).Ingest(context.Background(), s3Source(t, env, env.Client), indexer.Config{Log: quiet})
	if err == nil || !strings.Contains(err.Error(), "manifest s3://"+env.Bucket+"/"+mkey+" names "+path.Base(m.Outputs[0].Key)+", which is not there") {
		t.Fatalf("err = %v; want the manifest and its missing file named", err)
	}
}
