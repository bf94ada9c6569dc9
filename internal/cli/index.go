package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer"
	"github.com/ddbrewind/rewind/indexer/export"
	"github.com/ddbrewind/rewind/streamhandler"
)

func init() { register(&indexCmd{}) }

// indexCmd is `rewind index`: capture objects into the local index.
type indexCmd struct{}

func (*indexCmd) Name() string { return "index" }
func (*indexCmd) Synopsis() string {
	return "index captured changes (S3 prefix or local copy) into the local store"
}

const indexUsage = `--source s3://bucket/prefix|DIR [--from T] [--to T] [--failures s3://bucket[/prefix]] | --failures s3://bucket[/prefix] | --export s3://…/AWSDynamoDB/<export-id>/|DIR  [--store DIR] [--workers N] [--batch-mb 32] [--progress 10s]

Reads the capture Parquet objects (<prefix>/table=<t>/dt=YYYY-MM-DD/hour=HH/*.parquet)
from S3 or from a local directory of the same layout, and adds those the
store has not seen to it. Rerun it as often as you like: it reads only new
or changed objects, and stores each change once.

--from and --to (RFC 3339, epoch seconds or -2h) index only the window
[from, to) of --source: it lists only the dt=/hour= partitions that can
hold its events (the hour before --from too: an object is filed under its
first event's hour), each with its own S3 listing, several at once. A later
run with a wider window reads only the objects it lacks. The store records
the windows it holds; query and stats warn about a window outside them.

--export reads a DynamoDB incremental export instead (rewind export makes
one; DynamoDB JSON, NEW_AND_OLD_IMAGES): one change per item changed in the
export's window, its old image the state at the window's start. Each data
file is checked against its MD5 and item count; tenants come from
--tenant-attribute and --tenant-regex, which should be the capture's. An
export has no userIdentity, so TTL expiries are inferred: a removal whose
old image's TTL attribute (DescribeTimeToLive for an s3:// export, or
--ttl-attribute) is at or before the export's end, in epoch seconds. stderr
says how many, and warns about removals that could not be checked.

--failures reads the capture's on-failure destination (the stack's
FailureBucket output): the records Lambda wrote for batches it gave up on,
` + rewind.FailureLayout + `,
each holding the whole batch. Their stream records are decoded as the
stream handler decodes them (tenants from --tenant-attribute and
--tenant-regex, which should be the capture's) and stored once, like a
capture object's. It is not implied by --source: give it with --source or
on its own, on every run. The store keeps the listing, so query, stats and
patch --from-history warn (exit 3) about a failure record in their window
that could not be indexed.

S3 uses the usual AWS configuration; AWS_ENDPOINT_URL_S3 and
REWIND_S3_PATH_STYLE=true point it at a local S3 server.

stdout: one JSON summary ("kind": "index") per source. stderr: progress and the
objects that failed. Exit 3 when some objects could not be read (the rest
are indexed; a rerun retries them), or when --source holds no capture
objects at all (an empty or mistyped prefix or directory). Exit 1 when
the --source directory does not exist.` + indexLogsUsage

type indexSummary struct {
	Source     string         `json:"source"`
	Store      string         `json:"store"`
	Listed     int            `json:"listed"`
	Skipped    int            `json:"skipped"`
	Ingested   int            `json:"ingested"`
	Failed     []failedObject `json:"failed"`
	Rows       int64          `json:"rows"`
	Events     int64          `json:"events"`
	Duplicates int64          `json:"duplicates"`
	Total      int64          `json:"total_events"`
	Seconds    float64        `json:"seconds"`
}

type failedObject struct {
	Object string `json:"object"`
	Error  string `json:"error"`
}

func (c *indexCmd) Run(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "index", indexUsage)
	var store storeFlag
	store.register(fs, env)
	source := fs.String("source", "", "s3://bucket/prefix or a directory of capture objects")
	exportLoc := fs.String("export", "", "an incremental export: s3://bucket/prefix/AWSDynamoDB/<export-id>/ or a local copy")
	failures := fs.String("failures", "", "the capture's S3 on-failure destination: s3://bucket[/prefix] (the stack's FailureBucket)")
	tenantAttr := fs.String("tenant-attribute", env.Getenv("REWIND_TENANT_ATTRIBUTE"), "with --export or --failures: key attribute the tenant comes from ($REWIND_TENANT_ATTRIBUTE; default pk)")
	ttlAttr := fs.String("ttl-attribute", "", "with --export: the table's TTL attribute, for telling TTL expiries from deletes (default: asked of DynamoDB with DescribeTimeToLive for an s3:// export)")
	tenantRegex := fs.String("tenant-regex", env.Getenv("REWIND_TENANT_REGEX"), "with --export or --failures: regex with one capture group extracting the tenant ($REWIND_TENANT_REGEX)")
	var cfg indexer.Config
	fs.IntVar(&cfg.Workers, "workers", 0, "objects fetched and decoded at once (default: number of CPUs)")
	batchMB := fs.Int("batch-mb", 32, "MiB of encoded changes per committed batch; memory is about 6× this")
	var from, to timeFlag
	fs.Var(&from, "from", "with --source: index only events at or after this time (lists only the hours needed); with --logs cwlogs:GROUP: the window's start (required)")
	fs.Var(&to, "to", "with --source: index only events before this time; with --logs cwlogs:GROUP: the window's end (default now)")
	var pf progressFlag
	pf.register(fs, env)
	var lf logsFlags
	lf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := lf.check(*source != "" || *exportLoc != "" || *failures != ""); err != nil {
		return err
	}
	if err := pf.check(); err != nil {
		return err
	}
	switch {
	case *exportLoc != "" && (*source != "" || *failures != ""):
		return usagef("--export goes alone: index --source and --failures in another run")
	case *source == "" && *exportLoc == "" && *failures == "" && lf.logs == "":
		return usagef("give --source (capture objects), --failures (the on-failure destination) or --export (an incremental export); or --logs (an application's change log)")
	case *failures != "" && !strings.HasPrefix(*failures, "s3://"):
		return usagef("--failures %q: want s3://bucket[/prefix], the capture's on-failure destination", *failures)
	case cfg.Workers < 0:
		return usagef("--workers %d is negative", cfg.Workers)
	case *batchMB < 1:
		return usagef("--batch-mb %d: want at least 1", *batchMB)
	case (from.set || to.set) && *source == "" && lf.logs == "":
		return usagef("--from and --to window --source or --logs cwlogs:GROUP: give one")
	case from.set && to.set && !from.t.Before(to.t):
		return usagef("--from %s is not before --to %s", from.String(), to.String())
	}
	if from.set && *source != "" { // with --logs the window goes to FilterLogEvents
		cfg.Window.From, cfg.Window.HasFrom = from.t.UnixMicro(), true
	}
	if to.set && *source != "" {
		cfg.Window.To, cfg.Window.HasTo = to.t.UnixMicro(), true
	}
	cfg.BatchBytes = *batchMB << 20
	cfg.Log = env.Log

	var s3c *s3.Client
	if strings.HasPrefix(*source, "s3://") || strings.HasPrefix(*exportLoc, "s3://") || *failures != "" || strings.HasPrefix(lf.logs, "s3://") {
		awsCfg, err := loadAWS(ctx, env)
		if err != nil {
			return err
		}
		s3c = newS3(awsCfg, env)
	}
	// ingest and name are the source's: capture objects or an export.
	rule := rewind.TenantRule{Attribute: *tenantAttr}
	if *tenantRegex != "" {
		re, err := regexp.Compile(*tenantRegex)
		if err != nil {
			return usagef("--tenant-regex: %v", err)
		}
		rule.Regex = re
	}
	rule.EnsureDefaults()
	if err := rule.Validate(); err != nil {
		return usagef("%v", err)
	}
	type run struct {
		name    string
		ingest  func(*indexer.Store) (indexer.Result, error)
		capture bool // a --source: holding no objects is worth a warning
		after   func() (string, error)
	}
	var runs []run
	var exportTTL *exportTTLInfo
	if *exportLoc != "" {
		ecfg := export.Config{Tenant: rule, Log: env.Log, TTLAttribute: *ttlAttr}
		if s3c != nil {
			ecfg.S3 = s3c
		}
		exp, err := export.Open(ctx, *exportLoc, ecfg)
		if err != nil {
			return err
		}
		exportTTL = &exportTTLInfo{attr: *ttlAttr, from: "--ttl-attribute"}
		if *ttlAttr == "" && strings.HasPrefix(*exportLoc, "s3://") {
			// The table's name is in the export's manifest: ask, then
			// read the manifest again with the attribute.
			if exportTTL = describeExportTTL(ctx, env, exp); exportTTL.attr != "" {
				ecfg.TTLAttribute = exportTTL.attr
				if exp, err = export.Open(ctx, *exportLoc, ecfg); err != nil {
					return err
				}
			}
		}
		exportTTL.exp = exp
		runs = append(runs, run{name: exp.Location(), ingest: func(st *indexer.Store) (indexer.Result, error) { return st.IngestExport(ctx, exp, cfg) }})
	}
	if *source != "" {
		var s3api indexer.S3API
		if s3c != nil {
			s3api = s3c
		}
		src, err := indexer.ParseSource(*source, s3api)
		if errors.Is(err, os.ErrNotExist) {
			return err // a path that names nothing: an error, not a usage slip
		}
		if err != nil {
			return usagef("%v", err)
		}
		runs = append(runs, run{name: src.Name(), capture: true, ingest: func(st *indexer.Store) (indexer.Result, error) { return st.Ingest(ctx, src, cfg) }})
	}
	if *failures != "" {
		fsrc, err := indexer.ParseFailureSource(*failures, s3c, streamhandler.Config{Tenant: rule})
		if err != nil {
			return usagef("%v", err)
		}
		runs = append(runs, run{name: fsrc.Name(), ingest: func(st *indexer.Store) (indexer.Result, error) { return st.IngestFailures(ctx, fsrc, cfg) }})
	}
	if lf.logs != "" {
		name, ingest, after, err := lf.source(ctx, env, s3c, &cfg)
		if err != nil {
			return err
		}
		runs = append(runs, run{name: name, ingest: ingest, after: after})
	}
	st, err := store.open(env, false)
	if err != nil {
		return err
	}
	defer st.Close()

	var partial []string
	for _, rn := range runs {
		msg, err := indexOne(ctx, env, st, rn.name, rn.ingest, rn.capture, pf.every, &cfg)
		if err != nil {
			return err
		}
		if msg != "" {
			partial = append(partial, msg)
		}
		if rn.after != nil {
			if msg, err = rn.after(); err != nil {
				return err
			}
			if msg != "" {
				partial = append(partial, msg)
			}
		}
	}
	if exportTTL != nil {
		exportTTL.report(env)
	}
	if len(partial) > 0 {
		return partialf("%s", strings.Join(partial, "; "))
	}
	return nil
}

// exportTTLInfo is what rewind knows of an exported table's TTL, for
// telling TTL expiries from deletes in an export, which carries no
// userIdentity.
type exportTTLInfo struct {
	exp  *export.Export
	attr string // the TTL attribute; "" when unknown or off
	from string // where attr came from
	off  bool   // DescribeTimeToLive says TTL is off: no removal is TTL's
}

// describeExportTTL asks DynamoDB for the exported table's TTL attribute.
// A failure is a warning: the index is still built, with the removals
// unchecked.
func describeExportTTL(ctx context.Context, env *Env, exp *export.Export) *exportTTLInfo {
	info := &exportTTLInfo{from: "DescribeTimeToLive"}
	awsCfg, err := loadAWS(ctx, env)
	region := ""
	if err == nil {
		// The configured region, as every other command's calls to the
		// table: the export's ARN names the table's region, but a local
		// stand-in may name its own.
		region = awsCfg.Region
		var out *dynamodb.DescribeTimeToLiveOutput
		out, err = dynamodb.NewFromConfig(awsCfg).DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(exp.Table)})
		if err == nil && out.TimeToLiveDescription != nil {
			d := out.TimeToLiveDescription
			if d.TimeToLiveStatus == types.TimeToLiveStatusDisabled || aws.ToString(d.AttributeName) == "" {
				info.off = true
			} else {
				info.attr = aws.ToString(d.AttributeName)
			}
			return info
		}
	}
	if err == nil {
		err = errors.New("no TimeToLiveDescription in the answer")
	}
	fmt.Fprintf(env.Stderr, "index: warning: DescribeTimeToLive %s (region %q): %v: give --ttl-attribute NAME (aws dynamodb describe-time-to-live --table-name %s shows it)\n", exp.Table, region, err, exp.Table)
	return info
}

// report says, on stderr, how many of the export's removals were taken for
// TTL expiries, and warns about those that could not be checked: --ttl
// exclude keeps them, and a patch would bring back what TTL removed.
func (t *exportTTLInfo) report(env *Env) {
	c := t.exp.TTLCounts()
	if t.attr != "" {
		fmt.Fprintf(env.Stderr, "index: %s: %d removal(s) taken for TTL expiries (TTL attribute %s from %s, at or before the export's end %s); --ttl exclude leaves them out\n",
			t.exp.Location(), c.Inferred, t.attr, t.from, t.exp.To.UTC().Format(time.RFC3339Nano))
	}
	if c.NoAttribute > 0 && !t.off {
		fmt.Fprintf(env.Stderr, "index: warning: %s: %d removal(s) could not be told from TTL expiries: no TTL attribute known (give --ttl-attribute NAME); --ttl exclude keeps them, and a patch would bring back items TTL removed\n",
			t.exp.Location(), c.NoAttribute)
	}
	if c.NoOldImage > 0 {
		fmt.Fprintf(env.Stderr, "index: warning: %s: %d removal(s) have no old image (a NEW_IMAGE export) and could not be told from TTL expiries; --ttl exclude keeps them\n",
			t.exp.Location(), c.NoOldImage)
	}
}

// indexOne ingests one source into st and prints its summary; it returns
// the reason the run is partial ("" when it is not), or an error that
// stops the command.
func indexOne(ctx context.Context, env *Env, st *indexer.Store, name string, ingest func(*indexer.Store) (indexer.Result, error), capture bool, every time.Duration, cfg *indexer.Config) (string, error) {
	r := newRenderer(env, every)
	cfg.Progress, cfg.ProgressInterval = progressTo[indexer.Progress](r), r.interval()
	res, err := ingest(st)
	r.done()
	var pe *indexer.PartialError
	if err != nil && !errors.As(err, &pe) {
		return "", fmt.Errorf("%s: %w (batches committed so far are kept; rerun to resume)", name, err)
	}
	total, cerr := st.Count()
	if cerr != nil {
		return "", cerr
	}
	sum := indexSummary{
		Source: name, Store: st.Dir(), Listed: res.Listed, Skipped: res.Skipped, Ingested: res.Ingested,
		Failed: []failedObject{}, Rows: res.Rows, Events: res.Events, Duplicates: res.Duplicates,
		Total: total, Seconds: res.Elapsed.Seconds(),
	}
	for _, f := range res.Errors {
		sum.Failed = append(sum.Failed, failedObject{Object: f.Object, Error: f.Err.Error()})
	}
	if err := emitJSON(env.Stdout, "index", sum); err != nil {
		return "", err
	}
	fmt.Fprintf(env.Stderr, "index: %s: %d new object(s), %d new events (%d duplicates), %d already indexed; %d events in %s\n",
		name, res.Ingested, res.Events, res.Duplicates, res.Skipped, total, st.Dir())
	if pe != nil {
		return fmt.Sprintf("%v", pe), nil
	}
	if res.Listed == 0 && capture {
		// An empty or mistyped prefix or directory: say so rather than
		// report a clean run of nothing.
		return fmt.Sprintf("%s holds no capture objects, so nothing was indexed: capture objects are %s/%s, as the stream handler writes them under its bucket and REWIND_PREFIX (default %q); check the bucket, prefix or directory",
			name, name, indexer.CaptureLayout, streamhandler.DefaultPrefix), nil
	}
	return "", nil
}
