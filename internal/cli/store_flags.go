package cli

import (
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer"
	"github.com/ddbrewind/rewind/query"
)

// defaultStore is where index, query, history and stats keep the index
// unless --store or $REWIND_STORE say otherwise.
const defaultStore = "rewind-index"

// storeFlag is the --store flag the index commands share.
type storeFlag struct {
	dir string
	// scan: the command reads one scan's summaries and no images, so a
	// read-only open uses indexer.ScanCacheSize.
	scan bool
}

func (s *storeFlag) register(fs *flag.FlagSet, env *Env) {
	def := env.Getenv("REWIND_STORE")
	if def == "" {
		def = defaultStore
	}
	fs.StringVar(&s.dir, "store", def, "index store directory ($REWIND_STORE)")
}

// open opens the store; read-only for the query commands.
func (s *storeFlag) open(env *Env, readOnly bool) (*indexer.Store, error) {
	if s.dir == "" {
		return nil, usagef("--store is empty")
	}
	o := indexer.Options{ReadOnly: readOnly, Log: env.Log}
	if readOnly && s.scan {
		o.CacheSize = indexer.ScanCacheSize
	}
	st, err := indexer.Open(s.dir, o)
	if err != nil {
		if errors.Is(err, indexer.ErrLocked) {
			return nil, fmt.Errorf("%w (an index run holds it; queries can run once it is done)", err)
		}
		return nil, err
	}
	return st, nil
}

// windowFlags are --from and --to.
type windowFlags struct {
	from, to timeFlag
}

func (w *windowFlags) register(fs *flag.FlagSet) {
	fs.Var(&w.from, "from", "first time in the window, inclusive: RFC 3339 with zone, epoch seconds or relative (-2h); default: the beginning")
	fs.Var(&w.to, "to", "end of the window, exclusive: an event at exactly --to is left out; default: no end")
}

func (w *windowFlags) check() error {
	if w.from.set && w.to.set && !w.to.t.After(w.from.t) {
		return usagef("--to %s is not after --from %s: the window [from, to) is empty", w.to.String(), w.from.String())
	}
	return nil
}

// queryFlags are the filters query and stats share.
type queryFlags struct {
	windowFlags
	tenants, tables, actions, changed listFlag
	ttl                               string
	keyPrefixes, matches              repeatFlag
}

func (q *queryFlags) register(fs *flag.FlagSet) {
	q.windowFlags.register(fs)
	fs.Var(&q.tenants, "tenants", "keep these tenants (comma-separated, repeatable)")
	fs.Var(&q.tables, "tables", "keep these source tables")
	fs.Var(&q.actions, "actions", "keep these actions: INSERT, MODIFY, REMOVE")
	fs.StringVar(&q.ttl, "ttl", "include", "TTL expiries: include, exclude or only")
	fs.Var(&q.keyPrefixes, "key-prefix", "keep items whose key attribute starts with a prefix: attr=prefix (repeatable, all must hold)")
	fs.Var(&q.matches, "match", "keep changes whose old or new image has attr=value: new.deployVersion=v42, old.status!=paid (repeatable, all must hold)")
	fs.Var(&q.changed, "changed", "keep changes that changed any of these top-level attributes")
}

// query builds the query, turning bad values into usage errors.
func (q *queryFlags) query() (query.Query, error) {
	if err := q.check(); err != nil {
		return query.Query{}, err
	}
	out := query.Query{Tenants: q.tenants, Tables: q.tables, Changed: q.changed}
	if q.from.set {
		out.From = q.from.t
	}
	if q.to.set {
		out.To = q.to.t
	}
	for _, s := range q.actions {
		a, err := rewind.ParseAction(strings.ToUpper(s))
		if err != nil {
			return out, usagef("--actions: %v", err)
		}
		out.Actions = append(out.Actions, a)
	}
	ttl, err := query.ParseTTLFilter(q.ttl)
	if err != nil {
		return out, usagef("--ttl: %v", err)
	}
	out.TTL = ttl
	for _, s := range q.keyPrefixes {
		p, err := query.ParseKeyPrefix(s)
		if err != nil {
			return out, usagef("--key-prefix: %v", err)
		}
		out.KeyPrefixes = append(out.KeyPrefixes, p)
	}
	for _, s := range q.matches {
		m, err := query.ParseMatch(s)
		if err != nil {
			return out, usagef("--match: %v", err)
		}
		out.Matches = append(out.Matches, m)
	}
	if err := out.Validate(); err != nil {
		return out, usagef("%v", err)
	}
	return out, nil
}
