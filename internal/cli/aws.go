package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/ddbrewind/rewind/recover/patch"
)

// loadAWS returns the AWS configuration the commands use. With env.AWS
// set it is built from that alone (see AWS); otherwise it is loaded the
// usual way (environment, shared files, instance role), honouring
// AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE>. Either way the HTTP
// client is built with awshttp.NewBuildableClient so AWS_CA_BUNDLE
// applies, and the REWIND_* bounds come from env.Getenv.
//
// Every client built from the configuration is time-bounded (see
// awsTimeouts): an endpoint that accepts a connection and never answers
// makes a call fail with an error naming the endpoint and the bound, never
// wait forever.
func loadAWS(ctx context.Context, env *Env) (aws.Config, error) {
	to, err := awsTimeoutsFromEnv(env.Getenv)
	if err != nil {
		return aws.Config{}, err
	}
	var cfg aws.Config
	if env.AWS != nil {
		if cfg, err = env.AWS.config(to.httpClient()); err != nil {
			return aws.Config{}, err
		}
	} else if cfg, err = config.LoadDefaultConfig(ctx, config.WithHTTPClient(to.httpClient())); err != nil {
		return aws.Config{}, fmt.Errorf("load AWS configuration: %w", err)
	}
	cfg.APIOptions = append(cfg.APIOptions, to.addMiddleware)
	return cfg, nil
}

// AWS is an AWS configuration given to the commands whole, in place of
// the SDK's default chain: the local drill uses it to point the runbook's
// commands at its stand-ins without touching the process environment.
type AWS struct {
	// Endpoints maps an SDK service ID ("DynamoDB", "DynamoDB Streams",
	// "S3", "SSM", "IAM", "STS") to the base URL its clients call. A
	// service not named uses its AWS endpoint for Region.
	Endpoints map[string]string
	// Region is the AWS region. Required.
	Region string
	// Credentials signs every request. Required.
	Credentials aws.CredentialsProvider
	// S3PathStyle addresses S3 path-style (http://host/bucket/key), as
	// local S3 servers need; REWIND_S3_PATH_STYLE=true does the same.
	S3PathStyle bool
}

// config builds the aws.Config. The per-service endpoints reach each
// client the way AWS_ENDPOINT_URL_<SERVICE> does, as a configuration
// source the clients ask for their service's base endpoint ("Service-
// specific endpoints" in the SDK's configuration guide): each service's
// NewFromConfig looks up its own SDK ID in cfg.ConfigSources.
func (a *AWS) config(httpClient aws.HTTPClient) (aws.Config, error) {
	if a.Region == "" || a.Credentials == nil {
		return aws.Config{}, errors.New("AWS configuration given to the command has no region or no credentials (Env.AWS: set Region and Credentials)")
	}
	// The clients skip configuration sources when the process has
	// AWS_ENDPOINT_URL without AWS_ENDPOINT_URL_<SERVICE>: they would
	// then call AWS itself rather than the endpoints given here.
	if _, ok := os.LookupEnv("AWS_ENDPOINT_URL"); ok {
		return aws.Config{}, errors.New("AWS_ENDPOINT_URL is set in the environment, which makes the SDK ignore the endpoints given to the command (Env.AWS): unset AWS_ENDPOINT_URL")
	}
	return aws.Config{
		Region:        a.Region,
		Credentials:   a.Credentials,
		HTTPClient:    httpClient,
		ConfigSources: []any{serviceEndpoints(a.Endpoints)},
	}, nil
}

// serviceEndpoints is a configuration source of per-service base
// endpoints, keyed by SDK service ID.
type serviceEndpoints map[string]string

// GetServiceBaseEndpoint returns the endpoint for the service sdkID, as
// the SDK's environment and shared-config sources do.
func (e serviceEndpoints) GetServiceBaseEndpoint(_ context.Context, sdkID string) (string, bool, error) {
	url, ok := e[sdkID]
	return url, ok && url != "", nil
}

// awsTimeouts bound every AWS call the CLI makes. Each is set through the
// environment variable named in its comment, as a Go duration (500ms, 30s,
// 2m); the zero value of a field means its default.
type awsTimeouts struct {
	// Connect bounds opening a TCP connection
	// (REWIND_AWS_CONNECT_TIMEOUT). Default 5s.
	Connect time.Duration
	// TLSHandshake bounds the TLS handshake of a new connection
	// (REWIND_AWS_TLS_TIMEOUT). Default 10s.
	TLSHandshake time.Duration
	// ResponseHeader bounds the wait for a response's headers once the
	// request is sent (REWIND_AWS_HEADER_TIMEOUT). Default 30s. It does
	// not bound reading the body.
	ResponseHeader time.Duration
	// Attempt bounds one attempt of a call, from sending the request to
	// the end of reading and decoding the response
	// (REWIND_AWS_ATTEMPT_TIMEOUT). A timed-out attempt is retried like a
	// dropped connection, within the call's attempts. Default 60s: room
	// for a 16 MB BatchGetItem response on a slow link.
	Attempt time.Duration
	// Call bounds one call, every attempt and backoff included
	// (REWIND_AWS_CALL_TIMEOUT). Default 3m.
	Call time.Duration
	// ReadIdle fails a read from a connection on which nothing has
	// arrived for this long (REWIND_AWS_READ_IDLE_TIMEOUT). Default 60s.
	// It is the bound on streamed bodies (S3 GetObject of a large Parquet
	// object), which Attempt and Call leave alone: a download may take as
	// long as it needs while bytes keep coming.
	ReadIdle time.Duration
}

// awsTimeoutVars names the environment variable of each bound.
var awsTimeoutVars = []struct {
	name  string
	field func(*awsTimeouts) *time.Duration
}{
	{"REWIND_AWS_CONNECT_TIMEOUT", func(t *awsTimeouts) *time.Duration { return &t.Connect }},
	{"REWIND_AWS_TLS_TIMEOUT", func(t *awsTimeouts) *time.Duration { return &t.TLSHandshake }},
	{"REWIND_AWS_HEADER_TIMEOUT", func(t *awsTimeouts) *time.Duration { return &t.ResponseHeader }},
	{"REWIND_AWS_ATTEMPT_TIMEOUT", func(t *awsTimeouts) *time.Duration { return &t.Attempt }},
	{"REWIND_AWS_CALL_TIMEOUT", func(t *awsTimeouts) *time.Duration { return &t.Call }},
	{"REWIND_AWS_READ_IDLE_TIMEOUT", func(t *awsTimeouts) *time.Duration { return &t.ReadIdle }},
}

func (t *awsTimeouts) ensureDefaults() {
	for _, d := range []struct {
		f *time.Duration
		v time.Duration
	}{
		{&t.Connect, 5 * time.Second},
		{&t.TLSHandshake, 10 * time.Second},
		{&t.ResponseHeader, 30 * time.Second},
		{&t.Attempt, 60 * time.Second},
		{&t.Call, 3 * time.Minute},
		{&t.ReadIdle, 60 * time.Second},
	} {
		if *d.f == 0 {
			*d.f = d.v
		}
	}
}

// awsTimeoutsFromEnv reads the bounds from the environment and defaults
// the rest.
func awsTimeoutsFromEnv(getenv func(string) string) (awsTimeouts, error) {
	var t awsTimeouts
	for _, v := range awsTimeoutVars {
		s := getenv(v.name)
		if s == "" {
			continue
		}
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return awsTimeouts{}, usagef("%s=%q: want a positive duration such as 500ms, 30s or 2m", v.name, s)
		}
		*v.field(&t) = d
	}
	t.ensureDefaults()
	return t, nil
}

// httpClient returns the SDK's HTTP client with the connect, TLS,
// response-header and read-idle bounds. The read-idle bound is the SDK's
// own (WithReadTimeout), which restarts its clock at each read only, so a
// pooled connection must not idle for long before it carries a request:
// idle connections are closed after half of it.
func (t awsTimeouts) httpClient() *awshttp.BuildableClient {
	return awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = t.Connect }).
		WithTransportOptions(func(tr *http.Transport) {
			tr.TLSHandshakeTimeout = t.TLSHandshake
			tr.ResponseHeaderTimeout = t.ResponseHeader
			tr.IdleConnTimeout = min(tr.IdleConnTimeout, t.ReadIdle/2)
		}).
		WithReadTimeout(t.ReadIdle)
}

// streamsBody reports whether an operation's response body is read by the
// caller after the call returns, so that no deadline may end with the call.
func streamsBody(service, op string) bool {
	return service == "S3" && op == "GetObject"
}

// addMiddleware puts the per-call deadline in front of the retry loop and
// the per-attempt deadline inside it, on every operation whose response
// the SDK reads in full before returning.
func (t awsTimeouts) addMiddleware(stack *middleware.Stack) error {
	if err := stack.Initialize.Add(middleware.InitializeMiddlewareFunc("RewindCallDeadline", t.callDeadline), middleware.Before); err != nil {
		return err
	}
	// Last in Finalize: inside the retry loop, after signing, around
	// sending the request and decoding the response.
	return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("RewindAttemptDeadline", t.attemptDeadline), middleware.After)
}

// callEndpoint is where the attempts of a call record the endpoint they
// sent to, for the call's timeout error.
type callEndpoint struct{ url string }

type callEndpointKey struct{}

func (t awsTimeouts) callDeadline(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	service, op := awsmiddleware.GetServiceID(ctx), awsmiddleware.GetOperationName(ctx)
	if streamsBody(service, op) {
		return next.HandleInitialize(ctx, in)
	}
	ep := &callEndpoint{}
	cctx, cancel := context.WithTimeout(context.WithValue(ctx, callEndpointKey{}, ep), t.Call)
	defer cancel()
	out, md, err := next.HandleInitialize(cctx, in)
	if err != nil && ctx.Err() == nil && errors.Is(cctx.Err(), context.DeadlineExceeded) {
		err = &timeoutError{service: service, op: op, endpoint: ep.url, what: "the deadline of one call, retries included",
			limit: t.Call, setting: "REWIND_AWS_CALL_TIMEOUT", err: err}
	}
	return out, md, err
}

func (t awsTimeouts) attemptDeadline(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
	service, op := awsmiddleware.GetServiceID(ctx), awsmiddleware.GetOperationName(ctx)
	if streamsBody(service, op) {
		return next.HandleFinalize(ctx, in)
	}
	endpoint := ""
	if req, ok := in.Request.(*smithyhttp.Request); ok && req.URL != nil {
		endpoint = req.URL.Scheme + "://" + req.URL.Host
		if ep, ok := ctx.Value(callEndpointKey{}).(*callEndpoint); ok {
			ep.url = endpoint
		}
	}
	actx, cancel := context.WithTimeout(ctx, t.Attempt)
	defer cancel()
	out, md, err := next.HandleFinalize(actx, in)
	if err == nil {
		return out, md, nil
	}
	switch {
	case ctx.Err() == nil && errors.Is(actx.Err(), context.DeadlineExceeded):
		// The SDK reports the attempt's own deadline as a cancellation,
		// which it never retries; this error is retried instead. It does
		// not wrap the cancellation, or the retryer would still see it.
		err = &timeoutError{service: service, op: op, endpoint: endpoint, what: "the deadline of one attempt",
			limit: t.Attempt, setting: "REWIND_AWS_ATTEMPT_TIMEOUT", retryable: true, cause: err.Error()}
	case strings.Contains(err.Error(), "timeout awaiting response headers"):
		err = &timeoutError{service: service, op: op, endpoint: endpoint, what: "the response-header timeout",
			limit: t.ResponseHeader, setting: "REWIND_AWS_HEADER_TIMEOUT", err: err}
	case strings.Contains(err.Error(), "TLS handshake timeout"):
		err = &timeoutError{service: service, op: op, endpoint: endpoint, what: "the TLS handshake timeout",
			limit: t.TLSHandshake, setting: "REWIND_AWS_TLS_TIMEOUT", err: err}
	case isDialTimeout(err):
		err = &timeoutError{service: service, op: op, endpoint: endpoint, what: "the connect timeout",
			limit: t.Connect, setting: "REWIND_AWS_CONNECT_TIMEOUT", err: err}
	case isReadTimeout(err):
		err = &timeoutError{service: service, op: op, endpoint: endpoint, what: "the read-idle timeout",
			limit: t.ReadIdle, setting: "REWIND_AWS_READ_IDLE_TIMEOUT", err: err}
	}
	return out, md, err
}

func isDialTimeout(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial" && op.Timeout()
}

func isReadTimeout(err error) bool {
	var rt *awshttp.ResponseTimeoutError
	return errors.As(err, &rt)
}

// timeoutError is a call or attempt cut by one of the bounds. Its message
// names the endpoint, the bound and the setting that changes it.
type timeoutError struct {
	service, op, endpoint string
	what                  string
	limit                 time.Duration
	setting               string
	// retryable marks an attempt's own deadline, which the SDK would not
	// retry on its own; cause is the SDK's message for it.
	retryable bool
	cause     string
	err       error
}

func (e *timeoutError) Error() string {
	where := ""
	if e.endpoint != "" {
		where = " at " + e.endpoint
	}
	msg := fmt.Sprintf("%s %s%s: no answer within %s (%s; set %s to change it)", e.service, e.op, where, e.limit, e.what, e.setting)
	switch {
	case e.err != nil:
		msg += ": " + e.err.Error()
	case e.cause != "":
		msg += ": " + e.cause
	}
	return msg
}

func (e *timeoutError) Unwrap() error { return e.err }

// Timeout reports true, as net errors do for timeouts.
func (e *timeoutError) Timeout() bool { return true }

// RetryableError tells the SDK's retryer to retry a timed-out attempt;
// for the other bounds the wrapped error decides, as it would unwrapped.
func (e *timeoutError) RetryableError() bool {
	if e.retryable {
		return true
	}
	return retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(e.err).Bool()
}

// NewPatchClient returns the DynamoDB client that patch, verify and undo
// use with the engine options o: the usual AWS configuration (loadAWS),
// with an HTTP connection pool that keeps a connection for every call the
// engine may have in flight (see patchConnections). bench/patch builds its
// client here, so that what it measures is what the command runs. The
// engine sets its own retry policy on each call.
func NewPatchClient(ctx context.Context, env *Env, o patch.Options) (*dynamodb.Client, error) {
	cfg, err := loadAWS(ctx, env)
	if err != nil {
		return nil, err
	}
	keepConnections(&cfg, patchConnections(o))
	return dynamodb.NewFromConfig(cfg, patchClientOptions), nil
}

// patchClientOptions turns off what the SDK does on every DynamoDB call
// that the patch client does not need, since the patcher makes thousands
// of calls a second and its CPU per call is what caps it:
//
//   - DisableValidateResponseChecksum: the SDK computes the CRC32 of every
//     response body and compares it with DynamoDB's X-Amz-Crc32 header
//     (the client's "response checksum validation", on by default). The
//     patch client talks to DynamoDB over HTTPS, whose TLS record layer
//     already authenticates every byte of the response, so the CRC guards
//     against nothing TLS lets through; and what the patcher decides from
//     a response is checked again anyway: a write is conditional on the
//     planned pre-image and its ALL_OLD return value is compared with it,
//     and verify re-reads every key.
//
// The retryer's client-side rate limiter (its retry token bucket) is off
// too, on each call, in recover/patch (NewRetryer: ratelimit.None):
// retries still happen, paced by the engine's own adaptive limiter.
func patchClientOptions(o *dynamodb.Options) {
	o.DisableValidateResponseChecksum = true
}

// patchConnections is the most DynamoDB calls the engine has in flight at
// once with options o: up to Concurrency writes (the cap of the adaptive
// limit) while Readers planners read two BatchGetItem each, and a few to
// spare (DescribeTable, a revert).
func patchConnections(o patch.Options) int {
	o.EnsureDefaults()
	return o.Concurrency + 2*o.Readers + 8
}

// keepConnections sizes the idle pool of cfg's HTTP client for n requests
// in flight to one host. The SDK's transport keeps 10 idle connections per
// host and 100 in all (awshttp.DefaultHTTPTransportMaxIdleConnsPerHost,
// ...MaxIdleConns): past that, every connection a finished request hands
// back is closed, and the next request opens another (a TCP and, on AWS, a
// TLS handshake each). Both bounds are raised to n; MaxConnsPerHost (2048)
// does not limit it.
func keepConnections(cfg *aws.Config, n int) {
	bc, ok := cfg.HTTPClient.(*awshttp.BuildableClient)
	if !ok {
		return
	}
	cfg.HTTPClient = bc.WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConnsPerHost = max(t.MaxIdleConnsPerHost, n)
		t.MaxIdleConns = max(t.MaxIdleConns, n)
	})
}

// s3PathStyle reports whether S3 must be addressed path-style
// (Env.AWS.S3PathStyle or REWIND_S3_PATH_STYLE=true), as local S3 servers
// need.
func s3PathStyle(env *Env) bool {
	if env.AWS != nil && env.AWS.S3PathStyle {
		return true
	}
	b, _ := strconv.ParseBool(env.Getenv("REWIND_S3_PATH_STYLE"))
	return b
}

// newS3 returns an S3 client for cfg. Objects without a stored checksum
// (every capture object, which is written in one PutObject) are read
// without the SDK's note about skipping validation on each GetObject.
func newS3(cfg aws.Config, env *Env) *s3.Client {
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = s3PathStyle(env)
		o.DisableLogOutputChecksumValidationSkipped = true
	})
}
