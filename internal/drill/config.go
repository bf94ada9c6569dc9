package drill

import (
	"context"
	"fmt"
	"io"
	"os"
)

// StopBeforeReadonly is the one step Config.StopBefore may name: the
// drill sets up the incident (tables, capture, traffic, the bad deploy,
// its changes indexed) and stops before `rewind readonly on`, leaving the
// stack running for the runbook to be tried by hand.
const StopBeforeReadonly = "readonly"

// Config sizes one drill. The zero value of each field means its default
// (see EnsureDefaults); flags bind into an already-defaulted Config.
type Config struct {
	// Tenants is how many tenants write traffic. Default 6.
	Tenants int
	// Affected is how many of them the bad deploy damages (the first
	// ones). Default 2; All makes it Tenants.
	Affected int
	// All plays an incident that hits every tenant, frozen with
	// `readonly on --all`. Default false.
	All bool
	// Changes is the normal changes written before the bad deploy; half as
	// many again are written during and after it. Default 1200; at least
	// 10.
	Changes int
	// BugModify, BugDelete and BugJunk are the items the bug overwrites,
	// deletes and creates, per affected tenant. Defaults 12, 5 and 4,
	// applied when all three are zero (zero in one of them alone means
	// none of that kind); none negative, together at least one.
	BugModify, BugDelete, BugJunk int
	// BatchSize is the records per capture invocation (the event source
	// mapping's BatchSize). Default 100; 1 to 10000.
	BatchSize int
	// Workdir is where the runbook's files go (key sets, plan, journal,
	// index, the env file). Default "": a temporary directory, removed at
	// the end.
	Workdir string
	// Incident is the incident folder every runbook command records into
	// (rewind --incident): the log, the key sets, plan and journal, the
	// status and the report. Default: <Workdir>/incident with Workdir,
	// else a new rewind-incident-* folder in the temporary directory,
	// kept after the drill (Outcome.Incident names it).
	Incident string
	// FromHistory patches from the captured history (patch --from-history
	// --at T) instead of a restored table, skipping the restore. The
	// deploy then waits for the next minute boundary, as DynamoDB Local
	// stamps stream records to the minute. Default false.
	FromHistory bool
	// CompareRestore, with FromHistory, also restores and checks that both
	// sources plan the same patch, key for key. Default false.
	CompareRestore bool
	// StopBefore, when StopBeforeReadonly, stops the story before the
	// freeze: the drill writes EnvFile and says it is ready, then runs
	// Hand, or (Hand nil) keeps the stack running, capture polling every
	// second, until its context ends. Default "": play the whole story
	// and stop the stack.
	StopBefore string
	// EnvFile, with StopBefore, is where the shell settings that point
	// rewind at the stack are written, atomically, before the drill says
	// it is ready. Default <Workdir>/stack.env.
	EnvFile string
	// Hand, with StopBefore, plays the rest of the runbook against the
	// stack once EnvFile is in place (the README test runs the README's
	// runnable blocks); the drill then checks the whole table against its
	// ground truth, as at the end of a full run, and Outcome.Check says
	// how that went. Default nil: wait until the context ends, then stop
	// without a check (Outcome.Check is CheckStopped).
	Hand func(ctx context.Context, envFile string) error
	// Progress gets the steps, the commands with their stderr, the summary
	// and the timeline. Default os.Stderr.
	Progress io.Writer
	// Endpoint, when set, is given each stand-in's endpoint the runbook's
	// commands are pointed at (service is the SDK's service ID, "DynamoDB",
	// "S3", ...) and returns the one to use instead: a test puts a
	// recording proxy there to see every AWS call the commands make. The
	// drill's own setup, traffic and checks keep the stand-ins' endpoints.
	// Default nil: the stand-ins themselves.
	Endpoint func(service, url string) string
	// Source is where the runbook learns what the deploy changed: "" (or
	// "capture") the capture stack (stream handler, S3, rewind index
	// --source); SourceLogs the application's change log instead
	// (recover/changelog lines shipped to a CloudWatch Logs stand-in,
	// rewind index --logs over the bad version's log stream), with no
	// capture at all. Logs carry no images: it patches from the restored
	// table, so it does not go with FromHistory, nor with StopBefore.
	// Default "".
	Source string
	// Getenv is what the runbook's commands read REWIND_* settings through
	// (the AWS call bounds). Default os.Getenv. AWS settings never come
	// from it: the commands get the stack's configuration whole.
	Getenv func(string) string
}

// Defaults of Config, in one place.
const (
	DefaultTenants   = 6
	DefaultAffected  = 2
	DefaultChanges   = 1200
	DefaultBugModify = 12
	DefaultBugDelete = 5
	DefaultBugJunk   = 4
	DefaultBatchSize = 100
)

// EnsureDefaults fills the fields left zero.
func (c *Config) EnsureDefaults() {
	set := func(f *int, v int) {
		if *f == 0 {
			*f = v
		}
	}
	set(&c.Tenants, DefaultTenants)
	set(&c.Affected, DefaultAffected)
	set(&c.Changes, DefaultChanges)
	if c.BugModify == 0 && c.BugDelete == 0 && c.BugJunk == 0 {
		c.BugModify, c.BugDelete, c.BugJunk = DefaultBugModify, DefaultBugDelete, DefaultBugJunk
	}
	set(&c.BatchSize, DefaultBatchSize)
	if c.Progress == nil {
		c.Progress = os.Stderr
	}
	if c.Getenv == nil {
		c.Getenv = os.Getenv
	}
}

// affected is how many tenants the deploy hits.
func (c *Config) affected() int {
	if c.All {
		return c.Tenants
	}
	return c.Affected
}

// Validate reports the first bad field, naming it and its flag. A command
// line that binds flags into a defaulted Config validates it before Run,
// which defaults again: zero in every bug count is then an error, not the
// default bug.
func (c *Config) Validate() error {
	switch {
	case c.Tenants < 1:
		return fmt.Errorf("Tenants (--tenants) is %d: must be positive", c.Tenants)
	case c.affected() < 1 || c.affected() > c.Tenants:
		return fmt.Errorf("Affected (--affected) is %d: must be 1 to Tenants (%d)", c.Affected, c.Tenants)
	case c.Changes < 10:
		return fmt.Errorf("Changes (--changes) is %d: must be at least 10", c.Changes)
	case c.BugModify < 0 || c.BugDelete < 0 || c.BugJunk < 0:
		return fmt.Errorf("BugModify, BugDelete, BugJunk (--bug-modify, --bug-delete, --bug-junk) are %d, %d, %d: none may be negative", c.BugModify, c.BugDelete, c.BugJunk)
	case c.BugModify+c.BugDelete+c.BugJunk == 0:
		return fmt.Errorf("BugModify, BugDelete and BugJunk (--bug-modify, --bug-delete, --bug-junk) are all 0: the bug must do something")
	case c.BatchSize < 1 || c.BatchSize > 10000:
		return fmt.Errorf("BatchSize (--batch-size) is %d: must be 1 to 10000", c.BatchSize)
	case c.CompareRestore && !c.FromHistory:
		return fmt.Errorf("CompareRestore (--compare-restore) goes with FromHistory (--from-history)")
	case c.StopBefore != "" && c.StopBefore != StopBeforeReadonly:
		return fmt.Errorf("StopBefore (--stop-before) is %q: the drill can stop before %q only", c.StopBefore, StopBeforeReadonly)
	case c.Source != "" && c.Source != "capture" && c.Source != SourceLogs:
		return fmt.Errorf("Source (--source) is %q: want capture or %s", c.Source, SourceLogs)
	case c.Source == SourceLogs && (c.FromHistory || c.StopBefore != ""):
		return fmt.Errorf("Source (--source) %s goes with neither FromHistory (--from-history: the change log carries no images) nor StopBefore (--stop-before)", SourceLogs)
	case c.EnvFile != "" && c.StopBefore == "":
		return fmt.Errorf("EnvFile (--env-file) goes with StopBefore (--stop-before %s)", StopBeforeReadonly)
	}
	return nil
}
