package cli

import (
	"bytes"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/ddbrewind/rewind/indexer"
	"github.com/ddbrewind/rewind/indexer/indextest"
	"github.com/ddbrewind/rewind/query"
)

// openCounter is a vfs.FS that records the sstables opened through it.
type openCounter struct {
	vfs.FS
	mu     sync.Mutex
	opened map[string]bool
}

func (c *openCounter) Open(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	if strings.HasSuffix(name, ".sst") {
		c.mu.Lock()
		c.opened[filepath.Base(name)] = true
		c.mu.Unlock()
	}
	return c.FS.Open(name, opts...)
}

func (c *openCounter) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for n := range c.opened {
		out = append(out, n)
	}
	clear(c.opened)
	return out
}

// TestQueryColdWarningsOpenNothing checks a cold query's tail: once a
// tenant's key set is printed, the warnings about what the store lacks
// (FindMissing, capture gaps, unindexed windows) open no sstable the
// answer and Open have not: an answer with an item in it already shows
// that the store holds the tenant and events in the window, so the time
// ordering's first and last files are not read for the store's time range.
func TestQueryColdWarningsOpenNothing(t *testing.T) {
	src := t.TempDir()
	evs := indextest.NewGen(11).Events(2000)
	if err := indextest.WriteDir(src, indextest.Objects("capture", evs, 100)); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(t.TempDir(), "index")
	if code, _, stderr := runPatchCLI(t, "index", "--source", src, "--store", store); code != 0 {
		t.Fatalf("index: exit %d\n%s", code, stderr)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	fs := &openCounter{FS: vfs.Default, opened: map[string]bool{}}
	st, err := indexer.Open(store, indexer.Options{ReadOnly: true, FS: fs, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	tenant := evs[0].Tenant
	from, to := evs[0].Time.Add(-1), evs[0].Time.Add(3600e9)
	q := query.Query{From: from, To: to, Tenants: []string{tenant}}
	var out bytes.Buffer
	res, err := query.KeySet(t.Context(), st, q, &out, query.KeySetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Items == 0 {
		t.Fatalf("tenant %q has no item in [%s, %s); the test needs one", tenant, from, to)
	}
	if len(fs.take()) == 0 {
		t.Fatal("the counting FS saw no sstable opened by the key set: it is not in use")
	}
	var stderr bytes.Buffer
	env := &Env{Stdout: io.Discard, Stderr: &stderr, Log: quiet}
	if err := warnStore(env, "query", st, q, false, false); err != nil {
		t.Fatalf("warnStore: %v\n%s", err, stderr.String())
	}
	if opened := fs.take(); len(opened) > 0 {
		t.Errorf("the warnings after a non-empty answer opened %d more sstable(s): %v", len(opened), opened)
	}
	if stderr.Len() > 0 {
		t.Errorf("warnings for a query that names only what the store holds:\n%s", stderr.String())
	}
	// A tenant the store does not hold still gets its warning.
	q.Tenants = []string{tenant + "-typo"}
	stderr.Reset()
	err = warnStore(env, "query", st, q, true, false)
	if err == nil || !strings.Contains(stderr.String(), tenant+"-typo") {
		t.Errorf("warnStore for a missing tenant: %v, stderr %q; want a partial error and a warning naming it", err, stderr.String())
	}
}
