package localaws

import (
	"context"
	"errors"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Region is the region Config uses. DynamoDB Local ignores it for routing
// but keys its databases on access key id and region; stream ARNs and
// records it emits say "ddblocal" whatever the region.
const Region = "us-east-1"

// SecretAccessKey is the secret key Config uses. Local servers do not check
// signatures, only that requests are signed.
const SecretAccessKey = "localsecret"

// Config returns an aws.Config for a local server at endpoint (such as
// "http://127.0.0.1:8000"), signing as accessKeyID in region us-east-1.
//
// It is built by hand rather than with config.LoadDefaultConfig so that
// nothing from the environment leaks in: no shared config or profile, no
// AWS_ENDPOINT_URL_* (which would override BaseEndpoint), no real
// credentials. The HTTP client is an awshttp.BuildableClient, as SDK code
// that adds a CA bundle (AWS_CA_BUNDLE) requires. Retries are the SDK's
// standard retryer with 3 attempts, short backoff and no retry quota, which
// suits a local server: failures are real failures, reported quickly.
func Config(_ context.Context, endpoint, accessKeyID string) (aws.Config, error) {
	if endpoint == "" {
		return aws.Config{}, errors.New("localaws.Config: empty endpoint")
	}
	if accessKeyID == "" {
		return aws.Config{}, errors.New("localaws.Config: empty access key id")
	}
	return aws.Config{
		Region:       Region,
		Credentials:  aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(accessKeyID, SecretAccessKey, "")),
		HTTPClient:   awshttp.NewBuildableClient().WithTimeout(30 * time.Second),
		BaseEndpoint: aws.String(endpoint),
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = 3
				o.MaxBackoff = 200 * time.Millisecond
				o.RateLimiter = ratelimit.None
			})
		},
	}, nil
}

// NewS3Client returns an S3 client for cfg that uses path-style addressing
// (http://host/bucket/key), which local servers need: virtual-host style
// would put the bucket in the host name.
func NewS3Client(cfg aws.Config, optFns ...func(*s3.Options)) *s3.Client {
	return s3.NewFromConfig(cfg, append([]func(*s3.Options){func(o *s3.Options) {
		o.UsePathStyle = true
	}}, optFns...)...)
}
