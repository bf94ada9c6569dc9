package indexer_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer"
	"github.com/ddbrewind/rewind/indexer/export"
	"github.com/ddbrewind/rewind/indexer/indextest"
)

// TestOpenRefusesVersion1Store: a store written before export windows had
// a field of their own is refused, read-write and read-only, with a
// message that names the versions and the commands that rebuild it from
// the sources it was built from.
func TestOpenRefusesVersion1Store(t *testing.T) {
	src := t.TempDir()
	writeEvents(t, src, indextest.NewGen(3).Events(20), 10)
	dir := filepath.Join(t.TempDir(), "store")
	s, err := indexer.Open(dir, indexer.Options{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ingestDir(t, s, src, indexer.Config{}); err != nil {
		t.Fatal(err)
	}
	exp, err := export.Open(t.Context(), copyExportFixture(t, "multi-file"), export.Config{Tenant: exportTenants})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.IngestExport(t.Context(), exp, indexer.Config{Log: quiet}); err != nil {
		t.Fatal(err)
	}
	if err := indexer.SetVersionForTest(s, "1"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	abs, _ := filepath.Abs(src)
	for _, ro := range []bool{false, true} {
		s, err := indexer.Open(dir, indexer.Options{Log: quiet, ReadOnly: ro})
		if err == nil {
			s.Close()
			t.Fatalf("read-only %v: a version 1 store opened", ro)
		}
		msg := err.Error()
		t.Logf("read-only %v: %s", ro, msg)
		for _, want := range []string{
			"open store " + dir, `format version "1"`, `reads version "4"`, "shard ID",
			"move " + dir + " aside", "`rewind index --store " + dir + " --source " + abs + "`",
			"`rewind index --store " + dir + " --export " + exp.Location() + "` (with the --tenant-attribute and --tenant-regex",
		} {
			if !strings.Contains(msg, want) {
				t.Errorf("read-only %v: error %q does not say %q", ro, msg, want)
			}
		}
	}
}

// TestOpenRefusesOldStores: a store of an older format is refused,
// read-write and read-only, before a scan could read its values in the
// new shape, with what changed and the command that rebuilds it:
// version 2 held a summary per key space; version 3 keyed events by
// their whole event ID (its 'n' and 'i' values held summaries, which
// format 4 reads from 't').
func TestOpenRefusesOldStores(t *testing.T) {
	for _, c := range []struct {
		version, why string
		seed         uint64
	}{
		{"2", "version 3 keeps one", 4},
		{"3", "version 4 keys it by a hash", 6},
	} {
		t.Run("version "+c.version, func(t *testing.T) {
			src := t.TempDir()
			writeEvents(t, src, indextest.NewGen(c.seed).Events(20), 10)
			dir := filepath.Join(t.TempDir(), "store")
			s, err := indexer.Open(dir, indexer.Options{Log: quiet})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ingestDir(t, s, src, indexer.Config{}); err != nil {
				t.Fatal(err)
			}
			if err := indexer.SetVersionForTest(s, c.version); err != nil {
				t.Fatal(err)
			}
			s.Close()
			abs, _ := filepath.Abs(src)
			for _, ro := range []bool{false, true} {
				s, err := indexer.Open(dir, indexer.Options{Log: quiet, ReadOnly: ro})
				if err == nil {
					s.Close()
					t.Fatalf("read-only %v: a version %s store opened", ro, c.version)
				}
				msg := err.Error()
				for _, want := range []string{
					"open store " + dir, `format version "` + c.version + `"`, `reads version "4"`, c.why,
					"move " + dir + " aside", "`rewind index --store " + dir + " --source " + abs + "`",
				} {
					if !strings.Contains(msg, want) {
						t.Errorf("read-only %v: error %q does not say %q", ro, msg, want)
					}
				}
			}
		})
	}
}

// oldRow is rewind.ParquetRow as capture objects were written before the
// export columns: files in S3 keep this schema.
type oldRow struct {
	EventID           string   `parquet:"event_id"`
	SourceTable       string   `parquet:"source_table"`
	Region            string   `parquet:"region"`
	Tenant            string   `parquet:"tenant"`
	Action            string   `parquet:"action"`
	TTLExpiry         bool     `parquet:"ttl_expiry"`
	EventTime         int64    `parquet:"event_time,timestamp(microsecond:utc)"`
	SequenceNumber    string   `parquet:"sequence_number"`
	ShardID           string   `parquet:"shard_id"`
	StreamViewType    string   `parquet:"stream_view_type"`
	Keys              []byte   `parquet:"keys,string"`
	OldImage          []byte   `parquet:"old_image,optional,string"`
	NewImage          []byte   `parquet:"new_image,optional,string"`
	ChangedAttributes []string `parquet:"changed_attributes,list"`
	SizeBytes         int64    `parquet:"size_bytes"`
	DecodeError       []byte   `parquet:"decode_error,optional,string"`
	RawRecord         []byte   `parquet:"raw_record,optional,string"`
}

// TestIngestReadsObjectsWithoutExportColumns: capture objects written
// before the export columns existed ingest to the same events, with no
// export window, and the schema only grew at its end, with nullable
// columns, so by-position readers of old files are not shifted either.
func TestIngestReadsObjectsWithoutExportColumns(t *testing.T) {
	evs := indextest.NewGen(5).Events(200)
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[oldRow](&buf)
	for _, ev := range evs {
		var r rewind.ParquetRow
		ev.ToParquetRow(&r)
		o := oldRow{r.EventID, r.SourceTable, r.Region, r.Tenant, r.Action, r.TTLExpiry, r.EventTime, r.SequenceNumber,
			r.ShardID, r.StreamViewType, bytes.Clone(r.Keys), r.OldImage, r.NewImage, r.ChangedAttributes, r.SizeBytes, r.DecodeError, r.RawRecord}
		if _, err := w.Write([]oldRow{o}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	path := filepath.Join(src, "table=orders", "dt=2026-11-20", "hour=10", "stream-old.parquet")
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, t.TempDir())
	res, err := ingestDir(t, s, src, indexer.Config{})
	if err != nil || res.Events != int64(len(evs)) {
		t.Fatalf("ingest of an old-schema object: %+v, %v; want %d events", res.Progress, err, len(evs))
	}
	got := allEvents(t, s)
	for _, ev := range got {
		if !ev.Export.IsZero() {
			t.Fatalf("event %s from an old object has export window %s", ev.EventID, ev.Export)
		}
	}
	want := append([]rewind.ChangeEvent(nil), evs...)
	sortEvents(want)
	checkEvents(t, want, got)

	oldCols := parquet.SchemaOf(oldRow{}).Fields()
	newCols := parquet.SchemaOf(rewind.ParquetRow{}).Fields()
	for i, f := range oldCols {
		if newCols[i].Name() != f.Name() {
			t.Fatalf("column %d is %s, was %s: old files read by position would shift", i, newCols[i].Name(), f.Name())
		}
	}
	for _, f := range newCols[len(oldCols):] {
		if !f.Optional() {
			t.Errorf("new column %s is not nullable: old files cannot read as NULL", f.Name())
		}
	}
}
