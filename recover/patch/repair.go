package patch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/ddbrewind/rewind"
)

// pendingRepair is a revert a crashed run owed: its write of key landed
// over old, an item changed since planning, and the process stopped before
// putting old back.
type pendingRepair struct {
	line  int
	key   rewind.Key
	old   rewind.Item
	wrote rewind.Item
}

// findPendingRepairs reads the journal for replaced records of runs without
// force that no later outcome record for the same key settles.
func findPendingRepairs(path string) ([]pendingRepair, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	jr := newJournalReader(f, path)
	pending := map[string]*pendingRepair{}
	var order []string
	force := false
	for {
		rec, err := jr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		switch rec.Op {
		case "start":
			force = rec.Force
		case "replaced", "outcome":
			key, err := rewind.ParseKey(rec.Key)
			if err != nil {
				return nil, fmt.Errorf("journal %s: line %d: key: %w", path, jr.line, err)
			}
			enc := string(key.Encode())
			if rec.Op == "outcome" {
				delete(pending, enc)
				continue
			}
			if force {
				continue // a forced write means to replace; nothing is owed
			}
			old, err := parseJournalItem(rec.Old)
			if err != nil {
				return nil, fmt.Errorf("journal %s: line %d: old: %w", path, jr.line, err)
			}
			wrote, err := parseJournalItem(rec.Wrote)
			if err != nil {
				return nil, fmt.Errorf("journal %s: line %d: wrote: %w", path, jr.line, err)
			}
			if _, ok := pending[enc]; !ok {
				order = append(order, enc)
			}
			pending[enc] = &pendingRepair{line: rec.Line, key: key, old: old, wrote: wrote}
		}
	}
	var out []pendingRepair
	for _, enc := range order {
		if p, ok := pending[enc]; ok {
			out = append(out, *p)
			delete(pending, enc)
		}
	}
	return out, nil
}

// repairPending finishes, before any new work of a resumed run, the
// reverts the crashed run owed: each item it overwrote although it had
// changed since planning is put back, conditional on production still
// holding what the write left. Each repaired key is reported as a
// conflict (as the crashed run would have reported it) and then left out
// of the replanning, so that the resumed run does not overwrite the change
// it has just put back. It returns the keys settled.
func (e *engine) repairPending(ctx context.Context, path string) (map[string]bool, error) {
	pending, err := findPendingRepairs(path)
	if err != nil {
		return nil, fmt.Errorf("resume: %w", err)
	}
	settled := map[string]bool{}
	for _, p := range pending {
		s := &Step{Line: p.line, Key: p.key, Action: ActionRestore, Before: p.old, After: p.wrote}
		if p.wrote == nil {
			s.Action = ActionDelete
		}
		r := result{step: s, status: StatusConflict, current: p.old, hasCurrent: true,
			err: fmt.Errorf("key %s: changed since it was planned and overwritten by the interrupted run; put back on resume", p.key)}
		if _, _, err := e.writer.do(ctx, p.key, p.old, p.wrote, true); err != nil {
			r = result{step: s, status: StatusFailed, err: fmt.Errorf("key %s: putting back the item the interrupted run overwrote failed (it is in the journal's replaced record, line %d): %w", p.key, p.line, err)}
		}
		if err := e.journal.append(appendOutcome(nil, &r)); err != nil {
			return nil, err
		}
		if err := e.journal.sync(); err != nil {
			return nil, err
		}
		e.print(func(dst []byte) []byte { return appendReport(dst, &r) })
		e.mu.Lock()
		e.repaired++
		e.live.addStatus(r.status)
		e.mu.Unlock()
		settled[string(p.key.Encode())] = true
	}
	return settled, nil
}
