package diff

import (
	"fmt"
	"os"
)

// spillDir is a private directory for one diff's runs, removed at the end
// whatever happened.
type spillDir struct{ dir string }

func newSpillDir(parent string) (*spillDir, error) {
	d, err := os.MkdirTemp(parent, "rewind-diff-*")
	if err != nil {
		return nil, fmt.Errorf("diff: make a directory for sorted runs: %w (name a writable one with --tmp)", err)
	}
	return &spillDir{dir: d}, nil
}

func (s *spillDir) remove() { os.RemoveAll(s.dir) }
