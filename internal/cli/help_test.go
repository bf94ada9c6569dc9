package cli

import (
	"strings"
	"testing"
)

// TestEveryHelpExitsZero: -h and --help print the command's usage on
// stderr and exit 0, for every subcommand, with and without its verb.
func TestEveryHelpExitsZero(t *testing.T) {
	verbs := map[string][]string{"keys": {"merge"}, "pitr": {"enable", "status"}, "readonly": {"on", "off", "status"}}
	if len(commands) < 10 {
		t.Fatalf("only %d commands registered", len(commands))
	}
	for _, c := range commands {
		lines := [][]string{{c.Name()}}
		for _, v := range verbs[c.Name()] {
			lines = append(lines, []string{c.Name(), v})
		}
		for _, line := range lines {
			for _, h := range []string{"-h", "--help"} {
				args := append(append([]string{}, line...), h)
				code, stdout, stderr := runIndexCLI(t, args...)
				if code != exitOK || !strings.Contains(stderr, "Usage: rewind "+c.Name()) || stdout != "" {
					t.Errorf("rewind %s: exit %d, stdout %q, stderr:\n%s", strings.Join(args, " "), code, stdout, stderr)
				}
			}
		}
	}
}
