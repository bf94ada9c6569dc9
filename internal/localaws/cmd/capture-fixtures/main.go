// Command capture-fixtures captures real DynamoDB stream events as Lambda
// payloads: it runs write scenarios against DynamoDB Local (tables of all
// four stream view types, every attribute type, a binary partition key,
// TTL expiry), reads the streams with streampoller and writes each payload,
// exactly as the poller would send it to the stream handler, to
// testdata/streams/ddblocal-<scenario>.json.
//
// Usage (from anywhere in the repository, after scripts/install-local-aws.sh):
//
//	go run ./internal/localaws/cmd/capture-fixtures [-out dir] [-ttl-wait 2m]
//
// DynamoDB Local sweeps expired items about once a minute, so the TTL
// scenario takes up to a minute or two; -ttl-wait 0 skips it. Event ids,
// sequence numbers, times and stream ARNs differ on every run.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/ddbrewind/rewind/internal/localaws"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "capture-fixtures:", err)
		os.Exit(1)
	}
}

func run() error {
	out := flag.String("out", "", "directory to write the fixtures to (default <repo>/testdata/streams)")
	ttlWait := flag.Duration("ttl-wait", 2*time.Minute, "how long to wait for TTL deletes; 0 skips the TTL scenario")
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	if *out == "" {
		root, err := localaws.RepoRoot()
		if err != nil {
			return err
		}
		*out = filepath.Join(root, "testdata", "streams")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ddb, err := localaws.StartDynamoDB(ctx)
	if err != nil {
		return err
	}
	defer ddb.Close()
	fmt.Fprintf(os.Stderr, "DynamoDB Local at %s (started in %v)\n", ddb.Endpoint, ddb.StartTime.Round(time.Millisecond))
	cfg, err := localaws.Config(ctx, ddb.Endpoint, "capturefixtures")
	if err != nil {
		return err
	}
	fixtures, err := Capture(ctx, dynamodb.NewFromConfig(cfg), dynamodbstreams.NewFromConfig(cfg), Options{
		TTLWait: *ttlWait,
		Logf:    func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) },
	})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	for _, f := range fixtures {
		path := filepath.Join(*out, f.Name+".json")
		if err := os.WriteFile(path, f.Payload, 0o644); err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "wrote", path)
	}
	return nil
}
