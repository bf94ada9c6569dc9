package export

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/ddbrewind/rewind"
)

// BenchmarkReadFile decodes a data file of changed items, each with both
// images of about 300 bytes.
func BenchmarkReadFile(b *testing.B) {
	for _, n := range []int{1e3, 1e5} {
		b.Run(fmt.Sprintf("items=%.0e", float64(n)), func(b *testing.B) {
			var lines bytes.Buffer
			for i := range n {
				fmt.Fprintf(&lines, `{"Metadata":{"WriteTimestampMicros":{"N":"%d"}},"Keys":{"pk":{"S":"TENANT#t%d"},"sk":{"S":"ORDER#%08d"}},`+
					`"OldImage":{"pk":{"S":"TENANT#t%d"},"sk":{"S":"ORDER#%08d"},"status":{"S":"paid"},"total":{"N":"%d.5"},"tags":{"SS":["a","b"]},"note":{"S":"%0100d"}},`+
					`"NewImage":{"pk":{"S":"TENANT#t%d"},"sk":{"S":"ORDER#%08d"},"status":{"S":"cancelled"},"total":{"N":"%d.5"},"tags":{"SS":["a","b"]},"note":{"S":"%0100d"}}}`+"\n",
					1795168800000000+i, i%50, i, i%50, i, i, i, i%50, i, i, i)
			}
			data := gzipBytes(b, lines.Bytes())
			sum := md5.Sum(data)
			f := DataFile{FileEntry: FileEntry{ItemCount: int64(n), MD5Checksum: base64.StdEncoding.EncodeToString(sum[:])}, Name: "bench"}
			e := &Export{ID: "bench", Table: "orders", To: time.Now(), View: ViewNewAndOld, tenant: rewind.TenantRule{}}
			b.SetBytes(int64(lines.Len()))
			b.ResetTimer()
			for range b.N {
				if err := e.readFile(bytes.NewReader(data), f, func(*rewind.ChangeEvent) error { return nil }); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
