package readonly_test

import (
	"slices"
	"testing"

	"github.com/ddbrewind/rewind/recover/readonly"
)

// FuzzParseValue: whatever the parameter holds (it is edited by hand in
// the console too), parsing is stable and the ids are storable.
func FuzzParseValue(f *testing.F) {
	for _, s := range []string{"none", "t1,t2", " t1 , none,t1,,", "all", ",", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		ids := readonly.ParseValue(v)
		if !slices.IsSorted(ids) {
			t.Fatalf("ParseValue(%q) = %q, not sorted", v, ids)
		}
		again := readonly.ParseValue(readonly.FormatValue(ids))
		if !slices.Equal(ids, again) {
			t.Fatalf("ParseValue(%q) = %q, but its formatted value parses to %q", v, ids, again)
		}
		for _, id := range ids {
			if id == readonly.Placeholder || id == "" {
				t.Fatalf("ParseValue(%q) kept %q", v, id)
			}
		}
	})
}
