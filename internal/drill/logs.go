package drill

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/internal/fakelogs"
	"github.com/ddbrewind/rewind/internal/localaws"
	"github.com/ddbrewind/rewind/internal/traffic"
	"github.com/ddbrewind/rewind/recover/changelog"
)

// SourceLogs is the Config.Source of the drill where the application logs
// its changes (package recover/changelog) to CloudWatch Logs instead of a
// capture stack, and the runbook finds the impacted keys with `rewind
// index --logs`.
const SourceLogs = "logs"

// logGroup is the application's log group, as Lambda names it.
const logGroup = "/aws/lambda/orders-api"

// appLogs is the application side of the logs drill: its DynamoDB client
// wrapped in a changelog.Writer whose lines go, one PutLogEvents each, to
// the log stream of the version that is running, as a Lambda function's
// stdout does.
type appLogs struct {
	srv *fakelogs.Server
	cw  *cloudwatchlogs.Client
	db  *changelog.Writer

	day string // the log streams' date

	mu      sync.Mutex
	stream  string
	streams map[string]bool
	err     error // the first failed shipment
}

// streamOf is the Lambda log stream name of a function version
// (date/[version]instance), dated the day the drill's logging started.
func (a *appLogs) streamOf(ver string) string {
	return a.day + "/[" + ver + "]0a1b2c3d"
}

// goodVersion is the version running before and after the bad deploy.
const goodVersion = "v41"

// startLogs starts the CloudWatch Logs stand-in and the application's
// logging DynamoDB client.
func (d *drill) startLogs(ctx context.Context) error {
	srv := fakelogs.Start()
	d.stack.off = append(d.stack.off, srv.Close)
	d.stack.endpoints["CloudWatch Logs"] = srv.URL
	a := &appLogs{srv: srv, streams: map[string]bool{}, day: time.Now().UTC().Format("2006/01/02")}
	a.stream = a.streamOf(goodVersion)
	a.cw = cloudwatchlogs.New(cloudwatchlogs.Options{Region: localaws.Region, BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider(d.stack.key, localaws.SecretAccessKey, "")})
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := a.cw.CreateLogGroup(cctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String(logGroup)}); err != nil {
		return fmt.Errorf("create log group %s: %w", logGroup, err)
	}
	l, err := changelog.New(changelog.Config{
		Handler: slog.NewJSONHandler(a, nil),
		Tenant:  rewind.TenantRule{Attribute: "pk", Regex: regexp.MustCompile(traffic.TenantRegex)},
	})
	if err != nil {
		return err
	}
	a.db = &changelog.Writer{API: d.ddb, Log: l, Keys: map[string][]string{table: {"pk", "sk"}}}
	d.logs = a
	return nil
}

// version switches the stream the application's lines go to.
func (a *appLogs) version(ver string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stream = a.streamOf(ver)
}

// Write ships one line (slog's JSON handler writes a record per call).
func (a *appLogs) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if !a.streams[a.stream] {
		_, err := a.cw.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String(logGroup), LogStreamName: aws.String(a.stream)})
		var exists *cwtypes.ResourceAlreadyExistsException
		if err != nil && !errors.As(err, &exists) {
			return 0, a.fail(err)
		}
		a.streams[a.stream] = true
	}
	_, err := a.cw.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String(logGroup), LogStreamName: aws.String(a.stream),
		LogEvents: []cwtypes.InputLogEvent{{Timestamp: aws.Int64(time.Now().UnixMilli()), Message: aws.String(string(bytes.TrimRight(p, "\n")))}}})
	if err != nil {
		return 0, a.fail(err)
	}
	return len(p), nil
}

func (a *appLogs) fail(err error) error {
	err = fmt.Errorf("ship a change line to %s stream %s: %w", logGroup, a.stream, err)
	if a.err == nil {
		a.err = err
	}
	return err
}

// appDB is the DynamoDB client the application's traffic goes through:
// the logging one in the logs drill.
func (d *drill) appDB() traffic.API {
	if d.logs != nil {
		return d.logs.db
	}
	return d.ddb
}

// indexLogs runs `rewind index --logs` over the bad version's stream,
// from a minute before the deploy to a minute from now.
func (d *drill) indexLogs(ctx context.Context, store string, bugStart time.Time) error {
	if d.logs.err != nil {
		return d.logs.err
	}
	_, _, err := d.rewind(ctx, "", "index", "--logs", "cwlogs:"+logGroup, "--log-streams", d.logs.streamOf(version),
		"--from", bugStart.Add(-time.Minute).Format(time.RFC3339), "--to", time.Now().Add(time.Minute).UTC().Format(time.RFC3339), "--store", store)
	return err
}

// deploying says which version's log stream the application writes to
// from now on; nothing without the change log.
func (d *drill) deploying(ver string) {
	if d.logs != nil {
		d.logs.version(ver)
	}
}
