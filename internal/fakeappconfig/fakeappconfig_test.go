package fakeappconfig_test

import (
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/appconfig"
	"github.com/aws/aws-sdk-go-v2/service/appconfig/types"

	"github.com/ddbrewind/rewind/internal/fakeappconfig"
	"github.com/ddbrewind/rewind/internal/localaws"
)

const flags = `{"version":"1","flags":{"readonly":{"name":"ro","attributes":{"tenants":{"constraints":{"type":"array","elements":{"type":"string"}}}}}},"values":{"readonly":{"enabled":true,"tenants":["t1"]}}}`

// The real SDK client against the stand-in: the documented calls, their
// errors, and the Agent endpoint serving the deployed flag values.
func TestRealClient(t *testing.T) {
	srv, err := fakeappconfig.Start(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	srv.SetClock(func() time.Time { return now })
	cfg, err := localaws.Config(t.Context(), srv.Endpoint, "AKIDTEST")
	if err != nil {
		t.Fatal(err)
	}
	c := appconfig.NewFromConfig(cfg)
	ctx := t.Context()
	app := srv.AddApplication("a")
	env := srv.AddEnvironment(app, "prod")
	prof := srv.AddProfile(app, "flags", fakeappconfig.FeatureFlagsType)

	apps, err := c.ListApplications(ctx, &appconfig.ListApplicationsInput{})
	if err != nil || len(apps.Items) != 1 || aws.ToString(apps.Items[0].Id) != app {
		t.Fatalf("ListApplications: %v, %v", apps, err)
	}
	profs, err := c.ListConfigurationProfiles(ctx, &appconfig.ListConfigurationProfilesInput{ApplicationId: aws.String(app)})
	if err != nil || aws.ToString(profs.Items[0].Type) != fakeappconfig.FeatureFlagsType {
		t.Fatalf("ListConfigurationProfiles: %v, %v", profs, err)
	}

	create := func(content string, latest *int32) (*appconfig.CreateHostedConfigurationVersionOutput, error) {
		return c.CreateHostedConfigurationVersion(ctx, &appconfig.CreateHostedConfigurationVersionInput{
			ApplicationId: aws.String(app), ConfigurationProfileId: aws.String(prof),
			Content: []byte(content), ContentType: aws.String("application/json"), LatestVersionNumber: latest,
		})
	}
	v1, err := create(flags, nil)
	if err != nil || v1.VersionNumber != 1 || string(v1.Content) != flags || aws.ToString(v1.ContentType) != "application/json" {
		t.Fatalf("create v1: %+v, %v", v1, err)
	}
	// The locking token: a stale latest version is ConflictException.
	var conflict *types.ConflictException
	if _, err := create(flags, aws.Int32(0)); !errors.As(err, &conflict) {
		t.Fatalf("stale LatestVersionNumber: %v, want ConflictException", err)
	}
	// Not the feature flag format: BadRequestException.
	var bad *types.BadRequestException
	for _, doc := range []string{`{"flags":{}}`, `{"version":"1","values":{"x":{"enabled":true}}}`, `{"version":"1","flags":{"x":{"attributes":{"t":{"constraints":{"type":"array"}}}}},"values":{"x":{"enabled":true,"t":[1]}}}`, `not json`} {
		if _, err := create(doc, aws.Int32(1)); !errors.As(err, &bad) {
			t.Errorf("create %s: %v, want BadRequestException", doc, err)
		}
	}
	got, err := c.GetHostedConfigurationVersion(ctx, &appconfig.GetHostedConfigurationVersionInput{ApplicationId: aws.String(app), ConfigurationProfileId: aws.String(prof), VersionNumber: aws.Int32(1)})
	if err != nil || string(got.Content) != flags {
		t.Fatalf("GetHostedConfigurationVersion: %+v, %v", got, err)
	}
	var nf *types.ResourceNotFoundException
	if _, err := c.GetHostedConfigurationVersion(ctx, &appconfig.GetHostedConfigurationVersionInput{ApplicationId: aws.String(app), ConfigurationProfileId: aws.String(prof), VersionNumber: aws.Int32(9)}); !errors.As(err, &nf) {
		t.Fatalf("missing version: %v, want ResourceNotFoundException", err)
	}

	// Agent before any deployment: 404.
	agent := func() (int, string) {
		resp, err := http.Get(srv.Endpoint + "/applications/a/environments/prod/configurations/flags")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := agent(); code != 404 {
		t.Fatalf("agent before deployment: %d", code)
	}
	start := func(strategy string) (*appconfig.StartDeploymentOutput, error) {
		return c.StartDeployment(ctx, &appconfig.StartDeploymentInput{ApplicationId: aws.String(app), EnvironmentId: aws.String(env), ConfigurationProfileId: aws.String(prof), ConfigurationVersion: aws.String("1"), DeploymentStrategyId: aws.String(strategy)})
	}
	if _, err := start("no-such"); !errors.As(err, &nf) {
		t.Fatalf("unknown strategy: %v", err)
	}
	d, err := start("AppConfig.AllAtOnce")
	if err != nil || d.DeploymentNumber != 1 || d.State != types.DeploymentStateBaking || d.FinalBakeTimeInMinutes != 10 {
		t.Fatalf("StartDeployment: %+v, %v", d, err)
	}
	if code, body := agent(); code != 200 || body != `{"readonly":{"enabled":true,"tenants":["t1"]}}` {
		t.Fatalf("agent: %d %s", code, body)
	}
	// One deployment per environment at a time: during the bake,
	// ConflictException; after it, a new one starts.
	if _, err := start("AppConfig.AllAtOnce"); !errors.As(err, &conflict) {
		t.Fatalf("second deployment during the bake: %v, want ConflictException", err)
	}
	now = now.Add(10 * time.Minute)
	deps, err := c.ListDeployments(ctx, &appconfig.ListDeploymentsInput{ApplicationId: aws.String(app), EnvironmentId: aws.String(env)})
	if err != nil || len(deps.Items) != 1 || deps.Items[0].State != types.DeploymentStateComplete || aws.ToString(deps.Items[0].ConfigurationName) != "flags" {
		t.Fatalf("ListDeployments: %+v, %v", deps, err)
	}
	if _, err := start("AppConfig.AllAtOnce"); err != nil {
		t.Fatalf("deployment after the bake: %v", err)
	}

	// The hook throttles as AppConfig does past its request rate.
	srv.SetHook(func(op string) error {
		if op == "Agent" {
			return fakeappconfig.ErrThrottled
		}
		return nil
	})
	if code, _ := agent(); code != 429 {
		t.Fatalf("throttled agent: %d", code)
	}
}
