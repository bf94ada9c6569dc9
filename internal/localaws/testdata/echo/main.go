// Command echo is a Lambda function for testing lambdart: it answers with
// what it was sent and what it was told about the invocation, or fails in
// the way the event asks for.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

type request struct {
	Error   string `json:"error"`   // return this error
	Panic   string `json:"panic"`   // panic with this value
	Exit    int    `json:"exit"`    // os.Exit with this code
	SleepMS int    `json:"sleepMs"` // sleep first
	Big     int    `json:"big"`     // answer a string of this many bytes
}

type response struct {
	Echo        json.RawMessage   `json:"echo"`
	RequestID   string            `json:"requestId"`
	FunctionARN string            `json:"functionArn"`
	DeadlineMS  int64             `json:"deadlineMs"`
	Env         map[string]string `json:"env"`
	PID         int               `json:"pid"`
	Big         string            `json:"big,omitempty"`
}

func handle(ctx context.Context, raw json.RawMessage) (*response, error) {
	var req request
	_ = json.Unmarshal(raw, &req)
	if req.SleepMS > 0 {
		time.Sleep(time.Duration(req.SleepMS) * time.Millisecond)
	}
	switch {
	case req.Error != "":
		return nil, errors.New(req.Error)
	case req.Panic != "":
		panic(req.Panic)
	case req.Exit != 0:
		os.Exit(req.Exit)
	}
	lc, _ := lambdacontext.FromContext(ctx)
	deadline, _ := ctx.Deadline()
	resp := &response{
		Echo:        raw,
		RequestID:   lc.AwsRequestID,
		FunctionARN: lc.InvokedFunctionArn,
		DeadlineMS:  deadline.UnixMilli(),
		Env:         map[string]string{},
		PID:         os.Getpid(),
	}
	for _, k := range []string{"AWS_LAMBDA_FUNCTION_NAME", "_HANDLER", "AWS_REGION", "ECHO_EXTRA", "HOME"} {
		if v, ok := os.LookupEnv(k); ok {
			resp.Env[k] = v
		}
	}
	if req.Big > 0 {
		resp.Big = strings.Repeat("x", req.Big)
	}
	return resp, nil
}

func main() {
	if msg := os.Getenv("ECHO_INIT_ERROR"); msg != "" {
		// What a custom runtime does when its initialization fails.
		body := `{"errorMessage":"` + msg + `","errorType":"Echo.InitError"}`
		resp, err := http.Post("http://"+os.Getenv("AWS_LAMBDA_RUNTIME_API")+"/2018-06-01/runtime/init/error",
			"application/json", strings.NewReader(body))
		if err == nil {
			resp.Body.Close()
		}
		os.Exit(1)
	}
	lambda.Start(handle)
}
