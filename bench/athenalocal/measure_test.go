package athenalocal_test

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ddbrewind/rewind/indexer/indextest"
)

// TestMeasureCompactionAndEngines prints the README's comparison: objects
// per day before and after compaction, time to index the capture from the
// local S3 server, and time to the first key set through index+query and
// through --engine athena on the stand-in, before and after compaction.
// It runs with REWIND_MEASURE=1 only (it takes minutes and asserts only
// that the two paths agree).
func TestMeasureCompactionAndEngines(t *testing.T) {
	if os.Getenv("REWIND_MEASURE") != "1" {
		t.Skip("set REWIND_MEASURE=1 to measure")
	}
	n, _ := strconv.Atoi(os.Getenv("REWIND_MEASURE_EVENTS"))
	if n == 0 {
		n = 40000
	}
	g := indextest.NewGen(99)
	g.Items, g.Span = 2000, 24*time.Hour
	st := newStackFrom(t, g.Events(n), 20)
	measure := func(label string) {
		objs, _ := st.countObjects(t)
		store := filepath.Join(t.TempDir(), "store")
		t0 := time.Now()
		if code, _, errs := st.run(t, "index", "--source", st.location(), "--store", store); code != 0 {
			t.Fatalf("index: %d\n%s", code, errs)
		}
		indexTime := time.Since(t0)
		t1 := time.Now()
		code, local, errs := st.run(t, "query", "--store", store, "--tenants", "acme")
		if code != 0 {
			t.Fatalf("query: %d\n%s", code, errs)
		}
		queryTime := time.Since(t1)
		t2 := time.Now()
		code, remote, errs := st.run(t, "query", "--store", store, "--tenants", "acme", "--engine", "athena", "--athena-poll", "20ms")
		if code != 0 || remote != local {
			os.WriteFile("/tmp/measure-local.jsonl", []byte(local), 0o644)
			os.WriteFile("/tmp/measure-athena.jsonl", []byte(remote), 0o644)
			t.Fatalf("athena: exit %d, equal %v\n%s", code, remote == local, errs)
		}
		athenaTime := time.Since(t2)
		t.Logf("%s: %d events, %d objects/day; index %s + query %s = %s to the key set; --engine athena (stand-in) %s; athena stderr: %s",
			label, n, objs, indexTime.Round(time.Millisecond), queryTime.Round(time.Millisecond), (indexTime + queryTime).Round(time.Millisecond),
			athenaTime.Round(time.Millisecond), errs)
	}
	measure("before compaction")
	t0 := time.Now()
	if code, _, errs := st.run(t, "compact", "--source", st.location(), "--grace", "1m"); code != 0 {
		t.Fatalf("compact: %d\n%s", code, errs)
	}
	t.Logf("compaction took %s", time.Since(t0).Round(time.Millisecond))
	measure("after compaction")
}
