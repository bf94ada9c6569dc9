package indexer

import (
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// TestSmallRuns: runs are of two or more adjacent small files of one
// space, never records, cut where their input passes mergedMax.
func TestSmallRuns(t *testing.T) {
	file := func(space byte, from, to int, size uint64) pebble.SSTableInfo {
		var f pebble.SSTableInfo
		f.Smallest.UserKey = fmt.Appendf(nil, "%c%04d", space, from)
		f.Largest.UserKey = fmt.Appendf(nil, "%c%04d", space, to)
		f.Size = size
		return f
	}
	const mb = 1 << 20
	files := []pebble.SSTableInfo{
		file('i', 0, 1, mb), file('i', 2, 3, mb), // a run
		file('n', 0, 1, mb), file('n', 2, 3, 20*mb), file('n', 4, 5, mb), // a big file breaks it: no run
		file('r', 0, 1, mb), file('r', 2, 3, mb), // records: never
	}
	for k := range 10 { // 150 MB of small time files: cut in three
		files = append(files, file('t', 2*k, 2*k+1, 15*mb))
	}
	var got []string
	for _, r := range smallRuns(files) {
		got = append(got, fmt.Sprintf("%s-%s", r[0], r[1]))
	}
	want := []string{"i0000-i0003", "t0000-t0007", "t0008-t0015", "t0016-t0019"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("runs %v, want %v", got, want)
	}
}
