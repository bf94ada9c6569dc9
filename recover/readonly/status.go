package readonly

import (
	"context"

	"fmt"
	rewind "github.com/ddbrewind/rewind"
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
//
// rule names the tenants of the IAM layer's per-tenant deny; unless
// opts.SkipEffectCheck, IAM evaluates the deny once for every role
// holding it (PolicyStatus.Effect).
func ReadStatus(ctx context.Context, list AppLayer, policy *DenyPolicy, table string, rule rewind.TenantRule, opts Options) (Status, error) {
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
			ps, err := policy.Status(ctx, table, rule, !opts.SkipEffectCheck)
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

// Warnings lists the ways the two layers disagree, and the gaps of the
// IAM layer. The application layer freezes tenants (or All); the IAM
// layer the whole table and/or some tenants' items. They agree when they
// freeze the same tenants.
func Warnings(t Tenants, p *PolicyStatus, table string) []string {
	w := []string{}
	if p == nil {
		return w
	}
	inForce := p.InForce()
	all := slices.Contains(t.IDs, All)
	holders := strings.Join(holdersOf(*p), ", ")
	var appOnly, iamOnly []string
	if inForce && !p.Scope.Whole {
		for _, id := range t.IDs {
			if id != All && !slices.Contains(p.Tenants, id) {
				appOnly = append(appOnly, id)
			}
		}
		for _, id := range p.Tenants {
			if !all && !slices.Contains(t.IDs, id) {
				iamOnly = append(iamOnly, id)
			}
		}
	}
	switch {
	case inForce && p.Scope.Whole && len(t.IDs) == 0:
		w = append(w, fmt.Sprintf("IAM policy %s denies writes to the whole table (held by %s) but the application layer lists no read-only tenant: the application will fail writes with AccessDenied instead of answering 503; run `rewind readonly on --all` or `rewind readonly off --roles %s`", p.Policy, holders, holders))
	case inForce && p.Scope.Whole && !all:
		w = append(w, fmt.Sprintf("IAM policy %s blocks writes for every tenant (held by %s) but the application layer is read-only only for %s", p.Policy, holders, strings.Join(t.IDs, ", ")))
	case inForce && !p.Scope.Whole && all:
		w = append(w, fmt.Sprintf("the application layer says all tenants are read-only but IAM policy %s denies only tenants %s: writes by other tenants that bypass the guard are not blocked; run `rewind readonly on --all --table %s --roles %s`", p.Policy, strings.Join(p.Tenants, ", "), table, holders))
	case !inForce && all:
		w = append(w, fmt.Sprintf("the application layer says all tenants are read-only but IAM policy %s is attached to no role: writes that bypass the guard are not blocked", p.Policy))
	case !inForce && len(t.IDs) > 0:
		w = append(w, fmt.Sprintf("only the application layer is on (tenants %s); IAM policy %s is attached to no role, so writes that bypass the guard are not blocked; add `--table T --roles R` to `readonly on` to deny them in IAM too", strings.Join(t.IDs, ", "), p.Policy))
	}
	if len(appOnly) > 0 {
		w = append(w, fmt.Sprintf("tenants %s are read-only in the application layer only: IAM policy %s does not deny them, so their writes that bypass the guard are not blocked", strings.Join(appOnly, ", "), p.Policy))
	}
	if len(iamOnly) > 0 {
		w = append(w, fmt.Sprintf("IAM policy %s denies tenants %s, which the application layer does not list: their writes fail with AccessDenied instead of answering 503", p.Policy, strings.Join(iamOnly, ", ")))
	}
	if inForce && len(p.Unmatched) > 0 {
		w = append(w, fmt.Sprintf("IAM policy %s denies partition keys matching %s, which are no tenant's under the tenant rule given (written under another rule?)", p.Policy, strings.Join(p.Unmatched, ", ")))
	}
	if inForce && len(p.MissingRegions) > 0 {
		w = append(w, fmt.Sprintf("IAM policy %s does not name the table's replicas in %s: writes there are not blocked and replicate back; run `rewind readonly on` again to cover them", p.Policy, strings.Join(p.MissingRegions, ", ")))
	}
	if inForce && table != "" && len(p.Tables) > 0 && !slices.Contains(p.Tables, table) {
		w = append(w, fmt.Sprintf("IAM policy %s denies writes to %s, not to table %s", p.Policy, strings.Join(p.Tables, ", "), table))
	}
	if inForce && p.Effect != nil && !p.Effect.Effective {
		why := p.Effect.Error
		if why == "" {
			why = strings.Join(p.Effect.Pending, "; ")
		}
		w = append(w, fmt.Sprintf("IAM's evaluation does not show policy %s in force: %s", p.Policy, why))
	}
	if inForce && p.Caller.Role != "" && slices.Contains(holdersOf(*p), p.Caller.Role) {
		w = append(w, fmt.Sprintf("IAM policy %s is attached to %s, the role you run as: the patch cannot write until it is detached", p.Policy, p.Caller.Role))
	}
	return w
}
