package fakepitr_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer/export"
	"github.com/ddbrewind/rewind/internal/fakepitr"
	"github.com/ddbrewind/rewind/internal/localaws"
)

func setupExport(t *testing.T) (*fakepitr.Server, *dynamodb.Client, fakepitr.DB, *localaws.S3Env) {
	t.Helper()
	env := localaws.DynamoDBForTest(t)
	s3env := localaws.S3ForTest(t)
	srv, err := fakepitr.Start(t.Context(), fakepitr.Config{Upstream: env.Endpoint, S3: s3env.Client, ExportingFor: 100 * time.Millisecond, LatestRestorableLag: fakepitr.NoLag})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	cfg, err := localaws.Config(t.Context(), srv.Endpoint, env.AccessKeyID)
	if err != nil {
		t.Fatal(err)
	}
	return srv, dynamodb.NewFromConfig(cfg), fakepitr.DB{AccessKeyID: env.AccessKeyID, Region: localaws.Region}, s3env
}

func item(pk, v string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: pk}, "sk": &types.AttributeValueMemberS{Value: "s"},
		"g": &types.AttributeValueMemberS{Value: "g"}, "v": &types.AttributeValueMemberS{Value: v},
	}
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func TestIncrementalExport(t *testing.T) {
	srv, c, db, s3env := setupExport(t)
	ctx := t.Context()
	createTable(t, c, "orders")
	mustPut := func(pk, v string) {
		t.Helper()
		if _, err := c.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("orders"), Item: item(pk, v)}); err != nil {
			t.Fatal(err)
		}
	}
	mustDelete := func(pk string) {
		t.Helper()
		if _, err := c.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String("orders"), Key: map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: pk}, "sk": &types.AttributeValueMemberS{Value: "s"},
		}}); err != nil {
			t.Fatal(err)
		}
	}
	snap := func(at time.Time) {
		t.Helper()
		if err := srv.Snapshot(ctx, db, "orders", at); err != nil {
			t.Fatal(err)
		}
	}
	for _, pk := range []string{"a", "b", "c", "unchanged"} {
		mustPut(pk, "1")
	}
	d, err := c.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String("orders")})
	if err != nil {
		t.Fatal(err)
	}
	arn := d.Table.TableArn
	exportIn := func(from, to time.Time, token string) *dynamodb.ExportTableToPointInTimeInput {
		return &dynamodb.ExportTableToPointInTimeInput{
			TableArn: arn, S3Bucket: aws.String(s3env.Bucket), S3Prefix: aws.String("incident"),
			ExportType: types.ExportTypeIncrementalExport, ExportFormat: types.ExportFormatDynamodbJson,
			IncrementalExportSpecification: &types.IncrementalExportSpecification{
				ExportFromTime: aws.Time(from), ExportToTime: aws.Time(to), ExportViewType: types.ExportViewTypeNewAndOldImages,
			},
			ClientToken: aws.String(token),
		}
	}
	now := time.Now()
	if _, err := c.ExportTableToPointInTime(ctx, exportIn(now.Add(-time.Hour), now, "t0")); apiCode(err) != "PointInTimeRecoveryUnavailableException" {
		t.Fatalf("export without PITR: %v", err)
	}
	if _, err := c.UpdateContinuousBackups(ctx, &dynamodb.UpdateContinuousBackupsInput{
		TableName:                        aws.String("orders"),
		PointInTimeRecoverySpecification: &types.PointInTimeRecoverySpecification{PointInTimeRecoveryEnabled: aws.Bool(true)},
	}); err != nil {
		t.Fatal(err)
	}
	// History from two hours ago, with the state as it is now.
	enabled := time.Now()
	snap(enabled.Add(-2 * time.Hour))

	// The window's changes, snapshots in between: a modified, b deleted, d
	// inserted, e inserted then deleted, c changed and changed back.
	mustPut("a", "2")
	mustDelete("b")
	mustPut("d", "1")
	mustPut("e", "1")
	mustPut("c", "2")
	snap(time.Now())
	mustDelete("e")
	mustPut("a", "3")
	mustPut("c", "1")
	snap(time.Now())
	changed := time.Now()
	time.Sleep(5 * time.Millisecond)
	from, to := enabled.Add(-2*time.Hour), time.Now()

	for _, tc := range []struct {
		name     string
		from, to time.Time
		code     string
	}{
		{"14 minutes", to.Add(-14 * time.Minute), to, "ValidationException"},
		{"25 hours", to.Add(-25 * time.Hour), to, "ValidationException"},
		{"before the earliest restorable time", from.Add(-time.Minute), to.Add(-time.Minute), "InvalidExportTimeException"},
		{"in the future", from.Add(time.Hour), to.Add(time.Hour), "InvalidExportTimeException"},
	} {
		if _, err := c.ExportTableToPointInTime(ctx, exportIn(tc.from, tc.to, tc.name)); apiCode(err) != tc.code {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
		}
	}

	out, err := c.ExportTableToPointInTime(ctx, exportIn(from, to, "tok"))
	if err != nil {
		t.Fatal(err)
	}
	ed := out.ExportDescription
	if ed.ExportStatus != types.ExportStatusInProgress || !strings.HasPrefix(*ed.ExportArn, *arn+"/export/") || ed.ExportType != types.ExportTypeIncrementalExport {
		t.Fatalf("started export %+v", ed)
	}
	again, err := c.ExportTableToPointInTime(ctx, exportIn(from, to, "tok"))
	if err != nil || *again.ExportDescription.ExportArn != *ed.ExportArn {
		t.Fatalf("same token: %v, %v; want the same export", again, err)
	}
	// The SDK decodes the error into its modelled type only when the
	// name is one of the operation's errors.
	var conflict *types.ExportConflictException
	if _, err := c.ExportTableToPointInTime(ctx, exportIn(from, to.Add(-time.Second), "tok")); !errors.As(err, &conflict) {
		t.Errorf("same token, other window: %v, want an ExportConflictException", err)
	}
	var done *types.ExportDescription
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		d, err := c.DescribeExport(ctx, &dynamodb.DescribeExportInput{ExportArn: ed.ExportArn})
		if err != nil {
			t.Fatal(err)
		}
		if d.ExportDescription.ExportStatus != types.ExportStatusInProgress {
			done = d.ExportDescription
			break
		}
	}
	if done == nil || done.ExportStatus != types.ExportStatusCompleted || aws.ToInt64(done.ItemCount) != 3 ||
		!strings.HasSuffix(aws.ToString(done.ExportManifest), "/manifest-summary.json") {
		t.Fatalf("export ended as %+v", done)
	}
	list, err := c.ListExports(ctx, &dynamodb.ListExportsInput{TableArn: arn})
	if err != nil || len(list.ExportSummaries) != 1 || *list.ExportSummaries[0].ExportArn != *ed.ExportArn {
		t.Errorf("ListExports: %+v, %v", list, err)
	}
	if _, err := c.DescribeExport(ctx, &dynamodb.DescribeExportInput{ExportArn: aws.String(*arn + "/export/nope")}); apiCode(err) != "ExportNotFoundException" {
		t.Errorf("DescribeExport of an unknown export: %v", err)
	}

	// What it wrote reads as the documented format.
	id := (*ed.ExportArn)[strings.LastIndex(*ed.ExportArn, "/")+1:]
	exp, err := export.Open(ctx, "s3://"+s3env.Bucket+"/incident/AWSDynamoDB/"+id+"/", export.Config{S3: s3env.Client})
	if err != nil {
		t.Fatal(err)
	}
	if len(exp.Files) != 3 || !exp.From.Equal(from.Truncate(time.Millisecond)) || exp.Table != "orders" {
		t.Errorf("export: %d files, from %s, table %s", len(exp.Files), exp.From, exp.Table)
	}
	got := map[string]*rewind.ChangeEvent{}
	for ev, err := range exp.Events(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		got[ev.Keys[0].Value] = ev
	}
	var pks []string
	for pk := range got {
		pks = append(pks, pk)
	}
	slices.Sort(pks)
	if strings.Join(pks, ",") != "a,b,d" {
		t.Fatalf("exported items %v, want a, b, d", pks)
	}
	if a := got["a"]; a.Action != rewind.ActionModify || !strings.Contains(string(a.OldImage), `"v":{"S":"1"}`) || !strings.Contains(string(a.NewImage), `"v":{"S":"3"}`) ||
		a.Time.Before(enabled) || a.Time.After(changed) {
		t.Errorf("a: %s %s -> %s at %s", a.Action, a.OldImage, a.NewImage, a.Time)
	}
	if b := got["b"]; b.Action != rewind.ActionRemove || b.NewImage != nil {
		t.Errorf("b: %s", b.Action)
	}
	if d := got["d"]; d.Action != rewind.ActionInsert || d.OldImage != nil {
		t.Errorf("d: %s", d.Action)
	}
}
