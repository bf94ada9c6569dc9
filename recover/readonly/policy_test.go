package readonly_test

import (
	"encoding/json"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	rewind "github.com/ddbrewind/rewind"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/ddbrewind/rewind/internal/fakeiam"
	"github.com/ddbrewind/rewind/internal/localaws"
	"github.com/ddbrewind/rewind/recover/readonly"
)

const policyARN = "arn:aws:iam::123456789012:policy/DenyWrite"

func startIAM(t *testing.T) (*fakeiam.Server, *readonly.DenyPolicy, *iam.Client) {
	t.Helper()
	srv, err := fakeiam.Start(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	cfg, err := localaws.Config(t.Context(), srv.Endpoint, "AKIDTEST")
	if err != nil {
		t.Fatal(err)
	}
	srv.AddRole("app")
	srv.AddRole("worker")
	srv.AddRole("operator")
	c := iam.NewFromConfig(cfg)
	srv.AddTable(fakeiam.Table{Name: "orders", PartitionKey: "pk"})
	srv.AddTable(fakeiam.Table{Name: "customers", PartitionKey: "pk"})
	p := readonly.NewDenyPolicy(c, sts.NewFromConfig(cfg), "", "eu-west-1")
	p.Tables = dynamodb.NewFromConfig(cfg)
	return srv, p, c
}

var (
	ordersInfo = readonly.TableInfo{Name: "orders", PartitionKey: "pk", PartitionKeyType: "S", Region: "eu-west-1"}
	whole      = readonly.Scope{Whole: true}
)

// The document denies exactly the item-write actions, on exactly the table
// and its indexes, and nothing else.
func TestPolicyDocumentDeniesExactlyWrites(t *testing.T) {
	var doc struct {
		Version   string
		Statement []struct {
			Sid, Effect      string
			Action, Resource []string
			Principal        any
			Condition        any
		}
	}
	if err := json.Unmarshal([]byte(readonly.PolicyDocument("aws", "123456789012", ordersInfo, whole)), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Version != "2012-10-17" || len(doc.Statement) != 1 {
		t.Fatalf("version %q, %d statements; want 2012-10-17 and 1", doc.Version, len(doc.Statement))
	}
	st := doc.Statement[0]
	if st.Sid != "RevokeWritePermission" || st.Effect != "Deny" || st.Principal != nil || st.Condition != nil {
		t.Errorf("statement Sid=%q Effect=%q Principal=%v Condition=%v", st.Sid, st.Effect, st.Principal, st.Condition)
	}
	want := []string{
		"dynamodb:AssociateTableReplica",
		"dynamodb:BatchWriteItem",
		"dynamodb:CreateBackup",
		"dynamodb:CreateGlobalTable",
		"dynamodb:CreateGlobalTableWitness",
		"dynamodb:CreateTable",
		"dynamodb:CreateTableReplica",
		"dynamodb:DeleteGlobalTableWitness",
		"dynamodb:DeleteItem",
		"dynamodb:DeleteTable",
		"dynamodb:DeleteTableReplica",
		"dynamodb:DisableKinesisStreamingDestination",
		"dynamodb:EnableKinesisStreamingDestination",
		"dynamodb:ExportTableToPointInTime",
		"dynamodb:ImportTable",
		"dynamodb:PartiQLDelete",
		"dynamodb:PartiQLInsert",
		"dynamodb:PartiQLUpdate",
		"dynamodb:PutItem",
		"dynamodb:ReplicateSettings",
		"dynamodb:RestoreTableFromAwsBackup",
		"dynamodb:RestoreTableFromBackup",
		"dynamodb:RestoreTableToPointInTime",
		"dynamodb:StartAwsBackupJob",
		"dynamodb:UpdateContinuousBackups",
		"dynamodb:UpdateContributorInsights",
		"dynamodb:UpdateGlobalTable",
		"dynamodb:UpdateGlobalTableSettings",
		"dynamodb:UpdateGlobalTableVersion",
		"dynamodb:UpdateItem",
		"dynamodb:UpdateKinesisStreamingDestination",
		"dynamodb:UpdateTable",
		"dynamodb:UpdateTableReplicaAutoScaling",
		"dynamodb:UpdateTimeToLive",
		"dynamodb:WriteDataForReplication",
	}
	if got := slices.Sorted(slices.Values(st.Action)); !slices.Equal(got, want) {
		t.Errorf("actions = %q\nwant      %q", got, want)
	}
	for _, read := range []string{"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:PartiQLSelect", "dynamodb:DescribeTable", "dynamodb:*"} {
		if slices.Contains(st.Action, read) {
			t.Errorf("denies %s, a read", read)
		}
	}
	wantRes := []string{
		"arn:aws:dynamodb:eu-west-1:123456789012:table/orders",
		"arn:aws:dynamodb:eu-west-1:123456789012:table/orders/index/*",
	}
	if !slices.Equal(st.Resource, wantRes) {
		t.Errorf("resources = %q, want %q", st.Resource, wantRes)
	}
}

func TestPolicyOnOff(t *testing.T) {
	srv, p, _ := startIAM(t)
	ctx := t.Context()

	ch, err := p.On(ctx, readonly.TableInfo{Name: "orders", PartitionKey: "pk", PartitionKeyType: "S", Region: "eu-west-1"}, whole, []string{"app", "worker"})
	if err != nil {
		t.Fatal(err)
	}
	if ch.Document != "created" || ch.PolicyARN != policyARN || len(ch.Roles) != 2 || ch.Roles[0].Action != "attached" {
		t.Fatalf("first on: %+v", ch)
	}
	if got := srv.AttachedPolicies("app"); !slices.Equal(got, []string{policyARN}) {
		t.Fatalf("app role policies = %v", got)
	}
	if _, doc := srv.PolicyVersions(policyARN); !strings.Contains(doc, "arn:aws:dynamodb:eu-west-1:123456789012:table/orders") {
		t.Fatalf("stored document does not name the table: %s", doc)
	}

	// Idempotent.
	creates := srv.Count("CreatePolicy") + srv.Count("CreatePolicyVersion") + srv.Count("AttachRolePolicy")
	ch, err = p.On(ctx, readonly.TableInfo{Name: "orders", PartitionKey: "pk", PartitionKeyType: "S", Region: "eu-west-1"}, whole, []string{"app"})
	if err != nil {
		t.Fatal(err)
	}
	if ch.Document != "unchanged" || ch.Roles[0].Action != "already-attached" || ch.Roles[0].Changed() {
		t.Fatalf("second on: %+v", ch)
	}
	if n := srv.Count("CreatePolicy") + srv.Count("CreatePolicyVersion") + srv.Count("AttachRolePolicy"); n != creates {
		t.Errorf("second on wrote to IAM (%d writes, was %d)", n, creates)
	}

	// The operator's own role is refused, before anything changes.
	if _, err := p.On(ctx, readonly.TableInfo{Name: "orders", PartitionKey: "pk", PartitionKeyType: "S", Region: "eu-west-1"}, whole, []string{"operator"}); err == nil || !strings.Contains(err.Error(), "role you run as") {
		t.Fatalf("on --roles operator: got %v, want a refusal", err)
	}
	if got := srv.AttachedPolicies("operator"); len(got) != 0 {
		t.Fatalf("policy attached to the operator's role: %v", got)
	}

	// A policy that denies another table is not repointed.
	if _, err := p.On(ctx, readonly.TableInfo{Name: "customers", PartitionKey: "pk", PartitionKeyType: "S", Region: "eu-west-1"}, whole, []string{"app"}); err == nil || !strings.Contains(err.Error(), "--policy DenyWrite-customers") {
		t.Fatalf("on for another table: got %v, want a refusal naming --policy", err)
	}

	st, err := p.Status(ctx, "orders", rewind.TenantRule{}, false)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Exists || !st.Scope.Whole || !slices.Equal(st.AttachedRoles, []string{"app", "worker"}) || !slices.Equal(st.Tables, []string{"orders"}) || st.Caller.Role != "operator" {
		t.Fatalf("status: %+v", st)
	}

	ch, err = p.Off(ctx, []string{"worker", "operator"})
	if err != nil {
		t.Fatal(err)
	}
	if ch.Roles[0] != (readonly.RoleChange{Role: "worker", Action: "detached"}) || ch.Roles[1] != (readonly.RoleChange{Role: "operator", Action: "not-attached"}) {
		t.Fatalf("off worker,operator: %+v", ch.Roles)
	}
	// No roles: detach from every role it is still attached to.
	ch, err = p.Off(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.Roles) != 1 || ch.Roles[0].Role != "app" || ch.Roles[0].Action != "detached" {
		t.Fatalf("off: %+v", ch.Roles)
	}
	if got := srv.AttachedPolicies("app"); len(got) != 0 {
		t.Fatalf("app still has %v", got)
	}
	ch, err = p.Off(ctx, nil)
	if err != nil || len(ch.Roles) != 0 {
		t.Fatalf("second off: %+v, %v", ch, err)
	}
}

func TestPolicyOnMissingRole(t *testing.T) {
	_, p, _ := startIAM(t)
	if _, err := p.On(t.Context(), ordersInfo, whole, []string{"nope"}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("got %v, want an error naming the role", err)
	}
}

func TestPolicyOffWhenPolicyMissing(t *testing.T) {
	_, p, _ := startIAM(t)
	ch, err := p.Off(t.Context(), nil)
	if err != nil || len(ch.Roles) != 0 {
		t.Fatalf("off without a policy: %+v, %v", ch, err)
	}
	st, err := p.Status(t.Context(), "orders", rewind.TenantRule{}, false)
	if err != nil || st.Exists {
		t.Fatalf("status without a policy: %+v, %v", st, err)
	}
}

// A stale document (say, an older rewind's, with fewer actions) gets a new
// default version; with IAM's 5 versions full, the oldest non-default one
// is deleted first.
func TestPolicyUpdatesStaleDocumentAndPrunes(t *testing.T) {
	srv, p, c := startIAM(t)
	ctx := t.Context()
	stale := `{"Version":"2012-10-17","Statement":[{"Sid":"RevokeWritePermission","Effect":"Deny","Action":"dynamodb:PutItem","Resource":"arn:aws:dynamodb:eu-west-1:123456789012:table/orders"}]}`
	if _, err := c.CreatePolicy(ctx, &iam.CreatePolicyInput{PolicyName: aws.String("DenyWrite"), PolicyDocument: aws.String(stale)}); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if _, err := c.CreatePolicyVersion(ctx, &iam.CreatePolicyVersionInput{PolicyArn: aws.String(policyARN), PolicyDocument: aws.String(stale), SetAsDefault: true}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := p.Status(ctx, "orders", rewind.TenantRule{}, false)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := p.On(ctx, readonly.TableInfo{Name: "orders", PartitionKey: "pk", PartitionKeyType: "S", Region: "eu-west-1"}, whole, []string{"app"})
	if err != nil {
		t.Fatal(err)
	}
	if ch.Document != "updated" || !slices.Equal(ch.PrunedVersions, []string{"v1"}) {
		t.Fatalf("on over a stale document: %+v", ch)
	}
	ids, doc := srv.PolicyVersions(policyARN)
	if !slices.Equal(ids, []string{"v2", "v3", "v4", "v5", "v6"}) || !strings.Contains(doc, "dynamodb:UpdateTimeToLive") {
		t.Fatalf("versions %v, default document %s", ids, doc)
	}
	if st, _ = p.Status(ctx, "orders", rewind.TenantRule{}, false); !st.Scope.Whole || st.DefaultVersion != "v6" {
		t.Fatalf("after update: %+v", st)
	}
}

func TestWarnings(t *testing.T) {
	attached := &readonly.PolicyStatus{Policy: "DenyWrite", Exists: true, Scope: whole, AttachedRoles: []string{"app"}, Tables: []string{"orders"}}
	detached := &readonly.PolicyStatus{Policy: "DenyWrite", Exists: true, Scope: whole, AttachedRoles: []string{}}
	stale := &readonly.PolicyStatus{Policy: "DenyWrite", Exists: true, Scope: whole, AttachedRoles: []string{"app"}, Tables: []string{"orders"}, MissingRegions: []string{"us-east-1"}}
	self := &readonly.PolicyStatus{Policy: "DenyWrite", Exists: true, Scope: whole, AttachedRoles: []string{"app", "operator"}, Caller: readonly.Identity{Role: "operator"}}
	t1 := &readonly.PolicyStatus{Policy: "DenyWrite", Exists: true, Scope: readonly.Scope{Patterns: []string{"t1"}}, Tenants: []string{"t1"}, InlineRoles: []string{"app"}, Tables: []string{"orders"}}
	t2 := &readonly.PolicyStatus{Policy: "DenyWrite", Exists: true, Scope: readonly.Scope{Patterns: []string{"t2"}}, Tenants: []string{"t2"}, AttachedRoles: []string{"app"}, Tables: []string{"orders"}}
	none := readonly.Tenants{}
	all := readonly.Tenants{IDs: []string{"all"}}
	some := readonly.Tenants{IDs: []string{"t1"}}
	for _, tc := range []struct {
		name string
		t    readonly.Tenants
		p    *readonly.PolicyStatus
		want []string // substrings, one per warning
	}{
		{"both off", none, detached, nil},
		{"both on", all, attached, nil},
		{"no IAM layer read", some, nil, nil},
		{"IAM only", none, attached, []string{"lists no read-only tenant"}},
		{"IAM on, some tenants", some, attached, []string{"blocks writes for every tenant"}},
		{"all, IAM off", all, detached, []string{"attached to no role"}},
		{"per-tenant freeze, application only", some, detached, []string{"only the application layer is on"}},
		{"per-tenant freeze, both layers", some, t1, nil},
		{"per-tenant freeze, other tenants", some, t2, []string{"tenants t1 are read-only in the application layer only", "denies tenants t2, which the application layer does not list"}},
		{"all, IAM per tenant", all, t1, []string{"denies only tenants t1"}},
		{"replica not covered", all, stale, []string{"does not name the table's replicas in us-east-1"}},
		{"attached to operator", all, self, []string{"the role you run as"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := readonly.Warnings(tc.t, tc.p, "orders")
			if len(got) != len(tc.want) {
				t.Fatalf("warnings %q, want %d", got, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("warning %q does not say %q", got[i], w)
				}
			}
		})
	}
}

func TestReadStatus(t *testing.T) {
	_, ssmc := startSSM(t)
	_, p, _ := startIAM(t)
	l := readonly.NewTenantList(ssmc, "")
	if _, err := l.On(t.Context(), []string{"t1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.On(t.Context(), ordersInfo, whole, []string{"app"}); err != nil {
		t.Fatal(err)
	}
	st, err := readonly.ReadStatus(t.Context(), l, p, "orders", rewind.TenantRule{}, readonly.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if st.State() != readonly.Complete || !slices.Equal(st.Tenants.IDs, []string{"t1"}) || st.IAM == nil || len(st.IAM.AttachedRoles) != 1 || len(st.Warnings) != 1 {
		t.Fatalf("status %+v", st)
	}
}
