package deploy_test

import (
	"encoding/json"
	"io"
	"maps"
	"os"
	"testing"

	"github.com/ddbrewind/rewind/internal/awsrec"
	"github.com/ddbrewind/rewind/internal/drill"
	"github.com/ddbrewind/rewind/internal/iamsim"
	"github.com/ddbrewind/rewind/internal/localaws"
)

// TestDrillPermissions plays the local incident drill with every AWS call
// its runbook commands make going through a recording proxy, and evaluates
// each call with iam-simulate against operator-policy.json, its
// placeholders filled as deploy/README.md says for the drill's names. The
// drill's own setup (tables, traffic, the ground-truth checks) is not the
// operator's and is not recorded.
func TestDrillPermissions(t *testing.T) {
	if testing.Short() {
		t.Skip("plays the whole drill")
	}
	sim := iamsim.ForTest(t)
	localaws.DynamoDBForTest(t) // skip, or fail under REWIND_REQUIRE_LOCAL_AWS, without DynamoDB Local
	rec := &awsrec.Recorder{}
	rec.As("operator")
	cfg := drill.Config{
		Workdir:  t.TempDir(),
		Progress: io.Discard,
		Getenv:   func(string) string { return "" },
		Endpoint: func(_, url string) string { return rec.Proxy(t, url) },
	}
	cfg.EnsureDefaults()
	out, err := drill.Run(t.Context(), cfg)
	if err != nil || out.Check != "pass" {
		t.Fatalf("drill: %v (check %q)", err, out.Check)
	}
	values := maps.Clone(placeholders)
	values["REGION"] = localaws.Region
	values["CAPTURE_BUCKET"] = "rewind-capture"
	values["PARQUET_PREFIX"] = "changes"
	values["EXPORT_BUCKET"] = "rewind-exports"
	b, err := os.ReadFile("operator-policy.json")
	if err != nil {
		t.Fatal(err)
	}
	policy := iamsim.Policy{Name: "operator", Document: json.RawMessage(fillWith(t, string(b), values))}
	calls := rec.Calls()
	if len(calls) == 0 {
		t.Fatal("the drill's commands made no recorded call")
	}
	evaluateCallsIn(t, sim, calls, "operator", policy, "arn:aws:iam::"+testAccount+":role/operator", localaws.Region)
}
