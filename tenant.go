package rewind

import (
	"encoding/base64"
	"fmt"
	"regexp"
)

// TenantRule says where an item's tenant comes from: a key attribute,
// optionally narrowed by a regular expression. Every source of change
// events (the stream handler, incremental exports) applies the same rule,
// so that one tenant has one name in the index whatever captured it.
type TenantRule struct {
	// Attribute is the key attribute holding the tenant. Default "pk".
	Attribute string
	// Regex, when set, extracts the tenant from Attribute's value through
	// its one capture group: `^TENANT#([^#]+)#` turns "TENANT#t1#ORDER#42"
	// into "t1". A value that does not match gives an empty tenant. Nil
	// (the default) takes the whole value.
	Regex *regexp.Regexp
}

// DefaultTenantAttribute is TenantRule.Attribute's default.
const DefaultTenantAttribute = "pk"

// EnsureDefaults fills an empty Attribute with DefaultTenantAttribute.
func (r *TenantRule) EnsureDefaults() {
	if r.Attribute == "" {
		r.Attribute = DefaultTenantAttribute
	}
}

// Validate reports a regular expression without exactly one capture group.
func (r TenantRule) Validate() error {
	if r.Regex != nil && r.Regex.NumSubexp() != 1 {
		return fmt.Errorf("tenant regex %q must have exactly one capture group", r.Regex)
	}
	return nil
}

// Tenant returns the tenant of the item with key k: the value of the
// rule's attribute (base64 for a binary attribute, as DynamoDB JSON writes
// it), through the regex when there is one; "" when the key has no such
// attribute or the regex does not match.
func (r TenantRule) Tenant(k Key) string {
	attr := r.Attribute
	if attr == "" {
		attr = DefaultTenantAttribute
	}
	a, ok := k.Get(attr)
	if !ok {
		return ""
	}
	v := a.Value
	if a.Type == 'B' {
		v = base64.StdEncoding.EncodeToString([]byte(v))
	}
	if r.Regex == nil {
		return v
	}
	m := r.Regex.FindStringSubmatch(v)
	if len(m) < 2 {
		return ""
	}
	return m[1]
}
