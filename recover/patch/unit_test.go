package patch

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/ddbrewind/rewind"
)

func TestShard(t *testing.T) {
	for _, bad := range []string{"", "1", "a/b", "2/2", "-1/3", "0/0"} {
		if _, err := ParseShard(bad); err == nil {
			t.Errorf("ParseShard(%q) accepted", bad)
		}
	}
	const n = 4
	var shards []Shard
	for i := range n {
		s, err := ParseShard(fmt.Sprintf("%d/%d", i, n))
		if err != nil {
			t.Fatal(err)
		}
		shards = append(shards, s)
	}
	counts := make([]int, n)
	for k := range 4000 {
		key := rewind.Key{{Name: "pk", Type: 'S', Value: fmt.Sprintf("t%d#%d", k%7, k)}}
		in := 0
		for i, s := range shards {
			if s.Contains(key) {
				in++
				counts[i]++
			}
		}
		if in != 1 {
			t.Fatalf("key %s is in %d shards, want exactly 1", key, in)
		}
	}
	for i, c := range counts {
		if c < 800 || c > 1200 {
			t.Errorf("shard %d/%d has %d of 4000 keys: badly balanced", i, n, c)
		}
	}
}

func TestBuildCondition(t *testing.T) {
	keys := []string{"pk", "sk"}
	c := buildCondition(nil, keys)
	if c.expr != "attribute_not_exists(#k)" || c.names["#k"] != "pk" || !c.complete {
		t.Errorf("absent: %+v", c)
	}
	item := rewind.Item{
		"pk": &types.AttributeValueMemberS{Value: "p"}, "sk": &types.AttributeValueMemberN{Value: "1"},
		"a": &types.AttributeValueMemberNULL{Value: true}, "b": &types.AttributeValueMemberSS{Value: []string{"x"}},
	}
	c = buildCondition(item, keys)
	if c.expr != "attribute_exists(#k) AND attribute_type(#a0, :null) AND #a1 = :v1" || !c.complete {
		t.Errorf("condition %q complete=%v", c.expr, c.complete)
	}
	if _, ok := c.values[":v1"].(*types.AttributeValueMemberSS); !ok || len(c.values) != 2 {
		t.Errorf("values %v", c.values)
	}
	if strings.Contains(c.expr, "pk") || c.names["#a0"] != "a" {
		t.Errorf("names %v", c.names)
	}
	wide := rewind.Item{"pk": &types.AttributeValueMemberS{Value: "p"}, "sk": &types.AttributeValueMemberN{Value: "1"}}
	for i := range 300 {
		wide[fmt.Sprintf("attribute_with_a_long_name_%03d", i)] = &types.AttributeValueMemberN{Value: "1"}
	}
	c = buildCondition(wide, keys)
	if c.complete || len(c.expr) > maxExprBytes || strings.Count(c.expr, " AND ") > maxExprCompare {
		t.Errorf("wide item: complete=%v, %d bytes, %d comparisons", c.complete, len(c.expr), strings.Count(c.expr, " AND "))
	}
}

func TestStepDiffAndJSON(t *testing.T) {
	s := &Step{Line: 3, Key: rewind.Key{{Name: "pk", Type: 'S', Value: "t1#42"}},
		Before: rewind.Item{"pk": &types.AttributeValueMemberS{Value: "t1#42"}, "n": &types.AttributeValueMemberN{Value: "1.50"}, "junk": &types.AttributeValueMemberBOOL{Value: true}, "s": &types.AttributeValueMemberNS{Value: []string{"1", "2"}}},
		After:  rewind.Item{"pk": &types.AttributeValueMemberS{Value: "t1#42"}, "n": &types.AttributeValueMemberN{Value: "1.5"}, "lost": &types.AttributeValueMemberS{Value: ""}, "s": &types.AttributeValueMemberNS{Value: []string{"2", "1"}}},
	}
	s.classify()
	got := string(s.AppendJSON(nil))
	want := `{"line":3,"key":{"pk":{"S":"t1#42"}},"action":"restore","digest":{"before":"` + rewind.ItemDigest(s.Before) + `","after":"` + rewind.ItemDigest(s.After) + `"},"diff":[{"attr":"junk","before":{"BOOL":true}},{"attr":"lost","after":{"S":""}}]}`
	if got != want {
		t.Errorf("plan line\n got %s\nwant %s", got, want)
	}
	s.After = nil
	s.classify()
	if s.Action != ActionDelete {
		t.Errorf("action %s, want delete", s.Action)
	}
	s.Before = nil
	s.classify()
	if s.Action != ActionAbsent {
		t.Errorf("action %s, want absent", s.Action)
	}
}

func TestJournalTornTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	j, err := createJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.start(startRecord{Tool: "patch", To: "orders"}); err != nil {
		t.Fatal(err)
	}
	s := &Step{Line: 1, Key: rewind.Key{{Name: "pk", Type: 'S', Value: "a"}}, Action: ActionDelete, Before: rewind.Item{"pk": &types.AttributeValueMemberS{Value: "a"}}}
	j.append(appendIntent(nil, s))
	if err := j.close(); err != nil {
		t.Fatal(err)
	}
	if _, err := createJournal(path); err == nil || !strings.Contains(err.Error(), "--resume") {
		t.Errorf("creating an existing journal: %v, want a refusal naming --resume", err)
	}
	// A crash mid-line leaves a torn tail.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"op":"intent","line":2,"key":{"pk":{"S"`)
	f.Close()

	f, _ = os.Open(path)
	jr := newJournalReader(f, path)
	var ops []string
	for {
		rec, err := jr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ops = append(ops, rec.Op)
	}
	f.Close()
	if strings.Join(ops, ",") != "start,intent" {
		t.Errorf("records %v, want the torn line ignored", ops)
	}
	j, err = openJournal(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	j.start(startRecord{Tool: "patch", To: "orders", Resume: true})
	j.close()
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), `{"S"{`) || strings.Count(string(b), "\n") != 3 || !strings.Contains(string(b), `"resume":true,"seq":3,"crc":"`) {
		t.Errorf("after reopening, journal is:\n%s", b)
	}
}

func TestCheckpointAtomic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.checkpoint")
	cp := checkpoint{Keys: "/k", To: "orders", Line: 7, Counts: Counts{Keys: 7, Written: 3}}
	if err := writeCheckpoint(path, cp); err != nil {
		t.Fatal(err)
	}
	// A crash while writing the next one leaves the temporary file only.
	os.WriteFile(path+".tmp", []byte(`{"version":1,"li`), 0o600)
	got, err := readCheckpoint(path)
	if err != nil || got.Line != 7 || got.Counts.Written != 3 {
		t.Fatalf("checkpoint %+v, %v", got, err)
	}
	cp.Line = 9
	if err := writeCheckpoint(path, cp); err != nil {
		t.Fatal(err)
	}
	if got, _ := readCheckpoint(path); got.Line != 9 {
		t.Errorf("line %d, want 9", got.Line)
	}
}

func TestSummaryText(t *testing.T) {
	s := &Summary{Tool: "patch", Input: "impacted.jsonl", From: "orders-restored", To: "orders", Journal: "j",
		Counts: Counts{Keys: 10, Restore: 5, Delete: 2, Unchanged: 2, Absent: 1, Written: 6, Conflicts: 1},
		Run:    Counts{Keys: 10}, Elapsed: 2 * time.Second}
	text := s.String()
	for _, want := range []string{"rewind patch: PARTIAL", "keys read  10", "made now, at apply time", "restore    5", "conflicts  1", "journal    j", "(5 keys/s)"} {
		if !strings.Contains(text, want) {
			t.Errorf("summary lacks %q:\n%s", want, text)
		}
	}
	if !s.Partial() {
		t.Error("a summary with a conflict is not partial")
	}
	p := Progress{Tool: "patch", Counts: Counts{Keys: 250, Written: 200}, Total: 1000, Elapsed: 5 * time.Second}.Report()
	if p.Phase != "patch" || p.Unit != "keys" || p.Done != 250 || p.Total != 1000 || p.PerSecond() != 50 || p.Remaining() != 15*time.Second ||
		len(p.Counts) != 3 || p.Counts[0] != (rewind.ProgressCount{Name: "written", N: 200}) || p.Note != "" {
		t.Errorf("progress report %+v", p)
	}
	p = Progress{Tool: "undo", InFlight: 2, Idle: 12400 * time.Millisecond}.Report()
	if p.Note != "waiting on DynamoDB for 12s (2 calls in flight)" || p.Total != 0 || p.Remaining() != 0 {
		t.Errorf("stalled progress report %+v", p)
	}
}

func TestKeySetChunksDedupAndLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.jsonl")
	var b strings.Builder
	for _, pk := range []string{"a", "b", "b", "c", "d", "e"} {
		fmt.Fprintf(&b, `{"table":"orders","key":{"pk":{"S":%q}}}`+"\n", pk)
	}
	os.WriteFile(path, []byte(b.String()), 0o644)
	for _, tc := range []struct {
		resume int
		want   string
	}{
		{0, "1:a 2:b 4:c|5:d"}, // line 3 repeats b in the same chunk; the limit of 5 counts lines
		{1, "2:b 4:c 5:d"},     // line 1 is before the resume point but counts toward the limit
	} {
		f, _ := os.Open(path)
		cfg := &Config{Keys: path, Limit: 5, Options: Options{BatchSize: 3}}
		cfg.EnsureDefaults()
		next := inputChunks(f, cfg, inputSpec{path: path, name: path, schema: keySchema{Name: "orders"}}, tc.resume, nil, nil)
		var got []string
		for {
			c, err := next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			var ks []string
			for _, s := range c.steps {
				ks = append(ks, fmt.Sprintf("%d:%s", s.Line, s.Key[0].Value))
			}
			got = append(got, strings.Join(ks, " "))
		}
		f.Close()
		if strings.Join(got, "|") != tc.want {
			t.Errorf("resume %d: chunks %q, want %q", tc.resume, strings.Join(got, "|"), tc.want)
		}
	}
}

// FuzzJournal feeds arbitrary bytes to the journal reader and undo's
// index: they must fail with an error naming the journal, never panic.
func FuzzJournal(f *testing.F) {
	f.Add([]byte(`{"op":"start","version":1,"tool":"patch","to":"orders"}` + "\n" +
		`{"op":"intent","line":1,"key":{"pk":{"S":"a"}},"action":"delete","before":{"pk":{"S":"a"},"n":{"N":"1"}},"after":null}` + "\n" +
		`{"op":"outcome","line":1,"key":{"pk":{"S":"a"}},"status":"written","old":{"pk":{"S":"a"}}}` + "\n"))
	f.Add([]byte(`{"op":"intent","line":1,"key":{"pk":{"S":"a"}}}` + "\n"))
	f.Add([]byte("{\"op\":\"start\",\"to\":\"orders\"}\n{\"op\":\"outcome\",\"key\":{\"pk\":{\"N\":\"x\"}}}\n{torn"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "j")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		idx, err := indexJournal(path, "orders", false)
		if err != nil {
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the journal", err)
			}
			return
		}
		jf, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer jf.Close()
		next := idx.chunks(jf, 7)
		for {
			if _, err := next(); err != nil {
				return
			}
		}
	})
}
