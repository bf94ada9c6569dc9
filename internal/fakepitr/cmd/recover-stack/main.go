// Command recover-stack runs the local stand-ins the recover runbook talks
// to, so that `rewind readonly`, `rewind pitr`, `rewind restore` and
// `rewind export` can be tried by hand: DynamoDB Local (or
// $REWIND_DYNAMODB_ENDPOINT) behind the PITR front (internal/fakepitr,
// snapshotting PITR-enabled tables every second, exporting to an
// in-memory S3 with a bucket rewind-exports), fake SSM (internal/fakessm)
// and fake IAM/STS (internal/fakeiam, with the application roles given by
// -roles).
//
// It prints the environment to point rewind at them, then runs until
// interrupted:
//
//	go run ./internal/fakepitr/cmd/recover-stack -roles orders-api > /tmp/stack.env &
//	sleep 5; . /tmp/stack.env
//	rewind readonly on --all --table orders --roles orders-api
//
// Everything listens on 127.0.0.1 and lives in memory.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ddbrewind/rewind/internal/fakeiam"
	"github.com/ddbrewind/rewind/internal/fakepitr"
	"github.com/ddbrewind/rewind/internal/fakessm"
	"github.com/ddbrewind/rewind/internal/localaws"
)

func main() {
	roles := flag.String("roles", "orders-api", "comma-separated application roles to create in the fake IAM")
	every := flag.Duration("snapshot-every", time.Second, "PITR granularity: snapshot PITR-enabled tables this often")
	accessKey := flag.String("access-key", "LOCALRECOVER", "access key id to print (DynamoDB Local keeps one database per key)")
	bucket := flag.String("bucket", "rewind-exports", "S3 bucket to create for exports (empty: none)")
	lag := flag.Duration("pitr-lag", 0, "how far the latest restorable time runs behind now (0: none; AWS's is about 5m)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *roles, *every, *accessKey, *bucket, *lag); err != nil {
		fmt.Fprintln(os.Stderr, "recover-stack:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, roles string, every time.Duration, accessKey, bucket string, lag time.Duration) error {
	if lag <= 0 {
		lag = fakepitr.NoLag
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	upstream := os.Getenv("REWIND_DYNAMODB_ENDPOINT")
	if upstream == "" {
		ddb, err := localaws.StartDynamoDB(ctx)
		if err != nil {
			return err
		}
		defer ddb.Close()
		upstream = ddb.Endpoint
	}
	s3srv, err := localaws.StartS3(ctx)
	if err != nil {
		return err
	}
	defer s3srv.Close()
	s3cfg, err := localaws.Config(ctx, s3srv.Endpoint, accessKey)
	if err != nil {
		return err
	}
	s3c := localaws.NewS3Client(s3cfg)
	if bucket != "" {
		if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
			return fmt.Errorf("create bucket %s: %w", bucket, err)
		}
	}
	front, err := fakepitr.Start(ctx, fakepitr.Config{Upstream: upstream, SnapshotEvery: every, CreatingFor: 2 * time.Second, Logger: log, S3: s3c, ExportingFor: 2 * time.Second, LatestRestorableLag: lag})
	if err != nil {
		return err
	}
	defer front.Close()
	ssmSrv, err := fakessm.Start(ctx)
	if err != nil {
		return err
	}
	defer ssmSrv.Close()
	iamSrv, err := fakeiam.Start(ctx)
	if err != nil {
		return err
	}
	defer iamSrv.Close()
	for _, r := range strings.Split(roles, ",") {
		if r = strings.TrimSpace(r); r != "" {
			iamSrv.AddRole(r)
		}
	}
	fmt.Printf(`export AWS_ENDPOINT_URL_DYNAMODB=%s
export AWS_ENDPOINT_URL_S3=%s REWIND_S3_PATH_STYLE=true
export AWS_ENDPOINT_URL_SSM=%s
export AWS_ENDPOINT_URL_IAM=%s
export AWS_ENDPOINT_URL_STS=%s
export AWS_ACCESS_KEY_ID=%s
export AWS_SECRET_ACCESS_KEY=%s
export AWS_REGION=%s AWS_DEFAULT_REGION=%s
export AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL
`, front.Endpoint, s3srv.Endpoint, ssmSrv.Endpoint, iamSrv.Endpoint, iamSrv.Endpoint, accessKey, localaws.SecretAccessKey, localaws.Region, localaws.Region)
	os.Stdout.Sync() //nolint:errcheck
	log.Info("recover stack up; interrupt to stop", "dynamodb", front.Endpoint, "s3", s3srv.Endpoint, "bucket", bucket, "ssm", ssmSrv.Endpoint, "iam+sts", iamSrv.Endpoint, "roles", roles, "caller", "assumed-role/operator")
	<-ctx.Done()
	return nil
}
