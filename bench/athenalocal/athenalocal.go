// Package athenalocal is a local stand-in for Amazon Athena and the AWS
// Glue Data Catalog: one HTTP server speaking both services' JSON
// protocols (awsJson1_1, X-Amz-Target AmazonAthena.* and AWSGlue.*), so
// rewind's real SDK clients can be tested against it. It runs the
// submitted SQL with DuckDB over the objects a local S3 server holds under
// each Glue table's location.
//
// What it models, each from the services' documentation:
//   - Glue CreateDatabase, GetDatabase, CreateTable, UpdateTable, GetTable
//     (EntityNotFoundException, AlreadyExistsException);
//   - partition projection: a table with projection.enabled reads only the
//     locations of storage.location.template for the projected values
//     (enum table, hour 00..23); Hive partition columns come from the path;
//   - Athena StartQueryExecution with ExecutionParameters for the query's
//     ? placeholders, each an SQL literal ('text' with ” for a quote, or a
//     number); GetQueryExecution with QUEUED, RUNNING, SUCCEEDED, FAILED or
//     CANCELLED, StateChangeReason and DataScannedInBytes;
//     StopQueryExecution; GetQueryResults paged with NextToken, at most
//     MaxResults (up to 1000) rows a page, the first page's first row the
//     column names;
//   - the result object <location>/<QueryID>.csv, in Athena's CSV (see
//     writeResult), at the StartQueryExecution's or the workgroup's
//     (OutputLocation) result location, which GetQueryExecution reports.
//
// Data scanned is the size of the objects of the partitions read: the
// stand-in prunes by partition only through the projection's table list,
// so it is an upper bound of what Athena reads.
//
// Where Trino (Athena engine version 3) and DuckDB differ, macros bridge
// them; see Macros.
package athenalocal

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	_ "github.com/duckdb/duckdb-go/v2"
)

// Macros are the DuckDB macros that give DuckDB the Trino functions
// rewind's SQL uses, with Trino's meaning:
//   - json_extract_scalar(json, path): Trino's JSONPath takes the bracket
//     notation $["attr"]["S"]; DuckDB's json_extract_string wants
//     $."attr"."S". The macro rewrites the path and extracts the text.
//     Text that is not JSON (an empty image) gives NULL, as in Trino,
//     rather than DuckDB's error.
//   - json_format(json): Trino's renders a JSON value as text; DuckDB's
//     JSON type is already text, so the macro casts it to VARCHAR.
//     CAST(array AS JSON) means the same in both: a JSON array.
//
// The other functions rewind uses (row_number, count_if, coalesce, nullif,
// starts_with, contains on an array, try_cast, CAST to varchar, floor,
// date_diff('millisecond', …)) mean the same in both.
var Macros = []string{
	`CREATE OR REPLACE MACRO json_extract_scalar(j, p) AS
	   json_extract_string(CASE WHEN json_valid(j) THEN j END, regexp_replace(p, '\["((?:[^"\\]|\\.)*)"\]', '."\1"', 'g'))`,
	`CREATE OR REPLACE MACRO json_format(j) AS CAST(j AS VARCHAR)`,
}

// Server is the stand-in. Start it with Start.
type Server struct {
	// URL is the endpoint for both the Athena and the Glue clients.
	URL string
	// PageSize caps the rows of a GetQueryResults page below the
	// request's MaxResults, to test paging. Default 1000.
	PageSize int
	// Hold, when set, keeps each query RUNNING until it is closed or the
	// query is stopped: a test's long query.
	Hold chan struct{}
	// OutputLocation is the workgroup's query result location,
	// s3://bucket/prefix/, used when StartQueryExecution gives none. With
	// neither, StartQueryExecution fails as Athena's does.
	OutputLocation string
	// NoResultObject, when set, leaves the result object unwritten (as if
	// a lifecycle rule had removed it): GetQueryResults still answers.
	NoResultObject bool

	s3   *s3.Client
	dir  string
	db   *sql.DB
	srv  *http.Server
	done chan struct{}

	mu      sync.Mutex
	dbs     map[string]bool
	tables  map[string]map[string]any // "db.table" -> the TableInput as JSON
	queries map[string]*execution
	n       int
	// Stops counts StopQueryExecution calls.
	stops int
}

type execution struct {
	id, sql, db string
	params      []string
	output      string // the result object, s3://bucket/key
	state       string
	reason      string
	scanned     int64
	submitted   time.Time
	cancel      context.CancelFunc
	cols        []string
	types       []string
	rows        [][]*string
}

// Start serves on 127.0.0.1, reading table locations through s3c.
func Start(s3c *s3.Client) (*Server, error) {
	dir, err := os.MkdirTemp("", "athenalocal-")
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return nil, fmt.Errorf("athenalocal: open DuckDB: %w", err)
	}
	db.SetMaxOpenConns(1) // one connection: the schemas, views and macros live in it
	// DuckDB 1.5's TopNWindowElimination optimizer fails an internal
	// assertion on row_number() ... = 1 over a view with bound
	// parameters ("Failed to cast expression to type"); the plan without
	// it is the same query.
	setup := []string{"SET TimeZone = 'UTC'", "SET disabled_optimizers = 'top_n_window_elimination'"}
	for _, m := range append(setup, Macros...) {
		if _, err := db.Exec(m); err != nil {
			db.Close()
			return nil, fmt.Errorf("athenalocal: %s: %w", m, err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		db.Close()
		return nil, err
	}
	s := &Server{
		URL: "http://" + ln.Addr().String(), s3: s3c, dir: dir, db: db, done: make(chan struct{}),
		dbs: map[string]bool{}, tables: map[string]map[string]any{}, queries: map[string]*execution{},
	}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { defer close(s.done); s.srv.Serve(ln) }()
	return s, nil
}

// Close stops the server and removes its files.
func (s *Server) Close() error {
	err := s.srv.Close()
	<-s.done
	s.mu.Lock()
	for _, q := range s.queries {
		if q.cancel != nil {
			q.cancel()
		}
	}
	s.mu.Unlock()
	s.db.Close()
	os.RemoveAll(s.dir)
	return err
}

// Stops returns how many StopQueryExecution calls the server answered.
func (s *Server) Stops() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stops
}

// Queries returns the SQL and parameters of every query submitted, in
// order.
func (s *Server) Queries() (sqls []string, params [][]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 1; i <= s.n; i++ {
		q := s.queries[fmt.Sprintf("q-%06d", i)]
		sqls, params = append(sqls, q.sql), append(params, q.params)
	}
	return sqls, params
}

type apiError struct {
	typ, msg string
}

func (e *apiError) Error() string { return e.typ + ": " + e.msg }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var in map[string]any
	if len(body) > 0 {
		if err := json.Unmarshal(body, &in); err != nil {
			writeErr(w, &apiError{"SerializationException", err.Error()})
			return
		}
	}
	var out any
	switch target {
	case "AWSGlue.GetDatabase":
		out, err = s.getDatabase(in)
	case "AWSGlue.CreateDatabase":
		out, err = s.createDatabase(in)
	case "AWSGlue.GetTable":
		out, err = s.getTable(in)
	case "AWSGlue.CreateTable":
		out, err = s.putTable(in, true)
	case "AWSGlue.UpdateTable":
		out, err = s.putTable(in, false)
	case "AmazonAthena.StartQueryExecution":
		out, err = s.start(in)
	case "AmazonAthena.GetQueryExecution":
		out, err = s.getExecution(in)
	case "AmazonAthena.GetQueryResults":
		out, err = s.results(in)
	case "AmazonAthena.StopQueryExecution":
		out, err = s.stop(in)
	default:
		err = &apiError{"UnknownOperationException", "athenalocal does not serve " + target}
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	json.NewEncoder(w).Encode(out)
}

func writeErr(w http.ResponseWriter, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = &apiError{"InternalServerException", err.Error()}
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", ae.typ)
	w.WriteHeader(http.StatusBadRequest)
	json.NewEncoder(w).Encode(map[string]string{"__type": ae.typ, "Message": ae.msg})
}

func str(m map[string]any, k string) string {
	v, _ := m[k].(string)
	return v
}

func (s *Server) getDatabase(in map[string]any) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := str(in, "Name")
	if !s.dbs[name] {
		return nil, &apiError{"EntityNotFoundException", "Database " + name + " not found."}
	}
	return map[string]any{"Database": map[string]any{"Name": name}}, nil
}

func (s *Server) createDatabase(in map[string]any) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	di, _ := in["DatabaseInput"].(map[string]any)
	name := str(di, "Name")
	if !glueName(name) {
		return nil, &apiError{"InvalidInputException", "bad database name " + strconv.Quote(name)}
	}
	if s.dbs[name] {
		return nil, &apiError{"AlreadyExistsException", "Database already exists."}
	}
	s.dbs[name] = true
	return map[string]any{}, nil
}

func glueName(n string) bool {
	if n == "" {
		return false
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

func (s *Server) getTable(in map[string]any) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	db, name := str(in, "DatabaseName"), str(in, "Name")
	t, ok := s.tables[db+"."+name]
	if !ok {
		return nil, &apiError{"EntityNotFoundException", "Table " + name + " not found."}
	}
	out := map[string]any{"DatabaseName": db}
	for k, v := range t {
		out[k] = v
	}
	return map[string]any{"Table": out}, nil
}

func (s *Server) putTable(in map[string]any, create bool) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	db := str(in, "DatabaseName")
	ti, _ := in["TableInput"].(map[string]any)
	name := str(ti, "Name")
	if !s.dbs[db] {
		return nil, &apiError{"EntityNotFoundException", "Database " + db + " not found."}
	}
	if !glueName(name) {
		return nil, &apiError{"InvalidInputException", "bad table name " + strconv.Quote(name)}
	}
	_, exists := s.tables[db+"."+name]
	switch {
	case create && exists:
		return nil, &apiError{"AlreadyExistsException", "Table already exists."}
	case !create && !exists:
		return nil, &apiError{"EntityNotFoundException", "Table " + name + " not found."}
	}
	s.tables[db+"."+name] = ti
	return map[string]any{}, nil
}

// Table returns the Glue table db.name as stored (the TableInput's JSON),
// or nil.
func (s *Server) Table(db, name string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tables[db+"."+name]
}

func (s *Server) start(in map[string]any) (any, error) {
	q := str(in, "QueryString")
	if q == "" {
		return nil, &apiError{"InvalidRequestException", "QueryString is required"}
	}
	qc, _ := in["QueryExecutionContext"].(map[string]any)
	rc, _ := in["ResultConfiguration"].(map[string]any)
	output := str(rc, "OutputLocation")
	if output == "" {
		output = s.OutputLocation
	}
	if !strings.HasPrefix(output, "s3://") {
		return nil, &apiError{"InvalidRequestException", "No output location provided. An output location is required either through the Workgroup result configuration setting or as an API input."}
	}
	var params []string
	if ps, ok := in["ExecutionParameters"].([]any); ok {
		for _, p := range ps {
			v, _ := p.(string)
			params = append(params, v)
		}
	}
	s.mu.Lock()
	s.n++
	ex := &execution{id: fmt.Sprintf("q-%06d", s.n), sql: q, db: str(qc, "Database"), params: params, state: "QUEUED", submitted: time.Now()}
	// API queries write straight to the location: <location>/<QueryID>.csv.
	ex.output = strings.TrimSuffix(output, "/") + "/" + ex.id + ".csv"
	ctx, cancel := context.WithCancel(context.Background())
	ex.cancel = cancel
	s.queries[ex.id] = ex
	s.mu.Unlock()
	go s.run(ctx, ex)
	return map[string]any{"QueryExecutionId": ex.id}, nil
}

func (s *Server) set(ex *execution, f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ex.state == "CANCELLED" {
		return
	}
	f()
}

func (s *Server) run(ctx context.Context, ex *execution) {
	fail := func(err error) {
		s.set(ex, func() { ex.state, ex.reason = "FAILED", err.Error() })
	}
	s.set(ex, func() { ex.state = "RUNNING" })
	if s.Hold != nil {
		select {
		case <-s.Hold:
		case <-ctx.Done():
			return
		}
	}
	args := make([]any, len(ex.params))
	for i, p := range ex.params {
		v, err := literal(p)
		if err != nil {
			fail(fmt.Errorf("INVALID_PARAMETER: execution parameter %d: %w", i+1, err))
			return
		}
		args[i] = v
	}
	scanned, err := s.prepare(ctx)
	if err != nil {
		fail(err)
		return
	}
	s.set(ex, func() { ex.scanned = scanned })
	rows, err := s.db.QueryContext(ctx, ex.sql, args...)
	if err != nil {
		if ctx.Err() == nil {
			fail(err)
		}
		return
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	cts, _ := rows.ColumnTypes()
	var types []string
	for _, ct := range cts {
		types = append(types, strings.ToLower(ct.DatabaseTypeName()))
	}
	var out [][]*string
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			fail(err)
			return
		}
		row := make([]*string, len(cols))
		for i, v := range vals {
			row[i] = text(v)
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		if ctx.Err() == nil {
			fail(err)
		}
		return
	}
	if !s.NoResultObject {
		if err := s.writeResult(ctx, ex.output, cols, out); err != nil {
			fail(err)
			return
		}
	}
	s.set(ex, func() { ex.state, ex.cols, ex.types, ex.rows = "SUCCEEDED", cols, types, out })
}

// writeResult writes the result object as Athena does ("Find query output
// files in Amazon S3" in the Athena guide: a DML query's results are
// <QueryID>.csv at the result location): a header row of the column
// names, then a record per row, each value in double quotes with a quote
// doubled, NULL an empty field without quotes, records ended by a
// newline. The binary .csv.metadata beside it is not modelled.
func (s *Server) writeResult(ctx context.Context, loc string, cols []string, rows [][]*string) error {
	var b []byte
	field := func(i int, v *string) {
		if i > 0 {
			b = append(b, ',')
		}
		if v != nil {
			b = append(b, '"')
			b = append(b, strings.ReplaceAll(*v, `"`, `""`)...)
			b = append(b, '"')
		}
	}
	for i, c := range cols {
		field(i, &c)
	}
	b = append(b, '\n')
	for _, r := range rows {
		for i, v := range r {
			field(i, v)
		}
		b = append(b, '\n')
	}
	bucket, key, _ := strings.Cut(strings.TrimPrefix(loc, "s3://"), "/")
	if _, err := s.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader(b), ContentType: aws.String("text/csv")}); err != nil {
		return fmt.Errorf("write the result object %s: %w", loc, err)
	}
	return nil
}

// text renders a value as Athena's VarCharValue does; nil for NULL.
func text(v any) *string {
	var s string
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		s = x
	case []byte:
		s = string(x)
	case *big.Int:
		s = x.String()
	case time.Time:
		s = x.UTC().Format("2006-01-02 15:04:05.999999999")
	case bool:
		s = strconv.FormatBool(x)
	default:
		s = fmt.Sprint(x)
	}
	return &s
}

// literal reads an execution parameter: an SQL string literal in single
// quotes (” for a quote), a number, true or false. Anything else is not
// a value, as Athena refuses it.
func literal(p string) (any, error) {
	if len(p) >= 2 && p[0] == '\'' && p[len(p)-1] == '\'' {
		in := p[1 : len(p)-1]
		if strings.Count(in, "'")%2 != 0 || strings.Contains(strings.ReplaceAll(in, "''", ""), "'") {
			return nil, fmt.Errorf("%q: a lone quote inside a string literal", p)
		}
		return strings.ReplaceAll(in, "''", "'"), nil
	}
	if p == "true" || p == "false" {
		return p == "true", nil
	}
	if _, err := strconv.ParseFloat(p, 64); err == nil {
		return p, nil
	}
	return nil, fmt.Errorf("%q is not a literal (strings go in single quotes)", p)
}

// prepare (re)creates a view per Glue table over the objects its location
// holds now, and returns the bytes of those objects.
func (s *Server) prepare(ctx context.Context) (int64, error) {
	s.mu.Lock()
	type tbl struct {
		db, name string
		t        map[string]any
	}
	var ts []tbl
	for k, t := range s.tables {
		db, name, _ := strings.Cut(k, ".")
		ts = append(ts, tbl{db, name, t})
	}
	s.mu.Unlock()
	slices.SortFunc(ts, func(a, b tbl) int { return strings.Compare(a.db+"."+a.name, b.db+"."+b.name) })
	var total int64
	for _, t := range ts {
		n, err := s.view(ctx, t.db, t.name, t.t)
		if err != nil {
			return 0, fmt.Errorf("table %s.%s: %w", t.db, t.name, err)
		}
		total += n
	}
	return total, nil
}

var duckTypes = map[string]string{
	"string": "VARCHAR", "boolean": "BOOLEAN", "timestamp": "TIMESTAMP", "bigint": "BIGINT",
	"int": "INTEGER", "double": "DOUBLE", "array<string>": "VARCHAR[]",
}

func (s *Server) view(ctx context.Context, db, name string, t map[string]any) (int64, error) {
	sd, _ := t["StorageDescriptor"].(map[string]any)
	loc := str(sd, "Location")
	bucket, prefix, _ := strings.Cut(strings.TrimPrefix(loc, "s3://"), "/")
	if !strings.HasPrefix(loc, "s3://") || bucket == "" {
		return 0, fmt.Errorf("location %q: want s3://bucket/prefix", loc)
	}
	params, _ := t["Parameters"].(map[string]any)
	var tables []string
	if str(params, "projection.enabled") == "true" {
		tables = strings.Split(str(params, "projection.table.values"), ",")
	}
	qdir, err := os.MkdirTemp(s.dir, "q-")
	if err != nil {
		return 0, err
	}
	var files []string
	var total int64
	listPrefixes := []string{prefix}
	if tables != nil {
		listPrefixes = nil
		for _, tb := range tables {
			listPrefixes = append(listPrefixes, prefix+"table="+tb+"/")
		}
	}
	for _, lp := range listPrefixes {
		p := s3.NewListObjectsV2Paginator(s.s3, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: aws.String(lp)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return 0, fmt.Errorf("list s3://%s/%s: %w", bucket, lp, err)
			}
			for _, o := range page.Contents {
				key := aws.ToString(o.Key)
				rel := strings.TrimPrefix(key, prefix)
				if !strings.HasSuffix(key, ".parquet") || !projected(rel) {
					continue
				}
				f, err := s.fetch(ctx, bucket, key, aws.ToString(o.ETag), filepath.Join(qdir, filepath.FromSlash(rel)))
				if err != nil {
					return 0, err
				}
				files = append(files, f)
				total += aws.ToInt64(o.Size)
			}
		}
	}
	var cols []string
	cs, _ := sd["Columns"].([]any)
	for _, c := range cs {
		cm, _ := c.(map[string]any)
		typ, ok := duckTypes[str(cm, "Type")]
		if !ok {
			return 0, fmt.Errorf("column %s: type %q not modelled", str(cm, "Name"), str(cm, "Type"))
		}
		cols = append(cols, fmt.Sprintf("CAST(%s AS %s) AS %s", ident(str(cm, "Name")), typ, ident(str(cm, "Name"))))
	}
	pks, _ := t["PartitionKeys"].([]any)
	for _, pk := range pks {
		pm, _ := pk.(map[string]any)
		cols = append(cols, fmt.Sprintf("CAST(%s AS VARCHAR) AS %s", ident(str(pm, "Name")), ident(str(pm, "Name"))))
	}
	var from string
	if len(files) == 0 {
		var nulls []string
		for _, c := range cs {
			cm, _ := c.(map[string]any)
			nulls = append(nulls, fmt.Sprintf("CAST(NULL AS %s) AS %s", duckTypes[str(cm, "Type")], ident(str(cm, "Name"))))
		}
		for _, pk := range pks {
			pm, _ := pk.(map[string]any)
			nulls = append(nulls, "CAST(NULL AS VARCHAR) AS "+ident(str(pm, "Name")))
		}
		from = "(SELECT " + strings.Join(nulls, ", ") + " WHERE false)"
	} else {
		var q []string
		for _, f := range files {
			q = append(q, "'"+strings.ReplaceAll(f, "'", "''")+"'")
		}
		from = "read_parquet([" + strings.Join(q, ", ") + "], hive_partitioning = true, hive_types_autocast = false, union_by_name = true)"
	}
	stmts := []string{
		"CREATE SCHEMA IF NOT EXISTS " + ident(db),
		fmt.Sprintf("CREATE OR REPLACE VIEW %s.%s AS SELECT %s FROM %s", ident(db), ident(name), strings.Join(cols, ", "), from),
	}
	for _, st := range stmts {
		if _, err := s.db.ExecContext(ctx, st); err != nil {
			return 0, err
		}
	}
	return total, nil
}

// projected reports whether a key under the location is in a projected
// partition: table=<t>/dt=YYYY-MM-DD/hour=HH/<name>.
func projected(rel string) bool {
	parts := strings.Split(rel, "/")
	if len(parts) != 4 || !strings.HasPrefix(parts[0], "table=") || !strings.HasPrefix(parts[1], "dt=") || !strings.HasPrefix(parts[2], "hour=") {
		return false
	}
	if _, err := time.Parse("2006-01-02", strings.TrimPrefix(parts[1], "dt=")); err != nil {
		return false
	}
	h, err := strconv.Atoi(strings.TrimPrefix(parts[2], "hour="))
	return err == nil && h >= 0 && h < 24 && len(parts[2]) == len("hour=00")
}

// fetch puts the object at dst, downloading it once per ETag.
func (s *Server) fetch(ctx context.Context, bucket, key, etag, dst string) (string, error) {
	sum := sha256.Sum256([]byte(bucket + "/" + key + "\x00" + etag))
	cached := filepath.Join(s.dir, "objects", hex.EncodeToString(sum[:16])+path.Ext(key))
	if _, err := os.Stat(cached); err != nil {
		out, err := s.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key})
		if err != nil {
			return "", fmt.Errorf("get s3://%s/%s: %w", bucket, key, err)
		}
		b, err := io.ReadAll(out.Body)
		out.Body.Close()
		if err != nil {
			return "", fmt.Errorf("get s3://%s/%s: %w", bucket, key, err)
		}
		os.MkdirAll(filepath.Dir(cached), 0o755)
		if err := os.WriteFile(cached+".tmp", b, 0o644); err != nil {
			return "", err
		}
		if err := os.Rename(cached+".tmp", cached); err != nil {
			return "", err
		}
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", err
	}
	if err := os.Link(cached, dst); err != nil {
		return "", err
	}
	return dst, nil
}

func ident(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func (s *Server) getExecution(in map[string]any) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ex, ok := s.queries[str(in, "QueryExecutionId")]
	if !ok {
		return nil, &apiError{"InvalidRequestException", "QueryExecution " + str(in, "QueryExecutionId") + " was not found"}
	}
	status := map[string]any{"State": ex.state, "SubmissionDateTime": float64(ex.submitted.UnixMilli()) / 1000}
	if ex.reason != "" {
		status["StateChangeReason"] = ex.reason
	}
	return map[string]any{"QueryExecution": map[string]any{
		"QueryExecutionId":      ex.id,
		"Query":                 ex.sql,
		"ExecutionParameters":   ex.params,
		"QueryExecutionContext": map[string]any{"Database": ex.db},
		"Status":                status,
		"ResultConfiguration":   map[string]any{"OutputLocation": ex.output},
		"Statistics":            map[string]any{"DataScannedInBytes": ex.scanned, "EngineExecutionTimeInMillis": time.Since(ex.submitted).Milliseconds()},
	}}, nil
}

func (s *Server) stop(in map[string]any) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stops++
	ex, ok := s.queries[str(in, "QueryExecutionId")]
	if !ok {
		return nil, &apiError{"InvalidRequestException", "QueryExecution " + str(in, "QueryExecutionId") + " was not found"}
	}
	if ex.state == "QUEUED" || ex.state == "RUNNING" {
		ex.state, ex.reason = "CANCELLED", "Query cancelled by user"
		ex.cancel()
	}
	return map[string]any{}, nil
}

func (s *Server) results(in map[string]any) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ex, ok := s.queries[str(in, "QueryExecutionId")]
	if !ok {
		return nil, &apiError{"InvalidRequestException", "QueryExecution " + str(in, "QueryExecutionId") + " was not found"}
	}
	if ex.state != "SUCCEEDED" {
		return nil, &apiError{"InvalidRequestException", "Query has not yet finished. Current state: " + ex.state}
	}
	max := 1000
	if m, ok := in["MaxResults"].(float64); ok && m > 0 && m < 1000 {
		max = int(m)
	}
	if s.PageSize > 0 && s.PageSize < max {
		max = s.PageSize
	}
	// The rows as Athena pages them: the header row first, then the data.
	all := len(ex.rows) + 1
	start := 0
	if tok := str(in, "NextToken"); tok != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(tok, ex.id+":"))
		if err != nil || !strings.HasPrefix(tok, ex.id+":") || n <= 0 || n > all {
			return nil, &apiError{"InvalidRequestException", "bad NextToken " + strconv.Quote(tok)}
		}
		start = n
	}
	end := min(start+max, all)
	var rows []any
	for i := start; i < end; i++ {
		var data []any
		if i == 0 {
			for _, c := range ex.cols {
				data = append(data, map[string]any{"VarCharValue": c})
			}
		} else {
			for _, v := range ex.rows[i-1] {
				if v == nil {
					data = append(data, map[string]any{})
				} else {
					data = append(data, map[string]any{"VarCharValue": *v})
				}
			}
		}
		rows = append(rows, map[string]any{"Data": data})
	}
	var info []any
	for i, c := range ex.cols {
		info = append(info, map[string]any{"Name": c, "Label": c, "Type": ex.types[i]})
	}
	out := map[string]any{"ResultSet": map[string]any{"Rows": rows, "ResultSetMetadata": map[string]any{"ColumnInfo": info}}}
	if end < all {
		out["NextToken"] = fmt.Sprintf("%s:%d", ex.id, end)
	}
	return out, nil
}
