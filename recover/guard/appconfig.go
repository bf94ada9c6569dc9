package guard

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
)

// DefaultAgentURL is the AppConfig Agent's local HTTP endpoint (port 2772
// by default, as the Agent documents).
const DefaultAgentURL = "http://localhost:2772"

// DefaultFlag is the feature flag `rewind readonly --flags` maintains; its
// "tenants" attribute holds the read-only tenant ids (or "all").
const DefaultFlag = "readonly"

// AgentSource reads the read-only list from an AppConfig feature flag
// through the AppConfig Agent, which runs beside the application (a
// sidecar, a Lambda extension, or a daemon on the host), polls AppConfig
// itself and serves the deployed configuration at
// GET /applications/APP/environments/ENV/configurations/PROFILE. For a
// feature flag profile it serves the flag values only:
//
//	{"readonly": {"enabled": true, "tenants": ["t1", "t2"]}}
//
// A missing or disabled flag is an empty list. One Agent serves every
// process on its host and its own poll interval bounds the calls to
// AppConfig, so the guards' reads cost AppConfig nothing; the guard still
// refreshes from the Agent every TTL (it answers locally).
type AgentSource struct {
	// URL is the Agent's base URL (default DefaultAgentURL).
	URL string
	// Application, Environment and Profile name the configuration (names
	// or ids), as in `rewind readonly --flags appconfig:APP/ENV/PROFILE`.
	Application, Environment, Profile string
	// Flag is the flag key (default DefaultFlag).
	Flag string
	// Client is the HTTP client (default http.DefaultClient; the guard's
	// FetchTimeout bounds each read).
	Client *http.Client
}

// Describe names the configuration.
func (a *AgentSource) Describe() string {
	return fmt.Sprintf("AppConfig flag %s in %s/%s/%s via the Agent", a.flag(), a.Application, a.Environment, a.Profile)
}

func (a *AgentSource) flag() string {
	if a.Flag == "" {
		return DefaultFlag
	}
	return a.Flag
}

// agentError is a non-200 answer of the Agent; HTTP 429 counts as
// throttling (IsThrottle).
type agentError struct {
	status int
	body   string
}

func (e *agentError) Error() string {
	return fmt.Sprintf("AppConfig Agent answered HTTP %d: %s", e.status, e.body)
}

// HTTPStatusCode lets IsThrottle see a 429.
func (e *agentError) HTTPStatusCode() int { return e.status }

// Read fetches and parses the flag.
func (a *AgentSource) Read(ctx context.Context) ([]string, error) {
	base := a.URL
	if base == "" {
		base = DefaultAgentURL
	}
	u := fmt.Sprintf("%s/applications/%s/environments/%s/configurations/%s", base,
		url.PathEscape(a.Application), url.PathEscape(a.Environment), url.PathEscape(a.Profile))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", a.Describe(), err)
	}
	c := a.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (is the AppConfig Agent running at %s?)", a.Describe(), err, base)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("%s: read answer: %w", a.Describe(), err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %w", a.Describe(), &agentError{resp.StatusCode, string(body)})
	}
	ids, err := parseFlagValues(body, a.flag())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", a.Describe(), err)
	}
	return ids, nil
}

// parseFlagValues reads flag's tenants from delivered flag values.
func parseFlagValues(b []byte, flag string) ([]string, error) {
	var values map[string]json.RawMessage
	if err := json.Unmarshal(b, &values); err != nil {
		return nil, fmt.Errorf("flag values are not a JSON object: %w", err)
	}
	raw, ok := values[flag]
	if !ok {
		return nil, nil
	}
	var v struct {
		Enabled bool     `json:"enabled"`
		Tenants []string `json:"tenants"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("flag %s: %w", flag, err)
	}
	if !v.Enabled {
		return nil, nil
	}
	ids := slices.DeleteFunc(slices.Clone(v.Tenants), func(s string) bool { return s == "" || s == Placeholder })
	slices.Sort(ids)
	return slices.Compact(ids), nil
}
