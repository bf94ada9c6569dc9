// Command compactor is the Lambda bootstrap of rewind's scheduled
// compaction (deploy/template.yaml, CompactionFunction; off unless
// CompactionSchedule is set): each run rewrites the capture's closed hours
// into large files with indexer/compact, as `rewind compact` does. It reads
// REWIND_BUCKET, REWIND_PREFIX and REWIND_COMPACT_GRACE (a Go duration,
// default 1h). It stops starting hours 30 s before the Lambda deadline; an
// hour cut short is finished by the next run.
//
//	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go build -tags lambda.norpc -o bootstrap ./cmd/compactor
package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/ddbrewind/rewind/indexer/compact"
)

// result is what one run returns (and logs).
type result struct {
	Compacted     int   `json:"hours_compacted"`
	Skipped       int   `json:"hours_skipped"`
	Open          int   `json:"hours_open"`
	ObjectsBefore int   `json:"objects_before"`
	ObjectsAfter  int   `json:"objects_after"`
	Events        int64 `json:"events"`
	CutShort      bool  `json:"cut_short"`
}

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	o := compact.Options{Bucket: os.Getenv("REWIND_BUCKET"), Prefix: os.Getenv("REWIND_PREFIX")}
	if g := os.Getenv("REWIND_COMPACT_GRACE"); g != "" {
		d, err := time.ParseDuration(g)
		if err != nil {
			log.Error("REWIND_COMPACT_GRACE: want a Go duration such as 1h", slog.String("value", g))
			os.Exit(1)
		}
		o.Grace = d
	}
	if err := o.Validate(); err != nil {
		log.Error("configuration: set REWIND_BUCKET", slog.String("error", err.Error()))
		os.Exit(1)
	}
	cfg, err := config.LoadDefaultConfig(context.Background(), config.WithHTTPClient(awshttp.NewBuildableClient()))
	if err != nil {
		log.Error("aws configuration", slog.String("error", err.Error()))
		os.Exit(1)
	}
	s3c := s3.NewFromConfig(cfg)
	lambda.Start(func(ctx context.Context) (result, error) {
		if dl, ok := ctx.Deadline(); ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, dl.Add(-30*time.Second))
			defer cancel()
		}
		sum, err := compact.Run(ctx, s3c, o)
		r := result{sum.Compacted, sum.Skipped, sum.Open, sum.ObjectsBefore, sum.ObjectsAfter, sum.Events, false}
		if errors.Is(err, context.DeadlineExceeded) {
			r.CutShort, err = true, nil
		}
		log.Info("compaction", slog.Any("result", r))
		return r, err
	})
}
