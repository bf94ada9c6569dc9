package cli

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer"
	"github.com/ddbrewind/rewind/query"
	"github.com/ddbrewind/rewind/recover/patch"
)

// historySource gives the patcher each item's state at a time, rebuilt
// from the indexed change history (query.StateAt) instead of read from a
// restored table: the recovery that needs no PITR restore. Keys whose
// history cannot prove their state are reported unknown, never guessed.
// It is wired here, in cmd, so that recover never imports the index.
type historySource struct {
	st    *indexer.Store
	table string
	at    time.Time
}

var _ patch.Source = (*historySource)(nil)

// States rebuilds each key's state at h.at; a key whose history cannot
// prove it is Unknown, with the reason.
func (h *historySource) States(ctx context.Context, keys []rewind.Key) ([]patch.State, error) {
	out := make([]patch.State, len(keys))
	for i, k := range keys {
		s, err := query.StateAt(ctx, h.st, h.table, k, h.at)
		if err != nil {
			return nil, err
		}
		if !s.Known {
			out[i] = patch.State{Unknown: s.Reason}
			continue
		}
		out[i] = patch.State{Item: s.Item}
	}
	return out, nil
}

func (h *historySource) String() string {
	return fmt.Sprintf("history at %s (index %s)", h.at.UTC().Format(time.RFC3339Nano), h.st.Dir())
}

// historyFlags are --from-history, --at and --store, shared by patch and
// verify.
type historyFlags struct {
	on    bool
	at    timeFlag
	store storeFlag
}

func (h *historyFlags) register(fs *flag.FlagSet, env *Env) {
	fs.BoolVar(&h.on, "from-history", false, "take each item's wanted state from the indexed history at --at instead of a restored table (--from); no restore needed")
	fs.Var(&h.at, "at", "with --from-history: the time to rebuild the items as of, e.g. just before the bad deploy (RFC 3339 with zone, epoch seconds or -2h)")
	h.store.register(fs, env)
}

// source checks that --keys, --to and one source of wanted states
// (--from, or --from-history --at) are given, opens the store and returns
// the history source for table, with a close func; nil when
// --from-history is off.
func (h *historyFlags) source(env *Env, keys, from, table string) (*historySource, func(), error) {
	if keys == "" || table == "" || (from == "" && !h.on) {
		return nil, nil, usagef("--keys (or --plan), --to and --from (or --from-history --at T) are required")
	}
	if !h.on {
		if h.at.set {
			return nil, nil, usagef("--at goes with --from-history")
		}
		return nil, func() {}, nil
	}
	if from != "" {
		return nil, nil, usagef("--from-history and --from both name the wanted state: use one")
	}
	if !h.at.set {
		return nil, nil, usagef("--from-history needs --at: the time to rebuild the items as of")
	}
	st, err := h.store.open(env, true)
	if err != nil {
		return nil, nil, err
	}
	return &historySource{st: st, table: table, at: h.at.t}, func() { st.Close() }, nil
}

// engineFlags are what patch and verify share: the engine's options and
// --progress, --shard, and the wanted state's source (--from, or
// --from-history --at with the store).
type engineFlags struct {
	opts  patch.Options
	pf    progressFlag
	hist  historyFlags
	shard string
}

func (e *engineFlags) register(fs *flag.FlagSet, env *Env, writes bool, shardUsage string) {
	fs.StringVar(&e.shard, "shard", "0/1", shardUsage)
	e.opts = patch.DefaultOptions()
	bindOptions(fs, env, &e.opts, &e.pf, writes)
	e.hist.register(fs, env)
}

// config checks the flags after parsing and returns the engine's Config
// with the input, the tables, the shard, the options (progress on stderr,
// plans on a buffered stdout) and the history source filled in, and the
// history source itself (nil with --from). done flushes stdout and closes
// the store; call it once the engine has returned (again is a no-op).
func (e *engineFlags) config(env *Env, input, keys, from, to string) (patch.Config, *historySource, func(), error) {
	hist, closeHist, err := e.hist.source(env, input, from, to)
	if err != nil {
		return patch.Config{}, nil, nil, err
	}
	sh, err := patch.ParseShard(e.shard)
	if err != nil {
		closeHist()
		return patch.Config{}, nil, nil, usagef("--shard: %v", err)
	}
	if err := withProgress(&e.opts, env, &e.pf); err != nil {
		closeHist()
		return patch.Config{}, nil, nil, err
	}
	out := bufio.NewWriterSize(env.Stdout, 64<<10)
	e.opts.Out, e.opts.Log = out, env.Log
	cfg := patch.Config{Keys: keys, From: from, To: to, Shard: sh, Options: e.opts}
	if hist != nil {
		cfg.Source = hist
	}
	closed := false
	done := func() {
		if !closed {
			closed = true
			out.Flush()
			closeHist()
		}
	}
	return cfg, hist, done, nil
}
