package cli

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer"
	"github.com/ddbrewind/rewind/indexer/indextest"
	"github.com/ddbrewind/rewind/internal/crashtest"
	"github.com/ddbrewind/rewind/internal/reliability"
	"github.com/ddbrewind/rewind/recover/patch/patchtest"
)

// The crash reliability suite: the real commands, `rewind index` and
// `rewind patch --yes`, each run in a child process (this test binary,
// re-executed as the CLI: see TestPatchChildProcess) and killed with
// SIGKILL at 20 random points, then rerun or resumed; the outcome must be
// exactly an uninterrupted run's. Each scenario reports its figures (see
// internal/reliability) for `make reliability`.

// crashPoints is how many kills each scenario lands.
const crashPoints = 20

// startCLI starts a child process running one rewind command line.
func startCLI(t *testing.T, env []string, args ...string) *crashtest.Child {
	t.Helper()
	return crashtest.Start(t, crashtest.Command(cliChild, args, env...), false)
}

// storeView is what the query commands show of a store: the key set of
// every change, every change with its images, and the counts.
type storeView struct {
	keyset, events []byte
	count          int64
	objects        int
}

func viewStore(t *testing.T, dir string) storeView {
	t.Helper()
	var v storeView
	code, out, errs := runIndexCLI(t, "query", "--store", dir)
	if code != exitOK {
		t.Fatalf("query %s: exit %d\n%s", dir, code, errs)
	}
	v.keyset = []byte(out)
	code, out, errs = runIndexCLI(t, "query", "--store", dir, "--format", "json")
	if code != exitOK {
		t.Fatalf("query --format json %s: exit %d\n%s", dir, code, errs)
	}
	v.events = []byte(out)
	s, err := indexer.Open(dir, indexer.Options{ReadOnly: true, Log: discardLog})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v.count, err = s.Count(); err != nil {
		t.Fatal(err)
	}
	s.Objects(func(indexer.ObjectInfo) error { v.objects++; return nil })
	return v
}

// committedObjects is how many objects a killed index run left committed
// in its store: 0 when it died before creating the store.
func committedObjects(t *testing.T, dir string) int {
	t.Helper()
	s, err := indexer.Open(dir, indexer.Options{ReadOnly: true, Log: discardLog})
	if err != nil {
		return 0
	}
	defer s.Close()
	n := 0
	s.Objects(func(indexer.ObjectInfo) error { n++; return nil })
	return n
}

// padImages gives every image a pad attribute of n bytes, so that a small
// number of events fills several of the index's 1 MiB batches.
func padImages(t *testing.T, evs []rewind.ChangeEvent, n int) {
	t.Helper()
	pad := &types.AttributeValueMemberS{Value: strings.Repeat("p", n)}
	for i := range evs {
		for _, im := range []*rewind.Image{&evs[i].OldImage, &evs[i].NewImage} {
			if *im == nil {
				continue
			}
			item, err := rewind.ParseItem(*im)
			if err != nil {
				t.Fatal(err)
			}
			item["pad"] = pad
			*im = rewind.ItemJSON(item)
		}
	}
}

// TestReliabilityCrashIndexer kills `rewind index` at random points (now
// and then its rerun too), reruns it to the end, and checks that what the
// store answers (the key set of all changes, every change with its
// images, the event and object counts) is byte for byte what an
// uninterrupted run's store answers.
func TestReliabilityCrashIndexer(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	src := t.TempDir()
	evs := indextest.NewGen(19).Events(1500)
	padImages(t, evs, 2000)
	objs := indextest.Objects("capture", evs, 40)
	// Retried batches: duplicates whose first copy may be in another batch.
	for k, v := range indextest.Objects("capture-retry", slices.Concat(evs[300:360], evs[1100:1180]), 35) {
		objs[k] = v
	}
	if err := indextest.WriteDir(src, objs); err != nil {
		t.Fatal(err)
	}
	// 1 MiB batches: 5 commits, so that kills land between them too.
	indexArgs := func(store string) []string {
		return []string{"index", "--source", src, "--store", store, "--batch-mb", "1", "--workers", "2"}
	}

	// The reference: one uninterrupted run, watched for the changes its
	// commits make to the store's tables, to pick kill points along them.
	tables := func(dir string) string { return filepath.Join(dir, "*.sst") }
	ref := filepath.Join(crashtest.TmpfsDir(t), "ref")
	c := startCLI(t, nil, indexArgs(ref)...)
	changes, first, last := c.CountChanges(tables(ref))
	if err := c.Wait(); err != nil {
		t.Fatalf("clean index: %v\n%s", err, c.Output())
	}
	full := c.Ran()
	want := viewStore(t, ref)
	if want.count != int64(len(evs)) || want.objects != len(objs) {
		t.Fatalf("clean index: %d events in %d objects, want %d in %d", want.count, want.objects, len(evs), len(objs))
	}
	if changes < 2 {
		t.Fatalf("clean index: the store's tables changed %d times; the kill points need several commits", changes)
	}
	step := (last - first) / time.Duration(changes-1)
	t.Logf("one index run of %d objects takes %s; its tables changed %d times from %s to %s",
		len(objs), full.Round(time.Millisecond), changes, first.Round(time.Millisecond), last.Round(time.Millisecond))

	rng := crashtest.Rand(t)
	var runs, exact, late, twice, none, midway, all int
	for run := 0; runs < crashPoints && run < 3*crashPoints; run++ {
		dir := filepath.Join(crashtest.TmpfsDir(t), "store")
		// A kill point: after k of the changes the reference run made
		// (k = 0: before the first), and a random part of the time to the
		// next.
		c = startCLI(t, nil, indexArgs(dir)...)
		k, killed := rng.IntN(changes+1), false
		if k == 0 {
			killed = c.KillAfter(time.Duration(rng.Int64N(int64(first))))
		} else if c.AwaitChanges(tables(dir), k) {
			killed = c.KillAfter(time.Duration(rng.Int64N(int64(step) + 1)))
		}
		if !killed {
			late++
			os.RemoveAll(dir)
			continue
		}
		runs++
		switch n := committedObjects(t, dir); {
		case n == 0:
			none++
		case n < len(objs):
			midway++
		default:
			all++
		}
		// Kill the rerun once more, now and then.
		if rng.IntN(3) == 0 && startCLI(t, nil, indexArgs(dir)...).KillAfter(time.Duration(rng.Int64N(int64(full)))) {
			twice++
		}
		c = startCLI(t, nil, indexArgs(dir)...)
		if err := c.Wait(); err != nil {
			t.Fatalf("run %d: index after kill: %v\n%s", run, err, c.Output())
		}
		got := viewStore(t, dir)
		if got.count == want.count && got.objects == want.objects && bytes.Equal(got.keyset, want.keyset) && bytes.Equal(got.events, want.events) {
			exact++
		} else {
			t.Errorf("run %d: killed after %d changes and rerun, the store differs: %d events in %d objects (want %d in %d), key set equal %v, events equal %v",
				run, k, got.count, got.objects, want.count, want.objects, bytes.Equal(got.keyset, want.keyset), bytes.Equal(got.events, want.events))
		}
		os.RemoveAll(dir)
	}
	reliability.Report(t, "crash", "runs", runs, "exact", exact,
		"command", "rewind index", "work", fmt.Sprintf("%d events in %d objects, 1 MiB commits", len(evs), len(objs)),
		"killedBeforeFirst", none, "killedMidway", midway, "killedAfterLast", all, "killedTwice", twice, "finishedBeforeKill", late)
	if runs < crashPoints {
		t.Fatalf("only %d of %d kills landed during an index run (%d runs finished first)", runs, crashPoints, late)
	}
	// Most kills must land mid-ingest, or the test proves little.
	if midway < crashPoints/4 {
		t.Fatalf("only %d of %d kills landed between the first and the last commit", midway, runs)
	}
}

// TestReliabilityCrashPatcher kills `rewind patch --yes` with SIGKILL at
// random points (now and then the resumed run once more), resumes it, and
// checks that verify passes and the whole production table is exactly the
// expected state; then undoes it and checks the table is exactly the
// damaged state again (which is also the next run's starting point).
func TestReliabilityCrashPatcher(t *testing.T) {
	if testing.Short() {
		t.Skip("crash loop")
	}
	ddb, s, keys, awsEnv := patchStack(t, patchtest.ScenarioOptions{Items: 80, Modify: 40, Delete: 10, Junk: 10, Unchanged: 5, Absent: 3, GoodWrites: 5, Seed: 21})
	c := ddb.DynamoDB
	dir := t.TempDir()
	rnd := crashtest.Rand(t)
	patchArgs := []string{"patch", "--keys", keys, "--from", "orders-restored", "--to", "orders", "--yes", "--rate", "100", "--concurrency", "4", "--progress", "0"}
	verifyArgs := []string{"verify", "--keys", keys, "--from", "orders-restored", "--to", "orders", "--progress", "0"}
	writes := s.Opts.Modify + s.Opts.Delete + s.Opts.Junk

	// Time one whole run, to spread the kills over it.
	j0 := filepath.Join(dir, "calibrate.journal")
	begin := time.Now()
	if ch := startCLI(t, awsEnv, append(patchArgs, "--journal", j0)...); ch.Wait() != nil {
		t.Fatalf("calibration run: exit %d\n%s", ch.ExitCode(), ch.Output())
	}
	full := time.Since(begin)
	assertProd(t, c, s.Expected, "after the calibration run")
	if code, _, stderr := runPatchCLI(t, "undo", "--journal", j0, "--to", "orders", "--yes"); code != 0 {
		t.Fatalf("undo: exit %d\n%s", code, stderr)
	}
	assertProd(t, c, s.Damaged, "after undoing the calibration run")
	t.Logf("one patch of %d keys takes %s", len(s.Keys), full.Round(time.Millisecond))

	var runs, exact, late, twice, none, midway, all int
	// report is deferred so that a failed run still leaves its figures.
	defer func() {
		reliability.Report(t, "crash", "runs", runs, "exact", exact,
			"command", "rewind patch --yes", "work", fmt.Sprintf("%d writes for %d keys, 100 writes/s", writes, len(s.Keys)),
			"killedBeforeFirst", none, "killedMidway", midway, "killedAfterLast", all, "killedTwice", twice, "finishedBeforeKill", late)
	}()
	// Kills are drawn from [lo, hi), which starts as the calibrated run
	// and follows the write phase as the machine's load moves it: a kill
	// before the first write moves lo up to it, a run that finished first
	// moves hi down, and the window never shrinks below half a run.
	lo, hi := time.Duration(0), full
	keepOpen := func() {
		if hi-lo < full/2 {
			hi = lo + full/2
		}
	}
	for run := 0; runs < crashPoints && run < 2*crashPoints; run++ {
		j := filepath.Join(dir, fmt.Sprintf("run%02d.journal", run))
		delay := lo + time.Duration(rnd.Int64N(int64(hi-lo)))
		child := startCLI(t, awsEnv, append(patchArgs, "--journal", j)...)
		killed := child.KillAfter(delay)
		if !killed {
			hi = max(delay, lo+time.Millisecond)
			if hi-lo < full/2 {
				lo = max(0, hi-full/2)
			}
			late++
			t.Logf("run %d: finished before the kill at %s", run, delay.Round(time.Millisecond))
			if code := child.ExitCode(); code != 0 {
				t.Fatalf("run %d: exit %d\n%s", run, code, child.Output())
			}
		} else {
			runs++
			done := patchedKeys(t, c, s)
			switch {
			case done == 0:
				none++
				if countIntents(j) == 0 {
					lo = delay
					keepOpen()
				}
			case done < writes:
				midway++
			default:
				all++
			}
			t.Logf("run %d: killed at %s after %d intents, with %d of %d keys patched", run, delay.Round(time.Millisecond), countIntents(j), done, writes)
			resume := append(patchArgs, "--journal", j, "--resume")
			if _, err := os.Stat(j); os.IsNotExist(err) {
				resume = append(patchArgs, "--journal", j) // killed before it started
			}
			// Kill the resumed run once more, now and then.
			if rnd.IntN(3) == 0 {
				if startCLI(t, awsEnv, resume...).KillAfter(time.Duration(rnd.Int64N(int64(full / 2)))) {
					twice++
				}
				if _, err := os.Stat(j); err == nil {
					resume = append(patchArgs, "--journal", j, "--resume")
				}
			}
			ch := startCLI(t, awsEnv, append(resume, "--rate", "0")...)
			if ch.Wait() != nil {
				t.Fatalf("run %d: resume: exit %d\n%s", run, ch.ExitCode(), ch.Output())
			}
			if !strings.Contains(ch.Output(), "rewind patch: applied") {
				t.Fatalf("run %d: resume printed no summary:\n%s", run, ch.Output())
			}
		}
		code, stdout, stderr := runPatchCLI(t, verifyArgs...)
		if code != exitOK || stdout != "" {
			t.Fatalf("run %d: verify after kill and resume: exit %d, stdout %q\n%s", run, code, stdout, stderr)
		}
		assertProd(t, c, s.Expected, fmt.Sprintf("run %d: after kill and resume", run))
		if _, err := os.Stat(j); err == nil {
			if code, _, stderr := runPatchCLI(t, "undo", "--journal", j, "--to", "orders", "--yes", "--progress", "0"); code != 0 {
				t.Fatalf("run %d: undo: exit %d\n%s", run, code, stderr)
			}
		}
		assertProd(t, c, s.Damaged, fmt.Sprintf("run %d: after undo", run))
		if killed {
			exact++
		}
	}
	if runs < crashPoints {
		t.Fatalf("only %d kills landed during a patch", runs)
	}
	// Most kills must land between the first and the last write, or the
	// test proves little.
	if midway < crashPoints/4 {
		t.Fatalf("only %d of %d kills landed between the first and the last write", midway, runs)
	}
}

// patchedKeys counts the keys a patch must change that production holds
// in their expected state: the writes a killed patch got done.
func patchedKeys(t *testing.T, c *dynamodb.Client, s *patchtest.Scenario) int {
	t.Helper()
	got, err := patchtest.Scan(t.Context(), c, "orders")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, k := range s.Keys {
		enc := patchtest.EncodeKey(k)
		want := patchtest.Canonical(s.Expected[enc])
		if !bytes.Equal(want, patchtest.Canonical(s.Damaged[enc])) && bytes.Equal(want, patchtest.Canonical(got[enc])) {
			n++
		}
	}
	return n
}

// discardLog drops the store's log lines.
var discardLog = slog.New(slog.DiscardHandler)
