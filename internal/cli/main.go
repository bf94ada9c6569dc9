// Package cli is the rewind command line: cmd/rewind is its thin main, and
// the local drill (internal/drill) runs the same commands in-process.
//
// Each subcommand is a small type in its own file that parses its flags
// and calls the library packages; run `rewind help` for the list. stdout
// carries data only (JSON Lines unless --format says otherwise); progress
// and logs go to stderr. Exit codes: 0 done, 1 error, 2 usage, 3 partial,
// 130 interrupted.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/ddbrewind/rewind/recover/patch"
)

// Exit codes, in one place.
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitPartial     = 3
	exitInterrupted = 130
)

// command is one subcommand.
type command interface {
	// Name is the word on the command line.
	Name() string
	// Synopsis is one line for `rewind help`.
	Synopsis() string
	// Run parses args (the words after the name) and does the work.
	Run(ctx context.Context, env *Env, args []string) error
}

var commands []command

// register adds a subcommand; each subcommand's file calls it from init.
func register(c command) { commands = append(commands, c) }

// Env is what a command may touch of the outside world.
type Env struct {
	Stdout io.Writer // data only
	Stderr io.Writer // progress, logs, summaries
	Log    *slog.Logger
	Getenv func(string) string // REWIND_* settings are read through it
	// AWS, when set, is the whole AWS configuration the commands use:
	// loadAWS then reads nothing from the process environment, shared
	// files or instance metadata. The local drill points the runbook's
	// commands at its stand-ins through it. Nil: the SDK's default chain.
	AWS *AWS

	// continueMu guards continueHint: what to run to continue the running
	// command after it was interrupted, registered by the command
	// (SetContinue) and printed when a second signal exits at once.
	continueMu   sync.Mutex
	continueHint string

	// incident is the incident folder of the running command ("" for
	// none), for status and report; summarize, when set, takes the
	// figures a command reports of itself into the folder's log.
	incident  string
	summarize func(any)
}

// SetContinue registers how to continue the running command if it is cut
// short: a sentence such as "to continue: rewind patch ... --resume
// --journal J".
func (e *Env) SetContinue(hint string) {
	e.continueMu.Lock()
	defer e.continueMu.Unlock()
	e.continueHint = hint
}

// Continue returns the hint registered with SetContinue, or "".
func (e *Env) Continue() string {
	e.continueMu.Lock()
	defer e.continueMu.Unlock()
	return e.continueHint
}

// usageError is a bad command line: exit 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// partialError is work that finished with some items not done: exit 3.
type partialError struct{ msg string }

func (e *partialError) Error() string { return e.msg }

func partialf(format string, args ...any) error {
	return &partialError{fmt.Sprintf(format, args...)}
}

// interruptedError is work stopped by a signal that can be continued, as
// its summary said (patch.Interrupted): exit 130.
type interruptedError struct{ err error }

func (e *interruptedError) Error() string { return e.err.Error() }
func (e *interruptedError) Unwrap() error { return e.err }

// exitCode maps an error to the process exit code, in one place: the
// commands return errors of these kinds (the patch commands from their
// summary's Outcome), never an exit code.
func exitCode(ctx context.Context, err error) int {
	var ue *usageError
	var ce *patch.ConfigError
	var pe *partialError
	var ie *interruptedError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue), errors.Is(err, flag.ErrHelp), errors.As(err, &ce), errors.Is(err, patch.ErrEmptyKeySet):
		return exitUsage
	case errors.As(err, &pe):
		return exitPartial
	case errors.As(err, &ie):
		return exitInterrupted
	case ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, ctx.Err())):
		return exitInterrupted
	}
	return exitError
}

// Main runs the command line args (without the program name) as the
// rewind binary does: with the process's stdout, stderr and environment,
// and signal handling. It returns the exit code.
func Main(args []string) int {
	env := &Env{
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		Log:    slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel(os.Getenv("REWIND_LOG_LEVEL"))})),
		Getenv: os.Getenv,
	}
	ctx, stop := handleSignals(env, os.Exit)
	defer stop()
	return Run(ctx, env, args)
}

// handleSignals returns a context cancelled by the first SIGINT or
// SIGTERM: the running command stops starting work, lets what is in
// flight finish for a few seconds, records it (a patch journals and
// checkpoints) and prints its summary with the command to continue; it
// then exits 130. A second signal does not wait for that: it prints the
// command's continue hint (Env.SetContinue) and calls exit(130) at once.
// stop stops the handling.
func handleSignals(env *Env, exit func(int)) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-sigs:
			fmt.Fprintf(env.Stderr, "rewind: %s: stopping; work in flight gets a few seconds to finish (interrupt again to exit at once)\n", s)
			cancel()
		case <-done:
			return
		}
		select {
		case <-sigs:
		case <-done:
			return
		}
		msg := "rewind: interrupted again: exiting now"
		if hint := env.Continue(); hint != "" {
			msg += "; " + hint
		}
		fmt.Fprintln(env.Stderr, msg)
		exit(exitInterrupted)
	}()
	var once sync.Once
	return ctx, func() {
		once.Do(func() {
			signal.Stop(sigs)
			close(done)
			cancel()
		})
	}
}

func logLevel(s string) slog.Level {
	var l slog.Level
	if l.UnmarshalText([]byte(s)) != nil {
		return slog.LevelInfo
	}
	return l
}

// Run runs the command line args in env and returns the exit code.
func Run(ctx context.Context, env *Env, args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		printHelp(env.Stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	i := slices.IndexFunc(commands, func(c command) bool { return c.Name() == args[0] })
	if i < 0 {
		fmt.Fprintf(env.Stderr, "rewind: unknown command %q\n\n", args[0])
		printHelp(env.Stderr)
		return exitUsage
	}
	dir, rest, err := takeIncident(env, args[1:])
	if err != nil {
		fmt.Fprintf(env.Stderr, "rewind %s: %v\n", args[0], err)
		return exitUsage
	}
	c := commands[i]
	if dir != "" && !slices.Contains(notRecorded, c.Name()) {
		return runRecorded(ctx, env, c, dir, rest)
	}
	env.incident = dir
	code, _ := runCommand(ctx, env, c, rest)
	return code
}

// runCommand runs c, prints its error and maps it to the exit code.
func runCommand(ctx context.Context, env *Env, c command, args []string) (int, error) {
	err := c.Run(ctx, env, args)
	code := exitCode(ctx, err)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		code = exitOK
	case code == exitInterrupted:
		fmt.Fprintf(env.Stderr, "rewind %s: interrupted: %v\n", c.Name(), err)
	default:
		fmt.Fprintf(env.Stderr, "rewind %s: %v\n", c.Name(), err)
	}
	return code, err
}

func printHelp(w io.Writer) {
	fmt.Fprintln(w, "rewind: find the DynamoDB items a bad deploy touched and put them back.")
	fmt.Fprintln(w, "\nUsage: rewind <command> [flags]   (rewind <command> -h for its flags)\n\nCommands:")
	cs := slices.Clone(commands)
	slices.SortFunc(cs, func(a, b command) int { return strings.Compare(a.Name(), b.Name()) })
	for _, c := range cs {
		fmt.Fprintf(w, "  %-10s %s\n", c.Name(), c.Synopsis())
	}
	fmt.Fprintln(w, "\nExit codes: 0 done, 1 error, 2 usage, 3 partial (some items not done), 130 interrupted.")
}

// newFlags returns a flag set for a subcommand that reports errors as
// usage errors and prints its usage on stderr.
func newFlags(env *Env, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet("rewind "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	// Taken off the command line by Run (see takeIncident); here so that
	// -h lists it.
	fs.String(incidentFlag, "", "incident folder: record this command in DIR/log.jsonl and keep its outputs there ($REWIND_INCIDENT)")
	if env.incident != "" {
		// Set, so that commandLine's commands to continue with keep it.
		fs.Set(incidentFlag, env.incident)
	}
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "Usage: rewind %s %s\n\nFlags:\n", name, usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args and turns flag errors into usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// commandLine returns `rewind name` with the flags set on fs, in name
// order, except those in drop, then extra, quoted for a POSIX shell: the
// command line to run the same command again.
func commandLine(fs *flag.FlagSet, name string, drop []string, extra ...string) string {
	words := []string{"rewind", name}
	fs.Visit(func(f *flag.Flag) {
		if slices.Contains(drop, f.Name) {
			return
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			if v := f.Value.String(); v == "true" {
				words = append(words, "--"+f.Name)
			} else {
				words = append(words, "--"+f.Name+"="+v)
			}
			return
		}
		words = append(words, "--"+f.Name, shellQuote(f.Value.String()))
	})
	for _, w := range extra {
		words = append(words, shellQuote(w))
	}
	return strings.Join(words, " ")
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
