package fakepitr_test

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ddbrewind/rewind/internal/fakepitr"
	"github.com/ddbrewind/rewind/internal/localaws"
)

func setup(t *testing.T) (*fakepitr.Server, *dynamodb.Client, fakepitr.DB) {
	t.Helper()
	env := localaws.DynamoDBForTest(t)
	srv, err := fakepitr.Start(t.Context(), fakepitr.Config{Upstream: env.Endpoint, CreatingFor: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	cfg, err := localaws.Config(t.Context(), srv.Endpoint, env.AccessKeyID)
	if err != nil {
		t.Fatal(err)
	}
	return srv, dynamodb.NewFromConfig(cfg), fakepitr.DB{AccessKeyID: env.AccessKeyID, Region: localaws.Region}
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
	w := dynamodb.NewTableExistsWaiter(c, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay = 50 * time.Millisecond
		o.MaxDelay = 100 * time.Millisecond
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String("dst")}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	sc, err := c.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String("dst")})
	if err != nil {
		t.Fatal(err)
	}
	if len(sc.Items) != 30 {
		t.Fatalf("restored %d items, want 30", len(sc.Items))
	}
	for _, it := range sc.Items {
		if v := it["v"].(*types.AttributeValueMemberS).Value; v != "old" {
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
	env := localaws.DynamoDBForTest(t)
	srv, err := fakepitr.Start(t.Context(), fakepitr.Config{Upstream: env.Endpoint, SnapshotEvery: 50 * time.Millisecond, CreatingFor: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cfg, err := localaws.Config(t.Context(), srv.Endpoint, env.AccessKeyID)
	if err != nil {
		t.Fatal(err)
	}
	c := dynamodb.NewFromConfig(cfg)
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
	w := dynamodb.NewTableExistsWaiter(c, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay = 50 * time.Millisecond
		o.MaxDelay = 100 * time.Millisecond
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String("dst")}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	sc, err := c.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String("dst")})
	if err != nil {
		t.Fatal(err)
	}
	if len(sc.Items) != 3 {
		t.Fatalf("restored %d items, want the 3 of the periodic snapshot", len(sc.Items))
	}
	for _, it := range sc.Items {
		if v := it["v"].(*types.AttributeValueMemberS).Value; v != "good" {
			t.Fatalf("restored v=%q, want good", v)
		}
	}
}
