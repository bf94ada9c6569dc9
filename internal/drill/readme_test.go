package drill

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ddbrewind/rewind/internal/localaws"
)

// runnableMarker opens a README code block that TestReadmeRunnable runs:
// "```sh runnable". Such blocks are written for the stack
// `rewind-drill --stop-before readonly` leaves running, in a shell that
// sourced its env file.
const runnableMarker = "```sh runnable"

// readmeBlock is one runnable block and the README line it starts on.
type readmeBlock struct {
	line int
	text string
}

// runnableBlocks returns the README's runnable blocks, in order.
func runnableBlocks(t *testing.T, path string) []readmeBlock {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []readmeBlock
	var cur *readmeBlock
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && strings.TrimSpace(line) == runnableMarker:
			cur = &readmeBlock{line: n}
		case cur != nil && strings.TrimSpace(line) == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		t.Fatalf("%s:%d: runnable block never closed", path, cur.line)
	}
	return blocks
}

// TestReadmeRunnable runs the README's runnable blocks, as a newcomer
// would type them, against the stack the drill leaves running with
// --stop-before readonly, with a rewind built from this tree on PATH; the
// drill then checks the whole table against its ground truth. A block
// that fails names its README line.
func TestReadmeRunnable(t *testing.T) {
	requireStack(t)
	root, err := localaws.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	readme := filepath.Join(root, "README.md")
	blocks := runnableBlocks(t, readme)
	if len(blocks) < 3 {
		t.Fatalf("%s: %d runnable blocks; the by-hand runbook has more", readme, len(blocks))
	}
	bin := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(bin, "rewind"), "./cmd/rewind")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/rewind: %v\n%s", err, out)
	}

	work, shell := t.TempDir(), t.TempDir()
	var progress bytes.Buffer
	cfg := Config{
		Tenants: 4, Affected: 2, Changes: 300,
		Workdir: work, StopBefore: StopBeforeReadonly, EnvFile: filepath.Join(work, "stack.env"),
		Progress: &progress,
		Hand: func(ctx context.Context, envFile string) error {
			for i, b := range blocks {
				script := fmt.Sprintf("set -euo pipefail\n. %s\n%s", shellQuote(envFile), b.text)
				cmd := exec.CommandContext(ctx, "bash", "-c", script)
				cmd.Dir = shell
				cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
				out, err := cmd.CombinedOutput()
				t.Logf("README.md:%d (block %d of %d):\n%s%s", b.line, i+1, len(blocks), b.text, out)
				if err != nil {
					return fmt.Errorf("README.md:%d: runnable block %d: %v\n%s", b.line, i+1, err, out)
				}
			}
			return nil
		},
	}
	o, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	if o.Check != CheckPass || o.Wrong != 0 || o.Items == 0 || o.EnvFile != cfg.EnvFile {
		t.Fatalf("outcome %+v\n%s", o, progress.String())
	}
	for _, want := range []string{"drill: ready: stopped before readonly", "export AWS_ENDPOINT_URL_DYNAMODB="} {
		if !strings.Contains(progress.String(), want) {
			t.Errorf("drill output lacks %q", want)
		}
	}
}
