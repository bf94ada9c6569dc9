// Package fakeappconfig is an in-process stand-in for AWS AppConfig that
// speaks its real wire protocol (REST-JSON, API version 2019-10-09), so the
// real aws-sdk-go-v2/service/appconfig client works against it unchanged,
// and that also answers as the AppConfig Agent's local HTTP endpoint does,
// so a guard.AgentSource can read from it.
//
// What it models, each as documented in the AppConfig API reference:
//
//   - ListApplications, ListEnvironments, ListConfigurationProfiles (one
//     page; NextToken is never set).
//   - CreateHostedConfigurationVersion: the body is the content, with
//     Content-Type, Description, Versionlabel and Latest-Version-Number
//     headers; versions number from 1. A Latest-Version-Number that is not
//     the latest version is ConflictException (the documented locking
//     token). For an AWS.AppConfig.FeatureFlags profile the content must
//     be JSON in the feature flag format (version "1", flags, values: each
//     value's key defined under flags, "enabled" a boolean, array
//     attributes of strings where the constraint says so), else
//     BadRequestException. Content over 2 MB (the default quota for
//     hosted configurations) is PayloadTooLargeException.
//   - GetHostedConfigurationVersion, ListHostedConfigurationVersions
//     (newest first).
//   - StartDeployment, GetDeployment, ListDeployments (newest first).
//     A deployment is DEPLOYING for its strategy's duration, then BAKING
//     for its final bake time, then COMPLETE, by the server's clock
//     (SetClock). StartDeployment while another deployment in the
//     environment is DEPLOYING or BAKING is ConflictException, as AppConfig
//     allows one deployment per environment at a time. The predefined
//     strategies are known by id (AppConfig.AllAtOnce: 0 min, bake 10 min;
//     AppConfig.Linear50PercentEvery30Seconds: 1 min, bake 1 min;
//     AppConfig.Canary10Percent20Minutes: 20 min, bake 10 min;
//     AppConfig.Linear20PercentEvery6Minutes: 30 min, bake 30 min);
//     AddStrategy adds custom ones.
//   - Unknown application, environment, profile, version or strategy ids
//     are ResourceNotFoundException; missing required fields
//     BadRequestException.
//   - The Agent: GET /applications/APP/environments/ENV/configurations/PROFILE
//     (names or ids) returns the deployed configuration; for a feature
//     flag profile only its "values" object, as the Agent and
//     GetLatestConfiguration deliver flags. Before any deployment it is
//     404.
//   - The data plane (appconfigdata, same endpoint):
//     StartConfigurationSession (names or ids;
//     RequiredMinimumPollIntervalInSeconds 15..86400, else
//     BadRequestException) and GetLatestConfiguration: each token is good
//     for one call (a used or unknown one is BadRequestException), the
//     answer carries Next-Poll-Configuration-Token and
//     Next-Poll-Interval-In-Seconds (the session's minimum, 60 s by
//     default), and the body is empty when the session already has the
//     deployed version.
//
// What it does not model: growth (every target gets a deployment's
// version as soon as it starts, as AllAtOnce does), rollback on alarms,
// StopDeployment, validators, extensions, KMS, tags, pagination, token
// expiry after 24 h, polling before the interval, multi-variant flags,
// and request signatures
// (a control-plane request must only carry an Authorization header).
//
// Hook fails requests by operation (ErrThrottled: HTTP 429
// ThrottlingException; anything else HTTP 500 InternalServerException).
//
// Only tests and test tools may import this package.
package fakeappconfig

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Account and Region appear in ARNs.
const (
	Account = "123456789012"
	Region  = "us-east-1"
)

// FeatureFlagsType is the configuration profile type of feature flags.
const FeatureFlagsType = "AWS.AppConfig.FeatureFlags"

// maxContent is AppConfig's default quota on a hosted configuration.
const maxContent = 2 << 20

// ErrThrottled, returned by a hook, answers 429 ThrottlingException.
var ErrThrottled = errors.New("fakeappconfig: simulated throttling")

// Server is a running fake AppConfig (control plane and Agent endpoint).
type Server struct {
	// Endpoint is http://127.0.0.1:PORT: the control plane's endpoint
	// (AWS_ENDPOINT_URL_APPCONFIG) and the Agent's base URL.
	Endpoint string

	srv *http.Server

	mu         sync.Mutex
	now        func() time.Time
	seq        int
	apps       []*app
	strategies map[string]strategy
	counts     map[string]int
	hook       func(op string) error
	sessions   map[string]*session // by token
}

// session is an appconfigdata configuration session.
type session struct {
	app       *app
	env       *env
	prof      *profile
	interval  int32   // seconds
	delivered *hosted // what the session last returned
	used      bool    // the token has been used
}

type app struct {
	id, name string
	envs     []*env
	profiles []*profile
}

type env struct {
	id, name    string
	deployments []*deployment // oldest first
}

type profile struct {
	id, name, typ string
	versions      []*hosted // oldest first
}

type hosted struct {
	number                          int32
	content                         []byte
	contentType, description, label string
}

type deployment struct {
	number    int32
	profileID string
	version   string
	strategy  strategy
	started   time.Time
	desc      string
}

type strategy struct {
	id, name       string
	duration, bake int32 // minutes
	growth         float32
}

// Start starts a server on 127.0.0.1 on a free port.
func Start(ctx context.Context) (*Server, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fakeappconfig: listen: %w", err)
	}
	s := &Server{
		Endpoint: "http://" + ln.Addr().String(),
		now:      time.Now,
		counts:   map[string]int{},
		sessions: map[string]*session{},
		strategies: map[string]strategy{
			"AppConfig.AllAtOnce":                     {"AppConfig.AllAtOnce", "AppConfig.AllAtOnce", 0, 10, 100},
			"AppConfig.Linear50PercentEvery30Seconds": {"AppConfig.Linear50PercentEvery30Seconds", "AppConfig.Linear50PercentEvery30Seconds", 1, 1, 50},
			"AppConfig.Canary10Percent20Minutes":      {"AppConfig.Canary10Percent20Minutes", "AppConfig.Canary10Percent20Minutes", 20, 10, 10},
			"AppConfig.Linear20PercentEvery6Minutes":  {"AppConfig.Linear20PercentEvery6Minutes", "AppConfig.Linear20PercentEvery6Minutes", 30, 30, 20},
		},
	}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln) //nolint:errcheck // ErrServerClosed on Close
	return s, nil
}

// Close stops the server.
func (s *Server) Close() error { return s.srv.Close() }

// SetClock sets the clock deployments progress by (default time.Now).
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// SetHook installs fn, called with the operation name ("StartDeployment",
// "Agent", ...) before each request; see the package doc. nil removes it.
func (s *Server) SetHook(fn func(op string) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = fn
}

// ExpireSessions makes every configuration token invalid, as AppConfig
// does 24 hours after it was issued.
func (s *Server) ExpireSessions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.sessions)
}

// Count returns how many requests for op the server has received.
func (s *Server) Count(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[op]
}

func (s *Server) newID() string {
	s.seq++
	return fmt.Sprintf("%07x", 0xa1b2c00+s.seq)
}

// AddApplication creates an application and returns its id.
func (s *Server) AddApplication(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := &app{id: s.newID(), name: name}
	s.apps = append(s.apps, a)
	return a.id
}

// AddEnvironment creates an environment in application appID.
func (s *Server) AddEnvironment(appID, name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.appLocked(appID)
	e := &env{id: s.newID(), name: name}
	a.envs = append(a.envs, e)
	return e.id
}

// AddProfile creates a hosted configuration profile of type typ (such as
// FeatureFlagsType) in application appID.
func (s *Server) AddProfile(appID, name, typ string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.appLocked(appID)
	p := &profile{id: s.newID(), name: name, typ: typ}
	a.profiles = append(a.profiles, p)
	return p.id
}

// AddStrategy creates a deployment strategy and returns its id.
func (s *Server) AddStrategy(name string, durationMinutes, bakeMinutes int32) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.newID()
	s.strategies[id] = strategy{id: id, name: name, duration: durationMinutes, bake: bakeMinutes, growth: 100}
	return id
}

// Deployment is a deployment as tests see it.
type Deployment struct {
	Number        int32
	Version       string
	Strategy      string
	State         string
	Configuration []byte // the hosted version's content
}

// Deployments lists the deployments of environment envID (oldest first).
func (s *Server) Deployments(appID, envID string) []Deployment {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.appLocked(appID)
	var out []Deployment
	for _, e := range a.envs {
		if e.id != envID {
			continue
		}
		for _, d := range e.deployments {
			var content []byte
			if h := a.profileByID(d.profileID).version(d.version); h != nil {
				content = h.content
			}
			out = append(out, Deployment{d.number, d.version, d.strategy.id, s.stateLocked(d), content})
		}
	}
	return out
}

func (s *Server) appLocked(id string) *app {
	for _, a := range s.apps {
		if a.id == id {
			return a
		}
	}
	panic("fakeappconfig: no application " + id)
}

func (a *app) profileByID(id string) *profile {
	for _, p := range a.profiles {
		if p.id == id {
			return p
		}
	}
	return nil
}

func (p *profile) version(v string) *hosted {
	if p == nil {
		return nil
	}
	for _, h := range p.versions {
		if strconv.Itoa(int(h.number)) == v {
			return h
		}
	}
	return nil
}

func (s *Server) stateLocked(d *deployment) string {
	el := s.now().Sub(d.started)
	switch {
	case el < time.Duration(d.strategy.duration)*time.Minute:
		return "DEPLOYING"
	case el < time.Duration(d.strategy.duration+d.strategy.bake)*time.Minute:
		return "BAKING"
	}
	return "COMPLETE"
}

// apiError is an error as AppConfig sends it.
type apiError struct {
	status int
	code   string
	msg    string
}

func errf(status int, code, format string, args ...any) *apiError {
	return &apiError{status, code, fmt.Sprintf(format, args...)}
}

func notFound(what, id string) *apiError {
	return errf(404, "ResourceNotFoundException", "%s %s not found", what, id)
}

func badRequest(format string, args ...any) *apiError {
	return errf(400, "BadRequestException", format, args...)
}

func writeErr(w http.ResponseWriter, e *apiError) {
	w.Header().Set("X-Amzn-ErrorType", e.code)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.status)
	b, _ := json.Marshal(map[string]string{"Message": e.msg})
	w.Write(b) //nolint:errcheck
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeErr(w, errf(500, "InternalServerException", "%v", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b) //nolint:errcheck
}

// route is one operation: method, path pattern ({x} is one segment).
type route struct {
	op, method string
	parts      []string
	control    bool // the control plane: needs Authorization
}

var routes = func() []route {
	def := []struct{ op, method, path string }{
		{"ListApplications", "GET", "/applications"},
		{"ListEnvironments", "GET", "/applications/{a}/environments"},
		{"ListConfigurationProfiles", "GET", "/applications/{a}/configurationprofiles"},
		{"ListHostedConfigurationVersions", "GET", "/applications/{a}/configurationprofiles/{p}/hostedconfigurationversions"},
		{"CreateHostedConfigurationVersion", "POST", "/applications/{a}/configurationprofiles/{p}/hostedconfigurationversions"},
		{"GetHostedConfigurationVersion", "GET", "/applications/{a}/configurationprofiles/{p}/hostedconfigurationversions/{v}"},
		{"ListDeployments", "GET", "/applications/{a}/environments/{e}/deployments"},
		{"StartDeployment", "POST", "/applications/{a}/environments/{e}/deployments"},
		{"GetDeployment", "GET", "/applications/{a}/environments/{e}/deployments/{d}"},
		{"Agent", "GET", "/applications/{a}/environments/{e}/configurations/{p}"},
		{"StartConfigurationSession", "POST", "/configurationsessions"},
		{"GetLatestConfiguration", "GET", "/configuration"},
	}
	var rs []route
	for _, d := range def {
		rs = append(rs, route{d.op, d.method, strings.Split(strings.Trim(d.path, "/"), "/"), d.op != "Agent"})
	}
	return rs
}()

func match(r *http.Request) (route, map[string]string, bool) {
	segs := strings.Split(strings.Trim(r.URL.EscapedPath(), "/"), "/")
	for _, rt := range routes {
		if rt.method != r.Method || len(rt.parts) != len(segs) {
			continue
		}
		vars, ok := map[string]string{}, true
		for i, p := range rt.parts {
			seg, err := url.PathUnescape(segs[i])
			if err != nil {
				ok = false
				break
			}
			if strings.HasPrefix(p, "{") {
				vars[strings.Trim(p, "{}")] = seg
			} else if p != seg {
				ok = false
				break
			}
		}
		if ok {
			return rt, vars, true
		}
	}
	return route{}, nil, false
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt, vars, ok := match(r)
	if !ok {
		writeErr(w, notFound("operation", r.Method+" "+r.URL.Path))
		return
	}
	if rt.control && r.Header.Get("Authorization") == "" {
		writeErr(w, errf(403, "MissingAuthenticationTokenException", "Missing Authentication Token"))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxContent+1))
	if err != nil {
		writeErr(w, badRequest("read body: %v", err))
		return
	}
	s.mu.Lock()
	s.counts[rt.op]++
	hook := s.hook
	s.mu.Unlock()
	if hook != nil {
		if err := hook(rt.op); errors.Is(err, ErrThrottled) {
			writeErr(w, errf(429, "ThrottlingException", "Rate exceeded"))
			return
		} else if err != nil {
			writeErr(w, errf(500, "InternalServerException", "%v", err))
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if aerr := s.handleLocked(w, r, rt.op, vars, body); aerr != nil {
		writeErr(w, aerr)
	}
}

func (s *Server) handleLocked(w http.ResponseWriter, r *http.Request, op string, v map[string]string, body []byte) *apiError {
	switch op {
	case "StartConfigurationSession":
		return s.startSessionLocked(w, body)
	case "GetLatestConfiguration":
		return s.latestLocked(w, r.URL.Query().Get("configuration_token"))
	}
	if op == "ListApplications" {
		items := []map[string]string{}
		for _, a := range s.apps {
			items = append(items, map[string]string{"Id": a.id, "Name": a.name})
		}
		writeJSON(w, 200, map[string]any{"Items": items})
		return nil
	}
	a := s.findApp(v["a"], op == "Agent")
	if a == nil {
		return notFound("Application", v["a"])
	}
	switch op {
	case "ListEnvironments":
		items := []map[string]string{}
		for _, e := range a.envs {
			items = append(items, map[string]string{"ApplicationId": a.id, "Id": e.id, "Name": e.name, "State": "READY_FOR_DEPLOYMENT"})
		}
		writeJSON(w, 200, map[string]any{"Items": items})
		return nil
	case "ListConfigurationProfiles":
		items := []map[string]any{}
		for _, p := range a.profiles {
			items = append(items, map[string]any{"ApplicationId": a.id, "Id": p.id, "Name": p.name, "LocationUri": "hosted", "Type": p.typ})
		}
		writeJSON(w, 200, map[string]any{"Items": items})
		return nil
	case "Agent":
		return s.agentLocked(w, a, v)
	}
	if _, ok := v["p"]; ok {
		p := a.profileByID(v["p"])
		if p == nil {
			return notFound("ConfigurationProfile", v["p"])
		}
		switch op {
		case "ListHostedConfigurationVersions":
			items := []map[string]any{}
			for _, h := range slices.Backward(p.versions) {
				items = append(items, map[string]any{"ApplicationId": a.id, "ConfigurationProfileId": p.id, "VersionNumber": h.number, "ContentType": h.contentType, "Description": h.description, "VersionLabel": h.label})
			}
			writeJSON(w, 200, map[string]any{"Items": items})
			return nil
		case "GetHostedConfigurationVersion":
			h := p.version(v["v"])
			if h == nil {
				return notFound("HostedConfigurationVersion", v["v"])
			}
			writeHosted(w, 200, a, p, h)
			return nil
		case "CreateHostedConfigurationVersion":
			return s.createLocked(w, r, a, p, body)
		}
	}
	var e *env
	for _, x := range a.envs {
		if x.id == v["e"] {
			e = x
		}
	}
	if e == nil {
		return notFound("Environment", v["e"])
	}
	switch op {
	case "ListDeployments":
		items := []map[string]any{}
		for _, d := range slices.Backward(e.deployments) {
			items = append(items, s.deploymentJSON(a, e, d))
		}
		writeJSON(w, 200, map[string]any{"Items": items})
		return nil
	case "GetDeployment":
		for _, d := range e.deployments {
			if strconv.Itoa(int(d.number)) == v["d"] {
				writeJSON(w, 200, s.deploymentJSON(a, e, d))
				return nil
			}
		}
		return notFound("Deployment", v["d"])
	case "StartDeployment":
		return s.startLocked(w, a, e, body)
	}
	return notFound("operation", op)
}

// findApp finds an application by id, or (for the Agent, which takes
// names too) by name.
func (s *Server) findApp(ref string, byName bool) *app {
	for _, a := range s.apps {
		if a.id == ref || (byName && a.name == ref) {
			return a
		}
	}
	return nil
}

func writeHosted(w http.ResponseWriter, status int, a *app, p *profile, h *hosted) {
	hd := w.Header()
	hd.Set("Application-Id", a.id)
	hd.Set("Configuration-Profile-Id", p.id)
	hd.Set("Version-Number", strconv.Itoa(int(h.number)))
	hd.Set("Content-Type", h.contentType)
	if h.description != "" {
		hd.Set("Description", h.description)
	}
	if h.label != "" {
		hd.Set("VersionLabel", h.label)
	}
	w.WriteHeader(status)
	w.Write(h.content) //nolint:errcheck
}

func (s *Server) createLocked(w http.ResponseWriter, r *http.Request, a *app, p *profile, body []byte) *apiError {
	ct := r.Header.Get("Content-Type")
	switch {
	case ct == "":
		return badRequest("Content-Type is required")
	case len(body) == 0:
		return badRequest("Content is required")
	case len(body) > maxContent:
		return errf(413, "PayloadTooLargeException", "The configuration size exceeds the maximum of %d bytes", maxContent)
	}
	latest := int32(0)
	if n := len(p.versions); n > 0 {
		latest = p.versions[n-1].number
	}
	if lv := r.Header.Get("Latest-Version-Number"); lv != "" {
		n, err := strconv.Atoi(lv)
		if err != nil {
			return badRequest("Latest-Version-Number %q is not a number", lv)
		}
		if int32(n) != latest {
			return errf(409, "ConflictException", "Latest version number %d does not match the latest hosted configuration version %d", n, latest)
		}
	}
	if p.typ == FeatureFlagsType {
		if err := validateFlags(body); err != nil {
			return badRequest("Configuration is not valid for type %s: %v", FeatureFlagsType, err)
		}
	}
	h := &hosted{number: latest + 1, content: slices.Clone(body), contentType: ct, description: r.Header.Get("Description"), label: r.Header.Get("Versionlabel")}
	p.versions = append(p.versions, h)
	writeHosted(w, 201, a, p, h)
	return nil
}

var flagKey = regexp.MustCompile(`^[a-z][a-zA-Z\d_-]{0,63}$`)

// validateFlags checks the parts of the AWS.AppConfig.FeatureFlags format
// the fake models (see the package doc).
func validateFlags(b []byte) error {
	var doc struct {
		Version string `json:"version"`
		Flags   map[string]struct {
			Name       string `json:"name"`
			Attributes map[string]struct {
				Constraints struct {
					Type     string `json:"type"`
					Elements *struct {
						Type string `json:"type"`
					} `json:"elements"`
				} `json:"constraints"`
			} `json:"attributes"`
		} `json:"flags"`
		Values map[string]map[string]json.RawMessage `json:"values"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return err
	}
	if doc.Version != "1" {
		return fmt.Errorf("version %q: want \"1\"", doc.Version)
	}
	for k, f := range doc.Flags {
		if !flagKey.MatchString(k) {
			return fmt.Errorf("flag key %q does not match %s", k, flagKey)
		}
		for ak := range f.Attributes {
			if !flagKey.MatchString(ak) || ak == "enabled" {
				return fmt.Errorf("flag %s: attribute key %q is not allowed", k, ak)
			}
		}
	}
	for k, vals := range doc.Values {
		f, ok := doc.Flags[k]
		if !ok {
			return fmt.Errorf("values: flag %q is not defined under flags", k)
		}
		var enabled bool
		if err := json.Unmarshal(vals["enabled"], &enabled); err != nil {
			return fmt.Errorf("values: flag %s: enabled must be a boolean", k)
		}
		for ak, raw := range vals {
			if ak == "enabled" {
				continue
			}
			def, ok := f.Attributes[ak]
			if !ok {
				return fmt.Errorf("values: flag %s: attribute %q is not defined", k, ak)
			}
			if def.Constraints.Type == "array" {
				var arr []string
				if err := json.Unmarshal(raw, &arr); err != nil {
					return fmt.Errorf("values: flag %s: attribute %s must be an array of strings", k, ak)
				}
			}
		}
	}
	return nil
}

func (s *Server) startLocked(w http.ResponseWriter, a *app, e *env, body []byte) *apiError {
	var in struct {
		ConfigurationProfileId, ConfigurationVersion, DeploymentStrategyId, Description string
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return badRequest("body: %v", err)
	}
	if in.ConfigurationProfileId == "" || in.ConfigurationVersion == "" || in.DeploymentStrategyId == "" {
		return badRequest("ConfigurationProfileId, ConfigurationVersion and DeploymentStrategyId are required")
	}
	p := a.profileByID(in.ConfigurationProfileId)
	if p == nil {
		return notFound("ConfigurationProfile", in.ConfigurationProfileId)
	}
	if p.version(in.ConfigurationVersion) == nil {
		return notFound("HostedConfigurationVersion", in.ConfigurationVersion)
	}
	st, ok := s.strategies[in.DeploymentStrategyId]
	if !ok {
		return notFound("DeploymentStrategy", in.DeploymentStrategyId)
	}
	for _, d := range e.deployments {
		if state := s.stateLocked(d); state != "COMPLETE" {
			return errf(409, "ConflictException", "Deployment %d of environment %s is %s; a new deployment can start when it completes", d.number, e.id, state)
		}
	}
	d := &deployment{number: int32(len(e.deployments) + 1), profileID: p.id, version: in.ConfigurationVersion, strategy: st, started: s.now(), desc: in.Description}
	e.deployments = append(e.deployments, d)
	writeJSON(w, 201, s.deploymentJSON(a, e, d))
	return nil
}

func (s *Server) deploymentJSON(a *app, e *env, d *deployment) map[string]any {
	p := a.profileByID(d.profileID)
	state := s.stateLocked(d)
	m := map[string]any{
		"ApplicationId": a.id, "EnvironmentId": e.id, "ConfigurationProfileId": p.id,
		"ConfigurationName": p.name, "ConfigurationLocationUri": "hosted",
		"ConfigurationVersion": d.version, "DeploymentNumber": d.number,
		"DeploymentStrategyId": d.strategy.id, "DeploymentDurationInMinutes": d.strategy.duration,
		"FinalBakeTimeInMinutes": d.strategy.bake, "GrowthFactor": d.strategy.growth, "GrowthType": "LINEAR",
		"State": state, "Description": d.desc,
		"StartedAt": d.started.UTC().Format(time.RFC3339Nano),
	}
	pct := 100.0
	if state == "DEPLOYING" {
		pct = 0
	}
	m["PercentageComplete"] = pct
	if state == "COMPLETE" {
		m["CompletedAt"] = d.started.Add(time.Duration(d.strategy.duration+d.strategy.bake) * time.Minute).UTC().Format(time.RFC3339Nano)
	}
	return m
}

// agentLocked answers as the AppConfig Agent does: the latest deployed
// configuration of the profile; a feature flag profile's values only.
func (s *Server) agentLocked(w http.ResponseWriter, a *app, v map[string]string) *apiError {
	e, p := a.envByRef(v["e"]), a.profileByRef(v["p"])
	if e == nil || p == nil {
		return notFound("Configuration", v["e"]+"/"+v["p"])
	}
	h := deployed(e, p)
	if h == nil {
		return notFound("deployed configuration", p.name)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(delivered(p, h)) //nolint:errcheck
	return nil
}

func (a *app) envByRef(ref string) *env {
	for _, x := range a.envs {
		if x.id == ref || x.name == ref {
			return x
		}
	}
	return nil
}

func (a *app) profileByRef(ref string) *profile {
	for _, x := range a.profiles {
		if x.id == ref || x.name == ref {
			return x
		}
	}
	return nil
}

// deployed is the version of p most recently deployed to e, nil if none.
func deployed(e *env, p *profile) *hosted {
	for _, d := range slices.Backward(e.deployments) {
		if d.profileID == p.id {
			return p.version(d.version)
		}
	}
	return nil
}

// delivered is what the data plane hands applications: a feature flag
// profile's values only.
func delivered(p *profile, h *hosted) []byte {
	if p.typ != FeatureFlagsType {
		return h.content
	}
	var doc struct {
		Values json.RawMessage `json:"values"`
	}
	_ = json.Unmarshal(h.content, &doc)
	if len(doc.Values) == 0 {
		return []byte("{}")
	}
	return doc.Values
}

// defaultPollInterval is NextPollIntervalInSeconds when the session asked
// for no minimum (AppConfig documents 60 s).
const defaultPollInterval = 60

func (s *Server) startSessionLocked(w http.ResponseWriter, body []byte) *apiError {
	var in struct {
		ApplicationIdentifier, EnvironmentIdentifier, ConfigurationProfileIdentifier string
		RequiredMinimumPollIntervalInSeconds                                         *int32
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return badRequest("body: %v", err)
	}
	if in.ApplicationIdentifier == "" || in.EnvironmentIdentifier == "" || in.ConfigurationProfileIdentifier == "" {
		return badRequest("ApplicationIdentifier, EnvironmentIdentifier and ConfigurationProfileIdentifier are required")
	}
	interval := int32(defaultPollInterval)
	if m := in.RequiredMinimumPollIntervalInSeconds; m != nil {
		if *m < 15 || *m > 86400 {
			return badRequest("RequiredMinimumPollIntervalInSeconds %d: must be between 15 and 86400", *m)
		}
		interval = *m
	}
	a := s.findApp(in.ApplicationIdentifier, true)
	if a == nil {
		return notFound("Application", in.ApplicationIdentifier)
	}
	e, p := a.envByRef(in.EnvironmentIdentifier), a.profileByRef(in.ConfigurationProfileIdentifier)
	if e == nil || p == nil {
		return notFound("Configuration", in.EnvironmentIdentifier+"/"+in.ConfigurationProfileIdentifier)
	}
	tok := s.newToken()
	s.sessions[tok] = &session{app: a, env: e, prof: p, interval: interval}
	writeJSON(w, 201, map[string]string{"InitialConfigurationToken": tok})
	return nil
}

func (s *Server) newToken() string {
	s.seq++
	return fmt.Sprintf("tok-%06d", s.seq)
}

// latestLocked is GetLatestConfiguration: each token is good for one call
// and the answer carries the next; the body is empty when the session
// already has the deployed version.
func (s *Server) latestLocked(w http.ResponseWriter, tok string) *apiError {
	se, ok := s.sessions[tok]
	if !ok || se.used {
		return badRequest("Request is not valid: the configuration token is not valid, expired or already used; start a new session")
	}
	se.used = true
	next := &session{app: se.app, env: se.env, prof: se.prof, interval: se.interval, delivered: se.delivered}
	h := deployed(se.env, se.prof)
	var body []byte
	if h != nil && h != se.delivered {
		body, next.delivered = delivered(se.prof, h), h
	}
	nt := s.newToken()
	s.sessions[nt] = next
	hd := w.Header()
	hd.Set("Next-Poll-Configuration-Token", nt)
	hd.Set("Next-Poll-Interval-In-Seconds", strconv.Itoa(int(se.interval)))
	hd.Set("Content-Type", "application/json")
	if h != nil {
		hd.Set("Version-Label", strconv.Itoa(int(h.number)))
	}
	w.WriteHeader(200)
	w.Write(body) //nolint:errcheck
	return nil
}
