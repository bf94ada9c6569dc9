package indexer

import (
	"bytes"
	"context"
	"fmt"

	"github.com/parquet-go/parquet-go"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer/export"
)

// IngestExport ingests a DynamoDB incremental export (see package
// indexer/export) like any other source: each data file of the export is
// one object, so a data file's events are committed together with its
// manifest entry, files already ingested are skipped, and files that fail
// are named in a *PartialError and retried by the next run.
//
// An object's name is where its data file was read from, and its ETag is
// "md5:" and the file's md5Checksum from the export's files manifest, which
// the read checks. Event IDs are derived from the export id and the item's
// key (see package export), so ingesting the same export again from
// another place (a local copy after S3) adds no events, only duplicates.
//
// Each data file is decoded whole and handed to Ingest as an in-memory
// Parquet object, the form Ingest reads: memory per object in flight is
// about the data file's uncompressed size, and the size the manifest
// records is that of the Parquet object.
func (s *Store) IngestExport(ctx context.Context, e *export.Export, cfg Config) (Result, error) {
	return s.Ingest(ctx, newExportSource(e, s), cfg)
}

// exportSource is the Source IngestExport ingests.
type exportSource struct {
	exp   *export.Export
	st    *Store
	files map[string]export.DataFile // by Object.Name
}

var _ Source = (*exportSource)(nil)

func newExportSource(e *export.Export, st *Store) *exportSource {
	s := &exportSource{exp: e, st: st, files: make(map[string]export.DataFile, len(e.Files))}
	for _, f := range e.Files {
		s.files[f.Name] = f
	}
	return s
}

// Name implements Source: the export's location.
func (s *exportSource) Name() string { return s.exp.Location() }

func exportETag(f export.DataFile) string { return "md5:" + f.MD5Checksum }

// List implements Source: the data files in the order of the files
// manifest. The size of an object is that of the Parquet object Open
// makes, known only once the file is decoded: for a file the store holds
// with the same checksum, List gives the size the store recorded, so that
// Ingest skips it; for the others, -1.
func (s *exportSource) List(ctx context.Context, fn func(Object) error) error {
	for _, f := range s.exp.Files {
		if err := ctx.Err(); err != nil {
			return err
		}
		o := Object{Name: f.Name, Key: f.DataFileS3Key, ETag: exportETag(f), Size: -1}
		info, ok, err := s.st.Object(f.Name)
		if err != nil {
			return fmt.Errorf("store %s: manifest: %w", s.st.Dir(), err)
		}
		if ok && info.ETag == o.ETag {
			o.Size = info.Size
		}
		if err := fn(o); err != nil {
			return err
		}
	}
	return nil
}

// exportRowsPerGroup bounds the rows the Parquet writer buffers.
const exportRowsPerGroup = 4096

// Open implements Source: it reads and checks the data file and returns
// its events as a Parquet object.
func (s *exportSource) Open(ctx context.Context, o Object) (Content, string, int64, error) {
	f, ok := s.files[o.Name]
	if !ok {
		return nil, "", 0, fmt.Errorf("%s is not a data file of export %s", o.Name, s.exp.Location())
	}
	pq, err := parquetOf(func(yield func(*rewind.ChangeEvent) error) error {
		return s.exp.ReadFile(ctx, f, yield)
	})
	if err != nil {
		return nil, "", 0, err
	}
	return exportContent{bytes.NewReader(pq)}, exportETag(f), int64(len(pq)), nil
}

type exportContent struct{ *bytes.Reader }

func (exportContent) Close() error { return nil }

// parquetOf encodes the events each yields as an uncompressed Parquet
// object of rewind.ParquetRow, the form Ingest reads.
func parquetOf(each func(yield func(*rewind.ChangeEvent) error) error) ([]byte, error) {
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[rewind.ParquetRow](&buf,
		parquet.Compression(&parquet.Uncompressed),
		parquet.CreatedBy("rewind export", "1", ""),
	)
	rows := make([]rewind.ParquetRow, 0, 256)
	flush := func() error {
		if _, err := w.Write(rows); err != nil {
			return fmt.Errorf("encode: %w", err)
		}
		rows = rows[:0]
		return nil
	}
	n := 0
	err := each(func(ev *rewind.ChangeEvent) error {
		rows = append(rows, rewind.ParquetRow{})
		ev.ToParquetRow(&rows[len(rows)-1])
		if len(rows) == cap(rows) {
			if err := flush(); err != nil {
				return err
			}
		}
		if n++; n%exportRowsPerGroup == 0 {
			if err := flush(); err != nil {
				return err
			}
			// A row group per exportRowsPerGroup rows bounds the column
			// buffers the writer holds.
			if err := w.Flush(); err != nil {
				return fmt.Errorf("encode: %w", err)
			}
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err == nil {
		if err = w.Close(); err != nil {
			err = fmt.Errorf("encode: %w", err)
		}
	}
	if err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
