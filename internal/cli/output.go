package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// What the commands print on stdout, and the list flags, in one place.
// stdout is data: JSON Lines, one object per line, whose "kind" names
// the line type (the README lists each command's line types), or a
// format a flag asked for (--format table). Summaries, warnings and
// progress go to stderr.

// emitJSON writes v to w as one JSON line, with "kind" first: v's fields
// follow, as encoding/json marshals it (v must marshal to an object).
func emitJSON(w io.Writer, kind string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("stdout line %q: %w", kind, err)
	}
	if len(b) < 2 || b[0] != '{' {
		return fmt.Errorf("stdout line %q: %T is not a JSON object", kind, v)
	}
	line := make([]byte, 0, len(b)+len(kind)+12)
	line = fmt.Appendf(line, `{"kind":%q`, kind)
	if len(b) > 2 {
		line = append(line, ',')
		line = append(line, b[1:]...)
	} else {
		line = append(line, '}')
	}
	line = append(line, '\n')
	_, err = w.Write(line)
	return err
}

// listFlag is a comma-separated list flag, repeatable: --tenants a,b
// --tenants c is a, b, c. Blank items are dropped.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			*l = append(*l, x)
		}
	}
	return nil
}

// repeatFlag is a repeatable flag whose values are kept whole (they may
// hold commas).
type repeatFlag []string

func (r *repeatFlag) String() string { return strings.Join(*r, " ") }
func (r *repeatFlag) Set(s string) error {
	*r = append(*r, s)
	return nil
}
