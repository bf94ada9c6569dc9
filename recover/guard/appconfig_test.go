package guard_test

import (
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/appconfig"

	"github.com/ddbrewind/rewind/internal/fakeappconfig"
	"github.com/ddbrewind/rewind/internal/localaws"
	"github.com/ddbrewind/rewind/recover/guard"
	"github.com/ddbrewind/rewind/recover/readonly"
)

// agentSetup is an AppConfig stand-in with a feature flag profile that
// readonly.FlagList writes (strategy without bake) and a guard reading it
// through the Agent endpoint.
func agentSetup(t *testing.T, cfg guard.Config) (*fakeappconfig.Server, *readonly.FlagList, *guard.Guard, *clock) {
	t.Helper()
	srv, err := fakeappconfig.Start(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	app := srv.AddApplication("shop")
	srv.AddEnvironment(app, "prod")
	srv.AddProfile(app, "flags", fakeappconfig.FeatureFlagsType)
	awsCfg, err := localaws.Config(t.Context(), srv.Endpoint, "AKIDTEST")
	if err != nil {
		t.Fatal(err)
	}
	list := readonly.NewFlagList(appconfig.NewFromConfig(awsCfg), "shop", "prod", "flags")
	list.Strategy = srv.AddStrategy("immediate", 0, 0)
	clk := &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg.Now = clk.Now
	if cfg.Rand == nil {
		cfg.Rand = func() float64 { return 0.5 }
	}
	g, err := guard.NewFromSource(&guard.AgentSource{URL: srv.Endpoint, Application: "shop", Environment: "prod", Profile: "flags"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return srv, list, g, clk
}

func TestSharedFlag(t *testing.T) {
	if guard.DefaultFlag != readonly.DefaultFlag {
		t.Fatal("guard and readonly disagree on the flag key")
	}
}

// The guard follows the flag `rewind readonly --flags` deploys: on, a
// tenant added, off (flag disabled).
func TestAgentSourceFollowsFlag(t *testing.T) {
	_, list, g, clk := agentSetup(t, guard.Config{TTL: 10 * time.Second})
	ctx := t.Context()
	if _, err := list.On(ctx, []string{"t1"}); err != nil {
		t.Fatal(err)
	}
	check := func(want map[string]bool) {
		t.Helper()
		for tenant, w := range want {
			if ro, err := g.IsReadOnly(ctx, tenant); ro != w || err != nil {
				t.Errorf("IsReadOnly(%q) = %v, %v; want %v", tenant, ro, err, w)
			}
		}
	}
	check(map[string]bool{"t1": true, "t2": false})
	if _, err := list.On(ctx, []string{readonly.All}); err != nil {
		t.Fatal(err)
	}
	clk.Add(10 * time.Second)
	check(map[string]bool{"t1": true, "t2": true})
	if _, err := list.Off(ctx, nil); err != nil {
		t.Fatal(err)
	}
	clk.Add(10 * time.Second)
	check(map[string]bool{"t1": false, "t2": false})
}

// The Agent answering 429 (throttled) is backed off like SSM's
// ThrottlingException, keeping the last known list; an Agent that has
// no deployment yet (404) and no value known fails open.
func TestAgentSourceThrottledAndMissing(t *testing.T) {
	srv, list, g, clk := agentSetup(t, guard.Config{TTL: 10 * time.Second})
	ctx := t.Context()
	ro, err := g.IsReadOnly(ctx, "t1")
	if ro || !errors.Is(err, guard.ErrUnavailable) {
		t.Fatalf("no deployment yet: IsReadOnly = %v, %v; want fail open, ErrUnavailable", ro, err)
	}
	if _, err := list.On(ctx, []string{"t1"}); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Second)
	if ro, err := g.IsReadOnly(ctx, "t1"); !ro || err != nil {
		t.Fatalf("after on: %v, %v", ro, err)
	}
	srv.SetHook(func(op string) error {
		if op == "Agent" {
			return fakeappconfig.ErrThrottled
		}
		return nil
	})
	clk.Add(10 * time.Second)
	if ro, err := g.IsReadOnly(ctx, "t1"); !ro || err != nil {
		t.Fatalf("throttled: %v, %v; want the last known true", ro, err)
	}
	n := srv.Count("Agent")
	clk.Add(19 * time.Second) // backoff after one throttled read: 20 s
	g.IsReadOnly(ctx, "t1")
	if srv.Count("Agent") != n {
		t.Fatal("read the Agent again within the 20 s backoff")
	}
	clk.Add(time.Second)
	g.IsReadOnly(ctx, "t1")
	if srv.Count("Agent") != n+1 {
		t.Fatal("no read after the backoff")
	}
}

// The data-plane source: a session, one token per call (the stand-in
// refuses a reused one), no call before NextPollIntervalInSeconds, an
// empty answer keeping the list, a new deployment seen on the next poll,
// and a refused token replaced by a new session.
func TestSessionSource(t *testing.T) {
	srv, list, _, clk := agentSetup(t, guard.Config{})
	ctx := t.Context()
	if _, err := list.On(ctx, []string{"t1"}); err != nil {
		t.Fatal(err)
	}
	awsCfg, err := localaws.Config(ctx, srv.Endpoint, "AKIDTEST")
	if err != nil {
		t.Fatal(err)
	}
	src := &guard.SessionSource{Client: guard.NewDataClient(awsCfg, ""), Application: "shop", Environment: "prod", Profile: "flags", MinPollInterval: 30 * time.Second, Now: clk.Now}
	g, err := guard.NewFromSource(src, guard.Config{TTL: 10 * time.Second, Now: clk.Now, Rand: func() float64 { return 0.5 }})
	if err != nil {
		t.Fatal(err)
	}
	if ro, err := g.IsReadOnly(ctx, "t1"); !ro || err != nil {
		t.Fatalf("first read: %v, %v", ro, err)
	}
	if n := srv.Count("StartConfigurationSession"); n != 1 {
		t.Fatalf("sessions: %d", n)
	}
	if _, err := list.On(ctx, []string{"t2"}); err != nil {
		t.Fatal(err)
	}
	// Two guard refreshes inside the 30 s poll interval: no call.
	for range 2 {
		clk.Add(10 * time.Second)
		if ro, _ := g.IsReadOnly(ctx, "t2"); ro {
			t.Fatal("t2 seen before the poll interval allowed a call")
		}
	}
	if n := srv.Count("GetLatestConfiguration"); n != 1 {
		t.Fatalf("GetLatestConfiguration before the interval: %d calls, want 1", n)
	}
	clk.Add(10 * time.Second)
	if ro, err := g.IsReadOnly(ctx, "t2"); !ro || err != nil {
		t.Fatalf("after the interval: t2 %v, %v", ro, err)
	}
	// Unchanged: an empty answer keeps the list.
	clk.Add(30 * time.Second)
	if ro, err := g.IsReadOnly(ctx, "t1"); !ro || err != nil {
		t.Fatalf("unchanged poll: t1 %v, %v", ro, err)
	}
	if n := srv.Count("GetLatestConfiguration"); n != 3 {
		t.Fatalf("GetLatestConfiguration calls %d, want 3", n)
	}
	// A refused token (as after 24 h): a new session, same answer.
	srv.ExpireSessions()
	clk.Add(30 * time.Second)
	if ro, err := g.IsReadOnly(ctx, "t1"); !ro || err != nil {
		t.Fatalf("after expiry: t1 %v, %v", ro, err)
	}
	if n := srv.Count("StartConfigurationSession"); n != 2 {
		t.Fatalf("sessions after expiry: %d, want 2", n)
	}
}
