package rewind

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// SpooledKeySet is a key set that can be read more than once, with every
// read seeing the same bytes: the patcher reads a key set once to check
// every key before the first write, then again to patch.
type SpooledKeySet struct {
	// Name is the key set as the user named it ("-" for standard input),
	// for messages: give it to NewKeySetReader so errors name what the
	// user typed, not the private copy.
	Name string
	// Path is the file to open: Name itself for a regular file, else the
	// private copy.
	Path string
	// Copied reports whether Path is a private copy, removed by Close.
	Copied bool
	// Bytes is the size of the copy; 0 when not Copied.
	Bytes int64
}

// KeySetIsSpooled reports whether SpoolKeySet copies the key set called
// name rather than reading it where it is: it is not a regular file.
func KeySetIsSpooled(name string) bool {
	if name == "-" || isDescriptorPath(name) {
		return true
	}
	fi, err := os.Stat(name)
	return err == nil && !fi.Mode().IsRegular() && !fi.IsDir()
}

// SpoolKeySet makes the key set called name readable more than once.
//
// A regular file is used where it is: Path is name and nothing is copied.
// Anything else is read once, to its end, into a private temporary file
// (mode 0600, "rewind-keyset-*.jsonl" in tmpDir, or os.TempDir() when
// tmpDir is ""), and Path names the copy:
//   - "-", standard input;
//   - /dev/stdin, /dev/fd/N and /proc/self/fd/N, as shell process
//     substitution (<(cmd)) gives, even when they lead to a regular file,
//     since reopening one may share the first reader's file offset;
//   - a pipe or FIFO, a character device, a socket.
//
// Canceling ctx stops the copy between reads, and interrupts a read that is
// waiting for data where the file supports deadlines (pipes and FIFOs do;
// a terminal on standard input may not). On error nothing is left behind.
// The caller must call Close, which removes the copy.
func SpoolKeySet(ctx context.Context, name, tmpDir string) (*SpooledKeySet, error) {
	if name == "" {
		return nil, errors.New("spool key set: empty file name (use - for standard input)")
	}
	s := &SpooledKeySet{Name: name, Path: name}
	if name != "-" && !isDescriptorPath(name) {
		fi, err := os.Stat(name)
		if err != nil {
			return nil, fmt.Errorf("spool key set: %w", err)
		}
		if fi.IsDir() {
			return nil, fmt.Errorf("spool key set: %s is a directory, not a key set", name)
		}
		if fi.Mode().IsRegular() {
			return s, nil
		}
	}
	in := os.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("spool key set: %w", err)
		}
		defer f.Close()
		in = f
	}
	out, err := os.CreateTemp(tmpDir, "rewind-keyset-*.jsonl")
	if err != nil {
		return nil, fmt.Errorf("spool key set %s: make a private copy: %w (set the temporary directory to one that is writable)", name, err)
	}
	n, err := copyContext(ctx, out, in)
	if cerr := out.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		os.Remove(out.Name())
		return nil, fmt.Errorf("spool key set %s: copy to %s: %w", name, out.Name(), err)
	}
	s.Path, s.Copied, s.Bytes = out.Name(), true, n
	return s, nil
}

// Close removes the private copy, if there is one.
func (s *SpooledKeySet) Close() error {
	if s == nil || !s.Copied {
		return nil
	}
	s.Copied = false
	if err := os.Remove(s.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove the copy of key set %s: %w", s.Name, err)
	}
	return nil
}

// isDescriptorPath reports whether name reaches a file through a file
// descriptor of this process rather than by a name of its own.
func isDescriptorPath(name string) bool {
	return name == "/dev/stdin" || strings.HasPrefix(name, "/dev/fd/") || strings.HasPrefix(name, "/proc/self/fd/")
}

// copyContext copies src to dst until EOF or until ctx is done.
func copyContext(ctx context.Context, dst io.Writer, src *os.File) (int64, error) {
	// A read blocked on a pipe returns once its deadline passes; files
	// without deadlines ignore this and are checked between reads.
	stop := context.AfterFunc(ctx, func() { src.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 256<<10)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m, rerr := src.Read(buf)
		if m > 0 {
			if _, err := dst.Write(buf[:m]); err != nil {
				return n, err
			}
			n += int64(m)
		}
		switch {
		case rerr == nil:
		case errors.Is(rerr, io.EOF):
			return n, nil
		case errors.Is(rerr, os.ErrDeadlineExceeded) && ctx.Err() != nil:
			return n, ctx.Err()
		default:
			return n, rerr
		}
	}
}
