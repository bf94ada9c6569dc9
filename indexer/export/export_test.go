package export

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/internal/localaws"
)

var tenantRule = rewind.TenantRule{Regex: regexp.MustCompile(`^TENANT#(.+)$`)}

// got is the part of an event the tests compare.
type got struct {
	Action  rewind.Action
	Time    string
	Key     string
	Tenant  string
	Changed []string
	Old     string
	New     string
}

func summarize(ev *rewind.ChangeEvent) got {
	return got{
		Action: ev.Action, Time: ev.Time.Format(time.RFC3339Nano), Key: ev.Keys.String(),
		Tenant: ev.Tenant, Changed: ev.ChangedAttributes, Old: string(ev.OldImage), New: string(ev.NewImage),
	}
}

func readAllEvents(t *testing.T, e *Export) []*rewind.ChangeEvent {
	t.Helper()
	var evs []*rewind.ChangeEvent
	for ev, err := range e.Events(t.Context()) {
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	return evs
}

func TestReadMultiFile(t *testing.T) {
	e, err := Open(t.Context(), fixtureDir(t, "multi-file")+"/", Config{Tenant: tenantRule})
	if err != nil {
		t.Fatal(err)
	}
	if e.ID != "01795172412345-a1b2c3d4" || e.Table != "orders" || e.Region != "eu-west-1" || e.View != ViewNewAndOld ||
		!e.From.Equal(time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)) || !e.To.Equal(time.Date(2026, 11, 20, 11, 0, 0, 0, time.UTC)) {
		t.Fatalf("export = %s %s %s %s [%s, %s)", e.ID, e.Table, e.Region, e.View, e.From, e.To)
	}
	if len(e.Files) != 3 || e.Files[2].ItemCount != 0 || e.Files[1].ManifestLine != 2 {
		t.Fatalf("files = %+v", e.Files)
	}
	// The data files are in the shared data folder next to the export's.
	if want := filepath.Join("multi-file", "AWSDynamoDB", "data", "mz7a2ys6uzhcbdx6h3yz5mdn4e.json.gz"); !filepath.IsAbs(e.Files[1].Name) || !strings.HasSuffix(e.Files[1].Name, want) {
		t.Errorf("file name %s, want an absolute path ending in %s", e.Files[1].Name, want)
	}
	evs := readAllEvents(t, e)
	key := func(tenant, order string) string {
		return `{"pk":{"S":"TENANT#` + tenant + `"},"sk":{"S":"ORDER#` + order + `"}}`
	}
	want := []got{
		{rewind.ActionInsert, "2026-11-20T10:04:05.000123Z", key("acme", "0001"), "acme",
			[]string{"deployVersion", "pk", "sk", "status", "total"}, "",
			`{"deployVersion":{"S":"v42"},"pk":{"S":"TENANT#acme"},"sk":{"S":"ORDER#0001"},"status":{"S":"new"},"total":{"N":"12.5"}}`},
		{rewind.ActionModify, "2026-11-20T10:10:00Z", key("acme", "0002"), "acme", []string{"deployVersion", "status"},
			`{"deployVersion":{"S":"v41"},"pk":{"S":"TENANT#acme"},"sk":{"S":"ORDER#0002"},"status":{"S":"paid"},"total":{"N":"99"}}`,
			`{"deployVersion":{"S":"v42"},"pk":{"S":"TENANT#acme"},"sk":{"S":"ORDER#0002"},"status":{"S":"cancelled"},"total":{"N":"99"}}`},
		{rewind.ActionModify, "2026-11-20T10:25:00.000007Z", key("globex", "0003"), "globex", []string{"note"},
			`{"note":{"S":"gift wrap"},"pk":{"S":"TENANT#globex"},"sk":{"S":"ORDER#0003"},"status":{"S":"paid"}}`,
			`{"pk":{"S":"TENANT#globex"},"sk":{"S":"ORDER#0003"},"status":{"S":"paid"}}`},
		{rewind.ActionRemove, "2026-11-20T10:31:12Z", key("acme", "0004"), "acme", []string{"pk", "sk", "status", "total"},
			`{"pk":{"S":"TENANT#acme"},"sk":{"S":"ORDER#0004"},"status":{"S":"paid"},"total":{"N":"7"}}`, ""},
		{rewind.ActionRemove, "2026-11-20T10:31:12Z", key("globex", "0005"), "globex", []string{"pk", "sk", "status"},
			`{"pk":{"S":"TENANT#globex"},"sk":{"S":"ORDER#0005"},"status":{"S":"new"}}`, ""},
	}
	var gots []got
	for _, ev := range evs[:5] {
		gots = append(gots, summarize(ev))
	}
	if d := cmp.Diff(want, gots); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
	// Sets in another order and numbers written differently are not
	// changes; a new attribute and a changed nested map are.
	if last := evs[5]; last.Action != rewind.ActionModify || !cmp.Equal(last.ChangedAttributes, []string{"flag", "meta"}) ||
		last.Time.Format(time.RFC3339Nano) != "2026-11-20T10:59:59.999999Z" {
		t.Errorf("last event %s at %s changed %v, want MODIFY at 10:59:59.999999 of flag, meta", last.Action, last.Time, last.ChangedAttributes)
	}
	ids := map[string]bool{}
	for _, ev := range evs {
		if w := ev.Export; w.ID != e.ID || !w.From.Equal(e.From) || !w.To.Equal(e.To) || ev.ShardID != "" {
			t.Errorf("event %s: export window %s, shard id %q: want %s and no shard id", ev.EventID, w, ev.ShardID, rewind.ExportWindow{ID: e.ID, From: e.From, To: e.To})
		}
		if ev.Table != "orders" || ev.Region != "eu-west-1" || ev.StreamViewType != ViewNewAndOld || ev.SequenceNumber != "" || ev.SizeBytes < 100 {
			t.Errorf("event %s: table %q region %q view %q seq %q size %d", ev.EventID, ev.Table, ev.Region, ev.StreamViewType, ev.SequenceNumber, ev.SizeBytes)
		}
		if !regexp.MustCompile(`^export:01795172412345-a1b2c3d4:[0-9a-f]{32}$`).MatchString(ev.EventID) || ids[ev.EventID] {
			t.Errorf("event id %q: not export:<id>:<hex> or not unique", ev.EventID)
		}
		ids[ev.EventID] = true
	}
	// Reading again gives the same IDs.
	again := readAllEvents(t, e)
	for i := range evs {
		if again[i].EventID != evs[i].EventID {
			t.Fatalf("event %d: id %s then %s", i, evs[i].EventID, again[i].EventID)
		}
	}
}

func TestReadBinaryAndNumberKeys(t *testing.T) {
	e, err := Open(t.Context(), filepath.Join(fixtureDir(t, "binary-number-keys"), "manifest-summary.json"),
		Config{Tenant: rewind.TenantRule{Attribute: "acct"}})
	if err != nil {
		t.Fatal(err)
	}
	evs := readAllEvents(t, e)
	if len(evs) != 3 {
		t.Fatalf("%d events, want 3", len(evs))
	}
	for i, w := range []struct {
		action rewind.Action
		key    rewind.Key
		tenant string
	}{
		{rewind.ActionInsert, rewind.Key{{Name: "acct", Type: 'B', Value: "\x00\x01\x02\xff"}, {Name: "seq", Type: 'N', Value: "42"}}, "AAEC/w=="},
		{rewind.ActionModify, rewind.Key{{Name: "acct", Type: 'B', Value: "\x00\x01\x02\xff"}, {Name: "seq", Type: 'N', Value: "-7.5"}}, "AAEC/w=="},
		{rewind.ActionRemove, rewind.Key{{Name: "acct", Type: 'B', Value: "\xff\xff\xff\xff"}, {Name: "seq", Type: 'N', Value: "10000000000000000000000000000000000001"}}, "/////w=="},
	} {
		if evs[i].Action != w.action || !evs[i].Keys.Equal(w.key) || evs[i].Tenant != w.tenant {
			t.Errorf("event %d: %s %s tenant %q, want %s %s %q", i, evs[i].Action, evs[i].Keys, evs[i].Tenant, w.action, w.key, w.tenant)
		}
	}
	if evs[0].Region != "us-east-1" || evs[0].Table != "ledger" {
		t.Errorf("table %s region %s", evs[0].Table, evs[0].Region)
	}
}

func TestReadNewImageView(t *testing.T) {
	e, err := Open(t.Context(), fixtureDir(t, "new-image-view"), Config{Tenant: rewind.TenantRule{Attribute: "id"}})
	if err != nil {
		t.Fatal(err)
	}
	evs := readAllEvents(t, e)
	// NEW_IMAGE cannot tell an insert from an update: MODIFY without an
	// old image. A delete is Keys only.
	if len(evs) != 2 || evs[0].Action != rewind.ActionModify || evs[0].OldImage != nil || evs[0].NewImage == nil ||
		evs[1].Action != rewind.ActionRemove || evs[1].OldImage != nil || evs[1].NewImage != nil || evs[1].ChangedAttributes != nil ||
		evs[0].StreamViewType != ViewNew {
		for _, ev := range evs {
			t.Logf("%+v", summarize(ev))
		}
		t.Fatal("NEW_IMAGE export decoded wrong")
	}
}

// copyFixture copies a fixture's bucket prefix into a temporary directory
// and returns the export directory in the copy.
func copyFixture(t *testing.T, name string) string {
	t.Helper()
	dst := t.TempDir()
	src := filepath.Join(fixtureRoot, name)
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := filepath.Glob(filepath.Join(dst, "AWSDynamoDB", "0*"))
	return m[0]
}

func readErr(t *testing.T, dir string) error {
	t.Helper()
	e, err := Open(t.Context(), dir, Config{Tenant: tenantRule})
	if err != nil {
		return err
	}
	for _, err := range e.Events(t.Context()) {
		if err != nil {
			return err
		}
	}
	return nil
}

func editFile(t *testing.T, path string, edit func([]byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, edit(b), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReadErrors(t *testing.T) {
	const dataFile = "mz7a2ys6uzhcbdx6h3yz5mdn4e.json.gz"
	dataPath := func(dir string) string { return filepath.Join(dir, "..", "data", dataFile) }
	replaceInSummary := func(old, new string) func(string) {
		return func(dir string) {
			editFile(t, filepath.Join(dir, "manifest-summary.json"), func(b []byte) []byte {
				return bytes.Replace(b, []byte(old), []byte(new), 1)
			})
		}
	}
	for _, tc := range []struct {
		name   string
		damage func(dir string)
		want   []string
	}{
		{"bad md5", func(dir string) {
			// A valid gzip with other content: only the MD5 catches it.
			editFile(t, dataPath(dir), func([]byte) []byte {
				src, _ := os.ReadFile(filepath.Join(fixtureRoot, "multi-file", "source", "mz7a2ys6uzhcbdx6h3yz5mdn4e.jsonl"))
				return gzipBytes(t, bytes.Replace(src, []byte(`"paid"`), []byte(`"PAID"`), 1))
			})
		}, []string{dataFile, "does not match md5Checksum bdmFOvyxcUAM+p6gTYCnhw==", "manifest-files.json line 2"}},
		{"truncated gzip", func(dir string) {
			editFile(t, dataPath(dir), func(b []byte) []byte { return b[:len(b)-30] })
		}, []string{dataFile, "corrupt or truncated gzip", "unexpected EOF"}},
		{"not gzip", func(dir string) {
			editFile(t, dataPath(dir), func([]byte) []byte { return []byte("{}\n") })
		}, []string{dataFile, "not gzip"}},
		{"missing data file", func(dir string) { os.Remove(dataPath(dir)) }, []string{dataFile, "no such file"}},
		{"item count", func(dir string) {
			editFile(t, filepath.Join(dir, "manifest-files.json"), func(b []byte) []byte {
				return bytes.Replace(b, []byte(`"itemCount":3,"md5Checksum":"bdmF`), []byte(`"itemCount":4,"md5Checksum":"bdmF`), 1)
			})
		}, []string{dataFile, "3 items, but manifest-files.json line 2 says itemCount 4"}},
		{"bad line", func(dir string) {
			src, _ := os.ReadFile(filepath.Join(fixtureRoot, "multi-file", "source", "mz7a2ys6uzhcbdx6h3yz5mdn4e.jsonl"))
			bad := gzipBytes(t, bytes.Replace(src, []byte(`"status":{"S":"new"}`), []byte(`"status":{"X":"new"}`), 1))
			os.WriteFile(dataPath(dir), bad, 0o644)
		}, []string{dataFile, "line 2", `key {"pk":{"S":"TENANT#globex"},"sk":{"S":"ORDER#0005"}}`, "OldImage"}},
		{"unknown manifest version", replaceInSummary(`"2023-08-01"`, `"2031-01-01"`), []string{"manifest-summary.json", `unknown manifest version "2031-01-01"`}},
		{"full export", func(dir string) {
			replaceInSummary(`"2023-08-01"`, `"2020-06-30"`)(dir)
			replaceInSummary(`"exportType": "INCREMENTAL_EXPORT"`, `"exportTime": "2026-11-20T11:00:00.000Z"`)(dir)
		}, []string{"full export"}},
		{"ion", replaceInSummary(`"DYNAMODB_JSON"`, `"ION"`), []string{`outputFormat "ION"`}},
		{"key outside the layout", func(dir string) {
			editFile(t, filepath.Join(dir, "manifest-files.json"), func(b []byte) []byte {
				return bytes.Replace(b, []byte("incident/2026-11-20/AWSDynamoDB/data/mz7a"), []byte("incident/2026-11-20/AWSDynamoDB/../../mz7a"), 1)
			})
		}, []string{"manifest-files.json line 2", "is not under incident/2026-11-20/AWSDynamoDB/"}},
		{"bad manifest line", func(dir string) {
			editFile(t, filepath.Join(dir, "manifest-files.json"), func(b []byte) []byte { return append(b, "{\"itemCount\":\n"...) })
		}, []string{"manifest-files.json: line 4"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyFixture(t, "multi-file")
			tc.damage(dir)
			err := readErr(t, dir)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestOpenLocation(t *testing.T) {
	for _, loc := range []string{"testdata/exports/multi-file", "s3://bucket", "s3://bucket/AWSDynamoDB/", "http://x/AWSDynamoDB/1"} {
		if _, err := Open(t.Context(), loc, Config{S3: &s3.Client{}}); err == nil {
			t.Errorf("Open(%q) accepted a location that is not an export directory", loc)
		}
	}
}

func TestDecodeLineFallbacks(t *testing.T) {
	e := &Export{ID: "x", Table: "t", To: time.Date(2026, 1, 1, 0, 15, 0, 0, time.UTC), View: ViewNewAndOld}
	ev, err := e.decodeLine([]byte(`{"Keys":{"pk":{"S":"a"}},"NewImage":{"pk":{"S":"a"}}}`))
	if err != nil || !ev.Time.Equal(e.To.Add(-time.Microsecond)) || ev.Action != rewind.ActionInsert || ev.Tenant != "a" {
		t.Errorf("no Metadata: %v at %s %s tenant %q, want INSERT at the window's last microsecond", err, ev.Time, ev.Action, ev.Tenant)
	}
	ev, err = e.decodeLine([]byte(`{"Metadata":{"WriteTimestampMicros":1767225600000001},"Keys":{"pk":{"S":"a"}},"OldImage":null}`))
	if err != nil || ev.Time.UnixMicro() != 1767225600000001 || ev.Action != rewind.ActionRemove {
		t.Errorf("bare number: %v %s %s", err, ev.Time, ev.Action)
	}
	for _, bad := range []string{`{}`, `[1]`, `{"Keys":{"pk":{"S":"a"}},"Metadata":{"WriteTimestampMicros":{"S":"1"}}}`, `{"Keys":{"pk":{"M":{}}}}`} {
		if _, err := e.decodeLine([]byte(bad)); err == nil {
			t.Errorf("decodeLine(%s) accepted it", bad)
		}
	}
}

func TestEmptyObject(t *testing.T) {
	// AWS writes an empty file for an empty partition: no bytes at all is
	// as good as an empty gzip.
	dir := copyFixture(t, "multi-file")
	empty := filepath.Join(dir, "..", "data", "w2q4tevsgtd4fhfwvvhcd7shdy.json.gz")
	os.WriteFile(empty, nil, 0o644)
	sum := md5.Sum(nil)
	editFile(t, filepath.Join(dir, "manifest-files.json"), func(b []byte) []byte {
		return bytes.Replace(b, []byte("8NeZiLd3LAA9BKKL10F6Yg=="), []byte(base64.StdEncoding.EncodeToString(sum[:])), 1)
	})
	if err := readErr(t, dir); err != nil {
		t.Fatal(err)
	}
}

// TestReadFromS3 reads the fixture from S3 after a copy to another bucket
// and prefix: data keys are re-rooted under the location given.
func TestReadFromS3(t *testing.T) {
	env := localaws.S3ForTest(t)
	root := filepath.Join(fixtureRoot, "multi-file")
	err := filepath.WalkDir(filepath.Join(root, "AWSDynamoDB"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		b, _ := os.ReadFile(p)
		_, err = env.Client.PutObject(t.Context(), &s3.PutObjectInput{
			Bucket: aws.String(env.Bucket), Key: aws.String("copied/" + filepath.ToSlash(rel)), Body: bytes.NewReader(b),
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	loc := "s3://" + env.Bucket + "/copied/AWSDynamoDB/01795172412345-a1b2c3d4/"
	e, err := Open(t.Context(), loc, Config{S3: env.Client, Tenant: tenantRule})
	if err != nil {
		t.Fatal(err)
	}
	if e.Location() != loc || e.Files[0].Name != "s3://"+env.Bucket+"/copied/AWSDynamoDB/data/kp3zpxhkqq4hrlmfsbjvr6fmgu.json.gz" {
		t.Errorf("location %s, first file %s", e.Location(), e.Files[0].Name)
	}
	if n, err := e.Size(t.Context(), e.Files[0]); err != nil || n < 100 {
		t.Errorf("Size = %d, %v", n, err)
	}
	fromS3 := readAllEvents(t, e)
	local, err := Open(t.Context(), fixtureDir(t, "multi-file"), Config{Tenant: tenantRule})
	if err != nil {
		t.Fatal(err)
	}
	fromDir := readAllEvents(t, local)
	if len(fromS3) != 6 || !cmp.Equal(fromS3, fromDir) {
		t.Errorf("S3 and directory reads differ: %d and %d events", len(fromS3), len(fromDir))
	}
	// A context cancelled mid-read stops it.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := e.ReadFile(ctx, e.Files[0], func(*rewind.ChangeEvent) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled read: %v", err)
	}
}

// TestTTLInference: an export removal whose old image's TTL attribute is
// at or before the window's end is a TTL expiry; one after it, without
// the attribute or with a non-Number is a delete; without a TTL attribute
// known or without an old image it cannot be told, and is counted.
func TestTTLInference(t *testing.T) {
	end := time.Date(2026, 11, 20, 11, 0, 0, 0, time.UTC)
	e := &Export{ID: "x", Table: "t", From: end.Add(-time.Hour), To: end, View: ViewNewAndOld, ttlAttr: "expiresAt"}
	removal := func(ttl string) string {
		return `{"Keys":{"pk":{"S":"a"}},"OldImage":{"pk":{"S":"a"}` + ttl + `}}`
	}
	endS := strconv.FormatInt(end.Unix(), 10)
	for _, c := range []struct {
		line string
		ttl  bool
	}{
		{removal(`,"expiresAt":{"N":"` + endS + `"}`), true},                                 // at the end
		{removal(`,"expiresAt":{"N":"1700000000.5"}`), true},                                 // long before
		{removal(`,"expiresAt":{"N":"` + strconv.FormatInt(end.Unix()+1, 10) + `"}`), false}, // after the end: a delete
		{removal(`,"expiresAt":{"S":"1700000000"}`), false},                                  // not a Number: TTL ignores it
		{removal(``), false}, // no TTL value
		{`{"Keys":{"pk":{"S":"a"}},"OldImage":{"pk":{"S":"a"},"expiresAt":{"N":"1"}},"NewImage":{"pk":{"S":"a"},"expiresAt":{"N":"1"},"x":{"S":"y"}}}`, false}, // not a removal
	} {
		ev, err := e.decodeLine([]byte(c.line))
		if err != nil {
			t.Fatal(err)
		}
		if ev.TTLExpiry != c.ttl {
			t.Errorf("%s: TTLExpiry %v, want %v", c.line, ev.TTLExpiry, c.ttl)
		}
	}
	if got := e.TTLCounts(); got != (TTLCounts{Inferred: 2}) {
		t.Errorf("counts %+v, want 2 inferred", got)
	}
	// NEW_IMAGE exports: a removal has Keys only.
	if _, err := e.decodeLine([]byte(`{"Keys":{"pk":{"S":"a"}}}`)); err != nil {
		t.Fatal(err)
	}
	unknown := &Export{ID: "x", Table: "t", To: end, View: ViewNewAndOld}
	if ev, err := unknown.decodeLine([]byte(removal(`,"expiresAt":{"N":"1"}`))); err != nil || ev.TTLExpiry {
		t.Fatalf("no TTL attribute known: %v, TTLExpiry %v", err, ev.TTLExpiry)
	}
	if got, want := e.TTLCounts(), (TTLCounts{Inferred: 2, NoOldImage: 1}); got != want {
		t.Errorf("counts %+v, want %+v", got, want)
	}
	if got := unknown.TTLCounts(); got.NoAttribute != 1 || got.Unchecked() != 1 {
		t.Errorf("counts without an attribute %+v, want 1 unchecked", got)
	}
}
