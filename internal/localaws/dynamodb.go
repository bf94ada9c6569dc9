package localaws

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// ErrNotInstalled is returned (wrapped) by StartDynamoDB when Java or
// DynamoDB Local is missing. The message says how to install them.
var ErrNotInstalled = errors.New("local AWS test stack not installed")

// LoopbackHost is the only address the local servers listen on.
const LoopbackHost = "127.0.0.1"

// startTimeout bounds how long StartDynamoDB waits for DynamoDB Local to
// answer when ctx has no deadline. It starts in about a second; the rest is
// slack for a loaded machine.
const startTimeout = 60 * time.Second

// launcherBanner is what LocalLauncher prints once it listens.
const launcherBanner = "LocalLauncher listening "

// DynamoDB is a running DynamoDB Local.
type DynamoDB struct {
	// Endpoint is the URL to send requests to, http://127.0.0.1:PORT.
	Endpoint string
	// Host and Port are where it listens; Host is always 127.0.0.1.
	Host string
	Port int
	// Dir is the installation directory it runs from.
	Dir string
	// Args is the command line it runs (java and its arguments).
	Args []string
	// StartTime is how long it took from exec to answering a request.
	StartTime time.Duration

	cmd     *exec.Cmd
	stdin   io.WriteCloser // closing it makes the launcher exit
	log     *tailBuffer
	exited  chan struct{}
	waitErr error

	closeOnce sync.Once
}

// DynamoDBLocalDir returns where DynamoDB Local is installed:
// $REWIND_DYNAMODB_LOCAL_DIR, or .local/dynamodb-local under the repository
// root (the nearest directory above the working directory that holds go.mod).
func DynamoDBLocalDir() (string, error) {
	if d := os.Getenv("REWIND_DYNAMODB_LOCAL_DIR"); d != "" {
		return d, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, ".local", "dynamodb-local"), nil
}

// RepoRoot returns the nearest directory at or above the working directory
// that holds a go.mod; failing that, the one above this source file.
func RepoRoot() (string, error) {
	starts := []string{}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		starts = append(starts, filepath.Dir(file))
	}
	for _, dir := range starts {
		for d := dir; ; {
			// The root is rewind's own module, not a nested one such
			// as bench/.
			if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && isRewindModule(b) {
				return d, nil
			}
			parent := filepath.Dir(d)
			if parent == d {
				break
			}
			d = parent
		}
	}
	return "", errors.New("cannot find the repository root: no go.mod of module " + rewindModule + " above the working directory")
}

const rewindModule = "github.com/ddbrewind/rewind"

func isRewindModule(gomod []byte) bool {
	for _, line := range strings.Split(string(gomod), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`) == rewindModule
		}
	}
	return false
}

// installHint is appended to ErrNotInstalled messages.
const installHint = "run scripts/install-local-aws.sh from the repository root"

// dynamoDBCommand checks the installation in dir and returns the java
// command line that runs the launcher on host, with the kernel picking the
// port.
func dynamoDBCommand(dir, host string) ([]string, error) {
	java, err := exec.LookPath("java")
	if err != nil {
		return nil, fmt.Errorf("%w: java not found on PATH (install a JDK 17 or later, then %s)", ErrNotInstalled, installHint)
	}
	for _, f := range []string{"DynamoDBLocal.jar", "DynamoDBLocal_lib", filepath.Join("launcher", "LocalLauncher.class")} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return nil, fmt.Errorf("%w: no %s in %s (%s, or set REWIND_DYNAMODB_LOCAL_DIR)", ErrNotInstalled, f, dir, installHint)
		}
	}
	return []string{
		java,
		"-Djava.library.path=" + filepath.Join(dir, "DynamoDBLocal_lib"),
		// A plain IPv4 socket: ss then shows 127.0.0.1, not ::ffff:127.0.0.1.
		"-Djava.net.preferIPv4Stack=true",
		// Test workloads are small: a small heap, the serial collector and
		// the client compiler start faster and use less memory.
		"-Xms64m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-cp", filepath.Join(dir, "launcher") + string(os.PathListSeparator) + filepath.Join(dir, "DynamoDBLocal.jar"),
		"LocalLauncher",
		"-host", host,
		"-port", "0",
	}, nil
}

// StartDynamoDB starts DynamoDB Local in memory on 127.0.0.1 and a port the
// kernel picks, and waits until it answers a ListTables call. The caller
// must Close it; it also exits by itself when this process dies, because
// the launcher stops when its stdin closes.
//
// It returns an error wrapping ErrNotInstalled when java or the jar is
// missing.
func StartDynamoDB(ctx context.Context) (*DynamoDB, error) {
	dir, err := DynamoDBLocalDir()
	if err != nil {
		return nil, err
	}
	args, err := dynamoDBCommand(dir, LoopbackHost)
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, startTimeout)
		defer cancel()
	}

	d := &DynamoDB{
		Host:   LoopbackHost,
		Dir:    dir,
		Args:   args,
		log:    &tailBuffer{max: maxLog},
		exited: make(chan struct{}),
	}
	begin := time.Now()

	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = dir // DynamoDB Local may write files in its working directory
	cmd.Env = append(os.Environ(), "DDB_LOCAL_TELEMETRY=0")
	cmd.Stderr = d.log
	setProcessGroup(cmd)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, d.fail(fmt.Errorf("dynamodb local: %w", err))
	}
	if d.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, d.fail(fmt.Errorf("dynamodb local: %w", err))
	}
	if err := cmd.Start(); err != nil {
		return nil, d.fail(fmt.Errorf("dynamodb local: start %s: %w", args[0], err))
	}
	d.cmd = cmd

	// The launcher prints its address on stdout; everything after that
	// goes to the log with stderr.
	addr := make(chan string, 1)
	go func() {
		br := bufio.NewReader(stdout)
		for {
			line, err := br.ReadString('\n')
			if rest, ok := strings.CutPrefix(line, launcherBanner); ok {
				addr <- strings.TrimSpace(rest)
				break
			}
			d.log.Write([]byte(line))
			if err != nil {
				close(addr)
				break
			}
		}
		io.Copy(d.log, br)
		d.waitErr = cmd.Wait()
		close(d.exited)
	}()

	select {
	case a, ok := <-addr:
		if !ok {
			<-d.exited
			return nil, d.fail(fmt.Errorf("dynamodb local exited before listening (%v)%s", d.waitErr, d.logTail()))
		}
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			return nil, d.fail(fmt.Errorf("dynamodb local: bad address %q from launcher", a))
		}
		d.Port, _ = strconv.Atoi(port)
		if host != LoopbackHost {
			return nil, d.fail(fmt.Errorf("dynamodb local listens on %s, want %s", host, LoopbackHost))
		}
	case <-ctx.Done():
		return nil, d.fail(fmt.Errorf("dynamodb local did not start: %w%s", ctx.Err(), d.logTail()))
	}
	d.Endpoint = "http://" + net.JoinHostPort(d.Host, strconv.Itoa(d.Port))

	if err := d.ping(ctx); err != nil {
		return nil, d.fail(fmt.Errorf("dynamodb local at %s does not answer: %w%s", d.Endpoint, err, d.logTail()))
	}
	d.StartTime = time.Since(begin)
	return d, nil
}

// ping sends ListTables until one succeeds. The first request also loads
// most of DynamoDB Local's classes, so later ones are fast.
func (d *DynamoDB) ping(ctx context.Context) error {
	cfg, err := Config(ctx, d.Endpoint, "localawsping")
	if err != nil {
		return err
	}
	client := dynamodb.NewFromConfig(cfg)
	for {
		_, err := client.ListTables(ctx, &dynamodb.ListTablesInput{})
		if err == nil {
			return nil
		}
		select {
		case <-d.exited:
			return fmt.Errorf("exited (%v) after %w", d.waitErr, err)
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// fail stops the process and returns err, which already carries what the
// log said.
func (d *DynamoDB) fail(err error) error {
	d.Close()
	return err
}

// Log returns what DynamoDB Local wrote to stdout and stderr so far (the
// last 256 KiB of it).
func (d *DynamoDB) Log() string { return d.log.String() }

// logTail returns the end of the log, formatted to follow an error message.
func (d *DynamoDB) logTail() string {
	s := strings.TrimSpace(d.Log())
	if s == "" {
		return " (log is empty)"
	}
	if len(s) > 4000 {
		s = "..." + s[len(s)-4000:]
	}
	return "; log:\n" + s
}

// Close stops DynamoDB Local and everything it started. Its data is gone:
// it runs in memory.
func (d *DynamoDB) Close() error {
	d.closeOnce.Do(func() {
		if d.stdin != nil {
			d.stdin.Close()
		}
		if d.cmd != nil && d.cmd.Process != nil {
			// Closing stdin asks the launcher to halt; give it a moment,
			// then kill the whole process group.
			select {
			case <-d.exited:
			case <-time.After(time.Second):
			}
			killProcessGroup(d.cmd)
			<-d.exited
		}
	})
	return nil
}

// maxLog bounds the DynamoDB Local output kept for error messages.
const maxLog = 256 << 10

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
