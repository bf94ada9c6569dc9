package cli

import (
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
	var ef engineFlags
	ef.register(fs, env, false, "i/n: check only the keys whose hash is i modulo n")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, _, done, err := ef.config(env, *keys, *keys, *from, *to)
	if err != nil {
		return err
	}
	defer done()
	if err := validate(&cfg); err != nil {
		return err
	}
	env.SetContinue("nothing was written; to verify again: " + commandLine(fs, "verify", nil))
	client, err := NewPatchClient(ctx, env, cfg.Options)
	if err != nil {
		return err
	}
	sum, err := patch.Verify(ctx, client, cfg)
	done()
	return finishPatch(env, sum, err, "")
}
