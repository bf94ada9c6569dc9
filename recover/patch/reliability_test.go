package patch

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/internal/faultproxy"
	"github.com/ddbrewind/rewind/internal/localaws"
	"github.com/ddbrewind/rewind/internal/reliability"
	"github.com/ddbrewind/rewind/recover/patch/patchtest"
)

// TestReliabilityPatchFaults is the patch's part of the faults suite (the
// capture's is in streamhandler): patch, verify and undo run through a
// proxy that fails a share of DynamoDB calls the ways DynamoDB does, and
// each must complete and leave the whole table exactly as it should be.
//
// At rate r, every call draws one fault with probability r, spread over
// throttling (ProvisionedThroughputExceeded and ThrottlingException, r/4
// together), 500s (r/4), connections dropped before the server saw the
// request (r/4) and after it executed it with the answer lost (r/4); a
// BatchGetItem also has r/4 more chance of a part of its keys moved to
// UnprocessedKeys. The report gives the share of calls actually hit.
// Chunks of 5 keys make enough BatchGetItem calls for partial answers to
// be met at every rate.
func TestReliabilityPatchFaults(t *testing.T) {
	met := map[string]int64{}
	defer func() {
		// Every kind of fault must have been met, or the suite proves
		// nothing about it.
		for _, name := range []string{"throttling", "500", "drop before", "drop after", "UnprocessedKeys"} {
			if met[name] == 0 {
				t.Errorf("no %s fault was injected", name)
			}
		}
	}()
	for i, rate := range []float64{0.10, 0.30} {
		t.Run(fmt.Sprintf("rate=%.0f%%", rate*100), func(t *testing.T) {
			o := defaultOpts()
			o.Seed = 50 + uint64(i)
			env, s, keys := scenario(t, o)
			ctx := t.Context()
			p, err := faultproxy.Start(faultproxy.Config{
				Upstream:                      env.Endpoint,
				Seed:                          uint64(60 + i),
				ProvisionedThroughputExceeded: rate / 8,
				Throttling:                    rate / 8,
				ServerError:                   rate / 4,
				DropBeforeForward:             rate / 4,
				DropAfterForward:              rate / 4,
				UnprocessedKeys:               rate / 4,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			ac, err := localaws.Config(ctx, p.URL, env.AccessKeyID)
			if err != nil {
				t.Fatal(err)
			}
			c := dynamodb.NewFromConfig(ac)
			direct := env.DynamoDB
			journal := filepath.Join(t.TempDir(), "j")
			impacted := o.Modify + o.Delete + o.Junk

			var out bytes.Buffer
			sum, perr := Patch(ctx, c, Config{Keys: keys, From: "orders-restored", To: "orders", Apply: true, Journal: journal, Options: Options{BatchSize: 5, Out: &out}})
			patched := perr == nil && !sum.Partial() && sum.Written+sum.Already == int64(impacted)
			patchDiff := tableDiff(t, direct, s.Expected)

			vs, verr := Verify(ctx, c, Config{Keys: keys, From: "orders-restored", To: "orders", Options: Options{BatchSize: 5, Out: &out}})
			verified := verr == nil && vs.Mismatches() == 0

			us, uerr := Undo(ctx, c, UndoConfig{Journal: journal, To: "orders", Apply: true, Options: Options{Out: &out}})
			undone := uerr == nil && !us.Partial()
			undoDiff := tableDiff(t, direct, s.Damaged)

			st := p.Stats()
			var written, already, conflicts, failures int64
			if sum != nil {
				written, already, conflicts, failures = sum.Written, sum.Already, sum.Conflicts, sum.Failures
			}
			exact := patched && patchDiff == 0 && verified && undone && undoDiff == 0
			reliability.Report(t, "faults",
				"runs", 1, "exact", exact,
				"steps", "patch, verify, undo", "faultRate", rate, "calls", st.Requests, "faulted", st.Faults(),
				"faultedShare", fmt.Sprintf("%.1f%%", 100*float64(st.Faults())/float64(max(st.Requests, 1))),
				"throttled", st.ProvisionedThroughputExceeded+st.Throttling, "http500", st.ServerError,
				"droppedBefore", st.DropBeforeForward, "droppedAfter", st.DropAfterForward, "unprocessedKeys", st.UnprocessedKeys,
				"keys", len(s.Keys), "written", written, "already", already, "conflicts", conflicts, "failures", failures,
				"tableDiffAfterPatch", patchDiff, "tableDiffAfterUndo", undoDiff)

			if perr != nil || !patched {
				t.Fatalf("patch through faults did not complete: %v, %+v\n%s", perr, sum, out.String())
			}
			if patchDiff != 0 {
				assertTable(t, direct, "orders", s.Expected, "after a patch through faults")
			}
			if !verified {
				t.Fatalf("verify through faults: %v, %+v", verr, vs)
			}
			if !undone {
				t.Fatalf("undo through faults: %v %+v\n%s", uerr, us, out.String())
			}
			if undoDiff != 0 {
				assertTable(t, direct, "orders", s.Damaged, "after undo through faults")
			}
			met["throttling"] += st.ProvisionedThroughputExceeded + st.Throttling
			met["500"] += st.ServerError
			met["drop before"] += st.DropBeforeForward
			met["drop after"] += st.DropAfterForward
			met["UnprocessedKeys"] += st.UnprocessedKeys
		})
	}
}

// tableDiff counts the keys whose item in the table differs from want.
func tableDiff(t *testing.T, c *dynamodb.Client, want map[string]rewind.Item) int {
	t.Helper()
	got, err := patchtest.Scan(t.Context(), c, "orders")
	if err != nil {
		t.Fatal(err)
	}
	return len(patchtest.DiffTables(want, got, len(want)+len(got)+1))
}
