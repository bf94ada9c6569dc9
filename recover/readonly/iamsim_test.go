package readonly_test

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"testing"

	rewind "github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/internal/iamsim"
	"github.com/ddbrewind/rewind/recover/readonly"
)

// itemWrites are the DynamoDB actions that write items, each authorized
// with dynamodb:LeadingKeys.
var itemWrites = []string{
	"dynamodb:BatchWriteItem", "dynamodb:DeleteItem", "dynamodb:PartiQLDelete", "dynamodb:PartiQLInsert",
	"dynamodb:PartiQLUpdate", "dynamodb:PutItem", "dynamodb:UpdateItem",
}

// The documents rewind writes, evaluated by a real IAM evaluator
// (iam-simulate): frozen tenants are denied every item write on the table
// and its indexes in every replica region, other tenants keep the access
// the application's own policy gives, and a request over several keys
// (BatchWriteItem: dynamodb:LeadingKeys with several values) is denied
// when any of them is frozen. Tenant ids with IAM wildcards match only
// themselves.
func TestPolicyDocumentWithIAMSimulate(t *testing.T) {
	sim := iamsim.ForTest(t)
	info := readonly.TableInfo{Name: "orders", PartitionKey: "pk", PartitionKeyType: "S", SortKey: "sk", Region: "eu-west-1", Replicas: []string{"us-east-1"}}
	rule := rewind.TenantRule{Regex: regexp.MustCompile(`^TENANT#([^#]+)#`)}
	m, err := readonly.TenantPatterns(rule, info, []string{"t1", "t2", "t*"})
	if err != nil {
		t.Fatal(err)
	}
	var scope readonly.Scope
	for _, x := range m {
		scope.Patterns = append(scope.Patterns, x.Patterns...)
	}
	const account = "123456789012"
	appAllow := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"dynamodb:*","Resource":"*"}]}`
	key := func(tenant string) string { return "TENANT#" + tenant + "#ORDER#1" }
	for _, tc := range []struct {
		name  string
		scope readonly.Scope
		keys  []string
		want  iamsim.Decision
	}{
		{"frozen tenant", scope, []string{key("t1")}, iamsim.ExplicitlyDenied},
		{"other frozen tenant", scope, []string{key("t2")}, iamsim.ExplicitlyDenied},
		{"tenant not frozen", scope, []string{key("t3")}, iamsim.Allowed},
		{"tenant id with a wildcard, itself", scope, []string{key("t*")}, iamsim.ExplicitlyDenied},
		{"tenant the wildcard would match", scope, []string{key("tx")}, iamsim.Allowed},
		{"tenant whose id extends a frozen one", scope, []string{key("t10")}, iamsim.Allowed},
		{"batch with one frozen tenant", scope, []string{key("t3"), key("t1")}, iamsim.ExplicitlyDenied},
		{"batch without frozen tenants", scope, []string{key("t3"), key("t4")}, iamsim.Allowed},
		{"whole table", readonly.Scope{Whole: true}, []string{key("t3")}, iamsim.ExplicitlyDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := readonly.PolicyDocument("aws", account, info, tc.scope)
			policies := []iamsim.Policy{{Name: "app/Allow", Document: json.RawMessage(appAllow)}, {Name: "app/DenyWrite", Document: json.RawMessage(doc)}}
			var reqs []iamsim.Request
			for _, region := range []string{"eu-west-1", "us-east-1"} {
				table := fmt.Sprintf("arn:aws:dynamodb:%s:%s:table/orders", region, account)
				for _, res := range []string{table, table + "/index/byStatus"} {
					for _, a := range itemWrites {
						reqs = append(reqs, iamsim.Request{Action: a, Resource: res, Principal: "arn:aws:iam::" + account + ":role/app", Context: map[string][]string{readonly.LeadingKeysCondition: tc.keys}})
					}
				}
			}
			got, err := sim.Evaluate(t.Context(), policies, reqs)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range got {
				if r.Decision != tc.want {
					t.Errorf("%s: %s (%s), want %s", reqs[i], r.Decision, r.Reason, tc.want)
				}
			}
		})
	}
}

// A freeze of some tenants denies every control-plane write on the whole
// table (statement TableSid): no request of theirs names a partition key,
// so the LeadingKeys condition could never scope them. Together the two
// lists are exactly the catalogue's writes on a table or index.
func TestTenantFreezeDeniesTableWrites(t *testing.T) {
	sim := iamsim.ForTest(t)
	acts, err := sim.Actions(t.Context(), "dynamodb")
	if err != nil {
		t.Fatal(err)
	}
	var catalogue []string
	types := map[string][]string{}
	for _, a := range iamsim.Filter(acts, "Write", "table", "index") {
		catalogue = append(catalogue, "dynamodb:"+a.Name)
		types["dynamodb:"+a.Name] = a.ResourceTypes
	}
	slices.Sort(catalogue)
	ours := slices.Sorted(slices.Values(readonly.WriteActions))
	if !slices.Equal(ours, catalogue) {
		t.Errorf("WriteActions differ from the catalogue's writes on table or index:\n ours      %v\n catalogue %v", ours, catalogue)
	}
	if !slices.Equal(itemWrites, slices.Sorted(slices.Values(readonly.ItemWriteActions))) {
		t.Errorf("ItemWriteActions = %v, want %v", readonly.ItemWriteActions, itemWrites)
	}

	const account = "123456789012"
	info := readonly.TableInfo{Name: "orders", PartitionKey: "pk", PartitionKeyType: "S", Region: "eu-west-1"}
	doc := readonly.PolicyDocument("aws", account, info, readonly.Scope{Patterns: []string{"TENANT#t1#*"}})
	appAllow := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"dynamodb:*","Resource":"*"}]}`
	policies := []iamsim.Policy{{Name: "app/Allow", Document: json.RawMessage(appAllow)}, {Name: "app/DenyWrite", Document: json.RawMessage(doc)}}
	table := "arn:aws:dynamodb:eu-west-1:" + account + ":table/orders"
	var reqs []iamsim.Request
	for _, a := range readonly.TableWriteActions {
		res := table
		if !slices.Contains(types[a], "table") {
			res = table + "/index/byStatus"
		}
		reqs = append(reqs, iamsim.Request{Action: a, Resource: res, Principal: "arn:aws:iam::" + account + ":role/app"})
	}
	got, err := sim.Evaluate(t.Context(), policies, reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range got {
		if r.Decision != iamsim.ExplicitlyDenied {
			t.Errorf("%s: %s (%s), want ExplicitlyDenied", reqs[i], r.Decision, r.Reason)
		}
	}
}
