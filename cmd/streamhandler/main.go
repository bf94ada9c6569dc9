// Command streamhandler is the Lambda bootstrap of rewind's capture stage:
// a DynamoDB Streams function that writes every change event to the audit
// table and to S3 as Parquet. It is configured by environment variables
// (see streamhandler.ConfigFromEnv) and built by scripts/build-lambda.sh:
//
//	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go build -tags lambda.norpc -o bootstrap ./cmd/streamhandler
package main

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/ddbrewind/rewind/streamhandler"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	ctx := context.Background()
	setMemoryLimit(log)
	cfg, err := streamhandler.ConfigFromEnv(os.Getenv)
	if err != nil {
		log.Error("configuration", slog.String("error", err.Error()))
		os.Exit(1)
	}
	// config.LoadDefaultConfig honours AWS_ENDPOINT_URL and
	// AWS_ENDPOINT_URL_<SERVICE>, and AWS_CA_BUNDLE through the buildable
	// HTTP client.
	awsCfg, err := config.LoadDefaultConfig(ctx, config.WithHTTPClient(awshttp.NewBuildableClient()))
	if err != nil {
		log.Error("aws configuration", slog.String("error", err.Error()))
		os.Exit(1)
	}
	ddb := dynamodb.NewFromConfig(awsCfg)
	s3c := s3.NewFromConfig(awsCfg, func(o *s3.Options) { o.UsePathStyle = cfg.S3PathStyle })
	h, err := streamhandler.New(cfg, ddb, s3c, log)
	if err != nil {
		log.Error("handler", slog.String("error", err.Error()))
		os.Exit(1)
	}
	log.Info("streamhandler ready",
		slog.String("auditTable", cfg.AuditTable),
		slog.String("bucket", cfg.Bucket),
		slog.String("prefix", cfg.Prefix),
		slog.Int("ttlDays", cfg.TTLDays),
		slog.String("region", aws.ToString(&awsCfg.Region)))
	lambda.Start(h)
}

// setMemoryLimit gives the Go runtime a soft memory limit of 40% of the
// function's memory, unless GOMEMLIMIT is set. A 6 MB batch needs about
// 22 MB of live heap; with the default GOGC alone the heap grows to twice
// that before a collection and the process peaks near 85 MB. The limit
// makes the collector work harder only as the heap nears it, keeping the
// peak near 60 MB for a 128 MB function; being soft, it never fails an
// allocation.
func setMemoryLimit(log *slog.Logger) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	mb, err := strconv.Atoi(os.Getenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"))
	if err != nil || mb <= 0 {
		return
	}
	limit := int64(mb) << 20 * 4 / 10
	debug.SetMemoryLimit(limit)
	log.Debug("memory limit", slog.Int64("bytes", limit))
}
