// Package fakepitr is an HTTP front for DynamoDB Local that adds the
// point-in-time recovery operations DynamoDB Local lacks (it answers them
// with UnknownOperationException): UpdateContinuousBackups,
// DescribeContinuousBackups and RestoreTableToPointInTime, and the
// incremental exports to S3 (ExportTableToPointInTime, DescribeExport,
// ListExports; see export.go), in DynamoDB's
// JSON 1.0 protocol, with errors shaped as DynamoDB sends them. Every other
// request is proxied to DynamoDB Local unchanged, Authorization header
// included (DynamoDB Local picks the database by the access key id and
// region in it). The real aws-sdk-go-v2/service/dynamodb client works
// against Server.Endpoint (for the CLI: AWS_ENDPOINT_URL_DYNAMODB).
//
// Only the data copy of a restore is simulated. The server keeps
// snapshots: Snapshot scans a table into memory, standing in for PITR's
// history, enabling PITR on a table takes one (so, as in DynamoDB, the
// table can be restored to any time since it was enabled), and with
// Config.SnapshotEvery the server takes them periodically. The restorable
// window is [oldest snapshot, now - Config.LatestRestorableLag]: AWS
// documents LatestRestorableDateTime as "typically 5 minutes before the
// current time" (PointInTimeRecoveryDescription), so the lag defaults to
// five minutes, and tests that restore to a moment ago set NoLag. Right
// after PITR is enabled the latest restorable time is the enabling time
// itself, not before it (AWS: after re-enabling, "you can only immediately
// restore that table using the LatestRestorableDateTime"). A restore to a
// time outside the window is refused with InvalidRestoreTimeException and
// the message AWS documents for it.
//
// A restore to time T creates the target table on DynamoDB Local with the
// source's key schema, indexes (or the request's
// GlobalSecondaryIndexOverride / LocalSecondaryIndexOverride, an empty
// list meaning none) and billing mode and provisioned throughput (or the
// request's BillingModeOverride and ProvisionedThroughputOverride), and
// copies in the items of the latest snapshot taken at or before T. As AWS
// documents for RestoreTableToPointInTime ("You must manually set up the
// following on the restored table: auto scaling policies, IAM policies,
// Amazon CloudWatch metrics and alarms, tags, stream settings, Time to
// Live (TTL) settings, point in time recovery settings"), the restored
// table has no stream, TTL disabled and PITR disabled: none of them is
// carried over from the source (nor are tags, which DynamoDB Local does not
// support at all: TagResource answers UnknownOperationException). DescribeTable of a restored table
// carries RestoreSummary (SourceTableArn, RestoreDateTime), as in
// DynamoDB, for as long as the table exists. DescribeTable
// answers TableStatus CREATING (with RestoreSummary.RestoreInProgress)
// until the copy is done and Config.CreatingFor has passed, then ACTIVE.
// Data-plane requests to a table still CREATING are not refused, unlike in
// DynamoDB.
//
// Only tests and test tools may import this package.
package fakepitr

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// DefaultCreatingFor is how long a restored table stays CREATING.
const DefaultCreatingFor = 300 * time.Millisecond

// DefaultLatestRestorableLag is how far the latest restorable time runs
// behind now: AWS documents "typically 5 minutes".
const DefaultLatestRestorableLag = 5 * time.Minute

// NoLag, as Config.LatestRestorableLag, makes the latest restorable time
// now, for tests and drills that restore to a moment ago.
const NoLag time.Duration = -1

// Config configures a Server.
type Config struct {
	// Upstream is DynamoDB Local's endpoint, such as
	// http://127.0.0.1:8000. Required.
	Upstream string
	// CreatingFor is how long a restored table answers CREATING at least
	// (default 300 ms); it stays CREATING longer while its items are still
	// being copied.
	CreatingFor time.Duration
	// LatestRestorableLag is how far LatestRestorableDateTime runs behind
	// now (default DefaultLatestRestorableLag, 5 min; NoLag: none).
	// Restores and exports later than it are refused, as in DynamoDB.
	LatestRestorableLag time.Duration
	// SnapshotEvery, when positive, snapshots every table with PITR
	// enabled at this interval, so that a restore can pick any time since
	// enabling at that granularity, without the caller taking snapshots
	// (default 0: only Snapshot and enabling take them).
	SnapshotEvery time.Duration
	// MaxSnapshots bounds the snapshots kept per table; the oldest go
	// first, moving the earliest restorable time (default 1000).
	MaxSnapshots int
	// Logger gets the restores' progress and failures (default: discard).
	Logger *slog.Logger
	// S3 receives what ExportTableToPointInTime writes (see export.go),
	// such as a client of localaws' S3 server. Exports are refused without
	// it.
	S3 S3Putter
	// ExportingFor is how long an export answers IN_PROGRESS at least
	// (default 300 ms).
	ExportingFor time.Duration
	// ExportFiles is the number of "partitions", hence data files, an
	// export writes; items are spread by key and a partition without items
	// gets an empty file, as in DynamoDB (default 3).
	ExportFiles int
}

// DB names one DynamoDB Local database: requests signed with this access
// key id for this region.
type DB struct {
	AccessKeyID string
	Region      string
}

// Server is a running front.
type Server struct {
	// Endpoint is the URL to point clients at: http://127.0.0.1:PORT.
	Endpoint string

	cfg      Config
	upstream *url.URL
	srv      *http.Server
	proxy    *httputil.ReverseProxy
	client   *http.Client
	wg       sync.WaitGroup
	ctx      context.Context // cancelled by Close; bounds background copies
	cancel   context.CancelFunc

	mu  sync.Mutex
	dbs map[DB]*dbState
}

type dbState struct {
	tables   map[string]*tableState // PITR settings and snapshots, by name
	restores map[string]*restore    // by target table name
	exports  []*exportJob           // in start order
}

type tableState struct {
	enabled   bool
	days      int32
	snapshots []snapshot // oldest first
}

type snapshot struct {
	at    time.Time
	items []json.RawMessage
}

type restore struct {
	source    string
	sourceARN string
	at        time.Time
	started   time.Time
	copied    bool
}

// Start starts a front on 127.0.0.1 on a free port.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Upstream == "" {
		return nil, errors.New("fakepitr: Config.Upstream is empty")
	}
	up, err := url.Parse(cfg.Upstream)
	if err != nil {
		return nil, fmt.Errorf("fakepitr: Config.Upstream: %w", err)
	}
	if cfg.CreatingFor == 0 {
		cfg.CreatingFor = DefaultCreatingFor
	}
	switch {
	case cfg.LatestRestorableLag == 0:
		cfg.LatestRestorableLag = DefaultLatestRestorableLag
	case cfg.LatestRestorableLag < 0:
		cfg.LatestRestorableLag = 0
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxSnapshots <= 0 {
		cfg.MaxSnapshots = 1000
	}
	if cfg.ExportingFor == 0 {
		cfg.ExportingFor = DefaultCreatingFor
	}
	if cfg.ExportFiles <= 0 {
		cfg.ExportFiles = 3
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fakepitr: listen: %w", err)
	}
	s := &Server{
		Endpoint: "http://" + ln.Addr().String(),
		cfg:      cfg,
		upstream: up,
		client:   &http.Client{Timeout: time.Minute},
		dbs:      map[DB]*dbState{},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.proxy = &httputil.ReverseProxy{
		Rewrite:        func(pr *httputil.ProxyRequest) { pr.SetURL(up) },
		ModifyResponse: addCRC32,
	}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln) //nolint:errcheck // ErrServerClosed on Close
	if cfg.SnapshotEvery > 0 {
		s.wg.Add(1)
		go s.snapshotLoop()
	}
	return s, nil
}

// snapshotLoop snapshots every PITR-enabled table each SnapshotEvery.
func (s *Server) snapshotLoop() {
	defer s.wg.Done()
	tick := time.NewTicker(s.cfg.SnapshotEvery)
	defer tick.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
		}
		type target struct {
			db    DB
			table string
		}
		var targets []target
		s.mu.Lock()
		for db, d := range s.dbs {
			for name, t := range d.tables {
				if t.enabled {
					targets = append(targets, target{db, name})
				}
			}
		}
		s.mu.Unlock()
		for _, t := range targets {
			if err := s.Snapshot(s.ctx, t.db, t.table, time.Now()); err != nil && s.ctx.Err() == nil {
				s.cfg.Logger.Warn("fakepitr: periodic snapshot failed", "table", t.table, "err", err)
			}
		}
	}
}

// Close stops the server and waits for background copies to stop.
func (s *Server) Close() error {
	s.cancel()
	err := s.srv.Close()
	s.wg.Wait()
	return err
}

func (s *Server) db(db DB) *dbState {
	st, ok := s.dbs[db]
	if !ok {
		st = &dbState{tables: map[string]*tableState{}, restores: map[string]*restore{}}
		s.dbs[db] = st
	}
	return st
}

func (d *dbState) table(name string) *tableState {
	t, ok := d.tables[name]
	if !ok {
		t = &tableState{}
		d.tables[name] = t
	}
	return t
}

// credentialRE pulls the access key id and region out of a SigV4
// Authorization header.
var credentialRE = regexp.MustCompile(`Credential=([^/,\s]+)/[^/]+/([^/]+)/`)

func dbOf(r *http.Request) (DB, bool) {
	m := credentialRE.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil {
		return DB{}, false
	}
	return DB{AccessKeyID: m[1], Region: m[2]}, true
}

const targetPrefix = "DynamoDB_20120810."

// apiError is an error as DynamoDB sends it.
type apiError struct {
	status int
	typ    string
	msg    string
}

func (e *apiError) Error() string { return e.typ + ": " + e.msg }

func clientErr(typ, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, typ: typ, msg: fmt.Sprintf(format, args...)}
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op, _ := strings.CutPrefix(r.Header.Get("X-Amz-Target"), targetPrefix)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeErr(w, clientErr("SerializationException", "read body: %v", err))
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	db, signed := dbOf(r)
	var out any
	var aerr *apiError
	switch op {
	case "UpdateContinuousBackups", "DescribeContinuousBackups", "RestoreTableToPointInTime",
		"ExportTableToPointInTime", "DescribeExport", "ListExports":
		if !signed {
			writeErr(w, clientErr("MissingAuthenticationTokenException", "Request is missing Authentication Token"))
			return
		}
		switch op {
		case "UpdateContinuousBackups":
			out, aerr = s.updateContinuousBackups(r.Context(), db, body)
		case "DescribeContinuousBackups":
			out, aerr = s.describeContinuousBackups(r.Context(), db, body)
		case "ExportTableToPointInTime":
			out, aerr = s.exportTable(r.Context(), db, body)
		case "DescribeExport":
			out, aerr = s.describeExport(db, body)
		case "ListExports":
			out, aerr = s.listExports(db, body)
		default:
			out, aerr = s.restoreTable(r.Context(), db, body)
		}
	case "DescribeTable":
		name := tableName(body)
		s.mu.Lock()
		rs, restoring := s.db(db).restores[name]
		s.mu.Unlock()
		if !signed || !restoring {
			s.proxy.ServeHTTP(w, r)
			return
		}
		out, aerr = s.describeRestored(r.Context(), db, name, rs)
	case "DeleteTable":
		// Forget PITR state of a deleted table, as DynamoDB does.
		name := tableName(body)
		s.mu.Lock()
		d := s.db(db)
		delete(d.restores, name)
		delete(d.tables, name)
		s.mu.Unlock()
		s.proxy.ServeHTTP(w, r)
		return
	default:
		s.proxy.ServeHTTP(w, r)
		return
	}
	if aerr != nil {
		writeErr(w, aerr)
		return
	}
	b, err := json.Marshal(out)
	if err != nil {
		writeErr(w, &apiError{status: 500, typ: "InternalServerError", msg: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, b)
}

// addCRC32 gives DynamoDB Local's answers the X-Amz-Crc32 header real
// DynamoDB sends (DynamoDB Local omits it on errors, and the SDK then logs
// a checksum warning when it closes the body).
func addCRC32(resp *http.Response) error {
	if resp.Header.Get("X-Amz-Crc32") != "" || resp.Header.Get("Content-Encoding") != "" {
		return nil
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
	resp.Header.Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE(b)), 10))
	return nil
}

func tableName(body []byte) string {
	var in struct{ TableName string }
	_ = json.Unmarshal(body, &in)
	return in.TableName
}

func writeJSON(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE(b)), 10))
	w.Header().Set("X-Amzn-RequestId", fmt.Sprintf("FAKEPITR%016X", time.Now().UnixNano()))
	w.WriteHeader(status)
	w.Write(b) //nolint:errcheck
}

func writeErr(w http.ResponseWriter, e *apiError) {
	b, _ := json.Marshal(map[string]string{"__type": "com.amazonaws.dynamodb.v20120810#" + e.typ, "message": e.msg})
	writeJSON(w, e.status, b)
}

// epoch is a timestamp as DynamoDB's JSON protocol writes it.
func epoch(t time.Time) json.Number {
	return json.Number(strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64))
}

// call sends op to DynamoDB Local as db, signed, and returns the raw JSON
// answer; a DynamoDB error comes back as *apiError.
func (s *Server) call(ctx context.Context, db DB, op string, in any) (json.RawMessage, error) {
	body, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.upstream.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.0")
	req.Header.Set("X-Amz-Target", targetPrefix+op)
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: db.AccessKeyID, SecretAccessKey: "fakepitr"}
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "dynamodb", db.Region, time.Now()); err != nil {
		return nil, fmt.Errorf("sign %s: %w", op, err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("DynamoDB Local %s: %w", op, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("DynamoDB Local %s: %w", op, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Type    string `json:"__type"`
			Message string `json:"message"`
			Msg2    string `json:"Message"`
		}
		_ = json.Unmarshal(b, &e)
		typ := e.Type[strings.LastIndexByte(e.Type, '#')+1:]
		if typ == "" {
			typ = "InternalServerError"
		}
		return nil, &apiError{status: resp.StatusCode, typ: typ, msg: e.Message + e.Msg2}
	}
	return b, nil
}

// describe returns a table's description as raw JSON, or nil when it does
// not exist.
func (s *Server) describe(ctx context.Context, db DB, table string) (map[string]any, error) {
	b, err := s.call(ctx, db, "DescribeTable", map[string]string{"TableName": table})
	var aerr *apiError
	if errors.As(err, &aerr) && aerr.typ == "ResourceNotFoundException" {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out struct{ Table map[string]any }
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("DescribeTable %s: %w", table, err)
	}
	return out.Table, nil
}

func internalErr(err error) *apiError {
	var aerr *apiError
	if errors.As(err, &aerr) {
		return aerr
	}
	return &apiError{status: 500, typ: "InternalServerError", msg: err.Error()}
}

// Snapshot records table's items in db as of at: the point-in-time
// history a restore to at or later (until the next snapshot) reads from.
func (s *Server) Snapshot(ctx context.Context, db DB, table string, at time.Time) error {
	items, err := s.scan(ctx, db, table)
	if err != nil {
		return fmt.Errorf("fakepitr: snapshot %s: %w", table, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.db(db).table(table)
	t.snapshots = append(t.snapshots, snapshot{at: at, items: items})
	slices.SortStableFunc(t.snapshots, func(a, b snapshot) int { return a.at.Compare(b.at) })
	if n := len(t.snapshots) - s.cfg.MaxSnapshots; n > 0 {
		t.snapshots = slices.Delete(t.snapshots, 0, n)
	}
	return nil
}

func (s *Server) scan(ctx context.Context, db DB, table string) ([]json.RawMessage, error) {
	var items []json.RawMessage
	in := map[string]any{"TableName": table, "ConsistentRead": true}
	for {
		b, err := s.call(ctx, db, "Scan", in)
		if err != nil {
			return nil, err
		}
		var out struct {
			Items            []json.RawMessage
			LastEvaluatedKey json.RawMessage
		}
		if err := json.Unmarshal(b, &out); err != nil {
			return nil, err
		}
		items = append(items, out.Items...)
		if len(out.LastEvaluatedKey) == 0 || string(out.LastEvaluatedKey) == "null" {
			return items, nil
		}
		in["ExclusiveStartKey"] = out.LastEvaluatedKey
	}
}

func pitrDescription(t *tableState, now time.Time, lag time.Duration) map[string]any {
	d := map[string]any{"PointInTimeRecoveryStatus": "DISABLED"}
	if t != nil && t.enabled {
		d["PointInTimeRecoveryStatus"] = "ENABLED"
		d["RecoveryPeriodInDays"] = t.days
		if len(t.snapshots) > 0 {
			d["EarliestRestorableDateTime"] = epoch(t.earliest(now))
			d["LatestRestorableDateTime"] = epoch(t.latest(now, lag))
		}
	}
	return map[string]any{"ContinuousBackupsDescription": map[string]any{
		"ContinuousBackupsStatus":        "ENABLED",
		"PointInTimeRecoveryDescription": d,
	}}
}

// earliest is the oldest snapshot still inside the recovery period.
func (t *tableState) earliest(now time.Time) time.Time {
	cut := now.AddDate(0, 0, -int(t.days))
	for _, sn := range t.snapshots {
		if !sn.at.Before(cut) {
			return sn.at
		}
	}
	return t.snapshots[len(t.snapshots)-1].at
}

// latest is the latest restorable time: lag behind now, but never before
// the earliest (right after enabling, the window is that one moment).
func (t *tableState) latest(now time.Time, lag time.Duration) time.Time {
	l := now.Add(-lag)
	if e := t.earliest(now); l.Before(e) {
		return e
	}
	return l
}

func (s *Server) describeContinuousBackups(ctx context.Context, db DB, body []byte) (any, *apiError) {
	name := tableName(body)
	desc, err := s.describe(ctx, db, name)
	if err != nil {
		return nil, internalErr(err)
	}
	if desc == nil {
		return nil, clientErr("TableNotFoundException", "Table not found: %s", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return pitrDescription(s.db(db).tables[name], time.Now(), s.cfg.LatestRestorableLag), nil
}

func (s *Server) updateContinuousBackups(ctx context.Context, db DB, body []byte) (any, *apiError) {
	var in struct {
		TableName                        string
		PointInTimeRecoverySpecification *struct {
			PointInTimeRecoveryEnabled *bool
			RecoveryPeriodInDays       *int32
		}
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, clientErr("SerializationException", "%v", err)
	}
	spec := in.PointInTimeRecoverySpecification
	if spec == nil || spec.PointInTimeRecoveryEnabled == nil {
		return nil, clientErr("ValidationException", "1 validation error detected: Value null at 'pointInTimeRecoverySpecification.pointInTimeRecoveryEnabled' failed to satisfy constraint: Member must not be null")
	}
	days := int32(35)
	if spec.RecoveryPeriodInDays != nil {
		days = *spec.RecoveryPeriodInDays
		if days < 1 || days > 35 {
			return nil, clientErr("ValidationException", "1 validation error detected: Value '%d' at 'pointInTimeRecoverySpecification.recoveryPeriodInDays' failed to satisfy constraint: Member must have value between 1 and 35", days)
		}
	}
	desc, err := s.describe(ctx, db, in.TableName)
	if err != nil {
		return nil, internalErr(err)
	}
	if desc == nil {
		return nil, clientErr("TableNotFoundException", "Table not found: %s", in.TableName)
	}
	s.mu.Lock()
	wasEnabled := s.db(db).table(in.TableName).enabled
	s.mu.Unlock()
	now := time.Now()
	if *spec.PointInTimeRecoveryEnabled && !wasEnabled {
		// History starts when PITR is enabled.
		if err := s.Snapshot(ctx, db, in.TableName, now); err != nil {
			return nil, internalErr(err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.db(db).table(in.TableName)
	t.enabled = *spec.PointInTimeRecoveryEnabled
	if t.enabled {
		t.days = days
	} else {
		t.days, t.snapshots = 0, nil // disabling PITR drops its history
	}
	return pitrDescription(t, now, s.cfg.LatestRestorableLag), nil
}

// restoreInput is RestoreTableToPointInTime's request, as far as the fake
// reads it. The overrides are pointers so that an empty list (no indexes)
// differs from an absent one (the source's indexes).
type restoreInput struct {
	SourceTableName               string
	SourceTableArn                string
	TargetTableName               string
	UseLatestRestorableTime       bool
	RestoreDateTime               *json.Number
	BillingModeOverride           string
	ProvisionedThroughputOverride *struct {
		ReadCapacityUnits  *json.Number
		WriteCapacityUnits *json.Number
	}
	GlobalSecondaryIndexOverride *[]map[string]any
	LocalSecondaryIndexOverride  *[]map[string]any
}

func (s *Server) restoreTable(ctx context.Context, db DB, body []byte) (any, *apiError) {
	var in restoreInput
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&in); err != nil {
		return nil, clientErr("SerializationException", "%v", err)
	}
	source := in.SourceTableName
	if source == "" {
		if i := strings.LastIndex(in.SourceTableArn, ":table/"); i >= 0 {
			source = in.SourceTableArn[i+len(":table/"):]
		}
	}
	switch {
	case source == "":
		return nil, clientErr("ValidationException", "Either SourceTableName or SourceTableArn must be specified")
	case in.TargetTableName == "":
		return nil, clientErr("ValidationException", "1 validation error detected: Value null at 'targetTableName' failed to satisfy constraint: Member must not be null")
	case in.UseLatestRestorableTime && in.RestoreDateTime != nil:
		return nil, clientErr("ValidationException", "Only one of RestoreDateTime or UseLatestRestorableTime can be specified")
	case !in.UseLatestRestorableTime && in.RestoreDateTime == nil:
		return nil, clientErr("ValidationException", "Either RestoreDateTime or UseLatestRestorableTime must be specified")
	case in.BillingModeOverride != "" && in.BillingModeOverride != "PROVISIONED" && in.BillingModeOverride != "PAY_PER_REQUEST":
		return nil, clientErr("ValidationException", "1 validation error detected: Value '%s' at 'billingModeOverride' failed to satisfy constraint: Member must satisfy enum value set: [PROVISIONED, PAY_PER_REQUEST]", in.BillingModeOverride)
	case in.BillingModeOverride == "PAY_PER_REQUEST" && in.ProvisionedThroughputOverride != nil:
		return nil, clientErr("ValidationException", "ProvisionedThroughputOverride cannot be specified when BillingModeOverride is PAY_PER_REQUEST")
	}
	src, err := s.describe(ctx, db, source)
	if err != nil {
		return nil, internalErr(err)
	}
	if src == nil {
		return nil, clientErr("TableNotFoundException", "Table not found: %s", source)
	}
	s.mu.Lock()
	_, restoring := s.db(db).restores[in.TargetTableName]
	s.mu.Unlock()
	if target, err := s.describe(ctx, db, in.TargetTableName); err != nil {
		return nil, internalErr(err)
	} else if target != nil || restoring {
		return nil, clientErr("TableAlreadyExistsException", "Table already exists: %s", in.TargetTableName)
	}

	now := time.Now()
	var at time.Time
	if in.RestoreDateTime != nil {
		f, err := in.RestoreDateTime.Float64()
		if err != nil {
			return nil, clientErr("SerializationException", "RestoreDateTime: %v", err)
		}
		at = time.UnixMilli(int64(f * 1000))
	}
	s.mu.Lock()
	t := s.db(db).tables[source]
	var snap snapshot
	var aerr *apiError
	switch {
	case t == nil || !t.enabled:
		aerr = clientErr("PointInTimeRecoveryUnavailableException", "Point in time recovery is not enabled for table '%s'", source)
	case len(t.snapshots) == 0:
		aerr = clientErr("InvalidRestoreTimeException", invalidRestoreTime)
	default:
		if in.UseLatestRestorableTime {
			at = t.latest(now, s.cfg.LatestRestorableLag)
		}
		if at.Before(t.earliest(now).Truncate(time.Millisecond)) || at.After(t.latest(now, s.cfg.LatestRestorableLag)) {
			aerr = clientErr("InvalidRestoreTimeException", invalidRestoreTime)
			break
		}
		// Times travel in whole milliseconds (epoch): a restore to the
		// earliest restorable time as reported gets the first snapshot.
		for _, sn := range t.snapshots {
			if !sn.at.Truncate(time.Millisecond).After(at) {
				snap = sn
			}
		}
	}
	s.mu.Unlock()
	if aerr != nil {
		return nil, aerr
	}

	create, aerr := createTableInput(src, in)
	if aerr != nil {
		return nil, aerr
	}
	if _, err := s.call(ctx, db, "CreateTable", create); err != nil {
		return nil, internalErr(err)
	}
	rs := &restore{source: source, sourceARN: fmt.Sprint(src["TableArn"]), at: at, started: now}
	s.mu.Lock()
	s.db(db).restores[in.TargetTableName] = rs
	s.mu.Unlock()
	s.cfg.Logger.Info("fakepitr: restoring", "source", source, "target", in.TargetTableName, "at", at, "snapshot", snap.at, "items", len(snap.items))
	s.wg.Add(1)
	go s.copyItems(db, in.TargetTableName, rs, snap.items)

	desc, aerr := s.describeRestored(ctx, db, in.TargetTableName, rs)
	if aerr != nil {
		return nil, aerr
	}
	return map[string]any{"TableDescription": desc.(map[string]any)["Table"]}, nil
}

// invalidRestoreTime is the message of InvalidRestoreTimeException as AWS
// documents the exception ("An invalid restore time was specified.
// RestoreDateTime must be between EarliestRestorableDateTime and
// LatestRestorableDateTime.").
const invalidRestoreTime = "An invalid restore time was specified. RestoreDateTime must be between EarliestRestorableDateTime and LatestRestorableDateTime."

// createTableInput builds CreateTable for the target from the source's
// description and the request's overrides.
func createTableInput(src map[string]any, in restoreInput) (map[string]any, *apiError) {
	billing := "PROVISIONED"
	if bm, ok := src["BillingModeSummary"].(map[string]any); ok && bm["BillingMode"] != nil {
		billing = fmt.Sprint(bm["BillingMode"])
	}
	if in.BillingModeOverride != "" {
		billing = in.BillingModeOverride
	}
	throughput := func(pt any) map[string]any {
		m, _ := pt.(map[string]any)
		r, w := m["ReadCapacityUnits"], m["WriteCapacityUnits"]
		if r == nil || fmt.Sprint(r) == "0" {
			r = 5
		}
		if w == nil || fmt.Sprint(w) == "0" {
			w = 5
		}
		return map[string]any{"ReadCapacityUnits": r, "WriteCapacityUnits": w}
	}
	out := map[string]any{
		"TableName":   in.TargetTableName,
		"KeySchema":   src["KeySchema"],
		"BillingMode": billing,
	}
	if billing == "PROVISIONED" {
		pt := src["ProvisionedThroughput"]
		if o := in.ProvisionedThroughputOverride; o != nil {
			pt = map[string]any{"ReadCapacityUnits": o.ReadCapacityUnits, "WriteCapacityUnits": o.WriteCapacityUnits}
		}
		out["ProvisionedThroughput"] = throughput(pt)
	}
	index := func(raw any, global bool) map[string]any {
		m, _ := raw.(map[string]any)
		ix := map[string]any{"IndexName": m["IndexName"], "KeySchema": m["KeySchema"], "Projection": m["Projection"]}
		if global && billing == "PROVISIONED" {
			ix["ProvisionedThroughput"] = throughput(m["ProvisionedThroughput"])
		}
		return ix
	}
	used := map[string]bool{}
	addKeys := func(ks any) {
		l, _ := ks.([]any)
		for _, k := range l {
			if m, ok := k.(map[string]any); ok {
				used[fmt.Sprint(m["AttributeName"])] = true
			}
		}
	}
	addKeys(src["KeySchema"])
	for _, kind := range []struct {
		field    string
		override *[]map[string]any
		global   bool
	}{
		{"GlobalSecondaryIndexes", in.GlobalSecondaryIndexOverride, true},
		{"LocalSecondaryIndexes", in.LocalSecondaryIndexOverride, false},
	} {
		var ixs []any
		if kind.override != nil {
			for _, o := range *kind.override {
				ixs = append(ixs, index(o, kind.global))
			}
		} else if l, ok := src[kind.field].([]any); ok {
			for _, o := range l {
				ixs = append(ixs, index(o, kind.global))
			}
		}
		for _, ix := range ixs {
			addKeys(ix.(map[string]any)["KeySchema"])
		}
		if len(ixs) > 0 {
			out[kind.field] = ixs
		}
	}
	var defs []any
	l, _ := src["AttributeDefinitions"].([]any)
	for _, d := range l {
		if m, ok := d.(map[string]any); ok && used[fmt.Sprint(m["AttributeName"])] {
			defs = append(defs, m)
		}
	}
	if len(defs) != len(used) {
		return nil, clientErr("ValidationException", "an index override uses an attribute the source table does not define")
	}
	out["AttributeDefinitions"] = defs
	return out, nil
}

// copyItems writes the snapshot's items into the target, 25 at a time.
func (s *Server) copyItems(db DB, target string, rs *restore, items []json.RawMessage) {
	defer s.wg.Done()
	ctx := s.ctx
	err := func() error {
		for start := 0; start < len(items); start += 25 {
			var reqs []any
			for _, it := range items[start:min(start+25, len(items))] {
				reqs = append(reqs, map[string]any{"PutRequest": map[string]any{"Item": it}})
			}
			for attempt := 0; len(reqs) > 0; attempt++ {
				if attempt == 10 {
					return errors.New("BatchWriteItem: items still unprocessed after 10 attempts")
				}
				b, err := s.call(ctx, db, "BatchWriteItem", map[string]any{"RequestItems": map[string]any{target: reqs}})
				if err != nil {
					return err
				}
				var out struct{ UnprocessedItems map[string][]any }
				if err := json.Unmarshal(b, &out); err != nil {
					return err
				}
				reqs = out.UnprocessedItems[target]
			}
		}
		return nil
	}()
	if err != nil {
		// A failed restore leaves no table behind, as in DynamoDB.
		s.cfg.Logger.Error("fakepitr: restore failed; deleting the target", "target", target, "err", err)
		s.mu.Lock()
		delete(s.db(db).restores, target)
		s.mu.Unlock()
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.call(dctx, db, "DeleteTable", map[string]string{"TableName": target}) //nolint:errcheck // best effort
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rs.copied = true
	s.cfg.Logger.Info("fakepitr: restore copied", "target", target, "items", len(items))
}

// describeRestored answers DescribeTable for a restored table: DynamoDB
// Local's description, CREATING until the restore is done.
func (s *Server) describeRestored(ctx context.Context, db DB, name string, rs *restore) (any, *apiError) {
	desc, err := s.describe(ctx, db, name)
	if err != nil {
		return nil, internalErr(err)
	}
	if desc == nil {
		return nil, clientErr("ResourceNotFoundException", "Requested resource not found: Table: %s not found", name)
	}
	s.mu.Lock()
	done := rs.copied && time.Since(rs.started) >= s.cfg.CreatingFor
	s.mu.Unlock()
	desc["RestoreSummary"] = map[string]any{
		"SourceTableArn":    rs.sourceARN,
		"RestoreDateTime":   epoch(rs.at),
		"RestoreInProgress": !done,
	}
	if !done {
		desc["TableStatus"] = "CREATING"
		if l, ok := desc["GlobalSecondaryIndexes"].([]any); ok {
			for _, ix := range l {
				if m, ok := ix.(map[string]any); ok {
					m["IndexStatus"] = "CREATING"
				}
			}
		}
	}
	return map[string]any{"Table": desc}, nil
}
