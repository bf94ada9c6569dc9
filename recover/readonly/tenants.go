package readonly

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// DefaultParameter is the SSM parameter that holds the read-only tenants.
const DefaultParameter = "read-only-customers"

// All in the tenant list makes every tenant read-only.
const All = "all"

// Placeholder is the value stored when no tenant is read-only: SSM cannot
// store an empty StringList, so the list is never left empty.
const Placeholder = "none"

// maxValueLen is SSM's Standard tier limit on a parameter value.
const maxValueLen = 4096

// defaultMaxAttempts bounds the compare-and-set retries of TenantList.
const defaultMaxAttempts = 5

// ssmAPI is what the application layer needs of SSM.
type ssmAPI interface {
	GetParameter(ctx context.Context, in *ssm.GetParameterInput, optFns ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
	PutParameter(ctx context.Context, in *ssm.PutParameterInput, optFns ...func(*ssm.Options)) (*ssm.PutParameterOutput, error)
}

var _ ssmAPI = (*ssm.Client)(nil)

// TenantList is the application layer of read-only mode: a StringList SSM
// parameter of tenant ids (or All) that the application's guard reads.
//
// On and Off change the list by compare-and-set. SSM has no conditional
// put, so TenantList reads the value and its version, writes the new
// value, and checks the version the put returns: one more than the version
// read means nobody wrote in between. Otherwise a concurrent writer's
// change may have been overwritten, so TenantList reads the version just
// before its own write (the name:version selector), reapplies its change
// on top of it and writes again, at most MaxAttempts times. The result is
// that concurrent `on`/`off` runs by two operators both take effect. When
// the list does not need to change, nothing is written.
type TenantList struct {
	client ssmAPI
	name   string

	// MaxAttempts bounds the compare-and-set loop (default 5).
	MaxAttempts int
}

// NewTenantList returns the list stored in parameter name (DefaultParameter
// when empty).
func NewTenantList(client ssmAPI, name string) *TenantList {
	if name == "" {
		name = DefaultParameter
	}
	return &TenantList{client: client, name: name, MaxAttempts: defaultMaxAttempts}
}

// Name is the SSM parameter name.
func (l *TenantList) Name() string { return l.name }

// Tenants is the state of the list at one version.
type Tenants struct {
	// IDs are the read-only tenant ids, sorted, without the placeholder;
	// All among them means every tenant.
	IDs []string `json:"tenants"`
	// Exists is false when the parameter has never been written.
	Exists bool `json:"exists"`
	// Version is the parameter's version (0 when it does not exist); for
	// the AppConfig backend the latest hosted configuration version.
	Version int64 `json:"version"`
	// Deployment is, for the AppConfig backend, the latest deployment of
	// the profile to the environment (nil: never deployed, or SSM).
	Deployment *FlagDeployment `json:"deployment,omitempty"`
}

// ReadOnly reports whether tenant is read-only in this list.
func (t Tenants) ReadOnly(tenant string) bool {
	return slices.Contains(t.IDs, All) || (tenant != "" && slices.Contains(t.IDs, tenant))
}

// Change is what On or Off did.
type Change struct {
	// Parameter names the store: the SSM parameter, or
	// appconfig:APP/ENV/PROFILE.
	Parameter string   `json:"parameter"`
	Before    []string `json:"before"`
	After     []string `json:"after"`
	Added     []string `json:"added"`
	Removed   []string `json:"removed"`
	// Changed is false when the list already was as asked and nothing was
	// written.
	Changed bool `json:"changed"`
	// Version is the parameter's version after the change (AppConfig: the
	// hosted configuration version).
	Version int64 `json:"version"`
	// Deployment is, for AppConfig, the deployment started (or the one
	// already carrying the version).
	Deployment *FlagDeployment `json:"deployment,omitempty"`
	// Retries counts compare-and-set conflicts with concurrent writers.
	Retries int `json:"retries,omitempty"`
}

// ParseValue turns a stored StringList value into sorted, unique tenant
// ids, dropping the placeholder and empty items.
func ParseValue(v string) []string {
	var ids []string
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		if s != "" && s != Placeholder {
			ids = append(ids, s)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// FormatValue is the stored value for ids: comma-separated, or Placeholder
// when empty.
func FormatValue(ids []string) string {
	if len(ids) == 0 {
		return Placeholder
	}
	return strings.Join(ids, ",")
}

// ValidateTenant reports whether id can be stored in the list: not empty,
// no comma (the StringList separator), no white space, not the placeholder.
func ValidateTenant(id string) error {
	switch {
	case id == "":
		return errors.New("empty tenant id")
	case id == Placeholder:
		return fmt.Errorf("tenant id %q is the empty-list placeholder and cannot be stored", id)
	case strings.ContainsAny(id, ", \t\r\n"):
		return fmt.Errorf("tenant id %q contains a comma or white space", id)
	}
	return nil
}

// Get reads the list. A missing parameter is an empty list.
func (l *TenantList) Get(ctx context.Context) (Tenants, error) {
	out, err := l.client.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(l.name)})
	var nf *types.ParameterNotFound
	if errors.As(err, &nf) {
		return Tenants{}, nil
	}
	if err != nil {
		return Tenants{}, fmt.Errorf("read SSM parameter %s: %w", l.name, err)
	}
	return Tenants{IDs: ParseValue(aws.ToString(out.Parameter.Value)), Exists: true, Version: out.Parameter.Version}, nil
}

// On makes tenants read-only (adds them to the list).
func (l *TenantList) On(ctx context.Context, tenants []string) (Change, error) {
	add, err := adding(tenants)
	if err != nil {
		return Change{}, err
	}
	return l.update(ctx, add)
}

// Off makes tenants writable again (removes only them from the list); with
// no tenants it clears the list.
func (l *TenantList) Off(ctx context.Context, tenants []string) (Change, error) {
	remove, err := removing(tenants)
	if err != nil {
		return Change{}, err
	}
	return l.update(ctx, remove)
}

// adding returns the change On makes to a tenant list, or why it cannot.
func adding(tenants []string) (func([]string) []string, error) {
	if len(tenants) == 0 {
		return nil, errors.New("readonly on: no tenants given (use readonly.All for every tenant)")
	}
	if err := validate(tenants); err != nil {
		return nil, err
	}
	return func(ids []string) []string { return union(ids, tenants) }, nil
}

// removing returns the change Off makes to a tenant list: without tenants
// it clears the list.
func removing(tenants []string) (func([]string) []string, error) {
	if err := validate(tenants); err != nil {
		return nil, err
	}
	return func(ids []string) []string {
		if len(tenants) == 0 {
			return nil
		}
		return slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return slices.Contains(tenants, id) })
	}, nil
}

func validate(tenants []string) error {
	for _, t := range tenants {
		if err := ValidateTenant(t); err != nil {
			return err
		}
	}
	return nil
}

func union(a, b []string) []string {
	u := append(slices.Clone(a), b...)
	slices.Sort(u)
	return slices.Compact(u)
}

// update applies fn to the list by compare-and-set (see TenantList).
func (l *TenantList) update(ctx context.Context, fn func([]string) []string) (Change, error) {
	cur, err := l.Get(ctx)
	if err != nil {
		return Change{}, err
	}
	ch := Change{Parameter: l.name}
	// base is the list our change applies to; stored is what the parameter
	// holds now (they differ after a lost race); version is stored's.
	base, stored, exists, version := cur.IDs, cur.IDs, cur.Exists, cur.Version
	attempts := max(l.MaxAttempts, 1)
	for attempt := 0; ; attempt++ {
		next := fn(base)
		// A missing parameter and an empty list mean the same: no write.
		if slices.Equal(next, stored) && (exists || len(next) == 0) {
			ch.Before, ch.After, ch.Version = orEmpty(base), orEmpty(stored), version
			ch.Added, ch.Removed = diff(ch.Before, ch.After)
			ch.Changed = len(ch.Added)+len(ch.Removed) > 0
			return ch, nil
		}
		if attempt == attempts {
			return Change{}, fmt.Errorf("update SSM parameter %s: still racing with other writers after %d attempts; check `rewind readonly status` and retry", l.name, attempts)
		}
		value := FormatValue(next)
		if len(value) > maxValueLen {
			return Change{}, fmt.Errorf("update SSM parameter %s: %d tenants need %d characters, over SSM's limit of %d; use %q instead of a long list", l.name, len(next), len(value), maxValueLen, All)
		}
		out, err := l.client.PutParameter(ctx, &ssm.PutParameterInput{
			Name:        aws.String(l.name),
			Value:       aws.String(value),
			Type:        types.ParameterTypeStringList,
			Overwrite:   aws.Bool(exists),
			Description: aws.String("Tenant ids in read-only mode, or \"all\"; \"none\" when empty. Managed by rewind readonly."),
		})
		var already *types.ParameterAlreadyExists
		if errors.As(err, &already) {
			// Someone created it since we read: start again from theirs.
			ch.Retries++
			if cur, err = l.Get(ctx); err != nil {
				return Change{}, err
			}
			base, stored, exists, version = cur.IDs, cur.IDs, cur.Exists, cur.Version
			continue
		}
		if err != nil {
			return Change{}, fmt.Errorf("write SSM parameter %s: %w", l.name, err)
		}
		if out.Version == version+1 {
			ch.Before, ch.After, ch.Version, ch.Changed = orEmpty(base), orEmpty(next), out.Version, true
			ch.Added, ch.Removed = diff(ch.Before, ch.After)
			return ch, nil
		}
		// Versions version+1 .. out.Version-1 are someone else's, and our
		// write replaced them. Redo our change on top of the last of them.
		ch.Retries++
		prev, err := l.client.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(fmt.Sprintf("%s:%d", l.name, out.Version-1))})
		if err != nil {
			return Change{}, fmt.Errorf("write SSM parameter %s: a concurrent write was overwritten and version %d cannot be read back to merge it: %w", l.name, out.Version-1, err)
		}
		base = ParseValue(aws.ToString(prev.Parameter.Value))
		stored, exists, version = next, true, out.Version
	}
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// diff returns what is in b and not a, and what is in a and not b.
func diff(a, b []string) (added, removed []string) {
	added, removed = []string{}, []string{}
	for _, x := range b {
		if !slices.Contains(a, x) {
			added = append(added, x)
		}
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			removed = append(removed, x)
		}
	}
	return added, removed
}
