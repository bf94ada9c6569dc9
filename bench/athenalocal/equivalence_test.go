package athenalocal_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/athena"
	"github.com/aws/aws-sdk-go-v2/service/glue"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/bench/athenalocal"
	"github.com/ddbrewind/rewind/indexer"
	"github.com/ddbrewind/rewind/indexer/indextest"
	"github.com/ddbrewind/rewind/internal/cli"
	"github.com/ddbrewind/rewind/internal/localaws"
	"github.com/ddbrewind/rewind/query"
	"github.com/parquet-go/parquet-go"
)

// stack is a local S3 holding a capture, the Athena/Glue stand-in over it,
// and the store indexed from it by `rewind index`.
type stack struct {
	s3      *localaws.S3
	s3c     *s3.Client
	bucket  string
	ath     *athenalocal.Server
	store   string
	evs     []rewind.ChangeEvent
	athena  *athena.Client
	glue    *glue.Client
	objects int
}

const (
	capturePrefix = "capture"
	resultBucket  = "athena-results"
)

func newStack(t *testing.T, seed uint64, n int) *stack {
	t.Helper()
	return newStackFrom(t, indextest.NewGen(seed).Events(n), 40)
}

func newStackFrom(t *testing.T, evs []rewind.ChangeEvent, per int) *stack {
	t.Helper()
	ctx := context.Background()
	srv, err := localaws.StartS3(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	cfg, err := srv.Config(ctx, "athenalocal")
	if err != nil {
		t.Fatal(err)
	}
	st := &stack{s3: srv, s3c: localaws.NewS3Client(cfg), bucket: "capture-bucket"}
	if _, err := st.s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &st.bucket}); err != nil {
		t.Fatal(err)
	}
	st.evs = evs
	objs := indextest.Objects(capturePrefix, st.evs, per)
	for key, evs := range objs {
		st.put(t, key, evs)
	}
	// A retried stream batch: the same records again in another object.
	for key, evs := range objs {
		st.put(t, strings.TrimSuffix(key, ".parquet")+"-retry.parquet", evs)
		break
	}
	// An object whose writer stored an empty decode_error rather than
	// NULL for decoded events (parquet-go writes a non-nil empty slice
	// so): they are decoded events all the same.
	for key, evs := range objs {
		rows := make([]rewind.ParquetRow, 0, len(evs))
		for i := range evs {
			if evs[i].DecodeError != "" {
				continue
			}
			e := evs[i]
			e.EventID = "empty-decode-error-" + e.EventID
			var r rewind.ParquetRow
			e.ToParquetRow(&r)
			r.DecodeError = []byte{}
			rows = append(rows, r)
		}
		var buf bytes.Buffer
		if err := parquet.Write(&buf, rows); err != nil {
			t.Fatal(err)
		}
		k := strings.TrimSuffix(key, ".parquet") + "-empty-decode-error.parquet"
		if _, err := st.s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: &st.bucket, Key: &k, Body: bytes.NewReader(buf.Bytes())}); err != nil {
			t.Fatal(err)
		}
		st.evs = append(st.evs, evs...) // the same times, for the window picks
		break
	}
	st.ath, err = athenalocal.Start(st.s3c)
	if err != nil {
		t.Fatal(err)
	}
	// The workgroup's result location, in a bucket of its own.
	if _, err := st.s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(resultBucket)}); err != nil {
		t.Fatal(err)
	}
	st.ath.OutputLocation = "s3://" + resultBucket + "/rewind/"
	t.Cleanup(func() { st.ath.Close() })
	acfg := cfg.Copy()
	acfg.BaseEndpoint = aws.String(st.ath.URL)
	st.athena, st.glue = athena.NewFromConfig(acfg), glue.NewFromConfig(acfg)
	st.store = filepath.Join(t.TempDir(), "store")
	if code, _, errs := st.run(t, "index", "--source", st.location(), "--store", st.store); code != 0 {
		t.Fatalf("index: exit %d\n%s", code, errs)
	}
	return st
}

func (st *stack) put(t *testing.T, key string, evs []rewind.ChangeEvent) {
	t.Helper()
	data, err := indextest.EncodeParquet(evs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.s3c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &st.bucket, Key: &key, Body: bytes.NewReader(data)}); err != nil {
		t.Fatal(err)
	}
	st.objects++
}

func (st *stack) location() string { return "s3://" + st.bucket + "/" + capturePrefix }

func (st *stack) env(out, errb io.Writer) *cli.Env {
	return &cli.Env{
		Stdout: out, Stderr: errb, Log: slog.New(slog.NewTextHandler(errb, nil)),
		Getenv: func(string) string { return "" },
		AWS: &cli.AWS{
			Endpoints:   map[string]string{"S3": st.s3.Endpoint, "Athena": st.ath.URL, "Glue": st.ath.URL},
			Region:      localaws.Region,
			Credentials: credentials.NewStaticCredentialsProvider("athenalocal", localaws.SecretAccessKey, ""),
			S3PathStyle: true,
		},
	}
}

// run runs the rewind CLI in-process.
func (st *stack) run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return st.runCtx(context.Background(), args...)
}

func (st *stack) runCtx(ctx context.Context, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := cli.Run(ctx, st.env(&out, &errb), args)
	return code, out.String(), errb.String()
}

// TestAthenaEngineEqualsLocalCLI: for each filter, `rewind query --engine
// athena` through the real SDK clients prints the local index's key set
// byte for byte, and the Glue table it made has the projection.
func TestAthenaEngineEqualsLocalCLI(t *testing.T) {
	st := newStack(t, 7, 1200)
	from := st.evs[len(st.evs)/5].Time.Format(time.RFC3339Nano)
	to := st.evs[len(st.evs)*3/4].Time.Format(time.RFC3339Nano)
	cases := [][]string{
		nil,
		{"--from", from, "--to", to},
		{"--tenants", "acme,globex"},
		{"--tables", "orders,ledger", "--from", from},
		{"--actions", "MODIFY,REMOVE", "--to", to},
		{"--ttl", "exclude"},
		{"--ttl", "only"},
		{"--key-prefix", "pk=TENANT#a"},
		{"--key-prefix", "id=-4"},
		{"--match", "new.deployVersion=v42"},
		{"--match", "old.status!=paid", "--match", "new.amount=12.5"},
		{"--match", "new.paid=true"},
		{"--match", "new.blob=AAA="},
		{"--changed", "status,amount"},
		{"--tenants", "ünïcødé,a#b", "--changed", "deployVersion", "--from", from, "--to", to},
	}
	nonEmpty := 0
	for _, c := range cases {
		args := append([]string{"query", "--store", st.store}, c...)
		code, want, errs := st.run(t, args...)
		if code != 0 && code != 3 {
			t.Fatalf("%v local: exit %d\n%s", c, code, errs)
		}
		code, got, errs := st.run(t, append(args, "--engine", "athena", "--athena-poll", "5ms")...)
		if code != 0 {
			t.Fatalf("%v athena: exit %d\n%s", c, code, errs)
		}
		if got != want {
			t.Fatalf("%v: the Athena key set differs from the local one\nathena:\n%s\nlocal:\n%s\nstderr:\n%s", c, got, want, errs)
		}
		if want != "" {
			nonEmpty++
		}
		if !strings.Contains(errs, "SUCCEEDED") || !strings.Contains(errs, "scanned (about $") {
			t.Errorf("%v: stderr shows no progress with the state and cost:\n%s", c, errs)
		}
	}
	if nonEmpty < len(cases)-2 {
		t.Fatalf("only %d of %d cases matched anything", nonEmpty, len(cases))
	}
	tbl := st.ath.Table(query.DefaultAthenaDatabase, query.DefaultAthenaTable)
	params, _ := tbl["Parameters"].(map[string]any)
	if params["projection.enabled"] != "true" || params["projection.table.values"] != "ledger,orders,users" ||
		params["storage.location.template"] != st.location()+"/table=${table}/dt=${dt}/hour=${hour}/" {
		t.Fatalf("Glue table parameters %v", params)
	}
	// User input reaches Athena as execution parameters only.
	sqls, ps := st.ath.Queries()
	last := sqls[len(sqls)-1]
	if strings.Contains(last, "deployVersion") || strings.Contains(last, "ünïcødé") || !strings.Contains(strings.Join(ps[len(ps)-1], " "), "'ünïcødé'") {
		t.Fatalf("the filters were spliced into the SQL, or not passed as parameters:\n%s\n%q", last, ps[len(ps)-1])
	}
}

// randomQuery draws a query as the query package's property test does,
// with bounds often on event times.
func randomQuery(rng *rand.Rand, evs []rewind.ChangeEvent) query.Query {
	var q query.Query
	pick := func() time.Time { return evs[rng.IntN(len(evs))].Time }
	switch rng.IntN(4) {
	case 1:
		a, b := pick(), pick()
		if b.Before(a) {
			a, b = b, a
		}
		q.From, q.To = a, b.Add(time.Duration(rng.IntN(2))*time.Microsecond)
		if !q.To.After(q.From) {
			q.To = q.From.Add(time.Microsecond)
		}
	case 2:
		q.From = pick()
	case 3:
		q.To = pick()
	}
	tenants := []string{"acme", "globex", "initech", "umbrella", "hooli", "", "ünïcødé", "a#b", "acme2", "nobody"}
	for range rng.IntN(3) {
		q.Tenants = append(q.Tenants, tenants[rng.IntN(len(tenants))])
	}
	if rng.IntN(3) == 0 {
		q.Tables = []string{[]string{"orders", "users", "ledger"}[rng.IntN(3)]}
	}
	if rng.IntN(3) == 0 {
		q.Actions = []rewind.Action{[]rewind.Action{rewind.ActionInsert, rewind.ActionModify, rewind.ActionRemove}[rng.IntN(3)]}
	}
	q.TTL = query.TTLFilter(rng.IntN(3))
	if rng.IntN(5) == 0 {
		q.KeyPrefixes = []query.KeyPrefix{{Attr: "pk", Prefix: []string{"TENANT#a", "TENANT#", "TENANT#acme#"}[rng.IntN(3)]}}
	}
	if rng.IntN(3) == 0 {
		q.Changed = []string{[]string{"status", "deployVersion", "amount", "paid"}[rng.IntN(4)]}
	}
	matches := []string{"new.blob=AAA=", "new.deployVersion=v42", "old.deployVersion=v41", "new.status!=paid", "old.status=paid", "new.amount=12.5", "new.paid=true", "old.paid!=false", "new.nope=x"}
	for range rng.IntN(3) {
		m, err := query.ParseMatch(matches[rng.IntN(len(matches))])
		if err != nil {
			panic(err)
		}
		q.Matches = append(q.Matches, m)
	}
	return q
}

// TestAthenaKeySetProperty: on random events and random queries, the key
// set from Athena (the stand-in, through the SDK clients) equals the
// local index's byte for byte, with the results read over many pages.
func TestAthenaKeySetProperty(t *testing.T) {
	st := newStack(t, 42, 1500)
	st.ath.PageSize = 7 // many result pages
	ctx := context.Background()
	s, err := indexer.Open(st.store, indexer.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	o, err := query.AthenaDefaults(s, query.AthenaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := query.EnsureAthenaTable(ctx, st.glue, o, 0); err != nil {
		t.Fatal(err)
	}
	if again, err := query.EnsureAthenaTable(ctx, st.glue, o, 0); err != nil || again != "unchanged" {
		t.Fatalf("EnsureAthenaTable again: %q, %v; want unchanged", again, err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	nonEmpty, maxPages := 0, 0
	for i := range 60 {
		q := randomQuery(rng, st.evs)
		var want, got bytes.Buffer
		if _, err := query.KeySet(ctx, s, q, &want, query.KeySetOptions{}); err != nil {
			t.Fatalf("query %d %+v: local: %v", i, q, err)
		}
		res, err := query.AthenaKeySet(ctx, st.athena, q, o, query.AthenaRunOptions{Poll: 5 * time.Millisecond}, &got)
		if err != nil {
			t.Fatalf("query %d %+v: athena: %v", i, q, err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("query %d %+v:\nathena\n%s\nlocal\n%s", i, q, got.Bytes(), want.Bytes())
		}
		if want.Len() > 0 {
			nonEmpty++
		}
		if want := int(res.Rows/7) + 1; res.Pages < want {
			t.Fatalf("query %d: %d rows in %d pages of at most 7 rows (with the header)", i, res.Rows, res.Pages)
		}
		maxPages = max(maxPages, res.Pages)
	}
	if nonEmpty < 20 || maxPages < 10 {
		t.Fatalf("%d of 60 queries matched anything, at most %d pages: too few to compare", nonEmpty, maxPages)
	}
}

// TestAthenaFailedAndCancelled: a query Athena fails prints Athena's
// reason and exits 1; Ctrl-C while it runs stops it (StopQueryExecution)
// and exits 130.
func TestAthenaFailedAndCancelled(t *testing.T) {
	st := newStack(t, 9, 200)
	// A corrupt object in the capture: the engine cannot read it.
	key := capturePrefix + "/table=orders/dt=2026-11-20/hour=10/stream-corrupt.parquet"
	if _, err := st.s3c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &st.bucket, Key: &key, Body: strings.NewReader("not parquet")}); err != nil {
		t.Fatal(err)
	}
	code, out, errs := st.run(t, "query", "--store", st.store, "--engine", "athena", "--athena-poll", "5ms")
	if code != 1 || out != "" || !strings.Contains(errs, "failed: ") || !strings.Contains(errs, "stream-corrupt.parquet") {
		t.Fatalf("query over a corrupt object: exit %d, stdout %q\n%s", code, out, errs)
	}
	if _, err := st.s3c.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: &st.bucket, Key: &key}); err != nil {
		t.Fatal(err)
	}

	st.ath.Hold = make(chan struct{})
	defer close(st.ath.Hold)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var code2 int
	var out2, errs2 string
	go func() {
		defer close(done)
		code2, out2, errs2 = st.runCtx(ctx, "query", "--store", st.store, "--engine", "athena", "--athena-poll", "5ms")
	}()
	time.Sleep(300 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the query did not end after its context was cancelled")
	}
	if code2 != 130 || out2 != "" || st.ath.Stops() != 1 || !strings.Contains(errs2, "stopped") {
		t.Fatalf("cancelled query: exit %d, %d stop call(s), stdout %q\n%s", code2, st.ath.Stops(), out2, errs2)
	}
}

// countObjects counts the capture's data objects.
func (st *stack) countObjects(t *testing.T) (data, manifests int) {
	t.Helper()
	p := s3.NewListObjectsV2Paginator(st.s3c, &s3.ListObjectsV2Input{Bucket: &st.bucket, Prefix: aws.String(capturePrefix + "/")})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			switch {
			case strings.HasSuffix(*o.Key, "/_manifest.json"):
				manifests++
			case strings.HasSuffix(*o.Key, ".parquet"):
				data++
			}
		}
	}
	return data, manifests
}

// TestAthenaBeforeAndAfterCompaction: `rewind compact` turns many small
// objects into one per hour; the local index built before compaction, an
// index built after, and Athena after all print the key sets printed
// before, byte for byte.
func TestAthenaBeforeAndAfterCompaction(t *testing.T) {
	st := newStack(t, 11, 1500)
	cases := [][]string{nil, {"--tenants", "acme,hooli"}, {"--match", "new.deployVersion=v42", "--ttl", "exclude"},
		{"--from", st.evs[300].Time.Format(time.RFC3339Nano), "--to", st.evs[900].Time.Format(time.RFC3339Nano)}}
	before := map[int]string{}
	for i, c := range cases {
		code, out, errs := st.run(t, append([]string{"query", "--store", st.store}, c...)...)
		if code != 0 || out == "" {
			t.Fatalf("%v: exit %d, %d bytes\n%s", c, code, len(out), errs)
		}
		before[i] = out
	}
	objsBefore, _ := st.countObjects(t)
	code, out, errs := st.run(t, "compact", "--source", st.location(), "--grace", "1m")
	if code != 0 {
		t.Fatalf("compact: exit %d\n%s%s", code, out, errs)
	}
	objsAfter, manifests := st.countObjects(t)
	if objsAfter*3 > objsBefore || manifests == 0 || objsAfter < manifests {
		t.Fatalf("compact: %d objects before, %d after with %d manifests: want one file per hour (hours of one object are left as they are)\n%s", objsBefore, objsAfter, manifests, errs)
	}
	// Again: nothing to do.
	if code, out, errs := st.run(t, "compact", "--source", st.location(), "--grace", "1m"); code != 0 || !strings.Contains(out, `"hours_compacted":0`) {
		t.Fatalf("compact again: exit %d\n%s%s", code, out, errs)
	}
	// The old store, indexed again from the compacted capture, and a new one.
	if code, _, errs := st.run(t, "index", "--source", st.location(), "--store", st.store); code != 0 {
		t.Fatalf("index the old store again: exit %d\n%s", code, errs)
	}
	fresh := filepath.Join(t.TempDir(), "fresh")
	if code, _, errs := st.run(t, "index", "--source", st.location(), "--store", fresh); code != 0 {
		t.Fatalf("index after compaction: exit %d\n%s", code, errs)
	}
	for i, c := range cases {
		for _, args := range [][]string{
			append([]string{"query", "--store", st.store}, c...),
			append([]string{"query", "--store", fresh}, c...),
			append([]string{"query", "--store", fresh, "--engine", "athena", "--athena-poll", "5ms"}, c...),
		} {
			code, out, errs := st.run(t, args...)
			if code != 0 || out != before[i] {
				t.Fatalf("%v after compaction: exit %d\n%s\nwant the key set from before:\n%s\n%s", args, code, out, before[i], errs)
			}
		}
	}
}
