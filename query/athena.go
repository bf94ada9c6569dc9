package query

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

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

// Athena returns the Glue/Athena DDL for the capture Parquet layout, with
// partition projection on table, dt and hour, followed by the SQL of q's
// key set. The SQL dedupes by event_id, since a retried stream batch can
// leave the same record in two objects.
//
// Differences from rewind's own answer, stated in the SQL's comments:
// Athena reads event_time at millisecond precision; matches compare the
// attribute's text as captured (numbers are not normalized); rows come out
// in key-JSON order, not rewind's canonical key order.
func Athena(q Query, o AthenaOptions) (string, error) {
	if err := q.Validate(); err != nil {
		return "", err
	}
	if o.Database == "" {
		o.Database = DefaultAthenaDatabase
	}
	if o.Table == "" {
		o.Table = DefaultAthenaTable
	}
	if !strings.HasPrefix(o.Location, "s3://") {
		return "", fmt.Errorf("athena: location %q: want s3://bucket/prefix", o.Location)
	}
	if len(o.Tables) == 0 {
		return "", fmt.Errorf("athena: no source tables to project")
	}
	for _, t := range o.Tables {
		if strings.Contains(t, ",") {
			return "", fmt.Errorf("athena: table name %q has a comma, which an enum projection cannot hold", t)
		}
	}
	if o.Since.IsZero() {
		o.Since = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	loc := strings.TrimSuffix(o.Location, "/") + "/"
	tables := slices.Clone(o.Tables)
	slices.Sort(tables)
	name := o.Database + "." + o.Table

	var b strings.Builder
	fmt.Fprintf(&b, "-- Glue table over rewind's capture objects (%stable=<t>/dt=YYYY-MM-DD/hour=HH/*.parquet).\n", loc)
	b.WriteString("-- event_time is Parquet TIMESTAMP(MICROS, UTC); Athena reads it at millisecond precision.\n")
	b.WriteString("-- sequence_number is a decimal string: order with CAST(sequence_number AS DECIMAL(38,0)).\n")
	b.WriteString("-- keys, old_image and new_image are DynamoDB JSON; keys is canonical (attributes sorted, numbers normalized).\n")
	fmt.Fprintf(&b, "CREATE DATABASE IF NOT EXISTS %s;\n\n", o.Database)
	fmt.Fprintf(&b, "CREATE EXTERNAL TABLE IF NOT EXISTS %s (\n", name)
	cols := [][2]string{
		{"event_id", "string"}, {"source_table", "string"}, {"region", "string"}, {"tenant", "string"},
		{"action", "string"}, {"ttl_expiry", "boolean"}, {"event_time", "timestamp"}, {"sequence_number", "string"},
		{"shard_id", "string"}, {"stream_view_type", "string"}, {"keys", "string"}, {"old_image", "string"},
		{"new_image", "string"}, {"changed_attributes", "array<string>"}, {"size_bytes", "bigint"},
		{"decode_error", "string"}, {"raw_record", "string"},
	}
	for i, c := range cols {
		sep := ","
		if i == len(cols)-1 {
			sep = ""
		}
		fmt.Fprintf(&b, "  `%s` %s%s\n", c[0], c[1], sep)
	}
	b.WriteString(")\nPARTITIONED BY (`table` string, `dt` string, `hour` string)\nSTORED AS PARQUET\n")
	fmt.Fprintf(&b, "LOCATION %s\nTBLPROPERTIES (\n", sqlString(loc))
	props := [][2]string{
		{"projection.enabled", "true"},
		{"projection.table.type", "enum"},
		{"projection.table.values", strings.Join(tables, ",")},
		{"projection.dt.type", "date"},
		{"projection.dt.format", "yyyy-MM-dd"},
		{"projection.dt.range", o.Since.UTC().Format("2006-01-02") + ",NOW"},
		{"projection.dt.interval", "1"},
		{"projection.dt.interval.unit", "DAYS"},
		{"projection.hour.type", "integer"},
		{"projection.hour.range", "0,23"},
		{"projection.hour.digits", "2"},
		{"storage.location.template", loc + "table=${table}/dt=${dt}/hour=${hour}/"},
	}
	for i, p := range props {
		sep := ","
		if i == len(props)-1 {
			sep = ""
		}
		fmt.Fprintf(&b, "  %s = %s%s\n", sqlString(p[0]), sqlString(p[1]), sep)
	}
	b.WriteString(");\n\n")

	b.WriteString("-- The key set: one row per item, as `rewind query` prints it.\n")
	b.WriteString("WITH events AS (\n")
	b.WriteString("  SELECT source_table, keys, tenant, action, event_time,\n")
	b.WriteString("         row_number() OVER (PARTITION BY event_id ORDER BY \"$path\") AS copy\n")
	fmt.Fprintf(&b, "  FROM %s\n", name)
	conds := athenaConditions(&q)
	for i, c := range conds {
		kw := "  WHERE "
		if i > 0 {
			kw = "    AND "
		}
		b.WriteString(kw + c + "\n")
	}
	b.WriteString(")\n")
	b.WriteString("SELECT source_table AS \"table\", keys AS \"key\", max(tenant) AS tenant,\n")
	b.WriteString("       min(event_time) AS first, max(event_time) AS last, count(*) AS count,\n")
	b.WriteString("       array_sort(array_agg(DISTINCT action)) AS actions\n")
	b.WriteString("FROM events\nWHERE copy = 1\nGROUP BY source_table, keys\nORDER BY source_table, keys;\n")
	return b.String(), nil
}

func athenaConditions(q *Query) []string {
	var c []string
	if !q.From.IsZero() || !q.To.IsZero() {
		c = append(c, partitionRange(q.From, q.To)...)
	}
	if !q.From.IsZero() {
		c = append(c, "event_time >= "+sqlTimestamp(q.From))
	}
	if !q.To.IsZero() {
		c = append(c, "event_time < "+sqlTimestamp(q.To))
	}
	c = append(c, "decode_error IS NULL")
	if len(q.Tables) > 0 {
		c = append(c, "\"table\" IN ("+sqlList(q.Tables)+")")
	}
	if len(q.Tenants) > 0 {
		c = append(c, "tenant IN ("+sqlList(q.Tenants)+")")
	}
	if len(q.Actions) > 0 {
		var as []string
		for _, a := range q.Actions {
			as = append(as, string(a))
		}
		c = append(c, "action IN ("+sqlList(as)+")")
	}
	switch q.TTL {
	case TTLExclude:
		c = append(c, "NOT ttl_expiry")
	case TTLOnly:
		c = append(c, "ttl_expiry")
	}
	for _, p := range q.KeyPrefixes {
		c = append(c, fmt.Sprintf("starts_with(coalesce(%s, %s), %s)",
			jsonScalar("keys", p.Attr, "S"), jsonScalar("keys", p.Attr, "N"), sqlString(p.Prefix)))
	}
	if len(q.Changed) > 0 {
		var or []string
		for _, a := range q.Changed {
			or = append(or, "contains(changed_attributes, "+sqlString(a)+")")
		}
		c = append(c, "("+strings.Join(or, " OR ")+")")
	}
	for _, m := range q.Matches {
		col := "old_image"
		if m.Side == NewSide {
			col = "new_image"
		}
		v := fmt.Sprintf("coalesce(%s, %s, %s, %s)",
			jsonScalar(col, m.Attr, "S"), jsonScalar(col, m.Attr, "N"),
			jsonScalar(col, m.Attr, "BOOL"), jsonScalar(col, m.Attr, "B"))
		op := "="
		if m.Not {
			op = "IS DISTINCT FROM"
		}
		c = append(c, fmt.Sprintf("%s %s %s", v, op, sqlString(m.Value)))
	}
	return c
}

// partitionRange returns the dt/hour predicates that keep the partitions
// of [from, to), so Athena reads only those objects.
func partitionRange(from, to time.Time) []string {
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
	switch {
	case d0 != "" && d0 == d1:
		c = append(c, "dt = "+sqlString(d0))
		if h0 == h1 {
			c = append(c, "hour = "+sqlString(h0))
		} else {
			c = append(c, "hour BETWEEN "+sqlString(h0)+" AND "+sqlString(h1))
		}
		return c
	}
	if d0 != "" {
		c = append(c, fmt.Sprintf("(dt > %s OR (dt = %s AND hour >= %s))", sqlString(d0), sqlString(d0), sqlString(h0)))
	}
	if d1 != "" {
		c = append(c, fmt.Sprintf("(dt < %s OR (dt = %s AND hour <= %s))", sqlString(d1), sqlString(d1), sqlString(h1)))
	}
	return c
}

func jsonScalar(col, attr, typ string) string {
	path := "$[" + jsonPathString(attr) + "][\"" + typ + "\"]"
	return fmt.Sprintf("json_extract_scalar(%s, %s)", col, sqlString(path))
}

// jsonPathString quotes an attribute name for a JSON path.
func jsonPathString(s string) string {
	return string(appendJSONString(nil, s))
}

func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func sqlList(ss []string) string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = sqlString(s)
	}
	return strings.Join(out, ", ")
}

func sqlTimestamp(t time.Time) string {
	return "TIMESTAMP " + sqlString(t.UTC().Format("2006-01-02 15:04:05.000000"))
}
