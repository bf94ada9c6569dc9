package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer"
	"github.com/ddbrewind/rewind/indexer/indextest"
	"github.com/ddbrewind/rewind/internal/localaws"
)

// runIndexCLI runs one rewind command line in-process.
func runIndexCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &Env{Stdout: &out, Stderr: &errb, Log: slog.New(slog.NewTextHandler(&errb, nil)),
		Getenv: func(string) string { return "" }}
	code = Run(context.Background(), env, args)
	return code, out.String(), errb.String()
}

func TestIndexQueryHistoryStatsCLI(t *testing.T) {
	src := t.TempDir()
	evs := indextest.NewGen(11).Events(600)
	objs := indextest.Objects("capture", evs, 50)
	if err := indextest.WriteDir(src, objs); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range objs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	broken := filepath.Join(src, filepath.FromSlash(keys[2]))
	good, _ := os.ReadFile(broken)
	os.WriteFile(broken, good[:len(good)-100], 0o644) // truncated
	store := filepath.Join(t.TempDir(), "store")

	// A corrupt object: named, the rest indexed, exit 3.
	code, out, errs := runIndexCLI(t, "index", "--source", src, "--store", store)
	if code != exitPartial {
		t.Fatalf("index with a truncated object: exit %d, want %d\n%s", code, exitPartial, errs)
	}
	var sum struct {
		Kind     string `json:"kind"`
		Ingested int    `json:"ingested"`
		Events   int64  `json:"events"`
		Failed   []struct{ Object string }
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("index stdout %q: %v", out, err)
	}
	if sum.Kind != "index" || sum.Ingested != len(objs)-1 || len(sum.Failed) != 1 || sum.Failed[0].Object != broken {
		t.Fatalf("index summary %+v; want %d objects and %s failed", sum, len(objs)-1, broken)
	}
	if !strings.Contains(errs, broken) {
		t.Fatalf("stderr does not name the broken object:\n%s", errs)
	}

	// Repaired, the rerun reads only that object.
	os.WriteFile(broken, good, 0o644)
	code, out, errs = runIndexCLI(t, "index", "--source", src, "--store", store)
	if code != exitOK {
		t.Fatalf("rerun: exit %d\n%s", code, errs)
	}
	json.Unmarshal([]byte(out), &sum)
	if sum.Ingested != 1 || sum.Events != int64(len(objs[keys[2]])) {
		t.Fatalf("rerun summary %+v; want the one repaired object", sum)
	}

	// The key set of acme's changes in a window, against the events.
	from, to := evs[100].Time, evs[500].Time
	want := map[string]bool{}
	for _, ev := range evs {
		if ev.DecodeError == "" && ev.Tenant == "acme" && !ev.Time.Before(from) && ev.Time.Before(to) {
			want[ev.ItemID()] = true
		}
	}
	fromS, toS := from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano)
	code, out, errs = runIndexCLI(t, "query", "--store", store, "--from", fromS, "--to", toS, "--tenants", "acme")
	if code != exitOK {
		t.Fatalf("query: exit %d\n%s", code, errs)
	}
	got := map[string]bool{}
	r := rewind.NewKeySetReader(strings.NewReader(out), "stdout")
	var first rewind.KeySetEntry
	for {
		e, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if first.Table == "" {
			first = e
		}
		got[e.Table+"\x00"+string(e.Key.Encode())] = true
	}
	if len(want) == 0 || len(got) != len(want) {
		t.Fatalf("key set has %d items, want %d", len(got), len(want))
	}
	for id := range want {
		if !got[id] {
			t.Fatalf("key set misses %q", id)
		}
	}

	// The same selection as events.
	_, jsonOut, _ := runIndexCLI(t, "query", "--store", store, "--from", fromS, "--to", toS, "--tenants", "acme", "--format", "json")
	_, tableOut, _ := runIndexCLI(t, "query", "--store", store, "--from", fromS, "--to", toS, "--tenants", "acme", "--format", "table")
	var n int
	for _, line := range strings.Split(strings.TrimSpace(jsonOut), "\n") {
		var ev struct {
			Tenant string          `json:"tenant"`
			New    json.RawMessage `json:"new"`
			Old    json.RawMessage `json:"old"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil || ev.Tenant != "acme" || (ev.New == nil && ev.Old == nil) {
			t.Fatalf("query --format json line %q: %v", line, err)
		}
		n++
	}
	if tl := strings.Count(tableOut, "\n"); n == 0 || tl != n+1 {
		t.Fatalf("%d JSON events and %d table lines (with header)", n, tl)
	}

	// History of the first item, from its key-set line.
	line, _, _ := strings.Cut(out, "\n")
	code, hist, errs := runIndexCLI(t, "history", "--store", store, "--key", line, "--format", "json")
	if code != exitOK {
		t.Fatalf("history: exit %d\n%s", code, errs)
	}
	var wantHist int
	for _, ev := range evs {
		if ev.DecodeError == "" && ev.Table == first.Table && ev.Keys.Equal(first.Key) {
			wantHist++
		}
	}
	if strings.Count(hist, "\n") != wantHist {
		t.Fatalf("history has %d changes, want %d:\n%s", strings.Count(hist, "\n"), wantHist, hist)
	}

	// Stats over the window.
	code, st, errs := runIndexCLI(t, "stats", "--store", store, "--from", fromS, "--to", toS, "--format", "json")
	if code != exitOK {
		t.Fatalf("stats: exit %d\n%s", code, errs)
	}
	var stats struct{ Events int64 }
	json.Unmarshal([]byte(st), &stats)
	var wantN int64
	for _, ev := range evs {
		if ev.DecodeError == "" && !ev.Time.Before(from) && ev.Time.Before(to) {
			wantN++
		}
	}
	if stats.Events != wantN {
		t.Fatalf("stats counts %d events, want %d", stats.Events, wantN)
	}
	if code, tbl, _ := runIndexCLI(t, "stats", "--store", store, "--from", fromS, "--to", toS); code != exitOK || !strings.Contains(tbl, "PER MINUTE (UTC)") {
		t.Fatalf("stats table: exit %d\n%s", code, tbl)
	}

	// Athena: a local source has no S3 location to default to.
	if code, _, errs := runIndexCLI(t, "query", "--store", store, "--format", "athena"); code != exitUsage || !strings.Contains(errs, "--location") {
		t.Fatalf("athena without a location: exit %d\n%s", code, errs)
	}
	code, sql, _ := runIndexCLI(t, "query", "--store", store, "--format", "athena", "--location", "s3://b/capture", "--from", fromS, "--to", toS)
	if code != exitOK || !strings.Contains(sql, "'projection.table.values' = 'ledger,orders,users'") || !strings.Contains(sql, "CREATE EXTERNAL TABLE") {
		t.Fatalf("athena: exit %d\n%s", code, sql)
	}

	// Another process holds the store: a clear message.
	held, err := indexer.Open(store, indexer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	code, _, errs = runIndexCLI(t, "query", "--store", store)
	held.Close()
	if code != exitError || !strings.Contains(errs, "store is locked by another process (pid ") {
		t.Fatalf("query on a locked store: exit %d\n%s", code, errs)
	}
}

func TestIndexQueryUsage(t *testing.T) {
	store := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"index", "--store", store}, "give --source (capture objects), --failures (the on-failure destination) or --export"},
		{[]string{"index", "--store", store, "--source", "ftp://x/y"}, "unknown scheme"},
		{[]string{"query", "--store", store, "--from", "2026-11-20T10:00:00Z", "--to", "2026-11-20T09:00:00Z"}, "is not after"},
		{[]string{"query", "--store", store, "--format", "csv"}, "--format"},
		{[]string{"query", "--store", store, "--match", "new.x"}, "--match"},
		{[]string{"query", "--store", store, "--actions", "UPSERT"}, "unknown action"},
		{[]string{"query", "--store", store, "--ttl", "maybe"}, "--ttl"},
		{[]string{"query", "--store", store, "--from", "10:00"}, "RFC 3339"},
		{[]string{"history", "--store", store}, "--key is required"},
		{[]string{"history", "--store", store, "--key", "{}"}, "--key"},
		{[]string{"stats", "--store", store, "--bucket", "soon"}, "--bucket"},
	} {
		code, _, errs := runIndexCLI(t, tc.args...)
		if code != exitUsage || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, want %d with %q\n%s", tc.args, code, exitUsage, tc.want, errs)
		}
	}
	// No store yet: an error that says what to do.
	code, _, errs := runIndexCLI(t, "query", "--store", filepath.Join(store, "none"))
	if code != exitError || !strings.Contains(errs, "rewind index") {
		t.Fatalf("query without a store: exit %d\n%s", code, errs)
	}
}

// TestIndexFromS3CLI indexes from the in-process S3 server through the
// CLI's own AWS configuration (AWS_ENDPOINT_URL_S3, REWIND_S3_PATH_STYLE).
func TestIndexFromS3CLI(t *testing.T) {
	s3env := localaws.S3ForTest(t)
	evs := indextest.NewGen(12).Events(300)
	for key, objEvs := range indextest.Objects("capture", evs, 40) {
		data, err := indextest.EncodeParquet(objEvs)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s3env.Client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &s3env.Bucket, Key: &key, Body: bytes.NewReader(data)}); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("AWS_ENDPOINT_URL_S3", s3env.Endpoint)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	store := filepath.Join(t.TempDir(), "store")
	var out, errb bytes.Buffer
	env := &Env{Stdout: &out, Stderr: &errb, Log: slog.New(slog.NewTextHandler(&errb, nil)),
		Getenv: func(k string) string {
			if k == "REWIND_S3_PATH_STYLE" {
				return "true"
			}
			return ""
		}}
	if code := Run(context.Background(), env, []string{"index", "--source", "s3://" + s3env.Bucket + "/capture", "--store", store}); code != exitOK {
		t.Fatalf("index from S3: exit %d\n%s", code, errb.String())
	}
	var sum struct {
		Source string `json:"source"`
		Events int64  `json:"events"`
	}
	if err := json.Unmarshal(out.Bytes(), &sum); err != nil || sum.Events != int64(len(evs)) || sum.Source != "s3://"+s3env.Bucket+"/capture" {
		t.Fatalf("summary %s (%v); want %d events from the bucket", out.String(), err, len(evs))
	}
	// The store remembers its S3 source: Athena's location defaults to it.
	code, sql, errs := runIndexCLI(t, "query", "--store", store, "--format", "athena")
	if code != exitOK || !strings.Contains(sql, "LOCATION 's3://"+s3env.Bucket+"/capture/'") {
		t.Fatalf("athena: exit %d\n%s%s", code, sql, errs)
	}
}

// TestIndexEmptySource: a source with no capture objects (empty, holding
// other files, a mistyped S3 prefix) is not a clean run of nothing: exit 3
// naming it and the layout expected. A directory that does not exist is an
// error naming it.
func TestIndexEmptySource(t *testing.T) {
	empty := t.TempDir()
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "README.txt"), []byte("not a capture"), 0o644)
	os.MkdirAll(filepath.Join(other, "table=orders", "dt=2026-11-20"), 0o755)
	for _, dir := range []string{empty, other} {
		store := filepath.Join(t.TempDir(), "store")
		code, out, errs := runIndexCLI(t, "index", "--source", dir, "--store", store)
		if code != exitPartial {
			t.Errorf("index of %s with no capture objects: exit %d, want %d\n%s", dir, code, exitPartial, errs)
		}
		for _, want := range []string{dir + " holds no capture objects", dir + "/table=<table>/dt=YYYY-MM-DD/hour=HH/<name>.parquet"} {
			if !strings.Contains(errs, want) {
				t.Errorf("index of %s: stderr does not say %q:\n%s", dir, want, errs)
			}
		}
		var sum struct {
			Kind   string `json:"kind"`
			Listed int    `json:"listed"`
		}
		if err := json.Unmarshal([]byte(out), &sum); err != nil || sum.Kind != "index" || sum.Listed != 0 {
			t.Errorf("index of %s: stdout %q: want the summary with 0 listed (%v)", dir, out, err)
		}
	}

	missing := filepath.Join(empty, "captrue")
	code, out, errs := runIndexCLI(t, "index", "--source", missing, "--store", filepath.Join(t.TempDir(), "store"))
	if code != exitError || !strings.Contains(errs, "source "+missing+" does not exist") || out != "" {
		t.Errorf("index of a missing directory: exit %d, want %d naming it\nstdout %q\nstderr %s", code, exitError, out, errs)
	}

	// A mistyped S3 prefix of a bucket that holds capture objects.
	s3env := localaws.S3ForTest(t)
	evs := indextest.NewGen(13).Events(30)
	for key, objEvs := range indextest.Objects("capture", evs, 40) {
		data, err := indextest.EncodeParquet(objEvs)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s3env.Client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &s3env.Bucket, Key: &key, Body: bytes.NewReader(data)}); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("AWS_ENDPOINT_URL_S3", s3env.Endpoint)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	var o, e bytes.Buffer
	env := &Env{Stdout: &o, Stderr: &e, Log: slog.New(slog.NewTextHandler(&e, nil)),
		Getenv: func(k string) string {
			if k == "REWIND_S3_PATH_STYLE" {
				return "true"
			}
			return ""
		}}
	uri := "s3://" + s3env.Bucket + "/captrue"
	code = Run(context.Background(), env, []string{"index", "--source", uri, "--store", filepath.Join(t.TempDir(), "store")})
	if code != exitPartial || !strings.Contains(e.String(), uri+" holds no capture objects") || !strings.Contains(e.String(), uri+"/table=<table>/dt=") {
		t.Errorf("index of a mistyped prefix: exit %d, want %d naming %s and the layout\n%s", code, exitPartial, uri, e.String())
	}
}

// TestIndexWindowCLI: index --from/--to reads only the hours needed; a
// query of that window answers as a full index would, and a query reaching
// outside it warns, naming the part unindexed and the command that adds
// it, with exit 3 when the answer is empty there.
func TestIndexWindowCLI(t *testing.T) {
	dir := t.TempDir()
	g := indextest.NewGen(13)
	g.Span = 5 * time.Hour // 09:58 to 14:58
	evs := g.Events(800)
	objs := indextest.Objects("capture", evs, 40)
	if err := indextest.WriteDir(dir, objs); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "capture")
	at := func(h int) string { return time.Date(2026, 11, 20, h, 0, 0, 0, time.UTC).Format(time.RFC3339) }
	store := filepath.Join(t.TempDir(), "store")
	full := filepath.Join(t.TempDir(), "full")

	code, out, errs := runIndexCLI(t, "index", "--source", src, "--store", store, "--from", at(11), "--to", at(12))
	if code != exitOK {
		t.Fatalf("index --from --to: exit %d\n%s", code, errs)
	}
	var sum struct{ Listed, Ingested int }
	json.Unmarshal([]byte(out), &sum)
	var inHours int
	for k := range objs {
		if strings.Contains(k, "/hour=10/") || strings.Contains(k, "/hour=11/") {
			inHours++
		}
	}
	if sum.Listed != inHours || sum.Ingested != inHours {
		t.Fatalf("index of 11:00-12:00 listed %d and ingested %d objects, want the %d of hours 10 and 11 of %d", sum.Listed, sum.Ingested, inHours, len(objs))
	}
	if code, _, errs := runIndexCLI(t, "index", "--source", src, "--store", full); code != exitOK {
		t.Fatalf("full index: exit %d\n%s", code, errs)
	}

	// Inside the window: the full store's answer, no warning.
	q := []string{"query", "--from", at(11), "--to", at(12), "--tenants", "acme"}
	code, got, errs := runIndexCLI(t, append(q, "--store", store)...)
	_, want, _ := runIndexCLI(t, append(q, "--store", full)...)
	if code != exitOK || got != want || got == "" || strings.Contains(errs, "not indexed") {
		t.Fatalf("query inside the window: exit %d, %d bytes (full store: %d)\n%s", code, len(got), len(want), errs)
	}

	// Reaching outside: warned, with the command that fills the gap.
	code, _, errs = runIndexCLI(t, "query", "--store", store, "--from", at(11), "--to", at(14))
	if code != exitOK || !strings.Contains(errs, "the store has not indexed ["+at(12)+", "+at(14)+") of the window") ||
		!strings.Contains(errs, "rewind index --store "+store+" --source "+src+" --from "+at(12)+" --to "+at(14)) {
		t.Fatalf("query reaching outside the window: exit %d\n%s", code, errs)
	}
	// Wholly outside, with changes the full store has: empty, warned, exit 3.
	code, out, errs = runIndexCLI(t, "stats", "--store", store, "--from", at(13), "--to", at(14))
	if code != exitPartial || !strings.Contains(errs, "not indexed ["+at(13)+", "+at(14)+")") {
		t.Fatalf("stats outside the window: exit %d, want %d\n%s\n%s", code, exitPartial, out, errs)
	}
}
