package cli

import (
	"strings"
	"testing"
)

// TestEngineFlagsOnStatsAndHistory: stats and history take query's
// engine flags (bound once, in athenaFlags), and refuse what the Athena
// engine cannot do as usage errors, before any AWS call.
func TestEngineFlagsOnStatsAndHistory(t *testing.T) {
	key := `{"pk":{"S":"t1#1"}}`
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"stats", "--engine", "spark"}, `--engine "spark": want local or athena`},
		{[]string{"history", "--key", key, "--engine", "spark"}, `--engine "spark": want local or athena`},
		{[]string{"stats", "--engine", "athena", "--bucket", "1.0005s"}, "whole milliseconds"},
		{[]string{"stats", "--engine", "athena", "--audit-table", "rewind-audit", "--from", "-1h"}, "leave out --audit-table"},
		{[]string{"history", "--key", key, "--table", "orders", "--engine", "athena", "--audit-table", "rewind-audit"}, "leave out --audit-table"},
	} {
		code, out, errs := runCmd(t, c.args...)
		if code != exitUsage || out != "" || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit %d naming %q", c.args, code, out, errs, exitUsage, c.want)
		}
	}
	// The shared flags are there, with query's help.
	for _, cmd := range []string{"stats", "history"} {
		_, _, errs := runCmd(t, cmd, "--help")
		for _, f := range []string{"-engine", "-workgroup", "-output", "-database", "-athena-table", "-location"} {
			if !strings.Contains(errs, f) {
				t.Errorf("%s --help lacks %s:\n%s", cmd, f, errs)
			}
		}
	}
}
