package fakepitr_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/ddbrewind/rewind/internal/fakepitr"
	"github.com/ddbrewind/rewind/internal/localaws"
)

func setup(t *testing.T) (*fakepitr.Server, *dynamodb.Client, fakepitr.DB) {
	t.Helper()
	return setupWith(t, fakepitr.Config{CreatingFor: 200 * time.Millisecond, LatestRestorableLag: fakepitr.NoLag})
}

// setupWith starts DynamoDB Local behind a front configured by cfg (its
// Upstream filled in) and returns a client of the front.
func setupWith(t *testing.T, cfg fakepitr.Config) (*fakepitr.Server, *dynamodb.Client, fakepitr.DB) {
	t.Helper()
	env := localaws.DynamoDBForTest(t)
	cfg.Upstream = env.Endpoint
	srv, err := fakepitr.Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	acfg, err := localaws.Config(t.Context(), srv.Endpoint, env.AccessKeyID)
	if err != nil {
		t.Fatal(err)
	}
	return srv, dynamodb.NewFromConfig(acfg), fakepitr.DB{AccessKeyID: env.AccessKeyID, Region: localaws.Region}
}

// restoredValues waits for the restored table name to become ACTIVE and
// returns the "v" attribute of each of its items.
func restoredValues(t *testing.T, c *dynamodb.Client, name string) []string {
	t.Helper()
	w := dynamodb.NewTableExistsWaiter(c, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay, o.MaxDelay = 20*time.Millisecond, 100*time.Millisecond
	})
	if err := w.Wait(t.Context(), &dynamodb.DescribeTableInput{TableName: aws.String(name)}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	sc, err := c.Scan(t.Context(), &dynamodb.ScanInput{TableName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	var vs []string
	for _, it := range sc.Items {
		v, _ := it["v"].(*types.AttributeValueMemberS)
		if v == nil {
			t.Fatalf("restored item %v has no string v", it)
		}
		vs = append(vs, v.Value)
	}
	return vs
}

func createTable(t *testing.T, c *dynamodb.Client, name string) {
	t.Helper()
	_, err := c.CreateTable(t.Context(), &dynamodb.CreateTableInput{
		TableName:   aws.String(name),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String("sk"), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String("g"), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String("sk"), KeyType: types.KeyTypeRange},
		},
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{{
			IndexName:  aws.String("by-g"),
			KeySchema:  []types.KeySchemaElement{{AttributeName: aws.String("g"), KeyType: types.KeyTypeHash}},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeAll},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
}

func put(t *testing.T, c *dynamodb.Client, table string, n int, v string) {
	t.Helper()
	for i := range n {
		_, err := c.PutItem(t.Context(), &dynamodb.PutItemInput{TableName: aws.String(table), Item: map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: "k" + strconv.Itoa(i)},
			"sk": &types.AttributeValueMemberS{Value: "s"},
			"g":  &types.AttributeValueMemberS{Value: "g"},
			"v":  &types.AttributeValueMemberS{Value: v},
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestRestoreThroughRealClient(t *testing.T) {
	srv, c, db := setup(t)
	ctx := t.Context()
	createTable(t, c, "src")
	put(t, c, "src", 30, "old")

	// Proxied operations work; PITR off is reported, not UnknownOperation.
	d, err := c.DescribeContinuousBackups(ctx, &dynamodb.DescribeContinuousBackupsInput{TableName: aws.String("src")})
	if err != nil {
		t.Fatal(err)
	}
	if s := d.ContinuousBackupsDescription.PointInTimeRecoveryDescription.PointInTimeRecoveryStatus; s != types.PointInTimeRecoveryStatusDisabled {
		t.Fatalf("status before enable = %s", s)
	}
	var pue *types.PointInTimeRecoveryUnavailableException
	_, err = c.RestoreTableToPointInTime(ctx, &dynamodb.RestoreTableToPointInTimeInput{SourceTableName: aws.String("src"), TargetTableName: aws.String("dst"), UseLatestRestorableTime: aws.Bool(true)})
	if !errors.As(err, &pue) {
		t.Fatalf("restore without PITR: got %v, want PointInTimeRecoveryUnavailableException", err)
	}
	var tnf *types.TableNotFoundException
	if _, err := c.DescribeContinuousBackups(ctx, &dynamodb.DescribeContinuousBackupsInput{TableName: aws.String("nope")}); !errors.As(err, &tnf) {
		t.Fatalf("missing table: got %v, want TableNotFoundException", err)
	}

	u, err := c.UpdateContinuousBackups(ctx, &dynamodb.UpdateContinuousBackupsInput{
		TableName:                        aws.String("src"),
		PointInTimeRecoverySpecification: &types.PointInTimeRecoverySpecification{PointInTimeRecoveryEnabled: aws.Bool(true), RecoveryPeriodInDays: aws.Int32(7)},
	})
	if err != nil {
		t.Fatal(err)
	}
	pd := u.ContinuousBackupsDescription.PointInTimeRecoveryDescription
	if pd.PointInTimeRecoveryStatus != types.PointInTimeRecoveryStatusEnabled || aws.ToInt32(pd.RecoveryPeriodInDays) != 7 || pd.EarliestRestorableDateTime == nil {
		t.Fatalf("after enable: %+v", pd)
	}
	t1 := time.Now()
	time.Sleep(20 * time.Millisecond)
	put(t, c, "src", 30, "damaged")
	if err := srv.Snapshot(ctx, db, "src", time.Now()); err != nil {
		t.Fatal(err)
	}

	var irt *types.InvalidRestoreTimeException
	_, err = c.RestoreTableToPointInTime(ctx, &dynamodb.RestoreTableToPointInTimeInput{SourceTableName: aws.String("src"), TargetTableName: aws.String("dst"), RestoreDateTime: aws.Time(t1.Add(-time.Hour))})
	if !errors.As(err, &irt) {
		t.Fatalf("restore before the window: got %v, want InvalidRestoreTimeException", err)
	}
	var exists *types.TableAlreadyExistsException
	_, err = c.RestoreTableToPointInTime(ctx, &dynamodb.RestoreTableToPointInTimeInput{SourceTableName: aws.String("src"), TargetTableName: aws.String("src"), RestoreDateTime: aws.Time(t1)})
	if !errors.As(err, &exists) {
		t.Fatalf("restore onto the source: got %v, want TableAlreadyExistsException", err)
	}

	out, err := c.RestoreTableToPointInTime(ctx, &dynamodb.RestoreTableToPointInTimeInput{SourceTableName: aws.String("src"), TargetTableName: aws.String("dst"), RestoreDateTime: aws.Time(t1)})
	if err != nil {
		t.Fatal(err)
	}
	if out.TableDescription.TableStatus != types.TableStatusCreating || !aws.ToBool(out.TableDescription.RestoreSummary.RestoreInProgress) {
		t.Fatalf("restore answer: status %s, summary %+v", out.TableDescription.TableStatus, out.TableDescription.RestoreSummary)
	}
	if len(out.TableDescription.GlobalSecondaryIndexes) != 1 {
		t.Fatalf("restored table has %d GSIs, want the source's 1", len(out.TableDescription.GlobalSecondaryIndexes))
	}
	vs := restoredValues(t, c, "dst")
	if len(vs) != 30 {
		t.Fatalf("restored %d items, want 30", len(vs))
	}
	for _, v := range vs {
		if v != "old" {
			t.Fatalf("restored item has v=%q, want the value before t1", v)
		}
	}

	// Empty overrides: no indexes.
	_, err = c.RestoreTableToPointInTime(ctx, &dynamodb.RestoreTableToPointInTimeInput{
		SourceTableName: aws.String("src"), TargetTableName: aws.String("dst2"), UseLatestRestorableTime: aws.Bool(true),
		GlobalSecondaryIndexOverride: []types.GlobalSecondaryIndex{}, LocalSecondaryIndexOverride: []types.LocalSecondaryIndex{},
	})
	if err != nil {
		t.Fatal(err)
	}
	dt, err := c.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String("dst2")})
	if err != nil {
		t.Fatal(err)
	}
	if len(dt.Table.GlobalSecondaryIndexes) != 0 {
		t.Fatalf("restore with empty override kept %d GSIs", len(dt.Table.GlobalSecondaryIndexes))
	}
}

func TestPeriodicSnapshots(t *testing.T) {
	_, c, _ := setupWith(t, fakepitr.Config{SnapshotEvery: 50 * time.Millisecond, CreatingFor: time.Millisecond, LatestRestorableLag: fakepitr.NoLag})
	ctx := t.Context()
	createTable(t, c, "src")
	if _, err := c.UpdateContinuousBackups(ctx, &dynamodb.UpdateContinuousBackupsInput{
		TableName:                        aws.String("src"),
		PointInTimeRecoverySpecification: &types.PointInTimeRecoverySpecification{PointInTimeRecoveryEnabled: aws.Bool(true)},
	}); err != nil {
		t.Fatal(err)
	}
	put(t, c, "src", 3, "good")
	time.Sleep(200 * time.Millisecond) // a periodic snapshot sees "good"
	good := time.Now()
	put(t, c, "src", 3, "damaged")
	time.Sleep(100 * time.Millisecond)
	if _, err := c.RestoreTableToPointInTime(ctx, &dynamodb.RestoreTableToPointInTimeInput{SourceTableName: aws.String("src"), TargetTableName: aws.String("dst"), RestoreDateTime: aws.Time(good)}); err != nil {
		t.Fatal(err)
	}
	vs := restoredValues(t, c, "dst")
	if len(vs) != 3 {
		t.Fatalf("restored %d items, want the 3 of the periodic snapshot", len(vs))
	}
	for _, v := range vs {
		if v != "good" {
			t.Fatalf("restored v=%q, want good", v)
		}
	}
}

// TestLatestRestorableLag checks the window's lag behind now and the
// refusal of a restore inside it, with AWS's exception and message.
func TestLatestRestorableLag(t *testing.T) {
	const lag = 400 * time.Millisecond
	_, c, _ := setupWith(t, fakepitr.Config{CreatingFor: time.Millisecond, LatestRestorableLag: lag})
	ctx := t.Context()
	createTable(t, c, "src")
	put(t, c, "src", 3, "old")
	enabled := time.Now()
	if _, err := c.UpdateContinuousBackups(ctx, &dynamodb.UpdateContinuousBackupsInput{
		TableName:                        aws.String("src"),
		PointInTimeRecoverySpecification: &types.PointInTimeRecoverySpecification{PointInTimeRecoveryEnabled: aws.Bool(true)},
	}); err != nil {
		t.Fatal(err)
	}
	window := func() (time.Time, time.Time) {
		d, err := c.DescribeContinuousBackups(ctx, &dynamodb.DescribeContinuousBackupsInput{TableName: aws.String("src")})
		if err != nil {
			t.Fatal(err)
		}
		p := d.ContinuousBackupsDescription.PointInTimeRecoveryDescription
		return aws.ToTime(p.EarliestRestorableDateTime), aws.ToTime(p.LatestRestorableDateTime)
	}
	// Right after enabling, the window is the enabling moment only.
	if e, l := window(); !e.Equal(l) || e.Before(enabled.Add(-time.Second)) {
		t.Fatalf("window right after enabling: [%s, %s], want one moment at %s", e, l, enabled)
	}
	time.Sleep(2 * lag)
	asked := time.Now()
	e, l := window()
	if behind := asked.Sub(l); behind < lag-50*time.Millisecond || behind > lag+time.Second {
		t.Fatalf("latest restorable %s is %v behind now, want about %v", l, behind, lag)
	}
	var irt *types.InvalidRestoreTimeException
	_, err := c.RestoreTableToPointInTime(ctx, &dynamodb.RestoreTableToPointInTimeInput{SourceTableName: aws.String("src"), TargetTableName: aws.String("dst"), RestoreDateTime: aws.Time(asked)})
	if !errors.As(err, &irt) || !strings.Contains(aws.ToString(irt.Message), "RestoreDateTime must be between EarliestRestorableDateTime and LatestRestorableDateTime") {
		t.Fatalf("restore to now, inside the lag: got %v, want InvalidRestoreTimeException with AWS's message", err)
	}
	if lt, err := c.ListTables(ctx, &dynamodb.ListTablesInput{}); err != nil || len(lt.TableNames) != 1 {
		t.Fatalf("tables after the refusal: %v %v", lt, err)
	}
	// The earliest restorable time, as DescribeContinuousBackups gives
	// it (in milliseconds), and the latest restorable time are accepted.
	for _, at := range []time.Time{e, l} {
		name := "dst-" + strconv.FormatInt(at.UnixMilli(), 10)
		if _, err := c.RestoreTableToPointInTime(ctx, &dynamodb.RestoreTableToPointInTimeInput{SourceTableName: aws.String("src"), TargetTableName: aws.String(name), RestoreDateTime: aws.Time(at)}); err != nil {
			t.Fatalf("restore to %s inside [%s, %s]: %v", at, e, l, err)
		}
		vs := restoredValues(t, c, name)
		if len(vs) != 3 {
			t.Errorf("restore to %s: %d items, want the 3 of the snapshot taken when PITR was enabled", at, len(vs))
		}
	}
}

// TestRestoredTableSettings checks what a restore carries over, as AWS
// documents it: indexes and billing mode (or their overrides), and not the
// stream, TTL or PITR (DynamoDB Local has no tagging at all).
func TestRestoredTableSettings(t *testing.T) {
	_, c, _ := setup(t)
	ctx := t.Context()
	createTable(t, c, "src")
	put(t, c, "src", 3, "old")
	src, err := c.UpdateTable(ctx, &dynamodb.UpdateTableInput{TableName: aws.String("src"),
		StreamSpecification: &types.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: types.StreamViewTypeNewAndOldImages}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{TableName: aws.String("src"),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{Enabled: aws.Bool(true), AttributeName: aws.String("expires")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateContinuousBackups(ctx, &dynamodb.UpdateContinuousBackupsInput{
		TableName:                        aws.String("src"),
		PointInTimeRecoverySpecification: &types.PointInTimeRecoverySpecification{PointInTimeRecoveryEnabled: aws.Bool(true)},
	}); err != nil {
		t.Fatal(err)
	}
	var ve *smithy.GenericAPIError
	_, err = c.RestoreTableToPointInTime(ctx, &dynamodb.RestoreTableToPointInTimeInput{SourceTableName: aws.String("src"), TargetTableName: aws.String("bad"),
		UseLatestRestorableTime: aws.Bool(true), BillingModeOverride: types.BillingMode("FREE")})
	if !errors.As(err, &ve) || ve.Code != "ValidationException" {
		t.Fatalf("billing mode FREE: got %v, want ValidationException", err)
	}
	out, err := c.RestoreTableToPointInTime(ctx, &dynamodb.RestoreTableToPointInTimeInput{SourceTableName: aws.String("src"), TargetTableName: aws.String("dst"),
		UseLatestRestorableTime: aws.Bool(true), BillingModeOverride: types.BillingModeProvisioned,
		ProvisionedThroughputOverride: &types.ProvisionedThroughput{ReadCapacityUnits: aws.Int64(7), WriteCapacityUnits: aws.Int64(3)}})
	if err != nil {
		t.Fatal(err)
	}
	d := out.TableDescription
	// No BillingModeSummary means PROVISIONED, as in DynamoDB.
	if d.BillingModeSummary != nil && d.BillingModeSummary.BillingMode != types.BillingModeProvisioned ||
		aws.ToInt64(d.ProvisionedThroughput.ReadCapacityUnits) != 7 || aws.ToInt64(d.ProvisionedThroughput.WriteCapacityUnits) != 3 {
		t.Fatalf("restored billing %+v throughput %+v, want PROVISIONED 7/3", d.BillingModeSummary, d.ProvisionedThroughput)
	}
	if d.StreamSpecification != nil && aws.ToBool(d.StreamSpecification.StreamEnabled) || d.LatestStreamArn != nil {
		t.Errorf("restored table has a stream: %+v", d.StreamSpecification)
	}
	if d.RestoreSummary == nil || aws.ToString(d.RestoreSummary.SourceTableArn) != aws.ToString(src.TableDescription.TableArn) {
		t.Errorf("restore summary %+v, want the source's ARN", d.RestoreSummary)
	}
	ttl, err := c.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String("dst")})
	if err != nil {
		t.Fatal(err)
	}
	if s := ttl.TimeToLiveDescription.TimeToLiveStatus; s != types.TimeToLiveStatusDisabled {
		t.Errorf("restored table's TTL is %s, want DISABLED", s)
	}
	cb, err := c.DescribeContinuousBackups(ctx, &dynamodb.DescribeContinuousBackupsInput{TableName: aws.String("dst")})
	if err != nil {
		t.Fatal(err)
	}
	if s := cb.ContinuousBackupsDescription.PointInTimeRecoveryDescription.PointInTimeRecoveryStatus; s != types.PointInTimeRecoveryStatusDisabled {
		t.Errorf("restored table's PITR is %s, want DISABLED", s)
	}
}
