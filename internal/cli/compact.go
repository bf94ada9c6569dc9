package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/ddbrewind/rewind/indexer/compact"
)

func init() { register(&compactCmd{}) }

// compactCmd is `rewind compact`: rewrite closed hours of the capture into
// a few large files.
type compactCmd struct{}

func (*compactCmd) Name() string { return "compact" }
func (*compactCmd) Synopsis() string {
	return "rewrite each closed hour of the capture into a few large sorted files"
}

const compactUsage = `--source s3://bucket/prefix [--from T] [--to T] [--grace 1h] [--row-group-rows 50000] [--dry-run]

Rewrites each closed hour (ended more than --grace ago) of the capture's
small objects into a few large Parquet files sorted by tenant then time,
deduplicated by event ID, records them in the hour's _manifest.json, and
only then deletes the small objects: a crash at any point leaves every
event readable once, and running again finishes the job. Hours already
compacted are left alone. --from/--to keep hours that start in [from, to).
It needs write and delete on the capture prefix: run it as the compaction
function's role (deploy/template.yaml, CompactionSchedule), not as the
operator, whose policy keeps the capture read-only.

stdout: one JSON line per hour ("kind": "compact-hour") and a summary
("kind": "compact"). stderr: a line per compacted hour and the totals.`

func (c *compactCmd) Run(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "compact", compactUsage)
	source := fs.String("source", "", "the capture prefix s3://bucket/prefix (required)")
	var from, to timeFlag
	fs.Var(&from, "from", "compact hours that start at or after this time")
	fs.Var(&to, "to", "compact hours that start before this time")
	grace := fs.Duration("grace", time.Hour, "how long after its end an hour is closed")
	rg := fs.Int64("row-group-rows", 50_000, "rows per Parquet row group")
	dry := fs.Bool("dry-run", false, "list what would be compacted; write nothing")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	bucket, prefix, _ := strings.Cut(strings.TrimPrefix(*source, "s3://"), "/")
	if !strings.HasPrefix(*source, "s3://") || bucket == "" {
		return usagef("--source %q: want s3://bucket/prefix", *source)
	}
	cfg, err := loadAWS(ctx, env)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(env.Stdout)
	o := compact.Options{
		Bucket: bucket, Prefix: prefix, Grace: *grace, From: from.t, To: to.t, RowGroupRows: *rg, DryRun: *dry,
		Progress: func(h compact.Hour) {
			enc.Encode(struct {
				Kind string `json:"kind"`
				compact.Hour
			}{"compact-hour", h})
			if h.Status == "compacted" || h.Status == "finished" {
				fmt.Fprintf(env.Stderr, "compact: %s: %s, %d object(s) -> %d, %d event(s)\n", h.Folder, h.Status, h.ObjectsBefore, h.ObjectsAfter, h.Events)
			}
		},
	}
	start := time.Now()
	sum, err := compact.Run(ctx, newS3(cfg, env), o)
	if err != nil {
		return err
	}
	enc.Encode(map[string]any{
		"kind": "compact", "source": *source, "dry_run": *dry, "hours_compacted": sum.Compacted, "hours_skipped": sum.Skipped,
		"hours_open": sum.Open, "objects_before": sum.ObjectsBefore, "objects_after": sum.ObjectsAfter, "rows": sum.Rows, "events": sum.Events,
	})
	fmt.Fprintf(env.Stderr, "compact: %d hour(s) compacted, %d already compact or too small, %d still open; %d object(s) -> %d in %s\n",
		sum.Compacted, sum.Skipped, sum.Open, sum.ObjectsBefore, sum.ObjectsAfter, time.Since(start).Round(time.Millisecond))
	return nil
}
