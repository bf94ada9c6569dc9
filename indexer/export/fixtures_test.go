package export

import (
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the fixture exports under testdata/exports from their source/*.jsonl")

// fixtureRoot is where the fixture exports live: each is a copy of a
// bucket prefix (aws s3 sync s3://bucket/prefix/ DIR), AWSDynamoDB/ and
// all, plus source/, the data lines as written by hand from AWS's
// documented format, one .jsonl per data file.
const fixtureRoot = "../../testdata/exports"

// fixtureDir returns the export directory of fixture name.
func fixtureDir(t testing.TB, name string) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(fixtureRoot, name, "AWSDynamoDB", "0*"))
	if err != nil || len(m) != 1 {
		t.Fatalf("fixture %s: want one export directory, got %v %v", name, m, err)
	}
	return m[0]
}

// gzipBytes compresses b with a header that does not depend on time.
func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// multipartETag is the ETag S3 gives an object uploaded in one part of a
// multipart upload, as export data files are: MD5 of the part's MD5, "-1".
func multipartETag(b []byte) string {
	part := md5.Sum(b)
	all := md5.Sum(part[:])
	return hex.EncodeToString(all[:]) + "-1"
}

// TestFixtures rewrites (with -update) or checks the fixture exports: each
// data file is its source gzipped, and manifest-files.json lists every data
// file with its item count, MD5 and key.
func TestFixtures(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join(fixtureRoot, "*", "source"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no fixtures under %s: %v", fixtureRoot, err)
	}
	for _, src := range dirs {
		name := filepath.Base(filepath.Dir(src))
		t.Run(name, func(t *testing.T) {
			expDir := fixtureDir(t, name)
			var sum Summary
			b, err := os.ReadFile(filepath.Join(expDir, "manifest-summary.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &sum); err != nil {
				t.Fatal(err)
			}
			prefix := ""
			if sum.S3Prefix != nil {
				prefix = *sum.S3Prefix + "/"
			}
			sources, _ := filepath.Glob(filepath.Join(src, "*.jsonl"))
			slices.Sort(sources)
			var manifest bytes.Buffer
			var total int64
			for _, s := range sources {
				lines, err := os.ReadFile(s)
				if err != nil {
					t.Fatal(err)
				}
				base := strings.TrimSuffix(filepath.Base(s), ".jsonl")
				dataPath := filepath.Join(fixtureRoot, name, "AWSDynamoDB", "data", base+".json.gz")
				if *update {
					if err := os.WriteFile(dataPath, gzipBytes(t, lines), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				data, err := os.ReadFile(dataPath)
				if err != nil {
					t.Fatalf("%v (run go test -run TestFixtures -update)", err)
				}
				zr, err := gzip.NewReader(bytes.NewReader(data))
				if err != nil {
					t.Fatalf("%s: %v", dataPath, err)
				}
				plain, err := io.ReadAll(zr)
				if err != nil || !bytes.Equal(plain, lines) {
					t.Fatalf("%s does not hold %s (%v); run with -update", dataPath, s, err)
				}
				n := int64(bytes.Count(lines, []byte("\n")))
				total += n
				sum := md5.Sum(data)
				line, _ := json.Marshal(FileEntry{
					ItemCount:     n,
					MD5Checksum:   base64.StdEncoding.EncodeToString(sum[:]),
					ETag:          multipartETag(data),
					DataFileS3Key: prefix + "AWSDynamoDB/data/" + base + ".json.gz",
				})
				manifest.Write(line)
				manifest.WriteByte('\n')
			}
			if total != sum.ItemCount {
				t.Errorf("manifest-summary.json itemCount %d, data files hold %d", sum.ItemCount, total)
			}
			filesPath := filepath.Join(expDir, "manifest-files.json")
			if *update {
				if err := os.WriteFile(filesPath, manifest.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				// The checksum files' content is not documented; rewind does
				// not read them. Hex MD5 of the manifest stands in.
				for _, f := range []string{"manifest-files", "manifest-summary"} {
					m, _ := os.ReadFile(filepath.Join(expDir, f+".json"))
					s := md5.Sum(m)
					os.WriteFile(filepath.Join(expDir, f+".checksum"), []byte(hex.EncodeToString(s[:])), 0o644)
				}
			}
			got, err := os.ReadFile(filesPath)
			if err != nil || !bytes.Equal(got, manifest.Bytes()) {
				t.Fatalf("%s is stale (%v); run go test -run TestFixtures -update", filesPath, err)
			}
		})
	}
}
