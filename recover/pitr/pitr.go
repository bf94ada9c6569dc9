// Package pitr enables and reads DynamoDB point-in-time recovery and
// restores a table, as it was at a given time, into a new table: step 2 of
// the recover runbook (the patcher then copies the impacted items back).
//
// Client.Enable and Client.Status wrap UpdateContinuousBackups and
// DescribeContinuousBackups. Client.Restore checks everything DynamoDB
// would refuse before calling RestoreTableToPointInTime, so the operator
// gets a clear message instead of an API error: the target is a new table
// (never the source: a restore in place is impossible in DynamoDB, and
// overwriting production is exactly what the patcher exists to avoid), the
// source has PITR on, and the time is inside its restorable window (a
// time after LatestRestorableDateTime, which AWS keeps about five minutes
// behind now, is refused with that lag explained). It also reports what
// the new table lacks of the source (stream, TTL, PITR: see Lack) and
// what it costs while it exists (Cost), and takes BillingModeOverride.
// Client.Wait polls until the restored table is ACTIVE, with progress and
// a timeout. Client.PlanCleanup and Client.Cleanup delete a restored table
// once it has served, refusing any table DynamoDB did not create by a
// restore and the production table.
package pitr

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ddbrewind/rewind"
)

// API is what the package needs of DynamoDB.
type API interface {
	UpdateContinuousBackups(ctx context.Context, in *dynamodb.UpdateContinuousBackupsInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateContinuousBackupsOutput, error)
	DescribeContinuousBackups(ctx context.Context, in *dynamodb.DescribeContinuousBackupsInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeContinuousBackupsOutput, error)
	RestoreTableToPointInTime(ctx context.Context, in *dynamodb.RestoreTableToPointInTimeInput, optFns ...func(*dynamodb.Options)) (*dynamodb.RestoreTableToPointInTimeOutput, error)
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	DescribeTimeToLive(ctx context.Context, in *dynamodb.DescribeTimeToLiveInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTimeToLiveOutput, error)
	DeleteTable(ctx context.Context, in *dynamodb.DeleteTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteTableOutput, error)
}

var _ API = (*dynamodb.Client)(nil)

// Limits and defaults.
const (
	// MinRecoveryDays and MaxRecoveryDays bound RecoveryPeriodInDays.
	MinRecoveryDays = 1
	MaxRecoveryDays = 35
	// DefaultRecoveryDays is DynamoDB's default recovery period.
	DefaultRecoveryDays = 35
	// DefaultWaitTimeout bounds Wait.
	DefaultWaitTimeout = 2 * time.Hour
	// DefaultPollInterval is how often Wait asks DescribeTable.
	DefaultPollInterval = 10 * time.Second
	// targetTimeLayout is the time in default target names.
	targetTimeLayout = "20060102T150405"
)

// Errors Restore returns (wrapped), for callers that branch on them.
var (
	ErrInPlace       = errors.New("restore target is the source table")
	ErrTargetExists  = errors.New("restore target table already exists")
	ErrPITRDisabled  = errors.New("point-in-time recovery is not enabled")
	ErrOutsideWindow = errors.New("restore time is outside the restorable window")
	// ErrTooRecent and ErrTooOld are ErrOutsideWindow (errors.Is matches
	// both) saying which side.
	ErrTooRecent     = fmt.Errorf("%w: after the latest restorable time", ErrOutsideWindow)
	ErrTooOld        = fmt.Errorf("%w: before the earliest restorable time", ErrOutsideWindow)
	ErrTableNotFound = errors.New("table not found")
	ErrBillingMode   = errors.New("billing mode override not possible")
)

// Client runs PITR operations.
type Client struct {
	api API
}

// New returns a Client over api (a *dynamodb.Client).
func New(api API) *Client { return &Client{api: api} }

// Status is a table's point-in-time recovery state.
type Status struct {
	Table   string `json:"table"`
	Enabled bool   `json:"enabled"`
	// State is PointInTimeRecoveryStatus: ENABLED, DISABLED or ENABLING.
	State                string     `json:"state"`
	RecoveryPeriodInDays int32      `json:"recoveryPeriodInDays,omitempty"`
	EarliestRestorable   *time.Time `json:"earliestRestorable,omitempty"`
	LatestRestorable     *time.Time `json:"latestRestorable,omitempty"`
}

// Window reports whether t is inside [EarliestRestorable,
// LatestRestorable].
func (s Status) Window(t time.Time) bool {
	return s.Enabled && s.EarliestRestorable != nil && s.LatestRestorable != nil &&
		!t.Before(*s.EarliestRestorable) && !t.After(*s.LatestRestorable)
}

func statusOf(table string, d *types.ContinuousBackupsDescription) Status {
	st := Status{Table: table, State: string(types.PointInTimeRecoveryStatusDisabled)}
	if d == nil || d.PointInTimeRecoveryDescription == nil {
		return st
	}
	p := d.PointInTimeRecoveryDescription
	st.State = string(p.PointInTimeRecoveryStatus)
	st.Enabled = p.PointInTimeRecoveryStatus == types.PointInTimeRecoveryStatusEnabled
	st.RecoveryPeriodInDays = aws.ToInt32(p.RecoveryPeriodInDays)
	st.EarliestRestorable = p.EarliestRestorableDateTime
	st.LatestRestorable = p.LatestRestorableDateTime
	return st
}

func wrapTableErr(op, table string, err error) error {
	var tnf *types.TableNotFoundException
	var rnf *types.ResourceNotFoundException
	if errors.As(err, &tnf) || errors.As(err, &rnf) {
		return fmt.Errorf("%s %s: %w: %w", op, table, ErrTableNotFound, err)
	}
	return fmt.Errorf("%s %s: %w", op, table, err)
}

// Enable turns point-in-time recovery on for table with a recovery period
// of days (0 means DefaultRecoveryDays). Enabling it again changes only
// the period. Restores are possible from the moment it is enabled, not
// before.
func (c *Client) Enable(ctx context.Context, table string, days int32) (Status, error) {
	if days == 0 {
		days = DefaultRecoveryDays
	}
	if days < MinRecoveryDays || days > MaxRecoveryDays {
		return Status{}, fmt.Errorf("recovery period %d days: must be between %d and %d", days, MinRecoveryDays, MaxRecoveryDays)
	}
	out, err := c.api.UpdateContinuousBackups(ctx, &dynamodb.UpdateContinuousBackupsInput{
		TableName: aws.String(table),
		PointInTimeRecoverySpecification: &types.PointInTimeRecoverySpecification{
			PointInTimeRecoveryEnabled: aws.Bool(true),
			RecoveryPeriodInDays:       aws.Int32(days),
		},
	})
	if err != nil {
		return Status{}, wrapTableErr("enable point-in-time recovery on", table, err)
	}
	return statusOf(table, out.ContinuousBackupsDescription), nil
}

// Status reads table's point-in-time recovery state.
func (c *Client) Status(ctx context.Context, table string) (Status, error) {
	out, err := c.api.DescribeContinuousBackups(ctx, &dynamodb.DescribeContinuousBackupsInput{TableName: aws.String(table)})
	if err != nil {
		return Status{}, wrapTableErr("describe continuous backups of", table, err)
	}
	return statusOf(table, out.ContinuousBackupsDescription), nil
}

// RestoreInput says what to restore.
type RestoreInput struct {
	// SourceTable is the damaged table. Required.
	SourceTable string
	// Time is the moment to restore to, typically just before the bad
	// deploy. Required.
	Time time.Time
	// TargetTable is the new table (default
	// <source>-rewind-<yyyymmddThhmmss> of Time in UTC: see
	// DefaultTargetPrefix).
	TargetTable string
	// NoIndexes restores without global and local secondary indexes: the
	// patcher reads by key only, and a restore without indexes is faster
	// and cheaper.
	NoIndexes bool
	// BillingMode overrides the new table's billing mode
	// (BillingModeOverride): "" keeps the source's, PAY_PER_REQUEST, or
	// PROVISIONED with ReadCapacity and WriteCapacity (both required).
	BillingMode string
	// ReadCapacity and WriteCapacity are the new table's provisioned
	// throughput with BillingMode PROVISIONED (ProvisionedThroughputOverride).
	ReadCapacity, WriteCapacity int64
	// Region is where the tables are, named in the cost estimate only.
	Region string
}

// validate checks in and fills in the default target name.
func (in *RestoreInput) validate() error {
	switch {
	case in.SourceTable == "":
		return errors.New("restore: no source table")
	case in.Time.IsZero():
		return errors.New("restore: no restore time")
	}
	if in.TargetTable == "" {
		in.TargetTable = DefaultTargetName(in.SourceTable, in.Time)
	}
	if !validTableName(in.TargetTable) {
		return fmt.Errorf("restore: target table name %q is not a valid DynamoDB table name (3-255 of a-z A-Z 0-9 _ - .)", in.TargetTable)
	}
	if in.TargetTable == in.SourceTable {
		return fmt.Errorf("restore %s: %w: DynamoDB restores into a new table only, and the patcher copies items back; choose another --to-table", in.SourceTable, ErrInPlace)
	}
	switch types.BillingMode(in.BillingMode) {
	case "", types.BillingModePayPerRequest:
		if in.ReadCapacity != 0 || in.WriteCapacity != 0 {
			return fmt.Errorf("restore %s: %w: read and write capacity go with billing mode PROVISIONED only", in.SourceTable, ErrBillingMode)
		}
	case types.BillingModeProvisioned:
		if in.ReadCapacity <= 0 || in.WriteCapacity <= 0 {
			return fmt.Errorf("restore %s: %w: billing mode PROVISIONED needs a positive read and write capacity (--read-capacity, --write-capacity); or use PAY_PER_REQUEST, which needs no capacity planning for the patch's reads", in.SourceTable, ErrBillingMode)
		}
	default:
		return fmt.Errorf("restore %s: %w: billing mode %q: use PAY_PER_REQUEST or PROVISIONED", in.SourceTable, ErrBillingMode, in.BillingMode)
	}
	return nil
}

// Restore is a started restore.
type Restore struct {
	SourceTable string    `json:"sourceTable"`
	TargetTable string    `json:"targetTable"`
	Time        time.Time `json:"time"`
	NoIndexes   bool      `json:"noIndexes"`
	// Status is the target's TableStatus as the call returned it.
	Status    string    `json:"status"`
	TargetARN string    `json:"targetArn,omitempty"`
	Started   time.Time `json:"started"`
	// Window is the source's restorable window at the check.
	Window Status `json:"window"`
	// BillingMode is the new table's: the override or the source's.
	BillingMode string `json:"billingMode"`
	// Lacks are the source's settings the new table does not get (see
	// Lack); NeverCopied those AWS never copies, which rewind does not
	// read.
	Lacks       []Lack   `json:"lacks"`
	NeverCopied []string `json:"neverCopied"`
	// Cost estimates what the new table costs while it exists.
	Cost Cost `json:"cost"`
	// Cleanup are commands that delete the new table once verify passed.
	Cleanup []string `json:"cleanup"`
}

// DefaultTargetPrefix is the start of every default target name of
// source: deploy/README.md tells operators to grant the restore target
// permissions of operator-policy.json on RESTORE_PREFIX*, with this prefix
// as the example, so a restore with the default name stays inside it.
func DefaultTargetPrefix(source string) string { return source + "-rewind-" }

// DefaultTargetName is the target table for restoring source to t.
func DefaultTargetName(source string, t time.Time) string {
	return DefaultTargetPrefix(source) + t.UTC().Format(targetTimeLayout)
}

// validTableName reports whether name is 3 to 255 of a-z, A-Z, 0-9, '_',
// '-' and '.', DynamoDB's rule for table names. (A regexp with {3,255}
// compiles to thousands of states at every start of the CLI.)
func validTableName(name string) bool {
	if len(name) < 3 || len(name) > 255 {
		return false
	}
	for _, c := range []byte(name) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-', c == '.':
		default:
			return false
		}
	}
	return true
}

// Restore starts restoring in.SourceTable as of in.Time into a new table,
// after checking that the target is new and the time restorable. It does
// not wait; see Wait.
func (c *Client) Restore(ctx context.Context, in RestoreInput) (Restore, error) {
	if err := in.validate(); err != nil {
		return Restore{}, err
	}
	_, err := c.api.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(in.TargetTable)})
	var rnf *types.ResourceNotFoundException
	switch {
	case err == nil:
		return Restore{}, fmt.Errorf("restore %s: %w: %s (delete it, or choose another --to-table)", in.SourceTable, ErrTargetExists, in.TargetTable)
	case !errors.As(err, &rnf):
		return Restore{}, fmt.Errorf("restore %s: check target table %s: %w", in.SourceTable, in.TargetTable, err)
	}
	sd, err := c.api.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(in.SourceTable)})
	if err != nil {
		return Restore{}, wrapTableErr("restore: describe source table", in.SourceTable, err)
	}
	src := sd.Table
	st, err := c.Status(ctx, in.SourceTable)
	if err != nil {
		return Restore{}, fmt.Errorf("restore: %w", err)
	}
	if !st.Enabled {
		return Restore{}, fmt.Errorf("restore %s: %w on it (state %s); `rewind pitr enable --table %s` makes later restores possible, not earlier ones", in.SourceTable, ErrPITRDisabled, st.State, in.SourceTable)
	}
	if err := checkWindow(in, st); err != nil {
		return Restore{}, err
	}
	if in.BillingMode == string(types.BillingModeProvisioned) && billingModeOf(src) == string(types.BillingModePayPerRequest) && !in.NoIndexes && len(src.GlobalSecondaryIndexes) > 0 {
		return Restore{}, fmt.Errorf("restore %s: %w: the source is PAY_PER_REQUEST with %d global secondary indexes, and a PROVISIONED restore needs a throughput for each, which rewind does not set; add --no-indexes (the patch reads by key only) or keep the source's billing mode",
			in.SourceTable, ErrBillingMode, len(src.GlobalSecondaryIndexes))
	}
	req := &dynamodb.RestoreTableToPointInTimeInput{
		SourceTableName: aws.String(in.SourceTable),
		TargetTableName: aws.String(in.TargetTable),
		RestoreDateTime: aws.Time(in.Time),
	}
	if in.BillingMode != "" {
		req.BillingModeOverride = types.BillingMode(in.BillingMode)
	}
	if in.BillingMode == string(types.BillingModeProvisioned) {
		req.ProvisionedThroughputOverride = &types.ProvisionedThroughput{ReadCapacityUnits: aws.Int64(in.ReadCapacity), WriteCapacityUnits: aws.Int64(in.WriteCapacity)}
	}
	if in.NoIndexes {
		// Empty, not nil: an empty override list means "no indexes", a
		// missing one "the source's indexes".
		req.GlobalSecondaryIndexOverride = []types.GlobalSecondaryIndex{}
		req.LocalSecondaryIndexOverride = []types.LocalSecondaryIndex{}
	}
	started := time.Now()
	out, err := c.api.RestoreTableToPointInTime(ctx, req)
	if err != nil {
		return Restore{}, restoreErr(in, err)
	}
	cost := costOf(src, in)
	r := Restore{
		SourceTable: in.SourceTable, TargetTable: in.TargetTable, Time: in.Time, NoIndexes: in.NoIndexes, Started: started, Window: st,
		BillingMode: cost.BillingMode, Lacks: c.lacks(ctx, src, st, in.NoIndexes), NeverCopied: NeverCopied, Cost: cost,
		Cleanup: cleanupCommands(in.TargetTable, in.SourceTable),
	}
	if d := out.TableDescription; d != nil {
		r.Status = string(d.TableStatus)
		r.TargetARN = aws.ToString(d.TableArn)
	}
	return r, nil
}

// restoreLag is how far AWS keeps the latest restorable time behind now:
// "LatestRestorableDateTime is typically 5 minutes before the current
// time" (PointInTimeRecoveryDescription).
const restoreLag = "about 5 minutes"

// checkWindow refuses a restore time outside st's restorable window, before
// RestoreTableToPointInTime would (with InvalidRestoreTimeException).
func checkWindow(in RestoreInput, st Status) error {
	asked := in.Time.UTC().Format(time.RFC3339Nano)
	if st.EarliestRestorable == nil || st.LatestRestorable == nil {
		return fmt.Errorf("restore %s to %s: %w: DynamoDB reports no restorable window yet (PITR was just enabled); wait a few minutes", in.SourceTable, asked, ErrOutsideWindow)
	}
	earliest, latest := st.EarliestRestorable.UTC(), st.LatestRestorable.UTC()
	window := fmt.Sprintf("[%s, %s]", earliest.Format(time.RFC3339), latest.Format(time.RFC3339))
	switch {
	case in.Time.After(latest):
		wait := in.Time.Sub(latest).Truncate(time.Second) + time.Second
		return fmt.Errorf("restore %s to %s: %w %s: AWS keeps the latest restorable time %s behind now: latest is %s, you asked %s; wait %s or choose an earlier time",
			in.SourceTable, asked, ErrTooRecent, window, restoreLag, latest.Format(time.RFC3339Nano), asked, wait)
	case in.Time.Before(earliest):
		return fmt.Errorf("restore %s to %s: %w %s: point-in-time recovery keeps %d days and nothing from before it was enabled: earliest is %s, you asked %s; choose a time inside the window",
			in.SourceTable, asked, ErrTooOld, window, st.RecoveryPeriodInDays, earliest.Format(time.RFC3339Nano), asked)
	}
	return nil
}

// restoreErr explains the errors RestoreTableToPointInTime can still
// return after the checks (the state changed in between).
func restoreErr(in RestoreInput, err error) error {
	var (
		exists *types.TableAlreadyExistsException
		pitr   *types.PointInTimeRecoveryUnavailableException
		when   *types.InvalidRestoreTimeException
		tnf    *types.TableNotFoundException
		inUse  *types.TableInUseException
		limit  *types.LimitExceededException
	)
	prefix := fmt.Sprintf("restore %s to %s as %s", in.SourceTable, in.Time.UTC().Format(time.RFC3339), in.TargetTable)
	switch {
	case errors.As(err, &exists):
		return fmt.Errorf("%s: %w: %w", prefix, ErrTargetExists, err)
	case errors.As(err, &pitr):
		return fmt.Errorf("%s: %w: %w", prefix, ErrPITRDisabled, err)
	case errors.As(err, &when):
		return fmt.Errorf("%s: %w: %w", prefix, ErrOutsideWindow, err)
	case errors.As(err, &tnf):
		return fmt.Errorf("%s: %w: %w", prefix, ErrTableNotFound, err)
	case errors.As(err, &inUse):
		return fmt.Errorf("%s: the source table is being created, updated or deleted; retry when it is ACTIVE: %w", prefix, err)
	case errors.As(err, &limit):
		return fmt.Errorf("%s: too many restores or table operations at once in this account; retry shortly: %w", prefix, err)
	}
	return fmt.Errorf("%s: %w", prefix, err)
}

// Progress is one poll of Wait.
type Progress struct {
	Table   string        `json:"table"`
	Status  string        `json:"status"`
	Elapsed time.Duration `json:"elapsed"`
	// IndexesCreating counts global secondary indexes not yet ACTIVE.
	IndexesCreating int   `json:"indexesCreating"`
	ItemCount       int64 `json:"itemCount"`
	SizeBytes       int64 `json:"sizeBytes"`
	// Done is true on the last call, once the table is ready.
	Done bool `json:"done"`
}

// Report is the poll in the shape every long-running call reports: one
// table to make ready, its item count and the indexes still being
// created, and the table's status as the note.
func (p Progress) Report() rewind.Progress {
	r := rewind.Progress{
		Phase: "restore", Unit: "tables", Total: 1, Elapsed: p.Elapsed,
		Counts: []rewind.ProgressCount{{Name: "items", N: p.ItemCount}, {Name: "indexes creating", N: int64(p.IndexesCreating)}},
		Note:   p.Table + ": " + p.Status,
		Final:  p.Done,
	}
	if p.Done {
		r.Done = 1
	}
	return r
}

// WaitOptions configures Wait. The zero value uses the defaults.
type WaitOptions struct {
	// Timeout bounds the wait (default 2 h).
	Timeout time.Duration
	// Interval is the time between polls (default 10 s).
	Interval time.Duration
	// Since is when the restore started, for Elapsed (default: now).
	Since time.Time
	// Progress, when set, is called after every poll.
	Progress func(Progress)
}

// notFoundGrace is how long Wait accepts ResourceNotFound for a table it
// has not yet seen: right after the call, DescribeTable may lag.
const notFoundGrace = 30 * time.Second

// Wait polls DescribeTable until table is ACTIVE with its restore finished
// and its indexes ACTIVE, and returns the time since opts.Since. On
// timeout the restore goes on in AWS; the error says so.
func (c *Client) Wait(ctx context.Context, table string, opts WaitOptions) (time.Duration, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultWaitTimeout
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultPollInterval
	}
	if opts.Since.IsZero() {
		opts.Since = time.Now()
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	seen := false
	for {
		out, err := c.api.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
		elapsed := time.Since(opts.Since)
		var rnf *types.ResourceNotFoundException
		switch {
		case errors.As(err, &rnf) && seen:
			return elapsed, fmt.Errorf("wait for %s: the table disappeared while restoring (the restore failed or the table was deleted): %w", table, err)
		case errors.As(err, &rnf) && elapsed < notFoundGrace:
			// not visible yet
		case err != nil && ctx.Err() != nil:
			return elapsed, waitTimeout(ctx, table, opts.Timeout, err)
		case err != nil:
			return elapsed, fmt.Errorf("wait for %s: %w", table, err)
		default:
			seen = true
			p := progressOf(table, out.Table, elapsed)
			if opts.Progress != nil {
				opts.Progress(p)
			}
			if p.Done {
				return elapsed, nil
			}
		}
		t := time.NewTimer(opts.Interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return time.Since(opts.Since), waitTimeout(ctx, table, opts.Timeout, ctx.Err())
		case <-t.C:
		}
	}
}

func waitTimeout(ctx context.Context, table string, timeout time.Duration, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("wait for %s: not ready after %v; the restore goes on in AWS (check with `aws dynamodb describe-table --table-name %s`): %w", table, timeout, table, err)
	}
	return fmt.Errorf("wait for %s: %w", table, err)
}

func progressOf(table string, d *types.TableDescription, elapsed time.Duration) Progress {
	p := Progress{Table: table, Elapsed: elapsed}
	if d == nil {
		return p
	}
	p.Status = string(d.TableStatus)
	p.ItemCount = aws.ToInt64(d.ItemCount)
	p.SizeBytes = aws.ToInt64(d.TableSizeBytes)
	for _, g := range d.GlobalSecondaryIndexes {
		if g.IndexStatus != types.IndexStatusActive {
			p.IndexesCreating++
		}
	}
	restoring := d.RestoreSummary != nil && aws.ToBool(d.RestoreSummary.RestoreInProgress)
	p.Done = d.TableStatus == types.TableStatusActive && !restoring && p.IndexesCreating == 0
	return p
}
