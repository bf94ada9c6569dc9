package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/ddbrewind/rewind"
)

func init() { register(&keysCmd{}) }

// keysCmd works on key-set files. `rewind keys merge a.jsonl b.jsonl`
// writes their union: the answer to "items selected by this query or that
// one" (the bug's overwrites by their deploy version, its deletes by time
// and tenant, say), one line per item, sorted, ready for rewind patch.
type keysCmd struct{}

func (*keysCmd) Name() string     { return "keys" }
func (*keysCmd) Synopsis() string { return "merge key sets (union, one line per item, sorted)" }

func (*keysCmd) Run(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "keys", "merge FILE... > merged.jsonl")
	tmp := fs.String("tmp", "", "directory for spilled runs when the union outgrows memory (default: the system's)")
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
		return parseFlags(fs, args[:1]) // usage on stderr, exit 0
	}
	if len(args) == 0 || args[0] != "merge" {
		fs.Usage()
		return usagef("want: rewind keys merge FILE...")
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err // usage printed; exit 0 as for every -h
		}
		return &usageError{err.Error()}
	}
	files := fs.Args()
	if len(files) == 0 {
		return usagef("keys merge: name at least one key-set file")
	}
	w := rewind.NewKeySetWriter(env.Stdout)
	w.TempDir = *tmp
	read := 0
	for _, f := range files {
		n := 0
		if err := rewind.ReadKeySetFile(f, func(e rewind.KeySetEntry) error {
			n++
			return w.Add(e)
		}); err != nil {
			return err
		}
		fmt.Fprintf(env.Stderr, "keys merge: %s: %d items\n", f, n)
		read += n
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	fmt.Fprintf(env.Stderr, "keys merge: %d lines from %d files, %d distinct items\n", read, len(files), w.Written())
	return nil
}
