package indexer_test

import (
	"bytes"
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer"
	"github.com/ddbrewind/rewind/indexer/indextest"
	"github.com/ddbrewind/rewind/internal/localaws"
	"github.com/parquet-go/parquet-go"
)

func hourOf(h int) time.Time { return time.Date(2026, 11, 20, h, 0, 0, 0, time.UTC) }

func win(from, to time.Time) indexer.Window {
	return indexer.Window{From: from.UnixMicro(), To: to.UnixMicro(), HasFrom: true, HasTo: true}
}

// windowEvents makes events from 09:58 to 15:58 on 2026-11-20, filed in
// hour partitions 09 to 15.
func windowEvents() []rewind.ChangeEvent {
	g := indextest.NewGen(12)
	g.Span = 6 * time.Hour
	return g.Events(1200)
}

// TestIngestWindow: with a window, only the objects of the hour partitions
// that can hold its events are listed and read (the hour before it too: an
// object is filed under its first event's hour); the store then holds
// every event of the window, records the window, and reports the rest of
// a wider question as unindexed. A wider window later reads only the
// objects it lacks. Both sources: S3 (ListObjectsV2 per partition) and a
// local directory.
func TestIngestWindow(t *testing.T) {
	evs := windowEvents()
	objs := indextest.Objects("capture", evs, 40)
	var keys []string
	for k := range objs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	inHours := func(hours ...int) []string {
		var out []string
		for _, k := range keys {
			for _, h := range hours {
				if strings.Contains(k, hourOf(h).Format("/dt=2006-01-02/hour=15/")) {
					out = append(out, k)
				}
			}
		}
		slices.Sort(out)
		return out
	}

	sources := map[string]func(t *testing.T) (indexer.Source, *countingS3){
		"dir": func(t *testing.T) (indexer.Source, *countingS3) {
			dir := t.TempDir()
			if err := indextest.WriteDir(dir, objs); err != nil {
				t.Fatal(err)
			}
			src, err := indexer.NewDirSource(filepath.Join(dir, "capture"))
			if err != nil {
				t.Fatal(err)
			}
			return src, nil
		},
		"s3": func(t *testing.T) (indexer.Source, *countingS3) {
			env := localaws.S3ForTest(t)
			for _, k := range keys {
				data, err := indextest.EncodeParquet(objs[k], parquet.Compression(&parquet.Zstd))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := env.Client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &env.Bucket, Key: aws.String(k), Body: bytes.NewReader(data)}); err != nil {
					t.Fatal(err)
				}
			}
			api := &countingS3{S3API: env.Client}
			src, err := indexer.ParseSource("s3://"+env.Bucket+"/capture", api)
			if err != nil {
				t.Fatal(err)
			}
			return src, api
		},
	}
	for name, mk := range sources {
		t.Run(name, func(t *testing.T) {
			src, api := mk(t)
			s := openStore(t, t.TempDir())
			ingest := func(w indexer.Window) indexer.Result {
				t.Helper()
				res, err := s.Ingest(context.Background(), src, indexer.Config{Log: quiet, Window: w})
				if err != nil {
					t.Fatal(err)
				}
				return res
			}
			manifest := func() []string {
				var out []string
				s.Objects(func(o indexer.ObjectInfo) error {
					i := strings.Index(o.Name, "capture/")
					out = append(out, filepath.ToSlash(o.Name[i:]))
					return nil
				})
				return out
			}

			// 11:00 to 12:00: partitions 10 and 11.
			res := ingest(win(hourOf(11), hourOf(12)))
			if got, want := manifest(), inHours(10, 11); !slices.Equal(got, want) {
				t.Fatalf("window 11-12 read objects\n%q\nwant those of hours 10 and 11\n%q", got, want)
			}
			if res.Listed != len(inHours(10, 11)) || !res.Windowed || res.ListedBytes == 0 {
				t.Fatalf("window 11-12: listed %d objects (%d bytes), want %d", res.Listed, res.ListedBytes, len(inHours(10, 11)))
			}
			if api != nil {
				// The tables, each table's days, then the 2 hours.
				if n := api.lists.Load(); n > 1+3+3*2 {
					t.Errorf("window 11-12: %d ListObjectsV2 calls, want at most %d", n, 1+3+3*2)
				}
			}
			var want int
			for _, e := range evs {
				if !e.Time.Before(hourOf(11)) && e.Time.Before(hourOf(12)) {
					want++
				}
			}
			it, err := s.ScanTime(win(hourOf(11), hourOf(12)))
			if err != nil {
				t.Fatal(err)
			}
			got := 0
			for it.Next() {
				got++
			}
			it.Close()
			if got != want {
				t.Fatalf("window 11-12 holds %d events, want %d", got, want)
			}

			gaps, err := s.Unindexed(win(hourOf(9), hourOf(16)))
			if err != nil {
				t.Fatal(err)
			}
			if wantGaps := []indexer.Window{win(hourOf(9), hourOf(11)), win(hourOf(12), hourOf(16))}; !slices.Equal(gaps, wantGaps) {
				t.Fatalf("unindexed parts of 9-16: %+v, want %+v", gaps, wantGaps)
			}
			if gaps, _ := s.Unindexed(win(hourOf(11).Add(time.Minute), hourOf(12))); len(gaps) != 0 {
				t.Fatalf("a window inside the indexed one has unindexed parts %+v", gaps)
			}

			// Wider: 10:30 to 13:00 adds partitions 09 and 12, and skips the rest.
			res = ingest(win(hourOf(10).Add(30*time.Minute), hourOf(13)))
			if got, want := manifest(), inHours(9, 10, 11, 12); !slices.Equal(got, want) {
				t.Fatalf("after window 10:30-13 the manifest is\n%q\nwant hours 9 to 12\n%q", got, want)
			}
			if res.Skipped != len(inHours(10, 11)) || res.Ingested != len(inHours(9, 12)) {
				t.Fatalf("wider window: skipped %d, ingested %d; want %d and %d", res.Skipped, res.Ingested, len(inHours(10, 11)), len(inHours(9, 12)))
			}
			gaps, _ = s.Unindexed(win(hourOf(9), hourOf(16)))
			if wantGaps := []indexer.Window{win(hourOf(9), hourOf(10).Add(30*time.Minute)), win(hourOf(13), hourOf(16))}; !slices.Equal(gaps, wantGaps) {
				t.Fatalf("unindexed parts of 9-16 after the wider window: %+v, want %+v", gaps, wantGaps)
			}

			// No window: everything, and nothing is unindexed.
			ingest(indexer.Window{})
			if got := manifest(); !slices.Equal(got, keys) {
				t.Fatalf("a full ingest left the manifest at %d of %d objects", len(got), len(keys))
			}
			if gaps, _ := s.Unindexed(win(hourOf(0), hourOf(23))); len(gaps) != 0 {
				t.Fatalf("after a full ingest: unindexed %+v", gaps)
			}
		})
	}
}
