package patch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/ddbrewind/rewind"
	"golang.org/x/time/rate"
)

// UndoConfig says which patch to undo and how. Defaults are those of
// Config.
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
	// an undo can be undone too. Default Journal + ".undo-<UTC time>.journal".
	UndoJournal string

	Rate          float64
	Concurrency   int
	Readers       int
	MaxAttempts   int
	Out           io.Writer
	Progress      io.Writer
	ProgressEvery time.Duration
	Log           *slog.Logger
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
	if ucfg.Journal == "" {
		return nil, errors.New("undo: Journal is required")
	}
	cfg := Config{
		To: ucfg.To, Apply: ucfg.Apply, Force: ucfg.Force,
		Rate: ucfg.Rate, Concurrency: ucfg.Concurrency, Readers: ucfg.Readers, MaxAttempts: ucfg.MaxAttempts,
		Out: ucfg.Out, Progress: ucfg.Progress, ProgressEvery: ucfg.ProgressEvery, Log: ucfg.Log,
		Source: noSource{},
	}
	cfg.ensureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	idx, err := indexJournal(ucfg.Journal, ucfg.To)
	if err != nil {
		return nil, fmt.Errorf("undo: %w", err)
	}
	retryer := NewRetryer(cfg.MaxAttempts)
	opts := []func(*dynamodb.Options){func(o *dynamodb.Options) { o.Retryer = retryer }}
	schema, err := describeKeySchema(ctx, client, cfg.To, opts...)
	if err != nil {
		return nil, fmt.Errorf("undo: production table: %w", err)
	}
	for _, k := range idx.keys {
		if err := schema.check(k.key); err != nil {
			return nil, fmt.Errorf("undo: refused, nothing written: journal %s: line %d: %w", ucfg.Journal, k.line, err)
		}
	}

	sum := &Summary{Tool: "undo", DryRun: !cfg.Apply, Input: ucfg.Journal, To: cfg.To}
	e := &engine{
		cfg:    &cfg,
		tool:   "undo",
		target: &Table{Client: client, Name: cfg.To, Options: opts},
		writer: &writer{client: client, table: cfg.To, keyNames: schema.Names, force: cfg.Force, opts: opts},
		total:  int64(len(idx.keys)),
	}
	if cfg.Rate > 0 {
		e.limiter = rate.NewLimiter(rate.Limit(cfg.Rate), max(1, int(cfg.Rate/10)))
	}
	if cfg.Apply {
		path := ucfg.UndoJournal
		if path == "" {
			path = ucfg.Journal + ".undo-" + cfg.now().UTC().Format("20060102T150405Z") + ".journal"
		}
		if e.journal, err = createJournal(path); err != nil {
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
	sum.Elapsed = time.Since(start)
	if runErr != nil {
		if ctx.Err() != nil {
			sum.Interrupted = true
			return sum, fmt.Errorf("undo: interrupted after %d keys (run undo again: keys already put back are found unchanged): %w", sum.Run.Keys, runErr)
		}
		return sum, runErr
	}
	return sum, nil
}

// noSource stands in for the Source of an undo, whose chunks carry their
// wanted items.
type noSource struct{}

func (noSource) Get(context.Context, []rewind.Key) ([]rewind.Item, error) {
	return nil, errors.New("undo has no source")
}

func (noSource) String() string { return "journal" }

// journalIndex locates, for each key a journal wrote, its first intent and
// its true pre-image.
type journalIndex struct {
	path  string
	byKey map[string]*journalKey
	keys  []*journalKey // in journal order
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

// indexJournal reads the journal once and checks that it patched table to.
func indexJournal(path, to string) (*journalIndex, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	idx := &journalIndex{path: path, byKey: map[string]*journalKey{}}
	jr := newJournalReader(f, path)
	starts := 0
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
			starts++
			if rec.To != to {
				return nil, fmt.Errorf("journal %s: line %d: the journal patched table %q, not %q", path, jr.line, rec.To, to)
			}
		case "intent", "outcome", "replaced":
			if starts == 0 {
				return nil, fmt.Errorf("journal %s: line %d: record before the start record", path, jr.line)
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
				return nil, fmt.Errorf("journal %s: line %d: %s for key %s without an intent", path, jr.line, rec.Op, key)
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
	if starts == 0 {
		return nil, fmt.Errorf("journal %s is empty", path)
	}
	return idx, nil
}

// chunks streams the journal again and cuts undo steps into chunks: for
// each key's first intent, want the pre-image and expect what the patch
// wrote.
func (idx *journalIndex) chunks(f *os.File, size int) func() (*chunk, error) {
	jr := newJournalReader(f, idx.path)
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
