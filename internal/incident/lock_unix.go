//go:build unix

package incident

import (
	"os"
	"syscall"
)

// flock takes an exclusive flock on f: waiting for it when wait, else
// failing at once when another open file holds it. flock locks belong to
// the open file, so two opens in one process exclude each other too, and
// the kernel releases them when the process dies.
func flock(f *os.File, wait bool) error {
	how := syscall.LOCK_EX
	if !wait {
		how |= syscall.LOCK_NB
	}
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			return err
		}
	}
}

func unlock(f *os.File) { syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }
