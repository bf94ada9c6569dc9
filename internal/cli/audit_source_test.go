package cli

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer/indextest"
	"github.com/ddbrewind/rewind/internal/localaws"
	"github.com/ddbrewind/rewind/streamhandler"
)

const testAuditTable = "rewind-audit"

// auditStack fills an audit table on DynamoDB Local with evs through the
// stream handler's own writer, and indexes the same events from capture
// Parquet objects into a store: the two sources of the same changes.
func auditStack(t *testing.T, evs []rewind.ChangeEvent, redelivered []rewind.ChangeEvent) (store string) {
	t.Helper()
	ddb := localaws.DynamoDBForTest(t)
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_DYNAMODB":   ddb.Endpoint,
		"AWS_ACCESS_KEY_ID":           ddb.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY":       localaws.SecretAccessKey,
		"AWS_REGION":                  localaws.Region,
		"AWS_CONFIG_FILE":             os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE": os.DevNull,
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_ENDPOINT_URL":            "",
		"AWS_SESSION_TOKEN":           "",
		"AWS_PROFILE":                 "",
	} {
		t.Setenv(k, v)
	}
	ctx := t.Context()
	if err := streamhandler.CreateAuditTable(ctx, ddb.DynamoDB, testAuditTable); err != nil {
		t.Fatal(err)
	}
	// A redelivered batch overwrites its own items.
	if _, err := streamhandler.WriteAudit(ctx, streamhandler.Config{AuditTable: testAuditTable}, ddb.DynamoDB, append(append([]rewind.ChangeEvent{}, evs...), redelivered...)); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	if err := indextest.WriteDir(src, indextest.Objects("capture", evs, 150)); err != nil {
		t.Fatal(err)
	}
	store = filepath.Join(t.TempDir(), "index")
	if code, _, stderr := runPatchCLI(t, "index", "--source", src, "--store", store); code != 0 {
		t.Fatalf("index: exit %d\n%s", code, stderr)
	}
	return store
}

var auditSummaryRE = regexp.MustCompile(`audit table \S+: (\d+) item\(s\) from (\d+) partition\(s\) of the (.*?), (\d+) page\(s\), ([0-9.]+) read capacity`)

type auditSummary struct {
	items, partitions, pages int
	index                    string
	units                    float64
}

func parseAuditSummary(t *testing.T, stderr string) auditSummary {
	t.Helper()
	m := auditSummaryRE.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no audit table summary on stderr:\n%s", stderr)
	}
	atoi := func(s string) int { n, _ := strconv.Atoi(s); return n }
	units, _ := strconv.ParseFloat(m[5], 64)
	return auditSummary{items: atoi(m[1]), partitions: atoi(m[2]), index: m[3], pages: atoi(m[4]), units: units}
}

// TestAuditTableMatchesIndex asks the same questions of the index and of
// the audit table and compares the answers byte for byte.
func TestAuditTableMatchesIndex(t *testing.T) {
	g := indextest.NewGen(5)
	evs := g.Events(2500)
	store := auditStack(t, evs, evs[100:160])
	from, to := "2026-11-20T10:15:00Z", "2026-11-20T12:40:00Z"
	atA, atB := evs[300].Time.Format(time.RFC3339Nano), evs[1700].Time.Format(time.RFC3339Nano)
	type auditCase struct {
		name  string
		args  []string
		index string // the audit table's index the question must use
	}
	cases := []auditCase{
		{"keyset, no tenants", []string{"query", "--from", from, "--to", to}, "hour index"},
		{"keyset, window on event times", []string{"query", "--from", atA, "--to", atB}, "hour index"},
		{"keyset, tenants", []string{"query", "--from", from, "--to", to, "--tenants", "acme,globex,a#b"}, "table's tenant partitions"},
		{"json, tenants and actions", []string{"query", "--from", from, "--to", to, "--tenants", "ünïcødé,hooli", "--actions", "MODIFY,REMOVE", "--format", "json"}, "table's tenant partitions"},
		{"json, no tenants", []string{"query", "--from", atA, "--to", atB, "--format", "json"}, "hour index"},
		{"table, changed", []string{"query", "--from", from, "--to", to, "--changed", "status", "--format", "table"}, "hour index"},
		{"ttl exclude", []string{"query", "--from", from, "--to", to, "--ttl", "exclude"}, "hour index"},
		{"ttl only", []string{"query", "--from", from, "--to", to, "--ttl", "only", "--format", "json"}, "hour index"},
		{"match", []string{"query", "--from", from, "--to", to, "--match", "new.deployVersion=v42", "--match", "old.status!=paid"}, "hour index"},
		{"key prefix and table", []string{"query", "--from", from, "--to", to, "--key-prefix", "pk=TENANT#a", "--tables", "orders"}, "hour index"},
		{"stats json", []string{"stats", "--from", from, "--to", to, "--bucket", "5m", "--format", "json"}, "hour index"},
		{"stats table, tenants", []string{"stats", "--from", atA, "--to", atB, "--tenants", "acme,umbrella"}, "table's tenant partitions"},
	}
	// Histories of items that changed, from each kind of key.
	for _, i := range []int{10, 11, 12, 13, 800} {
		ev := evs[i]
		for ev.DecodeError != "" {
			i++
			ev = evs[i]
		}
		key := string(ev.Keys.AppendJSON(nil))
		cases = append(cases,
			auditCase{fmt.Sprintf("history %d json", i), []string{"history", "--table", ev.Table, "--key", key, "--format", "json"}, "item-history index"},
			auditCase{fmt.Sprintf("history %d table, window", i), []string{"history", "--table", ev.Table, "--key", key, "--from", from, "--to", to}, "item-history index"},
		)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, want, wantErr := runPatchCLI(t, append(c.args, "--store", store)...)
			if code != 0 {
				t.Fatalf("%v --store: exit %d\n%s", c.args, code, wantErr)
			}
			if len(want) < 300 {
				t.Fatalf("%v --store: a trivial answer, the comparison would prove little:\n%s", c.args, want)
			}
			// No index: a store that does not exist.
			code, got, stderr := runPatchCLI(t, append(c.args, "--audit-table", testAuditTable, "--store", filepath.Join(t.TempDir(), "none"))...)
			if code != 0 {
				t.Fatalf("%v --audit-table: exit %d\n%s", c.args, code, stderr)
			}
			if got != want {
				t.Fatalf("%v: the audit table's answer differs from the index's\naudit table:\n%.3000s\nindex:\n%.3000s", c.args, got, want)
			}
			s := parseAuditSummary(t, stderr)
			if s.index != c.index {
				t.Errorf("%v: read the %s, want the %s", c.args, s.index, c.index)
			}
			if s.items == 0 || s.pages < s.partitions {
				t.Errorf("%v: summary %+v: no items, or fewer pages than partitions", c.args, s)
			}
			if s.units <= 0 {
				t.Errorf("%v: summary %+v: no read capacity reported", c.args, s)
			}
		})
	}

	t.Run("pagination", func(t *testing.T) {
		args := []string{"query", "--from", from, "--to", to, "--format", "json"}
		_, want, _ := runPatchCLI(t, append(args, "--store", store)...)
		code, got, stderr := runPatchCLI(t, append(args, "--audit-table", testAuditTable, "--audit-page-limit", "7", "--audit-concurrency", "3")...)
		if code != 0 || got != want {
			t.Fatalf("paged: exit %d, same answer %v\n%s", code, got == want, stderr)
		}
		s := parseAuditSummary(t, stderr)
		// 3 hours × 8 shards; about 2,000 items in pages of 7.
		if s.partitions != 3*streamhandler.DefaultAuditShards || s.pages < s.items/7 {
			t.Fatalf("summary %+v: want %d partitions and at least %d pages", s, 3*streamhandler.DefaultAuditShards, s.items/7)
		}
	})

	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{
			{"query", "--audit-table", testAuditTable, "--to", to},                                 // no --from
			{"query", "--audit-table", testAuditTable, "--from", from, "--format", "athena"},       // Parquet only
			{"history", "--audit-table", testAuditTable, "--key", `{"pk":{"S":"x"}}`},              // no --table
			{"query", "--audit-table", testAuditTable, "--from", from, "--audit-page-limit", "-1"}, // bad limit
			{"stats", "--audit-table", testAuditTable, "--from", from, "--audit-shards", "0"},      // bad shards
		} {
			if code, _, stderr := runPatchCLI(t, args...); code != 2 {
				t.Errorf("%v: exit %d, want 2 (usage)\n%s", args, code, stderr)
			}
		}
	})

	t.Run("unknown tenant", func(t *testing.T) {
		code, out, stderr := runPatchCLI(t, "query", "--audit-table", testAuditTable, "--from", from, "--to", to, "--tenants", "acmee")
		if code != 3 || out != "" || !strings.Contains(stderr, `no change of tenant "acmee"`) {
			t.Fatalf("exit %d, stdout %q, want 3 and a warning naming the tenant\n%s", code, out, stderr)
		}
	})
}

// TestAuditTableImagesOmitted: an item whose images were too big for its
// audit item still counts in key sets, and an answer that reads images
// says it cannot be trusted and where the images are.
func TestAuditTableImagesOmitted(t *testing.T) {
	blob := make([]byte, 300<<10)
	rand.Read(blob)
	big := base64.StdEncoding.EncodeToString(blob) // 400 KB that Snappy cannot shrink
	at := time.Date(2026, 11, 20, 10, 30, 0, 0, time.UTC)
	key := rewind.Key{{Name: "pk", Type: 'S', Value: "TENANT#acme"}, {Name: "sk", Type: 'S', Value: "ORDER#1"}}
	small := rewind.Key{{Name: "pk", Type: 'S', Value: "TENANT#acme"}, {Name: "sk", Type: 'S', Value: "ORDER#2"}}
	ev := func(i int, k rewind.Key, a rewind.Action, old, nw string) rewind.ChangeEvent {
		e := rewind.ChangeEvent{
			EventID: fmt.Sprintf("ev%03d", i), Table: "orders", Region: "eu-west-1", Tenant: "acme", Action: a,
			Time: at.Add(time.Duration(i) * time.Second), SequenceNumber: strconv.Itoa(1000 + i), StreamViewType: "NEW_AND_OLD_IMAGES",
			Keys: k, SizeBytes: 100,
		}
		item := func(status string) rewind.Item {
			if status == "" {
				return nil
			}
			it := k.Item()
			it["status"] = &types.AttributeValueMemberS{Value: status}
			if status == "big" {
				it["blob"] = &types.AttributeValueMemberS{Value: big}
				it["n"] = &types.AttributeValueMemberN{Value: strconv.Itoa(i)}
			}
			return it
		}
		o, n := item(old), item(nw)
		if o != nil {
			e.OldImage = rewind.ItemJSON(o)
		}
		if n != nil {
			e.NewImage = rewind.ItemJSON(n)
		}
		e.ChangedAttributes = rewind.ChangedAttributes(rewind.ItemAttributes(o), rewind.ItemAttributes(n))
		return e
	}
	evs := []rewind.ChangeEvent{
		ev(1, small, rewind.ActionInsert, "", "new"),
		ev(2, key, rewind.ActionInsert, "", "big"),
		ev(3, small, rewind.ActionModify, "new", "paid"),
		ev(4, key, rewind.ActionModify, "big", "big"),
	}
	store := auditStack(t, evs, nil)
	window := []string{"--from", "2026-11-20T10:00:00Z", "--to", "2026-11-20T11:00:00Z"}

	// The key set reads no images: the same answer, and a note.
	_, want, _ := runPatchCLI(t, append([]string{"query", "--store", store}, window...)...)
	code, got, stderr := runPatchCLI(t, append([]string{"query", "--audit-table", testAuditTable}, window...)...)
	if code != 0 || got != want || strings.Count(got, "\n") != 2 {
		t.Fatalf("key set: exit %d, same %v, want 0 and the index's 2 lines\n%s\n%s", code, got == want, got, stderr)
	}
	for _, w := range []string{"change ev002 of orders", "change ev004 of orders", "imagesOmitted", "capture Parquet under table=orders/dt=2026-11-20/hour=10/"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("key set: stderr does not say %q:\n%s", w, stderr)
		}
	}
	// Answers that read images say they may be wrong: exit 3.
	for _, args := range [][]string{
		append([]string{"query", "--format", "json"}, window...),
		append([]string{"query", "--match", "new.status=big"}, window...),
		{"history", "--table", "orders", "--key", string(key.AppendJSON(nil))},
	} {
		code, _, stderr := runPatchCLI(t, append(args, "--audit-table", testAuditTable)...)
		if code != 3 || !strings.Contains(stderr, "no images in the audit table") || !strings.Contains(stderr, "hour=10/") {
			t.Errorf("%v: exit %d, want 3 and the warning\n%s", args, code, stderr)
		}
	}
	// An item with its images is answered in full.
	args := []string{"history", "--table", "orders", "--key", string(small.AppendJSON(nil)), "--format", "json"}
	_, want, _ = runPatchCLI(t, append(args, "--store", store)...)
	code, got, stderr = runPatchCLI(t, append(args, "--audit-table", testAuditTable)...)
	if code != 0 || got != want || want == "" {
		t.Fatalf("history of the small item: exit %d, same %v\n%s", code, got == want, stderr)
	}
}
