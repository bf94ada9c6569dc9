//go:build unix

package indexer

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockDir takes an exclusive lock on dir/rewind.lock and writes this
// process's ID into it, so a second process can say who holds the store.
// Pebble takes its own lock too; this one exists for the clear message.
func lockDir(dir string) (io.Closer, error) {
	path := filepath.Join(dir, "rewind.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open store %s: lock: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder := "another process"
			if b, rerr := os.ReadFile(path); rerr == nil {
				if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
					holder = fmt.Sprintf("another process (pid %d)", pid)
				}
			}
			return nil, fmt.Errorf("open store %s: %w by %s; wait for it to finish or stop it", dir, ErrLocked, holder)
		}
		return nil, fmt.Errorf("open store %s: lock: %w", dir, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}
