package readonly_test

import (
	"encoding/json"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/appconfig"

	"github.com/ddbrewind/rewind/internal/fakeappconfig"
	"github.com/ddbrewind/rewind/internal/localaws"
	"github.com/ddbrewind/rewind/recover/readonly"
)

func flagSetup(t *testing.T) (*fakeappconfig.Server, func() *readonly.FlagList, string, string) {
	t.Helper()
	srv, err := fakeappconfig.Start(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	app := srv.AddApplication("shop")
	env := srv.AddEnvironment(app, "prod")
	srv.AddProfile(app, "flags", fakeappconfig.FeatureFlagsType)
	strategy := srv.AddStrategy("immediate", 0, 0)
	cfg, err := localaws.Config(t.Context(), srv.Endpoint, "AKIDTEST")
	if err != nil {
		t.Fatal(err)
	}
	client := appconfig.NewFromConfig(cfg)
	return srv, func() *readonly.FlagList {
		l := readonly.NewFlagList(client, "shop", "prod", "flags")
		l.Strategy = strategy
		return l
	}, app, env
}

// Two operators racing: the second create carries a stale locking token,
// AppConfig answers ConflictException, and FlagList reapplies its change
// on top of the other's, so both take effect.
func TestFlagListConcurrentWriters(t *testing.T) {
	srv, newList, app, env := flagSetup(t)
	a, b := newList(), newList()
	var raced atomic.Bool
	srv.SetHook(func(op string) error {
		if op == "CreateHostedConfigurationVersion" && raced.CompareAndSwap(false, true) {
			if _, err := b.On(t.Context(), []string{"t2"}); err != nil {
				t.Errorf("b.On: %v", err)
			}
		}
		return nil
	})
	ch, err := a.On(t.Context(), []string{"t1"})
	if err != nil {
		t.Fatal(err)
	}
	// Nothing to lock on for the first version: ours (v2) replaced b's
	// (v1), so FlagList merged b's and wrote v3.
	if ch.Retries != 1 || !slices.Equal(ch.After, []string{"t1", "t2"}) || ch.Version != 3 {
		t.Fatalf("change: %+v", ch)
	}
	deps := srv.Deployments(app, env)
	var doc struct {
		Values map[string]struct {
			Enabled bool     `json:"enabled"`
			Tenants []string `json:"tenants"`
		} `json:"values"`
	}
	if err := json.Unmarshal(deps[len(deps)-1].Configuration, &doc); err != nil || !slices.Equal(doc.Values["readonly"].Tenants, []string{"t1", "t2"}) {
		t.Fatalf("deployed: %s, %v", deps[len(deps)-1].Configuration, err)
	}
	got, err := newList().Get(t.Context())
	if err != nil || !slices.Equal(got.IDs, []string{"t1", "t2"}) || got.Deployment == nil || got.Deployment.State != "COMPLETE" {
		t.Fatalf("Get: %+v, %v", got, err)
	}
}

// Other flags in the profile are kept as they are, and a race on a
// profile that has versions is caught by the locking token
// (ConflictException) and retried.
func TestFlagListKeepsOtherFlagsAndLocks(t *testing.T) {
	srv, newList, app, env := flagSetup(t)
	cfg, _ := localaws.Config(t.Context(), srv.Endpoint, "AKIDTEST")
	client := appconfig.NewFromConfig(cfg)
	prof := "" // the stand-in's id of profile "flags"
	out, err := client.ListConfigurationProfiles(t.Context(), &appconfig.ListConfigurationProfilesInput{ApplicationId: &app})
	if err != nil {
		t.Fatal(err)
	}
	prof = *out.Items[0].Id
	other := `{"version":"1","flags":{"checkout":{"name":"Checkout v2"}},"values":{"checkout":{"enabled":true}}}`
	ct := "application/json"
	if _, err := client.CreateHostedConfigurationVersion(t.Context(), &appconfig.CreateHostedConfigurationVersionInput{ApplicationId: &app, ConfigurationProfileId: &prof, Content: []byte(other), ContentType: &ct}); err != nil {
		t.Fatal(err)
	}
	a, b := newList(), newList()
	var raced atomic.Bool
	srv.SetHook(func(op string) error {
		if op == "CreateHostedConfigurationVersion" && raced.CompareAndSwap(false, true) {
			if _, err := b.On(t.Context(), []string{"t2"}); err != nil {
				t.Errorf("b.On: %v", err)
			}
		}
		return nil
	})
	ch, err := a.On(t.Context(), []string{"t1"})
	if err != nil || ch.Retries != 1 || !slices.Equal(ch.After, []string{"t1", "t2"}) || ch.Version != 3 {
		t.Fatalf("change: %+v, %v", ch, err)
	}
	deps := srv.Deployments(app, env)
	var doc struct {
		Flags  map[string]json.RawMessage `json:"flags"`
		Values map[string]json.RawMessage `json:"values"`
	}
	if err := json.Unmarshal(deps[len(deps)-1].Configuration, &doc); err != nil || string(doc.Values["checkout"]) != `{"enabled":true}` || doc.Flags["checkout"] == nil {
		t.Fatalf("deployed: %s, %v", deps[len(deps)-1].Configuration, err)
	}
}

func TestParseFlagsRef(t *testing.T) {
	if a, e, p, err := readonly.ParseFlagsRef("appconfig:shop/prod/flags"); err != nil || a != "shop" || e != "prod" || p != "flags" {
		t.Fatalf("%s %s %s %v", a, e, p, err)
	}
	for _, bad := range []string{"shop/prod/flags", "appconfig:shop/prod", "appconfig:shop//flags", "appconfig:a/b/c/d"} {
		if _, _, _, err := readonly.ParseFlagsRef(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
