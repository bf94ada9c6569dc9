package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/ddbrewind/rewind"
)

func init() { register(&keysCmd{}) }

// keysCmd works on key-set files:
//
//   - `rewind keys merge a.jsonl b.jsonl` writes their union: the answer
//     to "items selected by this query or that one" (the bug's overwrites
//     by their deploy version, its deletes by time and tenant, say);
//   - `rewind keys subtract A B` writes the items of A that are not in B:
//     a diff's key set less the keys known to be good (a query for the
//     fixed deploy's writes, say);
//   - `rewind keys intersect A B` writes the items of A that are also in B.
//
// Each writes one line per item, sorted, ready for rewind patch. Items are
// the same when their table and canonical key are. An input may be "-"
// (standard input, once) or a pipe such as <(rewind query ...); an empty
// input is warned about, never silently taken for "no keys".
type keysCmd struct{}

func (*keysCmd) Name() string { return "keys" }
func (*keysCmd) Synopsis() string {
	return "merge key sets (union), subtract one from another, or intersect them; one line per item, sorted"
}

const keysUsage = "merge FILE... | subtract A B | intersect A B   > out.jsonl   (a FILE may be - for standard input)"

func (*keysCmd) Run(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "keys", keysUsage)
	tmp := fs.String("tmp", "", "directory for spilled runs when a key set outgrows memory (default: the system's)")
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
		return parseFlags(fs, args[:1]) // usage on stderr, exit 0
	}
	verb := ""
	if len(args) > 0 {
		verb = args[0]
	}
	switch verb {
	case "merge", "subtract", "intersect":
	default:
		fs.Usage()
		return usagef("want: rewind keys %s", keysUsage)
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err // usage printed; exit 0 as for every -h
		}
		return &usageError{err.Error()}
	}
	files := fs.Args()
	if verb == "merge" {
		return keysMerge(ctx, env, files, *tmp)
	}
	if len(files) != 2 {
		return usagef("keys %s: name two key-set files, A and B (got %d)", verb, len(files))
	}
	return keysJoin(ctx, env, verb, files[0], files[1], *tmp)
}

func keysMerge(ctx context.Context, env *Env, files []string, tmp string) error {
	if len(files) == 0 {
		return usagef("keys merge: name at least one key-set file")
	}
	if err := stdinOnce("merge", files); err != nil {
		return err
	}
	w := rewind.NewKeySetWriter(env.Stdout)
	w.TempDir = tmp
	var read int64
	for _, f := range files {
		n, err := readKeySetInput(ctx, f, tmp, w.Add)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Stderr, "keys merge: %s: %d items\n", f, n)
		warnEmptyKeySet(env, "merge", f, n)
		read += n
	}
	if err := w.Close(); err != nil {
		return err
	}
	fmt.Fprintf(env.Stderr, "keys merge: %d lines from %d files, %d distinct items\n", read, len(files), w.Written())
	return nil
}

// sortedKeySet writes the key set in file, sorted with one line per item
// (as keys merge would), to a private temporary file, and returns its
// path and its number of items. Memory stays bounded: KeySetWriter spills.
func sortedKeySet(ctx context.Context, file, tmp string) (string, int64, error) {
	out, err := os.CreateTemp(tmp, "rewind-keys-sorted-*.jsonl")
	if err != nil {
		return "", 0, fmt.Errorf("sort %s: %w (name a writable directory with --tmp)", file, err)
	}
	w := rewind.NewKeySetWriter(out)
	w.TempDir = tmp
	_, err = readKeySetInput(ctx, file, tmp, w.Add)
	if err == nil {
		err = w.Close()
	}
	if cerr := out.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("sort %s: %w", file, cerr)
	}
	if err != nil {
		os.Remove(out.Name())
		return "", 0, err
	}
	return out.Name(), w.Written(), nil
}

// keysJoin writes the items of a that are not in b (subtract) or that are
// (intersect), as a holds them, streaming both sorted sets side by side.
func keysJoin(ctx context.Context, env *Env, verb, a, b, tmp string) error {
	if err := stdinOnce(verb, []string{a, b}); err != nil {
		return err
	}
	sa, na, err := sortedKeySet(ctx, a, tmp)
	if err != nil {
		return err
	}
	defer os.Remove(sa)
	sb, nb, err := sortedKeySet(ctx, b, tmp)
	if err != nil {
		return err
	}
	defer os.Remove(sb)
	fa, err := os.Open(sa)
	if err != nil {
		return err
	}
	defer fa.Close()
	fb, err := os.Open(sb)
	if err != nil {
		return err
	}
	defer fb.Close()
	ra, rb := rewind.NewKeySetReader(fa, a), rewind.NewKeySetReader(fb, b)
	next := func(r *rewind.KeySetReader) (*rewind.KeySetEntry, []byte, error) {
		e, err := r.Next()
		if errors.Is(err, io.EOF) {
			return nil, nil, nil
		}
		if err != nil {
			return nil, nil, err
		}
		return &e, []byte(e.Table + "\x00" + string(e.Key.Encode())), nil
	}
	ea, ka, err := next(ra)
	if err != nil {
		return err
	}
	eb, kb, err := next(rb)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(env.Stdout, 64<<10)
	var written, common int64
	var line []byte
	for ea != nil {
		c := -1
		if eb != nil {
			c = bytes.Compare(ka, kb)
		}
		if c > 0 {
			if eb, kb, err = next(rb); err != nil {
				return err
			}
			continue
		}
		if c == 0 {
			common++
		}
		if (c == 0) == (verb == "intersect") {
			line = append(ea.AppendJSON(line[:0]), '\n')
			if _, err := w.Write(line); err != nil {
				return fmt.Errorf("keys %s: write: %w", verb, err)
			}
			written++
		}
		if ea, ka, err = next(ra); err != nil {
			return err
		}
		if written%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("keys %s: write: %w", verb, err)
	}
	warnEmptyKeySet(env, verb, a, na)
	warnEmptyKeySet(env, verb, b, nb)
	switch verb {
	case "subtract":
		fmt.Fprintf(env.Stderr, "keys subtract: %s: %d items; %s: %d items; %d removed; %d written\n", a, na, b, nb, common, written)
	default:
		fmt.Fprintf(env.Stderr, "keys intersect: %s: %d items; %s: %d items; %d in both, written\n", a, na, b, nb, written)
	}
	if common == 0 && na > 0 && nb > 0 {
		fmt.Fprintf(env.Stderr, "keys %s: warning: no item of %s is in %s: check that both name the table the same way (a name, not an ARN, in \"table\") and hold keys of the same table\n", verb, b, a)
	}
	return nil
}

// readKeySetInput calls fn for each entry of the key set called name: a
// file, "-" for standard input, or a pipe such as <(rewind query ...),
// which is copied aside first (rewind.SpoolKeySet) so that an interrupt
// stops a read waiting on it. Errors name the input as the user typed it,
// with the line. It returns the number of entries read.
func readKeySetInput(ctx context.Context, name, tmp string, fn func(rewind.KeySetEntry) error) (int64, error) {
	sp, err := rewind.SpoolKeySet(ctx, name, tmp)
	if err != nil {
		return 0, err
	}
	defer sp.Close()
	f, err := os.Open(sp.Path)
	if err != nil {
		return 0, fmt.Errorf("read key set: %w", err)
	}
	defer f.Close()
	r := rewind.NewKeySetReader(f, name)
	var n int64
	for {
		e, err := r.Next()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("read key set: %w", err)
		}
		if err := fn(e); err != nil {
			return n, err
		}
		n++
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return n, err
			}
		}
	}
}

// stdinOnce refuses standard input named twice: it can be read once.
func stdinOnce(verb string, files []string) error {
	seen := false
	for _, f := range files {
		if f != "-" && f != "/dev/stdin" {
			continue
		}
		if seen {
			return usagef("keys %s: standard input (- or /dev/stdin) is named twice; it can be read once: save one of the key sets to a file", verb)
		}
		seen = true
	}
	return nil
}

// warnEmptyKeySet says so when an input holds no item: an empty file is
// more often a query that failed or wrote elsewhere than a real answer.
func warnEmptyKeySet(env *Env, verb, name string, n int64) {
	if n == 0 {
		fmt.Fprintf(env.Stderr, "keys %s: warning: %s holds no item (empty): check that the command that wrote it succeeded\n", verb, name)
	}
}
