// Package lambdart runs a Lambda function's bootstrap binary locally behind
// the Lambda Runtime API, so tests exercise the same binary, handler
// registration and serialization that run in AWS.
//
// Start serves the Runtime API (version 2018-06-01) on 127.0.0.1 and starts
// the bootstrap with AWS_LAMBDA_RUNTIME_API pointing at it; Invoke sends
// one event and waits for the function's response. Like a Lambda execution
// environment it runs one invocation at a time, enforces the function
// timeout, and starts the bootstrap again (a cold start) after it crashed,
// timed out or failed to initialize.
package lambdart

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// MaxResponseSize is Lambda's limit on a synchronous response: 6 MB.
const MaxResponseSize = 6 * 1024 * 1024

// Config configures a Runtime.
type Config struct {
	// Bootstrap is the path of the executable to run. Required.
	Bootstrap string
	// Args are passed to the bootstrap.
	Args []string
	// FunctionName is AWS_LAMBDA_FUNCTION_NAME and the end of the function
	// ARN. Default "rewind-test".
	FunctionName string
	// Handler is _HANDLER. Default "bootstrap".
	Handler string
	// Region is AWS_REGION and AWS_DEFAULT_REGION, and the function ARN's
	// region. Default us-east-1.
	Region string
	// MemoryMB is AWS_LAMBDA_FUNCTION_MEMORY_SIZE. Default 128.
	MemoryMB int
	// Timeout is the function timeout: the deadline the function is told
	// of and after which the invocation fails with Sandbox.Timedout and the
	// bootstrap is killed. Default 30s (Lambda's default of 3s is too short
	// for a test machine running -race).
	Timeout time.Duration
	// Env holds KEY=VALUE entries added to the bootstrap's environment
	// after the Lambda variables, so they can override them: endpoints,
	// credentials, the function's own settings.
	//
	// The bootstrap does not inherit this process's environment, as in
	// Lambda; only PATH, TMPDIR and the Go test variables GOCOVERDIR,
	// GORACE and GOTRACEBACK pass through.
	Env []string
	// Output receives the bootstrap's stdout and stderr. Default: kept in
	// memory, see Logs.
	Output io.Writer
}

// FunctionError is an invocation that failed: the function reported an
// error (POST .../error), or the runtime failed it (timeout, crash, init
// error, response too large). Type and Message are the errorType and
// errorMessage Lambda would return.
type FunctionError struct {
	RequestID string
	// Type is the errorType, e.g. "*errors.errorString" from aws-lambda-go,
	// "Runtime.ExitError", "Sandbox.Timedout".
	Type    string
	Message string
	// StackTrace is the stackTrace member as sent, if any.
	StackTrace json.RawMessage
	// Body is the error document the function posted, if any.
	Body []byte
}

func (e *FunctionError) Error() string {
	return fmt.Sprintf("lambda function error %s: %s (request %s)", e.Type, e.Message, e.RequestID)
}

// Runtime is a Lambda Runtime API server with its bootstrap process.
type Runtime struct {
	cfg    Config
	addr   string
	arn    string
	srv    *http.Server
	served chan struct{}
	logs   *lockedBuffer

	invokeMu sync.Mutex // one invocation at a time

	mu       sync.Mutex
	proc     *process
	starts   int
	queued   chan *invocation
	inflight map[string]*invocation
	closed   bool
	done     chan struct{} // closed by Close
}

type invocation struct {
	id       string
	payload  []byte
	deadline time.Time
	// delivered is set once the bootstrap has taken the invocation.
	delivered atomic.Bool
	result    chan result // buffered 1; the first result wins
}

type result struct {
	body []byte
	err  error
}

func (inv *invocation) finish(r result) {
	select {
	case inv.result <- r:
	default:
	}
}

type process struct {
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	// initErr is set when the bootstrap posted /runtime/init/error.
	mu      sync.Mutex
	initErr *FunctionError
}

// Start serves the Runtime API on 127.0.0.1 and starts the bootstrap. The
// caller must Close the Runtime.
func Start(ctx context.Context, cfg Config) (*Runtime, error) {
	if cfg.Bootstrap == "" {
		return nil, errors.New("lambdart: Config.Bootstrap is empty")
	}
	if _, err := os.Stat(cfg.Bootstrap); err != nil {
		return nil, fmt.Errorf("lambdart: bootstrap: %w", err)
	}
	if cfg.FunctionName == "" {
		cfg.FunctionName = "rewind-test"
	}
	if cfg.Handler == "" {
		cfg.Handler = "bootstrap"
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.MemoryMB == 0 {
		cfg.MemoryMB = 128
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("lambdart: listen: %w", err)
	}
	r := &Runtime{
		cfg:      cfg,
		addr:     ln.Addr().String(),
		arn:      fmt.Sprintf("arn:aws:lambda:%s:000000000000:function:%s", cfg.Region, cfg.FunctionName),
		served:   make(chan struct{}),
		logs:     &lockedBuffer{},
		queued:   make(chan *invocation, 1),
		inflight: map[string]*invocation{},
		done:     make(chan struct{}),
	}
	if r.cfg.Output == nil {
		r.cfg.Output = r.logs
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", r.handleNext)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", r.handleResponse)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", r.handleError)
	mux.HandleFunc("POST /2018-06-01/runtime/init/error", r.handleInitError)
	r.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 30 * time.Second}
	go func() {
		defer close(r.served)
		_ = r.srv.Serve(ln)
	}()

	r.mu.Lock()
	_, err = r.startProcessLocked()
	r.mu.Unlock()
	if err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// Addr is the Runtime API address, the value of AWS_LAMBDA_RUNTIME_API.
func (r *Runtime) Addr() string { return r.addr }

// FunctionARN is the function ARN the function is told it was invoked as.
func (r *Runtime) FunctionARN() string { return r.arn }

// Logs returns what the bootstrap wrote so far, when Config.Output is not
// set.
func (r *Runtime) Logs() string { return r.logs.String() }

// Starts returns how many times the bootstrap was started: 1, plus one per
// restart after a crash, timeout or cancelled invocation.
func (r *Runtime) Starts() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.starts
}

// Pid returns the process id of the running bootstrap, or 0 when none
// runs. Benchmarks read its peak memory from /proc.
func (r *Runtime) Pid() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc == nil || r.proc.cmd.Process == nil {
		return 0
	}
	return r.proc.cmd.Process.Pid
}

// Close stops the bootstrap and the server.
func (r *Runtime) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	close(r.done)
	p := r.proc
	r.mu.Unlock()
	if p != nil {
		p.kill()
	}
	err := r.srv.Close()
	<-r.served
	return err
}

// startProcessLocked starts the bootstrap; r.mu is held.
func (r *Runtime) startProcessLocked() (*process, error) {
	dir := filepath.Dir(r.cfg.Bootstrap)
	env := []string{
		"TZ=:UTC",
		"LANG=en_US.UTF-8",
		"LAMBDA_TASK_ROOT=" + dir,
		"LAMBDA_RUNTIME_DIR=" + dir,
		"AWS_LAMBDA_RUNTIME_API=" + r.addr,
		"AWS_LAMBDA_FUNCTION_NAME=" + r.cfg.FunctionName,
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=" + strconv.Itoa(r.cfg.MemoryMB),
		"AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/" + r.cfg.FunctionName,
		"AWS_LAMBDA_LOG_STREAM_NAME=" + time.Now().UTC().Format("2006/01/02") + "/[$LATEST]" + randomHex(16),
		"AWS_LAMBDA_INITIALIZATION_TYPE=on-demand",
		"AWS_EXECUTION_ENV=AWS_Lambda_provided.al2023",
		"AWS_REGION=" + r.cfg.Region,
		"AWS_DEFAULT_REGION=" + r.cfg.Region,
		"_HANDLER=" + r.cfg.Handler,
	}
	for _, k := range []string{"PATH", "TMPDIR", "GOCOVERDIR", "GORACE", "GOTRACEBACK"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	env = append(env, r.cfg.Env...)

	cmd := exec.Command(r.cfg.Bootstrap, r.cfg.Args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout = r.cfg.Output
	cmd.Stderr = r.cfg.Output
	setProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("lambdart: start %s: %w", r.cfg.Bootstrap, err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	r.proc = p
	r.starts++
	return p, nil
}

func (p *process) kill() {
	killProcessGroup(p.cmd)
	<-p.exited
}

func (p *process) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Invoke sends payload to the function and returns its response. A
// function error, timeout or crash returns a *FunctionError; the next
// Invoke then starts the bootstrap again if it exited. Cancelling ctx
// abandons the invocation and kills the bootstrap.
func (r *Runtime) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	r.invokeMu.Lock()
	defer r.invokeMu.Unlock()

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, errors.New("lambdart: Invoke after Close")
	}
	p := r.proc
	if p == nil || !p.running() {
		var err error
		if p, err = r.startProcessLocked(); err != nil {
			r.mu.Unlock()
			return nil, err
		}
	}
	inv := &invocation{
		id:       newRequestID(),
		payload:  payload,
		deadline: time.Now().Add(r.cfg.Timeout),
		result:   make(chan result, 1),
	}
	r.inflight[inv.id] = inv
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.inflight, inv.id)
		r.mu.Unlock()
		// Take the invocation back if the bootstrap never asked for it.
		select {
		case <-r.queued:
		default:
		}
	}()
	r.queued <- inv

	timer := time.NewTimer(time.Until(inv.deadline))
	defer timer.Stop()
	restarted := false
	for {
		select {
		case res := <-inv.result:
			return res.body, res.err
		case <-p.exited:
			// A response posted just before exiting still counts.
			select {
			case res := <-inv.result:
				return res.body, res.err
			default:
			}
			p.mu.Lock()
			initErr := p.initErr
			p.mu.Unlock()
			if initErr != nil {
				e := *initErr
				e.RequestID = inv.id
				return nil, &e
			}
			if !inv.delivered.Load() && !restarted {
				// The bootstrap exited before it took the invocation,
				// typically on its way out after the previous one
				// panicked: Lambda would run this one in a fresh
				// environment, so start one.
				r.mu.Lock()
				var err error
				if r.closed {
					err = errors.New("lambdart: runtime closed during the invocation")
				} else {
					p, err = r.startProcessLocked()
				}
				r.mu.Unlock()
				if err != nil {
					return nil, err
				}
				restarted = true
				continue
			}
			return nil, &FunctionError{
				RequestID: inv.id,
				Type:      "Runtime.ExitError",
				Message:   fmt.Sprintf("RequestId: %s Error: Runtime exited with error: %v", inv.id, exitStatus(p.waitErr)),
			}
		case <-timer.C:
			p.kill()
			return nil, &FunctionError{
				RequestID: inv.id,
				Type:      "Sandbox.Timedout",
				Message:   fmt.Sprintf("RequestId: %s Error: Task timed out after %.2f seconds", inv.id, r.cfg.Timeout.Seconds()),
			}
		case <-ctx.Done():
			p.kill()
			return nil, ctx.Err()
		case <-r.done:
			return nil, errors.New("lambdart: runtime closed during the invocation")
		}
	}
}

func exitStatus(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// handleNext hands the bootstrap the next invocation, waiting for one.
func (r *Runtime) handleNext(w http.ResponseWriter, req *http.Request) {
	var inv *invocation
	select {
	case inv = <-r.queued:
	case <-req.Context().Done():
		return
	case <-r.done:
		http.Error(w, "runtime closed", http.StatusGone)
		return
	}
	inv.delivered.Store(true)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Lambda-Runtime-Aws-Request-Id", inv.id)
	h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(inv.deadline.UnixMilli(), 10))
	h.Set("Lambda-Runtime-Invoked-Function-Arn", r.arn)
	h.Set("Lambda-Runtime-Trace-Id", traceID())
	w.WriteHeader(http.StatusOK)
	w.Write(inv.payload)
}

// lookup returns the in-flight invocation named in the path, or answers 400
// as Lambda does for an unknown request id.
func (r *Runtime) lookup(w http.ResponseWriter, req *http.Request) *invocation {
	id := req.PathValue("id")
	r.mu.Lock()
	inv := r.inflight[id]
	r.mu.Unlock()
	if inv == nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{
			"errorMessage": "Invalid request ID: " + id,
			"errorType":    "InvalidRequestID",
		})
	}
	return inv
}

func (r *Runtime) handleResponse(w http.ResponseWriter, req *http.Request) {
	inv := r.lookup(w, req)
	if inv == nil {
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, MaxResponseSize+1))
	if err != nil {
		inv.finish(result{err: &FunctionError{RequestID: inv.id, Type: "Runtime.ResponseError", Message: err.Error()}})
		writeJSON(w, http.StatusBadRequest, map[string]string{"errorMessage": err.Error(), "errorType": "InvalidRequest"})
		return
	}
	if len(body) > MaxResponseSize {
		msg := fmt.Sprintf("Response payload size exceeded maximum allowed payload size (%d bytes).", MaxResponseSize)
		inv.finish(result{err: &FunctionError{RequestID: inv.id, Type: "Function.ResponseSizeTooLarge", Message: msg}})
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"errorMessage": msg, "errorType": "RequestEntityTooLarge"})
		return
	}
	// aws-lambda-go reports an error met while streaming the response in
	// trailers.
	if typ := req.Trailer.Get("Lambda-Runtime-Function-Error-Type"); typ != "" {
		fe := &FunctionError{RequestID: inv.id, Type: typ}
		if b, err := base64.StdEncoding.DecodeString(req.Trailer.Get("Lambda-Runtime-Function-Error-Body")); err == nil {
			fe.Body = b
			fillFromErrorDoc(fe, b)
		}
		inv.finish(result{err: fe})
	} else {
		inv.finish(result{body: body})
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "OK"})
}

func (r *Runtime) handleError(w http.ResponseWriter, req *http.Request) {
	inv := r.lookup(w, req)
	if inv == nil {
		return
	}
	body, _ := io.ReadAll(io.LimitReader(req.Body, MaxResponseSize))
	fe := &FunctionError{RequestID: inv.id, Body: body}
	fillFromErrorDoc(fe, body)
	if fe.Type == "" {
		fe.Type = req.Header.Get("Lambda-Runtime-Function-Error-Type")
	}
	if fe.Type == "" {
		fe.Type = "Unhandled"
	}
	inv.finish(result{err: fe})
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "OK"})
}

func (r *Runtime) handleInitError(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, MaxResponseSize))
	fe := &FunctionError{Body: body}
	fillFromErrorDoc(fe, body)
	if fe.Type == "" {
		fe.Type = req.Header.Get("Lambda-Runtime-Function-Error-Type")
	}
	if fe.Type == "" {
		fe.Type = "Runtime.InitError"
	}
	r.mu.Lock()
	p := r.proc
	r.mu.Unlock()
	if p != nil {
		p.mu.Lock()
		p.initErr = fe
		p.mu.Unlock()
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "OK"})
	// Lambda stops an environment whose init failed.
	if p != nil {
		go p.kill()
	}
}

// fillFromErrorDoc reads {"errorMessage","errorType","stackTrace"}.
func fillFromErrorDoc(fe *FunctionError, body []byte) {
	var doc struct {
		Message    string          `json:"errorMessage"`
		Type       string          `json:"errorType"`
		StackTrace json.RawMessage `json:"stackTrace"`
	}
	if json.Unmarshal(body, &doc) == nil {
		fe.Message, fe.Type, fe.StackTrace = doc.Message, doc.Type, doc.StackTrace
	}
	if fe.Message == "" {
		fe.Message = string(body)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// traceID returns an X-Ray trace header like Lambda's.
func traceID() string {
	return fmt.Sprintf("Root=1-%08x-%s;Parent=%s;Sampled=0", time.Now().Unix(), randomHex(12), randomHex(8))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
