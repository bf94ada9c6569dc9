package readonly

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
)

// Effect is IAM's own evaluation of the deny: for each role, each write
// action on the table's ARNs (every region, the indexes too), with a
// partition key of each frozen tenant as dynamodb:LeadingKeys, asked of
// iam:SimulatePrincipalPolicy. The freeze is effective when every answer
// is an explicit deny.
//
// IAM is eventually consistent: a change made through its API can take a
// while to be seen everywhere (the IAM User Guide, "Changes that I make
// are not always immediately visible"). The simulation evaluates the
// policies IAM holds for the role, so it shows that the documents attached
// deny what they should; it is the best evidence IAM offers, and Wait
// polls it until it holds.
type Effect struct {
	Effective bool `json:"effective"`
	// Checked counts the (role, action, resource, key) evaluations.
	Checked int `json:"checked"`
	// Pending are the evaluations that were not an explicit deny, at most
	// a few, as "role R: ACTION on ARN [key K]: DECISION".
	Pending []string `json:"pending,omitempty"`
	// Error is why the evaluation could not be made (e.g. the caller may
	// not call iam:SimulatePrincipalPolicy).
	Error string `json:"error,omitempty"`
	// Waited is how long Wait polled.
	Waited time.Duration `json:"waitedNs,omitempty"`
}

// Probe is one request to evaluate: a partition key (LeadingKeys), or
// none for a whole-table deny.
type Probe struct {
	LeadingKeys []string
}

// probesFor returns the probes that show s in force.
func probesFor(s Scope) []Probe {
	var ps []Probe
	if s.Whole {
		ps = append(ps, Probe{LeadingKeys: []string{"rewind-probe-any-tenant"}})
	}
	for _, pat := range s.Patterns {
		ps = append(ps, Probe{LeadingKeys: []string{sampleOf(pat)}})
	}
	return ps
}

// maxPending bounds Effect.Pending.
const maxPending = 5

// Check asks IAM, once, whether each role is denied every write action on
// t for each probe.
func (p *DenyPolicy) Check(ctx context.Context, t TableInfo, roles []string, probes []Probe) Effect {
	id, err := p.Identity(ctx)
	if err != nil {
		return Effect{Error: err.Error()}
	}
	var resources []string
	for _, r := range t.Regions() {
		tab := fmt.Sprintf("arn:%s:dynamodb:%s:%s:table/%s", id.Partition, r, id.Account, t.Name)
		resources = append(resources, tab, tab+"/index/rewind-probe")
	}
	e := Effect{Effective: true}
	for _, role := range roles {
		out, err := p.iam.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(role)})
		if err != nil {
			return Effect{Error: fmt.Sprintf("get role %s: %v", role, err)}
		}
		for _, pr := range probes {
			in := &iam.SimulatePrincipalPolicyInput{
				PolicySourceArn: out.Role.Arn,
				ActionNames:     WriteActions,
				ResourceArns:    resources,
			}
			if len(pr.LeadingKeys) > 0 {
				in.ContextEntries = []iamtypes.ContextEntry{{
					ContextKeyName:   aws.String(LeadingKeysCondition),
					ContextKeyType:   iamtypes.ContextKeyTypeEnumStringList,
					ContextKeyValues: pr.LeadingKeys,
				}}
			}
			pg := iam.NewSimulatePrincipalPolicyPaginator(p.iam, in)
			for pg.HasMorePages() {
				res, err := pg.NextPage(ctx)
				if err != nil {
					return Effect{Error: fmt.Sprintf("iam simulate-principal-policy for role %s: %v", role, err)}
				}
				for _, r := range res.EvaluationResults {
					if r.ResourceSpecificResults == nil || len(r.ResourceSpecificResults) == 0 {
						e.record(role, aws.ToString(r.EvalActionName), aws.ToString(r.EvalResourceName), pr, r.EvalDecision)
						continue
					}
					for _, rr := range r.ResourceSpecificResults {
						e.record(role, aws.ToString(r.EvalActionName), aws.ToString(rr.EvalResourceName), pr, rr.EvalResourceDecision)
					}
				}
			}
		}
	}
	if e.Checked == 0 {
		e.Effective = false
		e.Error = "nothing was evaluated"
	}
	return e
}

func (e *Effect) record(role, action, resource string, pr Probe, d iamtypes.PolicyEvaluationDecisionType) {
	e.Checked++
	if d == iamtypes.PolicyEvaluationDecisionTypeExplicitDeny {
		return
	}
	e.Effective = false
	if len(e.Pending) < maxPending {
		key := ""
		if len(pr.LeadingKeys) > 0 {
			key = " key " + strings.Join(pr.LeadingKeys, ",")
		}
		e.Pending = append(e.Pending, fmt.Sprintf("role %s: %s on %s%s: %s", role, action, resource, key, d))
	}
}

// Wait polls Check every interval until the deny is effective or timeout
// passes; the last evaluation is returned.
func (p *DenyPolicy) Wait(ctx context.Context, t TableInfo, roles []string, probes []Probe, timeout, interval time.Duration) Effect {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		e := p.Check(ctx, t, roles, probes)
		e.Waited = time.Since(start)
		if e.Effective || ctx.Err() != nil {
			return e
		}
		select {
		case <-ctx.Done():
			e.Waited = time.Since(start)
			return e
		case <-time.After(interval):
		}
	}
}

// holdersOf lists the roles holding the deny, managed or inline.
func holdersOf(st PolicyStatus) []string {
	return slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(st.AttachedRoles), st.InlineRoles...))))
}
