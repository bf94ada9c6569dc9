package pitr_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ddbrewind/rewind/internal/fakepitr"
	"github.com/ddbrewind/rewind/internal/localaws"
	"github.com/ddbrewind/rewind/recover/pitr"
)

type stack struct {
	front *fakepitr.Server
	ddb   *dynamodb.Client
	db    fakepitr.DB
	pitr  *pitr.Client
}

func setup(t *testing.T, creatingFor time.Duration) *stack {
	t.Helper()
	env := localaws.DynamoDBForTest(t)
	front, err := fakepitr.Start(t.Context(), fakepitr.Config{Upstream: env.Endpoint, CreatingFor: creatingFor, LatestRestorableLag: fakepitr.NoLag})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { front.Close() })
	cfg, err := localaws.Config(t.Context(), front.Endpoint, env.AccessKeyID)
	if err != nil {
		t.Fatal(err)
	}
	c := dynamodb.NewFromConfig(cfg)
	return &stack{front: front, ddb: c, db: fakepitr.DB{AccessKeyID: env.AccessKeyID, Region: localaws.Region}, pitr: pitr.New(c)}
}

// table creates "orders" (pk, with GSI by-customer) holding n items whose
// attribute v is value.
func (s *stack) table(t *testing.T, n int, value string) {
	t.Helper()
	_, err := s.ddb.CreateTable(t.Context(), &dynamodb.CreateTableInput{
		TableName:   aws.String("orders"),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String("customer"), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{{
			IndexName:  aws.String("by-customer"),
			KeySchema:  []types.KeySchemaElement{{AttributeName: aws.String("customer"), KeyType: types.KeyTypeHash}},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	s.write(t, n, value)
}

func (s *stack) write(t *testing.T, n int, value string) {
	t.Helper()
	for i := range n {
		_, err := s.ddb.PutItem(t.Context(), &dynamodb.PutItemInput{TableName: aws.String("orders"), Item: map[string]types.AttributeValue{
			"pk":       &types.AttributeValueMemberS{Value: "o" + strconv.Itoa(i)},
			"customer": &types.AttributeValueMemberS{Value: "c" + strconv.Itoa(i%3)},
			"v":        &types.AttributeValueMemberS{Value: value},
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestEnableStatus(t *testing.T) {
	s := setup(t, 0)
	s.table(t, 1, "x")
	ctx := t.Context()
	st, err := s.pitr.Status(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if st.Enabled || st.State != "DISABLED" || st.Window(time.Now()) {
		t.Fatalf("before enable: %+v", st)
	}
	if _, err := s.pitr.Enable(ctx, "orders", 36); err == nil {
		t.Fatal("36 recovery days accepted")
	}
	before := time.Now()
	st, err = s.pitr.Enable(ctx, "orders", 7)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Enabled || st.RecoveryPeriodInDays != 7 || st.EarliestRestorable == nil {
		t.Fatalf("after enable: %+v", st)
	}
	if e := *st.EarliestRestorable; e.Before(before.Add(-time.Second)) || e.After(time.Now()) {
		t.Errorf("earliest restorable %v is not the enable time", e)
	}
	st, err = s.pitr.Enable(ctx, "orders", 0)
	if err != nil || st.RecoveryPeriodInDays != pitr.DefaultRecoveryDays {
		t.Fatalf("enable with default period: %+v, %v", st, err)
	}
	if _, err := s.pitr.Status(ctx, "missing"); !errors.Is(err, pitr.ErrTableNotFound) {
		t.Fatalf("status of a missing table: got %v, want ErrTableNotFound", err)
	}
}

func TestRestoreAndWait(t *testing.T) {
	s := setup(t, 300*time.Millisecond)
	ctx := t.Context()
	s.table(t, 20, "good")
	if _, err := s.pitr.Enable(ctx, "orders", 1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	beforeDeploy := time.Now()
	time.Sleep(20 * time.Millisecond)
	s.write(t, 20, "damaged")
	if err := s.front.Snapshot(ctx, s.db, "orders", time.Now()); err != nil {
		t.Fatal(err)
	}

	r, err := s.pitr.Restore(ctx, pitr.RestoreInput{SourceTable: "orders", Time: beforeDeploy})
	if err != nil {
		t.Fatal(err)
	}
	want := "orders-rewind-" + beforeDeploy.UTC().Format("20060102T150405")
	if r.TargetTable != want || r.Status != "CREATING" {
		t.Fatalf("restore: target %q status %q, want %q CREATING", r.TargetTable, r.Status, want)
	}
	var mu sync.Mutex
	var polls []pitr.Progress
	elapsed, err := s.pitr.Wait(ctx, r.TargetTable, pitr.WaitOptions{Interval: 50 * time.Millisecond, Since: r.Started, Progress: func(p pitr.Progress) {
		mu.Lock()
		defer mu.Unlock()
		polls = append(polls, p)
	}})
	if err != nil {
		t.Fatal(err)
	}
	if elapsed < 300*time.Millisecond {
		t.Errorf("elapsed %v, shorter than the fake's CREATING time", elapsed)
	}
	if len(polls) < 2 || polls[0].Status != "CREATING" || polls[0].Done || !polls[len(polls)-1].Done || polls[len(polls)-1].Status != "ACTIVE" {
		t.Fatalf("progress: %+v", polls)
	}
	sc, err := s.ddb.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(r.TargetTable)})
	if err != nil {
		t.Fatal(err)
	}
	if len(sc.Items) != 20 {
		t.Fatalf("restored %d items, want 20", len(sc.Items))
	}
	for _, it := range sc.Items {
		if v := it["v"].(*types.AttributeValueMemberS).Value; v != "good" {
			t.Fatalf("restored v=%q, want the pre-deploy value", v)
		}
	}
	d, err := s.ddb.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(r.TargetTable)})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Table.GlobalSecondaryIndexes) != 1 {
		t.Errorf("restored table has %d GSIs, want 1", len(d.Table.GlobalSecondaryIndexes))
	}

	// The same target again: refused before calling the API.
	if _, err := s.pitr.Restore(ctx, pitr.RestoreInput{SourceTable: "orders", Time: beforeDeploy}); !errors.Is(err, pitr.ErrTargetExists) {
		t.Fatalf("second restore to the same target: got %v, want ErrTargetExists", err)
	}

	// Without indexes.
	r2, err := s.pitr.Restore(ctx, pitr.RestoreInput{SourceTable: "orders", Time: beforeDeploy, TargetTable: "orders-noidx", NoIndexes: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.pitr.Wait(ctx, r2.TargetTable, pitr.WaitOptions{Interval: 50 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	d, err = s.ddb.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String("orders-noidx")})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Table.GlobalSecondaryIndexes)+len(d.Table.LocalSecondaryIndexes) != 0 {
		t.Errorf("--no-indexes restore has %d GSIs", len(d.Table.GlobalSecondaryIndexes))
	}
}

func TestRestoreRefusals(t *testing.T) {
	s := setup(t, 0)
	ctx := t.Context()
	s.table(t, 1, "x")
	if _, err := s.pitr.Restore(ctx, pitr.RestoreInput{SourceTable: "orders", Time: time.Now()}); !errors.Is(err, pitr.ErrPITRDisabled) {
		t.Fatalf("restore without PITR: got %v, want ErrPITRDisabled", err)
	}
	if _, err := s.pitr.Enable(ctx, "orders", 1); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		in   pitr.RestoreInput
		want error
	}{
		{"in place", pitr.RestoreInput{SourceTable: "orders", Time: time.Now(), TargetTable: "orders"}, pitr.ErrInPlace},
		{"before the window", pitr.RestoreInput{SourceTable: "orders", Time: time.Now().Add(-time.Hour)}, pitr.ErrOutsideWindow},
		{"in the future", pitr.RestoreInput{SourceTable: "orders", Time: time.Now().Add(time.Hour)}, pitr.ErrOutsideWindow},
		{"missing source", pitr.RestoreInput{SourceTable: "nope", Time: time.Now()}, pitr.ErrTableNotFound},
	} {
		_, err := s.pitr.Restore(ctx, tc.in)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := s.pitr.Restore(ctx, pitr.RestoreInput{SourceTable: "orders", Time: time.Now(), TargetTable: "a b"}); err == nil || !strings.Contains(err.Error(), "valid DynamoDB table name") {
		t.Errorf("bad target name: %v", err)
	}
	// Nothing was created by the refusals.
	lt, err := s.ddb.ListTables(ctx, &dynamodb.ListTablesInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(lt.TableNames) != 1 {
		t.Errorf("tables after refusals: %v", lt.TableNames)
	}
}

func TestWaitTimeout(t *testing.T) {
	s := setup(t, time.Minute)
	ctx := t.Context()
	s.table(t, 1, "x")
	if _, err := s.pitr.Enable(ctx, "orders", 1); err != nil {
		t.Fatal(err)
	}
	r, err := s.pitr.Restore(ctx, pitr.RestoreInput{SourceTable: "orders", Time: time.Now(), TargetTable: "slow"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.pitr.Wait(ctx, r.TargetTable, pitr.WaitOptions{Interval: 50 * time.Millisecond, Timeout: 300 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "not ready after") {
		t.Fatalf("got %v, want a timeout", err)
	}
}

// errAPI answers the checks as a healthy, restorable table would, and
// fails the restore call itself, as when the window moves between check
// and call.
type errAPI struct {
	pitr.API
	restoreErr error
}

func (e errAPI) DescribeTable(_ context.Context, in *dynamodb.DescribeTableInput, _ ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	if aws.ToString(in.TableName) == "orders" {
		return &dynamodb.DescribeTableOutput{Table: &types.TableDescription{TableName: in.TableName, TableStatus: types.TableStatusActive}}, nil
	}
	return nil, &types.ResourceNotFoundException{Message: aws.String("not found")}
}

func (e errAPI) DescribeTimeToLive(context.Context, *dynamodb.DescribeTimeToLiveInput, ...func(*dynamodb.Options)) (*dynamodb.DescribeTimeToLiveOutput, error) {
	return &dynamodb.DescribeTimeToLiveOutput{TimeToLiveDescription: &types.TimeToLiveDescription{TimeToLiveStatus: types.TimeToLiveStatusDisabled}}, nil
}

func (e errAPI) DescribeContinuousBackups(context.Context, *dynamodb.DescribeContinuousBackupsInput, ...func(*dynamodb.Options)) (*dynamodb.DescribeContinuousBackupsOutput, error) {
	now := time.Now()
	return &dynamodb.DescribeContinuousBackupsOutput{ContinuousBackupsDescription: &types.ContinuousBackupsDescription{
		PointInTimeRecoveryDescription: &types.PointInTimeRecoveryDescription{
			PointInTimeRecoveryStatus:  types.PointInTimeRecoveryStatusEnabled,
			EarliestRestorableDateTime: aws.Time(now.Add(-time.Hour)),
			LatestRestorableDateTime:   aws.Time(now),
		},
	}}, nil
}

func (e errAPI) RestoreTableToPointInTime(context.Context, *dynamodb.RestoreTableToPointInTimeInput, ...func(*dynamodb.Options)) (*dynamodb.RestoreTableToPointInTimeOutput, error) {
	return nil, e.restoreErr
}

func TestRestoreAPIErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want error
	}{
		{&types.InvalidRestoreTimeException{Message: aws.String("x")}, pitr.ErrOutsideWindow},
		{&types.TableAlreadyExistsException{Message: aws.String("x")}, pitr.ErrTargetExists},
		{&types.PointInTimeRecoveryUnavailableException{Message: aws.String("x")}, pitr.ErrPITRDisabled},
		{&types.TableNotFoundException{Message: aws.String("x")}, pitr.ErrTableNotFound},
	} {
		c := pitr.New(errAPI{restoreErr: tc.err})
		_, err := c.Restore(t.Context(), pitr.RestoreInput{SourceTable: "orders", Time: time.Now().Add(-time.Minute)})
		if !errors.Is(err, tc.want) || !errors.As(err, new(interface{ ErrorCode() string })) {
			t.Errorf("%T: got %v, want %v wrapping the API error", tc.err, err, tc.want)
		}
	}
}
