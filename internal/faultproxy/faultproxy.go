// Package faultproxy is an HTTP proxy for tests that sits in front of a
// DynamoDB endpoint (DynamoDB Local) and injects the faults real DynamoDB
// produces: throttling errors with their real wire shapes, 500s, dropped
// connections (before the request reaches the server, or after it was
// executed with the response lost), partial BatchGetItem results moved to
// UnprocessedKeys, and latency on every request.
//
// Faults are drawn from a seeded random source, so a failing run can be
// replayed with the same seed (up to goroutine scheduling). Start returns a
// running proxy; point an SDK client's BaseEndpoint at its URL.
//
// Only tests and benchmarks may import this package.
package faultproxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ddbrewind/rewind"
)

// Config says which faults to inject, each as a probability per request
// in [0, 1]. At most one fault hits a request; they are drawn in the order
// of the fields.
type Config struct {
	// Upstream is the URL requests are forwarded to, such as
	// http://127.0.0.1:8000. Required.
	Upstream string
	// Seed seeds the fault draws. Default 0 (a fixed sequence too).
	Seed uint64

	// ProvisionedThroughputExceeded answers HTTP 400
	// ProvisionedThroughputExceededException without forwarding.
	ProvisionedThroughputExceeded float64
	// Throttling answers HTTP 400 ThrottlingException (what on-demand
	// tables return) without forwarding.
	Throttling float64
	// ServerError answers HTTP 500 InternalServerError without forwarding.
	ServerError float64
	// DropBeforeForward closes the connection without forwarding.
	DropBeforeForward float64
	// DropAfterForward forwards the request, so the server executes it,
	// then closes the connection without answering: the client cannot tell
	// whether its write happened.
	DropAfterForward float64
	// UnprocessedKeys, for a BatchGetItem answered by the server, moves a
	// random part (at least one) of the requested keys to UnprocessedKeys,
	// removing their items from Responses.
	UnprocessedKeys float64

	// Latency is added to every request before it is forwarded.
	Latency time.Duration
	// Operations, when not empty, limits faults (not latency) to these
	// operations, such as "BatchGetItem" or "PutItem".
	Operations []string

	// Intercept, when set, is called for every request with its operation
	// and body: before it is forwarded (landed false), and again once the
	// server has executed it, before its answer is passed on (landed
	// true). Crash tests kill the client there: right after a chosen
	// write lands, before the client can learn of it.
	Intercept func(op string, body []byte, landed bool)
}

// Stats counts requests and the faults injected.
type Stats struct {
	Requests                      int64
	ProvisionedThroughputExceeded int64
	Throttling                    int64
	ServerError                   int64
	DropBeforeForward             int64
	DropAfterForward              int64
	UnprocessedKeys               int64
}

// Faults is the number of faults injected.
func (s Stats) Faults() int64 {
	return s.ProvisionedThroughputExceeded + s.Throttling + s.ServerError + s.DropBeforeForward + s.DropAfterForward + s.UnprocessedKeys
}

// Proxy is a running fault-injecting proxy.
type Proxy struct {
	// URL is the proxy's address, http://127.0.0.1:PORT.
	URL string

	cfg       Config
	srv       *http.Server
	ln        net.Listener
	transport *http.Transport

	mu      sync.Mutex
	rnd     *rand.Rand
	enabled atomic.Bool

	requests, pte, throttle, s500, dropBefore, dropAfter, unprocessed atomic.Int64
}

// Start starts a proxy on 127.0.0.1 and a free port.
func Start(cfg Config) (*Proxy, error) {
	if cfg.Upstream == "" {
		return nil, errors.New("faultproxy: Upstream is required")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: %w", err)
	}
	p := &Proxy{
		URL: "http://" + ln.Addr().String(),
		cfg: cfg,
		ln:  ln,
		rnd: rand.New(rand.NewPCG(cfg.Seed, 0x5eed)),
		transport: &http.Transport{
			MaxIdleConns:        256,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     30 * time.Second,
			DisableCompression:  true,
		},
	}
	p.enabled.Store(true)
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go p.srv.Serve(ln)
	return p, nil
}

// Close stops the proxy.
func (p *Proxy) Close() error {
	err := p.srv.Close()
	p.transport.CloseIdleConnections()
	return err
}

// SetFaults turns fault injection on or off (latency stays).
func (p *Proxy) SetFaults(on bool) { p.enabled.Store(on) }

// Stats returns the counts so far.
func (p *Proxy) Stats() Stats {
	return Stats{
		Requests:                      p.requests.Load(),
		ProvisionedThroughputExceeded: p.pte.Load(),
		Throttling:                    p.throttle.Load(),
		ServerError:                   p.s500.Load(),
		DropBeforeForward:             p.dropBefore.Load(),
		DropAfterForward:              p.dropAfter.Load(),
		UnprocessedKeys:               p.unprocessed.Load(),
	}
}

type fault int

const (
	none fault = iota
	faultPTE
	faultThrottling
	fault500
	faultDropBefore
	faultDropAfter
	faultUnprocessed
)

// draw picks at most one fault for a request of operation op.
func (p *Proxy) draw(op string) (fault, *rand.Rand) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// A child source per request keeps the draws of one request together.
	child := rand.New(rand.NewPCG(p.rnd.Uint64(), p.rnd.Uint64()))
	if !p.enabled.Load() || (len(p.cfg.Operations) > 0 && !slices.Contains(p.cfg.Operations, op)) {
		return none, child
	}
	x := child.Float64()
	for _, f := range []struct {
		p float64
		f fault
	}{
		{p.cfg.ProvisionedThroughputExceeded, faultPTE},
		{p.cfg.Throttling, faultThrottling},
		{p.cfg.ServerError, fault500},
		{p.cfg.DropBeforeForward, faultDropBefore},
		{p.cfg.DropAfterForward, faultDropAfter},
		{p.cfg.UnprocessedKeys, faultUnprocessed},
	} {
		if x < f.p {
			if f.f == faultUnprocessed && op != "BatchGetItem" {
				return none, child
			}
			return f.f, child
		}
		x -= f.p
	}
	return none, child
}

// The error bodies DynamoDB sends (JSON 1.0 protocol).
const (
	pteBody        = `{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API."}`
	throttlingBody = `{"__type":"com.amazon.coral.availability#ThrottlingException","message":"Throughput exceeds the current capacity of your table or index. DynamoDB is automatically scaling your table or index so please try again shortly. If exceptions persist, check if you have a hot key: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html"}`
	serverErrBody  = `{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"Internal server error"}`
)

var requestIDs atomic.Int64

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	op := r.Header.Get("X-Amz-Target")
	if i := strings.LastIndexByte(op, '.'); i >= 0 {
		op = op[i+1:]
	}
	if p.cfg.Latency > 0 {
		time.Sleep(p.cfg.Latency)
	}
	if p.cfg.Intercept != nil {
		p.cfg.Intercept(op, body, false)
	}
	f, rnd := p.draw(op)
	switch f {
	case faultPTE:
		p.pte.Add(1)
		writeError(w, http.StatusBadRequest, pteBody)
		return
	case faultThrottling:
		p.throttle.Add(1)
		writeError(w, http.StatusBadRequest, throttlingBody)
		return
	case fault500:
		p.s500.Add(1)
		writeError(w, http.StatusInternalServerError, serverErrBody)
		return
	case faultDropBefore:
		p.dropBefore.Add(1)
		drop(w)
		return
	}

	up, err := http.NewRequestWithContext(r.Context(), r.Method, p.cfg.Upstream+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	up.Header = r.Header.Clone()
	up.Header.Del("Accept-Encoding") // plain bodies, so they can be rewritten
	resp, err := p.transport.RoundTrip(up)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	respBody, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		drop(w)
		return
	}
	if p.cfg.Intercept != nil {
		p.cfg.Intercept(op, body, true)
	}
	if f == faultDropAfter {
		p.dropAfter.Add(1)
		drop(w)
		return
	}
	if f == faultUnprocessed && resp.StatusCode == http.StatusOK {
		if nb, ok := moveToUnprocessed(body, respBody, rnd); ok {
			p.unprocessed.Add(1)
			respBody = nb
			resp.Header.Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE(respBody)), 10))
		}
	}
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(respBody)))
	w.WriteHeader(resp.StatusCode)
	w.Write(respBody)
}

func writeError(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("X-Amzn-Requestid", fmt.Sprintf("FAULTPROXY%022d", requestIDs.Add(1)))
	w.Header().Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE([]byte(body))), 10))
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// drop closes the client's connection with a reset, answering nothing.
func drop(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("faultproxy: response writer cannot be hijacked")
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}

// moveToUnprocessed rewrites a BatchGetItem response so that a random
// part of the requested keys (at least one) is unprocessed. Items are kept
// as raw JSON, so the rest of the response is byte for byte the server's.
func moveToUnprocessed(reqBody, respBody []byte, rnd *rand.Rand) ([]byte, bool) {
	var req struct {
		RequestItems map[string]map[string]json.RawMessage
	}
	if json.Unmarshal(reqBody, &req) != nil {
		return nil, false
	}
	var resp map[string]json.RawMessage
	if json.Unmarshal(respBody, &resp) != nil {
		return nil, false
	}
	var responses map[string][]json.RawMessage
	if raw, ok := resp["Responses"]; ok && json.Unmarshal(raw, &responses) != nil {
		return nil, false
	}
	unprocessed := map[string]map[string]json.RawMessage{}
	if raw, ok := resp["UnprocessedKeys"]; ok && json.Unmarshal(raw, &unprocessed) != nil {
		return nil, false
	}
	moved := false
	for table, ka := range req.RequestItems {
		var keys []json.RawMessage
		if json.Unmarshal(ka["Keys"], &keys) != nil || len(keys) == 0 {
			continue
		}
		// Keys already unprocessed stay so; pick among the others.
		already := map[string]bool{}
		if u, ok := unprocessed[table]; ok {
			var uk []json.RawMessage
			json.Unmarshal(u["Keys"], &uk)
			for _, k := range uk {
				if enc, _, ok := keyOf(k, nil); ok {
					already[enc] = true
				}
			}
		}
		var pick []json.RawMessage
		pickSet := map[string]bool{}
		var names []string
		for _, k := range keys {
			enc, n, ok := keyOf(k, nil)
			if !ok || already[enc] {
				continue
			}
			names = n
			if rnd.IntN(2) == 0 {
				pick = append(pick, k)
				pickSet[enc] = true
			}
		}
		if len(pick) == 0 {
			for _, k := range keys {
				if enc, _, ok := keyOf(k, nil); ok && !already[enc] {
					pick = append(pick, k)
					pickSet[enc] = true
					break
				}
			}
		}
		if len(pick) == 0 {
			continue
		}
		var kept []json.RawMessage
		for _, item := range responses[table] {
			enc, _, ok := keyOf(item, names)
			if ok && pickSet[enc] {
				continue
			}
			kept = append(kept, item)
		}
		if responses == nil {
			responses = map[string][]json.RawMessage{}
		}
		responses[table] = nonNil(kept)
		u := unprocessed[table]
		if u == nil {
			u = map[string]json.RawMessage{}
			for k, v := range ka {
				u[k] = v
			}
			u["Keys"], _ = json.Marshal(pick)
		} else {
			var uk []json.RawMessage
			json.Unmarshal(u["Keys"], &uk)
			u["Keys"], _ = json.Marshal(append(uk, pick...))
		}
		unprocessed[table] = u
		moved = true
	}
	if !moved {
		return nil, false
	}
	resp["Responses"], _ = json.Marshal(responses)
	resp["UnprocessedKeys"], _ = json.Marshal(unprocessed)
	out, err := json.Marshal(resp)
	if err != nil {
		return nil, false
	}
	return out, true
}

func nonNil(s []json.RawMessage) []json.RawMessage {
	if s == nil {
		return []json.RawMessage{}
	}
	return s
}

// keyOf returns the canonical key of a DynamoDB JSON key or item: of all
// its attributes when names is nil, else of the named ones.
func keyOf(raw json.RawMessage, names []string) (string, []string, bool) {
	item, err := rewind.ParseItem(raw)
	if err != nil {
		return "", nil, false
	}
	var k rewind.Key
	if names == nil {
		k, err = rewind.KeyFromItem(item)
	} else {
		k, err = rewind.KeyFromItemSchema(item, names...)
	}
	if err != nil {
		return "", nil, false
	}
	return string(k.Encode()), k.Names(), true
}
