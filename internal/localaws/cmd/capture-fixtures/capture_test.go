package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ddbrewind/rewind/internal/localaws"
)

var update = flag.Bool("update", false, "rewrite the ddblocal-*.json fixtures in testdata/streams")

const fixtureDir = "../../../../testdata/streams"

// TestFixturesUpToDate captures the scenarios again and checks that the
// committed fixtures match, up to what changes on every run (event ids,
// sequence numbers, times, stream ARNs, TTL timestamps). With -update it
// rewrites them instead.
func TestFixturesUpToDate(t *testing.T) {
	env := localaws.DynamoDBForTest(t)
	fixtures, err := Capture(t.Context(), env.DynamoDB, env.Streams, Options{TTLWait: 90 * time.Second, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fixtures {
		path := filepath.Join(fixtureDir, f.Name+".json")
		if *update {
			if err := os.WriteFile(path, f.Payload, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%v (run go test -update, or go run ./internal/localaws/cmd/capture-fixtures)", err)
			continue
		}
		if got, want := masked(t, f.Payload), masked(t, want); got != want {
			t.Errorf("%s is out of date (regenerate with go test -update):\n got %s\nwant %s", path, got, want)
		}
	}
}

// volatile names the members whose values differ between captures.
var volatile = map[string]bool{
	"eventID":                     true,
	"SequenceNumber":              true,
	"ApproximateCreationDateTime": true,
	"eventSourceARN":              true,
	"expiresAt":                   true,
}

func masked(t *testing.T, payload []byte) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(payload, &v); err != nil {
		t.Fatal(err)
	}
	var walk func(v any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if volatile[k] {
					x[k] = "*"
				} else {
					x[k] = walk(e)
				}
			}
		case []any:
			for i, e := range x {
				x[i] = walk(e)
			}
		}
		return v
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(walk(v)); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}
