package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer/indextest"
	"github.com/ddbrewind/rewind/streamhandler"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/parquet-go/parquet-go"
)

// acceptAll is an audit table that stores every write.
type acceptAll struct{}

func (acceptAll) BatchWriteItem(context.Context, *dynamodb.BatchWriteItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	return &dynamodb.BatchWriteItemOutput{}, nil
}

// dirBucket is a capture bucket kept in a local directory, laid out as
// rewind index --source DIR reads it.
type dirBucket struct{ dir string }

func (b dirBucket) PutObject(_ context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	data, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(b.dir, filepath.FromSlash(*in.Key))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	return &s3.PutObjectOutput{}, os.WriteFile(path, data, 0o644)
}

func reformatJSON(t *testing.T, b []byte, opts ...jsontext.Options) []byte {
	t.Helper()
	out, err := jsontext.AppendFormat(nil, b, append([]jsontext.Options{jsontext.AllowDuplicateNames(true), jsontext.PreserveRawStrings(true)}, opts...)...)
	if err != nil {
		t.Fatalf("reformat: %v", err)
	}
	return out
}

// checkJSONLines fails unless every line of out is one compact JSON
// object, and returns the number of lines.
func checkJSONLines(t *testing.T, what, out string) int {
	t.Helper()
	if out != "" && !strings.HasSuffix(out, "\n") {
		t.Fatalf("%s: output does not end in a newline", what)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	for i, line := range lines {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal([]byte(line), &obj); err != nil {
			t.Fatalf("%s: line %d is not a JSON object (%v): %q", what, i+1, err, line)
		}
		var c bytes.Buffer
		if err := json.Compact(&c, []byte(line)); err != nil || c.String() != line {
			t.Fatalf("%s: line %d is not compact JSON: %q", what, i+1, line)
		}
	}
	return len(lines)
}

// checkParquetImages fails unless every image in the capture objects under
// dir is compact JSON.
func checkParquetImages(t *testing.T, dir string) {
	t.Helper()
	var images int
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rows, err := parquet.Read[rewind.ParquetRow](bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		for _, r := range rows {
			for _, im := range [][]byte{r.OldImage, r.NewImage} {
				if len(im) == 0 {
					continue
				}
				images++
				var c bytes.Buffer
				if err := json.Compact(&c, im); err != nil || !bytes.Equal(c.Bytes(), im) {
					return fmt.Errorf("%s: event %s: image is not compact JSON: %q", path, r.EventID, im)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if images == 0 {
		t.Fatalf("no images in the capture objects under %s", dir)
	}
}

// TestPrettyPayloadToQueryJSONLines follows captured stream events, in the
// indented layout they were captured in and single-line with spaces, through
// the stream handler, its Parquet, rewind index and rewind query --format
// json: each stdout line must be one compact JSON object, the same as for
// the compact payload.
func TestPrettyPayloadToQueryJSONLines(t *testing.T) {
	for _, fixture := range []string{"ddblocal-new-and-old-images.json", "aws-doc-ttl-and-binary.json", "ddblocal-ttl-expiry.json"} {
		captured, err := os.ReadFile(filepath.Join("..", "..", "testdata", "streams", fixture))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(captured, []byte("\n  ")) {
			t.Fatalf("%s is no longer indented; the test needs a pretty-printed payload", fixture)
		}
		layouts := []struct{ name string }{{"compact"}, {"indented"}, {"spaced"}}
		outputs := map[string]string{}
		for _, l := range layouts {
			var payload []byte
			switch l.name {
			case "compact":
				payload = reformatJSON(t, captured)
			case "indented":
				payload = captured
			case "spaced":
				payload = reformatJSON(t, captured, jsontext.SpaceAfterColon(true), jsontext.SpaceAfterComma(true))
			}
			src, store := t.TempDir(), filepath.Join(t.TempDir(), "store")
			h, err := streamhandler.New(streamhandler.Config{AuditTable: "audit", Bucket: "capture",
				Tenant: rewind.TenantRule{Regex: regexp.MustCompile(`^TENANT#([^#]+)#`)}}, acceptAll{}, dirBucket{src}, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := h.Handle(context.Background(), payload)
			if err != nil || len(resp.BatchItemFailures) > 0 {
				t.Fatalf("%s %s: handler: %v %+v", fixture, l.name, err, resp)
			}
			checkParquetImages(t, src)
			if code, _, errs := runIndexCLI(t, "index", "--source", src, "--store", store); code != exitOK {
				t.Fatalf("%s %s: index: exit %d\n%s", fixture, l.name, code, errs)
			}
			code, out, errs := runIndexCLI(t, "query", "--store", store, "--format", "json")
			if code != exitOK {
				t.Fatalf("%s %s: query: exit %d\n%s", fixture, l.name, code, errs)
			}
			if n := checkJSONLines(t, fixture+" "+l.name, out); n == 0 {
				t.Fatalf("%s %s: no events", fixture, l.name)
			}
			if !strings.Contains(out, `"new":{`) && !strings.Contains(out, `"old":{`) {
				t.Fatalf("%s %s: no images in the output:\n%s", fixture, l.name, out)
			}
			outputs[l.name] = out
		}
		for _, l := range layouts[1:] {
			if outputs[l.name] != outputs["compact"] {
				t.Errorf("%s: query --format json of the %s payload differs from the compact one's:\n%s\nwant\n%s", fixture, l.name, outputs[l.name], outputs["compact"])
			}
		}
	}
}

// TestQueryJSONCompactsOldImages indexes capture objects whose images were
// stored indented, as the stream handler wrote them from pretty-printed
// payloads before it compacted images: query --format json still prints
// one compact line per change.
func TestQueryJSONCompactsOldImages(t *testing.T) {
	evs := indextest.NewGen(21).Events(80)
	pretty := make([]rewind.ChangeEvent, len(evs))
	var indented int
	for i, ev := range evs {
		for _, im := range []*rewind.Image{&ev.OldImage, &ev.NewImage} {
			if *im != nil {
				*im = reformatJSON(t, *im, jsontext.Multiline(true), jsontext.WithIndent("  "))
				indented++
			}
		}
		pretty[i] = ev
	}
	if indented == 0 {
		t.Fatal("no images to indent")
	}
	outputs := map[string]string{}
	for name, set := range map[string][]rewind.ChangeEvent{"compact": evs, "indented": pretty} {
		src, store := t.TempDir(), filepath.Join(t.TempDir(), "store")
		if err := indextest.WriteDir(src, indextest.Objects("capture", set, 20)); err != nil {
			t.Fatal(err)
		}
		if code, _, errs := runIndexCLI(t, "index", "--source", src, "--store", store); code != exitOK {
			t.Fatalf("%s: index: exit %d\n%s", name, code, errs)
		}
		code, out, errs := runIndexCLI(t, "query", "--store", store, "--format", "json")
		if code != exitOK {
			t.Fatalf("%s: query: exit %d\n%s", name, code, errs)
		}
		checkJSONLines(t, name, out)
		outputs[name] = out
	}
	if outputs["indented"] != outputs["compact"] {
		t.Errorf("query --format json of indented images differs from that of compact ones:\n%s\nwant\n%s", outputs["indented"], outputs["compact"])
	}
}
