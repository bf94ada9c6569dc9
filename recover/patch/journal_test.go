package patch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/ddbrewind/rewind"
)

// testJournal writes a journal of n intents, each with an outcome, and an
// end record, with a checkpoint as the engine writes it; it returns the
// journal's path and its lines.
func testJournal(t *testing.T, n int) (string, [][]byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "j")
	j, err := createJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.start(startRecord{Tool: "patch", To: "orders"}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		pk := fmt.Sprintf("k%02d", i)
		s := &Step{Line: i, Key: rewind.Key{{Name: "pk", Type: 'S', Value: pk}}, Action: ActionRestore,
			Before: rewind.Item{"pk": &types.AttributeValueMemberS{Value: pk}, "v": &types.AttributeValueMemberS{Value: "before value"}},
			After:  rewind.Item{"pk": &types.AttributeValueMemberS{Value: pk}, "v": &types.AttributeValueMemberS{Value: "after value"}}}
		if err := j.append(appendIntent(nil, s)); err != nil {
			t.Fatal(err)
		}
		if err := j.append(appendOutcome(nil, &result{step: s, status: StatusWritten})); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.end(); err != nil {
		t.Fatal(err)
	}
	if err := writeCheckpoint(checkpointPath(path), checkpoint{To: "orders", Line: n, JournalSeq: j.durableSeq()}); err != nil {
		t.Fatal(err)
	}
	if err := j.close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, bytes.SplitAfter(b, []byte("\n"))[:2*n+2]
}

// readJournal reads the journal at path to the end and returns the lines
// of the records it returned, with the error that stopped it (nil at EOF).
func readJournal(path string, partial bool) (jr *journalReader, lines []int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	jr = newJournalReader(f, path)
	jr.partial = partial
	for {
		_, err := jr.next()
		if errors.Is(err, io.EOF) {
			return jr, lines, jr.checkDurable()
		}
		if err != nil {
			return jr, lines, err
		}
		lines = append(lines, jr.line)
	}
}

func TestJournalRecordsFramed(t *testing.T) {
	_, lines := testJournal(t, 2)
	for i, l := range lines {
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("line %d is not JSON: %v: %s", i+1, err, l)
		}
		if !bytes.HasPrefix(l, []byte(`{"op":"`)) {
			t.Errorf("line %d does not start with its op: %s", i+1, l)
		}
		if m["seq"] != float64(i+1) {
			t.Errorf("line %d: seq %v, want %d", i+1, m["seq"], i+1)
		}
		crcAt := bytes.LastIndex(l, []byte(`,"crc":"`))
		want := fmt.Sprintf("%08x", crc32.Checksum(l[:crcAt], crc32.MakeTable(crc32.Castagnoli)))
		if m["crc"] != want {
			t.Errorf("line %d: crc %v, want %s (CRC-32C of the line up to its seq)", i+1, m["crc"], want)
		}
	}
	if !bytes.HasPrefix(lines[5], []byte(`{"op":"end","records":5,`)) {
		t.Errorf("last line %s, want an end record counting 5 records", lines[5])
	}
}

// TestJournalReaderRefusesDamage damages a journal in each way the reader
// must find, and checks the error names the file and the line, and that
// with partial the reader returns the intact records and lists the damage.
func TestJournalReaderRefusesDamage(t *testing.T) {
	flip := func(l []byte) []byte { // one byte inside the pre-image
		l = bytes.Clone(l)
		i := bytes.Index(l, []byte("before value"))
		l[i] = 'B'
		return l
	}
	for _, tc := range []struct {
		name   string
		edit   func(lines [][]byte) [][]byte
		line   int    // the line the error names
		reason string // in the error
		intact []int  // lines a partial read returns
	}{
		{"changed byte in a pre-image", func(ls [][]byte) [][]byte { ls[3] = flip(ls[3]); return ls },
			4, "checksum mismatch", []int{1, 2, 3, 5, 6, 7, 8}},
		{"line deleted", func(ls [][]byte) [][]byte { return append(ls[:2:2], ls[3:]...) },
			3, "1 missing before this line", []int{1, 2, 3, 4, 5, 6, 7}},
		{"line repeated", func(ls [][]byte) [][]byte { return append(ls[:3:3], ls[2:]...) },
			4, "sequence number 3 repeats", []int{1, 2, 3, 5, 6, 7, 8, 9}},
		{"lines swapped", func(ls [][]byte) [][]byte { ls[1], ls[2] = ls[2], ls[1]; return ls },
			2, "sequence number 3, but the record before is 1: 1 missing", []int{1, 2, 4, 5, 6, 7, 8}},
		{"torn line in the middle", func(ls [][]byte) [][]byte {
			ls[2] = append(bytes.Clone(ls[2][:len(ls[2])/2]), ls[3]...) // a torn write, then the next record
			return append(ls[:3:3], ls[4:]...)
		}, 3, "checksum mismatch", []int{1, 2, 4, 5, 6, 7}},
		{"records after a torn line", func(ls [][]byte) [][]byte {
			ls[4] = append(bytes.Clone(ls[4][:10]), '\n')
			return ls
		}, 5, "no sequence number and checksum", []int{1, 2, 3, 4, 6, 7, 8}},
		{"cut at a line boundary", func(ls [][]byte) [][]byte { return ls[:4] },
			5, "truncated, and records 5-8 are missing", []int{1, 2, 3, 4}},
		{"cut mid-line", func(ls [][]byte) [][]byte { ls[4] = ls[4][:20]; return ls[:5] },
			5, "truncated, and records 5-8 are missing", []int{1, 2, 3, 4}},
		{"end record does not count its run", func(ls [][]byte) [][]byte {
			ls[7] = reframe(t, bytes.Replace(ls[7], []byte(`"records":7`), []byte(`"records":6`), 1))
			return ls
		}, 8, "end record says its run wrote 6 records, but 7", []int{1, 2, 3, 4, 5, 6, 7}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, lines := testJournal(t, 3)
			if err := os.WriteFile(path, bytes.Join(tc.edit(lines), nil), 0o600); err != nil {
				t.Fatal(err)
			}
			_, _, err := readJournal(path, false)
			want := fmt.Sprintf("journal %s: line %d: ", path, tc.line)
			if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), tc.reason) || !errors.Is(err, errJournalDamaged) {
				t.Fatalf("error %v, want one with %q and %q", err, want, tc.reason)
			}
			jr, got, err := readJournal(path, true)
			if err != nil {
				t.Fatalf("partial: %v", err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.intact) {
				t.Errorf("partial: records on lines %v, want %v", got, tc.intact)
			}
			if len(jr.damage) == 0 || jr.damage[0].Line != tc.line {
				t.Errorf("partial: damage %v, want it at line %d", jr.damage, tc.line)
			}
		})
	}
}

// reframe gives an edited line a valid checksum again.
func reframe(t *testing.T, l []byte) []byte {
	t.Helper()
	l = bytes.TrimSuffix(l, []byte("\n"))
	seq, _, ok := splitFrame(l)
	if !ok {
		t.Fatalf("not a framed line: %s", l)
	}
	body := l[:bytes.LastIndex(l, []byte(`,"seq":`))]
	head := fmt.Appendf(nil, `%s,"seq":%d`, body, seq)
	return fmt.Appendf(nil, `%s,"crc":"%08x"}`+"\n", head, crc32.Checksum(head, castagnoli))
}

// TestJournalIndexPartialDropsNamedKeys: a damaged outcome names a key
// whose intact intent is earlier; partial leaves that key out altogether,
// since the damaged outcome may have held its true pre-image.
func TestJournalIndexPartialDropsNamedKeys(t *testing.T) {
	path, lines := testJournal(t, 3)
	lines[4] = bytes.Replace(lines[4], []byte(`"written"`), []byte(`"writteN"`), 1) // k02's outcome
	os.WriteFile(path, bytes.Join(lines, nil), 0o600)
	if _, err := indexJournal(path, "orders", false); err == nil || !strings.Contains(err.Error(), "line 5: checksum mismatch") {
		t.Fatalf("strict index: %v", err)
	}
	idx, err := indexJournal(path, "orders", true)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, k := range idx.keys {
		keys = append(keys, k.key[0].Value)
	}
	if strings.Join(keys, ",") != "k01,k03" || idx.excluded != 1 {
		t.Errorf("keys %v (%d excluded), want k01,k03 with k02 excluded", keys, idx.excluded)
	}
	if len(idx.damage) != 1 || idx.damage[0].Key == nil || idx.damage[0].Key[0].Value != "k02" {
		t.Errorf("damage %v, want line 5 naming k02", idx.damage)
	}
}

func TestJournalVersion1Readable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	os.WriteFile(path, []byte(`{"op":"start","version":1,"tool":"patch","to":"orders"}`+"\n"+
		`{"op":"intent","line":1,"key":{"pk":{"S":"a"}},"action":"delete","before":{"pk":{"S":"a"}},"after":null}`+"\n"+
		`{"op":"outcome","line":1,"key":{"pk":{"S":"a"}},"status":"written"}`+"\n"), 0o600)
	jr, lines, err := readJournal(path, false)
	if err != nil || len(lines) != 3 || jr.version != 1 {
		t.Fatalf("v1 journal: lines %v, version %d, %v", lines, jr.version, err)
	}
	idx, err := indexJournal(path, "orders", false)
	if err != nil || len(idx.keys) != 1 || idx.version != 1 {
		t.Fatalf("v1 index: %+v, %v", idx, err)
	}
	if _, err := openJournal(path, nil); err == nil || !strings.Contains(err.Error(), "version 1") {
		t.Errorf("resuming a v1 journal: %v, want a refusal naming version 1", err)
	}
}

func TestJournalLock(t *testing.T) {
	path, _ := testJournal(t, 1)
	lk, err := lockJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	for what, try := range map[string]func() error{
		"lock":   func() error { l, err := lockJournal(path); l.release(); return err },
		"open":   func() error { _, err := openJournal(path, nil); return err },
		"create": func() error { _, err := createJournal(path); return err },
	} {
		err := try()
		want := fmt.Sprintf("journal %s is in use by process %d since ", path, os.Getpid())
		if !errors.Is(err, ErrJournalInUse) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "on host "+host) {
			t.Errorf("%s while locked: %v, want %q", what, err, want)
		}
	}
	lk.release()
	lk.release() // twice is a no-op
	j, err := openJournal(path, nil)
	if err != nil {
		t.Fatalf("open after release: %v", err)
	}
	if _, err := lockJournal(path); !errors.Is(err, ErrJournalInUse) {
		t.Errorf("the open journal is not locked: %v", err)
	}
	// Resumed records continue the sequence, appended at the end.
	if err := j.start(startRecord{Tool: "patch", To: "orders", Resume: true}); err != nil {
		t.Fatal(err)
	}
	j.close()
	if _, lines, err := readJournal(path, false); err != nil || len(lines) != 5 {
		t.Errorf("after a resumed start: lines %v, %v", lines, err)
	}
}

// FuzzJournalReader feeds arbitrary bytes to the journal reader, strict
// and partial: it must never panic, fail only with an error naming the
// journal, and never return a record whose line fails its checksum.
func FuzzJournalReader(f *testing.F) {
	dir := f.TempDir()
	path := filepath.Join(dir, "seed")
	j, err := createJournal(path)
	if err != nil {
		f.Fatal(err)
	}
	j.start(startRecord{Tool: "patch", To: "orders"})
	s := &Step{Line: 1, Key: rewind.Key{{Name: "pk", Type: 'S', Value: "a"}}, Action: ActionDelete, Before: rewind.Item{"pk": &types.AttributeValueMemberS{Value: "a"}}}
	j.append(appendIntent(nil, s))
	j.append(appendOutcome(nil, &result{step: s, status: StatusWritten}))
	j.end()
	j.close()
	seed, _ := os.ReadFile(path)
	f.Add(seed)
	f.Add(seed[:len(seed)/2])
	f.Add(append(bytes.Clone(seed), seed...))
	f.Add([]byte(`{"op":"start","version":1,"tool":"patch","to":"orders"}` + "\n" + `{"op":"intent","seq":2,"crc":"00000000"}` + "\n"))
	f.Add([]byte(`{"op":"x","seq":1,"crc":"zzzzzzzz"}` + "\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, partial := range []bool{false, true} {
			jr := newJournalReader(bytes.NewReader(data), "fuzz.journal")
			jr.partial = partial
			for range 10000 {
				rec, err := jr.next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					if !strings.Contains(err.Error(), "fuzz.journal") {
						t.Fatalf("error %q does not name the journal", err)
					}
					break
				}
				line := bytes.TrimSuffix(jr.buf, []byte("\n"))
				seq, sum, framed := splitFrame(line)
				switch {
				case jr.version == 2 && !framed:
					t.Fatalf("record %+v from an unframed line %q", rec, line)
				case jr.version == 2 && crc32.Checksum(line[:bytes.LastIndex(line, []byte(`,"crc":"`))], castagnoli) != sum:
					t.Fatalf("record %+v from a line failing its checksum: %q", rec, line)
				case jr.version == 2 && seq != jr.seq:
					t.Fatalf("record with seq %d reported as %d", seq, jr.seq)
				case jr.version == 1 && framed:
					t.Fatalf("a version 1 read returned a framed line %q", line)
				}
			}
		}
	})
}
