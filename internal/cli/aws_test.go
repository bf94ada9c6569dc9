package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
	"github.com/ddbrewind/rewind/recover/patch"
)

// awsTestEnv points this process's AWS configuration at endpoint, with
// static credentials and no shared files, and sets the given bounds.
func awsTestEnv(t *testing.T, endpoint string, bounds map[string]string) *Env {
	t.Helper()
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL":            endpoint,
		"AWS_ENDPOINT_URL_DYNAMODB":   "",
		"AWS_ENDPOINT_URL_S3":         "",
		"AWS_ACCESS_KEY_ID":           "test",
		"AWS_SECRET_ACCESS_KEY":       "test",
		"AWS_SESSION_TOKEN":           "",
		"AWS_PROFILE":                 "",
		"AWS_REGION":                  "us-east-1",
		"AWS_CONFIG_FILE":             os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE": os.DevNull,
		"AWS_EC2_METADATA_DISABLED":   "true",
	} {
		t.Setenv(k, v)
	}
	for _, v := range awsTimeoutVars {
		t.Setenv(v.name, bounds[v.name])
	}
	return &Env{Stdout: io.Discard, Stderr: io.Discard, Getenv: os.Getenv}
}

// silentListener accepts TCP connections and never answers on them.
func silentListener(t *testing.T) (addr string, accepted *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted = new(atomic.Int64)
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			conns = append(conns, c) // held open, never read or written
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String(), accepted
}

// describe calls DescribeTable with attempts attempts, failing the test if
// it does not return within limit.
func describe(t *testing.T, env *Env, attempts int, limit time.Duration) error {
	t.Helper()
	cfg, err := loadAWS(t.Context(), env)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := dynamodb.NewFromConfig(cfg).DescribeTable(context.Background(), &dynamodb.DescribeTableInput{TableName: aws.String("orders")},
			func(o *dynamodb.Options) { o.Retryer = patch.NewRetryer(attempts) })
		errc <- err
	}()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("DescribeTable succeeded against an endpoint that never answers")
		}
		return err
	case <-time.After(limit):
		t.Fatalf("DescribeTable still waiting after %s", limit)
		return nil
	}
}

// TestAWSHeaderTimeout: an endpoint that accepts connections and never
// answers fails each attempt after the response-header timeout, the
// attempts are retried, and the error names the endpoint, the bound and
// its setting.
func TestAWSHeaderTimeout(t *testing.T) {
	addr, accepted := silentListener(t)
	env := awsTestEnv(t, "http://"+addr, map[string]string{"REWIND_AWS_HEADER_TIMEOUT": "200ms"})
	err := describe(t, env, 3, 20*time.Second)
	for _, want := range []string{"DynamoDB DescribeTable at http://" + addr, "no answer within 200ms", "response-header timeout", "REWIND_AWS_HEADER_TIMEOUT", "attempts, 3"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if n := accepted.Load(); n != 3 {
		t.Errorf("%d connections for 3 attempts", n)
	}
}

// stallingServer answers every request with headers and the start of a
// body, then sends nothing more until the client goes away.
func stallingServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, `{"Table":`)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	t.Cleanup(func() {
		srv.CloseClientConnections() // ends handlers still waiting on a client
		srv.Close()
	})
	return srv, &n
}

// TestAWSAttemptTimeout: a response whose body stalls is cut by the
// per-attempt deadline, and the timed-out attempt is retried (the SDK
// alone would take the cut for a cancellation and give up).
func TestAWSAttemptTimeout(t *testing.T) {
	srv, requests := stallingServer(t)
	env := awsTestEnv(t, srv.URL, map[string]string{"REWIND_AWS_ATTEMPT_TIMEOUT": "300ms"})
	err := describe(t, env, 3, 20*time.Second)
	for try := 0; try < 2 && strings.Contains(err.Error(), "use of closed network connection"); try++ {
		// About 1 run in 15 under -race, the SDK's cleanup of a
		// timed-out attempt leaves the next attempt reading a connection
		// closed under it, and that attempt fails at once: a dropped
		// connection, retried like one, but the last attempt's error is
		// then not the deadline's. Not rewind's code: play the call again.
		t.Logf("the SDK's closed-connection race, playing the call again: %v", err)
		srv, requests = stallingServer(t)
		env = awsTestEnv(t, srv.URL, map[string]string{"REWIND_AWS_ATTEMPT_TIMEOUT": "300ms"})
		err = describe(t, env, 3, 20*time.Second)
	}
	for _, want := range []string{"DynamoDB DescribeTable at " + srv.URL, "no answer within 300ms", "deadline of one attempt", "REWIND_AWS_ATTEMPT_TIMEOUT", "attempts, 3"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if n := requests.Load(); n != 3 {
		t.Errorf("%d requests for 3 attempts", n)
	}
}

// TestAWSCallTimeout: the per-call deadline cuts a call whose attempts
// and backoff would go on longer.
func TestAWSCallTimeout(t *testing.T) {
	srv, requests := stallingServer(t)
	env := awsTestEnv(t, srv.URL, map[string]string{"REWIND_AWS_ATTEMPT_TIMEOUT": "300ms", "REWIND_AWS_CALL_TIMEOUT": "1s"})
	start := time.Now()
	err := describe(t, env, 100, 20*time.Second)
	for _, want := range []string{"DynamoDB DescribeTable at " + srv.URL, "no answer within 1s", "deadline of one call", "REWIND_AWS_CALL_TIMEOUT"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if errors.Is(err, context.Canceled) {
		t.Errorf("a call deadline reads as an interrupt: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("call took %s with a 1s call deadline", d)
	}
	if n := requests.Load(); n < 2 {
		t.Errorf("%d requests in a 1s call of 300ms attempts", n)
	}
}

// TestAWSStreamedBody: an S3 GetObject body is read after the call
// returns, for as long as bytes keep coming, past the per-attempt and
// per-call deadlines; one that goes silent fails after the read-idle
// bound.
func TestAWSStreamedBody(t *testing.T) {
	const chunks = 12
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1200")
		w.WriteHeader(http.StatusOK)
		for i := range chunks {
			if strings.HasSuffix(r.URL.Path, "/stalls") && i == chunks/2 {
				<-r.Context().Done()
				return
			}
			w.Write([]byte(strings.Repeat("x", 100)))
			w.(http.Flusher).Flush()
			time.Sleep(100 * time.Millisecond)
		}
	}))
	t.Cleanup(func() {
		srv.CloseClientConnections() // ends handlers still waiting on a client
		srv.Close()
	})
	env := awsTestEnv(t, srv.URL, map[string]string{
		"REWIND_AWS_ATTEMPT_TIMEOUT": "200ms", "REWIND_AWS_CALL_TIMEOUT": "300ms", "REWIND_AWS_READ_IDLE_TIMEOUT": "700ms",
	})
	t.Setenv("REWIND_S3_PATH_STYLE", "true")
	cfg, err := loadAWS(t.Context(), env)
	if err != nil {
		t.Fatal(err)
	}
	c := newS3(cfg, env)
	get := func(key string) ([]byte, error) {
		out, err := c.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String(key)})
		if err != nil {
			return nil, err
		}
		defer out.Body.Close()
		return io.ReadAll(out.Body)
	}
	start := time.Now()
	b, err := get("flows")
	if err != nil || len(b) != 1200 {
		t.Fatalf("GetObject of a body streaming for %s: %d bytes, %v", time.Since(start), len(b), err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := get("stalls")
		errc <- err
	}()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("a body that stalls was read to the end")
		} else if !strings.Contains(err.Error(), "timeout") {
			t.Errorf("stalled body: %v, want a read timeout", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("reading a stalled body still waiting after 15s, with a 700ms read-idle bound")
	}
}

func TestAWSTimeoutSettings(t *testing.T) {
	for _, v := range []string{"abc", "-1s", "0"} {
		env := &Env{Getenv: func(k string) string {
			if k == "REWIND_AWS_CALL_TIMEOUT" {
				return v
			}
			return ""
		}}
		_, err := loadAWS(t.Context(), env)
		var ue *usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "REWIND_AWS_CALL_TIMEOUT") {
			t.Errorf("REWIND_AWS_CALL_TIMEOUT=%s: %v, want a usage error naming it", v, err)
		}
	}
	to, err := awsTimeoutsFromEnv(func(k string) string {
		if k == "REWIND_AWS_HEADER_TIMEOUT" {
			return "7s"
		}
		return ""
	})
	if err != nil || to.ResponseHeader != 7*time.Second || to.Connect != 5*time.Second || to.Attempt != time.Minute {
		t.Errorf("bounds %+v, %v", to, err)
	}
}

// TestEnvAWS: with Env.AWS set, each service's clients call the endpoint
// given for it and sign with the credentials given, whatever the
// process environment says; S3 goes path-style.
func TestEnvAWS(t *testing.T) {
	type hit struct{ host, path, auth string }
	record := func(hits chan<- hit, body string) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits <- hit{r.Host, r.URL.Path, r.Header.Get("Authorization")}
			w.Header().Set("Content-Type", "application/x-amz-json-1.0")
			io.WriteString(w, body)
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	wrong := make(chan hit, 10)
	elsewhere := record(wrong, `{}`)
	ddbHits, s3Hits := make(chan hit, 10), make(chan hit, 10)
	ddbSrv := record(ddbHits, `{"Table":{"TableName":"orders","TableStatus":"ACTIVE"}}`)
	s3Srv := record(s3Hits, ``)
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_DYNAMODB": elsewhere.URL,
		"AWS_ENDPOINT_URL_S3":       elsewhere.URL,
		"AWS_ACCESS_KEY_ID":         "FROMPROCESS",
		"AWS_SECRET_ACCESS_KEY":     "x",
		"AWS_REGION":                "eu-west-3",
	} {
		t.Setenv(k, v)
	}
	t.Setenv("AWS_ENDPOINT_URL", "") // restored after the test
	os.Unsetenv("AWS_ENDPOINT_URL")
	env := &Env{Stdout: io.Discard, Stderr: io.Discard, Getenv: func(string) string { return "" }, AWS: &AWS{
		Endpoints: map[string]string{"DynamoDB": ddbSrv.URL, "S3": s3Srv.URL},
		Region:    "us-east-1",
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "GIVEN", SecretAccessKey: "s"}, nil
		}),
		S3PathStyle: true,
	}}
	cfg, err := loadAWS(t.Context(), env)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dynamodb.NewFromConfig(cfg).DescribeTable(t.Context(), &dynamodb.DescribeTableInput{TableName: aws.String("orders")}); err != nil {
		t.Fatalf("DescribeTable: %v", err)
	}
	if _, err := newS3(cfg, env).HeadBucket(t.Context(), &s3.HeadBucketInput{Bucket: aws.String("capture")}); err != nil {
		t.Fatalf("HeadBucket: %v", err)
	}
	for name, c := range map[string]chan hit{"DynamoDB": ddbHits, "S3": s3Hits} {
		select {
		case h := <-c:
			if !strings.Contains(h.auth, "Credential=GIVEN/") || !strings.Contains(h.auth, "/us-east-1/") {
				t.Errorf("%s request signed %q, want the given credentials and region", name, h.auth)
			}
			if name == "S3" && h.path != "/capture" {
				t.Errorf("S3 request path %q on host %q, want path-style /capture", h.path, h.host)
			}
		default:
			t.Errorf("no %s request reached the endpoint given in Env.AWS", name)
		}
	}
	if len(wrong) > 0 {
		t.Errorf("%d requests went to the process's AWS_ENDPOINT_URL_*", len(wrong))
	}

	// AWS_ENDPOINT_URL alone makes the SDK skip per-service endpoints: refused.
	t.Setenv("AWS_ENDPOINT_URL", elsewhere.URL)
	if _, err := loadAWS(t.Context(), env); err == nil || !strings.Contains(err.Error(), "unset AWS_ENDPOINT_URL") {
		t.Errorf("with AWS_ENDPOINT_URL set: %v, want an error saying to unset it", err)
	}
	env.AWS.Credentials = nil
	os.Unsetenv("AWS_ENDPOINT_URL")
	if _, err := loadAWS(t.Context(), env); err == nil || !strings.Contains(err.Error(), "no credentials") {
		t.Errorf("without credentials: %v", err)
	}
}

// TestPatchClientKeepsConnections: the patch client keeps a connection for
// every call the engine may have in flight at its defaults (the writers'
// cap, the planners' reads), so that rounds of that many calls at once
// reuse the connections of the first round rather than opening new ones
// (each a TCP and, on AWS, a TLS handshake). The SDK's transport alone
// keeps 100 idle connections in all: past that, each round would open the
// difference again.
func TestPatchClientKeepsConnections(t *testing.T) {
	o := patch.DefaultOptions()
	inFlight := patchConnections(o)
	if inFlight <= 100 {
		t.Fatalf("patchConnections(defaults) = %d: this test needs more than the SDK's 100 idle connections to tell the pools apart", inFlight)
	}
	// Each request of a round waits until the whole round has arrived,
	// so every round needs inFlight connections at once.
	var (
		mu      sync.Mutex
		arrived int
		release = make(chan struct{})
	)
	var opened atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		arrived++
		ch := release
		if arrived == inFlight {
			arrived = 0
			close(release)
			release = make(chan struct{})
		}
		mu.Unlock()
		select {
		case <-ch:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		io.WriteString(w, `{}`)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	env := dynamoDBOnlyEnv(t, srv.URL)
	client, err := NewPatchClient(t.Context(), env, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	const rounds = 8
	for round := range rounds {
		var wg sync.WaitGroup
		errs := make(chan error, inFlight)
		for i := range inFlight {
			wg.Go(func() {
				_, err := client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("orders"),
					Item: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: fmt.Sprintf("k%d-%d", round, i)}}})
				if err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: PutItem: %v", round, err)
		}
	}
	// The first round opens inFlight connections; a transport handing a
	// connection back a moment after its call returned may cost a few
	// more. Closing every connection past 100 would cost inFlight-100 a
	// round: 7*(inFlight-100) more over the later rounds.
	t.Logf("%d rounds of %d calls at once opened %d connections", rounds, inFlight, opened.Load())
	if n, most := opened.Load(), int64(inFlight+inFlight/4); n > most {
		t.Errorf("%d rounds of %d PutItem calls at once opened %d connections, want at most %d: the client's idle pool closes connections the engine's calls need again", rounds, inFlight, n, most)
	}
}

// TestPatchClientSkipsResponseCRC: a default DynamoDB client built from the
// same configuration runs the SDK's response checksum validation (the
// CRC32 of every response body) on each call; the patch client's calls do
// not (patchClientOptions), and still succeed.
func TestPatchClientSkipsResponseCRC(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		io.WriteString(w, `{"Attributes":{"pk":{"S":"k"}}}`)
	}))
	t.Cleanup(srv.Close)
	env := dynamoDBOnlyEnv(t, srv.URL)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	in := &dynamodb.PutItemInput{TableName: aws.String("orders"), ReturnValues: types.ReturnValueAllOld,
		Item: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "k"}}}
	// checksummed reports whether a call's stack validates the response
	// CRC32 (the SDK's middleware ID for it).
	checksummed := func(c *dynamodb.Client) bool {
		var has bool
		inspect := func(o *dynamodb.Options) {
			o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
				_, has = s.Deserialize.Get("DynamoDB:ResponseChecksumValidation")
				return nil
			})
		}
		out, err := c.PutItem(ctx, in, inspect)
		if err != nil {
			t.Fatalf("PutItem: %v", err)
		}
		if v, ok := out.Attributes["pk"].(*types.AttributeValueMemberS); !ok || v.Value != "k" {
			t.Fatalf("PutItem returned attributes %v, want pk=k", out.Attributes)
		}
		return has
	}
	cfg, err := loadAWS(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	if !checksummed(dynamodb.NewFromConfig(cfg)) {
		t.Fatal("a default client's PutItem has no response checksum middleware: the SDK names it differently, the test checks nothing")
	}
	client, err := NewPatchClient(ctx, env, patch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !client.Options().DisableValidateResponseChecksum {
		t.Error("patch client: DisableValidateResponseChecksum is false")
	}
	if checksummed(client) {
		t.Error("patch client: PutItem still validates the response CRC32")
	}
}

// dynamoDBOnlyEnv is an Env whose DynamoDB calls go to url with static
// credentials, and nothing of the process's AWS settings.
func dynamoDBOnlyEnv(t *testing.T, url string) *Env {
	t.Helper()
	t.Setenv("AWS_ENDPOINT_URL", "") // restored after the test
	os.Unsetenv("AWS_ENDPOINT_URL")
	return &Env{Stdout: io.Discard, Stderr: io.Discard, Getenv: func(string) string { return "" }, AWS: &AWS{
		Endpoints: map[string]string{"DynamoDB": url},
		Region:    "us-east-1",
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "s"}, nil
		}),
	}}
}
