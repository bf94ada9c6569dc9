package cli

import (
	"flag"
	"fmt"
	"io"
	"math"
	"regexp"
	"testing"

	"github.com/ddbrewind/rewind/recover/patch"
)

// TestPatchHelpShowsLibraryDefaults: the engine's flags of patch, verify
// and undo are bound to patch.DefaultOptions, so their help shows the
// library's defaults, whatever they are.
func TestPatchHelpShowsLibraryDefaults(t *testing.T) {
	d := patch.DefaultOptions()
	for _, cmd := range []string{"patch", "verify", "undo"} {
		code, _, stderr := runPatchCLI(t, cmd, "-h")
		if code != exitOK {
			t.Fatalf("%s -h: exit %d", cmd, code)
		}
		want := map[string]string{
			"readers":      fmt.Sprint(d.Readers),
			"max-attempts": fmt.Sprint(d.MaxAttempts),
			"progress":     d.ProgressEvery.String(),
		}
		if cmd != "verify" {
			want["concurrency"] = fmt.Sprint(d.Concurrency)
			switch {
			case d.Rate == patch.AutoRate:
				want["rate"] = "auto"
			case !math.IsInf(d.Rate, 1): // no limit is --rate's zero, which flag shows no default for
				want["rate"] = fmt.Sprint(d.Rate)
			}
		}
		for name, def := range want {
			re := regexp.MustCompile(`(?m)^  -` + name + ` \w+\n(?:    \t.*\n)*?    \t.*\(default ` + regexp.QuoteMeta(def) + `\)$`)
			if !re.MatchString(stderr) {
				t.Errorf("%s -h: --%s does not show the library's default %s:\n%s", cmd, name, def, stderr)
			}
		}
	}
}

// TestRateFlagZeroIsNoLimit: --rate 0 is the library's NoRateLimit, and
// prints back as 0 in the command to continue.
func TestRateFlagZeroIsNoLimit(t *testing.T) {
	o := patch.DefaultOptions()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var pf progressFlag
	bindOptions(fs, &Env{Getenv: func(string) string { return "" }}, &o, &pf, true)
	if err := fs.Parse([]string{"--rate", "0"}); err != nil {
		t.Fatal(err)
	}
	if !math.IsInf(o.Rate, 1) || o.Validate() != nil {
		t.Fatalf("--rate 0: Rate %g, Validate %v; want NoRateLimit, valid", o.Rate, o.Validate())
	}
	if got := commandLine(fs, "patch", nil); got != "rewind patch --rate 0" {
		t.Errorf("command line %q", got)
	}
	if err := fs.Parse([]string{"--rate", "250"}); err != nil || o.Rate != 250 {
		t.Errorf("--rate 250: Rate %g, %v", o.Rate, err)
	}
}
