package query

import (
	"io"
	"slices"
	"strings"
	"testing"
)

// TestAthenaCSV reads Athena's result CSV: quoted values with doubled
// quotes, commas and line breaks inside (a \r\n kept as is), NULL as an
// empty unquoted field, the last record with or without its newline.
func TestAthenaCSV(t *testing.T) {
	for _, c := range []struct {
		in   string
		want [][]string
		bad  bool
	}{
		{in: "\"a\",\"b\"\n\"1\",\"x\"\"y\"\n", want: [][]string{{"a", "b"}, {"1", `x"y`}}},
		{in: "\"a\",\"b\"\n\"t\r\nu,v\",\n,\"\"", want: [][]string{{"a", "b"}, {"t\r\nu,v", ""}, {"", ""}}},
		{in: "\"a\"\r\n\"1\"\r\n", want: [][]string{{"a"}, {"1"}}},
		{in: "\"a\",\"b\"\n\"1\"x,\"2\"\n", bad: true},
		{in: "\"a\"\n\"open\n", bad: true},
		{in: "\"a\"\nx\"y\n", bad: true},
	} {
		r := newAthenaCSV(strings.NewReader(c.in))
		var got [][]string
		var err error
		for {
			var rec []string
			rec, err = r.read()
			if err != nil {
				break
			}
			got = append(got, slices.Clone(rec))
		}
		if c.bad {
			if err == io.EOF {
				t.Errorf("%q: read %q without an error", c.in, got)
			}
			continue
		}
		if err != io.EOF || !slices.EqualFunc(got, c.want, slices.Equal) {
			t.Errorf("%q: %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}
