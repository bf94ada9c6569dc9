// Package pitrexport asks DynamoDB for the changes a table went through in
// a time window, as incremental exports to S3 (ExportTableToPointInTime
// with ExportType INCREMENTAL_EXPORT, DynamoDB JSON, NEW_AND_OLD_IMAGES), so
// that an incident on a table that never had rewind's capture can still be
// investigated: `rewind index --export` reads what the exports write.
//
// Client.Plan checks the request before anything is started, the way
// DynamoDB would refuse it, and splits it (see Split): point-in-time
// recovery must be on and the window inside its restorable period, and
// each export covers 15 minutes to 24 hours. Client.Start starts the
// planned exports, Client.Wait polls them until they finish. A dry run
// prints the plan Start would execute.
//
// Every export is started with a client token derived from the table, the
// window and the destination, so running the same request again (with the
// same absolute times) within DynamoDB's 8-hour idempotency period returns
// the exports already started instead of starting and paying for new ones.
package pitrexport

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ddbrewind/rewind"
)

// API is what the package needs of DynamoDB.
type API interface {
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	DescribeContinuousBackups(ctx context.Context, in *dynamodb.DescribeContinuousBackupsInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeContinuousBackupsOutput, error)
	ExportTableToPointInTime(ctx context.Context, in *dynamodb.ExportTableToPointInTimeInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ExportTableToPointInTimeOutput, error)
	DescribeExport(ctx context.Context, in *dynamodb.DescribeExportInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeExportOutput, error)
}

var _ API = (*dynamodb.Client)(nil)

// Limits of one incremental export, and defaults.
const (
	// MinWindow and MaxWindow bound one export's window.
	MinWindow = 15 * time.Minute
	MaxWindow = 24 * time.Hour
	// DefaultWaitTimeout bounds Wait.
	DefaultWaitTimeout = 2 * time.Hour
	// DefaultPollInterval is how often Wait asks DescribeExport.
	DefaultPollInterval = 30 * time.Second
)

// Errors Plan returns (wrapped), for callers that branch on them.
var (
	ErrWindowTooShort = errors.New("export window is shorter than 15 minutes")
	ErrEmptyWindow    = errors.New("export window is empty")
	ErrOutsidePITR    = errors.New("export window is outside the point-in-time recovery window")
	ErrPITRDisabled   = errors.New("point-in-time recovery is not enabled")
	ErrTableNotFound  = errors.New("table not found")
	ErrWaitTimeout    = errors.New("timed out waiting for exports")
)

// Window is one export's period [From, To): From inclusive, To exclusive,
// as DynamoDB reads ExportFromTime and ExportToTime.
type Window struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// Duration is the window's length.
func (w Window) Duration() time.Duration { return w.To.Sub(w.From) }

// Split cuts [from, to) into consecutive, non-overlapping export windows of
// at most 24 hours, all of the same length (to the second): as few as
// possible, or one more when rounding the boundaries to the second would
// make a window a fraction of a second too long.
//
// Equal pieces rather than 24-hour pieces and a remainder: a remainder can
// be shorter than the 15-minute minimum, and merging it into the piece
// before would break the 24-hour maximum, while n equal pieces of a range
// longer than 24 hours are each over 12 hours. Inner boundaries fall on
// whole seconds, so that consecutive windows meet exactly whatever
// precision DynamoDB keeps; from and to are kept to the millisecond, the
// precision the API carries.
//
// A range shorter than 15 minutes is refused rather than widened: an
// export's old images are the items' state at its start, so a wider
// window silently answers another question. Widen it yourself.
func Split(from, to time.Time) ([]Window, error) {
	from, to = from.UTC().Truncate(time.Millisecond), to.UTC().Truncate(time.Millisecond)
	total := to.Sub(from)
	switch {
	case total <= 0:
		return nil, fmt.Errorf("%w: --to %s is not after --from %s", ErrEmptyWindow, to.Format(time.RFC3339Nano), from.Format(time.RFC3339Nano))
	case total < MinWindow:
		return nil, fmt.Errorf("%w: [%s, %s) is %s; an incremental export covers at least %s, so widen the window (each item's write time still tells whether it changed inside yours)",
			ErrWindowTooShort, from.Format(time.RFC3339), to.Format(time.RFC3339), total, MinWindow)
	case total <= MaxWindow:
		return []Window{{from, to}}, nil
	}
	// The fewest pieces of at most MaxWindow; one more when truncating the
	// inner boundaries to the second made a piece longer than that.
	for n := (int64(total) + int64(MaxWindow) - 1) / int64(MaxWindow); ; n++ {
		if out := cut(from, to, n); out != nil {
			return out, nil
		}
	}
}

// cut cuts [from, to) into n windows of equal length, inner boundaries
// truncated to the second; nil when one of them is longer than MaxWindow.
func cut(from, to time.Time, n int64) []Window {
	total := int64(to.Sub(from))
	q, r := total/n, total%n // total*i/n without overflow
	out := make([]Window, 0, n)
	start := from
	for i := int64(1); i <= n; i++ {
		end := to
		if i < n {
			end = from.Add(time.Duration(q*i + r*i/n)).Truncate(time.Second)
		}
		if end.Sub(start) > MaxWindow {
			return nil
		}
		out = append(out, Window{start, end})
		start = end
	}
	return out
}

// Request is what to export.
type Request struct {
	// Table is the table's name or ARN. Required.
	Table string
	// From and To are the period whose changes to export, [From, To).
	// Required.
	From, To time.Time
	// Bucket receives the exports under Prefix (no slashes at either end;
	// may be empty). Bucket is required.
	Bucket, Prefix string
	// BucketOwner is the account owning Bucket when it is not the
	// caller's; optional.
	BucketOwner string
}

// Plan is the exports a request needs, checked.
type Plan struct {
	Table    string   `json:"table"`
	TableArn string   `json:"tableArn"`
	Windows  []Window `json:"windows"`
	Bucket   string   `json:"bucket"`
	Prefix   string   `json:"prefix"`
	// Earliest and Latest are the table's restorable window when planned.
	Earliest    time.Time `json:"earliestRestorable"`
	Latest      time.Time `json:"latestRestorable"`
	BucketOwner string    `json:"bucketOwner,omitempty"`
}

// Client plans, starts and waits for exports.
type Client struct {
	api API
}

// New returns a Client over api (a *dynamodb.Client).
func New(api API) *Client { return &Client{api: api} }

func wrapTableErr(op, table string, err error) error {
	var tnf *types.TableNotFoundException
	var rnf *types.ResourceNotFoundException
	if errors.As(err, &tnf) || errors.As(err, &rnf) {
		return fmt.Errorf("%s %s: %w: %w", op, table, ErrTableNotFound, err)
	}
	return fmt.Errorf("%s %s: %w", op, table, err)
}

// Plan checks req against the table and splits it into export windows.
// Nothing is started.
func (c *Client) Plan(ctx context.Context, req Request) (Plan, error) {
	switch {
	case req.Table == "":
		return Plan{}, errors.New("export: no table")
	case req.Bucket == "":
		return Plan{}, errors.New("export: no S3 bucket")
	}
	windows, err := Split(req.From, req.To)
	if err != nil {
		return Plan{}, err
	}
	td, err := c.api.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(req.Table)})
	if err != nil {
		return Plan{}, wrapTableErr("describe table", req.Table, err)
	}
	p := Plan{
		Table: aws.ToString(td.Table.TableName), TableArn: aws.ToString(td.Table.TableArn), Windows: windows,
		Bucket: req.Bucket, Prefix: strings.Trim(req.Prefix, "/"), BucketOwner: req.BucketOwner,
	}
	cb, err := c.api.DescribeContinuousBackups(ctx, &dynamodb.DescribeContinuousBackupsInput{TableName: aws.String(p.Table)})
	if err != nil {
		return p, wrapTableErr("describe continuous backups of", p.Table, err)
	}
	var pd *types.PointInTimeRecoveryDescription
	if cb.ContinuousBackupsDescription != nil {
		pd = cb.ContinuousBackupsDescription.PointInTimeRecoveryDescription
	}
	if pd == nil || pd.PointInTimeRecoveryStatus != types.PointInTimeRecoveryStatusEnabled {
		return p, fmt.Errorf("export %s: %w: DynamoDB exports only from point-in-time recovery history, which starts when it is enabled (rewind pitr enable --table %s helps with the next incident, not this one)",
			p.Table, ErrPITRDisabled, p.Table)
	}
	if pd.EarliestRestorableDateTime == nil || pd.LatestRestorableDateTime == nil {
		return p, fmt.Errorf("export %s: %w: DynamoDB reports no restorable window yet", p.Table, ErrOutsidePITR)
	}
	p.Earliest, p.Latest = pd.EarliestRestorableDateTime.UTC(), pd.LatestRestorableDateTime.UTC()
	first, last := windows[0].From, windows[len(windows)-1].To
	switch {
	case first.Before(p.Earliest):
		return p, fmt.Errorf("export %s: %w: --from %s is before the earliest restorable time %s (PITR keeps %d days of history at most, and none from before it was enabled); use --from %s or later",
			p.Table, ErrOutsidePITR, first.Format(time.RFC3339), p.Earliest.Format(time.RFC3339Nano), aws.ToInt32(pd.RecoveryPeriodInDays), p.Earliest.Format(time.RFC3339Nano))
	case last.After(p.Latest):
		return p, fmt.Errorf("export %s: %w: --to %s is after the latest restorable time %s (it lags about 5 minutes behind now); use --to %s or wait",
			p.Table, ErrOutsidePITR, last.Format(time.RFC3339), p.Latest.Format(time.RFC3339Nano), p.Latest.Format(time.RFC3339Nano))
	}
	return p, nil
}

// Export is one started export, as DescribeExport last reported it.
type Export struct {
	ExportArn string `json:"exportArn"`
	ExportID  string `json:"exportId"`
	Table     string `json:"table"`
	Window
	// Status is IN_PROGRESS, COMPLETED or FAILED.
	Status string `json:"status"`
	// Location is what `rewind index --export` reads:
	// s3://bucket/prefix/AWSDynamoDB/<export-id>/.
	Location        string     `json:"location"`
	StartTime       *time.Time `json:"startTime,omitempty"`
	EndTime         *time.Time `json:"endTime,omitempty"`
	ItemCount       int64      `json:"itemCount"`
	BilledSizeBytes int64      `json:"billedSizeBytes"`
	FailureCode     string     `json:"failureCode,omitempty"`
	FailureMessage  string     `json:"failureMessage,omitempty"`
}

// Done reports whether the export has finished, well or not.
func (e *Export) Done() bool {
	return e.Status == string(types.ExportStatusCompleted) || e.Status == string(types.ExportStatusFailed)
}

// clientToken identifies an export request, so that a rerun of the same
// request returns the export already started.
func clientToken(p *Plan, w Window) string {
	h := sha256.New()
	fmt.Fprintf(h, "rewind-export\x00%s\x00%d\x00%d\x00%s\x00%s\x00%s", p.TableArn, w.From.UnixMilli(), w.To.UnixMilli(), p.Bucket, p.Prefix, p.BucketOwner)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// location is where an export's manifests are.
func location(bucket, prefix, id string) string {
	if prefix = strings.Trim(prefix, "/"); prefix != "" {
		prefix += "/"
	}
	return "s3://" + bucket + "/" + prefix + "AWSDynamoDB/" + id + "/"
}

func exportOf(d *types.ExportDescription, table string) Export {
	e := Export{
		ExportArn: aws.ToString(d.ExportArn), Table: table, Status: string(d.ExportStatus),
		StartTime: d.StartTime, EndTime: d.EndTime,
		ItemCount: aws.ToInt64(d.ItemCount), BilledSizeBytes: aws.ToInt64(d.BilledSizeBytes),
		FailureCode: aws.ToString(d.FailureCode), FailureMessage: aws.ToString(d.FailureMessage),
	}
	if _, id, ok := strings.Cut(e.ExportArn, "/export/"); ok {
		e.ExportID = id
	}
	if s := d.IncrementalExportSpecification; s != nil && s.ExportFromTime != nil && s.ExportToTime != nil {
		e.Window = Window{s.ExportFromTime.UTC(), s.ExportToTime.UTC()}
	}
	if d.S3Bucket != nil {
		e.Location = location(aws.ToString(d.S3Bucket), aws.ToString(d.S3Prefix), e.ExportID)
	}
	return e
}

// Start starts the plan's exports, in window order. On an error it
// returns the exports started so far with it.
func (c *Client) Start(ctx context.Context, p Plan) ([]Export, error) {
	var out []Export
	for _, w := range p.Windows {
		in := &dynamodb.ExportTableToPointInTimeInput{
			TableArn:     aws.String(p.TableArn),
			S3Bucket:     aws.String(p.Bucket),
			ExportFormat: types.ExportFormatDynamodbJson,
			ExportType:   types.ExportTypeIncrementalExport,
			IncrementalExportSpecification: &types.IncrementalExportSpecification{
				ExportFromTime: aws.Time(w.From),
				ExportToTime:   aws.Time(w.To),
				ExportViewType: types.ExportViewTypeNewAndOldImages,
			},
			ClientToken: aws.String(clientToken(&p, w)),
		}
		if p.Prefix != "" {
			in.S3Prefix = aws.String(p.Prefix)
		}
		if p.BucketOwner != "" {
			in.S3BucketOwner = aws.String(p.BucketOwner)
		}
		res, err := c.api.ExportTableToPointInTime(ctx, in)
		if err != nil {
			return out, fmt.Errorf("export %s [%s, %s) to s3://%s/%s: %w", p.Table,
				w.From.Format(time.RFC3339), w.To.Format(time.RFC3339), p.Bucket, p.Prefix, err)
		}
		if res.ExportDescription == nil {
			return out, fmt.Errorf("export %s: ExportTableToPointInTime returned no description", p.Table)
		}
		e := exportOf(res.ExportDescription, p.Table)
		if e.Window.From.IsZero() {
			e.Window = w
		}
		if e.Location == "" {
			e.Location = location(p.Bucket, p.Prefix, e.ExportID)
		}
		out = append(out, e)
	}
	return out, nil
}

// WaitOptions configures Wait.
type WaitOptions struct {
	// Timeout bounds the wait (default DefaultWaitTimeout); the exports go
	// on after it.
	Timeout time.Duration
	// Interval is the time between polls (default DefaultPollInterval).
	Interval time.Duration
	// Progress, when set, is called after each poll.
	Progress func(WaitProgress)
}

// WaitProgress is how far the exports have got.
type WaitProgress struct {
	Exports                 []Export
	Done, Completed, Failed int
	Elapsed                 time.Duration
}

// Report is the poll in the shape every long-running call reports:
// exports done (completed or failed) of those started.
func (p WaitProgress) Report() rewind.Progress {
	return rewind.Progress{
		Phase: "export", Unit: "exports", Done: int64(p.Done), Total: int64(len(p.Exports)), Elapsed: p.Elapsed,
		Counts: []rewind.ProgressCount{{Name: "completed", N: int64(p.Completed)}, {Name: "failed", N: int64(p.Failed)}},
		Final:  p.Done == len(p.Exports),
	}
}

// Wait polls DescribeExport until every export is COMPLETED or FAILED,
// and returns them as last described. It returns ErrWaitTimeout (wrapped)
// when the timeout passes first, and ctx's error when it is cancelled; the
// exports returned are then as last seen.
func (c *Client) Wait(ctx context.Context, exports []Export, o WaitOptions) ([]Export, error) {
	if o.Timeout <= 0 {
		o.Timeout = DefaultWaitTimeout
	}
	if o.Interval <= 0 {
		o.Interval = DefaultPollInterval
	}
	out := append([]Export(nil), exports...)
	start := time.Now()
	deadline := start.Add(o.Timeout)
	for {
		var p WaitProgress
		for i := range out {
			e := &out[i]
			if !e.Done() {
				d, err := c.api.DescribeExport(ctx, &dynamodb.DescribeExportInput{ExportArn: aws.String(e.ExportArn)})
				if err != nil {
					if ctx.Err() != nil {
						return out, ctx.Err()
					}
					return out, fmt.Errorf("describe export %s: %w", e.ExportArn, err)
				}
				if d.ExportDescription != nil {
					w, loc := e.Window, e.Location
					*e = exportOf(d.ExportDescription, e.Table)
					if e.Window.From.IsZero() {
						e.Window = w
					}
					if e.Location == "" {
						e.Location = loc
					}
				}
			}
			if e.Done() {
				p.Done++
			}
			switch e.Status {
			case string(types.ExportStatusCompleted):
				p.Completed++
			case string(types.ExportStatusFailed):
				p.Failed++
			}
		}
		p.Exports, p.Elapsed = out, time.Since(start)
		if o.Progress != nil {
			o.Progress(p)
		}
		if p.Done == len(out) {
			return out, nil
		}
		if !time.Now().Add(o.Interval).Before(deadline) {
			return out, fmt.Errorf("%w: %d of %d done after %s (the exports go on)", ErrWaitTimeout, p.Done, len(out), o.Timeout)
		}
		select {
		case <-ctx.Done():
			return out, ctx.Err()
		case <-time.After(o.Interval):
		}
	}
}
