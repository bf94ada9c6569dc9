package iamsim_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/ddbrewind/rewind/internal/iamsim"
)

const (
	principal = "arn:aws:iam::111122223333:role/app"
	table     = "arn:aws:dynamodb:eu-west-1:111122223333:table/orders"
)

func TestEvaluate(t *testing.T) {
	sim := iamsim.ForTest(t)
	policies := []iamsim.Policy{{Name: "app", Document: json.RawMessage(`{
		"Version": "2012-10-17",
		"Statement": [
			{"Sid": "Use", "Effect": "Allow", "Action": ["dynamodb:PutItem", "dynamodb:GetItem"], "Resource": "` + table + `"},
			{"Sid": "ListPrefix", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::b",
			 "Condition": {"StringLike": {"s3:prefix": "changes/*"}}},
			{"Sid": "FreezeT1", "Effect": "Deny", "Action": "dynamodb:PutItem", "Resource": "` + table + `",
			 "Condition": {"ForAnyValue:StringEquals": {"dynamodb:LeadingKeys": ["t1"]}}}
		]}`)}}
	tests := []struct {
		req    iamsim.Request
		want   iamsim.Decision
		reason string
	}{
		{iamsim.Request{Action: "dynamodb:GetItem", Resource: table}, iamsim.Allowed, "allowed by app/Use"},
		{iamsim.Request{Action: "dynamodb:PutItem", Resource: table, Context: map[string][]string{"dynamodb:LeadingKeys": {"t2"}}}, iamsim.Allowed, "allowed by app/Use"},
		{iamsim.Request{Action: "dynamodb:PutItem", Resource: table, Context: map[string][]string{"dynamodb:LeadingKeys": {"t1"}}}, iamsim.ExplicitlyDenied, "denied by app/FreezeT1"},
		{iamsim.Request{Action: "dynamodb:DeleteItem", Resource: table}, iamsim.ImplicitlyDenied, ""},
		{iamsim.Request{Action: "s3:ListBucket", Resource: "arn:aws:s3:::b", Context: map[string][]string{"s3:prefix": {"changes/t1/"}}}, iamsim.Allowed, ""},
		{iamsim.Request{Action: "s3:ListBucket", Resource: "arn:aws:s3:::b", Context: map[string][]string{"s3:prefix": {"other/"}}}, iamsim.ImplicitlyDenied, ""},
		// Transactions are authorized as their parts: there is no such
		// IAM action, so it cannot be allowed or denied.
		{iamsim.Request{Action: "dynamodb:TransactWriteItems", Resource: table}, iamsim.Invalid, ""},
		// GetItem is authorized on tables, not on buckets.
		{iamsim.Request{Action: "dynamodb:GetItem", Resource: "arn:aws:s3:::b"}, iamsim.Invalid, ""},
	}
	var reqs []iamsim.Request
	for _, tt := range tests {
		tt.req.Principal = principal
		reqs = append(reqs, tt.req)
	}
	got, err := sim.Evaluate(t.Context(), policies, reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, tt := range tests {
		if got[i].Decision != tt.want {
			t.Errorf("%v: %s (%s), want %s", tt.req, got[i].Decision, got[i].Reason, tt.want)
		}
		if tt.reason != "" && got[i].Reason != tt.reason {
			t.Errorf("%v: reason %q, want %q", tt.req, got[i].Reason, tt.reason)
		}
	}
}

func TestEvaluateWantsPrincipal(t *testing.T) {
	sim := iamsim.ForTest(t)
	if _, err := sim.Evaluate(t.Context(), nil, []iamsim.Request{{Action: "dynamodb:GetItem", Resource: table}}); err == nil {
		t.Fatal("a request without a principal was evaluated")
	}
}

func TestActions(t *testing.T) {
	sim := iamsim.ForTest(t)
	all, err := sim.Actions(t.Context(), "dynamodb")
	if err != nil {
		t.Fatal(err)
	}
	names := func(as []iamsim.Action) []string {
		var out []string
		for _, a := range as {
			out = append(out, a.Name)
		}
		return out
	}
	writes := names(iamsim.Filter(all, "Write", "table", "index"))
	for _, w := range []string{"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "UpdateTable", "DeleteTable"} {
		if !slices.Contains(writes, w) {
			t.Errorf("DynamoDB writes on tables and indexes %v lack %s", writes, w)
		}
	}
	for _, n := range []string{"GetItem", "Query", "TransactWriteItems"} {
		if slices.Contains(writes, n) {
			t.Errorf("DynamoDB writes on tables and indexes include %s", n)
		}
	}
	if _, err := sim.Actions(t.Context(), "no-such-service"); err == nil {
		t.Error("Actions of an unknown service succeeded")
	}
}

func TestFilter(t *testing.T) {
	acts := []iamsim.Action{
		{Name: "A", AccessLevel: "Write", ResourceTypes: []string{"table"}},
		{Name: "B", AccessLevel: "Write", ResourceTypes: []string{"stream"}},
		{Name: "C", AccessLevel: "Read", ResourceTypes: []string{"table"}},
		{Name: "D", AccessLevel: "Write"},
	}
	got := iamsim.Filter(acts, "Write", "table", "index")
	if len(got) != 1 || got[0].Name != "A" {
		t.Errorf("Filter(Write, table, index) = %v, want [A]", got)
	}
	if got := iamsim.Filter(acts, "Write"); len(got) != 3 {
		t.Errorf("Filter(Write) = %v, want A, B and D", got)
	}
}
