package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/internal/localaws"
	"github.com/ddbrewind/rewind/internal/localaws/streampoller"
	"github.com/ddbrewind/rewind/internal/traffic"
	"github.com/ddbrewind/rewind/streamhandler"
	"github.com/parquet-go/parquet-go"
)

func init() { register(&drillCmd{}) }

// drillCmd plays an incident on the local stack: it starts DynamoDB Local
// and an S3 server, creates a multi-tenant table with a stream, runs the
// capture pipeline (stream poller and handler, as the event source mapping
// would) over normal traffic, and checks what was captured against the
// ground truth it kept.
type drillCmd struct{}

func (*drillCmd) Name() string { return "drill" }
func (*drillCmd) Synopsis() string {
	return "play a local incident end to end on DynamoDB Local (starts and stops the stack)"
}

// drill is one run's stack and what it has done so far.
type drill struct {
	env      *Env
	ddb      *dynamodb.Client
	streams  *dynamodbstreams.Client
	s3       *s3.Client
	bucket   string
	table    string
	audit    string
	steps    []drillStep
	stackOff []func()
}

type drillStep struct {
	name    string
	took    time.Duration
	outcome string
}

// step runs one step of the drill, printing what it does and what came of
// it; name is the short name for the timeline, what the longer description.
func (d *drill) step(name, what string, fn func() (string, error)) error {
	fmt.Fprintf(d.env.Stderr, "==> %s: %s\n", name, what)
	start := time.Now()
	outcome, err := fn()
	took := time.Since(start)
	if err != nil {
		outcome = "FAILED: " + err.Error()
	}
	d.steps = append(d.steps, drillStep{name, took, outcome})
	fmt.Fprintf(d.env.Stderr, "    %s (%s)\n", outcome, took.Round(time.Millisecond))
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func (c *drillCmd) Run(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "drill", "[flags]")
	tenants := fs.Int("tenants", 6, "number of tenants writing traffic")
	changes := fs.Int("changes", 1500, "number of normal changes to write")
	batch := fs.Int("batch-size", 100, "records per handler invocation (the event source mapping's BatchSize)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *tenants < 1 || *changes < 1 || *batch < 1 || *batch > 10000 {
		return usagef("--tenants and --changes must be positive, --batch-size 1 to 10000")
	}
	d := &drill{env: env, table: "orders", audit: "rewind-audit", bucket: "rewind-capture"}
	defer d.stopStack()
	start := time.Now()
	if err := d.startStack(ctx); err != nil {
		return err
	}
	var streamARN string
	if err := d.step("create tables", "the orders table (GSI, stream NEW_AND_OLD_IMAGES, TTL), the audit table and the capture bucket", func() (string, error) {
		arn, err := d.createTables(ctx)
		streamARN = arn
		return "stream " + arn, err
	}); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	h, err := streamhandler.New(streamhandler.Config{
		AuditTable:  d.audit,
		Bucket:      d.bucket,
		TenantRegex: regexp.MustCompile(traffic.TenantRegex),
		// DynamoDB Local puts the GSI key in the Keys of TTL deletes.
		KeyAttributes: []string{"pk", "sk"},
	}, d.ddb, d.s3, log)
	if err != nil {
		return err
	}
	poller, err := streampoller.New(streampoller.Config{StreamARN: streamARN, Streams: d.streams, Invoker: h, BatchSize: *batch})
	if err != nil {
		return err
	}
	names := make([]string, *tenants)
	for i := range names {
		names[i] = fmt.Sprintf("tenant%02d", i+1)
	}
	gen := traffic.New(d.ddb, d.table, names, 42)
	gen.TTLFraction = 0.05
	if err := d.step("normal traffic", fmt.Sprintf("%d changes over %d tenants", *changes, *tenants), func() (string, error) {
		err := gen.Run(ctx, *changes)
		return fmt.Sprintf("%d items live", len(gen.Live())), err
	}); err != nil {
		return err
	}
	if err := d.step("capture", "poll the stream and invoke the handler, as the event source mapping does", func() (string, error) {
		st, err := poller.PollOnce(ctx)
		return fmt.Sprintf("%d records in %d invocations, %d retries", st.Delivered, st.Invocations, st.Retries), err
	}); err != nil {
		return err
	}
	var rows []rewind.ParquetRow
	var objects int
	if err := d.step("read capture", "what was captured: Parquet on S3, audit table", func() (string, error) {
		var err error
		rows, objects, err = d.readCapture(ctx)
		if err != nil {
			return "", err
		}
		n, err := d.countAudit(ctx)
		return fmt.Sprintf("%d Parquet rows in %d objects, %d audit items", len(rows), objects, n), err
	}); err != nil {
		return err
	}
	ok := d.checkCapture(gen, rows)
	d.printCaptureTable(rows)
	d.printTimeline(time.Since(start))
	summary := map[string]any{"check": map[bool]string{true: "pass", false: "FAIL"}[ok], "changes": len(gen.Changes), "captured": len(rows), "objects": objects}
	json.NewEncoder(env.Stdout).Encode(summary)
	if !ok {
		return fmt.Errorf("drill check failed: captured events differ from the changes made")
	}
	fmt.Fprintln(env.Stderr, "drill: PASS: every change was captured exactly once, with its images")
	return nil
}

func (d *drill) startStack(ctx context.Context) error {
	var ddbEndpoint, s3Endpoint string
	err := d.step("start stack", "DynamoDB Local on 127.0.0.1, S3 in-process", func() (string, error) {
		ddbLocal, err := localaws.StartDynamoDB(ctx)
		if err != nil {
			return "", fmt.Errorf("%w (install it with scripts/install-local-aws.sh)", err)
		}
		d.stackOff = append(d.stackOff, func() { ddbLocal.Close() })
		s3srv, err := localaws.StartS3(ctx)
		if err != nil {
			return "", err
		}
		d.stackOff = append(d.stackOff, func() { s3srv.Close() })
		ddbEndpoint, s3Endpoint = ddbLocal.Endpoint, s3srv.Endpoint
		return fmt.Sprintf("DynamoDB Local %s (started in %s), S3 %s", ddbEndpoint, ddbLocal.StartTime.Round(time.Millisecond), s3Endpoint), nil
	})
	if err != nil {
		return err
	}
	key := localaws.UniqueAccessKeyID("drill")
	cfg, err := localaws.Config(ctx, ddbEndpoint, key)
	if err != nil {
		return err
	}
	d.ddb = dynamodb.NewFromConfig(cfg)
	d.streams = dynamodbstreams.NewFromConfig(cfg)
	s3cfg, err := localaws.Config(ctx, s3Endpoint, key)
	if err != nil {
		return err
	}
	d.s3 = localaws.NewS3Client(s3cfg)
	// The runbook's commands run in this process, and find the stack
	// the way they would find AWS: through the environment.
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_DYNAMODB":         ddbEndpoint,
		"AWS_ENDPOINT_URL_DYNAMODB_STREAMS": ddbEndpoint,
		"AWS_ENDPOINT_URL_S3":               s3Endpoint,
		"AWS_ACCESS_KEY_ID":                 key,
		"AWS_SECRET_ACCESS_KEY":             localaws.SecretAccessKey,
		"AWS_REGION":                        localaws.Region,
		"REWIND_S3_PATH_STYLE":              "true",
	} {
		os.Setenv(k, v)
	}
	return nil
}

func (d *drill) stopStack() {
	for i := len(d.stackOff) - 1; i >= 0; i-- {
		d.stackOff[i]()
	}
	d.stackOff = nil
}

func (d *drill) createTables(ctx context.Context) (string, error) {
	s := func(n string) types.AttributeDefinition {
		return types.AttributeDefinition{AttributeName: aws.String(n), AttributeType: types.ScalarAttributeTypeS}
	}
	out, err := d.ddb.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            &d.table,
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{s("pk"), s("sk"), s("status")},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String("sk"), KeyType: types.KeyTypeRange},
		},
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{{
			IndexName: aws.String("by-status"),
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String("status"), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String("sk"), KeyType: types.KeyTypeRange},
			},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly},
		}},
		StreamSpecification: &types.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: types.StreamViewTypeNewAndOldImages},
	})
	if err != nil {
		return "", fmt.Errorf("create table %s: %w", d.table, err)
	}
	if _, err := d.ddb.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName:               &d.table,
		TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String("expiresAt"), Enabled: aws.Bool(true)},
	}); err != nil {
		return "", fmt.Errorf("enable TTL on %s: %w", d.table, err)
	}
	if err := streamhandler.CreateAuditTable(ctx, d.ddb, d.audit); err != nil {
		return "", err
	}
	if _, err := d.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &d.bucket}); err != nil {
		return "", fmt.Errorf("create bucket %s: %w", d.bucket, err)
	}
	return aws.ToString(out.TableDescription.LatestStreamArn), nil
}

func (d *drill) readCapture(ctx context.Context) ([]rewind.ParquetRow, int, error) {
	var rows []rewind.ParquetRow
	objects := 0
	pg := s3.NewListObjectsV2Paginator(d.s3, &s3.ListObjectsV2Input{Bucket: &d.bucket})
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			return nil, 0, err
		}
		for _, o := range page.Contents {
			obj, err := d.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: &d.bucket, Key: o.Key})
			if err != nil {
				return nil, 0, err
			}
			body, err := io.ReadAll(obj.Body)
			obj.Body.Close()
			if err != nil {
				return nil, 0, err
			}
			r, err := parquet.Read[rewind.ParquetRow](bytes.NewReader(body), int64(len(body)))
			if err != nil {
				return nil, 0, fmt.Errorf("s3://%s/%s: %w", d.bucket, *o.Key, err)
			}
			rows = append(rows, r...)
			objects++
		}
	}
	return rows, objects, nil
}

func (d *drill) countAudit(ctx context.Context) (int, error) {
	n := 0
	pg := dynamodb.NewScanPaginator(d.ddb, &dynamodb.ScanInput{TableName: &d.audit, Select: types.SelectCount})
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			return 0, err
		}
		n += int(page.Count)
	}
	return n, nil
}

// checkCapture compares the captured rows with the ground truth.
func (d *drill) checkCapture(gen *traffic.Generator, rows []rewind.ParquetRow) bool {
	evs := make([]rewind.ChangeEvent, 0, len(rows))
	for _, r := range rows {
		ev, err := r.ChangeEvent()
		if err != nil {
			fmt.Fprintf(d.env.Stderr, "drill: CHECK FAILED: row %s: %v\n", r.EventID, err)
			return false
		}
		evs = append(evs, ev)
	}
	if err := gen.Compare(d.table, evs); err != nil {
		fmt.Fprintf(d.env.Stderr, "drill: CHECK FAILED: %v\n", err)
		return false
	}
	return true
}

func (d *drill) printCaptureTable(rows []rewind.ParquetRow) {
	type counts struct{ ins, mod, rem, ttl int }
	per := map[string]*counts{}
	for _, r := range rows {
		c := per[r.Tenant]
		if c == nil {
			c = &counts{}
			per[r.Tenant] = c
		}
		switch rewind.Action(r.Action) {
		case rewind.ActionInsert:
			c.ins++
		case rewind.ActionModify:
			c.mod++
		case rewind.ActionRemove:
			c.rem++
			if r.TTLExpiry {
				c.ttl++
			}
		}
	}
	fmt.Fprintln(d.env.Stderr, "\nCaptured change events per tenant:")
	tw := tabwriter.NewWriter(d.env.Stderr, 2, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "tenant\tINSERT\tMODIFY\tREMOVE\t(TTL)\ttotal\t")
	tenants := make([]string, 0, len(per))
	for t := range per {
		tenants = append(tenants, t)
	}
	slices.Sort(tenants)
	for _, t := range tenants {
		c := per[t]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t\n", t, c.ins, c.mod, c.rem, c.ttl, c.ins+c.mod+c.rem)
	}
	tw.Flush()
}

func (d *drill) printTimeline(total time.Duration) {
	fmt.Fprintln(d.env.Stderr, "\nTimeline:")
	tw := tabwriter.NewWriter(d.env.Stderr, 2, 0, 2, ' ', 0)
	for i, s := range d.steps {
		fmt.Fprintf(tw, "%2d.\t%s\t%s\t\n", i+1, s.name, s.took.Round(time.Millisecond))
	}
	fmt.Fprintf(tw, "\ttotal\t%s\t\n", total.Round(time.Millisecond))
	tw.Flush()
}
