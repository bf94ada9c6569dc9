package readonly_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/ddbrewind/rewind/recover/readonly"
)

// Freeze tries the IAM layer when the application layer fails, and Thaw
// the application layer when the IAM layer fails; the report says which.
func TestFreezeThawLayersIndependent(t *testing.T) {
	ssmSrv, ssmc := startSSM(t)
	iamSrv, p, _ := startIAM(t)
	l := readonly.NewTenantList(ssmc, "")
	ssmSrv.SetHook(func(op, name string) error { return errors.New("outage") })

	r, err := readonly.Freeze(t.Context(), l, p, readonly.FreezeRequest{Tenants: []string{"t1"}, Table: "orders", Roles: []string{"app"}}, readonly.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.State() != readonly.Incomplete || r.Application.Outcome != readonly.Failed || r.Application.Reason == "" || r.IAM.Outcome != readonly.OK || r.Err() == nil {
		t.Fatalf("freeze with SSM down: state %s, %+v", r.State(), r)
	}
	if !slices.Equal(r.Order, []string{readonly.LayerApplication, readonly.LayerIAM}) || !slices.Equal(iamSrv.AttachedPolicies("app"), []string{policyARN}) || r.IAM.PolicyARN != policyARN {
		t.Fatalf("freeze: order %v, app role has %v, policy ARN %q", r.Order, iamSrv.AttachedPolicies("app"), r.IAM.PolicyARN)
	}

	if r.IAM.Effect == nil || !r.IAM.Effect.Effective || r.IAM.Effect.Checked == 0 {
		t.Fatalf("freeze: IAM's evaluation %+v, want effective", r.IAM.Effect)
	}

	// Thawing t1, the only tenant the IAM deny names: with SSM down the
	// IAM layer still drops it, and with nothing left the policy is
	// detached.
	r, err = readonly.Thaw(t.Context(), l, p, readonly.ThawRequest{Tenants: []string{"t1"}}, readonly.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.State() != readonly.Incomplete || r.IAM.Outcome != readonly.OK || len(iamSrv.AttachedPolicies("app")) != 0 || !slices.Equal(r.Order, []string{readonly.LayerIAM, readonly.LayerApplication}) {
		t.Fatalf("thaw t1 with SSM down: state %s, app role has %v, %+v", r.State(), iamSrv.AttachedPolicies("app"), r)
	}
	ssmSrv.SetHook(nil)
	r, err = readonly.Thaw(t.Context(), l, p, readonly.ThawRequest{}, readonly.Options{})
	if err != nil || r.State() != readonly.Complete || r.Err() != nil || len(iamSrv.AttachedPolicies("app")) != 0 {
		t.Fatalf("thaw: %v, state %s, app role has %v", err, r.State(), iamSrv.AttachedPolicies("app"))
	}

	if _, err := readonly.Freeze(t.Context(), l, p, readonly.FreezeRequest{}, readonly.Options{}); err == nil {
		t.Error("Freeze with nothing asked: no error")
	}
	if _, err := readonly.Freeze(t.Context(), l, p, readonly.FreezeRequest{Tenants: []string{"t1"}}, readonly.Options{LayerTimeout: -1}); err == nil {
		t.Error("Freeze with a negative LayerTimeout: no error")
	}
}
