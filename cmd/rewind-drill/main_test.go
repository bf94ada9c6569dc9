package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// TestUsage: bad flags and values exit 2 before any stack starts.
func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--changes", "0"}, "--changes"},
		{[]string{"--no-such-flag"}, "no-such-flag"},
		{[]string{"--bug-modify", "0", "--bug-delete", "0", "--bug-junk", "0"}, "the bug must do something"},
		{[]string{"--stop-before", "verify"}, "--stop-before"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		var stderr bytes.Buffer
		if code := run(t.Context(), tc.args, io.Discard, &stderr); code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("rewind-drill %s: exit %d, stderr %q; want 2 and %q", strings.Join(tc.args, " "), code, stderr.String(), tc.want)
		}
	}
}
