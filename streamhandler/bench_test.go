package streamhandler

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/ddbrewind/rewind"
)

// memTransport answers every DynamoDB request in memory, as a DynamoDB
// that processed everything would, after reading the request body.
type memTransport struct{}

func (memTransport) Do(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	body := `{"UnprocessedItems":{}}`
	return &http.Response{
		StatusCode:    200,
		Header:        http.Header{"Content-Type": {"application/x-amz-json-1.0"}},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}, nil
}

// discardS3 is an in-memory S3 sink that reads and drops object bodies.
type discardS3 struct{ bytes int64 }

func (d *discardS3) PutObject(ctx context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	n, err := io.Copy(io.Discard, in.Body)
	d.bytes += n
	return &s3.PutObjectOutput{}, err
}

func benchClient() *dynamodb.Client {
	return dynamodb.New(dynamodb.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String("http://dynamodb.local"),
		Credentials:  credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
		HTTPClient:   memTransport{},
	})
}

// benchPayload is n records of about 2.5 KB: ~1 KB old and new images.
func benchPayload(n int) []byte {
	return payload(genRecords(n, time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC), 10*time.Millisecond, 1400))
}

// BenchmarkHandler measures the handler's whole work on one invocation
// (decode, convert, Parquet, audit requests through a real DynamoDB client)
// against aws-lambda-go's bare decode of the same payload into
// events.DynamoDBEvent, in the same run. Compare the two with benchstat.
func BenchmarkHandler(b *testing.B) {
	for _, n := range []int{100, 1000, 2400} {
		p := benchPayload(n)
		b.Run(fmt.Sprintf("impl=rewind/records=%d", n), func(b *testing.B) {
			h, err := New(Config{AuditTable: "audit", Bucket: "capture"}, benchClient(), &discardS3{}, slog.New(slog.NewJSONHandler(io.Discard, nil)))
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.SetBytes(int64(len(p)))
			b.ReportAllocs()
			b.ResetTimer()
			cpu := cpuTime()
			for i := 0; i < b.N; i++ {
				out, err := h.Invoke(ctx, p)
				if err != nil || !bytes.Equal(out, []byte(`{"batchItemFailures":null}`)) {
					b.Fatalf("%s %v", out, err)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
		})
		b.Run(fmt.Sprintf("impl=lambda-go-decode/records=%d", n), func(b *testing.B) {
			b.SetBytes(int64(len(p)))
			b.ReportAllocs()
			cpu := cpuTime()
			for i := 0; i < b.N; i++ {
				var ev events.DynamoDBEvent
				if err := json.Unmarshal(p, &ev); err != nil || len(ev.Records) != n {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// cpuTime returns the CPU time this process has used, user and system, in
// nanoseconds. On a shared machine it is steadier than wall time: other
// processes delay a benchmark but do not add to its CPU time.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkDecode measures the decoder alone on the benchmark payload,
// compact as Lambda sends it and indented (whose images it compacts).
func BenchmarkDecode(b *testing.B) {
	for _, n := range []int{1000} {
		compact := benchPayload(n)
		var indented bytes.Buffer
		if err := json.Indent(&indented, compact, "", "  "); err != nil {
			b.Fatal(err)
		}
		for _, l := range []struct {
			name    string
			payload []byte
		}{{"compact", compact}, {"indented", indented.Bytes()}} {
			b.Run(fmt.Sprintf("layout=%s/records=%d", l.name, n), func(b *testing.B) {
				d := testDecoder(b, nil)
				var evs []rewind.ChangeEvent
				b.SetBytes(int64(len(l.payload)))
				b.ReportAllocs()
				cpu := cpuTime()
				for b.Loop() {
					var err error
					if evs, err = d.decode(l.payload, evs[:0]); err != nil || len(evs) != n {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
				b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
			})
		}
	}
}
