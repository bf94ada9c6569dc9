// Package export reads a DynamoDB incremental export (ExportTableToPointInTime
// with ExportType INCREMENTAL_EXPORT and DYNAMODB_JSON output) as rewind
// change events, so that tables which never had rewind's capture can still
// be indexed and queried after an incident.
//
// Open reads an export's manifests from S3 (s3://bucket/prefix/AWSDynamoDB/<export-id>/)
// or from a local copy with the same layout (aws s3 sync of the bucket
// prefix); Export.ReadFile then decodes one data file, checking it against
// its manifest entry. The indexer turns each data file into one object of
// its manifest (see indexer.Store.IngestExport), so a data file's events and
// its manifest entry are committed together.
//
// # Format
//
// The layout and fields follow AWS's "DynamoDB table export output format"
// (developer guide, S3DataExport.Output):
//
//	<prefix>/AWSDynamoDB/<export-id>/_started                  empty marker
//	<prefix>/AWSDynamoDB/<export-id>/manifest-summary.json     one JSON object
//	<prefix>/AWSDynamoDB/<export-id>/manifest-summary.checksum
//	<prefix>/AWSDynamoDB/<export-id>/manifest-files.json       JSON Lines
//	<prefix>/AWSDynamoDB/<export-id>/manifest-files.checksum
//	<prefix>/AWSDynamoDB/data/<name>.json.gz                   data, shared folder
//
// Incremental exports write their data files to a data folder shared by
// every export under the prefix, so the files manifest is the only list of
// an export's files: each line holds itemCount, md5Checksum (base64 MD5 of
// the .json.gz object as stored), etag and dataFileS3Key, the object's key
// from the bucket root (prefix included). The summary of an incremental
// export has version "2023-08-01", exportType "INCREMENTAL_EXPORT",
// exportFromTime and exportToTime (the window, start inclusive, end
// exclusive), outputFormat and outputView, besides the fields of a full
// export (exportArn, tableArn, s3Bucket, s3Prefix, manifestFilesS3Key,
// itemCount, ...). Full exports (version "2020-06-30", no exportType) hold
// snapshots, not changes, and are refused, as are ION exports and
// manifest versions this package does not know.
//
// Each line of a gzipped data file is one changed item:
//
//	{"Metadata":{"WriteTimestampMicros":{"N":"1700000000123456"}},
//	 "Keys":{"pk":{"S":"t1#42"}},
//	 "OldImage":{...},"NewImage":{...}}
//
// The export is compacted: an item changed several times in the window
// appears once, with its state just before the window start (OldImage) and
// at the window end (NewImage), and WriteTimestampMicros is its last write.
// With the NEW_AND_OLD_IMAGES view an insert has only NewImage, an update
// both images, a delete only OldImage, and an item inserted then deleted
// inside the window does not appear. With the NEW_IMAGE view a delete has
// Keys only.
//
// # Events
//
// A line becomes one rewind.ChangeEvent:
//
//   - Action: INSERT with NewImage only, MODIFY with both images, REMOVE
//     without NewImage. A NEW_IMAGE export cannot tell an insert from an
//     update, so its lines with NewImage are MODIFY without an old image:
//     history never takes them for a proof that the item was absent before.
//   - Time: WriteTimestampMicros; when a line has none, the last microsecond
//     of the window (exportToTime - 1µs), so the event stays inside
//     [exportFromTime, exportToTime).
//   - Table and Region: from the summary's tableArn.
//   - EventID: "export:<export-id>:<32 hex digits>", the digits a SHA-256 of
//     the table and the item's canonical key. An item appears once per
//     export, so the ID is unique, and reading the same export again, from
//     S3 or a copy, gives the same IDs: the indexer stores nothing twice.
//   - Export: the export's id and window (rewind.ExportWindow); ShardID is
//     empty. The old image is the item's state at the window's start, not
//     just before the event, so it proves the item's state at that time
//     only.
//   - StreamViewType: the export's outputView; SequenceNumber is empty;
//     SizeBytes is the line's length.
//   - Tenant: rewind.TenantRule, the same rule the stream handler applies.
//   - TTLExpiry: an export has no userIdentity, so it is inferred from
//     Config.TTLAttribute: a REMOVE whose old image holds a Number there
//     at or before the window's end (epoch seconds) is a TTL expiry.
//     Export.TTLCounts says how many were inferred and how many could not
//     be checked.
//
// Because the export holds the net change of each item, a key set built
// from it has count 1 per item and export, and first = last = the write
// timestamp of the item's last change in the window.
package export
