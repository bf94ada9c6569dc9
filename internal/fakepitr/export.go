package fakepitr

// Incremental exports: ExportTableToPointInTime with ExportType
// INCREMENTAL_EXPORT (DYNAMODB_JSON only), DescribeExport and ListExports.
//
// An export of [from, to) compares the table's snapshots (see Snapshot):
// the state as of from is the latest snapshot taken at or before from, the
// state as of to the latest taken before to, and each item that differs
// between the two is one line, as DynamoDB writes it (an item inserted and
// deleted in between, or changed and changed back, does not appear). Its
// WriteTimestampMicros is the time of the snapshot in which the item last
// changed: the snapshots are the fake's only clock, so with Config.SnapshotEvery
// or explicit snapshots the times are that coarse. The export is written to
// Config.S3 in the documented layout:
//
//	<prefix>/AWSDynamoDB/<export-id>/_started
//	<prefix>/AWSDynamoDB/data/<name>.json.gz          one per "partition"
//	<prefix>/AWSDynamoDB/<export-id>/manifest-files.json
//	<prefix>/AWSDynamoDB/<export-id>/manifest-files.checksum
//	<prefix>/AWSDynamoDB/<export-id>/manifest-summary.json
//	<prefix>/AWSDynamoDB/<export-id>/manifest-summary.checksum
//
// The checksum files hold the hex MD5 of their manifest; AWS does not
// document their content. A partition without items gets an empty object.

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/ddbrewind/rewind"
)

// S3Putter is what the server needs of S3 to write exports.
type S3Putter interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

var _ S3Putter = (*s3.Client)(nil)

// Limits of an incremental export's window.
const (
	minExportWindow = 15 * time.Minute
	maxExportWindow = 24 * time.Hour
)

// exportJob is one export.
type exportJob struct {
	arn, id, token    string
	tableArn, tableID string
	bucket, prefix    string
	from, to          time.Time
	view              string
	started           time.Time
	request           string // the request's parameters, for idempotency

	// Set when the files are written, under Server.mu.
	written        bool
	ended          time.Time
	items, billed  int64
	failCode, fail string
}

func (j *exportJob) key(rel string) string {
	if j.prefix == "" {
		return rel
	}
	return j.prefix + "/" + rel
}

// exportInput is ExportTableToPointInTime's request, as far as the fake
// reads it.
type exportInput struct {
	TableArn                       string
	S3Bucket                       string
	S3Prefix                       string
	S3BucketOwner                  string
	ExportFormat                   string
	ExportType                     string
	ExportTime                     *json.Number
	ClientToken                    string
	IncrementalExportSpecification *struct {
		ExportFromTime *json.Number
		ExportToTime   *json.Number
		ExportViewType string
	}
}

func epochTime(n *json.Number) (time.Time, error) {
	f, err := n.Float64()
	if err != nil {
		return time.Time{}, err
	}
	return time.UnixMilli(int64(f*1000 + 0.5)).UTC(), nil
}

func (s *Server) exportTable(ctx context.Context, db DB, body []byte) (any, *apiError) {
	var in exportInput
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&in); err != nil {
		return nil, clientErr("SerializationException", "%v", err)
	}
	if in.ExportFormat == "" {
		in.ExportFormat = "DYNAMODB_JSON"
	}
	if in.ExportType == "" {
		in.ExportType = "FULL_EXPORT"
	}
	spec := in.IncrementalExportSpecification
	switch {
	case in.TableArn == "":
		return nil, clientErr("ValidationException", "1 validation error detected: Value null at 'tableArn' failed to satisfy constraint: Member must not be null")
	case in.S3Bucket == "":
		return nil, clientErr("ValidationException", "1 validation error detected: Value null at 's3Bucket' failed to satisfy constraint: Member must not be null")
	case in.ExportType != "INCREMENTAL_EXPORT":
		return nil, clientErr("ValidationException", "fakepitr supports only ExportType INCREMENTAL_EXPORT, not %s", in.ExportType)
	case in.ExportFormat != "DYNAMODB_JSON":
		return nil, clientErr("ValidationException", "fakepitr writes only ExportFormat DYNAMODB_JSON, not %s", in.ExportFormat)
	case spec == nil || spec.ExportFromTime == nil || spec.ExportToTime == nil:
		return nil, clientErr("ValidationException", "IncrementalExportSpecification with ExportFromTime and ExportToTime is required for an INCREMENTAL_EXPORT")
	case in.ExportTime != nil:
		return nil, clientErr("ValidationException", "ExportTime cannot be set for an INCREMENTAL_EXPORT")
	case s.cfg.S3 == nil:
		return nil, clientErr("ValidationException", "fakepitr: no S3 to export to (Config.S3)")
	}
	view := spec.ExportViewType
	switch view {
	case "":
		view = "NEW_AND_OLD_IMAGES"
	case "NEW_AND_OLD_IMAGES", "NEW_IMAGE":
	default:
		return nil, clientErr("ValidationException", "1 validation error detected: Value '%s' at 'incrementalExportSpecification.exportViewType' failed to satisfy constraint: Member must satisfy enum value set: [NEW_IMAGE, NEW_AND_OLD_IMAGES]", view)
	}
	from, err := epochTime(spec.ExportFromTime)
	if err != nil {
		return nil, clientErr("SerializationException", "ExportFromTime: %v", err)
	}
	to, err := epochTime(spec.ExportToTime)
	if err != nil {
		return nil, clientErr("SerializationException", "ExportToTime: %v", err)
	}
	if d := to.Sub(from); d < minExportWindow || d > maxExportWindow {
		return nil, clientErr("ValidationException", "Incremental export period must be between 15 minutes and 24 hours; got %s", d)
	}
	table := in.TableArn
	if i := strings.LastIndex(table, ":table/"); i >= 0 {
		table = table[i+len(":table/"):]
	}
	desc, err := s.describe(ctx, db, table)
	if err != nil {
		return nil, internalErr(err)
	}
	if desc == nil {
		return nil, clientErr("TableNotFoundException", "Table not found: %s", table)
	}
	keyNames, aerr := keySchema(desc)
	if aerr != nil {
		return nil, aerr
	}
	request := fmt.Sprint(in.TableArn, in.S3Bucket, in.S3Prefix, in.S3BucketOwner, from.UnixMilli(), to.UnixMilli(), view)

	now := time.Now()
	s.mu.Lock()
	d := s.db(db)
	if in.ClientToken != "" {
		for _, j := range d.exports {
			if j.token != in.ClientToken {
				continue
			}
			s.mu.Unlock()
			if j.request != request {
				// The ClientToken doc of ExportTableToPointInTime says
				// ImportConflictException, but that error is not among the
				// operation's modelled errors (the SDKs could not decode it
				// as a typed error); ExportConflictException is, and is what
				// the service returns for a conflicting export request.
				return nil, clientErr("ExportConflictException", "Client token %s was used with different parameters", in.ClientToken)
			}
			return s.exportDescription(db, j), nil
		}
	}
	t := d.tables[table]
	var old, final map[string]rewind.Item
	var changedAt map[string]time.Time
	switch {
	case t == nil || !t.enabled:
		aerr = clientErr("PointInTimeRecoveryUnavailableException", "Point in time recovery is not enabled for table '%s'", table)
	case len(t.snapshots) == 0 || from.Before(t.earliest(now).Truncate(time.Millisecond)) || to.After(t.latest(now, s.cfg.LatestRestorableLag)):
		aerr = clientErr("InvalidExportTimeException", "Export period [%s, %s) is not within the point in time recovery window of table %s",
			from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano), table)
	default:
		old, final, changedAt, aerr = diffSnapshots(t.snapshots, from, to, keyNames)
	}
	if aerr != nil {
		s.mu.Unlock()
		return nil, aerr
	}
	id := fmt.Sprintf("%014d-%s", now.UnixMilli(), strings.ToLower(rand.Text()[:8]))
	j := &exportJob{
		arn: fmt.Sprint(desc["TableArn"]) + "/export/" + id, id: id, token: in.ClientToken,
		tableArn: fmt.Sprint(desc["TableArn"]), bucket: in.S3Bucket, prefix: strings.Trim(in.S3Prefix, "/"),
		from: from, to: to, view: view, started: now, request: request,
	}
	if tid, ok := desc["TableId"]; ok {
		j.tableID = fmt.Sprint(tid)
	}
	d.exports = append(d.exports, j)
	s.mu.Unlock()
	lines := exportLines(old, final, changedAt, keyNames, view)
	s.cfg.Logger.Info("fakepitr: exporting", "table", table, "from", from, "to", to, "items", len(lines), "export", j.arn)
	s.wg.Add(1)
	go s.writeExport(j, lines)
	return s.exportDescription(db, j), nil
}

// keySchema returns the table's key attribute names.
func keySchema(desc map[string]any) ([]string, *apiError) {
	var names []string
	l, _ := desc["KeySchema"].([]any)
	for _, k := range l {
		if m, ok := k.(map[string]any); ok {
			names = append(names, fmt.Sprint(m["AttributeName"]))
		}
	}
	if len(names) == 0 {
		return nil, &apiError{status: 500, typ: "InternalServerError", msg: "table has no key schema"}
	}
	return names, nil
}

// itemKey identifies an item by its key attributes.
func itemKey(item rewind.Item, keyNames []string) (string, error) {
	k, err := rewind.KeyFromItemSchema(item, keyNames...)
	if err != nil {
		return "", err
	}
	return string(k.Encode()), nil
}

func snapshotItems(sn snapshot, keyNames []string) (map[string]rewind.Item, error) {
	out := make(map[string]rewind.Item, len(sn.items))
	for _, raw := range sn.items {
		item, err := rewind.ParseItem(raw)
		if err != nil {
			return nil, err
		}
		k, err := itemKey(item, keyNames)
		if err != nil {
			return nil, err
		}
		out[k] = item
	}
	return out, nil
}

// diffSnapshots returns the items as of from and as of to, and for each
// item that differs, the time of the snapshot that last changed it.
// snaps are sorted by time; the caller checked that one is at or before
// from. Snapshot times are compared to the millisecond, the precision of
// the API's times.
func diffSnapshots(snaps []snapshot, from, to time.Time, keyNames []string) (old, final map[string]rewind.Item, changedAt map[string]time.Time, aerr *apiError) {
	start := -1
	for i, sn := range snaps {
		if !sn.at.Truncate(time.Millisecond).After(from) {
			start = i
		}
	}
	if start < 0 {
		return nil, nil, nil, clientErr("InvalidExportTimeException", "no point in time recovery history at %s", from.Format(time.RFC3339Nano))
	}
	fail := func(err error) *apiError {
		return &apiError{status: 500, typ: "InternalServerError", msg: "snapshot: " + err.Error()}
	}
	old, err := snapshotItems(snaps[start], keyNames)
	if err != nil {
		return nil, nil, nil, fail(err)
	}
	changedAt = map[string]time.Time{}
	final = old
	prev := old
	for _, sn := range snaps[start+1:] {
		if !sn.at.Truncate(time.Millisecond).Before(to) {
			break
		}
		cur, err := snapshotItems(sn, keyNames)
		if err != nil {
			return nil, nil, nil, fail(err)
		}
		at := sn.at
		if !at.Before(to) { // later than to by less than a millisecond
			at = to.Add(-time.Microsecond)
		}
		for k, it := range cur {
			if p, ok := prev[k]; !ok || !rewind.EqualItems(p, it) {
				changedAt[k] = at
			}
		}
		for k := range prev {
			if _, ok := cur[k]; !ok {
				changedAt[k] = at
			}
		}
		prev, final = cur, cur
	}
	return old, final, changedAt, nil
}

// exportLine is one data line and the key it is for.
type exportLine struct {
	key  string
	data []byte
}

// exportLines writes the lines of the items that differ between old and
// final, in key order.
func exportLines(old, final map[string]rewind.Item, changedAt map[string]time.Time, keyNames []string, view string) []exportLine {
	var out []exportLine
	for k, at := range changedAt {
		o, n := old[k], final[k]
		if o == nil && n == nil || o != nil && n != nil && rewind.EqualItems(o, n) {
			continue // inserted and deleted, or changed back
		}
		item := n
		if item == nil {
			item = o
		}
		keys := rewind.Item{}
		for _, name := range keyNames {
			keys[name] = item[name]
		}
		var b []byte
		b = append(b, `{"Metadata":{"WriteTimestampMicros":{"N":"`...)
		b = strconv.AppendInt(b, at.UnixMicro(), 10)
		b = append(b, `"}},"Keys":`...)
		b = rewind.AppendItemJSON(b, keys)
		if o != nil && view == "NEW_AND_OLD_IMAGES" {
			b = append(b, `,"OldImage":`...)
			b = rewind.AppendItemJSON(b, o)
		}
		if n != nil {
			b = append(b, `,"NewImage":`...)
			b = rewind.AppendItemJSON(b, n)
		}
		b = append(b, "}\n"...)
		out = append(out, exportLine{k, b})
	}
	slices.SortFunc(out, func(a, b exportLine) int { return strings.Compare(a.key, b.key) })
	return out
}

// writeExport writes the export's objects, then marks it written.
func (s *Server) writeExport(j *exportJob, lines []exportLine) {
	defer s.wg.Done()
	ctx := s.ctx
	put := func(key string, body []byte) (string, error) {
		out, err := s.cfg.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(j.bucket), Key: aws.String(key), Body: bytes.NewReader(body)})
		if err != nil {
			return "", err
		}
		return strings.Trim(aws.ToString(out.ETag), `"`), nil
	}
	var items, billed int64
	err := func() error {
		dir := j.key("AWSDynamoDB/" + j.id)
		if _, err := put(dir+"/_started", nil); err != nil {
			return err
		}
		parts := make([][]exportLine, s.cfg.ExportFiles)
		for _, l := range lines {
			h := fnv.New32a()
			h.Write([]byte(l.key))
			p := int(h.Sum32() % uint32(len(parts)))
			parts[p] = append(parts[p], l)
		}
		var manifest bytes.Buffer
		for _, part := range parts {
			var body []byte
			if len(part) > 0 {
				var buf bytes.Buffer
				zw := gzip.NewWriter(&buf)
				for _, l := range part {
					zw.Write(l.data) //nolint:errcheck // bytes.Buffer
					billed += int64(len(l.data))
				}
				zw.Close() //nolint:errcheck // bytes.Buffer
				body = buf.Bytes()
			}
			key := j.key("AWSDynamoDB/data/" + strings.ToLower(rand.Text()) + ".json.gz")
			etag, err := put(key, body)
			if err != nil {
				return err
			}
			sum := md5.Sum(body)
			line, _ := json.Marshal(map[string]any{
				"itemCount": len(part), "md5Checksum": base64.StdEncoding.EncodeToString(sum[:]),
				"etag": etag, "dataFileS3Key": key,
			})
			manifest.Write(line)
			manifest.WriteByte('\n')
			items += int64(len(part))
		}
		if err := putWithChecksum(put, dir+"/manifest-files", manifest.Bytes()); err != nil {
			return err
		}
		var prefix any // null when the export has no prefix
		if j.prefix != "" {
			prefix = j.prefix
		}
		summary, _ := json.MarshalIndent(map[string]any{
			"version":            "2023-08-01",
			"exportArn":          j.arn,
			"startTime":          j.started.UTC().Format("2006-01-02T15:04:05.000Z"),
			"endTime":            time.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
			"tableArn":           j.tableArn,
			"tableId":            j.tableID,
			"exportFromTime":     j.from.UTC().Format("2006-01-02T15:04:05.000Z"),
			"exportToTime":       j.to.UTC().Format("2006-01-02T15:04:05.000Z"),
			"s3Bucket":           j.bucket,
			"s3Prefix":           prefix,
			"s3SseAlgorithm":     "AES256",
			"s3SseKmsKeyId":      nil,
			"manifestFilesS3Key": dir + "/manifest-files.json",
			"billedSizeBytes":    billed,
			"itemCount":          items,
			"outputFormat":       "DYNAMODB_JSON",
			"outputView":         j.view,
			"exportType":         "INCREMENTAL_EXPORT",
		}, "", "   ")
		return putWithChecksum(put, dir+"/manifest-summary", summary)
	}()
	s.mu.Lock()
	defer s.mu.Unlock()
	j.written, j.ended, j.items, j.billed = true, time.Now(), items, billed
	if err != nil {
		j.failCode, j.fail = "S3AccessDenied", err.Error()
		var ae smithy.APIError
		if errors.As(err, &ae) && ae.ErrorCode() == "NoSuchBucket" {
			j.failCode = "S3NoSuchBucket"
		}
		s.cfg.Logger.Error("fakepitr: export failed", "export", j.arn, "err", err)
		return
	}
	s.cfg.Logger.Info("fakepitr: export written", "export", j.arn, "items", items)
}

func putWithChecksum(put func(string, []byte) (string, error), base string, body []byte) error {
	if _, err := put(base+".json", body); err != nil {
		return err
	}
	sum := md5.Sum(body)
	_, err := put(base+".checksum", []byte(hex.EncodeToString(sum[:])))
	return err
}

// status is the export's ExportStatus now.
func (s *Server) status(j *exportJob) string {
	switch {
	case !j.written || time.Since(j.started) < s.cfg.ExportingFor:
		return "IN_PROGRESS"
	case j.failCode != "":
		return "FAILED"
	}
	return "COMPLETED"
}

func (s *Server) exportDescription(_ DB, j *exportJob) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	status := s.status(j)
	d := map[string]any{
		"ExportArn":      j.arn,
		"ExportStatus":   status,
		"StartTime":      epoch(j.started),
		"TableArn":       j.tableArn,
		"S3Bucket":       j.bucket,
		"S3SseAlgorithm": "AES256",
		"ExportFormat":   "DYNAMODB_JSON",
		"ExportType":     "INCREMENTAL_EXPORT",
		"IncrementalExportSpecification": map[string]any{
			"ExportFromTime": epoch(j.from), "ExportToTime": epoch(j.to), "ExportViewType": j.view,
		},
	}
	if j.prefix != "" {
		d["S3Prefix"] = j.prefix
	}
	if j.tableID != "" {
		d["TableId"] = j.tableID
	}
	if j.token != "" {
		d["ClientToken"] = j.token
	}
	switch status {
	case "COMPLETED":
		d["EndTime"] = epoch(j.ended)
		d["ExportManifest"] = j.key("AWSDynamoDB/" + j.id + "/manifest-summary.json")
		d["ItemCount"] = j.items
		d["BilledSizeBytes"] = j.billed
	case "FAILED":
		d["EndTime"] = epoch(j.ended)
		d["FailureCode"] = j.failCode
		d["FailureMessage"] = j.fail
	}
	return map[string]any{"ExportDescription": d}
}

func (s *Server) findExport(db DB, arn string) *exportJob {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, j := range s.db(db).exports {
		if j.arn == arn {
			return j
		}
	}
	return nil
}

func (s *Server) describeExport(db DB, body []byte) (any, *apiError) {
	var in struct{ ExportArn string }
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, clientErr("SerializationException", "%v", err)
	}
	j := s.findExport(db, in.ExportArn)
	if j == nil {
		return nil, clientErr("ExportNotFoundException", "Export not found: %s", in.ExportArn)
	}
	return s.exportDescription(db, j), nil
}

func (s *Server) listExports(db DB, body []byte) (any, *apiError) {
	var in struct {
		TableArn   string
		MaxResults int
		NextToken  string
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, clientErr("SerializationException", "%v", err)
	}
	if in.MaxResults <= 0 || in.MaxResults > 25 {
		in.MaxResults = 25
	}
	start := 0
	if in.NextToken != "" {
		n, err := strconv.Atoi(in.NextToken)
		if err != nil || n < 0 {
			return nil, clientErr("ValidationException", "Invalid NextToken")
		}
		start = n
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []*exportJob
	for _, j := range s.db(db).exports {
		if in.TableArn == "" || j.tableArn == in.TableArn {
			all = append(all, j)
		}
	}
	sums := []any{}
	for _, j := range all[min(start, len(all)):min(start+in.MaxResults, len(all))] {
		sums = append(sums, map[string]any{"ExportArn": j.arn, "ExportStatus": s.status(j), "ExportType": "INCREMENTAL_EXPORT"})
	}
	out := map[string]any{"ExportSummaries": sums}
	if start+in.MaxResults < len(all) {
		out["NextToken"] = strconv.Itoa(start + in.MaxResults)
	}
	return out, nil
}
