package cli

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer"
	"github.com/ddbrewind/rewind/query"
	"github.com/ddbrewind/rewind/query/auditsource"
)

// auditFlags are --audit-table and its companions, shared by query, stats
// and history: answer from the audit table instead of the index.
type auditFlags struct {
	cfg       auditsource.Config
	pageLimit int
}

func (a *auditFlags) register(fs *flag.FlagSet) {
	a.cfg.EnsureDefaults()
	fs.StringVar(&a.cfg.Table, "audit-table", "", "answer straight from this audit table with DynamoDB Query calls, instead of the index (--store): for the first minutes after an incident and small windows")
	fs.IntVar(&a.cfg.Shards, "audit-shards", a.cfg.Shards, "with --audit-table: the stream handler's REWIND_AUDIT_SHARDS")
	fs.IntVar(&a.cfg.Concurrency, "audit-concurrency", a.cfg.Concurrency, "with --audit-table: Query calls in flight at once")
	fs.IntVar(&a.pageLimit, "audit-page-limit", 0, "with --audit-table: items per Query page (default: DynamoDB's 1 MB pages)")
}

func (a *auditFlags) on() bool { return a.cfg.Table != "" }

// store opens what q is answered from: with --audit-table, a temporary
// store of the window's audit items (loaded, for the report), else the
// index (--store). close releases it.
func (a *auditFlags) store(ctx context.Context, env *Env, index *storeFlag, q *query.Query) (st *indexer.Store, loaded *auditsource.Loaded, close func(), err error) {
	if !a.on() {
		if st, err = index.open(env, true); err != nil {
			return nil, nil, nil, err
		}
		return st, nil, func() { st.Close() }, nil
	}
	if err := a.window(q); err != nil {
		return nil, nil, nil, err
	}
	if loaded, err = a.load(ctx, env, *q); err != nil {
		return nil, nil, nil, err
	}
	return loaded.Store, loaded, func() { loaded.Close() }, nil
}

// auditMaxAttempts is how many times the SDK's standard retryer tries a
// throttled or failed Query before the command gives up.
const auditMaxAttempts = 8

func (a *auditFlags) client(ctx context.Context, env *Env) (*dynamodb.Client, error) {
	cfg, err := loadAWS(ctx, env)
	if err != nil {
		return nil, err
	}
	return dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
		o.Retryer = retry.AddWithMaxAttempts(retry.NewStandard(), auditMaxAttempts)
	}), nil
}

// window fills in --to (now) for the audit table, which needs both ends,
// and checks --from.
func (a *auditFlags) window(q *query.Query) error {
	if q.From.IsZero() {
		return usagef("--audit-table needs --from: the audit table is read an hour at a time (--from -2h, say)")
	}
	if q.To.IsZero() {
		q.To = time.Now().UTC()
		if !q.To.After(q.From) {
			return usagef("--from %s is in the future: nothing to read from the audit table", q.From.Format(time.RFC3339Nano))
		}
	}
	return nil
}

func (a *auditFlags) config(env *Env) (auditsource.Config, error) {
	if a.pageLimit < 0 || a.pageLimit > 1<<30 {
		return a.cfg, usagef("--audit-page-limit %d: want 0 (1 MB pages) or a positive number of items", a.pageLimit)
	}
	cfg := a.cfg
	cfg.PageLimit = int32(a.pageLimit)
	cfg.Log = env.Log
	if err := cfg.Validate(); err != nil {
		return cfg, usagef("%v", err)
	}
	return cfg, nil
}

// load reads q's window from the audit table into a temporary store.
func (a *auditFlags) load(ctx context.Context, env *Env, q query.Query) (*auditsource.Loaded, error) {
	c, err := a.client(ctx, env)
	if err != nil {
		return nil, err
	}
	cfg, err := a.config(env)
	if err != nil {
		return nil, err
	}
	return auditsource.Load(ctx, c, cfg, q)
}

// loadItem reads one item's audit items into a temporary store.
func (a *auditFlags) loadItem(ctx context.Context, env *Env, table string, key rewind.Key, from, to time.Time) (*auditsource.Loaded, error) {
	c, err := a.client(ctx, env)
	if err != nil {
		return nil, err
	}
	cfg, err := a.config(env)
	if err != nil {
		return nil, err
	}
	return auditsource.LoadItem(ctx, c, cfg, table, key, from, to)
}

// report prints, on stderr, what the audit table read cost, and a warning
// for each change read without its images and for each tenant named that
// had no change in the window. It returns a partial error (exit 3) when
// the answer needed images the audit table does not hold, or when it is
// empty and a tenant named had nothing (most likely a typo).
func (a *auditFlags) report(env *Env, name string, l *auditsource.Loaded, tenants []string, needImages, emptyAnswer bool) error {
	s := &l.Summary
	fmt.Fprintf(env.Stderr, "%s: audit table %s: %d item(s) from %d partition(s) of the %s, %d page(s), %.1f read capacity unit(s) consumed\n",
		name, a.cfg.Table, s.Items, s.Partitions, indexName(s.Index), s.Pages, s.CapacityUnits)
	var err error
	if n := len(s.Omitted); n > 0 {
		for i, o := range s.Omitted {
			if i == 10 {
				fmt.Fprintf(env.Stderr, "%s: warning: ... and %d more change(s) without images\n", name, n-10)
				break
			}
			fmt.Fprintf(env.Stderr, "%s: warning: change %s of %s %s at %s: its images were too big for the audit item (imagesOmitted); they are in the capture Parquet under %s\n",
				name, o.EventID, o.Table, o.Key, o.Time.Format(time.RFC3339Nano), o.ParquetPrefix())
		}
		if needImages {
			err = partialf("%d change(s) in the window have no images in the audit table, and this answer reads images: it may be wrong for them; index the capture Parquet (rewind index) and ask with --store", n)
		} else {
			fmt.Fprintf(env.Stderr, "%s: the answer does not read images, so it holds for these changes too\n", name)
		}
	}
	missing := false
	for _, t := range tenants {
		if s.Tenants[t] == 0 {
			missing = true
			fmt.Fprintf(env.Stderr, "%s: warning: the audit table holds no change of tenant %q in the window\n", name, t)
		}
	}
	if err == nil && missing && emptyAnswer {
		err = partialf("the answer is empty, and a tenant named has no change in the window (see the warnings above)")
	}
	return err
}

func indexName(index string) string {
	if index == "table" {
		return "table's tenant partitions"
	}
	return index + " index"
}
