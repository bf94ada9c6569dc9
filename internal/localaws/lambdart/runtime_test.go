package lambdart_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ddbrewind/rewind/internal/localaws/lambdart"
	"github.com/ddbrewind/rewind/internal/localaws/streampoller"
)

var _ streampoller.Invoker = (*lambdart.Runtime)(nil)

var echoBuild struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if echoBuild.dir != "" {
		os.RemoveAll(echoBuild.dir)
	}
	os.Exit(code)
}

// echoBootstrap builds ../testdata/echo once per test binary.
func echoBootstrap(t *testing.T) string {
	t.Helper()
	echoBuild.once.Do(func() {
		goBin, err := exec.LookPath("go")
		if err != nil {
			echoBuild.err = err
			return
		}
		echoBuild.dir, err = os.MkdirTemp("", "lambdart-test-")
		if err != nil {
			echoBuild.err = err
			return
		}
		echoBuild.path = filepath.Join(echoBuild.dir, "bootstrap")
		cmd := exec.Command(goBin, "build", "-o", echoBuild.path, "../testdata/echo")
		cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			echoBuild.err = errors.New(string(out))
		}
	})
	if echoBuild.err != nil {
		t.Fatalf("building the echo bootstrap: %v", echoBuild.err)
	}
	return echoBuild.path
}

type echoResponse struct {
	Echo        json.RawMessage   `json:"echo"`
	RequestID   string            `json:"requestId"`
	FunctionARN string            `json:"functionArn"`
	DeadlineMS  int64             `json:"deadlineMs"`
	Env         map[string]string `json:"env"`
	PID         int               `json:"pid"`
	Big         string            `json:"big"`
}

func start(t *testing.T, cfg lambdart.Config) *lambdart.Runtime {
	t.Helper()
	cfg.Bootstrap = echoBootstrap(t)
	rt, err := lambdart.Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		rt.Close()
		if t.Failed() {
			t.Logf("bootstrap output:\n%s", rt.Logs())
		}
	})
	return rt
}

func invokeEcho(t *testing.T, rt *lambdart.Runtime, payload string) echoResponse {
	t.Helper()
	out, err := rt.Invoke(t.Context(), []byte(payload))
	if err != nil {
		t.Fatalf("Invoke(%s): %v", payload, err)
	}
	var resp echoResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("response %s: %v", out, err)
	}
	return resp
}

func TestInvokeEcho(t *testing.T) {
	rt := start(t, lambdart.Config{FunctionName: "echo-fn", Handler: "echo.handler", Env: []string{"ECHO_EXTRA=42"}, Timeout: 10 * time.Second})

	before := time.Now()
	first := invokeEcho(t, rt, `{"hello":"world"}`)
	if string(first.Echo) != `{"hello":"world"}` {
		t.Errorf("echo %s", first.Echo)
	}
	if first.FunctionARN != rt.FunctionARN() || !strings.HasSuffix(first.FunctionARN, ":function:echo-fn") {
		t.Errorf("function ARN %q, runtime says %q", first.FunctionARN, rt.FunctionARN())
	}
	if first.RequestID == "" {
		t.Error("no request id")
	}
	deadline := time.UnixMilli(first.DeadlineMS)
	if deadline.Before(before.Add(9*time.Second)) || deadline.After(time.Now().Add(10*time.Second)) {
		t.Errorf("deadline %v is not about 10s after the invocation", deadline)
	}
	for k, want := range map[string]string{
		"AWS_LAMBDA_FUNCTION_NAME": "echo-fn",
		"_HANDLER":                 "echo.handler",
		"AWS_REGION":               "us-east-1",
		"ECHO_EXTRA":               "42",
	} {
		if got := first.Env[k]; got != want {
			t.Errorf("env %s=%q, want %q", k, got, want)
		}
	}
	if _, ok := first.Env["HOME"]; ok {
		t.Error("HOME leaked into the function's environment")
	}

	// A warm environment: same process, new request id.
	second := invokeEcho(t, rt, `[1,2,3]`)
	if second.PID != first.PID || second.RequestID == first.RequestID || rt.Starts() != 1 {
		t.Errorf("second invocation: pid %d (first %d), request %s (first %s), starts %d",
			second.PID, first.PID, second.RequestID, first.RequestID, rt.Starts())
	}
}

func TestInvokeErrors(t *testing.T) {
	rt := start(t, lambdart.Config{Timeout: 2 * time.Second})
	ctx := t.Context()

	_, err := rt.Invoke(ctx, []byte(`{"error":"bad record"}`))
	var fe *lambdart.FunctionError
	if !errors.As(err, &fe) || fe.Message != "bad record" || fe.Type != "errorString" {
		t.Fatalf("function error: got %#v", err)
	}
	if fe.RequestID == "" {
		t.Error("function error without request id")
	}
	// The environment survives a returned error.
	pid := invokeEcho(t, rt, `{}`).PID

	// aws-lambda-go reports a panic, then exits.
	_, err = rt.Invoke(ctx, []byte(`{"panic":"oops"}`))
	if !errors.As(err, &fe) || fe.Message != "oops" {
		t.Fatalf("panic: got %#v", err)
	}
	if got := invokeEcho(t, rt, `{}`); got.PID == pid || rt.Starts() != 2 {
		t.Errorf("after a panic: pid %d (before %d), starts %d; want a cold start", got.PID, pid, rt.Starts())
	}

	_, err = rt.Invoke(ctx, []byte(`{"exit":3}`))
	if !errors.As(err, &fe) || fe.Type != "Runtime.ExitError" || !strings.Contains(fe.Message, "exit status 3") {
		t.Fatalf("exit: got %#v", err)
	}

	start := time.Now()
	_, err = rt.Invoke(ctx, []byte(`{"sleepMs":10000}`))
	if !errors.As(err, &fe) || fe.Type != "Sandbox.Timedout" || !strings.Contains(fe.Message, "Task timed out after 2.00 seconds") {
		t.Fatalf("timeout: got %#v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("timeout took %v", d)
	}

	_, err = rt.Invoke(ctx, []byte(`{"big":7000000}`))
	if !errors.As(err, &fe) || fe.Type != "Function.ResponseSizeTooLarge" {
		t.Fatalf("big response: got %#v", err)
	}

	// Still usable after all that.
	if got := invokeEcho(t, rt, `{"ok":true}`); string(got.Echo) != `{"ok":true}` {
		t.Errorf("final echo %s", got.Echo)
	}
}

func TestInvokeCancelled(t *testing.T) {
	rt := start(t, lambdart.Config{})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if _, err := rt.Invoke(ctx, []byte(`{"sleepMs":5000}`)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want context.DeadlineExceeded", err)
	}
	invokeEcho(t, rt, `{}`)
}

func TestInitError(t *testing.T) {
	rt := start(t, lambdart.Config{Env: []string{"ECHO_INIT_ERROR=no config"}})
	_, err := rt.Invoke(t.Context(), []byte(`{}`))
	var fe *lambdart.FunctionError
	if !errors.As(err, &fe) || fe.Type != "Echo.InitError" || fe.Message != "no config" {
		t.Fatalf("got %#v, want the init error", err)
	}
}

func TestStartRequiresBootstrap(t *testing.T) {
	if _, err := lambdart.Start(t.Context(), lambdart.Config{Bootstrap: filepath.Join(t.TempDir(), "missing")}); err == nil {
		t.Fatal("Start with a missing bootstrap succeeded")
	}
}
