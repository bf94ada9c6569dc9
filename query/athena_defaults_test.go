package query_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ddbrewind/rewind/indexer"
	"github.com/ddbrewind/rewind/indexer/indextest"
	"github.com/ddbrewind/rewind/query"
)

// TestAthenaDefaults: the store gives the tables and the first day; a
// store indexed from a directory has no S3 location to give, and says so.
func TestAthenaDefaults(t *testing.T) {
	dir := t.TempDir()
	evs := indextest.NewGen(3).Events(30)
	if err := indextest.WriteDir(dir, indextest.Objects("capture", evs, 10)); err != nil {
		t.Fatal(err)
	}
	st, err := indexer.Open(t.TempDir(), indexer.Options{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	src, err := indexer.NewDirSource(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Ingest(context.Background(), src, indexer.Config{Log: quiet}); err != nil {
		t.Fatal(err)
	}

	_, err = query.AthenaDefaults(st, query.AthenaOptions{})
	if !errors.Is(err, query.ErrAthenaLocation) || !strings.Contains(err.Error(), "indexed from no S3 source") || !strings.Contains(err.Error(), st.Dir()) {
		t.Fatalf("no S3 source: %v", err)
	}
	o, err := query.AthenaDefaults(st, query.AthenaOptions{Location: "s3://b/capture", Tables: []string{"extra", "orders"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"extra", "ledger", "orders", "users"}; !slices.Equal(o.Tables, want) {
		t.Errorf("tables %v, want %v", o.Tables, want)
	}
	if want := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC); !o.Since.Equal(want) || o.Location != "s3://b/capture" {
		t.Errorf("since %s, location %q; want %s and the location given", o.Since, o.Location, want)
	}
	since := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if o, _ := query.AthenaDefaults(st, query.AthenaOptions{Location: "s3://b/c", Since: since}); !o.Since.Equal(since) {
		t.Errorf("since given %s became %s", since, o.Since)
	}
}
