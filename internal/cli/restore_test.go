package cli

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ddbrewind/rewind/internal/fakepitr"
	"github.com/ddbrewind/rewind/internal/localaws"
)

// TestPITRRestoreCLI runs the restore step of the runbook against DynamoDB
// Local behind the PITR front.
func TestPITRRestoreCLI(t *testing.T) {
	ddb := localaws.DynamoDBForTest(t)
	front, err := fakepitr.Start(t.Context(), fakepitr.Config{Upstream: ddb.Endpoint, CreatingFor: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { front.Close() })
	recoverEnv(t, front.Endpoint, ddb.AccessKeyID)
	cfg, err := localaws.Config(t.Context(), front.Endpoint, ddb.AccessKeyID)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Region = "eu-west-1" // the region the CLI signs with: same database
	c := dynamodb.NewFromConfig(cfg)
	ctx := t.Context()
	if _, err := c.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String("orders"),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
	}); err != nil {
		t.Fatal(err)
	}
	write := func(v string) {
		for i := range 5 {
			if _, err := c.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("orders"), Item: map[string]types.AttributeValue{
				"pk": &types.AttributeValueMemberS{Value: "o" + strconv.Itoa(i)},
				"v":  &types.AttributeValueMemberS{Value: v},
			}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	write("good")

	code, objs, stderr := runRecoverCLI(t, "pitr", "status", "--table", "orders")
	if code != 0 || objs[0]["enabled"] != false || !strings.Contains(stderr, "rewind pitr enable --table orders") {
		t.Fatalf("pitr status: exit %d %v\n%s", code, objs, stderr)
	}
	code, _, stderr = runRecoverCLI(t, "restore", "--table", "orders", "--time", "now")
	if code != exitError || !strings.Contains(stderr, "point-in-time recovery is not enabled") {
		t.Fatalf("restore without PITR: exit %d\n%s", code, stderr)
	}
	code, objs, stderr = runRecoverCLI(t, "pitr", "enable", "--table", "orders", "--recovery-days", "7")
	if code != 0 || objs[0]["enabled"] != true || objs[0]["recoveryPeriodInDays"] != 7.0 || !strings.Contains(stderr, "ENABLED, 7-day period; restorable from") {
		t.Fatalf("pitr enable: exit %d %v\n%s", code, objs, stderr)
	}
	time.Sleep(10 * time.Millisecond)
	beforeDeploy := time.Now()
	time.Sleep(10 * time.Millisecond)
	write("damaged")
	if err := front.Snapshot(ctx, fakepitr.DB{AccessKeyID: ddb.AccessKeyID, Region: "eu-west-1"}, "orders", time.Now()); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--table", "orders", "--time", "-1h"}, exitError, "outside the restorable window"},
		{[]string{"--table", "orders", "--time", "now", "--to-table", "orders"}, exitError, "restore target is the source table"},
		{[]string{"--table", "orders"}, exitUsage, "--time is required"},
		{[]string{"--time", "now"}, exitUsage, "--table is required"},
		{[]string{"--table", "orders", "--time", "2025-01-01T00:00:00"}, exitUsage, "no zone"},
	} {
		code, _, stderr := runRecoverCLI(t, append([]string{"restore"}, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("restore %v: exit %d, want %d with %q\n%s", tc.args, code, tc.code, tc.want, stderr)
		}
	}

	code, objs, stderr = runRecoverCLI(t, "restore", "--table", "orders", "--time", beforeDeploy.Format(time.RFC3339Nano),
		"--to-table", "orders-restored", "--no-indexes", "--wait", "--poll", "50ms", "--timeout", "30s", "--progress", "40ms")
	if code != 0 || len(objs) != 2 || objs[0]["kind"] != "restore" || objs[1]["kind"] != "restored" || objs[0]["noIndexes"] != true {
		t.Fatalf("restore --wait: exit %d %v\n%s", code, objs, stderr)
	}
	t.Log(stderr)
	if !strings.Contains(stderr, "restore: 0/1 tables (0.0%)") || !strings.Contains(stderr, "orders-restored: CREATING") || !strings.Contains(stderr, "new table orders-restored is ACTIVE") ||
		!strings.Contains(stderr, "next: rewind patch --keys impacted.jsonl --from orders-restored --to orders") {
		t.Fatalf("restore --wait stderr:\n%s", stderr)
	}
	if s, _ := objs[1]["elapsedSeconds"].(float64); s < 0.2 {
		t.Errorf("elapsed %v s, shorter than the CREATING time", s)
	}
	sc, err := c.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String("orders-restored")})
	if err != nil {
		t.Fatal(err)
	}
	if len(sc.Items) != 5 {
		t.Fatalf("restored %d items, want 5", len(sc.Items))
	}
	for _, it := range sc.Items {
		if v := it["v"].(*types.AttributeValueMemberS).Value; v != "good" {
			t.Fatalf("restored v=%q, want good", v)
		}
	}
	// The target now exists: a second run is refused.
	code, _, stderr = runRecoverCLI(t, "restore", "--table", "orders", "--time", beforeDeploy.Format(time.RFC3339Nano), "--to-table", "orders-restored")
	if code != exitError || !strings.Contains(stderr, "already exists") {
		t.Fatalf("second restore: exit %d\n%s", code, stderr)
	}
}
