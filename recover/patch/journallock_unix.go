//go:build unix

package patch

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// flockFile takes a non-blocking flock on f; errLockHeld when another
// open file holds it.
func flockFile(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return errLockHeld
	}
	if err != nil {
		return fmt.Errorf("flock: %w", err)
	}
	return nil
}
