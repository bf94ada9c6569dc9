package readonly

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	rewind "github.com/ddbrewind/rewind"
)

// DefaultLayerTimeout bounds each layer when Options.LayerTimeout is zero.
const DefaultLayerTimeout = 30 * time.Second

// DefaultEffectTimeout bounds the wait for IAM to show the deny in force
// when Options.EffectTimeout is zero; DefaultEffectPoll is the interval
// between evaluations.
const (
	DefaultEffectTimeout = 2 * time.Minute
	DefaultEffectPoll    = 2 * time.Second
)

// Options tune Freeze, Thaw and ReadStatus.
type Options struct {
	// LayerTimeout bounds each layer on its own: every SSM call of the
	// application layer, or every STS and IAM call of the IAM layer,
	// including the SDK's retries, runs under one deadline this long, so a
	// backend that hangs costs at most this much before the other layer is
	// tried. Default DefaultLayerTimeout (30s).
	LayerTimeout time.Duration
	// EffectTimeout bounds how long Freeze waits, after the IAM layer is
	// applied, for iam:SimulatePrincipalPolicy to show every role denied
	// (see Effect); past it the IAM layer is NotEffective. Default
	// DefaultEffectTimeout (2m).
	EffectTimeout time.Duration
	// EffectPoll is the interval between evaluations. Default
	// DefaultEffectPoll (2s).
	EffectPoll time.Duration
	// SkipEffectCheck skips the evaluation (Freeze does not wait and
	// ReadStatus does not show the evidence). Default false.
	SkipEffectCheck bool
}

// EnsureDefaults fills in zero fields.
func (o *Options) EnsureDefaults() {
	if o.LayerTimeout == 0 {
		o.LayerTimeout = DefaultLayerTimeout
	}
	if o.EffectTimeout == 0 {
		o.EffectTimeout = DefaultEffectTimeout
	}
	if o.EffectPoll == 0 {
		o.EffectPoll = DefaultEffectPoll
	}
}

// Validate reports a field that cannot be used.
func (o Options) Validate() error {
	if o.LayerTimeout <= 0 {
		return fmt.Errorf("readonly: LayerTimeout %s: want a positive duration", o.LayerTimeout)
	}
	if o.EffectTimeout <= 0 {
		return fmt.Errorf("readonly: EffectTimeout %s: want a positive duration", o.EffectTimeout)
	}
	if o.EffectPoll <= 0 {
		return fmt.Errorf("readonly: EffectPoll %s: want a positive duration", o.EffectPoll)
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
	// NotEffective: the IAM layer was applied but IAM's evaluation did not
	// show it in force within EffectTimeout; Reason says what was still
	// allowed. Rerun (or `readonly status`) to check again.
	NotEffective Outcome = "not-effective"
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
	ok, failed, pending := 0, 0, 0
	for _, r := range results {
		switch r.Outcome {
		case OK:
			ok++
		case Failed:
			failed++
		case NotEffective:
			pending++
		}
	}
	switch {
	case pending > 0:
		return Incomplete
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
	// TableInfo is the table as described (key schema, replica regions).
	TableInfo *TableInfo `json:"tableInfo,omitempty"`
	// Tenants are the tenants the deny was asked to add or remove, with
	// their patterns (empty for a whole-table freeze).
	Tenants map[string]TenantMatch `json:"tenants,omitempty"`
	// Effect is IAM's evaluation after Freeze (nil when not checked).
	Effect *Effect `json:"effect,omitempty"`
	// Warnings are the gaps the deny leaves (DAX clusters).
	Warnings []string `json:"warnings,omitempty"`
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
	// Rule says where a tenant is in the partition key, so that the IAM
	// layer denies only Tenants' items (dynamodb:LeadingKeys). A rule IAM
	// cannot match makes Freeze refuse (a *NotExpressibleError) rather
	// than freeze the whole table unasked.
	Rule rewind.TenantRule
	// WholeTable makes the IAM layer deny the whole table even when
	// Tenants names some tenants. It is implied when Tenants is All or
	// empty.
	WholeTable bool
}

// ThawRequest says what Thaw should unfreeze.
type ThawRequest struct {
	// Tenants to make writable again; empty clears the list.
	Tenants []string
	// Roles to lift the deny from. When empty and Tenants is empty too,
	// the deny is lifted from every role holding it. When Tenants is
	// given, Roles must be empty: the deny drops those tenants' patterns
	// (All: the whole-table statement) and keeps the rest, for every role.
	Roles []string
	// Table and Rule, for some tenants: the table (default: the one the
	// policy names) and where its tenant is.
	Table string
	Rule  rewind.TenantRule
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
func Freeze(ctx context.Context, list AppLayer, policy *DenyPolicy, req FreezeRequest, opts Options) (Report, error) {
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

	// The IAM layer's plan comes first: a deny that cannot be limited to
	// the tenants asked refuses the whole freeze before anything changes.
	// A table that cannot be described fails the IAM layer only.
	var plan iamPlan
	var planErr LayerResult
	if len(req.Roles) > 0 {
		planErr = runLayer(ctx, opts.LayerTimeout, false, func(ctx context.Context) (err error) {
			plan, err = planIAM(ctx, policy, req)
			return err
		})
		var ne *NotExpressibleError
		if errors.As(planErr.Err, &ne) || errors.Is(planErr.Err, ErrTenantOutsideRule) {
			return Report{}, &RefusedError{planErr.Err}
		}
		r.IAM.TableInfo, r.IAM.Tenants = plan.info, plan.tenants
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
		return r, nil
	}
	if planErr.Outcome == Failed {
		r.IAM.LayerResult = planErr
		r.IAM.PolicyARN, r.IAM.OperatorRole = known(ctx, policy)
		return r, nil
	}
	r.IAM.LayerResult = runLayer(ctx, opts.LayerTimeout, true, func(ctx context.Context) error {
		defer func() { r.IAM.PolicyARN, r.IAM.OperatorRole = known(ctx, policy) }()
		ch, err := policy.On(ctx, *plan.info, plan.scope, req.Roles)
		if err == nil || len(ch.Roles) > 0 {
			r.IAM.Change = &ch
		}
		if err == nil {
			r.IAM.Warnings = policy.DAXWarnings(ctx)
		}
		return err
	})
	if r.IAM.Outcome != OK || opts.SkipEffectCheck {
		return r, nil
	}
	e := policy.Wait(ctx, *plan.info, req.Roles, probesFor(plan.scope), opts.EffectTimeout, opts.EffectPoll)
	r.IAM.Effect = &e
	if !e.Effective {
		r.IAM.Outcome = NotEffective
		why := e.Error
		if why == "" {
			why = strings.Join(e.Pending, "; ")
		}
		r.IAM.Reason = fmt.Sprintf("applied, but IAM's evaluation does not show the deny in force after %s (%s); rerun the same command or `rewind readonly status` to check again", e.Waited.Round(time.Second), why)
	}
	return r, nil
}

// iamPlan is what the IAM layer of a Freeze will deny.
type iamPlan struct {
	info    *TableInfo
	scope   Scope
	tenants map[string]TenantMatch
}

// planIAM describes the table and works out the deny's scope.
func planIAM(ctx context.Context, policy *DenyPolicy, req FreezeRequest) (iamPlan, error) {
	info, err := policy.DescribeTable(ctx, req.Table)
	if err != nil {
		return iamPlan{}, err
	}
	plan := iamPlan{info: &info, scope: Scope{Patterns: []string{}}}
	if req.WholeTable || len(req.Tenants) == 0 || slices.Contains(req.Tenants, All) {
		plan.scope.Whole = true
		return plan, nil
	}
	if plan.tenants, err = TenantPatterns(req.Rule, info, req.Tenants); err != nil {
		return iamPlan{}, err
	}
	for _, m := range plan.tenants {
		plan.scope = plan.scope.union(Scope{Patterns: m.Patterns})
	}
	return plan, nil
}

// RefusedError is a freeze rewind will not start: the IAM layer would
// have to deny more than asked, or a tenant cannot be matched.
type RefusedError struct{ Err error }

func (e *RefusedError) Error() string {
	return "readonly freeze refused, nothing changed: " + e.Err.Error()
}
func (e *RefusedError) Unwrap() error { return e.Err }

// Thaw lifts read-only mode: the IAM layer first, so that IAM no longer
// denies writes by the time the guard lets them through, then the
// application layer. As in Freeze, each layer runs under its own
// LayerTimeout and is tried even when the other failed. policy may be nil
// when req asks nothing of the IAM layer.
func Thaw(ctx context.Context, list AppLayer, policy *DenyPolicy, req ThawRequest, opts Options) (Report, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return Report{}, err
	}
	if len(req.Tenants) > 0 && len(req.Roles) > 0 {
		return Report{}, errors.New("readonly thaw: give tenants (their items are thawed for every role) or roles (the deny is lifted from them), not both")
	}
	iamAsked := policy != nil || len(req.Tenants) == 0
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
		r.IAM.LayerResult = skipped("no IAM client")
	} else {
		r.IAM.LayerResult = runLayer(ctx, opts.LayerTimeout, true, func(ctx context.Context) error {
			var ch PolicyChange
			var err error
			if len(req.Tenants) > 0 {
				ch, err = policy.removeTenants(ctx, req, &r.IAM)
			} else {
				ch, err = policy.Off(ctx, req.Roles)
			}
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

// removeTenants is Thaw's IAM layer for some tenants.
func (p *DenyPolicy) removeTenants(ctx context.Context, req ThawRequest, res *IAMResult) (PolicyChange, error) {
	table := req.Table
	if table == "" {
		policyARN, err := p.ARN(ctx)
		if err != nil {
			return PolicyChange{}, err
		}
		doc, exists, err := p.readDocument(ctx, policyARN)
		if err != nil {
			return PolicyChange{}, err
		}
		if !exists {
			return PolicyChange{Policy: p.name, PolicyARN: policyARN, Roles: []RoleChange{}}, nil
		}
		tables := tablesOf(doc)
		if len(tables) != 1 {
			return PolicyChange{}, fmt.Errorf("policy %s names tables %v: give --table", p.name, tables)
		}
		table = tables[0]
	}
	info, err := p.DescribeTable(ctx, table)
	if err != nil {
		return PolicyChange{}, err
	}
	res.Table, res.TableInfo = table, &info
	remove := Scope{Patterns: []string{}}
	var some []string
	for _, t := range req.Tenants {
		if t == All {
			remove.Whole = true
		} else {
			some = append(some, t)
		}
	}
	if len(some) > 0 {
		m, err := TenantPatterns(req.Rule, info, some)
		if err != nil {
			return PolicyChange{}, err
		}
		res.Tenants = m
		for _, x := range m {
			remove = remove.union(Scope{Patterns: x.Patterns})
		}
	}
	return p.Remove(ctx, info, remove)
}
