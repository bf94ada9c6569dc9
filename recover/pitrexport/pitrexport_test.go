package pitrexport

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

var t0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		name     string
		from, to time.Time
		want     []time.Duration // window lengths
		err      error
	}{
		{"10 minutes", t0, t0.Add(10 * time.Minute), nil, ErrWindowTooShort},
		{"just under 15 minutes", t0, t0.Add(15*time.Minute - time.Millisecond), nil, ErrWindowTooShort},
		{"15 minutes", t0, t0.Add(15 * time.Minute), []time.Duration{15 * time.Minute}, nil},
		{"2 hours", t0, t0.Add(2 * time.Hour), []time.Duration{2 * time.Hour}, nil},
		{"24 hours", t0, t0.Add(24 * time.Hour), []time.Duration{24 * time.Hour}, nil},
		{"24 hours and a second", t0, t0.Add(24*time.Hour + time.Second), []time.Duration{12 * time.Hour, 12*time.Hour + time.Second}, nil},
		{"30 hours", t0, t0.Add(30 * time.Hour), []time.Duration{15 * time.Hour, 15 * time.Hour}, nil},
		{"ten years, no overflow", t0, t0.Add(3653 * 24 * time.Hour), nil, nil},
		{"48 hours", t0, t0.Add(48 * time.Hour), []time.Duration{24 * time.Hour, 24 * time.Hour}, nil},
		{"48 hours from half a second", t0.Add(500 * time.Millisecond), t0.Add(48*time.Hour + 500*time.Millisecond), []time.Duration{16*time.Hour - 500*time.Millisecond, 16 * time.Hour, 16*time.Hour + 500*time.Millisecond}, nil},
		{"empty", t0, t0, nil, ErrEmptyWindow},
		{"backwards", t0, t0.Add(-time.Hour), nil, ErrEmptyWindow},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws, err := Split(tc.from, tc.to)
			if !errors.Is(err, tc.err) {
				t.Fatalf("Split: %v, want %v", err, tc.err)
			}
			var got []time.Duration
			for _, w := range ws {
				got = append(got, w.Duration())
			}
			if tc.want != nil && fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("windows %v, want %v", got, tc.want)
			}
			checkCover(t, ws, tc.from, tc.to)
		})
	}
}

// checkCover checks that windows are consecutive, non-overlapping, each
// 15 minutes to 24 hours, and cover [from, to) exactly.
func checkCover(t *testing.T, ws []Window, from, to time.Time) {
	t.Helper()
	if len(ws) == 0 {
		return
	}
	if !ws[0].From.Equal(from.Truncate(time.Millisecond)) || !ws[len(ws)-1].To.Equal(to.Truncate(time.Millisecond)) {
		t.Errorf("windows cover [%s, %s), want [%s, %s)", ws[0].From, ws[len(ws)-1].To, from, to)
	}
	for i, w := range ws {
		if w.Duration() < MinWindow || w.Duration() > MaxWindow {
			t.Errorf("window %d is %s long", i, w.Duration())
		}
		if i > 0 && !w.From.Equal(ws[i-1].To) {
			t.Errorf("window %d starts at %s, the one before ends at %s", i, w.From, ws[i-1].To)
		}
	}
}

// TestSplitProperty checks the covering rules over many ranges, with
// fractional seconds at both ends.
func TestSplitProperty(t *testing.T) {
	for i := range 2000 {
		from := t0.Add(time.Duration(i*7919) * time.Millisecond)
		to := from.Add(MinWindow + time.Duration(i)*time.Duration(i)*3*time.Second + time.Duration(i%1000)*time.Millisecond)
		ws, err := Split(from, to)
		if err != nil {
			t.Fatalf("Split(%s, %s): %v", from, to, err)
		}
		checkCover(t, ws, from, to)
		// The fewest windows, or one more when the boundaries' truncation
		// to the second forced it.
		if least := int((to.Sub(from) + MaxWindow - 1) / MaxWindow); len(ws) != least && len(ws) != least+1 {
			t.Fatalf("Split(%s, %s): %d windows, want %d or %d", from, to, len(ws), least, least+1)
		}
		if t.Failed() {
			t.Fatalf("Split(%s, %s) = %v", from, to, ws)
		}
	}
}

// fakeAPI is DynamoDB as far as the package talks to it.
type fakeAPI struct {
	mu       sync.Mutex
	pitr     *types.PointInTimeRecoveryDescription
	noTable  bool
	starts   []*dynamodb.ExportTableToPointInTimeInput
	exports  map[string]*types.ExportDescription // by token
	polls    map[string]int                      // DescribeExport calls by ARN
	doneAt   int                                 // polls until an export is done
	failARN  string
	startErr error
}

func newFakeAPI() *fakeAPI {
	return &fakeAPI{
		pitr: &types.PointInTimeRecoveryDescription{
			PointInTimeRecoveryStatus:  types.PointInTimeRecoveryStatusEnabled,
			RecoveryPeriodInDays:       aws.Int32(7),
			EarliestRestorableDateTime: aws.Time(t0.Add(-7 * 24 * time.Hour)),
			LatestRestorableDateTime:   aws.Time(t0.Add(72 * time.Hour)),
		},
		exports: map[string]*types.ExportDescription{},
		polls:   map[string]int{},
		doneAt:  2,
	}
}

func (f *fakeAPI) DescribeTable(_ context.Context, in *dynamodb.DescribeTableInput, _ ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	if f.noTable {
		return nil, &types.ResourceNotFoundException{Message: aws.String("Requested resource not found")}
	}
	return &dynamodb.DescribeTableOutput{Table: &types.TableDescription{
		TableName: in.TableName, TableArn: aws.String("arn:aws:dynamodb:eu-west-1:123456789012:table/" + *in.TableName),
	}}, nil
}

func (f *fakeAPI) DescribeContinuousBackups(context.Context, *dynamodb.DescribeContinuousBackupsInput, ...func(*dynamodb.Options)) (*dynamodb.DescribeContinuousBackupsOutput, error) {
	return &dynamodb.DescribeContinuousBackupsOutput{ContinuousBackupsDescription: &types.ContinuousBackupsDescription{
		ContinuousBackupsStatus: types.ContinuousBackupsStatusEnabled, PointInTimeRecoveryDescription: f.pitr,
	}}, nil
}

func (f *fakeAPI) ExportTableToPointInTime(_ context.Context, in *dynamodb.ExportTableToPointInTimeInput, _ ...func(*dynamodb.Options)) (*dynamodb.ExportTableToPointInTimeOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.startErr != nil && len(f.starts) == 1 {
		return nil, f.startErr
	}
	f.starts = append(f.starts, in)
	d, ok := f.exports[*in.ClientToken]
	if !ok {
		id := fmt.Sprintf("0179516880000%d-0000000%d", len(f.exports), len(f.exports))
		d = &types.ExportDescription{
			ExportArn: aws.String(*in.TableArn + "/export/" + id), ExportStatus: types.ExportStatusInProgress,
			S3Bucket: in.S3Bucket, S3Prefix: in.S3Prefix, ExportType: in.ExportType, ExportFormat: in.ExportFormat,
			IncrementalExportSpecification: in.IncrementalExportSpecification, ClientToken: in.ClientToken,
		}
		f.exports[*in.ClientToken] = d
	}
	return &dynamodb.ExportTableToPointInTimeOutput{ExportDescription: d}, nil
}

func (f *fakeAPI) DescribeExport(_ context.Context, in *dynamodb.DescribeExportInput, _ ...func(*dynamodb.Options)) (*dynamodb.DescribeExportOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, d := range f.exports {
		if *d.ExportArn == *in.ExportArn {
			f.polls[*in.ExportArn]++
			if f.polls[*in.ExportArn] >= f.doneAt {
				c := *d
				c.ExportStatus, c.ItemCount = types.ExportStatusCompleted, aws.Int64(42)
				if *in.ExportArn == f.failARN {
					c.ExportStatus, c.FailureCode, c.FailureMessage = types.ExportStatusFailed, aws.String("S3NoSuchBucket"), aws.String("no bucket")
				}
				return &dynamodb.DescribeExportOutput{ExportDescription: &c}, nil
			}
			return &dynamodb.DescribeExportOutput{ExportDescription: d}, nil
		}
	}
	return nil, &types.ExportNotFoundException{Message: aws.String("no export")}
}

func TestPlanChecks(t *testing.T) {
	ctx := t.Context()
	req := Request{Table: "orders", From: t0, To: t0.Add(30 * time.Hour), Bucket: "b", Prefix: "/incident/"}
	f := newFakeAPI()
	p, err := New(f).Plan(ctx, req)
	if err != nil || len(p.Windows) != 2 || p.TableArn != "arn:aws:dynamodb:eu-west-1:123456789012:table/orders" || p.Prefix != "incident" {
		t.Fatalf("Plan = %+v, %v", p, err)
	}
	for _, tc := range []struct {
		name  string
		edit  func(*fakeAPI, *Request)
		err   error
		words string
	}{
		{"before the earliest restorable time", func(f *fakeAPI, r *Request) { r.From = t0.Add(-8 * 24 * time.Hour) }, ErrOutsidePITR, "is before the earliest restorable time"},
		{"after the latest restorable time", func(f *fakeAPI, r *Request) { r.To = t0.Add(73 * time.Hour) }, ErrOutsidePITR, "is after the latest restorable time"},
		{"PITR off", func(f *fakeAPI, r *Request) {
			f.pitr = &types.PointInTimeRecoveryDescription{PointInTimeRecoveryStatus: types.PointInTimeRecoveryStatusDisabled}
		}, ErrPITRDisabled, "rewind pitr enable --table orders"},
		{"no table", func(f *fakeAPI, r *Request) { f.noTable = true }, ErrTableNotFound, "orders"},
		{"10 minutes", func(f *fakeAPI, r *Request) { r.To = r.From.Add(10 * time.Minute) }, ErrWindowTooShort, "at least 15m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, r := newFakeAPI(), req
			tc.edit(f, &r)
			_, err := New(f).Plan(ctx, r)
			if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.words) {
				t.Errorf("Plan: %v, want %v saying %q", err, tc.err, tc.words)
			}
			if len(f.starts) != 0 {
				t.Error("Plan started an export")
			}
		})
	}
}

func TestStartAndWait(t *testing.T) {
	ctx := t.Context()
	f := newFakeAPI()
	c := New(f)
	p, err := c.Plan(ctx, Request{Table: "orders", From: t0, To: t0.Add(30 * time.Hour), Bucket: "b", Prefix: "incident"})
	if err != nil {
		t.Fatal(err)
	}
	exps, err := c.Start(ctx, p)
	if err != nil || len(exps) != 2 {
		t.Fatalf("Start: %v, %v", exps, err)
	}
	in := f.starts[0]
	if in.ExportType != types.ExportTypeIncrementalExport || in.ExportFormat != types.ExportFormatDynamodbJson ||
		in.IncrementalExportSpecification.ExportViewType != types.ExportViewTypeNewAndOldImages ||
		!in.IncrementalExportSpecification.ExportFromTime.Equal(t0) || !in.IncrementalExportSpecification.ExportToTime.Equal(t0.Add(15*time.Hour)) ||
		*in.S3Bucket != "b" || *in.S3Prefix != "incident" || *in.TableArn != p.TableArn || in.ExportTime != nil {
		t.Errorf("ExportTableToPointInTime input %+v", in)
	}
	if *f.starts[0].ClientToken == *f.starts[1].ClientToken {
		t.Error("two windows share a client token")
	}
	if exps[0].Location != "s3://b/incident/AWSDynamoDB/"+exps[0].ExportID+"/" || exps[0].Status != "IN_PROGRESS" || !exps[1].From.Equal(t0.Add(15*time.Hour)) {
		t.Errorf("export %+v", exps[0])
	}
	// The same request again returns the same exports.
	again, err := c.Start(ctx, p)
	if err != nil || again[0].ExportArn != exps[0].ExportArn || again[1].ExportArn != exps[1].ExportArn {
		t.Fatalf("rerun started other exports: %v %v", again, err)
	}

	f.failARN = exps[1].ExportArn
	var progress []WaitProgress
	done, err := c.Wait(ctx, exps, WaitOptions{Interval: time.Millisecond, Timeout: time.Minute, Progress: func(p WaitProgress) { progress = append(progress, p) }})
	if err != nil {
		t.Fatal(err)
	}
	if done[0].Status != "COMPLETED" || done[0].ItemCount != 42 || done[1].Status != "FAILED" || done[1].FailureCode != "S3NoSuchBucket" ||
		done[0].Location != exps[0].Location {
		t.Errorf("after wait: %+v", done)
	}
	if len(progress) != 2 || progress[0].Done != 0 || progress[1].Completed != 1 || progress[1].Failed != 1 {
		t.Errorf("progress %+v", progress)
	}

	// Timeout: the exports as last seen, and ErrWaitTimeout.
	f2 := newFakeAPI()
	f2.doneAt = 1 << 30
	c2 := New(f2)
	exps, _ = c2.Start(ctx, p)
	got, err := c2.Wait(ctx, exps, WaitOptions{Interval: 5 * time.Millisecond, Timeout: 20 * time.Millisecond})
	if !errors.Is(err, ErrWaitTimeout) || len(got) != 2 || got[0].Status != "IN_PROGRESS" {
		t.Errorf("Wait past the timeout: %v %v", got, err)
	}

	// A failure to start the second export returns the first.
	f3 := newFakeAPI()
	f3.startErr = &types.LimitExceededException{Message: aws.String("too many exports")}
	started, err := New(f3).Start(ctx, p)
	if err == nil || len(started) != 1 || !strings.Contains(err.Error(), "too many exports") {
		t.Errorf("Start with a failure: %v %v", started, err)
	}
}
