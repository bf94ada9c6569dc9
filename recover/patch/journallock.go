package patch

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"sync"
	"time"
)

// ErrJournalInUse is returned (wrapped, with who holds it) when another
// process holds a journal's lock.
var ErrJournalInUse = errors.New("journal is in use")

var errLockHeld = errors.New("lock held")

// journalLock is an exclusive lock on a journal, held by one process for as
// long as it reads or writes the journal: a patch writing it (a first run
// or a resume), or an undo reading it. It is a flock on the sidecar file
// <journal>.lock, so the kernel releases it when the process dies, however
// it dies; the file holds who took the lock, for the refusal message, and
// is left in place (removing it would let two processes lock two different
// files under one name).
type journalLock struct {
	path string
	f    *os.File
	once sync.Once
}

// lockHolder is what the lock file says about the process holding it.
type lockHolder struct {
	PID     int    `json:"pid"`
	User    string `json:"user"`
	Host    string `json:"host"`
	Since   string `json:"since"`
	Command string `json:"command"`
}

func lockPath(journal string) string { return journal + ".lock" }

// lockJournal takes journal's lock, without waiting: if another process
// holds it, it fails with ErrJournalInUse, naming that process.
func lockJournal(journal string) (*journalLock, error) {
	path := lockPath(journal)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal %s: lock: %w", journal, err)
	}
	if err := flockFile(f); err != nil {
		defer f.Close()
		if errors.Is(err, errLockHeld) {
			return nil, journalInUse(journal, f)
		}
		return nil, fmt.Errorf("journal %s: lock %s: %w", journal, path, err)
	}
	h := lockHolder{PID: os.Getpid(), Since: time.Now().UTC().Format(time.RFC3339), Command: strings.Join(os.Args, " ")}
	if len(h.Command) > 300 {
		h.Command = h.Command[:300] + "..."
	}
	h.Host, _ = os.Hostname()
	if u, err := user.Current(); err == nil {
		h.User = u.Username
	}
	b, _ := json.Marshal(h)
	// Who holds the lock is for the message only: failing to say it is no
	// reason to fail.
	if err := f.Truncate(0); err == nil {
		f.WriteAt(append(b, '\n'), 0)
	}
	return &journalLock{path: path, f: f}, nil
}

// journalInUse says who holds the lock of journal, as its lock file tells.
func journalInUse(journal string, f *os.File) error {
	b, _ := io.ReadAll(io.LimitReader(f, 4096))
	var h lockHolder
	if json.Unmarshal(b, &h) != nil || h.PID == 0 {
		return &inUseError{fmt.Sprintf("journal %s is in use by another process (one just starting): wait for it to finish; if none is running, something else holds %s open (find it with lsof)",
			journal, lockPath(journal))}
	}
	return &inUseError{fmt.Sprintf("journal %s is in use by process %d since %s (started by user %s on host %s: %s): wait for it to finish, or if it is hung, stop it (on %s: kill %d) and run this again; if that process is gone, something else holds %s open (find it with lsof)",
		journal, h.PID, h.Since, h.User, h.Host, h.Command, h.Host, h.PID, lockPath(journal))}
}

// inUseError is ErrJournalInUse with who holds the journal.
type inUseError struct{ msg string }

func (e *inUseError) Error() string        { return e.msg }
func (e *inUseError) Is(target error) bool { return target == ErrJournalInUse }

// release gives the lock up; releasing twice is a no-op.
func (l *journalLock) release() {
	if l == nil {
		return
	}
	l.once.Do(func() { l.f.Close() })
}
