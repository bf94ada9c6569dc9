// Package fakessm is an in-process stand-in for AWS Systems Manager
// Parameter Store that speaks SSM's real wire protocol (AWS JSON 1.1:
// POST / with X-Amz-Target: AmazonSSM.<Operation>), so the real
// aws-sdk-go-v2/service/ssm client works against it unchanged.
//
// It answers GetParameter (including the name:version selector),
// GetParameters, PutParameter and DeleteParameter, keeps every version of a
// parameter (versions start at 1 and increment on every put), and shapes
// errors as SSM does: HTTP 400 with {"__type":"ParameterNotFound",...}.
// Signatures are not verified, but a request must carry an Authorization
// header, as real SSM requires.
//
// Start it with Start; point clients at Server.Endpoint (for the CLI:
// AWS_ENDPOINT_URL_SSM). Tests can inspect and change state directly (Put,
// Get) and observe or fail requests (SetHook, Count).
//
// Only tests and test tools may import this package.
package fakessm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Region and Account appear in the parameter ARNs the server returns.
const (
	Region  = "us-east-1"
	Account = "123456789012"
)

// maxVersions is how many versions SSM keeps of a parameter; older ones are
// dropped on put.
const maxVersions = 100

// maxValueLen is the Standard tier's limit on a value, in characters.
const maxValueLen = 4096

// Server is a running fake SSM endpoint.
type Server struct {
	// Endpoint is the URL to point clients at: http://127.0.0.1:PORT.
	Endpoint string

	srv *http.Server
	ln  net.Listener

	mu     sync.Mutex
	params map[string]*param
	counts map[string]int
	hook   func(op, name string) error
}

type param struct {
	typ      string
	versions []version // oldest first
}

type version struct {
	value    string
	number   int64
	modified time.Time
}

// Parameter is one version of a parameter, as tests see it.
type Parameter struct {
	Name     string
	Type     string
	Value    string
	Version  int64
	Modified time.Time
}

// Start starts a server on 127.0.0.1 on a free port. ctx bounds only the
// start; Close stops the server.
func Start(ctx context.Context) (*Server, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fakessm: listen: %w", err)
	}
	s := &Server{
		Endpoint: "http://" + ln.Addr().String(),
		ln:       ln,
		params:   map[string]*param{},
		counts:   map[string]int{},
	}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln) //nolint:errcheck // returns ErrServerClosed on Close
	return s, nil
}

// Close stops the server.
func (s *Server) Close() error { return s.srv.Close() }

// SetHook installs fn, called with the operation and parameter name before
// each request is handled (outside the server's lock, so fn may call Put).
// A non-nil error fails the request with HTTP 500 InternalServerError, as
// an SSM outage would, except ErrThrottled, which fails it as SSM does
// past its throughput quota: HTTP 400 ThrottlingException "Rate
// exceeded". nil removes the hook.
func (s *Server) SetHook(fn func(op, name string) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = fn
}

// Count returns how many requests for op (such as "GetParameter") the
// server has received, including failed ones.
func (s *Server) Count(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[op]
}

// Put stores a new version of a parameter directly, as another writer
// would, creating it when missing, and returns the new version number.
func (s *Server) Put(name, typ, value string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.putLocked(name, typ, value)
}

// Get returns the latest version of a parameter.
func (s *Server) Get(name string) (Parameter, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.params[name]
	if !ok {
		return Parameter{}, false
	}
	v := p.versions[len(p.versions)-1]
	return Parameter{Name: name, Type: p.typ, Value: v.value, Version: v.number, Modified: v.modified}, true
}

func (s *Server) putLocked(name, typ, value string) int64 {
	p, ok := s.params[name]
	if !ok {
		p = &param{}
		s.params[name] = p
	}
	if typ != "" {
		p.typ = typ
	}
	var n int64 = 1
	if len(p.versions) > 0 {
		n = p.versions[len(p.versions)-1].number + 1
	}
	p.versions = append(p.versions, version{value: value, number: n, modified: time.Now()})
	if len(p.versions) > maxVersions {
		p.versions = p.versions[len(p.versions)-maxVersions:]
	}
	return n
}

// apiError is an error as SSM sends it.
type apiError struct {
	status int
	typ    string
	msg    string
}

func (e *apiError) Error() string { return e.typ + ": " + e.msg }

func clientErr(typ, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, typ: typ, msg: fmt.Sprintf(format, args...)}
}

const targetPrefix = "AmazonSSM."

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	op, ok := strings.CutPrefix(target, targetPrefix)
	if r.Method != http.MethodPost || !ok {
		writeErr(w, clientErr("UnknownOperationException", "unknown operation %q", target))
		return
	}
	if r.Header.Get("Authorization") == "" {
		writeErr(w, clientErr("MissingAuthenticationTokenException", "Missing Authentication Token"))
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeErr(w, clientErr("SerializationException", "read body: %v", err))
		return
	}
	var req map[string]json.RawMessage
	if err := json.Unmarshal(body, &req); err != nil {
		writeErr(w, clientErr("SerializationException", "body is not a JSON object: %v", err))
		return
	}
	var name string
	_ = json.Unmarshal(req["Name"], &name)

	s.mu.Lock()
	s.counts[op]++
	hook := s.hook
	s.mu.Unlock()
	if hook != nil {
		if err := hook(op, name); errors.Is(err, ErrThrottled) {
			writeErr(w, clientErr("ThrottlingException", "Rate exceeded"))
			return
		} else if err != nil {
			writeErr(w, &apiError{status: http.StatusInternalServerError, typ: "InternalServerError", msg: err.Error()})
			return
		}
	}

	var out any
	var aerr *apiError
	switch op {
	case "GetParameter":
		out, aerr = s.getParameter(body)
	case "GetParameters":
		out, aerr = s.getParameters(body)
	case "PutParameter":
		out, aerr = s.putParameter(body)
	case "DeleteParameter":
		out, aerr = s.deleteParameter(body)
	default:
		aerr = clientErr("UnknownOperationException", "fakessm does not implement %s", op)
	}
	if aerr != nil {
		writeErr(w, aerr)
		return
	}
	b, err := json.Marshal(out)
	if err != nil {
		writeErr(w, &apiError{status: 500, typ: "InternalServerError", msg: err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-RequestId", requestID())
	w.Write(b) //nolint:errcheck
}

func writeErr(w http.ResponseWriter, e *apiError) {
	b, _ := json.Marshal(map[string]string{"__type": e.typ, "message": e.msg})
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-RequestId", requestID())
	w.WriteHeader(e.status)
	w.Write(b) //nolint:errcheck
}

var reqCounter struct {
	sync.Mutex
	n int
}

func requestID() string {
	reqCounter.Lock()
	defer reqCounter.Unlock()
	reqCounter.n++
	return fmt.Sprintf("00000000-0000-4000-8000-%012d", reqCounter.n)
}

// wireParameter is the Parameter shape of GetParameter's response.
type wireParameter struct {
	ARN              string  `json:"ARN"`
	DataType         string  `json:"DataType"`
	LastModifiedDate float64 `json:"LastModifiedDate"`
	Name             string  `json:"Name"`
	Selector         string  `json:"Selector,omitempty"`
	Type             string  `json:"Type"`
	Value            string  `json:"Value"`
	Version          int64   `json:"Version"`
}

// lookup resolves name or name:version against the store; s.mu is held.
func (s *Server) lookupLocked(ref string) (*wireParameter, *apiError) {
	name, selector := ref, ""
	var want int64
	if i := strings.LastIndexByte(ref, ':'); i >= 0 {
		n, err := strconv.ParseInt(ref[i+1:], 10, 64)
		if err != nil || n < 1 {
			return nil, clientErr("ValidationException", "invalid parameter version selector %q", ref[i:])
		}
		name, selector, want = ref[:i], ref[i:], n
	}
	p, ok := s.params[name]
	if !ok {
		return nil, clientErr("ParameterNotFound", "")
	}
	v := p.versions[len(p.versions)-1]
	if want != 0 {
		found := false
		for _, pv := range p.versions {
			if pv.number == want {
				v, found = pv, true
				break
			}
		}
		if !found {
			return nil, clientErr("ParameterVersionNotFound",
				"Systems Manager could not find version %d of %s. Verify the version and try again.", want, name)
		}
	}
	return &wireParameter{
		ARN:              fmt.Sprintf("arn:aws:ssm:%s:%s:parameter/%s", Region, Account, strings.TrimPrefix(name, "/")),
		DataType:         "text",
		LastModifiedDate: float64(v.modified.UnixMilli()) / 1000,
		Name:             name,
		Selector:         selector,
		Type:             p.typ,
		Value:            v.value,
		Version:          v.number,
	}, nil
}

func (s *Server) getParameter(body []byte) (any, *apiError) {
	var in struct{ Name string }
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, clientErr("SerializationException", "%v", err)
	}
	if in.Name == "" {
		return nil, clientErr("ValidationException", "1 validation error detected: Value null at 'name' failed to satisfy constraint: Member must not be null")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, aerr := s.lookupLocked(in.Name)
	if aerr != nil {
		return nil, aerr
	}
	return map[string]any{"Parameter": p}, nil
}

func (s *Server) getParameters(body []byte) (any, *apiError) {
	var in struct{ Names []string }
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, clientErr("SerializationException", "%v", err)
	}
	if len(in.Names) == 0 || len(in.Names) > 10 {
		return nil, clientErr("ValidationException", "1 validation error detected: Value at 'names' failed to satisfy constraint: Member must have length between 1 and 10")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	params := []*wireParameter{}
	invalid := []string{}
	for _, n := range in.Names {
		p, aerr := s.lookupLocked(n)
		if aerr != nil {
			invalid = append(invalid, n)
			continue
		}
		params = append(params, p)
	}
	return map[string]any{"Parameters": params, "InvalidParameters": invalid}, nil
}

func (s *Server) putParameter(body []byte) (any, *apiError) {
	var in struct {
		Name      string
		Value     *string
		Type      string
		Overwrite bool
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, clientErr("SerializationException", "%v", err)
	}
	switch {
	case in.Name == "":
		return nil, clientErr("ValidationException", "1 validation error detected: Value null at 'name' failed to satisfy constraint: Member must not be null")
	case in.Value == nil:
		return nil, clientErr("ValidationException", "1 validation error detected: Value null at 'value' failed to satisfy constraint: Member must not be null")
	case *in.Value == "":
		return nil, clientErr("ValidationException", "1 validation error detected: Value '' at 'value' failed to satisfy constraint: Member must have length greater than or equal to 1")
	case len([]rune(*in.Value)) > maxValueLen:
		return nil, clientErr("ValidationException", "Standard tier parameters support a maximum parameter value of %d characters.", maxValueLen)
	case in.Type != "" && in.Type != "String" && in.Type != "StringList" && in.Type != "SecureString":
		return nil, clientErr("ValidationException", "1 validation error detected: Value '%s' at 'type' failed to satisfy constraint: Member must satisfy enum value set: [SecureString, StringList, String]", in.Type)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, exists := s.params[in.Name]
	switch {
	case exists && !in.Overwrite:
		return nil, clientErr("ParameterAlreadyExists", "The parameter already exists. To overwrite this value, set the overwrite option in the request to true.")
	case !exists && in.Type == "":
		return nil, clientErr("ValidationException", "A parameter type is required when you create a parameter.")
	case exists && in.Type != "" && in.Type != p.typ && (p.typ == "SecureString" || in.Type == "SecureString"):
		return nil, clientErr("HierarchyTypeMismatchException", "Parameter Type can't be changed to or from SecureString.")
	}
	n := s.putLocked(in.Name, in.Type, *in.Value)
	return map[string]any{"Tier": "Standard", "Version": n}, nil
}

func (s *Server) deleteParameter(body []byte) (any, *apiError) {
	var in struct{ Name string }
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, clientErr("SerializationException", "%v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.params[in.Name]; !ok {
		return nil, clientErr("ParameterNotFound", "")
	}
	delete(s.params, in.Name)
	return map[string]any{}, nil
}

// ErrDown is a convenient error for hooks that simulate an outage.
var ErrDown = errors.New("fakessm: simulated outage")

// ErrThrottled, returned by a hook, answers the request as SSM does when
// the account's Parameter Store throughput (40 TPS by default, shared by
// GetParameter, GetParameters and PutParameter) is exceeded.
var ErrThrottled = errors.New("fakessm: simulated throttling")
