// Command rewind-drill plays a whole incident and recovery on a local
// stack (DynamoDB Local and stand-ins for S3, PITR, SSM and IAM, all on
// 127.0.0.1), running the runbook's rewind commands in-process, and checks
// the outcome. It starts the stack and stops it; with --stop-before
// readonly it sets up the incident, writes an env file for a shell and
// leaves the stack running until interrupted, so the runbook can be tried
// by hand.
//
// The drill lives in internal/drill; this is its command line. It is not
// part of the shipped rewind binary. stdout is one JSON line (the
// outcome); steps, commands, summary and timeline go to stderr. Exit
// codes: 0 pass (or stopped as asked), 1 failure, 2 usage, 130
// interrupted.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/ddbrewind/rewind/internal/drill"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the command line: args without the program name.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg := drill.Config{Progress: stderr, Getenv: os.Getenv}
	cfg.EnsureDefaults()
	fs := flag.NewFlagSet("rewind-drill", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: rewind-drill [flags]\n\nPlays a whole incident and recovery on a local stack (starts and stops it).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.IntVar(&cfg.Tenants, "tenants", cfg.Tenants, "tenants writing traffic")
	fs.IntVar(&cfg.Affected, "affected", cfg.Affected, "tenants the bad deploy damages")
	fs.BoolVar(&cfg.All, "all", cfg.All, "the incident hits every tenant: read-only for all (readonly on --all)")
	fs.IntVar(&cfg.Changes, "changes", cfg.Changes, "normal changes before the bad deploy; half as many again during and after it")
	fs.IntVar(&cfg.BugModify, "bug-modify", cfg.BugModify, "items the bug overwrites, per affected tenant")
	fs.IntVar(&cfg.BugDelete, "bug-delete", cfg.BugDelete, "items the bug deletes, per affected tenant")
	fs.IntVar(&cfg.BugJunk, "bug-junk", cfg.BugJunk, "junk items the bug creates, per affected tenant")
	fs.IntVar(&cfg.BatchSize, "batch-size", cfg.BatchSize, "records per capture invocation (the event source mapping's BatchSize)")
	fs.StringVar(&cfg.Workdir, "workdir", cfg.Workdir, "where the runbook's files go (key sets, journal, index); default: a temporary directory, removed at the end")
	fs.StringVar(&cfg.Incident, "incident", cfg.Incident, "incident folder the runbook's commands record into (default <workdir>/incident, or a new rewind-incident-* temporary folder, kept)")
	fs.BoolVar(&cfg.FromHistory, "from-history", cfg.FromHistory, "patch from the captured history (patch --from-history --at T) instead of a restored table, skipping the restore")
	fs.BoolVar(&cfg.CompareRestore, "compare-restore", cfg.CompareRestore, "with --from-history: also restore, and check that both sources plan the same patch, key for key")
	fs.StringVar(&cfg.Source, "source", cfg.Source, "where the runbook learns what the deploy changed: capture (the capture stack) or logs (the application's change log in CloudWatch Logs, rewind index --logs)")
	fs.StringVar(&cfg.StopBefore, "stop-before", cfg.StopBefore, "\"readonly\": set up the incident, write --env-file, say ready and keep the stack running until interrupted, for the runbook by hand")
	fs.StringVar(&cfg.EnvFile, "env-file", cfg.EnvFile, "with --stop-before: where to write the shell settings for the stack, atomically, before saying ready (default <workdir>/stack.env)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "rewind-drill: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "rewind-drill: %v\n", err)
		return 2
	}
	out, err := drill.Run(ctx, cfg)
	if encErr := json.NewEncoder(stdout).Encode(out); encErr != nil {
		fmt.Fprintf(stderr, "rewind-drill: write the outcome to stdout: %v\n", encErr)
		if err == nil {
			return 1
		}
	}
	switch {
	case err == nil:
		return 0
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		fmt.Fprintf(stderr, "rewind-drill: interrupted: %v\n", err)
		return 130
	default:
		fmt.Fprintf(stderr, "rewind-drill: %v\n", err)
		return 1
	}
}
