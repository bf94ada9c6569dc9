package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ddbrewind/rewind/internal/fakeappconfig"
	"github.com/ddbrewind/rewind/recover/guard"
)

// appconfigEnv adds an AppConfig stand-in with application "orders-app",
// environment "prod" and feature flag profile "readonly" to recoverEnv.
type appconfigEnv struct {
	srv               *fakeappconfig.Server
	app, env, profile string
	immediate         string // a strategy without bake time
	mu                sync.Mutex
	now               time.Time
}

func newAppconfigEnv(t *testing.T) *appconfigEnv {
	t.Helper()
	srv, err := fakeappconfig.Start(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	e := &appconfigEnv{srv: srv, now: time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)}
	srv.SetClock(func() time.Time { e.mu.Lock(); defer e.mu.Unlock(); return e.now })
	e.app = srv.AddApplication("orders-app")
	e.env = srv.AddEnvironment(e.app, "prod")
	e.profile = srv.AddProfile(e.app, "readonly", fakeappconfig.FeatureFlagsType)
	e.immediate = srv.AddStrategy("rewind-immediate", 0, 0)
	t.Setenv("AWS_ENDPOINT_URL_APPCONFIG", srv.Endpoint)
	return e
}

func (e *appconfigEnv) advance(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.now = e.now.Add(d)
}

// deployedValues is what the Agent serves now.
func (e *appconfigEnv) deployedValues(t *testing.T) map[string]any {
	t.Helper()
	resp, err := http.Get(e.srv.Endpoint + "/applications/orders-app/environments/prod/configurations/readonly")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if resp.StatusCode != 200 {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

const flagsRef = "appconfig:orders-app/prod/readonly"

// appObj is the "application" line of a readonly run.
func appObj(t *testing.T, objs []map[string]any) map[string]any {
	t.Helper()
	for _, o := range objs {
		if o["kind"] == "application" {
			return o
		}
	}
	t.Fatalf("no application line in %v", objs)
	return nil
}

// on, status and off with --flags go through AppConfig (hosted version +
// deployment), never SSM, and the guard reads the flag through the Agent
// endpoint and refuses a frozen tenant's write.
func TestReadonlyFlagsCLI(t *testing.T) {
	ssmSrv, _ := recoverEnv(t, "", "")
	ac := newAppconfigEnv(t)

	code, objs, stderr := runRecoverCLI(t, "readonly", "on", "--tenants", "t1,t2", "--flags", flagsRef, "--flags-strategy", ac.immediate)
	if code != 0 || !slices.Equal(kinds(objs), []string{"application"}) {
		t.Fatalf("on: exit %d, %v\n%s", code, objs, stderr)
	}
	if objs[0]["parameter"] != flagsRef || !slices.Equal(strs(objs[0]["added"]), []string{"t1", "t2"}) || objs[0]["version"] != float64(1) {
		t.Fatalf("on: %v", objs[0])
	}
	if dep, _ := objs[0]["deployment"].(map[string]any); dep["number"] != float64(1) || dep["configurationVersion"] != "1" {
		t.Fatalf("on: deployment %v", objs[0]["deployment"])
	}
	if !strings.Contains(stderr, "application layer (AppConfig orders-app/prod/readonly v1, deployment 1 COMPLETE): read-only tenants t1, t2 (added t1, t2)") {
		t.Fatalf("on: summary\n%s", stderr)
	}
	if n := ssmSrv.Count("PutParameter") + ssmSrv.Count("GetParameter"); n != 0 {
		t.Fatalf("--flags called SSM %d times", n)
	}
	// The deployed configuration is the feature flag format; the Agent
	// serves its values.
	deps := ac.srv.Deployments(ac.app, ac.env)
	if len(deps) != 1 || deps[0].Strategy != ac.immediate {
		t.Fatalf("deployments: %+v", deps)
	}
	var doc struct {
		Version string                    `json:"version"`
		Flags   map[string]map[string]any `json:"flags"`
		Values  map[string]map[string]any `json:"values"`
	}
	if err := json.Unmarshal(deps[0].Configuration, &doc); err != nil || doc.Version != "1" || doc.Flags["readonly"]["attributes"] == nil {
		t.Fatalf("hosted content %s: %v", deps[0].Configuration, err)
	}
	if v := ac.deployedValues(t)["readonly"].(map[string]any); v["enabled"] != true || !slices.Equal(strs(v["tenants"]), []string{"t1", "t2"}) {
		t.Fatalf("agent values: %v", v)
	}

	// The guard, reading through the Agent endpoint, refuses t1 and lets
	// t3 write.
	g, err := guard.NewFromSource(&guard.AgentSource{URL: ac.srv.Endpoint, Application: "orders-app", Environment: "prod", Profile: "readonly"}, guard.Config{})
	if err != nil {
		t.Fatal(err)
	}
	h := g.Middleware(func(r *http.Request) string { return r.Header.Get("X-Tenant") }, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for tenant, want := range map[string]int{"t1": 503, "t3": 200} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", "/orders", nil)
		req.Header.Set("X-Tenant", tenant)
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("guard via AppConfig: POST by %s: %d, want %d", tenant, rec.Code, want)
		}
	}

	// status reads it back.
	code, objs, stderr = runRecoverCLI(t, "readonly", "status", "--flags", flagsRef)
	if code != 0 || objs[0]["kind"] != "application" || !slices.Equal(strs(objs[0]["tenants"]), []string{"t1", "t2"}) || objs[0]["parameter"] != flagsRef {
		t.Fatalf("status: exit %d, %v\n%s", code, objs, stderr)
	}
	if !strings.Contains(stderr, "application layer (AppConfig orders-app/prod/readonly v1, deployment 1 COMPLETE): read-only tenants t1, t2") {
		t.Fatalf("status summary:\n%s", stderr)
	}

	// Unchanged: no new version, no new deployment.
	code, objs, _ = runRecoverCLI(t, "readonly", "on", "--tenants", "t2", "--flags", flagsRef, "--flags-strategy", ac.immediate)
	if code != 0 || objs[0]["changed"] != false || len(ac.srv.Deployments(ac.app, ac.env)) != 1 {
		t.Fatalf("on again: exit %d, %v, %d deployments", code, objs, len(ac.srv.Deployments(ac.app, ac.env)))
	}

	// off t1 keeps t2; off clears (flag disabled).
	code, objs, stderr = runRecoverCLI(t, "readonly", "off", "--tenants", "t1", "--flags", flagsRef, "--flags-strategy", ac.immediate)
	if code != 0 || !slices.Equal(strs(appObj(t, objs)["after"]), []string{"t2"}) {
		t.Fatalf("off t1: exit %d, %v\n%s", code, objs, stderr)
	}
	code, objs, stderr = runRecoverCLI(t, "readonly", "off", "--flags", flagsRef, "--flags-strategy", ac.immediate)
	if o := appObj(t, objs); code != 0 || len(strs(o["after"])) != 0 || o["version"] != float64(3) {
		t.Fatalf("off: exit %d, %v\n%s", code, objs, stderr)
	}
	if v := ac.deployedValues(t)["readonly"].(map[string]any); v["enabled"] != false {
		t.Fatalf("after off the flag is %v", v)
	}
	if len(ac.srv.Deployments(ac.app, ac.env)) != 3 {
		t.Fatalf("deployments: %+v", ac.srv.Deployments(ac.app, ac.env))
	}
}

// With the default strategy (AllAtOnce, 10 min bake) a second change
// within the bake fails with AppConfig's ConflictException: exit 1, the
// message says the version is created but not deployed and what to do,
// and status warns; once the bake is over a rerun deploys it.
func TestReadonlyFlagsDeploymentInProgress(t *testing.T) {
	recoverEnv(t, "", "")
	ac := newAppconfigEnv(t)
	if code, _, stderr := runRecoverCLI(t, "readonly", "on", "--tenants", "t1", "--flags", flagsRef); code != 0 {
		t.Fatalf("on: exit %d\n%s", code, stderr)
	}
	if d := ac.srv.Deployments(ac.app, ac.env); len(d) != 1 || d[0].Strategy != "AppConfig.AllAtOnce" || d[0].State != "BAKING" {
		t.Fatalf("deployments: %+v", d)
	}
	code, objs, stderr := runRecoverCLI(t, "readonly", "off", "--flags", flagsRef)
	if code != 3 || appObj(t, objs)["outcome"] != "failed" {
		t.Fatalf("off during bake: exit %d, %v\n%s", code, objs, stderr)
	}
	if r, _ := appObj(t, objs)["reason"].(string); !strings.Contains(r, "hosted version 2 is created but NOT deployed") || !strings.Contains(r, "in progress") || !strings.Contains(r, "--flags-strategy") {
		t.Fatalf("reason: %v", objs[0]["reason"])
	}
	if v := ac.deployedValues(t)["readonly"].(map[string]any); v["enabled"] != true {
		t.Fatalf("the guards must still see t1 frozen: %v", v)
	}
	code, _, stderr = runRecoverCLI(t, "readonly", "status", "--flags", flagsRef)
	if code != 0 || !strings.Contains(stderr, "WARNING: AppConfig version 2 is not deployed (environment has version 1, BAKING)") {
		t.Fatalf("status: exit %d\n%s", code, stderr)
	}
	ac.advance(10 * time.Minute)
	code, objs, stderr = runRecoverCLI(t, "readonly", "off", "--flags", flagsRef)
	if code != 0 || appObj(t, objs)["version"] != float64(2) {
		t.Fatalf("rerun after the bake: exit %d, %v\n%s", code, objs, stderr)
	}
	if v := ac.deployedValues(t)["readonly"].(map[string]any); v["enabled"] != false {
		t.Fatalf("after the rerun the flag is %v", v)
	}
}

func TestReadonlyFlagsUsage(t *testing.T) {
	recoverEnv(t, "", "")
	for _, args := range [][]string{
		{"readonly", "on", "--tenants", "t1", "--flags", "appconfig:a/b"},
		{"readonly", "on", "--tenants", "t1", "--flags", "ssm:x"},
		{"readonly", "on", "--tenants", "t1", "--flags", flagsRef, "--parameter", "p"},
	} {
		if code, _, stderr := runRecoverCLI(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", args, code, stderr)
		}
	}
}
