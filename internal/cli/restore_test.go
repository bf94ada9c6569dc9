package cli

import (
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/internal/fakepitr"
	"github.com/ddbrewind/rewind/internal/localaws"
	"github.com/ddbrewind/rewind/recover/patch/patchtest"
)

// TestPITRRestoreCLI runs the restore step of the runbook against DynamoDB
// Local behind the PITR front.
func TestPITRRestoreCLI(t *testing.T) {
	front, c, ddb := pitrFront(t, fakepitr.Config{CreatingFor: 200 * time.Millisecond, LatestRestorableLag: fakepitr.NoLag})
	recoverEnv(t, front.Endpoint, ddb.AccessKeyID)
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

// honestStack is DynamoDB Local behind the PITR front with AWS's lag of
// the latest restorable time (five minutes), an "orders" table with a
// stream, TTL on "expires", a GSI and PITR on, and the CLI pointed at it.
func honestStack(t *testing.T) (*dynamodb.Client, string) {
	t.Helper()
	front, c, ddb := pitrFront(t, fakepitr.Config{CreatingFor: 100 * time.Millisecond})
	recoverEnv(t, front.Endpoint, ddb.AccessKeyID)
	ctx := t.Context()
	out, err := c.CreateTable(ctx, &dynamodb.CreateTableInput{
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
		StreamSpecification: &types.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: types.StreamViewTypeNewAndOldImages},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{TableName: aws.String("orders"),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{Enabled: aws.Bool(true), AttributeName: aws.String("expires")}}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := c.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("orders"), Item: map[string]types.AttributeValue{
			"pk":       &types.AttributeValueMemberS{Value: "o" + strconv.Itoa(i)},
			"customer": &types.AttributeValueMemberS{Value: "c" + strconv.Itoa(i%2)},
			"v":        &types.AttributeValueMemberS{Value: "good"},
		}}); err != nil {
			t.Fatal(err)
		}
	}
	if code, _, stderr := runRecoverCLI(t, "pitr", "enable", "--table", "orders"); code != exitOK {
		t.Fatalf("pitr enable: exit %d\n%s", code, stderr)
	}
	return c, aws.ToString(out.TableDescription.TableArn)
}

func tableNames(t *testing.T, c *dynamodb.Client) []string {
	t.Helper()
	out, err := c.ListTables(t.Context(), &dynamodb.ListTablesInput{})
	if err != nil {
		t.Fatal(err)
	}
	return out.TableNames
}

func scanAll(t *testing.T, c *dynamodb.Client, table string) []map[string]types.AttributeValue {
	t.Helper()
	out, err := c.Scan(t.Context(), &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(out.Items, func(a, b map[string]types.AttributeValue) int {
		return strings.Compare(a["pk"].(*types.AttributeValueMemberS).Value, b["pk"].(*types.AttributeValueMemberS).Value)
	})
	return out.Items
}

// TestRestoreWindowRefusalsCLI: a time inside AWS's lag, or before PITR was
// enabled, is refused before RestoreTableToPointInTime, with the window
// and what to do; nothing is restored.
func TestRestoreWindowRefusalsCLI(t *testing.T) {
	c, _ := honestStack(t)
	before := tableNames(t, c)
	for _, tc := range []struct {
		at   string
		want []string
	}{
		{"now", []string{"after the latest restorable time", "AWS keeps the latest restorable time about 5 minutes behind now: latest is ", ", you asked ", "; wait ", "or choose an earlier time"}},
		{"-1h", []string{"before the earliest restorable time", "point-in-time recovery keeps 35 days and nothing from before it was enabled: earliest is ", "choose a time inside the window"}},
	} {
		code, objs, stderr := runRecoverCLI(t, "restore", "--table", "orders", "--time", tc.at, "--to-table", "orders-restored")
		if code != exitError || len(objs) != 0 {
			t.Errorf("restore --time %s: exit %d, stdout %v, want exit 1 and no data\n%s", tc.at, code, objs, stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("restore --time %s: stderr lacks %q:\n%s", tc.at, w, stderr)
			}
		}
		if got := tableNames(t, c); !slices.Equal(got, before) {
			t.Fatalf("restore --time %s: tables %v, want %v (nothing restored)", tc.at, got, before)
		}
	}
}

// TestRestoreReportBillingCleanupCLI: the report of what the restored
// table lacks and costs, the billing-mode override as DescribeTable shows
// it, and --cleanup refusing production and deleting the restored table
// only with --yes.
func TestRestoreReportBillingCleanupCLI(t *testing.T) {
	c, prodARN := honestStack(t)
	ctx := t.Context()
	prodBefore := scanAll(t, c, "orders")
	code, objs, stderr := runRecoverCLI(t, "pitr", "status", "--table", "orders")
	if code != exitOK {
		t.Fatalf("pitr status: exit %d\n%s", code, stderr)
	}
	// With the 5-minute lag, the window right after enabling is the
	// enabling moment: restore to it.
	earliest, _ := objs[0]["earliestRestorable"].(string)
	if earliest == "" || objs[0]["latestRestorable"] != earliest {
		t.Fatalf("window right after enabling: %v", objs[0])
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--billing-mode", "FREE"}, exitError, `billing mode "FREE": use PAY_PER_REQUEST or PROVISIONED`},
		{[]string{"--billing-mode", "PROVISIONED"}, exitError, "PROVISIONED needs a positive read and write capacity (--read-capacity, --write-capacity)"},
		{[]string{"--billing-mode", "PROVISIONED", "--read-capacity", "7", "--write-capacity", "3"}, exitError, "PAY_PER_REQUEST with 1 global secondary indexes"},
		{[]string{"--read-capacity", "7"}, exitError, "read and write capacity go with billing mode PROVISIONED only"},
	} {
		code, _, stderr := runRecoverCLI(t, append([]string{"restore", "--table", "orders", "--time", earliest, "--to-table", "orders-restored"}, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("restore %v: exit %d, want %d with %q\n%s", tc.args, code, tc.code, tc.want, stderr)
		}
	}
	if got := tableNames(t, c); !slices.Equal(got, []string{"orders"}) {
		t.Fatalf("tables after refusals: %v", got)
	}

	code, objs, stderr = runRecoverCLI(t, "restore", "--table", "orders", "--time", earliest, "--to-table", "orders-restored", "--no-indexes",
		"--billing-mode", "provisioned", "--read-capacity", "7", "--write-capacity", "3", "--wait", "--poll", "50ms", "--timeout", "30s")
	if code != exitOK || len(objs) != 2 {
		t.Fatalf("restore: exit %d %v\n%s", code, objs, stderr)
	}
	t.Log(stderr)
	r := objs[0]
	lacks := map[string]string{}
	for _, l := range r["lacks"].([]any) {
		m := l.(map[string]any)
		lacks[m["setting"].(string)] = m["source"].(string)
	}
	wantLacks := map[string]string{"stream": "NEW_AND_OLD_IMAGES", "ttl": "attribute expires", "pitr": "ENABLED, 35 days", "indexes": "1 global, 0 local secondary indexes"}
	if !maps.Equal(lacks, wantLacks) {
		t.Errorf("lacks %v, want %v", lacks, wantLacks)
	}
	cost := r["cost"].(map[string]any)
	if cost["billingMode"] != "PROVISIONED" || cost["readCapacity"] != 7.0 || cost["writeCapacity"] != 3.0 || cost["region"] != "eu-west-1" ||
		cost["storageUsdPerGbMonth"] != 0.25 || cost["estimate"] != true || cost["itemCount"] != 5.0 {
		t.Errorf("cost %v", cost)
	}
	if r["billingMode"] != "PROVISIONED" {
		t.Errorf("billingMode %v", r["billingMode"])
	}
	for _, w := range []string{
		"the source has a stream (NEW_AND_OLD_IMAGES), TTL on attribute `expires`, PITR (ENABLED, 35 days), 1 global, 0 local secondary indexes: the restored table has none of these (it is a read-only source for the patch; you need none of them unless you keep it)",
		"AWS never copies auto scaling policies, IAM policies, CloudWatch metrics and alarms, tags",
		"an estimate at us-east-1 list prices", "prices in eu-west-1 differ", "at $0.25 per GB-month",
		"PROVISIONED 7 RCU / 3 WCU", "new table orders-restored is ACTIVE, without secondary indexes, PROVISIONED",
		"rewind restore --cleanup --target orders-restored --table orders", "aws dynamodb delete-table --table-name orders-restored",
	} {
		if !strings.Contains(stderr, w) {
			t.Errorf("restore stderr lacks %q", w)
		}
	}
	d, err := c.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String("orders-restored")})
	if err != nil {
		t.Fatal(err)
	}
	if d.Table.BillingModeSummary != nil && d.Table.BillingModeSummary.BillingMode != types.BillingModeProvisioned ||
		aws.ToInt64(d.Table.ProvisionedThroughput.ReadCapacityUnits) != 7 || aws.ToInt64(d.Table.ProvisionedThroughput.WriteCapacityUnits) != 3 {
		t.Errorf("restored table: billing %+v, throughput %+v; want PROVISIONED 7/3", d.Table.BillingModeSummary, d.Table.ProvisionedThroughput)
	}
	if s := d.Table.StreamSpecification; s != nil && aws.ToBool(s.StreamEnabled) {
		t.Errorf("restored table has a stream")
	}
	restored := scanAll(t, c, "orders-restored")
	if len(restored) != 5 {
		t.Fatalf("restored %d items, want 5", len(restored))
	}

	// Cleanup refuses production however it is named, and what no
	// restore created.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--target", "orders"}, "not a restored table: DynamoDB reports no RestoreSummary"},
		{[]string{"--target", prodARN, "--yes"}, "not a restored table"},
		{[]string{"--target", "orders-restored", "--table", "orders-restored", "--yes"}, "refusing to delete the production table: it is --table orders-restored"},
		{[]string{"--target", "nope", "--yes"}, "table not found"},
	} {
		code, objs, stderr := runRecoverCLI(t, append([]string{"restore", "--cleanup"}, tc.args...)...)
		if code != exitError || len(objs) != 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("cleanup %v: exit %d %v, want 1 with %q\n%s", tc.args, code, objs, tc.want, stderr)
		}
	}
	code, _, stderr = runRecoverCLI(t, "restore", "--cleanup", "--target", "orders-restored", "--time", "now")
	if code != exitUsage {
		t.Errorf("cleanup with --time: exit %d\n%s", code, stderr)
	}
	// The dry run deletes nothing.
	code, objs, stderr = runRecoverCLI(t, "restore", "--cleanup", "--target", "orders-restored", "--table", "orders")
	if code != exitOK || len(objs) != 1 || objs[0]["kind"] != "cleanup" || objs[0]["dryRun"] != true || objs[0]["restoredFrom"] != prodARN ||
		!strings.Contains(stderr, "would delete orders-restored") || !strings.Contains(stderr, "run again with --yes") {
		t.Fatalf("cleanup dry run: exit %d %v\n%s", code, objs, stderr)
	}
	if got := tableNames(t, c); !slices.Equal(got, []string{"orders", "orders-restored"}) {
		t.Fatalf("tables after the dry run: %v", got)
	}
	if got := scanAll(t, c, "orders-restored"); !cmp.Equal(got, restored, cmpopts.IgnoreUnexported(types.AttributeValueMemberS{})) {
		t.Fatalf("restored table changed by the dry run")
	}
	code, objs, stderr = runRecoverCLI(t, "restore", "--cleanup", "--target", "orders-restored", "--table", prodARN, "--yes")
	if code != exitOK || len(objs) != 1 || objs[0]["deleted"] != true {
		t.Fatalf("cleanup --yes: exit %d %v\n%s", code, objs, stderr)
	}
	if got := tableNames(t, c); !slices.Equal(got, []string{"orders"}) {
		t.Fatalf("tables after cleanup: %v, want orders only", got)
	}
	// Production, item for item, as before it all.
	if got := scanAll(t, c, "orders"); !cmp.Equal(got, prodBefore, cmpopts.IgnoreUnexported(types.AttributeValueMemberS{})) {
		t.Fatalf("production changed:\n%s", cmp.Diff(prodBefore, got, cmpopts.IgnoreUnexported(types.AttributeValueMemberS{})))
	}
}

// TestPatchVerifyRefuseRestoringSourceCLI: patch and verify refuse a
// restored table that is still CREATING, and production is untouched.
func TestPatchVerifyRefuseRestoringSourceCLI(t *testing.T) {
	front, c, ddb := pitrFront(t, fakepitr.Config{CreatingFor: time.Hour, LatestRestorableLag: fakepitr.NoLag})
	recoverEnv(t, front.Endpoint, ddb.AccessKeyID)
	if _, err := c.CreateTable(t.Context(), &dynamodb.CreateTableInput{
		TableName:            aws.String("orders"),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
	}); err != nil {
		t.Fatal(err)
	}
	var keys []rewind.Item
	for i := range 3 {
		it := rewind.Item{"pk": &types.AttributeValueMemberS{Value: "o" + strconv.Itoa(i)}, "v": &types.AttributeValueMemberS{Value: "x"}}
		if _, err := c.PutItem(t.Context(), &dynamodb.PutItemInput{TableName: aws.String("orders"), Item: it}); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, rewind.Item{"pk": it["pk"]})
	}
	keyFile := filepath.Join(t.TempDir(), "impacted.jsonl")
	if err := patchtest.WriteKeySet(keyFile, "orders", keys); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runRecoverCLI(t, "pitr", "enable", "--table", "orders"); code != exitOK {
		t.Fatalf("pitr enable: exit %d\n%s", code, stderr)
	}
	if code, _, stderr := runRecoverCLI(t, "restore", "--table", "orders", "--time", "now", "--to-table", "orders-restored"); code != exitOK {
		t.Fatalf("restore: exit %d\n%s", code, stderr)
	}
	prodBefore := scanAll(t, c, "orders")
	for _, args := range [][]string{
		{"verify", "--keys", keyFile, "--from", "orders-restored", "--to", "orders"},
		{"patch", "--keys", keyFile, "--from", "orders-restored", "--to", "orders"},
		{"patch", "--keys", keyFile, "--from", "orders-restored", "--to", "orders", "--yes"},
	} {
		code, objs, stderr := runRecoverCLI(t, args...)
		if code != exitError || len(objs) != 0 || !strings.Contains(stderr, `the source table "orders-restored" is CREATING, not ACTIVE: wait for it`) {
			t.Errorf("%v: exit %d %v, want 1 refusing the CREATING source\n%s", args, code, objs, stderr)
		}
	}
	if got := scanAll(t, c, "orders"); !cmp.Equal(got, prodBefore, cmpopts.IgnoreUnexported(types.AttributeValueMemberS{})) {
		t.Fatalf("production changed:\n%s", cmp.Diff(prodBefore, got, cmpopts.IgnoreUnexported(types.AttributeValueMemberS{})))
	}
}

// pitrFront starts DynamoDB Local behind the PITR front (cfg's Upstream is
// filled in) and returns the front, a client of the front that signs in
// the region recoverEnv gives the CLI (so the same database), and the
// DynamoDB Local environment.
func pitrFront(t *testing.T, cfg fakepitr.Config) (*fakepitr.Server, *dynamodb.Client, *localaws.DynamoDBEnv) {
	t.Helper()
	ddb := localaws.DynamoDBForTest(t)
	cfg.Upstream = ddb.Endpoint
	front, err := fakepitr.Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { front.Close() })
	acfg, err := localaws.Config(t.Context(), front.Endpoint, ddb.AccessKeyID)
	if err != nil {
		t.Fatal(err)
	}
	acfg.Region = "eu-west-1"
	return front, dynamodb.NewFromConfig(acfg), ddb
}
