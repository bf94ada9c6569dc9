package query

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/athena"
	athenatypes "github.com/aws/aws-sdk-go-v2/service/athena/types"
	"github.com/aws/aws-sdk-go-v2/service/glue"
	gluetypes "github.com/aws/aws-sdk-go-v2/service/glue/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/ddbrewind/rewind"
)

// GlueAPI is the part of the Glue client the Athena engine uses to keep
// its table.
type GlueAPI interface {
	GetDatabase(context.Context, *glue.GetDatabaseInput, ...func(*glue.Options)) (*glue.GetDatabaseOutput, error)
	CreateDatabase(context.Context, *glue.CreateDatabaseInput, ...func(*glue.Options)) (*glue.CreateDatabaseOutput, error)
	GetTable(context.Context, *glue.GetTableInput, ...func(*glue.Options)) (*glue.GetTableOutput, error)
	CreateTable(context.Context, *glue.CreateTableInput, ...func(*glue.Options)) (*glue.CreateTableOutput, error)
	UpdateTable(context.Context, *glue.UpdateTableInput, ...func(*glue.Options)) (*glue.UpdateTableOutput, error)
}

// AthenaAPI is the part of the Athena client the engine uses.
type AthenaAPI interface {
	StartQueryExecution(context.Context, *athena.StartQueryExecutionInput, ...func(*athena.Options)) (*athena.StartQueryExecutionOutput, error)
	GetQueryExecution(context.Context, *athena.GetQueryExecutionInput, ...func(*athena.Options)) (*athena.GetQueryExecutionOutput, error)
	GetQueryResults(context.Context, *athena.GetQueryResultsInput, ...func(*athena.Options)) (*athena.GetQueryResultsOutput, error)
	StopQueryExecution(context.Context, *athena.StopQueryExecutionInput, ...func(*athena.Options)) (*athena.StopQueryExecutionOutput, error)
}

// PrefixLister lists the capture prefix's table= folders.
type PrefixLister interface {
	ListObjectsV2(context.Context, *s3.ListObjectsV2Input, ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
}

// ResultObjectGetter reads the query's result object in S3.
type ResultObjectGetter interface {
	GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

var (
	_ GlueAPI            = (*glue.Client)(nil)
	_ AthenaAPI          = (*athena.Client)(nil)
	_ PrefixLister       = (*s3.Client)(nil)
	_ ResultObjectGetter = (*s3.Client)(nil)
)

// DefaultAthenaPricePerTB is Athena's documented price for SQL queries,
// in USD per terabyte scanned (us-east-1; "Amazon Athena pricing": $5.00
// per TB, rounded up to the megabyte with a 10 MB minimum per query).
const DefaultAthenaPricePerTB = 5.00

// AthenaCost is what a query that scanned bytes costs at pricePerTB, with
// Athena's rounding: up to the megabyte, at least 10 MB.
func AthenaCost(bytes int64, pricePerTB float64) float64 {
	const mb = 1 << 20
	n := (bytes + mb - 1) / mb * mb
	n = max(n, 10*mb)
	return float64(n) / 1e12 * pricePerTB
}

// AthenaRunOptions say how a query runs on Athena.
type AthenaRunOptions struct {
	// Workgroup runs the query. Default "primary".
	Workgroup string
	// Output is the s3:// result location; empty uses the workgroup's.
	Output string
	// Poll is the interval between GetQueryExecution calls. Default 1s.
	Poll time.Duration
	// CallTimeout bounds each API call. Default 30s.
	CallTimeout time.Duration
	// PricePerTB prices the bytes scanned for the progress and the
	// result. Default DefaultAthenaPricePerTB.
	PricePerTB float64
	// PageSize is GetQueryResults' MaxResults. Default 1000, Athena's
	// maximum.
	PageSize int32
	// Progress, when set, is called after each poll.
	Progress func(AthenaProgress)
	// TempDir is where the key set's sorted runs spill. Default the
	// system's.
	TempDir string
	// Results, when set, reads a large answer from the result object
	// Athena wrote (GetQueryExecution's ResultConfiguration.OutputLocation)
	// instead of paging GetQueryResults: one GET instead of a call per
	// 1000 rows. When the object cannot be read (missing, forbidden, not
	// the CSV expected), the rows are read with GetQueryResults after all,
	// with a warning in AthenaResult.Warnings.
	Results ResultObjectGetter
	// ObjectAfterPages is how many GetQueryResults pages are read before
	// the rest of a larger answer is read from the result object. Default
	// 1: an answer of one page is read with one call, anything larger from
	// the object.
	ObjectAfterPages int
	// ObjectTimeout bounds the read of the result object, body included.
	// Default 10m.
	ObjectTimeout time.Duration
}

// EnsureDefaults fills the zero fields.
func (o *AthenaRunOptions) EnsureDefaults() {
	if o.Workgroup == "" {
		o.Workgroup = "primary"
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 30 * time.Second
	}
	if o.PricePerTB <= 0 {
		o.PricePerTB = DefaultAthenaPricePerTB
	}
	if o.PageSize <= 0 || o.PageSize > 1000 {
		o.PageSize = 1000
	}
	if o.ObjectAfterPages <= 0 {
		o.ObjectAfterPages = 1
	}
	if o.ObjectTimeout <= 0 {
		o.ObjectTimeout = 10 * time.Minute
	}
}

// Validate reports the first bad field.
func (o *AthenaRunOptions) Validate() error {
	if o.Output != "" && !strings.HasPrefix(o.Output, "s3://") {
		return fmt.Errorf("athena: Output %q: want s3://bucket/prefix", o.Output)
	}
	return nil
}

// AthenaProgress is the state of a running query.
type AthenaProgress struct {
	QueryID string
	State   string
	// Scanned is the data scanned so far, in bytes.
	Scanned int64
	// CostUSD is Scanned priced at AthenaRunOptions.PricePerTB.
	CostUSD float64
	Elapsed time.Duration
}

// AthenaResult is what a query on Athena did.
type AthenaResult struct {
	AthenaProgress
	// Rows read from the results, and key-set Items written.
	Rows, Items int64
	// Pages of GetQueryResults read.
	Pages int
	// OutputLocation is the query's result object, s3://bucket/key, as
	// GetQueryExecution reports it; empty when it reports none.
	OutputLocation string
	// ObjectRows are the rows read from the result object rather than
	// from GetQueryResults.
	ObjectRows int64
	// Warnings say what went wrong that the answer did not suffer from,
	// for the caller to show.
	Warnings []string
}

// AthenaTableInput returns the Glue table over the capture layout: the
// capture's columns, partitions table, dt and hour with partition
// projection, Parquet SerDe.
func AthenaTableInput(o AthenaOptions) (*gluetypes.TableInput, error) {
	if err := o.ensureDefaults(); err != nil {
		return nil, err
	}
	params := map[string]string{"classification": "parquet", "EXTERNAL": "TRUE"}
	for _, p := range athenaProjection(&o) {
		params[p[0]] = p[1]
	}
	var cols, parts []gluetypes.Column
	for _, c := range athenaColumns {
		cols = append(cols, gluetypes.Column{Name: aws.String(c[0]), Type: aws.String(c[1])})
	}
	for _, p := range athenaPartitions {
		parts = append(parts, gluetypes.Column{Name: aws.String(p), Type: aws.String("string")})
	}
	return &gluetypes.TableInput{
		Name:          aws.String(o.Table),
		Description:   aws.String("rewind capture: change events of DynamoDB tables (managed by rewind query --engine athena)"),
		TableType:     aws.String("EXTERNAL_TABLE"),
		Parameters:    params,
		PartitionKeys: parts,
		StorageDescriptor: &gluetypes.StorageDescriptor{
			Columns:      cols,
			Location:     aws.String(o.Location),
			InputFormat:  aws.String("org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"),
			OutputFormat: aws.String("org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"),
			SerdeInfo: &gluetypes.SerDeInfo{
				SerializationLibrary: aws.String("org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"),
			},
		},
	}, nil
}

// EnsureAthenaTable creates o's Glue database and table, or updates the
// table when its columns, location or projection differ, through the Glue
// API. It returns "created", "updated" or "unchanged". Run twice, the
// second run changes nothing.
func EnsureAthenaTable(ctx context.Context, g GlueAPI, o AthenaOptions, callTimeout time.Duration) (string, error) {
	in, err := AthenaTableInput(o)
	if err != nil {
		return "", err
	}
	if callTimeout <= 0 {
		callTimeout = 30 * time.Second
	}
	db := o.Database
	if db == "" {
		db = DefaultAthenaDatabase
	}
	call := func(f func(ctx context.Context) error) error {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		return f(cctx)
	}
	var nf *gluetypes.EntityNotFoundException
	var exists *gluetypes.AlreadyExistsException
	err = call(func(ctx context.Context) error {
		_, err := g.GetDatabase(ctx, &glue.GetDatabaseInput{Name: &db})
		return err
	})
	if errors.As(err, &nf) {
		err = call(func(ctx context.Context) error {
			_, err := g.CreateDatabase(ctx, &glue.CreateDatabaseInput{DatabaseInput: &gluetypes.DatabaseInput{
				Name: &db, Description: aws.String("rewind capture tables"),
			}})
			return err
		})
		if errors.As(err, &exists) {
			err = nil
		}
	}
	if err != nil {
		return "", fmt.Errorf("athena: Glue database %s: %w", db, err)
	}
	var cur *gluetypes.Table
	err = call(func(ctx context.Context) error {
		out, err := g.GetTable(ctx, &glue.GetTableInput{DatabaseName: &db, Name: in.Name})
		if err == nil {
			cur = out.Table
		}
		return err
	})
	switch {
	case errors.As(err, &nf):
		err = call(func(ctx context.Context) error {
			_, err := g.CreateTable(ctx, &glue.CreateTableInput{DatabaseName: &db, TableInput: in})
			return err
		})
		if err == nil {
			return "created", nil
		}
		if !errors.As(err, &exists) {
			return "", fmt.Errorf("athena: create Glue table %s.%s: %w", db, *in.Name, err)
		}
	case err != nil:
		return "", fmt.Errorf("athena: Glue table %s.%s: %w", db, *in.Name, err)
	case sameTable(cur, in):
		return "unchanged", nil
	}
	err = call(func(ctx context.Context) error {
		_, err := g.UpdateTable(ctx, &glue.UpdateTableInput{DatabaseName: &db, TableInput: in})
		return err
	})
	if err != nil {
		return "", fmt.Errorf("athena: update Glue table %s.%s: %w", db, *in.Name, err)
	}
	return "updated", nil
}

func sameTable(t *gluetypes.Table, in *gluetypes.TableInput) bool {
	if t == nil || t.StorageDescriptor == nil || !maps.Equal(t.Parameters, in.Parameters) ||
		aws.ToString(t.StorageDescriptor.Location) != aws.ToString(in.StorageDescriptor.Location) {
		return false
	}
	cols := func(cs []gluetypes.Column) []string {
		var s []string
		for _, c := range cs {
			s = append(s, aws.ToString(c.Name)+" "+aws.ToString(c.Type))
		}
		return s
	}
	return slices.Equal(cols(t.StorageDescriptor.Columns), cols(in.StorageDescriptor.Columns)) &&
		slices.Equal(cols(t.PartitionKeys), cols(in.PartitionKeys))
}

// CaptureTables lists the source tables under the capture prefix
// location (its table=<name>/ folders), for the table projection.
func CaptureTables(ctx context.Context, s PrefixLister, location string, callTimeout time.Duration) ([]string, error) {
	bucket, prefix, ok := strings.Cut(strings.TrimPrefix(location, "s3://"), "/")
	if !strings.HasPrefix(location, "s3://") || !ok && bucket == "" {
		return nil, fmt.Errorf("athena: location %q: want s3://bucket/prefix", location)
	}
	if prefix != "" {
		prefix = strings.TrimSuffix(prefix, "/") + "/"
	}
	if callTimeout <= 0 {
		callTimeout = 30 * time.Second
	}
	var tables []string
	in := &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: aws.String(prefix + "table="), Delimiter: aws.String("/")}
	for {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		out, err := s.ListObjectsV2(cctx, in)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("athena: list the tables under %s: %w", location, err)
		}
		for _, cp := range out.CommonPrefixes {
			t := strings.TrimSuffix(strings.TrimPrefix(aws.ToString(cp.Prefix), prefix+"table="), "/")
			if t != "" {
				tables = append(tables, t)
			}
		}
		if !aws.ToBool(out.IsTruncated) || out.NextContinuationToken == nil {
			break
		}
		in.ContinuationToken = out.NextContinuationToken
	}
	return tables, nil
}

// AthenaKeySet runs q's key set on Athena over the Glue table o names and
// writes it to w exactly as KeySet writes the local index's: the same
// lines, in the same order. The table must exist (EnsureAthenaTable).
// Cancelling ctx stops the query (StopQueryExecution); a query that fails
// returns Athena's reason.
func AthenaKeySet(ctx context.Context, api AthenaAPI, q Query, o AthenaOptions, r AthenaRunOptions, w io.Writer) (AthenaResult, error) {
	r.EnsureDefaults()
	var res AthenaResult
	if err := r.Validate(); err != nil {
		return res, err
	}
	st, err := AthenaKeySetStatement(q, o)
	if err != nil {
		return res, err
	}
	id, err := athenaRun(ctx, api, st, o, &r, &res)
	if err != nil {
		return res, err
	}
	kw := rewind.NewKeySetWriter(w)
	kw.TempDir = r.TempDir
	err = athenaRows(ctx, api, id, &r, &res, athenaKeySetColumns, func(row []string) error {
		e, err := keySetRow(row)
		if err != nil {
			return fmt.Errorf("athena: query %s: result row %d: %w", id, res.Rows, err)
		}
		return kw.Add(e)
	})
	if cerr := kw.Close(); err == nil {
		err = cerr
	}
	res.Items = kw.Written()
	return res, err
}

// athenaRun starts the statement and polls it to the end.
func athenaRun(ctx context.Context, api AthenaAPI, st AthenaStatement, o AthenaOptions, r *AthenaRunOptions, res *AthenaResult) (string, error) {
	db := o.Database
	if db == "" {
		db = DefaultAthenaDatabase
	}
	in := &athena.StartQueryExecutionInput{
		QueryString:           aws.String(st.SQL),
		QueryExecutionContext: &athenatypes.QueryExecutionContext{Database: &db},
		WorkGroup:             aws.String(r.Workgroup),
	}
	if len(st.Params) > 0 {
		in.ExecutionParameters = st.Params
	}
	if r.Output != "" {
		in.ResultConfiguration = &athenatypes.ResultConfiguration{OutputLocation: aws.String(r.Output)}
	}
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, r.CallTimeout)
	out, err := api.StartQueryExecution(cctx, in)
	cancel()
	if err != nil {
		return "", fmt.Errorf("athena: start the query in workgroup %s: %w", r.Workgroup, err)
	}
	id := aws.ToString(out.QueryExecutionId)
	res.QueryID = id
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return id, athenaStop(ctx, api, id, r)
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, r.CallTimeout)
		qe, err := api.GetQueryExecution(cctx, &athena.GetQueryExecutionInput{QueryExecutionId: &id})
		cancel()
		if ctx.Err() != nil {
			return id, athenaStop(ctx, api, id, r)
		}
		if err != nil {
			return id, fmt.Errorf("athena: query %s: state: %w", id, err)
		}
		var state athenatypes.QueryExecutionState
		var reason string
		if s := qe.QueryExecution.Status; s != nil {
			state, reason = s.State, aws.ToString(s.StateChangeReason)
			if s.AthenaError != nil && reason == "" {
				reason = aws.ToString(s.AthenaError.ErrorMessage)
			}
		}
		if s := qe.QueryExecution.Statistics; s != nil {
			res.Scanned = aws.ToInt64(s.DataScannedInBytes)
		}
		if rc := qe.QueryExecution.ResultConfiguration; rc != nil {
			res.OutputLocation = aws.ToString(rc.OutputLocation)
		}
		res.State, res.Elapsed = string(state), time.Since(start)
		res.CostUSD = AthenaCost(res.Scanned, r.PricePerTB)
		if r.Progress != nil {
			r.Progress(res.AthenaProgress)
		}
		switch state {
		case athenatypes.QueryExecutionStateSucceeded:
			return id, nil
		case athenatypes.QueryExecutionStateFailed:
			return id, fmt.Errorf("athena: query %s failed: %s", id, reason)
		case athenatypes.QueryExecutionStateCancelled:
			return id, fmt.Errorf("athena: query %s was cancelled outside rewind: %s", id, reason)
		}
		t.Reset(r.Poll)
	}
}

// athenaStop stops the query after ctx ended, with a context of its own.
func athenaStop(ctx context.Context, api AthenaAPI, id string, r *AthenaRunOptions) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.CallTimeout)
	defer cancel()
	if _, err := api.StopQueryExecution(sctx, &athena.StopQueryExecutionInput{QueryExecutionId: &id}); err != nil {
		return fmt.Errorf("athena: query %s: %w; stopping it failed too (stop it with aws athena stop-query-execution --query-execution-id %s): %v", id, ctx.Err(), id, err)
	}
	return fmt.Errorf("athena: query %s stopped: %w", id, ctx.Err())
}

// athenaRows reads the results page by page. The first row of the first
// page is the header (GetQueryResults returns the column names as a row
// for a SELECT); it must name the columns asked for. An answer of more
// than r.ObjectAfterPages pages is read on from the result object when
// r.Results is set; if that fails before the end, paging goes on where the
// first pages ended, skipping the rows the object gave.
func athenaRows(ctx context.Context, api AthenaAPI, id string, r *AthenaRunOptions, res *AthenaResult, cols []string, fn func([]string) error) error {
	in := &athena.GetQueryResultsInput{QueryExecutionId: &id, MaxResults: aws.Int32(r.PageSize)}
	header := true
	row := make([]string, len(cols))
	var skip int64 // rows the result object already gave
	triedObject := false
	for {
		cctx, cancel := context.WithTimeout(ctx, r.CallTimeout)
		out, err := api.GetQueryResults(cctx, in)
		cancel()
		if err != nil {
			return fmt.Errorf("athena: query %s: results page %d: %w", id, res.Pages+1, err)
		}
		res.Pages++
		if out.ResultSet != nil {
			for _, rw := range out.ResultSet.Rows {
				if len(rw.Data) != len(cols) {
					return fmt.Errorf("athena: query %s: a result row has %d columns, want %d (%s)", id, len(rw.Data), len(cols), strings.Join(cols, ", "))
				}
				for i, d := range rw.Data {
					row[i] = aws.ToString(d.VarCharValue)
				}
				if header {
					header = false
					if slices.Equal(row, cols) {
						continue
					}
					return fmt.Errorf("athena: query %s: header row %q, want %q", id, row, cols)
				}
				if skip > 0 {
					skip--
					continue
				}
				res.Rows++
				if err := fn(row); err != nil {
					return err
				}
			}
		}
		if out.NextToken == nil || *out.NextToken == "" {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("athena: query %s: reading its results: %w", id, err)
		}
		in.NextToken = out.NextToken
		if r.Results != nil && !triedObject && res.Pages >= r.ObjectAfterPages {
			triedObject = true
			before := res.ObjectRows
			done, err := athenaObjectRows(ctx, r, res, cols, res.Rows, fn)
			switch {
			case done:
				return nil
			case errors.Is(err, errRow):
				return errors.Unwrap(err)
			}
			skip = res.ObjectRows - before
			res.Warnings = append(res.Warnings, fmt.Sprintf("athena: query %s: the result object could not be read, so the rest of the answer is read with GetQueryResults (allow s3:GetObject on the result location to read large answers in one GET): %v", id, err))
		}
	}
}

// errRow marks an error of the row callback, which ends the read rather
// than falling back to GetQueryResults.
var errRow = errors.New("row")

type rowError struct{ err error }

func (e rowError) Error() string        { return e.err.Error() }
func (e rowError) Unwrap() error        { return e.err }
func (e rowError) Is(target error) bool { return target == errRow }

// athenaObjectRows reads the result object, skipping its header and the
// first done data rows (read already from GetQueryResults), and gives the
// rest to fn. It reports whether it read to the end; an error of fn comes
// back as a rowError.
//
// The object is Athena's CSV ("Find query output files in Amazon S3" in the
// Athena guide: a DML query's results are <QueryID>.csv at the result
// location, beside a binary .csv.metadata that GetQueryResults reads): a
// header row of the column names, then one record per row, fields
// separated by commas and records by newlines, every value in double
// quotes with a quote inside doubled, and NULL an empty field without
// quotes. NULL is read as the empty string, as GetQueryResults' missing
// VarCharValue is.
func athenaObjectRows(ctx context.Context, r *AthenaRunOptions, res *AthenaResult, cols []string, done int64, fn func([]string) error) (bool, error) {
	loc := res.OutputLocation
	bucket, key, ok := strings.Cut(strings.TrimPrefix(loc, "s3://"), "/")
	if !strings.HasPrefix(loc, "s3://") || !ok || bucket == "" || key == "" {
		return false, fmt.Errorf("GetQueryExecution gave no result object (OutputLocation %q)", loc)
	}
	cctx, cancel := context.WithTimeout(ctx, r.ObjectTimeout)
	defer cancel()
	out, err := r.Results.GetObject(cctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		return false, fmt.Errorf("get %s: %w", loc, err)
	}
	defer out.Body.Close()
	cr := newAthenaCSV(out.Body)
	rec, err := cr.read()
	if err != nil {
		return false, fmt.Errorf("%s: header: %w", loc, err)
	}
	if !slices.Equal(rec, cols) {
		return false, fmt.Errorf("%s: header %q, want %q", loc, rec, cols)
	}
	for n := int64(0); ; n++ {
		rec, err := cr.read()
		if err == io.EOF {
			return true, nil
		}
		if err != nil {
			return false, fmt.Errorf("%s: record %d: %w", loc, n+2, err)
		}
		if len(rec) != len(cols) {
			return false, fmt.Errorf("%s: record %d has %d fields, want %d", loc, n+2, len(rec), len(cols))
		}
		if n < done {
			continue
		}
		res.Rows++
		res.ObjectRows++
		if err := fn(rec); err != nil {
			return false, rowError{err}
		}
	}
}

// athenaCSV reads Athena's result CSV (see athenaObjectRows). It keeps
// every byte of a quoted value, \r\n included, which encoding/csv would
// turn into \n.
type athenaCSV struct {
	r   *bufio.Reader
	rec []string
	buf []byte
}

func newAthenaCSV(r io.Reader) *athenaCSV { return &athenaCSV{r: bufio.NewReaderSize(r, 256<<10)} }

// read returns the next record, io.EOF at the end. The record is reused
// by the next call.
func (c *athenaCSV) read() ([]string, error) {
	c.rec = c.rec[:0]
	_, err := c.r.ReadByte()
	if err == io.EOF {
		return nil, io.EOF
	}
	if err != nil {
		return nil, err
	}
	c.r.UnreadByte()
	for {
		c.buf = c.buf[:0]
		b, err := c.r.ReadByte()
		if err != nil && err != io.EOF {
			return nil, err
		}
		if err == nil && b == '"' {
			for {
				b, err := c.r.ReadByte()
				if err != nil {
					return nil, fmt.Errorf("a quoted value without its closing quote: %w", err)
				}
				if b == '"' {
					if nb, err := c.r.ReadByte(); err == nil && nb == '"' {
						c.buf = append(c.buf, '"')
						continue
					} else if err == nil {
						c.r.UnreadByte()
					}
					break
				}
				c.buf = append(c.buf, b)
			}
			b, err = c.r.ReadByte()
		} else {
			for err == nil && b != ',' && b != '\n' {
				if b == '"' {
					return nil, fmt.Errorf("a quote inside an unquoted value")
				}
				c.buf = append(c.buf, b)
				b, err = c.r.ReadByte()
			}
			c.buf = bytes.TrimSuffix(c.buf, []byte{'\r'})
		}
		c.rec = append(c.rec, string(c.buf))
		switch {
		case err == io.EOF, err == nil && b == '\n':
			return c.rec, nil
		case err != nil:
			return nil, err
		case b == ',':
		case b == '\r':
			if nb, err := c.r.ReadByte(); err != nil || nb != '\n' {
				return nil, fmt.Errorf("a carriage return after a quoted value, not before a newline")
			}
			return c.rec, nil
		default:
			return nil, fmt.Errorf("%q after a quoted value, want a comma or a newline", b)
		}
	}
}

// keySetRow reads one row of the key-set query.
func keySetRow(row []string) (rewind.KeySetEntry, error) {
	k, err := rewind.ParseKey([]byte(row[1]))
	if err != nil {
		return rewind.KeySetEntry{}, fmt.Errorf("key %q: %w", row[1], err)
	}
	e := rewind.KeySetEntry{Table: row[0], Key: k, Tenant: row[2]}
	if e.First, err = athenaTime(row[3]); err != nil {
		return e, fmt.Errorf("first: %w", err)
	}
	if e.Last, err = athenaTime(row[4]); err != nil {
		return e, fmt.Errorf("last: %w", err)
	}
	if e.Count, err = strconv.ParseInt(row[5], 10, 64); err != nil {
		return e, fmt.Errorf("count: %w", err)
	}
	for i, a := range []rewind.Action{rewind.ActionInsert, rewind.ActionModify, rewind.ActionRemove} {
		n, err := strconv.ParseInt(row[6+i], 10, 64)
		if err != nil {
			return e, fmt.Errorf("%s: %w", athenaKeySetColumns[6+i], err)
		}
		if n > 0 {
			e.Actions = append(e.Actions, a)
		}
	}
	return e, nil
}

// athenaTime reads a timestamp cast to varchar: 2026-11-20 10:04:05.123
// (Athena, milliseconds) or with up to nanoseconds, the fraction left out
// when zero.
func athenaTime(s string) (time.Time, error) {
	t, err := time.Parse("2006-01-02 15:04:05.999999999", s)
	if err != nil {
		return t, fmt.Errorf("timestamp %q: %w", s, err)
	}
	return t.UTC(), nil
}

// AthenaStats computes q's stats on Athena over the Glue table o names,
// as ComputeStats computes the local index's: the same Stats for the same
// events, so the same rendering prints the same bytes. bucket 0 picks one
// with AutoBucket; a bucket must be a whole number of milliseconds.
func AthenaStats(ctx context.Context, api AthenaAPI, q Query, bucket time.Duration, o AthenaOptions, r AthenaRunOptions) (*Stats, AthenaResult, error) {
	r.EnsureDefaults()
	var res AthenaResult
	if err := r.Validate(); err != nil {
		return nil, res, err
	}
	b, err := newStatsBuilder(q, bucket)
	if err != nil {
		return nil, res, err
	}
	st, err := AthenaStatsStatement(q, o, b.gran)
	if err != nil {
		return nil, res, err
	}
	id, err := athenaRun(ctx, api, st, o, &r, &res)
	if err != nil {
		return nil, res, err
	}
	err = athenaRows(ctx, api, id, &r, &res, athenaStatsColumns, func(row []string) error {
		if err := statsRow(b, row); err != nil {
			return fmt.Errorf("athena: query %s: result row %d: %w", id, res.Rows, err)
		}
		return nil
	})
	if err != nil {
		return nil, res, err
	}
	s, err := b.finish()
	return s, res, err
}

// statsRow adds one row of the stats query to b.
func statsRow(b *statsBuilder, row []string) error {
	var n [6]int64
	for i := range n {
		v, err := strconv.ParseInt(row[2+i], 10, 64)
		if err != nil {
			return fmt.Errorf("%s: %w", athenaStatsColumns[2+i], err)
		}
		n[i] = v
	}
	switch row[0] {
	case "undecodable":
		b.s.Undecodable += n[1]
		return nil
	case "events":
	default:
		return fmt.Errorf("kind %q, want events or undecodable", row[0])
	}
	first, err := athenaTime(row[8])
	if err != nil {
		return fmt.Errorf("first: %w", err)
	}
	last, err := athenaTime(row[9])
	if err != nil {
		return fmt.Errorf("last: %w", err)
	}
	g := TenantCount{Tenant: row[1], Events: n[1], Inserts: n[2], Modifies: n[3], Removes: n[4], TTLExpiries: n[5]}
	b.add(g, n[0]*b.granµ, first.UnixMicro(), last.UnixMicro())
	return nil
}

// AthenaHistory returns the changes of one item in [from, to) on Athena
// over the Glue table o names, as History returns the local index's: the
// same Changes, in the same order (time, then sequence number, then event
// ID), so the same rendering prints the same bytes.
func AthenaHistory(ctx context.Context, api AthenaAPI, table string, key rewind.Key, from, to time.Time, o AthenaOptions, r AthenaRunOptions) ([]Change, AthenaResult, error) {
	r.EnsureDefaults()
	var res AthenaResult
	if err := r.Validate(); err != nil {
		return nil, res, err
	}
	st, err := AthenaHistoryStatement(table, key, from, to, o)
	if err != nil {
		return nil, res, err
	}
	id, err := athenaRun(ctx, api, st, o, &r, &res)
	if err != nil {
		return nil, res, err
	}
	var evs []rewind.ChangeEvent
	err = athenaRows(ctx, api, id, &r, &res, athenaHistoryColumns, func(row []string) error {
		ev, err := historyRow(table, key, row)
		if err != nil {
			return fmt.Errorf("athena: query %s: result row %d: %w", id, res.Rows, err)
		}
		evs = append(evs, ev)
		return nil
	})
	if err != nil {
		return nil, res, err
	}
	changes := make([]Change, 0, len(evs))
	for i := range evs {
		c, err := changeOf(&evs[i])
		if err != nil {
			return nil, res, fmt.Errorf("athena: history of %s %s: %w", table, key, err)
		}
		changes = append(changes, c)
	}
	sortChanges(changes)
	res.Items = int64(len(changes))
	return changes, res, nil
}

// historyRow reads one row of the history query.
func historyRow(table string, key rewind.Key, row []string) (rewind.ChangeEvent, error) {
	ev := rewind.ChangeEvent{
		EventID: row[0], SequenceNumber: row[1], Tenant: row[2], Table: table, Keys: key,
		TTLExpiry: row[4] == "true",
	}
	a, err := rewind.ParseAction(row[3])
	if err != nil {
		return ev, fmt.Errorf("event %s: %w", row[0], err)
	}
	ev.Action = a
	if ev.Time, err = athenaTime(row[5]); err != nil {
		return ev, fmt.Errorf("event %s: time: %w", row[0], err)
	}
	if row[6] != "" {
		ev.OldImage = rewind.Image(row[6])
	}
	if row[7] != "" {
		ev.NewImage = rewind.Image(row[7])
	}
	if row[8] != "" && row[8] != "null" {
		if err := json.Unmarshal([]byte(row[8]), &ev.ChangedAttributes); err != nil {
			return ev, fmt.Errorf("event %s: changed_attributes %q: %w", row[0], row[8], err)
		}
	}
	return ev, nil
}
