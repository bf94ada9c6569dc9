package patch

import (
	"bytes"
	"path/filepath"
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
