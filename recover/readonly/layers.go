package readonly

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// DefaultLayerTimeout bounds each layer when Options.LayerTimeout is zero.
const DefaultLayerTimeout = 30 * time.Second

// Options tune Freeze, Thaw and ReadStatus.
type Options struct {
	// LayerTimeout bounds each layer on its own: every SSM call of the
	// application layer, or every STS and IAM call of the IAM layer,
	// including the SDK's retries, runs under one deadline this long, so a
	// backend that hangs costs at most this much before the other layer is
	// tried. Default DefaultLayerTimeout (30s).
	LayerTimeout time.Duration
}

// EnsureDefaults fills in zero fields.
func (o *Options) EnsureDefaults() {
	if o.LayerTimeout == 0 {
		o.LayerTimeout = DefaultLayerTimeout
	}
}

// Validate reports a field that cannot be used.
func (o Options) Validate() error {
	if o.LayerTimeout <= 0 {
		return fmt.Errorf("readonly: LayerTimeout %s: want a positive duration", o.LayerTimeout)
	}
	return nil
}

// Outcome is what happened to one layer.
type Outcome string

const (
	// OK: the layer is as asked (changed, or already so).
	OK Outcome = "ok"
	// Failed: the layer may not be as asked; Reason says why.
	Failed Outcome = "failed"
	// Skipped: the layer was not asked for; Reason says why.
	Skipped Outcome = "skipped"
)

// LayerResult is the outcome of one layer.
type LayerResult struct {
	Outcome Outcome `json:"outcome"`
	// Reason says why the layer failed or was skipped; empty when OK.
	Reason string `json:"reason,omitempty"`
	// Err is the failure, nil unless Outcome is Failed.
	Err error `json:"-"`
	// TimedOut is true when the layer failed because LayerTimeout passed:
	// a write may have landed without its answer, so the state is unknown
	// until read back (rerunning is safe: each layer is idempotent).
	TimedOut bool `json:"timedOut,omitempty"`
	// Elapsed is how long the layer took.
	Elapsed time.Duration `json:"-"`
}

// State sums up the layers that were asked for.
type State string

const (
	// Complete: every layer asked for is OK.
	Complete State = "complete"
	// Incomplete: at least one layer asked for failed and another is OK.
	Incomplete State = "incomplete"
	// AllFailed: every layer asked for failed.
	AllFailed State = "failed"
)

func stateOf(results ...LayerResult) State {
	ok, failed := 0, 0
	for _, r := range results {
		switch r.Outcome {
		case OK:
			ok++
		case Failed:
			failed++
		}
	}
	switch {
	case failed == 0:
		return Complete
	case ok == 0:
		return AllFailed
	}
	return Incomplete
}

// Layer names, in Report.Order.
const (
	LayerApplication = "application"
	LayerIAM         = "iam"
)

// ApplicationResult is what Freeze or Thaw did to the SSM tenant list.
type ApplicationResult struct {
	LayerResult
	Parameter string `json:"parameter"`
	// Tenants are the tenants asked for (empty for a Thaw that clears).
	Tenants []string `json:"tenantsAsked"`
	// Change is set when Outcome is OK.
	Change *Change `json:"change,omitempty"`
}

// IAMResult is what Freeze or Thaw did to the deny policy.
type IAMResult struct {
	LayerResult
	Policy string `json:"policy"`
	Table  string `json:"table,omitempty"`
	// Roles are the roles asked for (empty for a Thaw from every role).
	Roles []string `json:"rolesAsked"`
	// Change is what was done, set when Outcome is OK, and also when the
	// layer failed part way (then its Roles are the ones done before the
	// failure).
	Change *PolicyChange `json:"change,omitempty"`
	// PolicyARN is the policy's ARN, empty when the caller's account could
	// not be learnt (STS failed).
	PolicyARN string `json:"policyArn,omitempty"`
	// OperatorRole is the role the caller runs as, which keeps its write
	// access; empty when unknown or not an assumed role.
	OperatorRole string `json:"operatorRole,omitempty"`
}

// Report is what Freeze or Thaw did, layer by layer. A failed layer never
// stops the other one: each is tried, under its own deadline.
type Report struct {
	// Order lists the layers in the order they were applied.
	Order       []string          `json:"order"`
	Application ApplicationResult `json:"application"`
	IAM         IAMResult         `json:"iam"`
}

// State sums up the layers asked for.
func (r Report) State() State { return stateOf(r.Application.LayerResult, r.IAM.LayerResult) }

// Err joins the layers' failures, nil when none failed.
func (r Report) Err() error {
	var errs []error
	for _, l := range r.Order {
		switch {
		case l == LayerApplication && r.Application.Err != nil:
			errs = append(errs, fmt.Errorf("application layer: %w", r.Application.Err))
		case l == LayerIAM && r.IAM.Err != nil:
			errs = append(errs, fmt.Errorf("IAM layer: %w", r.IAM.Err))
		}
	}
	return errors.Join(errs...)
}

// FreezeRequest says what Freeze should freeze.
type FreezeRequest struct {
	// Tenants to make read-only (All for every tenant); empty skips the
	// application layer.
	Tenants []string
	// Table the deny policy names; needed with Roles.
	Table string
	// Roles to attach the deny policy to; empty skips the IAM layer.
	Roles []string
}

// ThawRequest says what Thaw should unfreeze.
type ThawRequest struct {
	// Tenants to make writable again; empty clears the list.
	Tenants []string
	// Roles to detach the deny policy from. When empty and Tenants is
	// empty too, the policy is detached from every role it is attached
	// to; when empty and Tenants is not, the IAM layer is skipped (thawing
	// some tenants leaves the whole-table deny alone).
	Roles []string
}

// Freeze applies read-only mode: the application layer first, so that the
// application's guard answers 503 before IAM starts denying writes with
// AccessDenied, then the IAM layer. Each layer runs under its own
// LayerTimeout and is tried even when the other failed: with SSM down the
// IAM backstop still freezes the table. policy may be nil when req has no
// Roles.
//
// Freeze returns an error only for a request it cannot start (nothing
// asked, bad options); the layers' failures are in the Report.
func Freeze(ctx context.Context, list *TenantList, policy *DenyPolicy, req FreezeRequest, opts Options) (Report, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return Report{}, err
	}
	if len(req.Tenants) == 0 && len(req.Roles) == 0 {
		return Report{}, errors.New("readonly freeze: nothing asked: give tenants (application layer) and/or roles with a table (IAM layer)")
	}
	if len(req.Roles) > 0 && policy == nil {
		return Report{}, errors.New("readonly freeze: roles given but no IAM client")
	}
	r := Report{
		Order:       []string{LayerApplication, LayerIAM},
		Application: ApplicationResult{Parameter: list.Name(), Tenants: orEmpty(req.Tenants)},
		IAM:         IAMResult{Table: req.Table, Roles: orEmpty(req.Roles)},
	}
	if policy != nil {
		r.IAM.Policy = policy.Name()
	}

	if len(req.Tenants) == 0 {
		r.Application.LayerResult = skipped("no tenants asked for")
	} else {
		r.Application.LayerResult = runLayer(ctx, opts.LayerTimeout, true, func(ctx context.Context) error {
			ch, err := list.On(ctx, req.Tenants)
			if err == nil {
				r.Application.Change = &ch
			}
			return err
		})
	}

	if len(req.Roles) == 0 {
		r.IAM.LayerResult = skipped("no roles asked for")
	} else {
		r.IAM.LayerResult = runLayer(ctx, opts.LayerTimeout, true, func(ctx context.Context) error {
			ch, err := policy.On(ctx, req.Table, req.Roles)
			if err == nil || len(ch.Roles) > 0 {
				r.IAM.Change = &ch
			}
			r.IAM.PolicyARN, r.IAM.OperatorRole = known(ctx, policy)
			return err
		})
	}
	return r, nil
}

// Thaw lifts read-only mode: the IAM layer first, so that IAM no longer
// denies writes by the time the guard lets them through, then the
// application layer. As in Freeze, each layer runs under its own
// LayerTimeout and is tried even when the other failed. policy may be nil
// when req asks nothing of the IAM layer.
func Thaw(ctx context.Context, list *TenantList, policy *DenyPolicy, req ThawRequest, opts Options) (Report, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return Report{}, err
	}
	iamAsked := len(req.Tenants) == 0 || len(req.Roles) > 0
	if iamAsked && policy == nil {
		return Report{}, errors.New("readonly thaw: the IAM layer is asked for but there is no IAM client")
	}
	r := Report{
		Order:       []string{LayerIAM, LayerApplication},
		Application: ApplicationResult{Parameter: list.Name(), Tenants: orEmpty(req.Tenants)},
		IAM:         IAMResult{Roles: orEmpty(req.Roles)},
	}
	if policy != nil {
		r.IAM.Policy = policy.Name()
	}

	if !iamAsked {
		r.IAM.LayerResult = skipped("only some tenants thawed and no roles asked for: the IAM layer is left as it is")
	} else {
		r.IAM.LayerResult = runLayer(ctx, opts.LayerTimeout, true, func(ctx context.Context) error {
			ch, err := policy.Off(ctx, req.Roles)
			if err == nil || len(ch.Roles) > 0 {
				r.IAM.Change = &ch
			}
			r.IAM.PolicyARN, r.IAM.OperatorRole = known(ctx, policy)
			return err
		})
	}

	r.Application.LayerResult = runLayer(ctx, opts.LayerTimeout, true, func(ctx context.Context) error {
		ch, err := list.Off(ctx, req.Tenants)
		if err == nil {
			r.Application.Change = &ch
		}
		return err
	})
	return r, nil
}

// known returns the policy ARN and the caller's role as far as the
// (cached) caller identity is known.
func known(ctx context.Context, policy *DenyPolicy) (policyARN, role string) {
	id, err := policy.Identity(ctx)
	if err != nil {
		return "", ""
	}
	policyARN, _ = policy.ARN(ctx)
	return policyARN, id.Role
}

func skipped(reason string) LayerResult { return LayerResult{Outcome: Skipped, Reason: reason} }

// runLayer runs fn under its own deadline and says how it went.
// writes says whether fn changes anything, so that a timeout may have left
// a change applied without its answer.
func runLayer(parent context.Context, timeout time.Duration, writes bool, fn func(context.Context) error) LayerResult {
	start := time.Now()
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	err := fn(ctx)
	res := LayerResult{Outcome: OK, Elapsed: time.Since(start)}
	if err == nil {
		return res
	}
	res.Outcome, res.Err, res.Reason = Failed, err, err.Error()
	switch {
	case parent.Err() != nil:
		res.Reason = "interrupted: " + err.Error()
	case ctx.Err() != nil:
		res.TimedOut = true
		res.Reason = fmt.Sprintf("no answer within %s: %v", timeout, err)
		if writes {
			res.Reason = fmt.Sprintf("no answer within %s (a change may have landed unacknowledged; rerun to be sure): %v", timeout, err)
		}
	}
	return res
}
