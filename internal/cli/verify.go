package cli

import (
	"bufio"
	"context"

	"github.com/ddbrewind/rewind/recover/patch"
)

func init() { register(&verifyCmd{}) }

// verifyCmd is `rewind verify`: compare production with the restored table
// for every key of a key set.
type verifyCmd struct{}

func (*verifyCmd) Name() string { return "verify" }
func (*verifyCmd) Synopsis() string {
	return "compare production with the restored table or the history for every key (exit 0 only when all match)"
}

func (c *verifyCmd) Run(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "verify", "--keys impacted.jsonl (--from <restored table> | --from-history --at T) --to <production table>")
	keys := fs.String("keys", "", "key set of the impacted items, JSON Lines (required)")
	from := fs.String("from", "", "table holding the wanted state (or use --from-history)")
	to := fs.String("to", "", "production table (required)")
	shard := fs.String("shard", "0/1", "i/n: check only the keys whose hash is i modulo n")
	opts := patch.DefaultOptions()
	var pf progressFlag
	bindOptions(fs, env, &opts, &pf, false)
	var hf historyFlags
	hf.register(fs, env)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	hist, closeHist, err := hf.source(env, *keys, *from, *to)
	if err != nil {
		return err
	}
	defer closeHist()
	sh, err := patch.ParseShard(*shard)
	if err != nil {
		return usagef("--shard: %v", err)
	}
	if err := withProgress(&opts, env, &pf); err != nil {
		return err
	}
	out := bufio.NewWriterSize(env.Stdout, 64<<10)
	defer out.Flush()
	opts.Out, opts.Log = out, env.Log
	cfg := patch.Config{Keys: *keys, From: *from, To: *to, Shard: sh, Options: opts}
	if hist != nil {
		cfg.Source = hist
	}
	if err := validate(&cfg); err != nil {
		return err
	}
	env.SetContinue("nothing was written; to verify again: " + commandLine(fs, "verify", nil))
	client, err := newPatchClient(ctx, env, cfg.Readers)
	if err != nil {
		return err
	}
	sum, err := patch.Verify(ctx, client, cfg)
	out.Flush()
	return finishPatch(env, sum, err, "")
}
