package patch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/ddbrewind/rewind"
)

// UndoConfig says which patch to undo and how.
type UndoConfig struct {
	// Journal is the journal of the patch to undo. Required.
	Journal string
	// To is the production table. Required; it must be the table the
	// journal patched.
	To string
	// Apply writes; default false, a dry run.
	Apply bool
	// Force puts pre-images back even over items changed since the patch.
	Force bool
	// UndoJournal is where the undo journals its own pre-images, so that
	// an undo can be undone too. Default Journal + ".undo-<UTC time>.journal",
	// or with "-2", "-3", ... before ".journal" if that exists.
	UndoJournal string
	// Partial undoes what the intact records of a damaged journal hold:
	// damaged lines (and the other records of the keys they name) are
	// skipped, listed on Out and in Summary.Warnings, and counted in
	// Summary.Skipped, which makes the summary partial. Default false: a
	// damaged journal is refused and nothing is written.
	Partial bool

	// Options are the engine's knobs, as for Patch.
	Options
}

// EnsureDefaults fills in the default of every zero field.
func (u *UndoConfig) EnsureDefaults() { u.Options.EnsureDefaults() }

// Validate checks the configuration (after EnsureDefaults) and names the
// bad field in a *ConfigError.
func (u *UndoConfig) Validate() error {
	switch {
	case u.Journal == "":
		return configErrorf("Journal", "Journal (the journal of the patch to undo) is required")
	case u.To == "":
		return configErrorf("To", "To (the production table the journal patched) is required")
	}
	return u.Options.Validate()
}

// Undo puts back the production items a patch replaced, as recorded in its
// journal. For each key the patch journaled it plans to restore the
// pre-image, the item as it was before the patch first wrote it (the
// intent's "before", or the outcome's "old" where a forced write replaced
// something else). A key whose production item is already the pre-image is
// unchanged; one whose item is neither the pre-image nor what the patch
// wrote was changed since, and is a conflict (Force overrides). Writes are
// conditional exactly as Patch's are.
//
// Undo is idempotent: run it again after a crash and it finds the keys
// already put back unchanged. It keeps one small index entry per journaled
// key in memory (the key and two file offsets).
func Undo(ctx context.Context, client Client, ucfg UndoConfig) (*Summary, error) {
	ucfg.EnsureDefaults()
	if err := ucfg.Validate(); err != nil {
		return nil, err
	}
	// The engine's view: its chunks carry their wanted items, so it has
	// no Source.
	cfg := Config{To: ucfg.To, Apply: ucfg.Apply, Force: ucfg.Force, Options: ucfg.Options}
	start := time.Now()
	// One process per journal: a patch still writing it, or another undo,
	// is refused.
	lock, err := lockJournal(ucfg.Journal)
	if err != nil {
		return nil, fmt.Errorf("undo: %w", err)
	}
	defer lock.release()
	idx, err := indexJournal(ucfg.Journal, ucfg.To, ucfg.Partial)
	if errors.Is(err, errJournalDamaged) {
		return nil, fmt.Errorf("undo: refused, nothing written: %w; to put back what its intact records hold, and only that, run undo again with --partial", err)
	}
	if err != nil {
		return nil, fmt.Errorf("undo: refused, nothing written: %w", err)
	}
	e, err := newEngine(ctx, client, "undo", &cfg)
	if err != nil {
		return nil, err
	}
	schema := e.schema
	for _, k := range idx.keys {
		if err := schema.check(k.key); err != nil {
			return nil, fmt.Errorf("undo: refused, nothing written: journal %s: line %d: %w", ucfg.Journal, k.line, err)
		}
	}

	sum := &Summary{Tool: "undo", DryRun: !cfg.Apply, Input: ucfg.Journal, To: cfg.To}
	idx.report(sum, &cfg)
	e.total = int64(len(idx.keys))
	if cfg.Apply {
		path := ucfg.UndoJournal
		if path == "" {
			// A new one each time, even for undos within one second.
			base := ucfg.Journal + ".undo-" + cfg.now().UTC().Format("20060102T150405Z")
			path = base + ".journal"
			for n := 2; n < 100; n++ {
				if e.journal, err = createJournal(path); !errors.Is(err, os.ErrExist) {
					break
				}
				path = fmt.Sprintf("%s-%d.journal", base, n)
			}
		} else {
			e.journal, err = createJournal(path)
		}
		if err != nil {
			if errors.Is(err, os.ErrExist) {
				return nil, fmt.Errorf("undo: undo journal %s already exists: name another, or leave the undo journal out and each undo gets its own", path)
			}
			return nil, fmt.Errorf("undo: %w", err)
		}
		if err := e.journal.start(startRecord{Tool: "undo", Time: cfg.now().UTC().Format(time.RFC3339), Keys: ucfg.Journal, To: cfg.To, Force: cfg.Force}); err != nil {
			e.journal.close()
			return nil, fmt.Errorf("undo: %w", err)
		}
		sum.Journal = path
	}

	f, err := os.Open(ucfg.Journal)
	if err != nil {
		return nil, fmt.Errorf("undo: %w", err)
	}
	defer f.Close()
	runErr := e.run(ctx, idx.chunks(f, cfg.BatchSize))
	sum.Run, sum.Counts = e.counts()
	sum.Writes, sum.Rate = e.adapt.stats(), e.rate
	sum.Elapsed = time.Since(start)
	if runErr != nil {
		sum.Err = runErr
		if ctx.Err() != nil {
			sum.Interrupted = true
			return sum, fmt.Errorf("undo: interrupted after %d keys (undo is idempotent: run the same undo again to continue; keys already put back are found unchanged): %w", sum.Run.Keys, runErr)
		}
		return sum, runErr
	}
	return sum, nil
}

// journalIndex locates, for each key a journal wrote, its first intent and
// its true pre-image.
type journalIndex struct {
	path    string
	partial bool
	version int
	byKey   map[string]*journalKey
	keys    []*journalKey // in journal order
	// damage lists what a partial index skipped; excluded counts the keys
	// dropped because a damaged line names them.
	damage   []journalDamage
	excluded int
	named    int // distinct keys the damage names
	// ended: the last run has an end record; runLine is its start line;
	// lines is the number of lines read.
	ended   bool
	runLine int
	lines   int
	noStart bool // partial: no intact start record, the table is unchecked
}

type journalKey struct {
	key       rewind.Key
	line      int
	intentOff int64
	// preOff is the offset of an outcome whose "old" is the pre-image; -1
	// when the intent's "before" is.
	preOff  int64
	written bool
}

// indexJournal reads the journal once, checking it (see journalReader),
// and checks that it patched table to. With partial, damage is skipped and
// listed instead of refused, and every key a damaged line names is left
// out: its intact records cannot be trusted to hold its true pre-image (a
// damaged outcome may have held the "old" one).
func indexJournal(path, to string, partial bool) (*journalIndex, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	idx := &journalIndex{path: path, partial: partial, byKey: map[string]*journalKey{}}
	jr := newJournalReader(f, path)
	jr.partial = partial
	starts, records := 0, 0
	drop := map[string]bool{} // keys named by damage
	named := 0                // damage entries whose keys are in drop
	for {
		rec, err := jr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		records++
		switch rec.Op {
		case "start":
			starts++
			if rec.To != to {
				return nil, fmt.Errorf("journal %s: line %d: the journal patched table %q, not %q", path, jr.line, rec.To, to)
			}
		case "end":
		case "intent", "outcome", "replaced":
			if starts == 0 {
				if !partial || len(jr.damage) == 0 {
					return nil, fmt.Errorf("journal %s: line %d: record before the start record", path, jr.line)
				}
				idx.noStart = true // the start record is among the damage
			}
			key, err := rewind.ParseKey(rec.Key)
			if err != nil {
				return nil, fmt.Errorf("journal %s: line %d: key: %w", path, jr.line, err)
			}
			enc := string(key.Encode())
			k := idx.byKey[enc]
			if rec.Op == "intent" {
				if k == nil {
					k = &journalKey{key: key, line: jr.line, intentOff: jr.recOff, preOff: -1}
					idx.byKey[enc] = k
					idx.keys = append(idx.keys, k)
				}
				continue
			}
			if k == nil {
				if !partial {
					return nil, fmt.Errorf("journal %s: line %d: %s for key %s without an intent", path, jr.line, rec.Op, key)
				}
				for ; named < len(jr.damage); named++ {
					if d := jr.damage[named]; d.Key != nil {
						drop[string(d.Key.Encode())] = true
					}
				}
				if !drop[enc] { // else a consequence of damage already listed
					jr.damage = append(jr.damage, journalDamage{Line: jr.line, Key: key, Reason: "outcome without an intent: the intent, with the pre-image, is lost"})
				}
				drop[enc] = true
				named = len(jr.damage)
				continue
			}
			switch {
			case k.written:
			case rec.Op == "replaced":
				// The write landed over another item than planned: that
				// item is the true pre-image.
				k.written, k.preOff = true, jr.recOff
			case rec.Status == string(StatusWritten):
				k.written = true
			}
		default:
			return nil, fmt.Errorf("journal %s: line %d: unknown record %q", path, jr.line, rec.Op)
		}
	}
	if err := jr.checkDurable(); err != nil {
		return nil, err
	}
	if records == 0 && len(jr.damage) == 0 {
		return nil, fmt.Errorf("journal %s is empty", path)
	}
	if starts == 0 && !partial {
		return nil, fmt.Errorf("journal %s has no start record", path)
	}
	idx.version, idx.ended, idx.runLine, idx.lines, idx.damage = jr.version, jr.ended, jr.runLine, jr.line, jr.damage
	for _, d := range idx.damage {
		if d.Key != nil {
			drop[string(d.Key.Encode())] = true
		}
	}
	idx.named = len(drop)
	if len(drop) > 0 {
		keys := idx.keys[:0]
		for _, k := range idx.keys {
			enc := string(k.key.Encode())
			if drop[enc] {
				delete(idx.byKey, enc)
				idx.excluded++
				continue
			}
			keys = append(keys, k)
		}
		idx.keys = keys
	}
	return idx, nil
}

// maxDamageListed bounds the damaged lines the summary lists; all are on
// Out.
const maxDamageListed = 20

// report puts what the index found wrong with the journal into the
// summary's warnings, logs it, and lists each damaged place on Out as a
// "skipped" line:
//
//	{"line":243,"key":{...}|null,"status":"skipped","error":"..."}
//
// (key is what the damaged line seems to name: unverified).
func (idx *journalIndex) report(sum *Summary, cfg *Config) {
	if idx.version == 1 {
		w := fmt.Sprintf("journal %s is version 1, written by an older rewind: its records have no checksums or sequence numbers, so damage to it cannot be found; check what this undo puts back", idx.path)
		sum.Warnings = append(sum.Warnings, w)
		cfg.Log.Warn(w)
	}
	if idx.version == 2 && !idx.ended {
		w := fmt.Sprintf("the patch did not finish: it crashed or is still running (its last run, from line %d of the journal, has no end record); this undo puts back what the journal holds, up to line %d", idx.runLine, idx.lines)
		sum.Warnings = append(sum.Warnings, w)
		cfg.Log.Warn(w)
	}
	if idx.noStart {
		sum.Warnings = append(sum.Warnings, fmt.Sprintf("the journal's start record is damaged: that it patched table %s could not be checked", cfg.To))
	}
	if len(idx.damage) == 0 {
		return
	}
	var lines, missing, unknown int64
	for _, d := range idx.damage {
		if d.Missing > 0 {
			missing += d.Missing
		} else {
			lines++
		}
		if d.Key == nil {
			unknown++
		}
	}
	sum.Skipped = lines + missing
	head := fmt.Sprintf("journal %s is DAMAGED: with --partial, %d damaged lines were skipped and %d records are missing; the keys they name (%d keys, with all their records) were NOT put back", idx.path, lines, missing, idx.named)
	if unknown > 0 {
		head += fmt.Sprintf(", and %d places name no readable key: the keys there are unknown and were NOT put back either (find them in the patch's key set or restore the table)", unknown)
	}
	sum.Warnings = append(sum.Warnings, head)
	cfg.Log.Warn(head)
	var b []byte
	for i, d := range idx.damage {
		if i < maxDamageListed {
			sum.Warnings = append(sum.Warnings, fmt.Sprintf("skipped: journal %s: %s: NOT put back", idx.path, d))
		}
		b = append(b[:0], `{"line":`...)
		b = strconv.AppendInt(b, int64(d.Line), 10)
		b = append(b, `,"key":`...)
		if d.Key != nil {
			b = d.Key.AppendJSON(b)
		} else {
			b = append(b, "null"...)
		}
		b = append(b, `,"status":"skipped","error":`...)
		b = appendString(b, fmt.Sprintf("journal %s: %s: not put back", idx.path, d))
		cfg.Out.Write(append(b, "}\n"...))
	}
	if len(idx.damage) > maxDamageListed {
		sum.Warnings = append(sum.Warnings, fmt.Sprintf("... and %d more skipped (all listed on stdout, status \"skipped\")", len(idx.damage)-maxDamageListed))
	}
}

// chunks streams the journal again and cuts undo steps into chunks: for
// each key's first intent, want the pre-image and expect what the patch
// wrote.
func (idx *journalIndex) chunks(f *os.File, size int) func() (*chunk, error) {
	jr := newJournalReader(f, idx.path)
	jr.partial = idx.partial
	seq := 0
	return func() (*chunk, error) {
		c := &chunk{seq: seq, wantGiven: true}
		for len(c.steps) < size {
			rec, err := jr.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, err
			}
			if rec.Op != "intent" {
				continue
			}
			key, err := rewind.ParseKey(rec.Key)
			if err != nil {
				return nil, fmt.Errorf("journal %s: line %d: key: %w", idx.path, jr.line, err)
			}
			k := idx.byKey[string(key.Encode())]
			if k == nil || k.intentOff != jr.recOff {
				continue // a later intent for a key already planned
			}
			pre, err := parseJournalItem(rec.Before)
			if err != nil {
				return nil, fmt.Errorf("journal %s: line %d: before: %w", idx.path, jr.line, err)
			}
			wrote, err := parseJournalItem(rec.After)
			if err != nil {
				return nil, fmt.Errorf("journal %s: line %d: after: %w", idx.path, jr.line, err)
			}
			if k.preOff >= 0 {
				if pre, err = idx.readOld(f, k.preOff); err != nil {
					return nil, err
				}
			}
			c.steps = append(c.steps, &Step{Line: jr.line, Key: key, After: pre, expect: wrote, hasExpect: true})
			c.lastLine = jr.line
		}
		if len(c.steps) == 0 {
			return nil, io.EOF
		}
		seq++
		return c, nil
	}
}

// readOld reads the "old" item of the outcome record at off.
func (idx *journalIndex) readOld(f *os.File, off int64) (rewind.Item, error) {
	jr := newJournalReader(bufio.NewReader(io.NewSectionReader(f, off, 1<<62)), idx.path)
	jr.version, jr.noSeq = idx.version, true
	rec, err := jr.next()
	if err != nil {
		return nil, fmt.Errorf("journal %s: record at offset %d: %w", idx.path, off, err)
	}
	item, err := parseJournalItem(rec.Old)
	if err != nil {
		return nil, fmt.Errorf("journal %s: record at offset %d: old: %w", idx.path, off, err)
	}
	return item, nil
}
