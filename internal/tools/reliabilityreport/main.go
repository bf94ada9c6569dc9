// Command reliabilityreport renders the figures rewind's reliability
// suites write (see internal/reliability) as Markdown tables, one per
// suite, for the README. `make reliability` runs the suites and then
//
//	go run ./internal/tools/reliabilityreport reliability.jsonl
//
// Each table has a row per scenario: its name (the test's, without
// "TestReliability", or the case's when the scenario names one), its runs
// (1 unless it says) and how many ended exact (yes or no for one run),
// then the other figures in the order the tests gave them. Suites come in the order capture,
// crash, faults, bad input, then any other in order of appearance.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

func main() {
	if len(os.Args) != 2 || strings.HasPrefix(os.Args[1], "-") {
		fmt.Fprintln(os.Stderr, "usage: reliabilityreport <report.jsonl>   (- for stdin)")
		os.Exit(2)
	}
	in := os.Stdin
	if os.Args[1] != "-" {
		f, err := os.Open(os.Args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, "reliabilityreport:", err)
			os.Exit(1)
		}
		defer f.Close()
		in = f
	}
	rows, err := read(in, os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "reliabilityreport:", err)
		os.Exit(1)
	}
	if len(rows) == 0 {
		fmt.Fprintf(os.Stderr, "reliabilityreport: %s holds no figures (did the suites run with REWIND_REPORT set?)\n", os.Args[1])
		os.Exit(1)
	}
	os.Stdout.WriteString(render(rows))
}

// field is one figure, as its JSON text.
type field struct {
	name  string
	value json.RawMessage
}

// row is one report line, its fields in the line's order.
type row struct {
	suite, scenario string
	fields          []field
}

func (r *row) get(name string) (json.RawMessage, bool) {
	for _, f := range r.fields {
		if f.name == name {
			return f.value, true
		}
	}
	return nil, false
}

// read parses the report lines, keeping the order of each line's members.
func read(r io.Reader, name string) ([]row, error) {
	var rows []row
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		rw, err := parseLine(line)
		if err != nil {
			return nil, fmt.Errorf("%s: line %d: %w", name, n, err)
		}
		rows = append(rows, rw)
	}
	return rows, sc.Err()
}

func parseLine(line []byte) (row, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return row{}, errors.New("not a JSON object")
	}
	var rw row
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return row{}, err
		}
		name := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return row{}, fmt.Errorf("figure %q: %w", name, err)
		}
		switch name {
		case "suite":
			err = json.Unmarshal(v, &rw.suite)
		case "scenario":
			err = json.Unmarshal(v, &rw.scenario)
		default:
			rw.fields = append(rw.fields, field{name, v})
		}
		if err != nil {
			return row{}, fmt.Errorf("%q is not a string", name)
		}
	}
	if rw.suite == "" || rw.scenario == "" {
		return row{}, errors.New(`no "suite" or "scenario"`)
	}
	return rw, nil
}

// suiteOrder is the order of the README's tables.
var suiteOrder = []string{"capture", "crash", "faults", "bad input"}

func render(rows []row) string {
	var suites []string
	for _, r := range rows {
		if !slices.Contains(suites, r.suite) {
			suites = append(suites, r.suite)
		}
	}
	rank := func(s string) int {
		if i := slices.Index(suiteOrder, s); i >= 0 {
			return i
		}
		return len(suiteOrder) + slices.Index(suites, s)
	}
	slices.SortStableFunc(suites, func(a, b string) int { return rank(a) - rank(b) })

	var b strings.Builder
	for i, s := range suites {
		if i > 0 {
			b.WriteString("\n")
		}
		var these []row
		for _, r := range rows {
			if r.suite == s {
				these = append(these, r)
			}
		}
		table(&b, s, these)
	}
	return b.String()
}

// table writes one suite's table.
func table(b *strings.Builder, suite string, rows []row) {
	// Columns: the name, runs and exact, then the rest in order of first
	// appearance.
	cols := []string{"runs", "exact"}
	_, byCase := rows[0].get("case")
	for _, r := range rows {
		for _, f := range r.fields {
			if !slices.Contains(cols, f.name) && !(byCase && f.name == "case") {
				cols = append(cols, f.name)
			}
		}
	}
	fmt.Fprintf(b, "### %s\n\n", suite)
	head := "scenario"
	if byCase {
		head = "case"
	}
	b.WriteString("| " + head)
	for _, c := range cols {
		b.WriteString(" | " + c)
	}
	b.WriteString(" |\n|---")
	for range cols {
		b.WriteString("|---")
	}
	b.WriteString("|\n")
	for _, r := range rows {
		name := escape(strings.TrimPrefix(r.scenario, "TestReliability"))
		if v, ok := r.get("case"); byCase && ok {
			name = cell(v)
		}
		b.WriteString("| " + name)
		for _, c := range cols {
			v, ok := r.get(c)
			s := ""
			switch {
			case ok:
				s = cell(v)
			case c == "runs":
				s = "1" // a scenario that does not count its runs ran once
			}
			b.WriteString(" | " + s)
		}
		b.WriteString(" |\n")
	}
}

// cell formats a figure: booleans as yes/no, numbers as they are, strings
// without quotes, anything else as its JSON.
func cell(v json.RawMessage) string {
	var x any
	if err := json.Unmarshal(v, &x); err != nil {
		return escape(string(v))
	}
	switch x := x.(type) {
	case bool:
		if x {
			return "yes"
		}
		return "no"
	case string:
		return escape(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case nil:
		return ""
	}
	return escape(string(v))
}

// escape keeps a cell in its column: no pipes, no line breaks.
func escape(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	s = strings.ReplaceAll(s, "\n", " ")
	return s
}
