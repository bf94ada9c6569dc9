package cli

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/internal/fakelogs"
	"github.com/ddbrewind/rewind/internal/localaws"
	"github.com/ddbrewind/rewind/recover/changelog"
	"github.com/ddbrewind/rewind/recover/patch/patchtest"
)

// shipLines sends an application's stdout lines to CloudWatch Logs as the
// Lambda runtime would, through the SDK's PutLogEvents.
func shipLines(t *testing.T, cw *cloudwatchlogs.Client, group, stream string, lines []string, at func(string) time.Time) {
	t.Helper()
	ctx := t.Context()
	cw.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String(group), LogStreamName: aws.String(stream)})
	var evs []cwtypes.InputLogEvent
	for _, ln := range lines {
		evs = append(evs, cwtypes.InputLogEvent{Timestamp: aws.Int64(at(ln).UnixMilli()), Message: aws.String(ln)})
	}
	slices.SortStableFunc(evs, func(a, b cwtypes.InputLogEvent) int { return int(*a.Timestamp - *b.Timestamp) })
	if _, err := cw.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String(group), LogStreamName: aws.String(stream), LogEvents: evs}); err != nil {
		t.Fatal(err)
	}
}

// TestIndexLogsRunbook is the runbook with an application change log in
// place of a capture: the app logs its changes through recover/changelog
// to CloudWatch Logs; rewind index --logs reads them over a window; rewind
// query makes the key set; patch --from-history lists every item as
// unknown and writes nothing; patch from the restored table repairs
// production.
func TestIndexLogsRunbook(t *testing.T) {
	ddb, s, _, _ := patchStack(t, patchtest.ScenarioOptions{Items: 40, Modify: 8, Delete: 3, Junk: 3, GoodWrites: 3, Seed: 5})
	fl := fakelogs.Start()
	defer fl.Close()
	fl.PageSize = 4 // several pages per stream
	t.Setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", fl.URL)
	cw := cloudwatchlogs.New(cloudwatchlogs.Options{Region: "us-east-1", BaseEndpoint: aws.String(fl.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")})
	group := "/aws/lambda/orders-api"
	if _, err := cw.CreateLogGroup(t.Context(), &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String(group)}); err != nil {
		t.Fatal(err)
	}

	// What the bad deploy did, from the tables: each impacted key's action.
	deploy := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	type change struct {
		key    rewind.Key
		action rewind.Action
		at     time.Time
	}
	var bad, good []change
	i := 0
	for id, want := range s.Expected {
		dmg, inDamaged := s.Damaged[id]
		if inDamaged && reflect.DeepEqual(dmg, want) {
			continue
		}
		key, err := rewind.KeyFromItemSchema(pick(want, dmg), "pk", "sk")
		if err != nil {
			t.Fatal(err)
		}
		a := rewind.ActionModify
		if !inDamaged {
			a = rewind.ActionRemove
		}
		bad = append(bad, change{key, a, deploy.Add(time.Duration(i) * time.Second)})
		i++
	}
	for id, dmg := range s.Damaged {
		if _, ok := s.Expected[id]; !ok {
			key, _ := rewind.KeyFromItemSchema(dmg, "pk", "sk")
			bad = append(bad, change{key, rewind.ActionInsert, deploy.Add(time.Duration(i) * time.Second)})
			i++
		}
	}
	if len(bad) != 14 {
		t.Fatalf("%d damaged items, want 14 (8 modified, 3 deleted, 3 junk)", len(bad))
	}
	// The good writes: outside the key set, logged before the deploy
	// window (an hour before) and after it.
	var goodKeys []rewind.Key
	for id, it := range s.Expected {
		if r, ok := s.Restored[id]; ok && !reflect.DeepEqual(r, it) && s.Damaged[id] != nil && reflect.DeepEqual(s.Damaged[id], it) {
			k, _ := rewind.KeyFromItemSchema(it, "pk", "sk")
			goodKeys = append(goodKeys, k)
		}
	}
	for j, k := range goodKeys {
		good = append(good, change{k, rewind.ActionModify, deploy.Add(-time.Hour)}, change{k, rewind.ActionModify, deploy.Add(time.Duration(30+j) * time.Minute)})
	}

	// The application logs its changes, two instances, two streams.
	var buf [2]bytes.Buffer
	var now time.Time
	var loggers [2]*changelog.Logger
	for n := range loggers {
		l, err := changelog.New(changelog.Config{Handler: slog.NewJSONHandler(&buf[n], nil), Now: func() time.Time { return now }, Tenant: rewind.TenantRule{Attribute: "pk"}})
		if err != nil {
			t.Fatal(err)
		}
		loggers[n] = l
	}
	for j, c := range append(append([]change{}, bad...), good...) {
		now = c.at
		if err := loggers[j%2].Change(context.Background(), "orders", c.key, c.action); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&buf[j%2], "REPORT RequestId: %d Duration: 3.2 ms\n", j)
	}
	at := func(ln string) time.Time {
		if rec, ok, _ := changelog.Parse([]byte(ln)); ok {
			return rec.Time
		}
		return deploy
	}
	for n := range buf {
		shipLines(t, cw, group, fmt.Sprintf("2026/12/02/[$LATEST]%d", n), strings.Split(strings.TrimSpace(buf[n].String()), "\n"), at)
	}
	// A change line the application broke, in the window.
	fl.Put(group, "2026/12/02/[$LATEST]0", fakelogs.Event{Timestamp: deploy.UnixMilli() + 1500, Message: `{"operation":"itemChange","id":"x1","time":"` + deploy.Format(time.RFC3339) + `","table":"orders","key":{"pk":{"S":"t1#1"}},"tenant":"t1","action":"UPSERT"}`})

	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	from, to := deploy.Add(-time.Minute).Format(time.RFC3339), deploy.Add(20*time.Minute).Format(time.RFC3339)
	code, stdout, stderr := runPatchCLI(t, "index", "--logs", "cwlogs:"+group, "--log-streams", "2026/12/02/[$LATEST]0,2026/12/02/[$LATEST]1",
		"--from", from, "--to", to, "--store", store, "--progress", "0")
	if code != exitPartial || !strings.Contains(stderr, "stream 2026/12/02/[$LATEST]0 event") || !strings.Contains(stderr, `unknown action "UPSERT"`) {
		t.Fatalf("index --logs with a malformed line: exit %d, want %d naming the stream and event\n%s", code, exitPartial, stderr)
	}
	lines := jsonLines(t, stdout)
	if len(lines) != 2 || lines[0]["kind"] != "index" || lines[0]["events"] != float64(14) || lines[1]["kind"] != "index_logs" || lines[1]["changes"] != float64(14) || len(lines[1]["malformed"].([]any)) != 1 {
		t.Fatalf("index --logs stdout: %s", stdout)
	}
	if fl.Calls("FilterLogEvents") < 4 {
		t.Fatalf("%d FilterLogEvents calls: want each stream's pages", fl.Calls("FilterLogEvents"))
	}

	// The key set of the deploy's window is the damaged items, no more.
	code, stdout, stderr = runPatchCLI(t, "query", "--store", store, "--tables", "orders", "--from", from, "--to", to)
	if code != exitOK {
		t.Fatalf("query: exit %d\n%s", code, stderr)
	}
	var gotKeys, wantKeys []string
	for _, m := range jsonLines(t, stdout) {
		k, _ := rewind.ParseKey([]byte(mustJSON(t, m["key"])))
		gotKeys = append(gotKeys, k.String())
	}
	for _, c := range bad {
		wantKeys = append(wantKeys, c.key.String())
	}
	slices.Sort(gotKeys)
	slices.Sort(wantKeys)
	if !slices.Equal(gotKeys, wantKeys) {
		t.Fatalf("query key set:\n%v\nwant the 14 damaged items:\n%v", gotKeys, wantKeys)
	}
	keys := filepath.Join(dir, "impacted.jsonl")
	if err := os.WriteFile(keys, []byte(stdout), 0o644); err != nil {
		t.Fatal(err)
	}

	// From the history: every item unknown, nothing written.
	code, stdout, stderr = runPatchCLI(t, "patch", "--keys", keys, "--from-history", "--at", deploy.Add(-time.Second).Format(time.RFC3339), "--store", store,
		"--to", "orders", "--yes", "--journal", filepath.Join(dir, "hist.journal"), "--progress", "0")
	unknown := 0
	for _, m := range jsonLines(t, stdout) {
		if m["action"] == "unknown" && strings.Contains(fmt.Sprint(m["reason"]), "application's change log") {
			unknown++
		}
	}
	if code != exitPartial || unknown != 14 || !strings.Contains(stderr, "unknown    14") {
		t.Fatalf("patch --from-history over change-log events: exit %d, %d unknown; want %d and 14\n%s\n%s", code, unknown, exitPartial, stdout, stderr)
	}
	assertProd(t, ddb.DynamoDB, s.Damaged, "after patch --from-history")

	// From the restored table: repaired.
	if code, _, stderr = runPatchCLI(t, "patch", "--keys", keys, "--from", "orders-restored", "--to", "orders", "--yes", "--journal", filepath.Join(dir, "patch.journal"), "--progress", "0"); code != exitOK {
		t.Fatalf("patch: exit %d\n%s", code, stderr)
	}
	assertProd(t, ddb.DynamoDB, s.Expected, "after patch from the restored table")
}

func pick(a, b rewind.Item) rewind.Item {
	if a != nil {
		return a
	}
	return b
}

// TestIndexLogsExportCLI indexes a log group's export to S3 (made by
// CreateExportTask on the stand-in) through the CLI, then queries it: the
// export's key set is the logged items, and a rerun reads nothing again.
func TestIndexLogsExportCLI(t *testing.T) {
	s3env := localaws.S3ForTest(t)
	fl := fakelogs.Start()
	defer fl.Close()
	fl.S3 = s3env.Client
	base := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	var buf bytes.Buffer
	n := 0
	l, _ := changelog.New(changelog.Config{Handler: slog.NewJSONHandler(&buf, nil), Now: func() time.Time { return base.Add(time.Duration(n) * time.Second) }})
	for ; n < 12; n++ {
		k := rewind.Key{{Name: "pk", Type: 'S', Value: fmt.Sprintf("t%d", n%3)}, {Name: "sk", Type: 'N', Value: fmt.Sprint(n % 6)}}
		if err := l.Change(t.Context(), "orders", k, rewind.ActionModify); err != nil {
			t.Fatal(err)
		}
	}
	for _, ln := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		rec, _, _ := changelog.Parse([]byte(ln))
		fl.Put("/aws/lambda/app", "s1", fakelogs.Event{Timestamp: rec.Time.UnixMilli(), Message: ln}, fakelogs.Event{Timestamp: rec.Time.UnixMilli(), Message: "END RequestId: 1"})
	}
	cw := cloudwatchlogs.New(cloudwatchlogs.Options{Region: "us-east-1", BaseEndpoint: aws.String(fl.URL), Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")})
	if _, err := cw.CreateExportTask(t.Context(), &cloudwatchlogs.CreateExportTaskInput{LogGroupName: aws.String("/aws/lambda/app"), From: aws.Int64(0), To: aws.Int64(base.Add(time.Hour).UnixMilli()), Destination: aws.String(s3env.Bucket)}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ENDPOINT_URL_S3", s3env.Endpoint)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("REWIND_S3_PATH_STYLE", "true")
	store := filepath.Join(t.TempDir(), "store")
	for run := range 2 {
		code, stdout, stderr := runPatchCLI(t, "index", "--logs", "s3://"+s3env.Bucket+"/exportedlogs", "--store", store, "--progress", "0")
		lines := jsonLines(t, stdout)
		if code != exitOK || len(lines) != 2 {
			t.Fatalf("run %d: index --logs s3://: exit %d\n%s\n%s", run, code, stdout, stderr)
		}
		wantChanges := []float64{12, 0}[run]
		if lines[1]["changes"] != wantChanges || lines[1]["skipped"] != wantChanges || lines[0]["total_events"] != float64(12) {
			t.Fatalf("run %d: %s", run, stdout)
		}
	}
	code, stdout, stderr := runPatchCLI(t, "query", "--store", store)
	if code != exitOK || len(jsonLines(t, stdout)) != 6 {
		t.Fatalf("query: exit %d, %d keys; want 6 (3 tenants x 2 sort keys)\n%s", code, len(jsonLines(t, stdout)), stderr)
	}
}

func TestIndexLogsUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--logs", "cwlogs:g"}, "needs --from"},
		{[]string{"--logs", "cwlogs:", "--from", "-1h"}, "no log group"},
		{[]string{"--logs", "kinesis:x"}, "want cwlogs:GROUP"},
		{[]string{"--logs", "s3://b/p", "--from", "-1h"}, "go with --logs cwlogs:GROUP"},
		{[]string{"--log-streams", "a", "--source", "/tmp"}, "go with --logs"},
		{[]string{"--logs", "cwlogs:g", "--from", "-1h", "--source", "/tmp"}, "--logs goes alone"},
		{[]string{"--logs", "cwlogs:g", "--from", "-1h", "--to", "-2h"}, "is not after --from"},
	} {
		code, _, stderr := runIndexCLI(t, append([]string{"index", "--store", t.TempDir()}, tc.args...)...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, want %d with %q\n%s", tc.args, code, exitUsage, tc.want, stderr)
		}
	}
}
