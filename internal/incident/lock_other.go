//go:build !unix

package incident

import (
	"errors"
	"os"
)

func flock(f *os.File, wait bool) error {
	return errors.New("incident folders need flock (Linux, macOS, BSD)")
}

func unlock(f *os.File) {}
