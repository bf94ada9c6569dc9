package query

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer"
)

// The Glue database and table Athena names by default.
const (
	DefaultAthenaDatabase = "rewind"
	DefaultAthenaTable    = "changes"
)

// AthenaOptions describe the Glue table Athena prints.
type AthenaOptions struct {
	// Database and Table name the Glue table. Defaults
	// DefaultAthenaDatabase and DefaultAthenaTable.
	Database, Table string
	// Location is the capture prefix, s3://bucket/prefix. Required.
	Location string
	// Tables are the source table names for the partition projection
	// (the table= partition). Required: Athena cannot list them.
	Tables []string
	// Since is the first day the dt projection covers. Default
	// 2020-01-01.
	Since time.Time
}

// ErrAthenaLocation is AthenaDefaults' error when Location is not given
// and the store cannot tell it: it was indexed from no S3 source, or from
// several. The caller should ask for the location.
var ErrAthenaLocation = errors.New("athena: no location")

// AthenaDefaults returns o with what the store can tell filled in:
// Location, when empty, is the store's S3 source (ErrAthenaLocation,
// wrapped, when it has none or several); Tables are the store's tables
// and those o names, sorted; Since, when zero, is the first day of the
// store's changes (left zero, which Athena defaults, for an empty store).
// A store that cannot be read is an error, naming what was read.
func AthenaDefaults(st *indexer.Store, o AthenaOptions) (AthenaOptions, error) {
	if o.Location == "" {
		srcs, err := st.Sources()
		if err != nil {
			return o, fmt.Errorf("athena: the store's sources in %s: %w", st.Dir(), err)
		}
		var s3 []string
		for _, s := range srcs {
			if strings.HasPrefix(s, "s3://") {
				s3 = append(s3, s)
			}
		}
		switch len(s3) {
		case 0:
			return o, fmt.Errorf("%w: the store %s was indexed from no S3 source", ErrAthenaLocation, st.Dir())
		case 1:
		default:
			return o, fmt.Errorf("%w: the store %s was indexed from %d S3 sources (%s)", ErrAthenaLocation, st.Dir(), len(s3), strings.Join(s3, ", "))
		}
		o.Location = s3[0]
	}
	tables, err := st.Tables()
	if err != nil {
		return o, fmt.Errorf("athena: the store's tables in %s: %w", st.Dir(), err)
	}
	o.Tables = slices.Compact(slices.Sorted(slices.Values(append(tables, o.Tables...))))
	if o.Since.IsZero() {
		var first int64
		if err := st.Objects(func(oi indexer.ObjectInfo) error {
			if oi.Rows > 0 && (first == 0 || oi.First < first) {
				first = oi.First
			}
			return nil
		}); err != nil {
			return o, fmt.Errorf("athena: the store's objects in %s: %w", st.Dir(), err)
		}
		if first != 0 {
			o.Since = time.UnixMicro(first).UTC().Truncate(24 * time.Hour)
		}
	}
	return o, nil
}

// athenaColumns are the capture Parquet columns as the Glue table declares
// them (Hive types), in the file's order.
var athenaColumns = [][2]string{
	{"event_id", "string"}, {"source_table", "string"}, {"region", "string"}, {"tenant", "string"},
	{"action", "string"}, {"ttl_expiry", "boolean"}, {"event_time", "timestamp"}, {"sequence_number", "string"},
	{"shard_id", "string"}, {"stream_view_type", "string"}, {"keys", "string"}, {"old_image", "string"},
	{"new_image", "string"}, {"changed_attributes", "array<string>"}, {"size_bytes", "bigint"},
	{"decode_error", "string"}, {"raw_record", "string"},
}

// athenaPartitions are the Hive partition columns of the capture layout.
var athenaPartitions = []string{"table", "dt", "hour"}

// athenaDefaults fills o's defaults and checks it.
func (o *AthenaOptions) ensureDefaults() error {
	if o.Database == "" {
		o.Database = DefaultAthenaDatabase
	}
	if o.Table == "" {
		o.Table = DefaultAthenaTable
	}
	if !strings.HasPrefix(o.Location, "s3://") {
		return fmt.Errorf("athena: location %q: want s3://bucket/prefix", o.Location)
	}
	if len(o.Tables) == 0 {
		return fmt.Errorf("athena: no source tables to project (name them with --tables, or index the capture first)")
	}
	for _, t := range o.Tables {
		if strings.Contains(t, ",") {
			return fmt.Errorf("athena: table name %q has a comma, which an enum projection cannot hold", t)
		}
	}
	for _, n := range []string{o.Database, o.Table} {
		if !athenaName(n) {
			return fmt.Errorf("athena: Glue name %q: want lower-case letters, digits and underscores", n)
		}
	}
	if o.Since.IsZero() {
		o.Since = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	o.Location = strings.TrimSuffix(o.Location, "/") + "/"
	o.Tables = slices.Compact(slices.Sorted(slices.Values(o.Tables)))
	return nil
}

// athenaName reports whether n is a name Glue and Athena both take
// unquoted ("Names for tables, databases, and columns" in the Athena
// guide: lower case, digits and underscores).
func athenaName(n string) bool {
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

// athenaProjection returns the table properties of the partition
// projection: table is an enum of the source tables, dt a date from Since
// to NOW, hour an integer 00..23, and the location template the capture's
// layout ("Partition projection" in the Athena guide: projection.enabled,
// projection.<col>.type enum/date/integer, storage.location.template).
func athenaProjection(o *AthenaOptions) [][2]string {
	return [][2]string{
		{"projection.enabled", "true"},
		{"projection.table.type", "enum"},
		{"projection.table.values", strings.Join(o.Tables, ",")},
		{"projection.dt.type", "date"},
		{"projection.dt.format", "yyyy-MM-dd"},
		{"projection.dt.range", o.Since.UTC().Format("2006-01-02") + ",NOW"},
		{"projection.dt.interval", "1"},
		{"projection.dt.interval.unit", "DAYS"},
		{"projection.hour.type", "integer"},
		{"projection.hour.range", "0,23"},
		{"projection.hour.digits", "2"},
		{"storage.location.template", o.Location + "table=${table}/dt=${dt}/hour=${hour}/"},
	}
}

// AthenaStatement is a query with ? placeholders and its execution
// parameters, in order, each an SQL literal as Athena's ExecutionParameters
// take them ("Use execution parameters" in the Athena guide: string values
// are given in single quotes). User input only ever reaches Athena as a
// parameter, never spliced into the query text.
type AthenaStatement struct {
	SQL    string
	Params []string
}

// The columns of the key-set query, in order.
var athenaKeySetColumns = []string{"table", "key", "tenant", "first", "last", "count", "inserts", "modifies", "removes"}

// AthenaKeySetStatement returns the SQL of q's key set over the Glue table
// o names: one row per item with its tenant, first and last change time,
// number of changes and how many of each action. Events are deduplicated by
// event_id, since a retried stream batch can leave the same record in two
// objects. Rows come out in no order: the reader sorts them as a key set.
//
// The SQL keeps to what both Athena engine version 3 (Trino) and DuckDB
// run; each function is in the Athena engine v3 function list: row_number,
// count_if, max, min, coalesce, nullif, starts_with, contains (on an
// array), json_extract_scalar (DuckDB: the stand-in's macro), try_cast.
func AthenaKeySetStatement(q Query, o AthenaOptions) (AthenaStatement, error) {
	if err := q.Validate(); err != nil {
		return AthenaStatement{}, err
	}
	if err := o.ensureDefaults(); err != nil {
		return AthenaStatement{}, err
	}
	var st AthenaStatement
	conds := athenaConditions(&q, &st.Params)
	var b strings.Builder
	b.WriteString("WITH ")
	athenaOnceEach(&b, "events", "source_table, keys, tenant, action, event_time", o, conds)
	b.WriteString("\n")
	b.WriteString("SELECT source_table AS \"table\", keys AS \"key\", coalesce(max(nullif(tenant, '')), '') AS tenant,\n")
	b.WriteString("       CAST(min(event_time) AS varchar) AS \"first\", CAST(max(event_time) AS varchar) AS \"last\",\n")
	b.WriteString("       count(*) AS \"count\", count_if(action = 'INSERT') AS inserts,\n")
	b.WriteString("       count_if(action = 'MODIFY') AS modifies, count_if(action = 'REMOVE') AS removes\n")
	b.WriteString("FROM events\nWHERE copy = 1\nGROUP BY source_table, keys\n")
	st.SQL = b.String()
	return st, nil
}

// Athena returns the Glue/Athena DDL for the capture Parquet layout, with
// partition projection on table, dt and hour, followed by the SQL of q's
// key set exactly as `--engine athena` runs it, with its execution
// parameters listed after it.
//
// Differences from rewind's own answer, stated in the SQL's comments:
// Athena reads event_time at millisecond precision; a number --match
// beyond double precision compares as text; a --match on a set, list or
// map, and a --key-prefix on a binary key, are not supported.
func Athena(q Query, o AthenaOptions) (string, error) {
	st, err := AthenaKeySetStatement(q, o)
	if err != nil {
		return "", err
	}
	if err := o.ensureDefaults(); err != nil {
		return "", err
	}
	name := o.Database + "." + o.Table

	var b strings.Builder
	fmt.Fprintf(&b, "-- Glue table over rewind's capture objects (%stable=<t>/dt=YYYY-MM-DD/hour=HH/*.parquet).\n", o.Location)
	b.WriteString("-- rewind query --engine athena creates it through the Glue API; this DDL is the same table.\n")
	b.WriteString("-- event_time is Parquet TIMESTAMP(MICROS, UTC); Athena reads it at millisecond precision.\n")
	b.WriteString("-- sequence_number is a decimal string: order with CAST(sequence_number AS DECIMAL(38,0)).\n")
	b.WriteString("-- keys, old_image and new_image are DynamoDB JSON; keys is canonical (attributes sorted, numbers normalized).\n")
	fmt.Fprintf(&b, "CREATE DATABASE IF NOT EXISTS %s;\n\n", o.Database)
	fmt.Fprintf(&b, "CREATE EXTERNAL TABLE IF NOT EXISTS %s (\n", name)
	for i, c := range athenaColumns {
		sep := ","
		if i == len(athenaColumns)-1 {
			sep = ""
		}
		fmt.Fprintf(&b, "  `%s` %s%s\n", c[0], c[1], sep)
	}
	b.WriteString(")\nPARTITIONED BY (`table` string, `dt` string, `hour` string)\nSTORED AS PARQUET\n")
	fmt.Fprintf(&b, "LOCATION %s\nTBLPROPERTIES (\n", sqlString(o.Location))
	props := athenaProjection(&o)
	for i, p := range props {
		sep := ","
		if i == len(props)-1 {
			sep = ""
		}
		fmt.Fprintf(&b, "  %s = %s%s\n", sqlString(p[0]), sqlString(p[1]), sep)
	}
	b.WriteString(");\n\n")

	b.WriteString("-- The key set: one row per item; rewind sorts the rows by table and key.\n")
	b.WriteString(strings.TrimSuffix(st.SQL, "\n") + ";\n")
	if len(st.Params) > 0 {
		b.WriteString("-- Execution parameters, in the order of the ? placeholders:\n")
		for i, p := range st.Params {
			fmt.Fprintf(&b, "--   %d: %s\n", i+1, p)
		}
	}
	return b.String(), nil
}

// athenaConditions returns the WHERE conditions of q, appending the value
// of each ? placeholder to params.
func athenaConditions(q *Query, params *[]string) []string {
	p, list := athenaParams(params)
	c := athenaWindow(q.From, q.To, p)
	// An empty decode_error is a decoded event too: parquet-go writes an
	// empty optional string where the event had none, now and then.
	c = append(c, athenaDecoded)
	if len(q.Tables) > 0 {
		c = append(c, "\"table\" IN ("+list(q.Tables)+")")
	}
	c = append(c, athenaTenants(q, list)...)
	if len(q.Actions) > 0 {
		var as []string
		for _, a := range q.Actions {
			as = append(as, string(a))
		}
		c = append(c, "action IN ("+list(as)+")")
	}
	switch q.TTL {
	case TTLExclude:
		c = append(c, "NOT coalesce(ttl_expiry, false)")
	case TTLOnly:
		c = append(c, "coalesce(ttl_expiry, false)")
	}
	for _, kp := range q.KeyPrefixes {
		// keys is canonical: numbers are normalized, as the local index
		// compares them.
		c = append(c, fmt.Sprintf("starts_with(coalesce(json_extract_scalar(keys, %s), json_extract_scalar(keys, %s)), %s)",
			p(jsonPath(kp.Attr, "S")), p(jsonPath(kp.Attr, "N")), p(kp.Prefix)))
	}
	if len(q.Changed) > 0 {
		var or []string
		for _, a := range q.Changed {
			or = append(or, "contains(changed_attributes, "+p(a)+")")
		}
		c = append(c, "("+strings.Join(or, " OR ")+")")
	}
	for _, m := range q.Matches {
		col := "old_image"
		if m.Side == NewSide {
			col = "new_image"
		}
		// The value as the local index compares it: a string as is, a
		// number by value, binary as base64, a boolean as true/false,
		// NULL as null.
		or := []string{
			fmt.Sprintf("json_extract_scalar(%s, %s) = %s", col, p(jsonPath(m.Attr, "S")), p(m.Value)),
			fmt.Sprintf("json_extract_scalar(%s, %s) = %s", col, p(jsonPath(m.Attr, "B")), p(m.Value)),
			fmt.Sprintf("json_extract_scalar(%s, %s) = %s", col, p(jsonPath(m.Attr, "BOOL")), p(m.Value)),
			fmt.Sprintf("json_extract_scalar(%s, %s) = %s", col, p(jsonPath(m.Attr, "N")), p(m.Value)),
		}
		if _, err := rewind.NormalizeNumber(m.Value); err == nil {
			or = append(or, fmt.Sprintf("try_cast(json_extract_scalar(%s, %s) AS double) = try_cast(%s AS double)",
				col, p(jsonPath(m.Attr, "N")), p(m.Value)))
		}
		if m.Value == "null" {
			or = append(or, fmt.Sprintf("json_extract_scalar(%s, %s) = 'true'", col, p(jsonPath(m.Attr, "NULL"))))
		}
		eq := "coalesce(" + strings.Join(or, " OR ") + ", false)"
		if m.Not {
			eq = "NOT " + eq
		}
		c = append(c, eq)
	}
	return c
}

// athenaDecoded is the condition of a decoded event.
const athenaDecoded = "coalesce(decode_error, '') = ''"

// athenaWindow returns the conditions of the window [from, to): the
// partitions it spans, and the event times.
func athenaWindow(from, to time.Time, p func(string) string) []string {
	var c []string
	if !from.IsZero() || !to.IsZero() {
		c = append(c, partitionRange(from, to, p)...)
	}
	if !from.IsZero() {
		c = append(c, "event_time >= CAST("+p(athenaTimestamp(from))+" AS timestamp)")
	}
	if !to.IsZero() {
		c = append(c, "event_time < CAST("+p(athenaTimestamp(to))+" AS timestamp)")
	}
	return c
}

// athenaTenants returns the condition of q's tenants, if any.
func athenaTenants(q *Query, list func([]string) string) []string {
	if len(q.Tenants) == 0 {
		return nil
	}
	return []string{"tenant IN (" + list(q.Tenants) + ")"}
}

// athenaParams returns the placeholder functions that append values to
// params: p for one value, list for several.
func athenaParams(params *[]string) (p func(string) string, list func([]string) string) {
	p = func(v string) string {
		*params = append(*params, sqlString(v))
		return "?"
	}
	list = func(vs []string) string {
		ph := make([]string, len(vs))
		for i, v := range vs {
			ph[i] = p(v)
		}
		return strings.Join(ph, ", ")
	}
	return p, list
}

// partitionRange returns the dt/hour predicates that keep the partitions
// of [from, to), so Athena reads only those objects (partition projection
// prunes on predicates over the projected columns).
func partitionRange(from, to time.Time, p func(string) string) []string {
	var c []string
	var d0, h0, d1, h1 string
	if !from.IsZero() {
		f := from.UTC()
		d0, h0 = f.Format("2006-01-02"), f.Format("15")
	}
	if !to.IsZero() {
		l := to.UTC().Add(-time.Microsecond) // the last instant in the window
		d1, h1 = l.Format("2006-01-02"), l.Format("15")
	}
	if d0 != "" && d0 == d1 {
		c = append(c, "dt = "+p(d0))
		if h0 == h1 {
			c = append(c, "hour = "+p(h0))
		} else {
			c = append(c, "hour BETWEEN "+p(h0)+" AND "+p(h1))
		}
		return c
	}
	if d0 != "" {
		c = append(c, fmt.Sprintf("(dt > %s OR (dt = %s AND hour >= %s))", p(d0), p(d0), p(h0)))
	}
	if d1 != "" {
		c = append(c, fmt.Sprintf("(dt < %s OR (dt = %s AND hour <= %s))", p(d1), p(d1), p(h1)))
	}
	return c
}

// jsonPath is the JSON path of a DynamoDB JSON attribute's typed value,
// $["attr"]["S"], in the bracket notation both Athena's JSONPath and the
// stand-in accept for any attribute name.
func jsonPath(attr, typ string) string {
	return "$[" + jsonPathString(attr) + "][\"" + typ + "\"]"
}

// jsonPathString quotes an attribute name for a JSON path.
func jsonPathString(s string) string {
	return string(appendJSONString(nil, s))
}

func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func athenaTimestamp(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04:05.000000")
}

// The columns of the stats query, in order: kind is "events" for a
// tenant's counts in one bucket (bucket is the bucket's number, its start
// over its width since the epoch) or "undecodable" for the one row that
// counts the undecodable events in the window.
var athenaStatsColumns = []string{"kind", "tenant", "bucket", "events", "inserts", "modifies", "removes", "ttl_expiries", "first", "last"}

// AthenaStatsStatement returns the SQL of q's stats over the Glue table o
// names, counted in buckets of gran (a whole number of milliseconds: the
// precision Athena reads event_time at): per tenant and bucket, the events
// by action, the TTL expiries, the first and the last event time; and one
// row counting the undecodable events in the window (and tenants), which
// the local index counts before the other filters. Events are deduplicated
// by event_id, as for the key set. ComputeStats' sums over the same rows
// give the same Stats.
//
// Functions beyond the key set's, each in the Athena engine v3 function
// list: date_diff('millisecond', …), floor, and UNION ALL.
func AthenaStatsStatement(q Query, o AthenaOptions, gran time.Duration) (AthenaStatement, error) {
	if err := q.Validate(); err != nil {
		return AthenaStatement{}, err
	}
	if err := o.ensureDefaults(); err != nil {
		return AthenaStatement{}, err
	}
	if gran < time.Millisecond || gran%time.Millisecond != 0 {
		return AthenaStatement{}, fmt.Errorf("athena: stats bucket %s: want a whole number of milliseconds", gran)
	}
	var st AthenaStatement
	p, list := athenaParams(&st.Params)
	var b strings.Builder
	b.WriteString("WITH ")
	athenaOnceEach(&b, "events", "tenant, action, ttl_expiry, event_time", o, athenaConditions(&q, &st.Params))
	b.WriteString(", ")
	uc := athenaWindow(q.From, q.To, p)
	uc = append(uc, "NOT "+athenaDecoded)
	athenaOnceEach(&b, "undecodable", "", o, append(uc, athenaTenants(&q, list)...))
	b.WriteString("\n")
	b.WriteString("SELECT 'events' AS kind, coalesce(tenant, '') AS tenant,\n")
	fmt.Fprintf(&b, "       CAST(floor(date_diff('millisecond', TIMESTAMP '1970-01-01 00:00:00', event_time) / CAST(%s AS double)) AS bigint) AS bucket,\n",
		p(strconv.FormatInt(gran.Milliseconds(), 10)))
	b.WriteString("       count(*) AS events, count_if(action = 'INSERT') AS inserts, count_if(action = 'MODIFY') AS modifies,\n")
	b.WriteString("       count_if(action = 'REMOVE') AS removes, count_if(coalesce(ttl_expiry, false)) AS ttl_expiries,\n")
	b.WriteString("       CAST(min(event_time) AS varchar) AS \"first\", CAST(max(event_time) AS varchar) AS \"last\"\n")
	b.WriteString("FROM events\nWHERE copy = 1\nGROUP BY 2, 3\n")
	b.WriteString("UNION ALL\n")
	b.WriteString("SELECT 'undecodable', '', CAST(0 AS bigint), count(*), CAST(0 AS bigint), CAST(0 AS bigint), CAST(0 AS bigint), CAST(0 AS bigint),\n")
	b.WriteString("       CAST(NULL AS varchar), CAST(NULL AS varchar)\n")
	b.WriteString("FROM undecodable\nWHERE copy = 1\n")
	st.SQL = b.String()
	return st, nil
}

// The columns of the history query, in order.
var athenaHistoryColumns = []string{"event_id", "sequence_number", "tenant", "action", "ttl_expiry", "time", "old_image", "new_image", "changed_attributes"}

// AthenaHistoryStatement returns the SQL of the changes of one item in
// [from, to) over the Glue table o names: one row per decoded event of
// table's item key (keys is the canonical key JSON, which Key.String
// writes), deduplicated by event_id, with its images and its changed
// attributes as a JSON array. Rows come out in no order: the reader sorts
// them as the store does.
//
// Functions beyond the key set's, each in the Athena engine v3 function
// list: CAST(array AS JSON), json_format (DuckDB: the stand-in's macro).
func AthenaHistoryStatement(table string, key rewind.Key, from, to time.Time, o AthenaOptions) (AthenaStatement, error) {
	q := Query{From: from, To: to}
	if err := q.Validate(); err != nil {
		return AthenaStatement{}, err
	}
	if err := o.ensureDefaults(); err != nil {
		return AthenaStatement{}, err
	}
	if table == "" || len(key) == 0 {
		return AthenaStatement{}, fmt.Errorf("athena: history needs a table and a key")
	}
	var st AthenaStatement
	p, _ := athenaParams(&st.Params)
	conds := athenaWindow(from, to, p)
	conds = append(conds, athenaDecoded, "\"table\" = "+p(table), "source_table = "+p(table), "keys = "+p(key.String()))
	var b strings.Builder
	b.WriteString("WITH ")
	athenaOnceEach(&b, "events", "event_id, sequence_number, tenant, action, ttl_expiry, event_time, old_image, new_image, changed_attributes", o, conds)
	b.WriteString("\n")
	b.WriteString("SELECT event_id, sequence_number, coalesce(tenant, '') AS tenant, action,\n")
	b.WriteString("       CAST(coalesce(ttl_expiry, false) AS varchar) AS ttl_expiry, CAST(event_time AS varchar) AS \"time\",\n")
	b.WriteString("       coalesce(old_image, '') AS old_image, coalesce(new_image, '') AS new_image,\n")
	b.WriteString("       coalesce(json_format(CAST(changed_attributes AS JSON)), '[]') AS changed_attributes\n")
	b.WriteString("FROM events\nWHERE copy = 1\n")
	st.SQL = b.String()
	return st, nil
}

// athenaOnceEach writes the named subquery of the capture's rows that
// meet conds, with cols and a "copy" number per event ID (1 for the copy
// with the lowest sequence number): the statements read "WHERE copy = 1",
// so an event delivered twice (a retried batch, a compacted hour read
// with its small objects) counts once, as the index's deduplication does.
// cols may be empty (only the copy number).
func athenaOnceEach(b *strings.Builder, name, cols string, o AthenaOptions, conds []string) {
	fmt.Fprintf(b, "%s AS (\n", name)
	if cols == "" {
		b.WriteString("  SELECT row_number() OVER (PARTITION BY event_id ORDER BY sequence_number) AS copy\n")
	} else {
		fmt.Fprintf(b, "  SELECT %s,\n", cols)
		b.WriteString("         row_number() OVER (PARTITION BY event_id ORDER BY sequence_number) AS copy\n")
	}
	fmt.Fprintf(b, "  FROM %s.%s\n", o.Database, o.Table)
	for i, c := range conds {
		kw := "  WHERE "
		if i > 0 {
			kw = "    AND "
		}
		b.WriteString(kw + c + "\n")
	}
	b.WriteString(")")
}
