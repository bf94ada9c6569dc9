package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// loadAWS loads the AWS configuration the usual way (environment, shared
// files, instance role). It honours AWS_ENDPOINT_URL and
// AWS_ENDPOINT_URL_<SERVICE>, and builds its HTTP client with
// awshttp.NewBuildableClient so AWS_CA_BUNDLE applies.
func loadAWS(ctx context.Context, env *Env) (aws.Config, error) {
	cfg, err := config.LoadDefaultConfig(ctx, config.WithHTTPClient(awshttp.NewBuildableClient()))
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS configuration: %w", err)
	}
	return cfg, nil
}

// s3PathStyle reports whether S3 must be addressed path-style
// (REWIND_S3_PATH_STYLE=true), as local S3 servers need.
func s3PathStyle(env *Env) bool {
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
