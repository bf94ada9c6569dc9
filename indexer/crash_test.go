package indexer_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer"
	"github.com/ddbrewind/rewind/indexer/indextest"
	"github.com/ddbrewind/rewind/internal/crashtest"
)

// crashChild is the name under which the test binary runs as an ingest
// process: see TestMain.
const crashChild = "ingest"

func TestMain(m *testing.M) {
	crashtest.RunChild(crashChild, ingestChild)
	os.Exit(m.Run())
}

// ingestChild ingests <source> into <store> in small batches, as
// `rewind index` would, and exits 0 when done.
func ingestChild(args []string) int {
	if len(args) != 2 {
		fmt.Fprintln(os.Stderr, "want: source store")
		return 2
	}
	srcDir, storeDir := args[0], args[1]
	s, err := indexer.Open(storeDir, indexer.Options{Log: quiet})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	src, err := indexer.NewDirSource(srcDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// Progress on stdout after every object lets the parent pick its
	// moment whatever the machine's speed.
	progress := func(p indexer.Progress) { fmt.Printf("%d\n", p.Ingested+p.Failed) }
	cfg := indexer.Config{BatchObjects: 3, Workers: 2, Log: quiet, Progress: progress, ProgressInterval: time.Nanosecond}
	if _, err := s.Ingest(context.Background(), src, cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := s.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// startChild starts an ingest process; its Lines read the number of
// objects committed so far, one line per object.
func startChild(t *testing.T, src, store string) *crashtest.Child {
	t.Helper()
	return crashtest.Start(t, crashtest.Command(crashChild, []string{src, store}), true)
}

// snapshot is everything a store holds, and what queries see of it.
type snapshot struct {
	count   int64
	objects int
	dump    []byte
}

func takeSnapshot(t *testing.T, dir string) snapshot {
	t.Helper()
	s, err := indexer.Open(dir, indexer.Options{ReadOnly: true, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var snap snapshot
	if snap.count, err = s.Count(); err != nil {
		t.Fatal(err)
	}
	s.Objects(func(indexer.ObjectInfo) error { snap.objects++; return nil })
	var buf bytes.Buffer
	if err := indexer.DumpForTest(s, &buf); err != nil {
		t.Fatal(err)
	}
	snap.dump = buf.Bytes()
	return snap
}

// TestCrashSafety kills ingest processes with SIGKILL at random moments,
// reruns them, and checks the store ends up exactly as after one clean
// run: same keys and values (events, indexes, manifest, count).
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	src := t.TempDir()
	evs := indextest.NewGen(9).Events(700)
	objs := indextest.Objects("capture", evs, 25)
	// Retried batches: duplicates whose first copy may be in another batch.
	for k, v := range indextest.Objects("capture-retry", append(append([]rewind.ChangeEvent{}, evs[300:340]...), evs[600:660]...), 30) {
		objs[k] = v
	}
	if err := indextest.WriteDir(src, objs); err != nil {
		t.Fatal(err)
	}

	// The reference: one uninterrupted child.
	ref := filepath.Join(crashtest.TmpfsDir(t), "ref")
	start := time.Now()
	if err := startChild(t, src, ref).Wait(); err != nil {
		t.Fatalf("clean ingest: %v", err)
	}
	perObject := time.Since(start) / time.Duration(len(objs))
	want := takeSnapshot(t, ref)
	if want.count != int64(len(evs)) || want.objects != len(objs) {
		t.Fatalf("clean ingest: %d events in %d objects, want %d in %d", want.count, want.objects, len(evs), len(objs))
	}

	rng := crashtest.Rand(t)
	const runs = 10
	midway := 0
	for run := range runs {
		dir := filepath.Join(crashtest.TmpfsDir(t), fmt.Sprint("run", run))
		// One or two kills, each after a random number of objects and a
		// random fraction of the next one's time, then a run to the end.
		kills := 1 + rng.IntN(2)
		for range kills {
			c := startChild(t, src, dir)
			after := rng.IntN(len(objs))
			for n := 0; n < after && c.Lines.Scan(); n++ {
			}
			c.KillAfter(time.Duration(rng.Int64N(int64(perObject) + 1)))
		}
		if _, err := os.Stat(dir); err == nil {
			if part := takeSnapshot(t, dir); part.objects > 0 && part.objects < len(objs) {
				midway++
			}
		}
		if err := startChild(t, src, dir).Wait(); err != nil {
			t.Fatalf("run %d: ingest after kill: %v", run, err)
		}
		got := takeSnapshot(t, dir)
		if got.count != want.count || got.objects != want.objects || !bytes.Equal(got.dump, want.dump) {
			t.Fatalf("run %d: after %d kill(s) and a rerun the store differs: %d events in %d objects, want %d in %d",
				run, kills, got.count, got.objects, want.count, want.objects)
		}
	}
	// Most kills must land mid-ingest, or the test proves little.
	if midway < 3 {
		t.Fatalf("only %d of %d runs were killed mid-ingest", midway, runs)
	}
	t.Logf("%d of %d runs killed mid-ingest", midway, runs)
}
