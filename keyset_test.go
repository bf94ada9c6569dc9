package rewind

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func mustKey(t testing.TB, s string) Key {
	t.Helper()
	k, err := ParseKey([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeySetExampleLine(t *testing.T) {
	line := `{"table":"orders","key":{"pk":{"S":"t1"},"sk":{"S":"order#42"}},"tenant":"t1","first":"2026-11-20T10:04:05Z","last":"2026-11-20T10:31:12Z","count":3,"actions":["MODIFY","REMOVE"]}`
	e, err := ParseKeySetLine([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(e.AppendJSON(nil)); got != line {
		t.Fatalf("re-encoded line differs:\n got %s\nwant %s", got, line)
	}
}

func TestKeySetWriterSortsAndMerges(t *testing.T) {
	for _, runSize := range []int{0, 3} { // 3 forces spilled runs
		t.Run(fmt.Sprintf("runSize=%d", runSize), func(t *testing.T) {
			var buf bytes.Buffer
			w := NewKeySetWriter(&buf)
			w.RunSize = runSize
			w.TempDir = t.TempDir()
			t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
			type in struct {
				table, key string
				at         int
				action     Action
			}
			ins := []in{
				{"orders", `{"pk":{"S":"b"}}`, 5, ActionModify},
				{"orders", `{"pk":{"S":"a"}}`, 3, ActionInsert},
				{"accounts", `{"pk":{"S":"z"}}`, 1, ActionRemove},
				{"orders", `{"pk":{"S":"b"}}`, 1, ActionInsert},
				{"orders", `{"pk":{"S":"a"}}`, 9, ActionRemove},
				{"orders", `{"pk":{"S":"b"}}`, 7, ActionModify},
				{"orders", `{"pk":{"S":"c"}}`, 2, ActionModify},
			}
			rand.Shuffle(len(ins), func(i, j int) { ins[i], ins[j] = ins[j], ins[i] })
			for _, x := range ins {
				ts := t0.Add(time.Duration(x.at) * time.Minute)
				if err := w.Add(KeySetEntry{Table: x.table, Key: mustKey(t, x.key), Tenant: "t", First: ts, Last: ts, Count: 1, Actions: []Action{x.action}}); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			want := strings.Join([]string{
				`{"table":"accounts","key":{"pk":{"S":"z"}},"tenant":"t","first":"2026-11-20T10:01:00Z","last":"2026-11-20T10:01:00Z","count":1,"actions":["REMOVE"]}`,
				`{"table":"orders","key":{"pk":{"S":"a"}},"tenant":"t","first":"2026-11-20T10:03:00Z","last":"2026-11-20T10:09:00Z","count":2,"actions":["INSERT","REMOVE"]}`,
				`{"table":"orders","key":{"pk":{"S":"b"}},"tenant":"t","first":"2026-11-20T10:01:00Z","last":"2026-11-20T10:07:00Z","count":3,"actions":["INSERT","MODIFY"]}`,
				`{"table":"orders","key":{"pk":{"S":"c"}},"tenant":"t","first":"2026-11-20T10:02:00Z","last":"2026-11-20T10:02:00Z","count":1,"actions":["MODIFY"]}`,
			}, "\n") + "\n"
			if buf.String() != want {
				t.Fatalf("key set:\n%s\nwant:\n%s", buf.String(), want)
			}
			if w.Written() != 4 {
				t.Errorf("Written() = %d, want 4", w.Written())
			}
		})
	}
}

func TestKeySetReaderErrorsNameTheLine(t *testing.T) {
	good := `{"table":"orders","key":{"pk":{"S":"a"}}}`
	for _, tc := range []struct {
		name, bad, want string
	}{
		{"not json", `{"table":`, "line 3: not a key-set line"},
		{"no table", `{"key":{"pk":{"S":"a"}}}`, `line 3: missing "table"`},
		{"no key", `{"table":"orders"}`, `line 3: missing "key"`},
		{"bad key type", `{"table":"orders","key":{"pk":{"BOOL":true}}}`, `line 3: key {"pk":{"BOOL":true}}`},
		{"bad action", `{"table":"orders","key":{"pk":{"S":"a"}},"actions":["UPSERT"]}`, `line 3: unknown action "UPSERT"`},
		{"bad time", `{"table":"orders","key":{"pk":{"S":"a"}},"first":"yesterday"}`, `line 3: "first" is not an RFC 3339 time`},
		{"two values", `{"table":"orders","key":{"pk":{"S":"a"}}} {}`, "line 3: more than one JSON value"},
		{"last before first", `{"table":"orders","key":{"pk":{"S":"a"}},"first":"2026-01-02T00:00:00Z","last":"2026-01-01T00:00:00Z"}`, "line 3: last"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewKeySetReader(strings.NewReader(good+"\n\n"+tc.bad+"\n"+good+"\n"), "keys.jsonl")
			if _, err := r.Next(); err != nil {
				t.Fatal(err)
			}
			_, err := r.Next()
			if err == nil || !strings.Contains(err.Error(), "keys.jsonl: "+tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, "keys.jsonl: "+tc.want)
			}
		})
	}
}

func TestKeySetReaderStreams(t *testing.T) {
	// A reader over a generator: lines are produced as they are read, so
	// the test holds constant memory whatever n is.
	const n = 20000
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < n; i++ {
			fmt.Fprintf(pw, `{"table":"t","key":{"pk":{"S":"k%08d"}},"count":1}`+"\n", i)
		}
		pw.Close()
	}()
	r := NewKeySetReader(pr, "-")
	count := 0
	for {
		e, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("k%08d", count); e.Key[0].Value != want {
			t.Fatalf("entry %d key %s, want %s", count, e.Key[0].Value, want)
		}
		count++
	}
	if count != n {
		t.Fatalf("read %d entries, want %d", count, n)
	}
}

func FuzzKeySetReader(f *testing.F) {
	f.Add([]byte(`{"table":"orders","key":{"pk":{"S":"t1"},"sk":{"S":"order#42"}},"tenant":"t1","first":"2026-11-20T10:04:05Z","last":"2026-11-20T10:31:12Z","count":3,"actions":["MODIFY","REMOVE"]}` + "\n"))
	f.Add([]byte(`{"table":"t","key":{"id":{"B":"AAE="}}}` + "\n" + `{"table":"t","key":{"n":{"N":"1e3"}}}`))
	f.Add([]byte("\n\n{\"table\":1}\n"))
	f.Add([]byte("\xEF\xBB\xBF{\"table\":\"t\",\"key\":{\"pk\":{\"S\":\"\xEF\xBB\xBF\"}}}\n\xEF\xBB\xBF{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewKeySetReader(bytes.NewReader(data), "fuzz")
		for {
			e, err := r.Next()
			if err != nil {
				if !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "fuzz: line ") {
					t.Fatalf("error without a line number: %v", err)
				}
				return
			}
			// Whatever parses must re-encode to a line that parses to
			// the same entry.
			again, err := ParseKeySetLine(e.AppendJSON(nil))
			if err != nil {
				t.Fatalf("re-encoded entry does not parse: %v\n%s", err, e.AppendJSON(nil))
			}
			if !again.Key.Equal(e.Key) || again.Table != e.Table || again.Count != e.Count {
				t.Fatalf("round trip changed the entry: %+v vs %+v", e, again)
			}
		}
	})
}

func TestKeySetReaderByteOrderMark(t *testing.T) {
	const (
		bom  = "\xEF\xBB\xBF"
		l1   = `{"table":"t","key":{"pk":{"S":"a"}}}`
		l2   = `{"table":"t","key":{"pk":{"S":"b"}}}`
		keyB = `{"table":"t","key":{"pk":{"S":"` + bom + `b"}}}`
	)
	for _, tc := range []struct {
		name    string
		in      string
		keys    []string // pk values read before the error or EOF
		wantErr string
	}{
		{"none", l1 + "\n" + l2 + "\n", []string{"a", "b"}, ""},
		{"at the start", bom + l1 + "\n" + l2 + "\n", []string{"a", "b"}, ""},
		{"at the start, CRLF", bom + l1 + "\r\n" + l2 + "\r\n", []string{"a", "b"}, ""},
		{"alone on the first line", bom + "\n" + l1 + "\n", []string{"a"}, ""},
		{"a key set of only a BOM", bom, nil, ""},
		{"inside a string is data", keyB + "\n", []string{bom + "b"}, ""},
		{"at the start of line 2", l1 + "\n" + bom + l2 + "\n", []string{"a"},
			"keys.jsonl: line 2: byte-order mark (U+FEFF, bytes EF BB BF) at the start of the line: only the start of a key set may have one"},
		{"after a blank first line", "\n" + bom + l1 + "\n", nil,
			"keys.jsonl: line 2: byte-order mark (U+FEFF, bytes EF BB BF) at the start of the line"},
		{"twice at the start", bom + bom + l1 + "\n", nil,
			"keys.jsonl: line 1: byte-order mark (U+FEFF, bytes EF BB BF) at the start of the line"},
		{"mid-line, files joined without a newline", l1 + bom + l2 + "\n", nil,
			"keys.jsonl: line 1: byte-order mark (U+FEFF, bytes EF BB BF) at byte offset 36"},
		{"after leading spaces", "  " + bom + l1 + "\n", nil,
			"keys.jsonl: line 1: byte-order mark (U+FEFF, bytes EF BB BF) at byte offset 2"},
		{"UTF-16 LE", "\xFF\xFE{\x00", nil, "keys.jsonl: line 1: starts with a UTF-16 byte-order mark (bytes FF FE): a key set is UTF-8"},
		{"UTF-16 BE", "\xFE\xFF\x00{", nil, "keys.jsonl: line 1: starts with a UTF-16 byte-order mark (bytes FE FF)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewKeySetReader(strings.NewReader(tc.in), "keys.jsonl")
			var got []string
			var err error
			for {
				var e KeySetEntry
				e, err = r.Next()
				if err != nil {
					break
				}
				got = append(got, e.Key[0].Value)
			}
			if !slices.Equal(got, tc.keys) {
				t.Errorf("read keys %q, want %q", got, tc.keys)
			}
			switch {
			case tc.wantErr == "" && !errors.Is(err, io.EOF):
				t.Errorf("error %v, want none", err)
			case tc.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.wantErr)):
				t.Errorf("error %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// TestKeySetReaderRefusesNumbersDynamoDBCannotStore: the key set,
// valid lines then a number DynamoDB refuses, fails on that line while the
// key set is read, before anything could be written.
func TestKeySetReaderRefusesNumbersDynamoDBCannotStore(t *testing.T) {
	for _, tc := range []struct{ n, want string }{
		{"123456789012345678901234567890123456789", `number "123456789012345678901234567890123456789" has 39 significant digits, more than DynamoDB's 38`},
		{"1e200", `number "1e200" is too large`},
		{"1e-131", `number "1e-131" is too small`},
	} {
		var in strings.Builder
		for i := range 1198 {
			fmt.Fprintf(&in, `{"table":"t","key":{"pk":{"S":"p"},"sk":{"N":"%d"}}}`+"\n", i)
		}
		fmt.Fprintf(&in, `{"table":"t","key":{"pk":{"S":"p"},"sk":{"N":%q}}}`+"\n", tc.n)
		r := NewKeySetReader(strings.NewReader(in.String()), "keys.jsonl")
		read := 0
		var err error
		for {
			if _, err = r.Next(); err != nil {
				break
			}
			read++
		}
		if read != 1198 || err == nil || !strings.HasPrefix(err.Error(), "keys.jsonl: line 1199: ") || !strings.Contains(err.Error(), `attribute "sk": N: `+tc.want) {
			t.Errorf("%s: read %d lines, then %v; want 1198 lines, then line 1199 refused with %q", tc.n, read, err, tc.want)
		}
	}
}
