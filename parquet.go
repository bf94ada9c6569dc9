package rewind

import (
	"time"
)

// ParquetRow is one change event as a row of the capture Parquet files.
// Column names and types are the schema documented in the README; generic
// readers (DuckDB, Athena, Spark) read them without rewind's code:
//
//	event_id            STRING     stream eventID, unique per change
//	source_table        STRING     table name from the stream ARN
//	region              STRING     region from the stream ARN
//	tenant              STRING     tenant, "" when the key has none
//	action              STRING     INSERT, MODIFY or REMOVE ("" if undecodable)
//	ttl_expiry          BOOLEAN    REMOVE done by DynamoDB's TTL process
//	event_time          TIMESTAMP(MICROS, UTC)  ApproximateCreationDateTime
//	sequence_number     STRING     decimal; compare as DECIMAL(38,0) or by length then text
//	shard_id            STRING     stream shard, when known
//	stream_view_type    STRING     KEYS_ONLY, NEW_IMAGE, OLD_IMAGE, NEW_AND_OLD_IMAGES (CHANGE_LOG: an app change log)
//	keys                STRING     DynamoDB JSON of the primary key
//	old_image           STRING     DynamoDB JSON, NULL when absent
//	new_image           STRING     DynamoDB JSON, NULL when absent
//	changed_attributes  LIST<STRING>  top-level attributes that changed
//	size_bytes          INT64      record size as DynamoDB reports it
//	decode_error        STRING     NULL unless the record could not be decoded
//	raw_record          STRING     the record's JSON when it could not be decoded
//	export_id           STRING     NULL unless read from an incremental export
//	export_from         TIMESTAMP(MICROS, UTC)  that export's window, NULL
//	export_to           TIMESTAMP(MICROS, UTC)  unless read from an export
//
// The Hive partition columns table, dt and hour come from the object key,
// not from the file.
//
// The export columns came after the others, nullable: files written before
// them (without the three columns) read as events with no export window,
// by rewind (parquet-go fills a missing optional column with nulls) and by
// readers that match columns by name (Athena, DuckDB with
// union_by_name) or by position. The stream handler leaves them NULL; only
// the indexer's in-memory objects of an export fill them.
type ParquetRow struct {
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
	ExportID          []byte   `parquet:"export_id,optional,string"`
	ExportFrom        int64    `parquet:"export_from,optional,timestamp(microsecond:utc)"`
	ExportTo          int64    `parquet:"export_to,optional,timestamp(microsecond:utc)"`
}

// ToParquetRow fills row from e. Byte slices alias e's.
func (e *ChangeEvent) ToParquetRow(row *ParquetRow) {
	*row = ParquetRow{
		EventID:           e.EventID,
		SourceTable:       e.Table,
		Region:            e.Region,
		Tenant:            e.Tenant,
		Action:            string(e.Action),
		TTLExpiry:         e.TTLExpiry,
		EventTime:         e.Time.UnixMicro(),
		SequenceNumber:    e.SequenceNumber,
		ShardID:           e.ShardID,
		StreamViewType:    e.StreamViewType,
		OldImage:          e.OldImage,
		NewImage:          e.NewImage,
		ChangedAttributes: e.ChangedAttributes,
		SizeBytes:         e.SizeBytes,
		RawRecord:         e.Raw,
	}
	if len(e.Keys) > 0 {
		row.Keys = e.Keys.AppendJSON(row.Keys[:0])
	}
	if e.DecodeError != "" {
		row.DecodeError = []byte(e.DecodeError)
	}
	if !e.Export.IsZero() {
		row.ExportID = []byte(e.Export.ID)
		row.ExportFrom = e.Export.From.UnixMicro()
		row.ExportTo = e.Export.To.UnixMicro()
	}
}

// ChangeEvent converts a row back into an event, checking the keys and
// action. Byte slices alias the row's.
func (row *ParquetRow) ChangeEvent() (ChangeEvent, error) {
	e := ChangeEvent{
		EventID:           row.EventID,
		Table:             row.SourceTable,
		Region:            row.Region,
		Tenant:            row.Tenant,
		Action:            Action(row.Action),
		TTLExpiry:         row.TTLExpiry,
		Time:              time.UnixMicro(row.EventTime).UTC(),
		SequenceNumber:    row.SequenceNumber,
		ShardID:           row.ShardID,
		StreamViewType:    row.StreamViewType,
		ChangedAttributes: row.ChangedAttributes,
		SizeBytes:         row.SizeBytes,
		Raw:               row.RawRecord,
	}
	if len(row.OldImage) > 0 {
		e.OldImage = row.OldImage
	}
	if len(row.NewImage) > 0 {
		e.NewImage = row.NewImage
	}
	if len(row.ExportID) > 0 {
		e.Export = ExportWindow{ID: string(row.ExportID), From: time.UnixMicro(row.ExportFrom).UTC(), To: time.UnixMicro(row.ExportTo).UTC()}
	}
	if len(row.DecodeError) > 0 {
		e.DecodeError = string(row.DecodeError)
		return e, nil
	}
	if _, err := ParseAction(row.Action); err != nil {
		return e, err
	}
	k, err := ParseKey(row.Keys)
	if err != nil {
		return e, err
	}
	e.Keys = k
	return e, nil
}
