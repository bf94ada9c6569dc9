package fakeiam_test

import (
	"errors"
	"net/url"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/ddbrewind/rewind/internal/fakeiam"
	"github.com/ddbrewind/rewind/internal/localaws"
)

const doc = `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"dynamodb:PutItem","Resource":"*"}]}`

func TestRealClients(t *testing.T) {
	srv, err := fakeiam.Start(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cfg, err := localaws.Config(t.Context(), srv.Endpoint, "AKIDTEST")
	if err != nil {
		t.Fatal(err)
	}
	c := iam.NewFromConfig(cfg)
	ctx := t.Context()

	id, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(id.Account) != fakeiam.DefaultAccount || aws.ToString(id.Arn) != "arn:aws:sts::123456789012:assumed-role/operator/session" {
		t.Errorf("GetCallerIdentity = %s %s", aws.ToString(id.Account), aws.ToString(id.Arn))
	}

	arn := "arn:aws:iam::123456789012:policy/P"
	var nse *types.NoSuchEntityException
	if _, err := c.GetPolicy(ctx, &iam.GetPolicyInput{PolicyArn: aws.String(arn)}); !errors.As(err, &nse) {
		t.Fatalf("GetPolicy on missing: got %v, want NoSuchEntity", err)
	}
	if _, err := c.CreatePolicy(ctx, &iam.CreatePolicyInput{PolicyName: aws.String("P"), PolicyDocument: aws.String("{not json")}); err == nil {
		t.Fatal("CreatePolicy with a malformed document succeeded")
	} else if mp := new(types.MalformedPolicyDocumentException); !errors.As(err, &mp) {
		t.Fatalf("malformed document: got %v", err)
	}
	cp, err := c.CreatePolicy(ctx, &iam.CreatePolicyInput{PolicyName: aws.String("P"), PolicyDocument: aws.String(doc)})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(cp.Policy.Arn) != arn || aws.ToString(cp.Policy.DefaultVersionId) != "v1" {
		t.Fatalf("CreatePolicy = %s %s", aws.ToString(cp.Policy.Arn), aws.ToString(cp.Policy.DefaultVersionId))
	}
	var exists *types.EntityAlreadyExistsException
	if _, err := c.CreatePolicy(ctx, &iam.CreatePolicyInput{PolicyName: aws.String("P"), PolicyDocument: aws.String(doc)}); !errors.As(err, &exists) {
		t.Fatalf("second CreatePolicy: got %v, want EntityAlreadyExists", err)
	}

	v, err := c.GetPolicyVersion(ctx, &iam.GetPolicyVersionInput{PolicyArn: aws.String(arn), VersionId: aws.String("v1")})
	if err != nil {
		t.Fatal(err)
	}
	enc := aws.ToString(v.PolicyVersion.Document)
	if enc == doc {
		t.Error("document came back as is; IAM returns it URL-encoded")
	}
	if dec, err := url.QueryUnescape(enc); err != nil || dec != doc {
		t.Errorf("decoded document = %q, %v; want %q", dec, err, doc)
	}

	for i := 2; i <= 5; i++ {
		if _, err := c.CreatePolicyVersion(ctx, &iam.CreatePolicyVersionInput{PolicyArn: aws.String(arn), PolicyDocument: aws.String(doc), SetAsDefault: true}); err != nil {
			t.Fatal(err)
		}
	}
	var limit *types.LimitExceededException
	if _, err := c.CreatePolicyVersion(ctx, &iam.CreatePolicyVersionInput{PolicyArn: aws.String(arn), PolicyDocument: aws.String(doc)}); !errors.As(err, &limit) {
		t.Fatalf("6th version: got %v, want LimitExceeded", err)
	}
	lv, err := c.ListPolicyVersions(ctx, &iam.ListPolicyVersionsInput{PolicyArn: aws.String(arn)})
	if err != nil {
		t.Fatal(err)
	}
	if len(lv.Versions) != 5 || !lv.Versions[0].IsDefaultVersion || aws.ToString(lv.Versions[0].VersionId) != "v5" {
		t.Fatalf("ListPolicyVersions: %d versions, first %s default=%v", len(lv.Versions), aws.ToString(lv.Versions[0].VersionId), lv.Versions[0].IsDefaultVersion)
	}
	var conflict *types.DeleteConflictException
	if _, err := c.DeletePolicyVersion(ctx, &iam.DeletePolicyVersionInput{PolicyArn: aws.String(arn), VersionId: aws.String("v5")}); !errors.As(err, &conflict) {
		t.Fatalf("delete default version: got %v, want DeleteConflict", err)
	}
	if _, err := c.DeletePolicyVersion(ctx, &iam.DeletePolicyVersionInput{PolicyArn: aws.String(arn), VersionId: aws.String("v1")}); err != nil {
		t.Fatal(err)
	}

	if _, err := c.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: aws.String("app"), PolicyArn: aws.String(arn)}); !errors.As(err, &nse) {
		t.Fatalf("attach to missing role: got %v, want NoSuchEntity", err)
	}
	if _, err := c.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("app"), AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[]}`)}); err != nil {
		t.Fatal(err)
	}
	if r, err := c.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String("app")}); err != nil || aws.ToString(r.Role.Arn) != "arn:aws:iam::123456789012:role/app" {
		t.Fatalf("GetRole: %v", err)
	}
	for range 2 { // attaching twice is a no-op, as in IAM
		if _, err := c.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: aws.String("app"), PolicyArn: aws.String(arn)}); err != nil {
			t.Fatal(err)
		}
	}
	la, err := c.ListAttachedRolePolicies(ctx, &iam.ListAttachedRolePoliciesInput{RoleName: aws.String("app")})
	if err != nil {
		t.Fatal(err)
	}
	if len(la.AttachedPolicies) != 1 || aws.ToString(la.AttachedPolicies[0].PolicyName) != "P" {
		t.Fatalf("ListAttachedRolePolicies = %+v", la.AttachedPolicies)
	}
	le, err := c.ListEntitiesForPolicy(ctx, &iam.ListEntitiesForPolicyInput{PolicyArn: aws.String(arn), EntityFilter: types.EntityTypeRole})
	if err != nil {
		t.Fatal(err)
	}
	if len(le.PolicyRoles) != 1 || aws.ToString(le.PolicyRoles[0].RoleName) != "app" {
		t.Fatalf("ListEntitiesForPolicy = %+v", le.PolicyRoles)
	}
	gp, _ := c.GetPolicy(ctx, &iam.GetPolicyInput{PolicyArn: aws.String(arn)})
	if aws.ToInt32(gp.Policy.AttachmentCount) != 1 {
		t.Errorf("AttachmentCount = %d, want 1", aws.ToInt32(gp.Policy.AttachmentCount))
	}
	if _, err := c.DetachRolePolicy(ctx, &iam.DetachRolePolicyInput{RoleName: aws.String("app"), PolicyArn: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DetachRolePolicy(ctx, &iam.DetachRolePolicyInput{RoleName: aws.String("app"), PolicyArn: aws.String(arn)}); !errors.As(err, &nse) {
		t.Fatalf("second detach: got %v, want NoSuchEntity", err)
	}
	if got := srv.AttachedPolicies("app"); len(got) != 0 {
		t.Errorf("still attached: %v", got)
	}
}
