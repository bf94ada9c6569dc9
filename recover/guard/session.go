package guard

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// SessionSource reads the read-only flag from AppConfig's data plane
// (appconfigdata), for a process without an AppConfig Agent beside it. As
// documented for the data plane it starts a configuration session
// (StartConfigurationSession), then calls GetLatestConfiguration with the
// token it was given, each call answering with the token for the next one
// (NextPollConfigurationToken, used once) and the interval to wait
// (NextPollIntervalInSeconds); an empty configuration means unchanged
// since the session's previous answer. The source never calls before that
// interval: between polls it answers the last value, so a guard TTL
// shorter than the interval costs nothing. A token AppConfig refuses
// (BadRequestException: expired after 24 h, or already used) starts a new
// session.
//
// Every process polls AppConfig itself: for large fleets prefer the Agent
// (AgentSource), which polls once per host.
type SessionSource struct {
	// Client calls the data plane (a *DataClient).
	Client DataAPI
	// Application, Environment and Profile name the configuration (names
	// or ids).
	Application, Environment, Profile string
	// Flag is the flag key (default DefaultFlag).
	Flag string
	// MinPollInterval is RequiredMinimumPollIntervalInSeconds (default
	// 0: AppConfig's default; else 15 s to 24 h).
	MinPollInterval time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time

	mu    sync.Mutex
	token string
	next  time.Time
	ids   []string
	have  bool
}

// DataAPI is the part of appconfigdata SessionSource calls.
type DataAPI interface {
	StartConfigurationSession(ctx context.Context, app, env, profile string, minPoll time.Duration) (token string, err error)
	GetLatestConfiguration(ctx context.Context, token string) (LatestConfiguration, error)
}

// LatestConfiguration is GetLatestConfiguration's answer.
type LatestConfiguration struct {
	// Configuration is empty when unchanged since the session's previous
	// answer.
	Configuration []byte
	// NextToken is NextPollConfigurationToken.
	NextToken string
	// NextPollInterval is NextPollIntervalInSeconds.
	NextPollInterval time.Duration
}

// Describe names the configuration.
func (s *SessionSource) Describe() string {
	return fmt.Sprintf("AppConfig flag %s in %s/%s/%s via appconfigdata", s.flag(), s.Application, s.Environment, s.Profile)
}

func (s *SessionSource) flag() string {
	if s.Flag == "" {
		return DefaultFlag
	}
	return s.Flag
}

func (s *SessionSource) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Read polls when the data plane allows it and returns the flag's tenants.
func (s *SessionSource) Read(ctx context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.have && s.now().Before(s.next) {
		return s.ids, nil
	}
	for attempt := 0; ; attempt++ {
		if s.token == "" {
			tok, err := s.Client.StartConfigurationSession(ctx, s.Application, s.Environment, s.Profile, s.MinPollInterval)
			if err != nil {
				return nil, fmt.Errorf("%s: start configuration session: %w", s.Describe(), err)
			}
			s.token = tok
		}
		out, err := s.Client.GetLatestConfiguration(ctx, s.token)
		var de *DataError
		if errors.As(err, &de) && de.Code == "BadRequestException" && attempt == 0 {
			s.token = "" // expired or used: a new session
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: get latest configuration: %w", s.Describe(), err)
		}
		s.token, s.next = out.NextToken, s.now().Add(out.NextPollInterval)
		if len(out.Configuration) > 0 || !s.have {
			ids, err := []string(nil), error(nil)
			if len(out.Configuration) > 0 {
				ids, err = parseFlagValues(out.Configuration, s.flag())
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", s.Describe(), err)
			}
			s.ids, s.have = ids, true
		}
		return s.ids, nil
	}
}

// DataClient is a small appconfigdata client: the two session calls,
// REST-JSON over HTTPS, signed with SigV4 (signing name "appconfig"). The
// SDK's service/appconfigdata module is not used because the module proxy
// this project builds from does not serve it.
type DataClient struct {
	// Endpoint is the data plane's base URL (default
	// https://appconfigdata.REGION.amazonaws.com).
	Endpoint    string
	Region      string
	Credentials aws.CredentialsProvider
	// HTTP is the client (default http.DefaultClient).
	HTTP *http.Client
}

// NewDataClient takes region, credentials and HTTP client from cfg; the
// endpoint from AWS_ENDPOINT_URL_APPCONFIGDATA when set (as the SDKs'
// service-specific endpoint variable), else cfg.BaseEndpoint, else AWS's.
func NewDataClient(cfg aws.Config, endpointFromEnv string) *DataClient {
	c := &DataClient{Region: cfg.Region, Credentials: cfg.Credentials, Endpoint: endpointFromEnv}
	if c.Endpoint == "" && cfg.BaseEndpoint != nil {
		c.Endpoint = *cfg.BaseEndpoint
	}
	if hc, ok := cfg.HTTPClient.(*http.Client); ok {
		c.HTTP = hc
	}
	return c
}

// DataError is an error answer of the data plane.
type DataError struct {
	Status  int
	Code    string
	Message string
}

func (e *DataError) Error() string {
	return fmt.Sprintf("appconfigdata: HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// ErrorCode and HTTPStatusCode let IsThrottle classify it.
func (e *DataError) ErrorCode() string   { return e.Code }
func (e *DataError) HTTPStatusCode() int { return e.Status }

func (c *DataClient) do(ctx context.Context, method, path string, query url.Values, body []byte) (*http.Response, []byte, error) {
	base := c.Endpoint
	if base == "" {
		base = "https://appconfigdata." + c.Region + ".amazonaws.com"
	}
	u := strings.TrimSuffix(base, "/") + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Credentials != nil {
		creds, err := c.Credentials.Retrieve(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("credentials: %w", err)
		}
		sum := sha256.Sum256(body)
		if err := v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "appconfig", c.Region, time.Now()); err != nil {
			return nil, nil, fmt.Errorf("sign: %w", err)
		}
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode/100 != 2 {
		e := &DataError{Status: resp.StatusCode, Code: resp.Header.Get("X-Amzn-ErrorType")}
		var m struct{ Message string }
		_ = json.Unmarshal(b, &m)
		e.Message = m.Message
		if i := strings.IndexByte(e.Code, ':'); i >= 0 {
			e.Code = e.Code[:i]
		}
		return nil, nil, e
	}
	return resp, b, nil
}

// StartConfigurationSession is POST /configurationsessions.
func (c *DataClient) StartConfigurationSession(ctx context.Context, app, env, profile string, minPoll time.Duration) (string, error) {
	in := map[string]any{"ApplicationIdentifier": app, "EnvironmentIdentifier": env, "ConfigurationProfileIdentifier": profile}
	if minPoll > 0 {
		in["RequiredMinimumPollIntervalInSeconds"] = int(minPoll / time.Second)
	}
	body, _ := json.Marshal(in)
	_, b, err := c.do(ctx, http.MethodPost, "/configurationsessions", nil, body)
	if err != nil {
		return "", err
	}
	var out struct{ InitialConfigurationToken string }
	if err := json.Unmarshal(b, &out); err != nil || out.InitialConfigurationToken == "" {
		return "", fmt.Errorf("appconfigdata: StartConfigurationSession answer %q has no InitialConfigurationToken", b)
	}
	return out.InitialConfigurationToken, nil
}

// GetLatestConfiguration is GET /configuration?configuration_token=T.
func (c *DataClient) GetLatestConfiguration(ctx context.Context, token string) (LatestConfiguration, error) {
	resp, b, err := c.do(ctx, http.MethodGet, "/configuration", url.Values{"configuration_token": {token}}, nil)
	if err != nil {
		return LatestConfiguration{}, err
	}
	out := LatestConfiguration{Configuration: b, NextToken: resp.Header.Get("Next-Poll-Configuration-Token")}
	if s := resp.Header.Get("Next-Poll-Interval-In-Seconds"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return LatestConfiguration{}, fmt.Errorf("appconfigdata: Next-Poll-Interval-In-Seconds %q", s)
		}
		out.NextPollInterval = time.Duration(n) * time.Second
	}
	if out.NextToken == "" {
		return LatestConfiguration{}, errors.New("appconfigdata: GetLatestConfiguration answer has no Next-Poll-Configuration-Token")
	}
	return out, nil
}
