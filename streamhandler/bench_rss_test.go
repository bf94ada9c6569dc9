package streamhandler

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ddbrewind/rewind/internal/localaws/lambdart"
)

// sinkServer answers DynamoDB BatchWriteItem and S3 PutObject requests as
// if everything was stored, after reading the bodies.
func sinkServer(tb testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.Header.Get("X-Amz-Target") != "" {
			w.Header().Set("Content-Type", "application/x-amz-json-1.0")
			io.WriteString(w, `{"UnprocessedItems":{}}`)
			return
		}
		w.Header().Set("ETag", `"0"`)
	})}
	go srv.Serve(ln)
	tb.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// peakRSS returns a process's peak resident set size in bytes (VmHWM).
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

// BenchmarkBootstrapPeakRSS runs the real bootstrap binary under the Lambda
// Runtime API harness with a ~6 MB payload (2,400 records of ~2.5 KB, the
// size at which Lambda invokes a stream function) and reports the
// process's peak RSS. The goal is under 64 MB.
func BenchmarkBootstrapPeakRSS(b *testing.B) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		b.Skip("needs /proc")
	}
	bin := filepath.Join(b.TempDir(), "bootstrap")
	build := exec.Command("go", "build", "-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w", "-o", bin, "../cmd/streamhandler")
	build.Env = append(build.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	sink := sinkServer(b)
	rt, err := lambdart.Start(context.Background(), lambdart.Config{
		Bootstrap: bin,
		MemoryMB:  128,
		Output:    benchOutput(),
		Timeout:   2 * time.Minute,
		Env: []string{
			"REWIND_AUDIT_TABLE=audit", "REWIND_BUCKET=capture", "REWIND_S3_PATH_STYLE=true",
			"AWS_ENDPOINT_URL=" + sink, "AWS_ACCESS_KEY_ID=AKID", "AWS_SECRET_ACCESS_KEY=SECRET", os.Getenv("BENCH_BOOTSTRAP_ENV"),
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	p := benchPayload(2400)
	b.SetBytes(int64(len(p)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out, err := rt.Invoke(context.Background(), p)
		if err != nil || !strings.Contains(string(out), `"batchItemFailures":null`) {
			b.Fatalf("%s %v\n%s", out, err, rt.Logs())
		}
	}
	b.StopTimer()
	rss, err := peakRSS(rt.Pid())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MB")
	b.ReportMetric(float64(len(p))/(1<<20), "payload-MB")
}

// benchOutput is where the bootstrap's output goes: stderr when
// BENCH_BOOTSTRAP_OUTPUT=1 (with GODEBUG=gctrace=1 in BENCH_BOOTSTRAP_ENV
// it shows the live heap at each GC), else nowhere.
func benchOutput() io.Writer {
	if os.Getenv("BENCH_BOOTSTRAP_OUTPUT") == "1" {
		return os.Stderr
	}
	return io.Discard
}
