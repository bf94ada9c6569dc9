//go:build unix

package rewind

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const spoolData = `{"table":"t","key":{"pk":{"S":"a"}}}` + "\n" + `{"table":"t","key":{"pk":{"S":"b"}}}` + "\n"

// readTwice reads a spooled key set twice through KeySetReader and checks
// both passes see both keys.
func readTwice(t *testing.T, s *SpooledKeySet) {
	t.Helper()
	for pass := 1; pass <= 2; pass++ {
		var got []string
		err := ReadKeySetFile(s.Path, func(e KeySetEntry) error {
			got = append(got, e.Key[0].Value)
			return nil
		})
		if err != nil || strings.Join(got, ",") != "a,b" {
			t.Fatalf("pass %d over %s read %q, %v; want a,b", pass, s.Path, got, err)
		}
	}
}

// checkCopy checks that s is a private copy in dir with the key set's
// bytes, and that Close removes it.
func checkCopy(t *testing.T, s *SpooledKeySet, dir, want string) {
	t.Helper()
	if !s.Copied || s.Path == s.Name || filepath.Dir(s.Path) != dir {
		t.Fatalf("spooled %+v, want a copy in %s", s, dir)
	}
	fi, err := os.Stat(s.Path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("copy has mode %v, want 0600", fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(s.Path); string(b) != want || s.Bytes != int64(len(want)) {
		t.Errorf("copy holds %q (Bytes %d), want %q", b, s.Bytes, want)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Close left %s behind: %v", s.Path, err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestSpoolKeySetRegularFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.jsonl")
	if err := os.WriteFile(path, []byte(spoolData), 0o644); err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	s, err := SpoolKeySet(context.Background(), path, tmp)
	if err != nil {
		t.Fatal(err)
	}
	if s.Copied || s.Path != path || s.Name != path || s.Bytes != 0 {
		t.Fatalf("spooled %+v, want the file itself", s)
	}
	readTwice(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("Close removed the user's key set: %v", err)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Fatalf("a regular file was copied: %v", ents)
	}
}

// TestSpoolKeySetPipes covers what a shell hands over instead of a file:
// a FIFO, a pipe by descriptor (as <(cmd) gives), standard input as "-" and
// as /dev/stdin.
func TestSpoolKeySetPipes(t *testing.T) {
	for _, kind := range []string{"fifo", "/dev/fd/N", "/proc/self/fd/N", "-"} {
		t.Run(kind, func(t *testing.T) {
			var name string
			write := func(w *os.File) {
				go func() {
					w.WriteString(spoolData[:10])
					time.Sleep(20 * time.Millisecond) // a slow writer: two reads
					w.WriteString(spoolData[10:])
					w.Close()
				}()
			}
			switch kind {
			case "fifo":
				name = filepath.Join(t.TempDir(), "keys.fifo")
				if err := syscall.Mkfifo(name, 0o600); err != nil {
					t.Fatal(err)
				}
				go func() {
					w, err := os.OpenFile(name, os.O_WRONLY, 0)
					if err != nil {
						t.Error(err)
						return
					}
					write(w)
				}()
			default:
				r, w, err := os.Pipe()
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				write(w)
				switch kind {
				case "-":
					old := os.Stdin
					os.Stdin = r
					t.Cleanup(func() { os.Stdin = old })
					name = kind
				default:
					name = strings.Replace(kind, "N", fmt.Sprint(r.Fd()), 1)
				}
			}
			tmp := t.TempDir()
			s, err := SpoolKeySet(context.Background(), name, tmp)
			if err != nil {
				t.Fatal(err)
			}
			if s.Name != name {
				t.Errorf("Name %q, want %q", s.Name, name)
			}
			readTwice(t, s)
			checkCopy(t, s, tmp, spoolData)
		})
	}
}

// TestSpoolKeySetDevStdin runs the test binary with a pipe on its
// standard input, as in `producer | rewind patch --keys /dev/stdin`.
func TestSpoolKeySetDevStdin(t *testing.T) {
	if os.Getenv("REWIND_SPOOL_STDIN_CHILD") == "1" {
		s, err := SpoolKeySet(context.Background(), "/dev/stdin", os.Getenv("REWIND_SPOOL_TMP"))
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		readTwice(t, s)
		b, _ := os.ReadFile(s.Path)
		fmt.Printf("copied=%v path=%s\n%s", s.Copied, s.Path, b)
		os.Exit(0)
	}
	tmp := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSpoolKeySetDevStdin$")
	cmd.Env = append(os.Environ(), "REWIND_SPOOL_STDIN_CHILD=1", "REWIND_SPOOL_TMP="+tmp)
	cmd.Stdin = strings.NewReader(spoolData) // exec feeds it through a pipe
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	head, body, _ := strings.Cut(string(out), "\n")
	if !strings.HasPrefix(head, "copied=true path="+tmp+"/rewind-keyset-") || body != spoolData {
		t.Fatalf("child spooled /dev/stdin as %q with %q, want a copy in %s with the key set", head, body, tmp)
	}
}

func TestSpoolKeySetDescriptorToRegularFileIsCopied(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.jsonl")
	if err := os.WriteFile(path, []byte(spoolData), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tmp := t.TempDir()
	s, err := SpoolKeySet(context.Background(), fmt.Sprintf("/dev/fd/%d", f.Fd()), tmp)
	if err != nil {
		t.Fatal(err)
	}
	readTwice(t, s)
	checkCopy(t, s, tmp, spoolData)
}

func TestSpoolKeySetCharacterDevice(t *testing.T) {
	tmp := t.TempDir()
	s, err := SpoolKeySet(context.Background(), "/dev/null", tmp)
	if err != nil {
		t.Fatal(err)
	}
	checkCopy(t, s, tmp, "")
}

func TestSpoolKeySetErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, tmp, want string }{
		{"", "", "empty file name (use - for standard input)"},
		{dir, "", dir + " is a directory"},
		{filepath.Join(dir, "missing.jsonl"), "", "missing.jsonl: no such file"},
		{"/dev/null", filepath.Join(dir, "no-such-dir"), "spool key set /dev/null: make a private copy"},
	} {
		s, err := SpoolKeySet(context.Background(), tc.name, tc.tmp)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("SpoolKeySet(%q, %q) = %+v, %v; want an error with %q", tc.name, tc.tmp, s, err, tc.want)
		}
	}
}

// TestSpoolKeySetCancel: a writer that never finishes must not hang the
// copy past ctx, and the partial copy is removed.
func TestSpoolKeySetCancel(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	w.WriteString(spoolData)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	tmp := t.TempDir()
	start := time.Now()
	s, err := SpoolKeySet(ctx, fmt.Sprintf("/dev/fd/%d", r.Fd()), tmp)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("SpoolKeySet = %+v, %v; want context.DeadlineExceeded", s, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v to notice the deadline", d)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Errorf("partial copy left behind: %v", ents)
	}
}
