package cli

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ddbrewind/rewind/recover/patch/patchtest"
)

// hangProxy forwards requests to DynamoDB Local, except requests number
// after+1 to after+count (count 0: all from after+1 on), which it never
// answers; with forward, it still passes them on first, so a write lands
// and its client cannot tell.
type hangProxy struct {
	URL  string
	n    atomic.Int64 // requests seen
	hung atomic.Int64 // requests left without an answer so far
}

func startHangProxy(t *testing.T, upstream string, after, count int64, forward bool) *hangProxy {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	p := &hangProxy{}
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := p.n.Add(1)
		if i <= after || (count > 0 && i > after+count) {
			rp.ServeHTTP(w, r)
			return
		}
		if forward {
			rp.ServeHTTP(discardResponse{http.Header{}}, r.WithContext(context.WithoutCancel(r.Context())))
		}
		p.hung.Add(1)
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stop) }) // first: lets hung handlers return
	p.URL = srv.URL
	return p
}

type discardResponse struct{ h http.Header }

func (d discardResponse) Header() http.Header         { return d.h }
func (d discardResponse) Write(b []byte) (int, error) { return len(b), nil }
func (d discardResponse) WriteHeader(int)             {}

// waitFor polls cond until it holds, failing the test after limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPatchSilentEndpoint: against a DynamoDB endpoint that accepts
// connections and never answers, patch fails with an error naming the
// endpoint and the timeout instead of waiting forever.
func TestPatchSilentEndpoint(t *testing.T) {
	addr, _ := silentListener(t)
	awsTestEnv(t, "http://"+addr, map[string]string{"REWIND_AWS_HEADER_TIMEOUT": "200ms"})
	type outcome struct {
		code   int
		stderr string
	}
	done := make(chan outcome, 1)
	go func() {
		code, _, stderr := runPatchCLI(t, "patch", "--keys", "k", "--from", "a", "--to", "b", "--max-attempts", "2")
		done <- outcome{code, stderr}
	}()
	var o outcome
	select {
	case o = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("patch against a silent endpoint still waiting after 30s")
	}
	if o.code != exitError {
		t.Errorf("exit %d, want %d", o.code, exitError)
	}
	for _, want := range []string{`rewind patch: patch: production table: describe table "b"`, "DynamoDB DescribeTable at http://" + addr, "no answer within 200ms", "REWIND_AWS_HEADER_TIMEOUT"} {
		if !strings.Contains(o.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, o.stderr)
		}
	}
}

// TestPatchProgressWaiting: when DynamoDB stops answering mid-run, the
// progress line says the patch is waiting on it, for how long and on how
// many calls, instead of repeating the same counts.
func TestPatchProgressWaiting(t *testing.T) {
	ddb, s, keys, _ := patchStack(t, patchtest.ScenarioOptions{Items: 60, Modify: 30, Delete: 10, Seed: 41})
	// Two DescribeTable and two BatchGetItem calls, then 10 writes
	// answered, then the two writes in flight hang.
	proxy := startHangProxy(t, ddb.Endpoint, 14, 2, false)
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", proxy.URL)
	t.Setenv("REWIND_AWS_HEADER_TIMEOUT", "3s")
	j := filepath.Join(t.TempDir(), "p.journal")
	code, stdout, stderr := runPatchCLI(t, "patch", "--keys", keys, "--from", "orders-restored", "--to", "orders", "--yes",
		"--concurrency", "2", "--max-attempts", "1", "--progress", "250ms", "--journal", j)
	if proxy.hung.Load() != 2 {
		t.Fatalf("%d requests hung, want 2\n%s", proxy.hung.Load(), stderr)
	}
	if code != exitPartial {
		t.Errorf("exit %d, want %d (the two hung writes failed)\n%s", code, exitPartial, stderr)
	}
	if !strings.Contains(stderr, "waiting on DynamoDB for ") || !strings.Contains(stderr, "(2 calls in flight)") {
		t.Errorf("no progress line says the patch waits on DynamoDB:\n%s", stderr)
	}
	if n := len(jsonLines(t, stdout)); n != 2 {
		t.Errorf("%d failure lines on stdout, want 2:\n%s", n, stdout)
	}
	if !strings.Contains(stdout, "REWIND_AWS_HEADER_TIMEOUT") {
		t.Errorf("failures do not name the timeout:\n%s", stdout)
	}
	// A fresh patch against the healthy endpoint puts the two keys right.
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", ddb.Endpoint)
	if code, _, stderr := runPatchCLI(t, "patch", "--keys", keys, "--from", "orders-restored", "--to", "orders", "--yes", "--progress", "0", "--journal", j+"2"); code != exitOK {
		t.Fatalf("second patch: exit %d\n%s", code, stderr)
	}
	assertProd(t, ddb.DynamoDB, s.Expected, "after the stalled patch and a second one")
}

// TestPatchInterruptHung interrupts a patch whose writes hang. One SIGINT
// stops it within seconds, journals and checkpoints what is done, and
// --resume against the healthy endpoint finishes it. A second SIGINT exits
// at once and prints the command to continue, which also finishes it.
func TestPatchInterruptHung(t *testing.T) {
	for _, tc := range []struct {
		name    string
		signals int
		forward bool // the hung writes land
	}{
		{"once", 1, false},
		{"twice", 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ddb, s, keys, awsEnv := patchStack(t, patchtest.ScenarioOptions{Items: 100, Modify: 60, Delete: 20, Junk: 10, Seed: 37})
			proxy := startHangProxy(t, ddb.Endpoint, 30, 0, tc.forward)
			j := filepath.Join(t.TempDir(), "p.journal")
			args := []string{"patch", "--keys", keys, "--from", "orders-restored", "--to", "orders", "--yes", "--concurrency", "4", "--journal", j, "--progress", "0"}
			cmd, out := childCmd(t, append(awsEnv, "AWS_ENDPOINT_URL_DYNAMODB="+proxy.URL), args...)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			t.Cleanup(func() { cmd.Process.Kill() })
			waitFor(t, 30*time.Second, "writes hanging", func() bool { return proxy.hung.Load() >= 4 })
			time.Sleep(200 * time.Millisecond)

			cmd.Process.Signal(os.Interrupt)
			limit := 30 * time.Second // writeTimeout (10s) and then some
			if tc.signals == 2 {
				time.Sleep(500 * time.Millisecond)
				select {
				case err := <-exited:
					t.Fatalf("exited (%v) before its writes in flight were let finish\n%s", err, out)
				default:
				}
				cmd.Process.Signal(os.Interrupt)
				limit = 5 * time.Second
			}
			signalled := time.Now()
			var err error
			select {
			case err = <-exited:
			case <-time.After(limit):
				t.Fatalf("still running %s after the last SIGINT\n%s", limit, out)
			}
			if code := exitOf(t, err); code != exitInterrupted {
				t.Fatalf("exit %d, want %d\n%s", code, exitInterrupted, out)
			}
			t.Logf("exited %s after the last SIGINT", time.Since(signalled).Round(time.Millisecond))
			wants := []string{"rewind: interrupt: stopping", "--resume --journal " + j}
			if tc.signals == 1 {
				wants = append(wants, "rewind patch: INTERRUPTED")
			} else {
				wants = append(wants, "rewind: interrupted again: exiting now; to continue: rewind patch ")
			}
			for _, want := range wants {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}

			// Resume against the healthy endpoint: after two signals, with
			// the very command line the CLI printed.
			resume := append(args, "--resume")
			if tc.signals == 2 {
				_, line, _ := strings.Cut(out.String(), "to continue: rewind ")
				line, _, _ = strings.Cut(line, "\n")
				resume = strings.Fields(line)
			}
			cmd, out = childCmd(t, awsEnv, resume...)
			if code := exitOf(t, cmd.Run()); code != exitOK {
				t.Fatalf("resume %q: exit %d\n%s", resume, code, out)
			}
			assertProd(t, ddb.DynamoDB, s.Expected, "after the interrupt and --resume")
		})
	}
}
