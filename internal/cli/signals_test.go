package cli

import (
	"io"
	"testing"
)

// TestCommandLine: the command to continue is the one that ran, with the
// flags it was given (quoted for a shell), some dropped, some added.
func TestCommandLine(t *testing.T) {
	env := &Env{Stderr: io.Discard}
	fs := newFlags(env, "patch", "")
	fs.String("keys", "", "")
	fs.String("to", "", "")
	fs.String("journal", "", "")
	fs.Bool("yes", false, "")
	fs.Bool("force", false, "")
	fs.Float64("rate", 1000, "")
	if err := parseFlags(fs, []string{"--keys", "/inc/it's here.jsonl", "--to", "orders", "--yes", "--force=false", "--journal", "old.journal", "--rate", "50"}); err != nil {
		t.Fatal(err)
	}
	got := commandLine(fs, "patch", []string{"journal"}, "--resume", "--journal", "/j/p.journal")
	want := `rewind patch --force=false --keys '/inc/it'\''s here.jsonl' --rate 50 --to orders --yes --resume --journal /j/p.journal`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if got := shellQuote(""); got != "''" {
		t.Errorf("empty word quoted as %s", got)
	}
}
