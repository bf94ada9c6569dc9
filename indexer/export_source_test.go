package indexer_test

import (
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer"
	"github.com/ddbrewind/rewind/indexer/export"
)

var exportTenants = rewind.TenantRule{Regex: regexp.MustCompile(`^TENANT#(.+)$`)}

// copyExportFixture copies testdata/exports/<name> (a bucket prefix) to a
// temporary directory and returns the export directory in it.
func copyExportFixture(t *testing.T, name string) string {
	t.Helper()
	src := filepath.Join("..", "testdata", "exports", name)
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := filepath.Glob(filepath.Join(dst, "AWSDynamoDB", "0*"))
	return m[0]
}

func storedEvents(t *testing.T, st *indexer.Store) []rewind.ChangeEvent {
	t.Helper()
	it, err := st.ScanTime(indexer.Window{})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out []rewind.ChangeEvent
	for it.Next() {
		ev, err := st.Event(it.Entry())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestIngestExport(t *testing.T) {
	ctx := t.Context()
	dir := copyExportFixture(t, "multi-file")
	src, err := export.Open(ctx, dir, export.Config{Tenant: exportTenants})
	if err != nil {
		t.Fatal(err)
	}
	st, err := indexer.Open(filepath.Join(t.TempDir(), "store"), indexer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	// One data file is corrupt: the others are indexed, it is named.
	bad := src.Files[1].Name
	good, _ := os.ReadFile(bad)
	os.WriteFile(bad, good[:len(good)-30], 0o644)
	res, err := st.IngestExport(ctx, src, indexer.Config{Workers: 2, BatchObjects: 1})
	var pe *indexer.PartialError
	if !errors.As(err, &pe) || len(pe.Failed) != 1 || pe.Failed[0].Object != bad || !strings.Contains(pe.Failed[0].Error(), "truncated gzip") {
		t.Fatalf("ingest with a truncated data file: %v", err)
	}
	if res.Ingested != 2 || res.Events != 3 {
		t.Fatalf("ingested %d files, %d events; want 2 files (one empty), 3 events", res.Ingested, res.Events)
	}
	if n, _ := st.Count(); n != 3 {
		t.Fatalf("store holds %d events, want 3", n)
	}

	// Repaired, a rerun reads only that file.
	os.WriteFile(bad, good, 0o644)
	res, err = st.IngestExport(ctx, src, indexer.Config{Workers: 2})
	if err != nil || res.Skipped != 2 || res.Ingested != 1 || res.Events != 3 {
		t.Fatalf("rerun: %+v, %v; want 2 skipped, 1 ingested, 3 events", res.Progress, err)
	}
	var want []rewind.ChangeEvent
	for ev, err := range src.Events(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, *ev)
	}
	byTimeID := func(a, b rewind.ChangeEvent) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return strings.Compare(a.EventID, b.EventID)
	}
	slices.SortStableFunc(want, byTimeID)
	// The store orders events of one time and sequence number (an
	// export's have none) by a hash of the ID: compare as sets.
	got := storedEvents(t, st)
	slices.SortStableFunc(got, byTimeID)
	for _, ev := range got {
		if ev.Export.ID != src.ID || !ev.Export.From.Equal(src.From) || !ev.Export.To.Equal(src.To) || ev.ShardID != "" {
			t.Fatalf("stored event %s has export window %s and shard id %q; want the export's window and no shard id", ev.EventID, ev.Export, ev.ShardID)
		}
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("stored events differ from the export's (-want +got):\n%s", d)
	}
	var objs []indexer.ObjectInfo
	st.Objects(func(o indexer.ObjectInfo) error { objs = append(objs, o); return nil })
	if len(objs) != 3 || !strings.HasPrefix(objs[0].ETag, "md5:") {
		t.Errorf("manifest: %+v", objs)
	}
	if srcs, _ := st.Sources(); !slices.Contains(srcs, src.Location()) {
		t.Errorf("sources %v lack %s", srcs, src.Location())
	}

	// Nothing new on a third run; the same export from another copy adds
	// only duplicates.
	res, err = st.IngestExport(ctx, src, indexer.Config{})
	if err != nil || res.Skipped != 3 || res.Ingested != 0 {
		t.Fatalf("third run: %+v, %v", res.Progress, err)
	}
	other, err := export.Open(ctx, copyExportFixture(t, "multi-file"), export.Config{Tenant: exportTenants})
	if err != nil {
		t.Fatal(err)
	}
	res, err = st.IngestExport(ctx, other, indexer.Config{})
	if err != nil || res.Ingested != 3 || res.Events != 0 || res.Duplicates != 6 {
		t.Fatalf("another copy: %+v, %v; want 3 files, 0 new events, 6 duplicates", res.Progress, err)
	}
	if n, _ := st.Count(); n != 6 {
		t.Fatalf("store holds %d events, want 6", n)
	}
}

func TestIngestExportMissingFile(t *testing.T) {
	ctx := t.Context()
	dir := copyExportFixture(t, "binary-number-keys")
	src, err := export.Open(ctx, dir, export.Config{})
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(src.Files[0].Name)
	st, err := indexer.Open(filepath.Join(t.TempDir(), "store"), indexer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, err = st.IngestExport(ctx, src, indexer.Config{})
	var pe *indexer.PartialError
	if !errors.As(err, &pe) || len(pe.Failed) != 1 || !strings.Contains(pe.Error(), "no such file") {
		t.Fatalf("missing data file: %v", err)
	}
}

// TestIngestExportLargeFile ingests a data file of several row groups.
func TestIngestExportLargeFile(t *testing.T) {
	ctx := t.Context()
	dir := copyExportFixture(t, "binary-number-keys")
	const n = 9001
	var lines bytes.Buffer
	for i := range n {
		fmt.Fprintf(&lines, `{"Metadata":{"WriteTimestampMicros":{"N":"%d"}},"Keys":{"acct":{"B":"AAE="},"seq":{"N":"%d"}},"NewImage":{"acct":{"B":"AAE="},"seq":{"N":"%d"},"v":{"S":"%s"}}}`+"\n",
			int64(1795168800000000)+int64(i), i, i, strings.Repeat("x", i%50))
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(lines.Bytes())
	zw.Close()
	data := filepath.Join(dir, "..", "data", "big.json.gz")
	if err := os.WriteFile(data, gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum(gz.Bytes())
	entry := fmt.Sprintf(`{"itemCount":%d,"md5Checksum":"%s","etag":"x","dataFileS3Key":"AWSDynamoDB/data/big.json.gz"}`+"\n", n, base64.StdEncoding.EncodeToString(sum[:]))
	os.WriteFile(filepath.Join(dir, "manifest-files.json"), []byte(entry), 0o644)
	exp, err := export.Open(ctx, dir, export.Config{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := indexer.Open(filepath.Join(t.TempDir(), "store"), indexer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	res, err := st.IngestExport(ctx, exp, indexer.Config{})
	if err != nil || res.Events != n {
		t.Fatalf("ingest: %+v, %v; want %d events", res.Progress, err, n)
	}
	evs := storedEvents(t, st)
	if len(evs) != n || evs[n-1].Keys[1].Value != strconv.Itoa(n-1) || evs[n-1].Action != rewind.ActionInsert {
		t.Fatalf("stored %d events, last %v", len(evs), evs[len(evs)-1].Keys)
	}
}
