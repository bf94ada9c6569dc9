package streamhandler

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ddbrewind/rewind"
)

var update = flag.Bool("update", false, "rewrite golden files")

func testDecoder(t testing.TB, mutate func(*Config)) *decoder {
	t.Helper()
	cfg := Config{AuditTable: "audit", Bucket: "b"}
	if mutate != nil {
		mutate(&cfg)
	}
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return newDecoder(&cfg)
}

func decodeFile(t *testing.T, d *decoder, path string) []rewind.ChangeEvent {
	t.Helper()
	payload, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := d.decode(payload, nil)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return evs
}

// eventJSON renders an event for golden files and messages.
func eventJSON(ev rewind.ChangeEvent) string {
	m := map[string]any{
		"eventID": ev.EventID, "table": ev.Table, "region": ev.Region, "tenant": ev.Tenant,
		"action": ev.Action, "ttlExpiry": ev.TTLExpiry, "time": ev.Time.Format(time.RFC3339Nano),
		"seq": ev.SequenceNumber, "viewType": ev.StreamViewType, "changed": ev.ChangedAttributes,
		"size": ev.SizeBytes,
	}
	if len(ev.Keys) > 0 {
		m["keys"] = json.RawMessage(ev.Keys.String())
	}
	for name, im := range map[string]rewind.Image{"old": ev.OldImage, "new": ev.NewImage} {
		if im == nil {
			continue
		}
		item, err := im.Item()
		if err != nil {
			m[name] = "UNPARSABLE: " + err.Error()
			continue
		}
		m[name] = json.RawMessage(rewind.ItemJSON(item))
	}
	if ev.DecodeError != "" {
		m["decodeError"] = ev.DecodeError
		m["raw"] = string(ev.Raw)
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// TestDecodeFixtures decodes every Lambda payload under testdata/streams
// (records captured from DynamoDB Local's stream, and edge cases written to
// AWS's documented format) and compares with the golden decoding.
func TestDecodeFixtures(t *testing.T) {
	files, err := filepath.Glob("../testdata/streams/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			d := testDecoder(t, func(c *Config) { c.Tenant.Regex = regexp.MustCompile(`^TENANT#([^#]+)#`) })
			var out bytes.Buffer
			for _, ev := range decodeFile(t, d, f) {
				out.WriteString(eventJSON(ev))
				out.WriteByte('\n')
			}
			golden := strings.TrimSuffix(f, ".json") + ".golden"
			if *update {
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(out.Bytes(), want) {
				t.Errorf("decoding of %s differs from %s:\n got %s\nwant %s", f, golden, out.Bytes(), want)
			}
		})
	}
}

func TestDecodeShapes(t *testing.T) {
	d := testDecoder(t, func(c *Config) { c.Tenant.Regex = regexp.MustCompile(`^TENANT#([^#]+)#`) })
	evs := decodeFile(t, d, "../testdata/streams/aws-doc-ttl-and-binary.json")
	if len(evs) != 4 {
		t.Fatalf("got %d events, want 4", len(evs))
	}
	for i, ev := range evs {
		if ev.DecodeError != "" {
			t.Fatalf("event %d: %s", i, ev.DecodeError)
		}
		if ev.Table != "orders" || ev.Region != "eu-west-1" {
			t.Errorf("event %d: table %q region %q", i, ev.Table, ev.Region)
		}
	}
	ins, mod, ttl, keysOnly := evs[0], evs[1], evs[2], evs[3]
	if ins.Tenant != "t1" || ttl.Tenant != "t2" || keysOnly.Tenant != "" {
		t.Errorf("tenants %q %q %q, want t1 t2 and empty", ins.Tenant, ttl.Tenant, keysOnly.Tenant)
	}
	if ins.Action != rewind.ActionInsert || ins.OldImage != nil || ins.NewImage == nil {
		t.Errorf("insert: action %s old %s new %s", ins.Action, ins.OldImage, ins.NewImage)
	}
	item, err := ins.NewImage.Item()
	if err != nil {
		t.Fatal(err)
	}
	if len(item) != 10 {
		t.Errorf("insert image has %d attributes, want 10", len(item))
	}
	if got := ins.ChangedAttributes; len(got) != 10 {
		t.Errorf("insert changed attributes %v, want all 10", got)
	}
	if want := []string{"paidAt", "status"}; !slices.Equal(mod.ChangedAttributes, want) {
		t.Errorf("modify changed attributes %v, want %v (reordered set and 1.50 == 1.5 are unchanged)", mod.ChangedAttributes, want)
	}
	if want := time.Date(2025, 11, 20, 10, 1, 1, 500e6, time.UTC); !mod.Time.Equal(want) {
		t.Errorf("modify time %v, want %v", mod.Time, want)
	}
	if !ttl.TTLExpiry || ttl.Action != rewind.ActionRemove || ttl.NewImage != nil || ttl.OldImage == nil {
		t.Errorf("ttl delete: ttl %v action %s new %s old %s", ttl.TTLExpiry, ttl.Action, ttl.NewImage, ttl.OldImage)
	}
	if keysOnly.TTLExpiry || keysOnly.OldImage != nil || keysOnly.NewImage != nil || keysOnly.ChangedAttributes != nil {
		t.Errorf("keys-only remove: %s", eventJSON(keysOnly))
	}
	if k := keysOnly.Keys.String(); k != `{"pk":{"S":"no-tenant-here"},"sk":{"N":"8"}}` {
		t.Errorf("keys %s", k)
	}
}

func TestDecodeKeepsUndecodableRecords(t *testing.T) {
	d := testDecoder(t, nil)
	evs := decodeFile(t, d, "../testdata/streams/malformed-records.json")
	if len(evs) != 8 {
		t.Fatalf("got %d events, want 8 (one per record, none dropped)", len(evs))
	}
	for i, ev := range evs {
		good := i == 0 || i == 7
		if good != (ev.DecodeError == "") {
			t.Errorf("event %d: decode error %q", i, ev.DecodeError)
		}
		if ev.EventID == "" {
			t.Errorf("event %d has no event ID", i)
		}
		if !good && (len(ev.Raw) == 0 || !json.Valid(ev.Raw)) {
			t.Errorf("event %d: raw record %q is not the record's JSON", i, ev.Raw)
		}
	}
	if !strings.Contains(evs[1].DecodeError, `"b"`) || !strings.Contains(string(evs[1].Raw), `"bad-null-binary"`) {
		t.Errorf("B:null record: error %q raw %s", evs[1].DecodeError, evs[1].Raw)
	}
	if !strings.Contains(evs[2].DecodeError, "BS[0]") {
		t.Errorf("binary set record: error %q", evs[2].DecodeError)
	}
	if !strings.HasPrefix(evs[3].EventID, "undecodable-") {
		t.Errorf("record without eventID got ID %q", evs[3].EventID)
	}
	// What can be read of a bad record is kept: the sequence number to
	// retry from, the table and time to file it under.
	for i := 1; i <= 5; i++ {
		if evs[i].SequenceNumber != fmt.Sprint(10+i) || evs[i].Table != "orders" {
			t.Errorf("event %d: seq %q table %q, want %d and orders", i, evs[i].SequenceNumber, evs[i].Table, 10+i)
		}
	}
	if string(evs[6].Raw) != `"not even an object"` {
		t.Errorf("non-object record raw %q", evs[6].Raw)
	}
	// The same bytes give the same derived ID, so a redelivery overwrites.
	again := decodeFile(t, testDecoder(t, nil), "../testdata/streams/malformed-records.json")
	if again[3].EventID != evs[3].EventID {
		t.Errorf("derived event ID not stable: %s vs %s", again[3].EventID, evs[3].EventID)
	}
}

func TestDecodePayloadErrors(t *testing.T) {
	d := testDecoder(t, nil)
	for _, p := range []string{``, `[]`, `{"Records":{}}`, `{"foo":1}`, `{"Records":[{"eventID":"x"}`, `not json`} {
		if _, err := d.decode([]byte(p), nil); err == nil {
			t.Errorf("decode(%q) succeeded, want an error", p)
		}
	}
	evs, err := d.decode([]byte(`{"Records":[]}`), nil)
	if err != nil || len(evs) != 0 {
		t.Errorf("empty batch: %v, %v", evs, err)
	}
}

func TestImagesConfig(t *testing.T) {
	for _, tc := range []struct {
		images   Images
		old, new bool
	}{{ImagesBoth, true, true}, {ImagesNew, false, true}, {ImagesOld, true, false}, {ImagesNone, false, false}} {
		d := testDecoder(t, func(c *Config) { c.Images = tc.images })
		mod := decodeFile(t, d, "../testdata/streams/aws-doc-ttl-and-binary.json")[1]
		if (mod.OldImage != nil) != tc.old || (mod.NewImage != nil) != tc.new {
			t.Errorf("images=%s: old %v new %v", tc.images, mod.OldImage != nil, mod.NewImage != nil)
		}
		if len(mod.ChangedAttributes) != 2 {
			t.Errorf("images=%s: changed attributes %v, want them computed before images are dropped", tc.images, mod.ChangedAttributes)
		}
	}
}

func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob("../testdata/streams/*.json")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"Records":[{"dynamodb":{"Keys":{"a":{"B":null}}}}]}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		d := testDecoder(t, nil)
		evs, err := d.decode(payload, nil)
		if err != nil {
			return
		}
		var probe struct{ Records []json.RawMessage }
		if json.Unmarshal(payload, &probe) == nil && probe.Records != nil && len(probe.Records) != len(evs) {
			t.Fatalf("%d records but %d events: a record was lost", len(probe.Records), len(evs))
		}
		for _, ev := range evs {
			if ev.EventID == "" {
				t.Fatal("event without ID")
			}
			if ev.DecodeError != "" {
				if len(ev.Raw) == 0 {
					t.Fatal("undecodable event without its raw record")
				}
				continue
			}
			for _, im := range []rewind.Image{ev.OldImage, ev.NewImage} {
				if _, err := im.Item(); err != nil {
					t.Fatalf("decoded image does not parse: %v: %s", err, im)
				}
			}
			var row rewind.ParquetRow
			ev.ToParquetRow(&row)
			if _, err := row.ChangeEvent(); err != nil {
				t.Fatalf("row of a decoded event does not convert back: %v", err)
			}
		}
	})
}

func TestDecodeDropsIndexKeysFromKeys(t *testing.T) {
	// DynamoDB Local puts a GSI's key attributes in the Keys of TTL
	// deletes (captured from its stream).
	ttl := `{"eventID":"ttl-1","eventName":"REMOVE","awsRegion":"ddblocal","dynamodb":{"ApproximateCreationDateTime":1795653780,"Keys":{"pk":{"S":"TENANT#t3"},"sk":{"S":"ORDER#21"},"status":{"S":"new"}},"OldImage":{"pk":{"S":"TENANT#t3"},"sk":{"S":"ORDER#21"},"status":{"S":"new"}},"SequenceNumber":"162","SizeBytes":211,"StreamViewType":"NEW_AND_OLD_IMAGES"},"eventSourceARN":"arn:aws:dynamodb:ddblocal:000000000000:table/orders/stream/2026-11-26T00:43:35.838","userIdentity":{"type":"Service","principalId":"dynamodb.amazonaws.com"}}`
	normal := strings.NewReplacer(`"ttl-1"`, `"put-1"`, `,"status":{"S":"new"}},"OldImage"`, `},"OldImage"`, `"162"`, `"161"`).Replace(ttl)
	want := `{"pk":{"S":"TENANT#t3"},"sk":{"S":"ORDER#21"}}`

	// Unknown key schema: kept raw, with an error saying what to set.
	evs, err := testDecoder(t, nil).decode([]byte(`{"Records":[`+ttl+`]}`), nil)
	if err != nil || len(evs) != 1 || !strings.Contains(evs[0].DecodeError, "REWIND_KEY_ATTRIBUTES") {
		t.Fatalf("unknown schema: %v %+v", err, evs)
	}
	// Configured key attributes.
	evs, err = testDecoder(t, func(c *Config) { c.KeyAttributes = []string{"pk", "sk"} }).decode([]byte(`{"Records":[`+ttl+`]}`), nil)
	if err != nil || evs[0].DecodeError != "" || evs[0].Keys.String() != want {
		t.Fatalf("configured: %v %s %s", err, evs[0].DecodeError, evs[0].Keys)
	}
	// Learned from an earlier record of the same table.
	evs, err = testDecoder(t, nil).decode([]byte(`{"Records":[`+normal+`,`+ttl+`]}`), nil)
	if err != nil || evs[1].DecodeError != "" || evs[1].Keys.String() != want || !evs[1].TTLExpiry {
		t.Fatalf("learned: %v %+v", err, evs[1])
	}
}
