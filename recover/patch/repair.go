package patch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
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

// resumeState is what a resumed run takes over from the journal of the
// interrupted one.
type resumeState struct {
	// repairs are the reverts it owed.
	repairs []pendingRepair
	// inflight holds, by canonical key, what the interrupted run saw of
	// each key it had journaled an intent for but no outcome: its write
	// may or may not have landed. The resumed run plans those keys against
	// it as against a reviewed plan, so an item the application changed
	// meanwhile is a conflict, not overwritten by a fresh plan.
	inflight map[string]*plannedState
}

// readResumeState reads the journal for replaced records of runs without
// force that no later outcome record for the same key settles, and for
// intents without an outcome.
func readResumeState(path string) (*resumeState, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	jr := newJournalReader(f, path)
	pending := map[string]*pendingRepair{}
	inflight := map[string]*plannedState{}
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
		case "replaced", "outcome", "intent":
			key, err := rewind.ParseKey(rec.Key)
			if err != nil {
				return nil, fmt.Errorf("journal %s: line %d: key: %w", path, jr.line, err)
			}
			enc := string(key.Encode())
			switch rec.Op {
			case "outcome":
				delete(pending, enc)
				delete(inflight, enc)
				continue
			case "intent":
				before, err1 := parseJournalItem(rec.Before)
				after, err2 := parseJournalItem(rec.After)
				if err := errors.Join(err1, err2); err != nil {
					return nil, fmt.Errorf("journal %s: line %d: %w", path, jr.line, err)
				}
				inflight[enc] = &plannedState{before: rewind.ItemDigest(before), after: rewind.ItemDigest(after), resumed: true}
				continue
			}
			delete(inflight, enc) // settled by its repair
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
	st := &resumeState{inflight: inflight}
	for _, enc := range order {
		if p, ok := pending[enc]; ok {
			st.repairs = append(st.repairs, *p)
			delete(pending, enc)
		}
	}
	return st, nil
}

// repairPending finishes, before any new work of a resumed run, the
// reverts the crashed run owed: each item it overwrote although it had
// changed since planning is put back, conditional on production still
// holding what the write left. Each repaired key is reported as a
// conflict (as the crashed run would have reported it) and then left out
// of the replanning, so that the resumed run does not overwrite the change
// it has just put back. It returns the keys settled.
func (e *engine) repairPending(ctx context.Context, pending []pendingRepair) (map[string]bool, error) {
	settled := map[string]bool{}
	for _, p := range pending {
		s := &Step{Line: p.line, Key: p.key, Action: ActionRestore, Before: p.old, After: p.wrote}
		if p.wrote == nil {
			s.Action = ActionDelete
		}
		r := result{step: s, status: StatusConflict, current: p.old, hasCurrent: true,
			err: fmt.Errorf("key %s: changed since it was planned and overwritten by the interrupted run; put back on resume", p.key)}
		_, _, err := e.writer.do(ctx, p.key, p.old, p.wrote, true)
		var ccf *types.ConditionalCheckFailedException
		switch {
		case err == nil:
		case errors.As(err, &ccf) && sameState(nilIfEmpty(ccf.Item), p.old):
			// Put back already (the revert landed before the crash).
		case errors.As(err, &ccf):
			r.current = nilIfEmpty(ccf.Item)
			r.err = fmt.Errorf("key %s: changed since it was planned and overwritten by the interrupted run, then changed again: left alone; the item it overwrote is in the journal's replaced record", p.key)
		default:
			r = result{step: s, status: StatusFailed, err: fmt.Errorf("key %s: putting back the item the interrupted run overwrote failed (it is in the journal's replaced record; resume again): %w", p.key, err)}
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
