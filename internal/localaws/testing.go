package localaws

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// DynamoDBEnv is one test's own DynamoDB database in the shared DynamoDB
// Local: requests signed with AccessKeyID see only its tables and streams.
type DynamoDBEnv struct {
	Endpoint    string
	AccessKeyID string
	Config      aws.Config
	DynamoDB    *dynamodb.Client
	Streams     *dynamodbstreams.Client
}

// S3Env is one test's S3 server with one empty bucket.
type S3Env struct {
	Endpoint string
	Config   aws.Config
	Client   *s3.Client
	// Bucket exists and is empty.
	Bucket string
}

// requireEnv makes a missing local AWS stack fail tests instead of
// skipping them; CI sets it.
const requireEnv = "REWIND_REQUIRE_LOCAL_AWS"

var shared struct {
	mu       sync.Mutex
	started  bool
	endpoint string
	ddb      *DynamoDB
	err      error
}

// SharedDynamoDBEndpoint returns the endpoint of the DynamoDB Local this test
// binary shares, starting it on first use: $REWIND_DYNAMODB_ENDPOINT when
// set, else one started with StartDynamoDB, which lives until the process
// exits. A failure to start is remembered, so later callers fail fast.
func SharedDynamoDBEndpoint() (string, error) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.started {
		shared.started = true
		if ep := os.Getenv("REWIND_DYNAMODB_ENDPOINT"); ep != "" {
			shared.endpoint = ep
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
			shared.ddb, shared.err = StartDynamoDB(ctx)
			cancel()
			if shared.err == nil {
				shared.endpoint = shared.ddb.Endpoint
			}
		}
	}
	return shared.endpoint, shared.err
}

// DynamoDBForTest returns a DynamoDB database of the test's own in the
// shared DynamoDB Local (see SharedDynamoDBEndpoint), with clients for it.
//
// Each call uses a new access key id, hence a new empty database: DynamoDB
// Local slows down writes in proportion to the stream records already in a
// database, and tests must not see each other's tables anyway.
//
// The test is skipped when Java or DynamoDB Local is not installed, or fails
// when REWIND_REQUIRE_LOCAL_AWS=1.
func DynamoDBForTest(t testing.TB) *DynamoDBEnv {
	t.Helper()
	endpoint, err := SharedDynamoDBEndpoint()
	if err != nil {
		skipOrFatal(t, err)
	}
	key := UniqueAccessKeyID(t.Name())
	cfg, err := Config(t.Context(), endpoint, key)
	if err != nil {
		t.Fatal(err)
	}
	return &DynamoDBEnv{
		Endpoint:    endpoint,
		AccessKeyID: key,
		Config:      cfg,
		DynamoDB:    dynamodb.NewFromConfig(cfg),
		Streams:     dynamodbstreams.NewFromConfig(cfg),
	}
}

// S3ForTest starts an S3 server for the test, stopped when the test ends,
// with an empty bucket called "rewind-test". S3 runs in-process, so this
// never skips.
func S3ForTest(t testing.TB) *S3Env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := StartS3(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	cfg, err := Config(ctx, srv.Endpoint, UniqueAccessKeyID(t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	env := &S3Env{Endpoint: srv.Endpoint, Config: cfg, Client: NewS3Client(cfg), Bucket: "rewind-test"}
	if _, err := env.Client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(env.Bucket)}); err != nil {
		t.Fatalf("local s3 at %s: create bucket: %v", srv.Endpoint, err)
	}
	return env
}

func skipOrFatal(t testing.TB, err error) {
	t.Helper()
	if !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("local AWS stack: %v", err)
	}
	if os.Getenv(requireEnv) == "1" {
		t.Fatalf("%s=1 but the local AWS stack is missing: %v", requireEnv, err)
	}
	t.Skipf("skipping: %v (set %s=1 to fail instead)", err, requireEnv)
}

var keyCounter atomic.Uint64

// UniqueAccessKeyID returns an access key id no other call returns, built
// from name for readable DynamoDB Local logs. DynamoDB Local accepts only
// letters and digits in access key ids.
func UniqueAccessKeyID(name string) string {
	var b strings.Builder
	b.WriteString("T")
	for _, r := range name {
		if b.Len() >= 24 {
			break
		}
		if r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
	}
	// A random part keeps keys unique across test binaries that share one
	// DynamoDB Local through REWIND_DYNAMODB_ENDPOINT.
	fmt.Fprintf(&b, "%d%s", keyCounter.Add(1), rand.Text()[:8])
	return b.String()
}
