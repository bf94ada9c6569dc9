package patch

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/ddbrewind/rewind/internal/faultproxy"
	"github.com/ddbrewind/rewind/internal/localaws"
)

// TestPatchThroughFaults patches, verifies and undoes through a proxy that
// throttles, fails with 500s, drops connections before and after the
// server ran the request, and moves BatchGetItem keys to UnprocessedKeys.
// Every step still ends exactly where it should.
func TestPatchThroughFaults(t *testing.T) {
	o := defaultOpts()
	o.Seed = 4
	env, s, keys := scenario(t, o)
	ctx := t.Context()
	p, err := faultproxy.Start(faultproxy.Config{
		Upstream:                      env.Endpoint,
		Seed:                          9,
		ProvisionedThroughputExceeded: 0.04,
		Throttling:                    0.04,
		ServerError:                   0.05,
		DropBeforeForward:             0.04,
		DropAfterForward:              0.08,
		UnprocessedKeys:               0.5,
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

	var out bytes.Buffer
	journal := filepath.Join(t.TempDir(), "j")
	sum, err := Patch(ctx, c, Config{Keys: keys, From: "orders-restored", To: "orders", Apply: true, Journal: journal, Options: Options{Out: &out}})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Partial() {
		t.Fatalf("patch through faults: %+v\n%s", sum.Counts, out.String())
	}
	want := int64(o.Modify + o.Delete + o.Junk)
	// A write whose response was dropped after the server ran it is
	// retried, finds the item already written, and counts as "already".
	if sum.Written+sum.Already != want || sum.Already > 0 && sum.Already > p.Stats().DropAfterForward {
		t.Errorf("written %d + already %d, want %d (already at most the %d responses dropped)", sum.Written, sum.Already, want, p.Stats().DropAfterForward)
	}
	assertTable(t, env.DynamoDB, "orders", s.Expected, "after a patch through faults")

	vs, err := Verify(ctx, c, Config{Keys: keys, From: "orders-restored", To: "orders"})
	if err != nil || vs.Mismatches() != 0 {
		t.Fatalf("verify through faults: %v, %d mismatches", err, vs.Mismatches())
	}
	us, err := Undo(ctx, c, UndoConfig{Journal: journal, To: "orders", Apply: true, Options: Options{Out: &out}})
	if err != nil || us.Partial() {
		t.Fatalf("undo through faults: %v %+v\n%s", err, us, out.String())
	}
	assertTable(t, env.DynamoDB, "orders", s.Damaged, "after undo through faults")

	st := p.Stats()
	t.Logf("proxy: %+v", st)
	for name, n := range map[string]int64{
		"ProvisionedThroughputExceeded": st.ProvisionedThroughputExceeded,
		"Throttling":                    st.Throttling,
		"ServerError":                   st.ServerError,
		"DropBeforeForward":             st.DropBeforeForward,
		"DropAfterForward":              st.DropAfterForward,
		"UnprocessedKeys":               st.UnprocessedKeys,
	} {
		if n == 0 {
			t.Errorf("no %s fault was injected: the test proves nothing about it", name)
		}
	}
}

// TestPatchAdaptsToThrottledWrites: write attempts throttled in both
// shapes, which the SDK's retryer absorbs, are each seen by the adaptive
// concurrency through the real client's middleware stack: the summary
// counts exactly the throttles the proxy injected on writes, and the
// writes in flight fell below where they started. Before, the patcher
// kept its fixed writers and reported nothing of it.
func TestPatchAdaptsToThrottledWrites(t *testing.T) {
	o := defaultOpts()
	o.Seed = 5
	env, s, keys := scenario(t, o)
	ctx := t.Context()
	p, err := faultproxy.Start(faultproxy.Config{
		Upstream:                      env.Endpoint,
		Seed:                          3,
		ProvisionedThroughputExceeded: 0.1,
		Throttling:                    0.1,
		Operations:                    []string{"PutItem", "UpdateItem", "DeleteItem"},
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
	var out bytes.Buffer
	sum, err := Patch(ctx, c, Config{Keys: keys, From: "orders-restored", To: "orders", Apply: true,
		Journal: filepath.Join(t.TempDir(), "j"), Options: Options{Out: &out, MaxAttempts: 20}})
	if err != nil || sum.Partial() {
		t.Fatalf("patch: %v %+v\n%s", err, sum.Counts, out.String())
	}
	assertTable(t, env.DynamoDB, "orders", s.Expected, "after a patch through throttling")
	st, w := p.Stats(), sum.Writes
	if injected := st.ProvisionedThroughputExceeded + st.Throttling; w.Throttled != injected || injected == 0 {
		t.Errorf("summary counts %d throttled write attempts, the proxy injected %d", w.Throttled, injected)
	}
	if want := sum.Written + w.Throttled; w.Attempts != want {
		t.Errorf("attempts %d, want %d written + %d throttled", w.Attempts, sum.Written, w.Throttled)
	}
	if w.Concurrency >= startConcurrency || w.Cap != DefaultConcurrency {
		t.Errorf("writes in flight %+v: want below the start %d after throttling, cap %d", w, startConcurrency, DefaultConcurrency)
	}
	if !strings.Contains(sum.String(), fmt.Sprintf("%d of %d write attempts throttled", w.Throttled, w.Attempts)) {
		t.Errorf("summary does not show the throttled attempts:\n%s", sum)
	}
	// Throttling also paced the writes: a rate was set, and the summary
	// says where it ended.
	if w.Rate <= 0 || w.RateDrops == 0 || w.RateLow <= 0 || w.RateLow > w.Rate {
		t.Errorf("pace %+v: want a rate set by the throttles", w)
	}
	if !strings.Contains(sum.String(), fmt.Sprintf("paced at %.0f writes/s at the end", w.Rate)) {
		t.Errorf("summary does not show the pace:\n%s", sum)
	}
}
