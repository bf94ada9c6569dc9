// Package compat checks that the capture Parquet files read in a generic
// engine (DuckDB) without rewind's code: types, nulls, lists, Hive
// partition columns.
package compat

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/streamhandler"
	_ "github.com/duckdb/duckdb-go/v2"
)

// dirS3 stores objects as files under a directory, keeping their keys as
// paths, so DuckDB can read the Hive layout from disk.
type dirS3 struct{ dir string }

func (d dirS3) PutObject(ctx context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	p := filepath.Join(d.dir, filepath.FromSlash(*in.Key))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	return &s3.PutObjectOutput{}, os.WriteFile(p, b, 0o644)
}

type okAudit struct{}

func (okAudit) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	return &dynamodb.BatchWriteItemOutput{}, nil
}

func TestDuckDBReadsCaptureParquet(t *testing.T) {
	dir := t.TempDir()
	h, err := streamhandler.New(streamhandler.Config{AuditTable: "audit", Bucket: "b", KeyAttributes: nil}, okAudit{}, dirS3{dir}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	fixtures, _ := filepath.Glob("../../testdata/streams/*.json")
	var want []rewind.ParquetRow
	for _, f := range fixtures {
		payload, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.Invoke(context.Background(), payload); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var probe struct{ Records []json.RawMessage }
		if err := json.Unmarshal(payload, &probe); err != nil {
			t.Fatal(err)
		}
		want = append(want, make([]rewind.ParquetRow, len(probe.Records))...)
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	glob := filepath.Join(dir, "changes", "**", "*.parquet")
	src := "read_parquet('" + glob + "', hive_partitioning = true)"

	// Types as a generic engine sees them.
	rows, err := db.Query("DESCRIBE SELECT * FROM " + src)
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]string{}
	for rows.Next() {
		var name, typ string
		var null, key, def, extra sql.NullString
		if err := rows.Scan(&name, &typ, &null, &key, &def, &extra); err != nil {
			t.Fatal(err)
		}
		types[name] = typ
	}
	rows.Close()
	for col, typ := range map[string]string{
		"event_id": "VARCHAR", "event_time": "TIMESTAMP WITH TIME ZONE", "ttl_expiry": "BOOLEAN",
		"changed_attributes": "VARCHAR[]", "size_bytes": "BIGINT", "new_image": "VARCHAR", "keys": "VARCHAR",
		"table": "VARCHAR", "dt": "DATE", "hour": "VARCHAR", // hour=09: zero-padded, so text
	} {
		if types[col] != typ {
			t.Errorf("column %s: DuckDB type %q, want %q (all: %v)", col, types[col], typ, types)
		}
	}

	// Every record of every fixture is there once, readable.
	var n, undecodable, ttl, inserts, insertsWithOld int
	if err := db.QueryRow(`SELECT count(*), count(decode_error), count(*) FILTER (ttl_expiry),
		count(*) FILTER (action = 'INSERT'), count(old_image) FILTER (action = 'INSERT') FROM `+src).
		Scan(&n, &undecodable, &ttl, &inserts, &insertsWithOld); err != nil {
		t.Fatal(err)
	}
	if n != len(want) {
		t.Errorf("DuckDB reads %d rows, the fixtures hold %d records", n, len(want))
	}
	if undecodable == 0 || ttl == 0 || inserts == 0 || insertsWithOld != 0 {
		t.Errorf("undecodable %d, ttl %d, inserts %d, inserts with an old image %d", undecodable, ttl, inserts, insertsWithOld)
	}

	// Times are microseconds in UTC, partitions match them.
	var mismatched int
	if err := db.QueryRow(`SELECT count(*) FROM ` + src + ` WHERE decode_error IS NULL AND
		(CAST(timezone('UTC', event_time) AS DATE) <> dt OR hour(timezone('UTC', event_time)) <> CAST(hour AS INTEGER))`).Scan(&mismatched); err != nil {
		t.Fatal(err)
	}
	if mismatched != 0 {
		t.Errorf("%d rows sit in a partition other than their event time's", mismatched)
	}
	var first time.Time
	if err := db.QueryRow(`SELECT min(event_time) FROM ` + src + ` WHERE event_id = 'c81e728d9d4c2f636f067f89cc14862c'`).Scan(&first); err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2025, 11, 20, 10, 1, 1, 500e6, time.UTC); !first.Equal(want) {
		t.Errorf("event_time %v, want %v (sub-second precision kept)", first, want)
	}
	// Lists and JSON images are usable from SQL.
	var changed string
	if err := db.QueryRow(`SELECT array_to_string(changed_attributes, ',') FROM ` + src + ` WHERE event_id = 'c81e728d9d4c2f636f067f89cc14862c'`).Scan(&changed); err != nil {
		t.Fatal(err)
	}
	if changed != "paidAt,status" {
		t.Errorf("changed_attributes %q", changed)
	}
	var status string
	if err := db.QueryRow(`SELECT json_extract_string(new_image, '$.status.S') FROM ` + src + ` WHERE event_id = 'c81e728d9d4c2f636f067f89cc14862c'`).Scan(&status); err != nil {
		t.Fatal(err)
	}
	if status != "paid" {
		t.Errorf("new_image status %q", status)
	}
}
