package indexer_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer"
	"github.com/ddbrewind/rewind/internal/fakelogs"
	"github.com/ddbrewind/rewind/internal/localaws"
	"github.com/ddbrewind/rewind/recover/changelog"
)

// appLines logs n changes of table t through the changelog package, the
// i-th at base+i seconds, and returns the lines.
func appLines(t *testing.T, base time.Time, n int, action rewind.Action) []string {
	t.Helper()
	var buf bytes.Buffer
	i := 0
	l, err := changelog.New(changelog.Config{Handler: slog.NewJSONHandler(&buf, nil), Now: func() time.Time { return base.Add(time.Duration(i) * time.Second) }})
	if err != nil {
		t.Fatal(err)
	}
	for ; i < n; i++ {
		key := rewind.Key{{Name: "pk", Type: 'S', Value: fmt.Sprintf("t%d", i%2)}, {Name: "sk", Type: 'S', Value: fmt.Sprintf("item#%03d", i)}}
		if err := l.Change(context.Background(), "orders", key, action); err != nil {
			t.Fatal(err)
		}
	}
	return strings.Split(strings.TrimSpace(buf.String()), "\n")
}

func putLines(s *fakelogs.Server, stream string, lines []string) {
	for _, ln := range lines {
		rec, _, _ := changelog.Parse([]byte(ln))
		s.Put("/aws/lambda/app", stream, fakelogs.Event{Timestamp: rec.Time.UnixMilli(), Message: ln})
	}
}

func TestIngestLogsCloudWatchAndExport(t *testing.T) {
	ctx := context.Background()
	base := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	fl := fakelogs.Start()
	defer fl.Close()
	fl.PageSize, fl.EmptyPages = 7, true
	a := appLines(t, base, 20, rewind.ActionModify)
	b := appLines(t, base.Add(time.Hour), 10, rewind.ActionRemove)
	putLines(fl, "a", a)
	putLines(fl, "b", b)
	// Not change lines, and a change line that is malformed (no key).
	fl.Put("/aws/lambda/app", "a",
		fakelogs.Event{Timestamp: base.UnixMilli() + 500, Message: "START RequestId: 42 Version: $LATEST"},
		fakelogs.Event{Timestamp: base.UnixMilli() + 600, Message: `{"operation":"itemChange","id":"bad1","table":"orders","time":"2026-12-02T00:00:00Z","tenant":"t0","action":"MODIFY"}`})
	cw := cloudwatchlogs.New(cloudwatchlogs.Options{Region: "us-east-1", BaseEndpoint: aws.String(fl.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")})

	st := openStore(t, t.TempDir())
	// The window holds stream a's first 15 lines and none of b's.
	src := &indexer.CWLogsSource{API: cw, Group: "/aws/lambda/app", Streams: []string{"a", "b"}, From: base, To: base.Add(15 * time.Second)}
	res, err := st.IngestLogs(ctx, src, indexer.Config{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != 15 {
		t.Fatalf("indexed %d events, want 15 (stream a in the window)", res.Events)
	}
	rep := src.Report()
	if rep.Changes != 15 || len(rep.Malformed) != 1 || !strings.Contains(rep.Malformed[0].Where, "stream a event") || !strings.Contains(rep.Malformed[0].Err, `no "key"`) {
		t.Fatalf("report %+v: want 15 changes and the malformed line named by stream and event", rep)
	}
	for _, f := range fl.Filters() {
		if f.Pattern != changelog.FilterPattern || f.Start == nil || *f.Start != base.UnixMilli() || f.End == nil || *f.End != base.Add(15*time.Second).UnixMilli()-1 || len(f.Streams) != 1 {
			t.Fatalf("FilterLogEvents call %+v: want the change-line pattern, one stream, the window in ms", f)
		}
	}
	if fl.Calls("FilterLogEvents") < 4 {
		t.Fatalf("%d FilterLogEvents calls: want the pages of both streams followed through nextToken", fl.Calls("FilterLogEvents"))
	}
	evs := allEvents(t, st)
	if len(evs) != 15 {
		t.Fatalf("store holds %d events", len(evs))
	}
	for _, ev := range evs {
		if ev.StreamViewType != rewind.StreamViewChangeLog || ev.NewImage != nil || ev.OldImage != nil || ev.Action != rewind.ActionModify || ev.Table != "orders" || !strings.HasPrefix(ev.EventID, "changelog:") {
			t.Fatalf("event %+v: want a key-only change-log event", ev)
		}
	}

	// The same log group exported to S3: a's 15 lines again (duplicates),
	// a's other 5 and b's 10 new.
	s3env := localaws.S3ForTest(t)
	fl.S3 = s3env.Client
	out, err := cw.CreateExportTask(ctx, &cloudwatchlogs.CreateExportTaskInput{LogGroupName: aws.String("/aws/lambda/app"),
		From: aws.Int64(0), To: aws.Int64(base.Add(2 * time.Hour).UnixMilli()), Destination: aws.String(s3env.Bucket), DestinationPrefix: aws.String("logs")})
	if err != nil {
		t.Fatal(err)
	}
	exp, err := indexer.ParseLogExportSource("s3://"+s3env.Bucket+"/logs", s3env.Client)
	if err != nil {
		t.Fatal(err)
	}
	res, err = st.IngestLogs(ctx, exp, indexer.Config{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if res.Listed != 2 || res.Events != 15 || res.Duplicates != 15 {
		t.Fatalf("export: listed %d objects, %d new events, %d duplicates; want 2, 15, 15", res.Listed, res.Events, res.Duplicates)
	}
	rep = exp.Report()
	wantObj := "s3://" + s3env.Bucket + "/logs/" + *out.TaskId + "/a/000000.gz line "
	if rep.Skipped != 1 || len(rep.Malformed) != 1 || !strings.HasPrefix(rep.Malformed[0].Where, wantObj) {
		t.Fatalf("export report %+v: want the START line skipped and the malformed line named %s<n>", rep, wantObj)
	}
	// A second run reads nothing again.
	exp2, _ := indexer.ParseLogExportSource("s3://"+s3env.Bucket+"/logs", s3env.Client)
	res, err = st.IngestLogs(ctx, exp2, indexer.Config{Log: quiet})
	if err != nil || res.Skipped != 2 || res.Ingested != 0 {
		t.Fatalf("rerun: %+v %v; want both objects skipped", res, err)
	}
	if n, _ := st.Count(); n != 30 {
		t.Fatalf("store holds %d events, want 30", n)
	}
}
