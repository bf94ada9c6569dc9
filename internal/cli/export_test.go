package cli

import (
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/internal/fakepitr"
	"github.com/ddbrewind/rewind/internal/localaws"
)

// exportStack is DynamoDB Local behind the PITR front, exporting to an
// in-process S3, with the CLI's environment pointing at them.
type exportStack struct {
	front *fakepitr.Server
	ddb   *dynamodb.Client
	db    fakepitr.DB
	s3    *localaws.S3Env
}

func newExportStack(t *testing.T) *exportStack {
	t.Helper()
	s3env := localaws.S3ForTest(t)
	front, c, ddb := pitrFront(t, fakepitr.Config{S3: s3env.Client, ExportingFor: 150 * time.Millisecond, LatestRestorableLag: fakepitr.NoLag})
	recoverEnv(t, front.Endpoint, ddb.AccessKeyID)
	t.Setenv("AWS_ENDPOINT_URL_S3", s3env.Endpoint)
	t.Setenv("REWIND_S3_PATH_STYLE", "true")
	if _, err := c.CreateTable(t.Context(), &dynamodb.CreateTableInput{
		TableName:            aws.String("orders"),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
	}); err != nil {
		t.Fatal(err)
	}
	return &exportStack{front: front, ddb: c, db: fakepitr.DB{AccessKeyID: ddb.AccessKeyID, Region: "eu-west-1"}, s3: s3env}
}

func (s *exportStack) put(t *testing.T, pk, v string) {
	t.Helper()
	if _, err := s.ddb.PutItem(t.Context(), &dynamodb.PutItemInput{TableName: aws.String("orders"), Item: map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: pk}, "v": &types.AttributeValueMemberS{Value: v},
	}}); err != nil {
		t.Fatal(err)
	}
}

func (s *exportStack) del(t *testing.T, pk string) {
	t.Helper()
	if _, err := s.ddb.DeleteItem(t.Context(), &dynamodb.DeleteItemInput{TableName: aws.String("orders"), Key: map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: pk},
	}}); err != nil {
		t.Fatal(err)
	}
}

func (s *exportStack) snapshot(t *testing.T, at time.Time) {
	t.Helper()
	if err := s.front.Snapshot(t.Context(), s.db, "orders", at); err != nil {
		t.Fatal(err)
	}
}

// TestExportIndexQueryEndToEnd changes items on DynamoDB Local, exports
// the window through the PITR front with `rewind export --wait`, indexes
// the export and checks that the key set is exactly the items changed.
func TestExportIndexQueryEndToEnd(t *testing.T) {
	s := newExportStack(t)
	for i := range 8 {
		s.put(t, "o"+strconv.Itoa(i), "good")
	}
	if code, _, stderr := runRecoverCLI(t, "pitr", "enable", "--table", "orders"); code != 0 {
		t.Fatalf("pitr enable: exit %d\n%s", code, stderr)
	}
	// History as if PITR had been on for two days, with today's items.
	enabled := time.Now()
	s.snapshot(t, enabled.Add(-48*time.Hour))
	from := enabled.Add(-2 * time.Hour).UTC().Truncate(time.Millisecond)

	// The bad deploy: two updates, a delete, an insert, and an item created
	// and deleted again (which an export does not show).
	s.put(t, "o1", "bad")
	s.put(t, "o2", "bad")
	s.del(t, "o3")
	s.put(t, "new", "bad")
	s.put(t, "tmp", "bad")
	s.snapshot(t, time.Now())
	s.del(t, "tmp")
	s.snapshot(t, time.Now())
	time.Sleep(5 * time.Millisecond)

	args := []string{"export", "--table", "orders", "--from", from.Format(time.RFC3339Nano), "--to", "now",
		"--s3", "s3://" + s.s3.Bucket + "/incident", "--wait", "--poll", "50ms", "--timeout", "30s", "--progress", "40ms"}
	code, objs, stderr := runRecoverCLI(t, args...)
	if code != 0 || len(objs) != 1 {
		t.Fatalf("export --wait: exit %d, %v\n%s", code, objs, stderr)
	}
	e := objs[0]
	id, _ := e["exportId"].(string)
	loc := "s3://" + s.s3.Bucket + "/incident/AWSDynamoDB/" + id + "/"
	if e["kind"] != "export" || e["status"] != "COMPLETED" || e["itemCount"] != 4.0 || e["location"] != loc ||
		!strings.HasSuffix(e["exportArn"].(string), "/export/"+id) || e["from"] != from.Format(time.RFC3339Nano) {
		t.Fatalf("export line %v", e)
	}
	for _, w := range []string{"1 incremental export(s)", "export: 0/1 exports (0.0%), 0 exports/s, completed 0, failed 0", "DONE", "rewind index --export " + loc} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, stderr)
		}
	}

	// The same absolute window again returns the same export.
	again := slices.Clone(args)
	again[slices.Index(again, "now")] = e["to"].(string)
	code, objs2, stderr := runRecoverCLI(t, again...)
	if code != 0 || len(objs2) != 1 || objs2[0]["exportArn"] != e["exportArn"] {
		t.Fatalf("rerun: exit %d, %v (want export %v)\n%s", code, objs2, e["exportArn"], stderr)
	}

	// Index it and ask for the key set; a second run adds nothing.
	store := filepath.Join(t.TempDir(), "store")
	for i, want := range []float64{4, 0} {
		code, objs, ierr := runRecoverCLI(t, "index", "--export", loc, "--store", store)
		if code != 0 || len(objs) != 1 || objs[0]["events"] != want {
			t.Fatalf("index --export run %d: exit %d, %v (want %v events)\n%s", i+1, code, objs, want, ierr)
		}
	}
	code, out, qerr := runIndexCLI(t, "query", "--store", store, "--from", from.Format(time.RFC3339Nano), "--to", e["to"].(string))
	if code != 0 {
		t.Fatalf("query: exit %d\n%s", code, qerr)
	}
	var got []string
	r := rewind.NewKeySetReader(strings.NewReader(out), "stdout")
	for {
		k, err := r.Next()
		if err != nil {
			break
		}
		if k.Table != "orders" || k.Count != 1 || !k.First.Equal(k.Last) || k.First.Before(enabled) || k.Tenant != k.Key[0].Value {
			t.Errorf("key set line %+v", k)
		}
		got = append(got, k.Key[0].Value+":"+string(k.Actions[0]))
	}
	slices.Sort(got) // the key set is in canonical key order
	if want := []string{"new:INSERT", "o1:MODIFY", "o2:MODIFY", "o3:REMOVE"}; !slices.Equal(got, want) {
		t.Fatalf("key set %v, want %v\n%s", got, want, out)
	}
}

func TestExportCLIErrors(t *testing.T) {
	s := newExportStack(t)
	s.put(t, "o1", "x")
	code, _, stderr := runRecoverCLI(t, "export", "--table", "orders", "--from", "-1h", "--to", "now", "--s3", "s3://"+s.s3.Bucket)
	if code != exitError || !strings.Contains(stderr, "point-in-time recovery is not enabled") {
		t.Fatalf("export without PITR: exit %d\n%s", code, stderr)
	}
	if code, _, stderr := runRecoverCLI(t, "pitr", "enable", "--table", "orders"); code != 0 {
		t.Fatalf("pitr enable: exit %d\n%s", code, stderr)
	}
	enabled := time.Now().UTC().Truncate(time.Millisecond)
	s.snapshot(t, enabled.Add(-40*time.Hour))
	rfc := func(d time.Duration) string { return enabled.Add(d).Format(time.RFC3339Nano) }

	// A 30-hour window is two exports of 15 hours.
	code, objs, stderr := runRecoverCLI(t, "export", "--table", "orders", "--from", rfc(-39*time.Hour), "--to", rfc(-9*time.Hour),
		"--s3", "s3://"+s.s3.Bucket+"/p", "--dry-run")
	if code != 0 || len(objs) != 2 || objs[0]["kind"] != "export-plan" || objs[0]["to"] != objs[1]["from"] ||
		objs[0]["from"] != rfc(-39*time.Hour) || objs[1]["to"] != rfc(-9*time.Hour) || !strings.Contains(stderr, "2 incremental export(s) of 15h0m0s") {
		t.Fatalf("dry run: exit %d %v\n%s", code, objs, stderr)
	}
	// Nothing was started.
	list, err := s.ddb.ListExports(t.Context(), &dynamodb.ListExportsInput{})
	if err != nil || len(list.ExportSummaries) != 0 {
		t.Fatalf("dry run started exports: %v %v", list, err)
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--table", "orders", "--from", "-10m", "--to", "now", "--s3", "s3://b"}, exitUsage, "at least 15m0s"},
		{[]string{"--table", "orders", "--from", "-1h", "--to", "-2h", "--s3", "s3://b"}, exitUsage, "is not after"},
		{[]string{"--table", "orders", "--from", "-1h", "--to", "now"}, exitUsage, "--s3 is required"},
		{[]string{"--table", "orders", "--from", "-1h", "--to", "now", "--s3", "b/p"}, exitUsage, "not an s3://bucket/prefix"},
		{[]string{"--from", "-1h", "--to", "now", "--s3", "s3://b"}, exitUsage, "--table is required"},
		{[]string{"--table", "orders", "--from", rfc(-41 * time.Hour), "--to", rfc(-40 * time.Minute), "--s3", "s3://b"}, exitError, "before the earliest restorable time"},
		{[]string{"--table", "orders", "--from", rfc(-time.Hour), "--to", rfc(time.Hour), "--s3", "s3://b"}, exitError, "after the latest restorable time"},
		{[]string{"--table", "nope", "--from", "-1h", "--to", "now", "--s3", "s3://b"}, exitError, "table not found"},
	} {
		code, _, stderr := runRecoverCLI(t, append([]string{"export"}, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("export %v: exit %d, want %d with %q\n%s", tc.args, code, tc.code, tc.want, stderr)
		}
	}

	// An export to a bucket that does not exist fails: exit 1, named.
	code, objs, stderr = runRecoverCLI(t, "export", "--table", "orders", "--from", rfc(-time.Hour), "--to", "now",
		"--s3", "s3://no-such-bucket/p", "--wait", "--poll", "20ms")
	if code != exitError || len(objs) != 1 || objs[0]["status"] != "FAILED" || objs[0]["failureCode"] != "S3NoSuchBucket" || !strings.Contains(stderr, "every export failed") {
		t.Fatalf("export to a missing bucket: exit %d %v\n%s", code, objs, stderr)
	}

	// Without --wait the export is started and printed at once.
	code, objs, stderr = runRecoverCLI(t, "export", "--table", "orders", "--from", rfc(-time.Hour), "--to", "now", "--s3", "s3://"+s.s3.Bucket)
	if code != 0 || len(objs) != 1 || objs[0]["status"] != "IN_PROGRESS" || !strings.Contains(stderr, "STARTED") || !strings.Contains(stderr, "--wait") {
		t.Fatalf("export without --wait: exit %d %v\n%s", code, objs, stderr)
	}
	// A timeout says how to wait again (a new export stays IN_PROGRESS
	// for 150 ms).
	code, objs, stderr = runRecoverCLI(t, "export", "--table", "orders", "--from", rfc(-3*time.Hour), "--to", "now",
		"--s3", "s3://"+s.s3.Bucket, "--wait", "--poll", "50ms", "--timeout", "1ms")
	if code != exitError || len(objs) != 1 || objs[0]["status"] != "IN_PROGRESS" || !strings.Contains(stderr, "timed out waiting for exports") ||
		!strings.Contains(stderr, "wait again: rewind export --table orders --from "+rfc(-3*time.Hour)) {
		t.Fatalf("export --wait with a short timeout: exit %d %v\n%s", code, objs, stderr)
	}
}
