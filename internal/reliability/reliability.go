// Package reliability is the report mode of rewind's reliability suites
// (the tests named TestReliability…): each scenario hands its figures to
// Report, which logs them and, when $REWIND_REPORT names a file, appends
// them to it as one JSON line. `make reliability` runs the suites with a
// fresh file and renders it with internal/tools/reliabilityreport.
//
// A line is a JSON object whose first members are "suite" and "scenario"
// (the test's name), then the scenario's figures in the order the test
// gave them; by convention "runs" counts the runs and "exact" how many of
// them ended exactly as they should (or is a boolean for a single run).
//
// Only tests import this package.
package reliability

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"testing"
)

// Env is the variable naming the report file.
const Env = "REWIND_REPORT"

// Report logs a scenario's figures and appends them to $REWIND_REPORT, if
// set. kv alternates names (strings) and values, as log/slog's does, so
// that the figures keep their order in the line and in the rendered table.
func Report(t testing.TB, suite string, kv ...any) {
	t.Helper()
	line, err := Line(suite, t.Name(), kv...)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("report: %s", line)
	path := os.Getenv(Env)
	if path == "" {
		return
	}
	// One write of the whole line with O_APPEND: suites in several test
	// processes append to the same file without mixing their lines.
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatalf("report: %v", err)
	}
	defer f.Close()
	if _, err := f.Write(append(line, '\n')); err != nil {
		t.Fatalf("report: %v", err)
	}
}

// Line encodes one report line: suite, scenario, then the pairs of kv.
func Line(suite, scenario string, kv ...any) ([]byte, error) {
	if len(kv)%2 != 0 {
		return nil, fmt.Errorf("report %s: odd number of arguments (%d): want name, value pairs", scenario, len(kv))
	}
	var b bytes.Buffer
	add := func(name string, v any) error {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(name)
		val, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("report %s: figure %q: %w", scenario, name, err)
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(val)
		return nil
	}
	add("suite", suite)
	add("scenario", scenario)
	seen := map[string]bool{"suite": true, "scenario": true}
	for i := 0; i < len(kv); i += 2 {
		name, ok := kv[i].(string)
		if !ok {
			return nil, fmt.Errorf("report %s: argument %d is %T, want a figure's name", scenario, i, kv[i])
		}
		if seen[name] {
			return nil, fmt.Errorf("report %s: figure %q twice", scenario, name)
		}
		seen[name] = true
		if err := add(name, kv[i+1]); err != nil {
			return nil, err
		}
	}
	return append(append([]byte{'{'}, b.Bytes()...), '}'), nil
}
