package readonly

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/appconfig"
	"github.com/aws/aws-sdk-go-v2/service/appconfig/types"
)

// AppLayer is the application layer's store of read-only tenants:
// TenantList (SSM) or FlagList (AppConfig feature flag).
type AppLayer interface {
	// Name names the store: the SSM parameter, or appconfig:APP/ENV/PROFILE.
	Name() string
	Get(ctx context.Context) (Tenants, error)
	On(ctx context.Context, tenants []string) (Change, error)
	Off(ctx context.Context, tenants []string) (Change, error)
}

var (
	_ AppLayer = (*TenantList)(nil)
	_ AppLayer = (*FlagList)(nil)
)

// Defaults of the AppConfig backend.
const (
	// FlagsScheme prefixes a --flags reference: appconfig:APP/ENV/PROFILE.
	FlagsScheme = "appconfig:"
	// DefaultFlag is the feature flag's key; its attribute TenantsAttribute
	// holds the tenant ids.
	DefaultFlag = "readonly"
	// TenantsAttribute is the flag's string-array attribute of tenant ids.
	TenantsAttribute = "tenants"
	// DefaultStrategy is the deployment strategy: AppConfig's predefined
	// AllAtOnce deploys to every target at once (it then bakes 10 min,
	// during which AppConfig refuses another deployment to the
	// environment with ConflictException; see FlagList.Strategy).
	DefaultStrategy = "AppConfig.AllAtOnce"
	// flagsContentType is the content type of feature flag data.
	flagsContentType = "application/json"
)

// appconfigAPI is what FlagList needs of AppConfig.
type appconfigAPI interface {
	ListApplications(ctx context.Context, in *appconfig.ListApplicationsInput, optFns ...func(*appconfig.Options)) (*appconfig.ListApplicationsOutput, error)
	ListEnvironments(ctx context.Context, in *appconfig.ListEnvironmentsInput, optFns ...func(*appconfig.Options)) (*appconfig.ListEnvironmentsOutput, error)
	ListConfigurationProfiles(ctx context.Context, in *appconfig.ListConfigurationProfilesInput, optFns ...func(*appconfig.Options)) (*appconfig.ListConfigurationProfilesOutput, error)
	ListHostedConfigurationVersions(ctx context.Context, in *appconfig.ListHostedConfigurationVersionsInput, optFns ...func(*appconfig.Options)) (*appconfig.ListHostedConfigurationVersionsOutput, error)
	GetHostedConfigurationVersion(ctx context.Context, in *appconfig.GetHostedConfigurationVersionInput, optFns ...func(*appconfig.Options)) (*appconfig.GetHostedConfigurationVersionOutput, error)
	CreateHostedConfigurationVersion(ctx context.Context, in *appconfig.CreateHostedConfigurationVersionInput, optFns ...func(*appconfig.Options)) (*appconfig.CreateHostedConfigurationVersionOutput, error)
	StartDeployment(ctx context.Context, in *appconfig.StartDeploymentInput, optFns ...func(*appconfig.Options)) (*appconfig.StartDeploymentOutput, error)
	ListDeployments(ctx context.Context, in *appconfig.ListDeploymentsInput, optFns ...func(*appconfig.Options)) (*appconfig.ListDeploymentsOutput, error)
}

var _ appconfigAPI = (*appconfig.Client)(nil)

// ParseFlagsRef splits appconfig:APP/ENV/PROFILE (names or ids).
func ParseFlagsRef(ref string) (app, env, profile string, err error) {
	rest, ok := strings.CutPrefix(ref, FlagsScheme)
	parts := strings.Split(rest, "/")
	if !ok || len(parts) != 3 || slices.Contains(parts, "") {
		return "", "", "", fmt.Errorf("--flags %q: want appconfig:APPLICATION/ENVIRONMENT/PROFILE (names or ids)", ref)
	}
	return parts[0], parts[1], parts[2], nil
}

// FlagList is the application layer in an AppConfig feature flag: in the
// AWS.AppConfig.FeatureFlags configuration profile PROFILE of application
// APP, flag Flag (default "readonly") is enabled with attribute "tenants"
// (a string array: tenant ids, or All) while tenants are read-only. The
// guard reads it through the AppConfig Agent (guard.AgentSource), which
// delivers the flag values: {"readonly": {"enabled": true, "tenants":
// ["t1"]}}.
//
// On and Off create a hosted configuration version (the whole profile,
// other flags kept as they are) and start a deployment of it to ENV with
// Strategy. The version is created with LatestVersionNumber, AppConfig's
// documented locking token, so a concurrent writer makes the create fail
// with ConflictException; FlagList then reads again and reapplies its
// change, at most MaxAttempts times. A deployment already in progress in
// the environment (DEPLOYING or BAKING) makes StartDeployment fail with
// ConflictException: the version is created but not deployed, and the
// error says so; rerunning deploys it.
type FlagList struct {
	client               appconfigAPI
	app, env, profile    string // as given
	appID, envID, profID string // resolved
	profileName          string
	// Flag is the feature flag key (default DefaultFlag).
	Flag string
	// Strategy is the deployment strategy id (default DefaultStrategy).
	// For incidents prefer a strategy with no bake time (deployment 0
	// min, bake 0 min, growth 100 %), so that an `off` can follow an `on`
	// at once: AllAtOnce bakes 10 min.
	Strategy string
	// MaxAttempts bounds the compare-and-set loop (default 5).
	MaxAttempts int
}

// NewFlagList returns the list in appconfig:APP/ENV/PROFILE.
func NewFlagList(client appconfigAPI, app, env, profile string) *FlagList {
	return &FlagList{client: client, app: app, env: env, profile: profile, Flag: DefaultFlag, Strategy: DefaultStrategy, MaxAttempts: defaultMaxAttempts}
}

// Name is appconfig:APP/ENV/PROFILE.
func (l *FlagList) Name() string { return FlagsScheme + l.app + "/" + l.env + "/" + l.profile }

// FlagDeployment is the latest deployment of the profile to the
// environment.
type FlagDeployment struct {
	Number int32 `json:"number"`
	// ConfigurationVersion is the hosted version deployed.
	ConfigurationVersion string `json:"configurationVersion"`
	// State is AppConfig's: DEPLOYING, BAKING, COMPLETE, ROLLED_BACK, ...
	State    string `json:"state"`
	Strategy string `json:"strategy"`
}

// resolve finds the ids of the application, environment and profile,
// given by name or id.
func (l *FlagList) resolve(ctx context.Context) error {
	if l.profID != "" {
		return nil
	}
	appID := ""
	for p := appconfig.NewListApplicationsPaginator(l.client, &appconfig.ListApplicationsInput{}); p.HasMorePages() && appID == ""; {
		apps, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list AppConfig applications: %w", err)
		}
		for _, a := range apps.Items {
			if aws.ToString(a.Id) == l.app || aws.ToString(a.Name) == l.app {
				appID = aws.ToString(a.Id)
			}
		}
	}
	if appID == "" {
		return fmt.Errorf("%s: no AppConfig application %q in this account and region (create it, or check --flags and AWS_REGION)", l.Name(), l.app)
	}
	envID := ""
	for p := appconfig.NewListEnvironmentsPaginator(l.client, &appconfig.ListEnvironmentsInput{ApplicationId: aws.String(appID)}); p.HasMorePages() && envID == ""; {
		envs, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("%s: list environments: %w", l.Name(), err)
		}
		for _, e := range envs.Items {
			if aws.ToString(e.Id) == l.env || aws.ToString(e.Name) == l.env {
				envID = aws.ToString(e.Id)
			}
		}
	}
	if envID == "" {
		return fmt.Errorf("%s: application %s has no environment %q", l.Name(), l.app, l.env)
	}
	var profiles []types.ConfigurationProfileSummary
	for p := appconfig.NewListConfigurationProfilesPaginator(l.client, &appconfig.ListConfigurationProfilesInput{ApplicationId: aws.String(appID)}); p.HasMorePages(); {
		profs, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("%s: list configuration profiles: %w", l.Name(), err)
		}
		profiles = append(profiles, profs.Items...)
	}
	for _, p := range profiles {
		if aws.ToString(p.Id) == l.profile || aws.ToString(p.Name) == l.profile {
			if t := aws.ToString(p.Type); t != "AWS.AppConfig.FeatureFlags" {
				return fmt.Errorf("%s: configuration profile %s is of type %q, not AWS.AppConfig.FeatureFlags (create a feature flag profile)", l.Name(), l.profile, t)
			}
			l.appID, l.envID, l.profID, l.profileName = appID, envID, aws.ToString(p.Id), aws.ToString(p.Name)
			return nil
		}
	}
	return fmt.Errorf("%s: application %s has no configuration profile %q", l.Name(), l.app, l.profile)
}

// flagDoc is a feature flag configuration, kept as raw JSON where rewind
// does not own it.
type flagDoc struct {
	Version string                     `json:"version"`
	Flags   map[string]json.RawMessage `json:"flags"`
	Values  map[string]json.RawMessage `json:"values"`
	// rest holds other top-level keys, written back untouched.
	rest map[string]json.RawMessage
}

type flagValue struct {
	Enabled bool     `json:"enabled"`
	Tenants []string `json:"tenants"`
}

func parseFlagDoc(b []byte) (flagDoc, error) {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return flagDoc{}, fmt.Errorf("feature flag configuration is not a JSON object: %w", err)
	}
	var d flagDoc
	if err := json.Unmarshal(b, &d); err != nil {
		return flagDoc{}, fmt.Errorf("feature flag configuration: %w", err)
	}
	delete(all, "version")
	delete(all, "flags")
	delete(all, "values")
	d.rest = all
	return d, nil
}

func (d flagDoc) marshal() ([]byte, error) {
	out := map[string]any{"version": "1"}
	for k, v := range d.rest {
		out[k] = v
	}
	if d.Flags != nil {
		out["flags"] = d.Flags
	}
	if d.Values != nil {
		out["values"] = d.Values
	}
	return json.Marshal(out)
}

// tenants reads flag's tenants from d: none when the flag is missing or
// disabled.
func (d flagDoc) tenants(flag string) ([]string, error) {
	raw, ok := d.Values[flag]
	if !ok {
		return nil, nil
	}
	var v flagValue
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("flag %s: value %s: %w", flag, raw, err)
	}
	if !v.Enabled {
		return nil, nil
	}
	ids := slices.DeleteFunc(slices.Clone(v.Tenants), func(s string) bool { return s == "" })
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// withTenants sets flag to ids (disabled when empty), defining the flag
// when missing.
func (d *flagDoc) withTenants(flag string, ids []string) error {
	if d.Flags == nil {
		d.Flags = map[string]json.RawMessage{}
	}
	if d.Values == nil {
		d.Values = map[string]json.RawMessage{}
	}
	def, err := json.Marshal(map[string]any{
		"name":        "Read-only tenants",
		"description": "Tenants whose writes the application refuses with 503 (\"all\": every tenant). Managed by rewind readonly.",
		"attributes": map[string]any{
			TenantsAttribute: map[string]any{
				"description": "read-only tenant ids, or \"all\"",
				"constraints": map[string]any{"type": "array", "elements": map[string]any{"type": "string"}},
			},
		},
	})
	if err != nil {
		return err
	}
	d.Flags[flag] = def
	val, err := json.Marshal(flagValue{Enabled: len(ids) > 0, Tenants: orEmpty(ids)})
	if err != nil {
		return err
	}
	d.Values[flag] = val
	return nil
}

// latest reads the latest hosted version (0 and an empty doc when none).
func (l *FlagList) latest(ctx context.Context) (int32, flagDoc, error) {
	// The highest version number over every page: the API does not
	// document the order.
	var n int32
	for p := appconfig.NewListHostedConfigurationVersionsPaginator(l.client, &appconfig.ListHostedConfigurationVersionsInput{ApplicationId: aws.String(l.appID), ConfigurationProfileId: aws.String(l.profID)}); p.HasMorePages(); {
		vs, err := p.NextPage(ctx)
		if err != nil {
			return 0, flagDoc{}, fmt.Errorf("%s: list hosted configuration versions: %w", l.Name(), err)
		}
		for _, v := range vs.Items {
			n = max(n, v.VersionNumber)
		}
	}
	if n == 0 {
		return 0, flagDoc{Version: "1"}, nil
	}
	out, err := l.client.GetHostedConfigurationVersion(ctx, &appconfig.GetHostedConfigurationVersionInput{ApplicationId: aws.String(l.appID), ConfigurationProfileId: aws.String(l.profID), VersionNumber: aws.Int32(n)})
	if err != nil {
		return 0, flagDoc{}, fmt.Errorf("%s: read hosted configuration version %d: %w", l.Name(), n, err)
	}
	d, err := parseFlagDoc(out.Content)
	if err != nil {
		return 0, flagDoc{}, fmt.Errorf("%s: hosted configuration version %d: %w", l.Name(), n, err)
	}
	return n, d, nil
}

// deployment returns the latest deployment of the profile to the
// environment, nil when there is none.
func (l *FlagList) deployment(ctx context.Context) (*FlagDeployment, error) {
	// The environment may carry other profiles' deployments: the highest
	// deployment number of this profile's, over every page.
	var best *types.DeploymentSummary
	for p := appconfig.NewListDeploymentsPaginator(l.client, &appconfig.ListDeploymentsInput{ApplicationId: aws.String(l.appID), EnvironmentId: aws.String(l.envID)}); p.HasMorePages(); {
		out, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: list deployments: %w", l.Name(), err)
		}
		for i, d := range out.Items {
			if aws.ToString(d.ConfigurationName) != l.profileName {
				continue
			}
			if best == nil || d.DeploymentNumber > best.DeploymentNumber {
				best = &out.Items[i]
			}
		}
	}
	if best == nil {
		return nil, nil
	}
	return &FlagDeployment{Number: best.DeploymentNumber, ConfigurationVersion: aws.ToString(best.ConfigurationVersion), State: string(best.State)}, nil
}

// Get reads the latest hosted version of the profile and the latest
// deployment: Tenants.Version is the hosted version, Tenants.Deployment
// says what the environment has (a version not yet deployed is not what
// the guards read).
func (l *FlagList) Get(ctx context.Context) (Tenants, error) {
	if err := l.resolve(ctx); err != nil {
		return Tenants{}, err
	}
	n, doc, err := l.latest(ctx)
	if err != nil {
		return Tenants{}, err
	}
	ids, err := doc.tenants(l.Flag)
	if err != nil {
		return Tenants{}, fmt.Errorf("%s: version %d: %w", l.Name(), n, err)
	}
	dep, err := l.deployment(ctx)
	if err != nil {
		return Tenants{}, err
	}
	_, flagged := doc.Values[l.Flag]
	return Tenants{IDs: ids, Exists: n > 0 && flagged, Version: int64(n), Deployment: dep}, nil
}

// On makes tenants read-only (adds them to the flag).
func (l *FlagList) On(ctx context.Context, tenants []string) (Change, error) {
	add, err := adding(tenants)
	if err != nil {
		return Change{}, err
	}
	return l.update(ctx, add)
}

// Off makes tenants writable again; with no tenants it clears the flag.
func (l *FlagList) Off(ctx context.Context, tenants []string) (Change, error) {
	remove, err := removing(tenants)
	if err != nil {
		return Change{}, err
	}
	return l.update(ctx, remove)
}

func (l *FlagList) update(ctx context.Context, fn func([]string) []string) (Change, error) {
	if err := l.resolve(ctx); err != nil {
		return Change{}, err
	}
	ch := Change{Parameter: l.Name()}
	attempts := max(l.MaxAttempts, 1)
	// redo is set after a first version was created without a locking
	// token (there was nothing to lock on) and turned out not to be the
	// first: another writer created one in between, and ours replaced it.
	// The change is then reapplied on top of theirs (as TenantList does
	// for SSM), locked on ours.
	var redo *struct {
		lock   int32
		doc    flagDoc
		stored []string
	}
	for attempt := 0; ; attempt++ {
		var n int32
		var doc flagDoc
		var err error
		if redo != nil {
			n, doc = redo.lock, redo.doc
		} else if n, doc, err = l.latest(ctx); err != nil {
			return Change{}, err
		}
		base, err := doc.tenants(l.Flag)
		if err != nil {
			return Change{}, fmt.Errorf("%s: version %d: %w", l.Name(), n, err)
		}
		stored := base
		if redo != nil {
			stored, redo = redo.stored, nil
		}
		next := fn(base)
		ch.Before, ch.After = orEmpty(base), orEmpty(next)
		ch.Added, ch.Removed = diff(ch.Before, ch.After)
		ch.Changed = len(ch.Added)+len(ch.Removed) > 0
		version := n
		if !slices.Equal(next, stored) {
			if attempt == attempts {
				return Change{}, fmt.Errorf("%s: still racing with other writers after %d attempts; check `rewind readonly status` and retry", l.Name(), attempts)
			}
			if err := doc.withTenants(l.Flag, next); err != nil {
				return Change{}, err
			}
			content, err := doc.marshal()
			if err != nil {
				return Change{}, err
			}
			in := &appconfig.CreateHostedConfigurationVersionInput{
				ApplicationId: aws.String(l.appID), ConfigurationProfileId: aws.String(l.profID),
				Content: content, ContentType: aws.String(flagsContentType),
				Description: aws.String("rewind readonly: " + FormatValue(next)),
			}
			if n > 0 {
				in.LatestVersionNumber = aws.Int32(n)
			}
			out, err := l.client.CreateHostedConfigurationVersion(ctx, in)
			var conflict *types.ConflictException
			if errors.As(err, &conflict) {
				ch.Retries++ // someone created a version since we read it
				continue
			}
			if err != nil {
				return Change{}, fmt.Errorf("%s: create hosted configuration version: %w", l.Name(), err)
			}
			version = out.VersionNumber
			if n == 0 && version > 1 {
				ch.Retries++
				prev, err := l.client.GetHostedConfigurationVersion(ctx, &appconfig.GetHostedConfigurationVersionInput{ApplicationId: aws.String(l.appID), ConfigurationProfileId: aws.String(l.profID), VersionNumber: aws.Int32(version - 1)})
				if err != nil {
					return Change{}, fmt.Errorf("%s: a concurrent first version was replaced by ours (%d) and version %d cannot be read back to merge it: %w", l.Name(), version, version-1, err)
				}
				pd, err := parseFlagDoc(prev.Content)
				if err != nil {
					return Change{}, fmt.Errorf("%s: hosted configuration version %d: %w", l.Name(), version-1, err)
				}
				redo = &struct {
					lock   int32
					doc    flagDoc
					stored []string
				}{version, pd, next}
				continue
			}
		}
		ch.Version = int64(version)
		if version == 0 {
			return ch, nil // nothing was ever written, nothing to deploy
		}
		// Deploy unless the environment already has (or is getting) this
		// version: a rerun after a failed deployment deploys it.
		dep, err := l.deployment(ctx)
		if err != nil {
			return Change{}, fmt.Errorf("%s: version %d created; %w", l.Name(), version, err)
		}
		if !ch.Changed && dep != nil && dep.ConfigurationVersion == strconv.Itoa(int(version)) && dep.State != "ROLLED_BACK" {
			ch.Deployment = dep
			return ch, nil
		}
		out, err := l.client.StartDeployment(ctx, &appconfig.StartDeploymentInput{
			ApplicationId: aws.String(l.appID), EnvironmentId: aws.String(l.envID),
			ConfigurationProfileId: aws.String(l.profID), ConfigurationVersion: aws.String(strconv.Itoa(int(version))),
			DeploymentStrategyId: aws.String(l.Strategy), Description: aws.String("rewind readonly"),
		})
		var conflict *types.ConflictException
		if errors.As(err, &conflict) {
			return Change{}, fmt.Errorf("%s: hosted version %d is created but NOT deployed: a deployment to environment %s is still in progress (%s); rerun when it is COMPLETE (`rewind readonly status`), and use a deployment strategy without bake time for incidents (--flags-strategy)", l.Name(), version, l.env, aws.ToString(conflict.Message))
		}
		if err != nil {
			return Change{}, fmt.Errorf("%s: hosted version %d is created but NOT deployed: start deployment with strategy %s: %w; rerun to deploy it", l.Name(), version, l.Strategy, err)
		}
		ch.Changed = true
		ch.Deployment = &FlagDeployment{Number: out.DeploymentNumber, ConfigurationVersion: aws.ToString(out.ConfigurationVersion), State: string(out.State), Strategy: aws.ToString(out.DeploymentStrategyId)}
		return ch, nil
	}
}
