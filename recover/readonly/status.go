package readonly

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// Status is both layers of read-only mode and where they disagree. Each
// layer is read on its own, under its own deadline: one that cannot be
// read is reported (Failed with the reason) and the other is still read.
type Status struct {
	Parameter string `json:"parameter"`
	// Application is the outcome of reading the SSM tenant list.
	Application LayerResult `json:"applicationRead"`
	// Tenants is the list, zero unless Application is OK.
	Tenants Tenants `json:"application"`
	// IAMRead is the outcome of reading the IAM layer: Skipped when there
	// is no policy client.
	IAMRead LayerResult `json:"iamRead"`
	// IAM is nil unless IAMRead is OK.
	IAM *PolicyStatus `json:"iam,omitempty"`
	// Warnings say where the layers disagree; only when both were read.
	Warnings []string `json:"warnings"`
}

// State sums up the layers read.
func (s Status) State() State { return stateOf(s.Application, s.IAMRead) }

// ReadStatus reads both layers, each under opts.LayerTimeout; policy may
// be nil to read only the application layer. table (may be empty) is the
// table the operator means. The error is only for bad options; the
// layers' failures are in the Status.
func ReadStatus(ctx context.Context, list *TenantList, policy *DenyPolicy, table string, opts Options) (Status, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return Status{}, err
	}
	st := Status{Parameter: list.Name(), Warnings: []string{}}
	st.Application = runLayer(ctx, opts.LayerTimeout, false, func(ctx context.Context) error {
		t, err := list.Get(ctx)
		if err == nil {
			t.IDs = orEmpty(t.IDs)
			st.Tenants = t
		}
		return err
	})
	if st.Application.Outcome != OK {
		st.Tenants.IDs = []string{}
	}
	if policy == nil {
		st.IAMRead = skipped("no IAM client")
	} else {
		st.IAMRead = runLayer(ctx, opts.LayerTimeout, false, func(ctx context.Context) error {
			ps, err := policy.Status(ctx, table)
			if err == nil {
				st.IAM = &ps
			}
			return err
		})
	}
	if st.Application.Outcome == OK {
		st.Warnings = Warnings(st.Tenants, st.IAM, table)
	}
	return st, nil
}

// Warnings lists the ways the two layers disagree. The IAM layer freezes
// the whole table, the application layer tenants, so they agree when both
// are off, or when the list says All and the policy is attached.
func Warnings(t Tenants, p *PolicyStatus, table string) []string {
	w := []string{}
	if p == nil {
		return w
	}
	attached := len(p.AttachedRoles) > 0
	all := slices.Contains(t.IDs, All)
	roles := strings.Join(p.AttachedRoles, ", ")
	switch {
	case attached && len(t.IDs) == 0:
		w = append(w, fmt.Sprintf("IAM policy %s denies writes (attached to %s) but the application layer lists no read-only tenant: the application will fail writes with AccessDenied instead of answering 503; run `rewind readonly on --all` or `rewind readonly off --roles %s`", p.Policy, roles, roles))
	case attached && !all:
		w = append(w, fmt.Sprintf("IAM policy %s blocks writes for every tenant (attached to %s) but the application layer is read-only only for %s", p.Policy, roles, strings.Join(t.IDs, ", ")))
	case !attached && all:
		w = append(w, fmt.Sprintf("the application layer says all tenants are read-only but IAM policy %s is attached to no role: writes that bypass the guard are not blocked", p.Policy))
	case !attached && len(t.IDs) > 0:
		w = append(w, fmt.Sprintf("only the application layer is on (tenants %s); IAM policy %s is attached to no role, so writes that bypass the guard are not blocked (expected for a per-tenant freeze)", strings.Join(t.IDs, ", "), p.Policy))
	}
	if attached && table != "" && !p.Current {
		w = append(w, fmt.Sprintf("IAM policy %s is attached but its document is not the one for table %s (it names %s): run `rewind readonly on --table %s --roles ...` to update it", p.Policy, table, strings.Join(p.Tables, ", "), table))
	}
	if attached && p.Caller.Role != "" && slices.Contains(p.AttachedRoles, p.Caller.Role) {
		w = append(w, fmt.Sprintf("IAM policy %s is attached to %s, the role you run as: the patch cannot write until it is detached", p.Policy, p.Caller.Role))
	}
	return w
}
