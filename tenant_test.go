package rewind

import (
	"regexp"
	"testing"
)

func TestTenantRule(t *testing.T) {
	re := regexp.MustCompile(`^TENANT#([^#]+)#`)
	for _, tc := range []struct {
		name string
		rule TenantRule
		key  Key
		want string
	}{
		{"default attribute, whole value", TenantRule{}, Key{{Name: "pk", Type: 'S', Value: "acme"}}, "acme"},
		{"regex match", TenantRule{Regex: re}, Key{{Name: "pk", Type: 'S', Value: "TENANT#t1#ORDER#42"}}, "t1"},
		{"regex no match", TenantRule{Regex: re}, Key{{Name: "pk", Type: 'S', Value: "ORDER#42"}}, ""},
		{"missing attribute", TenantRule{Attribute: "tenant"}, Key{{Name: "pk", Type: 'S', Value: "x"}}, ""},
		{"number attribute", TenantRule{Attribute: "id"}, Key{{Name: "id", Type: 'N', Value: "42"}}, "42"},
		{"binary attribute is base64", TenantRule{}, Key{{Name: "pk", Type: 'B', Value: "\x00\xff"}}, "AP8="},
	} {
		if got := tc.rule.Tenant(tc.key); got != tc.want {
			t.Errorf("%s: Tenant = %q, want %q", tc.name, got, tc.want)
		}
	}
	if err := (TenantRule{Regex: regexp.MustCompile(`(a)(b)`)}).Validate(); err == nil {
		t.Error("Validate accepted a regex with two capture groups")
	}
	if err := (TenantRule{Regex: re}).Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}
