package guard_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/ddbrewind/rewind/internal/fakessm"
	"github.com/ddbrewind/rewind/internal/localaws"
	"github.com/ddbrewind/rewind/recover/guard"
	"github.com/ddbrewind/rewind/recover/readonly"
)

// clock is a manual clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func setup(t *testing.T, cfg guard.Config) (*fakessm.Server, *guard.Guard, *clock) {
	t.Helper()
	srv, err := fakessm.Start(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	awsCfg, err := localaws.Config(t.Context(), srv.Endpoint, "AKIDTEST")
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg.Now = clk.Now
	if cfg.Rand == nil {
		cfg.Rand = func() float64 { return 0.5 } // no jitter unless asked
	}
	g, err := guard.New(ssm.NewFromConfig(awsCfg), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return srv, g, clk
}

// The guard reads what `rewind readonly` writes.
func TestSharedConstants(t *testing.T) {
	if guard.DefaultParameter != readonly.DefaultParameter || guard.All != readonly.All || guard.Placeholder != readonly.Placeholder {
		t.Fatal("guard and readonly disagree on the parameter name, All or the placeholder")
	}
}

func TestIsReadOnly(t *testing.T) {
	srv, g, _ := setup(t, guard.Config{})
	ctx := t.Context()
	// Never written: nobody is read-only, and that is not an error.
	if ro, err := g.IsReadOnly(ctx, "t1"); ro || err != nil {
		t.Fatalf("missing parameter: %v, %v", ro, err)
	}

	srv2, g2, _ := setup(t, guard.Config{Parameter: "p"})
	srv2.Put("p", "StringList", " t1 ,none,t3")
	for tenant, want := range map[string]bool{"t1": true, "t3": true, "t2": false, "": false, "none": false} {
		if ro, err := g2.IsReadOnly(ctx, tenant); ro != want || err != nil {
			t.Errorf("IsReadOnly(%q) = %v, %v; want %v", tenant, ro, err, want)
		}
	}
	if srv.Count("GetParameter") != 1 || srv2.Count("GetParameter") != 1 {
		t.Errorf("GetParameter calls = %d and %d, want 1 each (cached)", srv.Count("GetParameter"), srv2.Count("GetParameter"))
	}
}

func TestAll(t *testing.T) {
	srv, g, _ := setup(t, guard.Config{})
	srv.Put(guard.DefaultParameter, "StringList", "t1,all")
	for _, tenant := range []string{"t1", "t9", ""} {
		if ro, _ := g.IsReadOnly(t.Context(), tenant); !ro {
			t.Errorf("IsReadOnly(%q) under all = false", tenant)
		}
	}
}

func TestMiddleware(t *testing.T) {
	srv, g, _ := setup(t, guard.Config{RetryAfter: 90500 * time.Millisecond})
	srv.Put(guard.DefaultParameter, "StringList", "t1")
	h := g.Middleware(func(r *http.Request) string { return r.Header.Get("X-Tenant") },
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	for _, tc := range []struct {
		method, tenant string
		blocked        bool
	}{
		{"POST", "t1", true},
		{"PUT", "t1", true},
		{"PATCH", "t1", true},
		{"DELETE", "t1", true},
		{"GET", "t1", false},
		{"HEAD", "t1", false},
		{"OPTIONS", "t1", false},
		{"POST", "t2", false},
		{"POST", "", false},
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(tc.method, "/orders", nil)
		req.Header.Set("X-Tenant", tc.tenant)
		h.ServeHTTP(rec, req)
		if !tc.blocked {
			if rec.Code != 200 {
				t.Errorf("%s by %q: status %d, want 200", tc.method, tc.tenant, rec.Code)
			}
			continue
		}
		if rec.Code != http.StatusServiceUnavailable {
			t.Errorf("%s by %q: status %d, want 503", tc.method, tc.tenant, rec.Code)
		}
		if ra := rec.Header().Get("Retry-After"); ra != "91" {
			t.Errorf("%s by %q: Retry-After %q, want 91 (90.5 s rounded up)", tc.method, tc.tenant, ra)
		}
		if body := rec.Body.String(); body != "Service is currently in read-only mode" {
			t.Errorf("%s by %q: body %q", tc.method, tc.tenant, body)
		}
	}
}

func TestCacheTTL(t *testing.T) {
	srv, g, clk := setup(t, guard.Config{TTL: 10 * time.Second})
	ctx := t.Context()
	srv.Put(guard.DefaultParameter, "StringList", "t1")
	if ro, _ := g.IsReadOnly(ctx, "t1"); !ro {
		t.Fatal("t1 not read-only")
	}
	srv.Put(guard.DefaultParameter, "StringList", "none")
	clk.Add(9 * time.Second)
	for range 5 {
		if ro, _ := g.IsReadOnly(ctx, "t1"); !ro {
			t.Fatal("cached value not used within the TTL")
		}
	}
	if n := srv.Count("GetParameter"); n != 1 {
		t.Fatalf("GetParameter calls within the TTL = %d, want 1", n)
	}
	clk.Add(time.Second)
	if ro, _ := g.IsReadOnly(ctx, "t1"); ro {
		t.Fatal("value not re-read after the TTL")
	}
	if n := srv.Count("GetParameter"); n != 2 {
		t.Fatalf("GetParameter calls = %d, want 2", n)
	}
}

// Concurrent callers at expiry share one read.
func TestOneReadForConcurrentCallers(t *testing.T) {
	srv, g, _ := setup(t, guard.Config{})
	srv.Put(guard.DefaultParameter, "StringList", "t1")
	release := make(chan struct{})
	srv.SetHook(func(op, name string) error { <-release; return nil })
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if ro, err := g.IsReadOnly(t.Context(), "t1"); !ro || err != nil {
				t.Errorf("IsReadOnly = %v, %v", ro, err)
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	if n := srv.Count("GetParameter"); n != 1 {
		t.Fatalf("GetParameter calls = %d, want 1", n)
	}
}

// SSM down after a successful read: the last value keeps being served, and
// SSM is tried again only once per TTL.
func TestSSMDownServesLastKnown(t *testing.T) {
	srv, g, clk := setup(t, guard.Config{TTL: 10 * time.Second})
	ctx := t.Context()
	srv.Put(guard.DefaultParameter, "StringList", "t1")
	if ro, _ := g.IsReadOnly(ctx, "t1"); !ro {
		t.Fatal("t1 not read-only")
	}
	srv.SetHook(func(op, name string) error { return fakessm.ErrDown })
	clk.Add(11 * time.Second)
	if ro, err := g.IsReadOnly(ctx, "t1"); !ro || err != nil {
		t.Fatalf("SSM down: IsReadOnly = %v, %v; want the last known true, nil", ro, err)
	}
	attempts := srv.Count("GetParameter")
	clk.Add(5 * time.Second)
	for range 10 {
		g.IsReadOnly(ctx, "t1")
	}
	if n := srv.Count("GetParameter"); n != attempts {
		t.Fatalf("guard retried a down SSM within the TTL: %d -> %d requests", attempts, n)
	}
	srv.SetHook(nil)
	srv.Put(guard.DefaultParameter, "StringList", "none")
	clk.Add(5 * time.Second)
	if ro, err := g.IsReadOnly(ctx, "t1"); ro || err != nil {
		t.Fatalf("SSM back: IsReadOnly = %v, %v; want false, nil", ro, err)
	}
}

// SSM down and nothing known: fail open by default, closed on request.
func TestSSMDownNothingKnown(t *testing.T) {
	for _, failClosed := range []bool{false, true} {
		srv, g, clk := setup(t, guard.Config{FailClosed: failClosed, FetchTimeout: 5 * time.Second})
		srv.Put(guard.DefaultParameter, "StringList", "t1")
		srv.SetHook(func(op, name string) error { return fakessm.ErrDown })
		ro, err := g.IsReadOnly(t.Context(), "t2")
		if ro != failClosed || !errors.Is(err, guard.ErrUnavailable) {
			t.Fatalf("failClosed=%v: IsReadOnly = %v, %v", failClosed, ro, err)
		}
		h := g.Middleware(func(*http.Request) string { return "t2" }, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/", nil))
		want := 200
		if failClosed {
			want = 503
		}
		if rec.Code != want {
			t.Errorf("failClosed=%v: POST status %d, want %d", failClosed, rec.Code, want)
		}
		// Back within a second, and the value is read.
		srv.SetHook(nil)
		clk.Add(time.Second)
		if ro, err := g.IsReadOnly(t.Context(), "t1"); !ro || err != nil {
			t.Errorf("failClosed=%v: after recovery IsReadOnly(t1) = %v, %v", failClosed, ro, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if _, err := guard.New(nil, guard.Config{TTL: -time.Second}); err == nil {
		t.Error("negative TTL accepted")
	}
}

// The refresh is jittered by +-Jitter of the TTL: with the random source at
// its extremes, the next read is due after 8 s or 12 s, not 10 s.
func TestRefreshJitter(t *testing.T) {
	for _, tc := range []struct {
		rand       float64
		quiet, due time.Duration // no read yet at quiet; a read at due
	}{
		{0, 7900 * time.Millisecond, 8 * time.Second},
		{0.999999, 11900 * time.Millisecond, 12 * time.Second},
	} {
		r := tc.rand
		srv, g, clk := setup(t, guard.Config{TTL: 10 * time.Second, Rand: func() float64 { return r }})
		g.IsReadOnly(t.Context(), "t1")
		clk.Add(tc.quiet)
		g.IsReadOnly(t.Context(), "t1")
		if n := srv.Count("GetParameter"); n != 1 {
			t.Errorf("rand %v: %d reads by %v, want 1", r, n, tc.quiet)
		}
		clk.Add(tc.due - tc.quiet)
		g.IsReadOnly(t.Context(), "t1")
		if n := srv.Count("GetParameter"); n != 2 {
			t.Errorf("rand %v: %d reads by %v, want 2", r, n, tc.due)
		}
	}
	if _, err := guard.New(nil, guard.Config{Jitter: 1}); err == nil {
		t.Error("Jitter 1 accepted")
	}
}

// A throttled SSM (ThrottlingException, as past the account's 40 TPS):
// the guard keeps the last known list and backs off exponentially, capped
// at MaxBackoff; the first good read resets the wait to the TTL.
func TestThrottledBacksOff(t *testing.T) {
	srv, g, clk := setup(t, guard.Config{TTL: 10 * time.Second, MaxBackoff: 60 * time.Second})
	ctx := t.Context()
	srv.Put(guard.DefaultParameter, "StringList", "t1")
	if ro, _ := g.IsReadOnly(ctx, "t1"); !ro {
		t.Fatal("t1 not read-only")
	}
	srv.SetHook(func(op, name string) error { return fakessm.ErrThrottled })
	// reads counts the guard's refreshes: the SDK retries each throttled
	// call itself (3 attempts with the test config).
	reads := func() int { return srv.Count("GetParameter") }
	clk.Add(10 * time.Second)
	before := reads()
	if ro, err := g.IsReadOnly(ctx, "t1"); !ro || err != nil {
		t.Fatalf("throttled: IsReadOnly = %v, %v; want the last known true, nil", ro, err)
	}
	perRefresh := reads() - before
	if perRefresh < 1 {
		t.Fatal("no GetParameter after the TTL")
	}
	// Waits after 1, 2, 3, 4 throttled reads: 20 s, 40 s, 60 s (cap), 60 s.
	for i, wait := range []time.Duration{20 * time.Second, 40 * time.Second, 60 * time.Second, 60 * time.Second} {
		n := reads()
		clk.Add(wait - time.Second)
		g.IsReadOnly(ctx, "t1")
		if reads() != n {
			t.Fatalf("throttled read %d: the guard read again %v after, before its backoff of %v", i+1, wait-time.Second, wait)
		}
		clk.Add(time.Second)
		if ro, err := g.IsReadOnly(ctx, "t1"); !ro || err != nil {
			t.Fatalf("throttled read %d: IsReadOnly = %v, %v; want the last known true, nil", i+2, ro, err)
		}
		if reads() != n+perRefresh {
			t.Fatalf("throttled read %d: no read after the backoff of %v", i+2, wait)
		}
	}
	// Throttling ends: the next read succeeds and the TTL applies again.
	srv.SetHook(nil)
	srv.Put(guard.DefaultParameter, "StringList", "none")
	clk.Add(60 * time.Second)
	if ro, err := g.IsReadOnly(ctx, "t1"); ro || err != nil {
		t.Fatalf("after throttling: IsReadOnly = %v, %v; want false, nil", ro, err)
	}
	n := reads()
	clk.Add(10 * time.Second)
	g.IsReadOnly(ctx, "t1")
	if reads() != n+1 {
		t.Fatalf("after throttling: no read one TTL later (backoff not reset)")
	}
}

// Throttled from the start: no value known, so the fail mode answers,
// and the retries back off from one second instead of hammering SSM.
func TestThrottledNothingKnown(t *testing.T) {
	srv, g, clk := setup(t, guard.Config{TTL: 10 * time.Second})
	srv.SetHook(func(op, name string) error { return fakessm.ErrThrottled })
	ro, err := g.IsReadOnly(t.Context(), "t1")
	if ro || !errors.Is(err, guard.ErrUnavailable) || !guard.IsThrottle(err) {
		t.Fatalf("IsReadOnly = %v, %v; want fail open with a throttling ErrUnavailable", ro, err)
	}
	n := srv.Count("GetParameter")
	clk.Add(1900 * time.Millisecond) // first backoff: 1 s x 2
	g.IsReadOnly(t.Context(), "t1")
	if srv.Count("GetParameter") != n {
		t.Fatal("read again within the 2 s backoff")
	}
	clk.Add(100 * time.Millisecond)
	g.IsReadOnly(t.Context(), "t1")
	if srv.Count("GetParameter") == n {
		t.Fatal("no read after the 2 s backoff")
	}
}
