package readonly

import (
	"errors"
	"fmt"
	"regexp/syntax"
	"slices"
	"strings"
	"unicode/utf8"

	rewind "github.com/ddbrewind/rewind"
)

// LeadingKeysCondition is the condition key the per-tenant deny matches:
// DynamoDB sets it to the partition key values a request touches (several
// for a BatchWriteItem or TransactWriteItems over many keys), so the deny
// uses the ForAnyValue: set operator, which matches when any one of them
// matches any pattern.
const LeadingKeysCondition = "dynamodb:LeadingKeys"

// TableInfo is what the IAM layer needs to know of the table, from
// DescribeTable.
type TableInfo struct {
	Name string `json:"name"`
	// PartitionKey and PartitionKeyType (S, N or B) are the table's HASH
	// key; SortKey its RANGE key, empty when it has none.
	PartitionKey     string `json:"partitionKey"`
	PartitionKeyType string `json:"partitionKeyType"`
	SortKey          string `json:"sortKey,omitempty"`
	// Region is the region the table was described in; Replicas the
	// regions of the other replicas of a global table (same table name in
	// each), sorted. The deny names the table in all of them, since a
	// write to any replica replicates to the others.
	Region   string   `json:"region"`
	Replicas []string `json:"replicas,omitempty"`
}

// Regions is Region followed by Replicas, without duplicates.
func (t TableInfo) Regions() []string {
	rs := []string{t.Region}
	for _, r := range t.Replicas {
		if !slices.Contains(rs, r) {
			rs = append(rs, r)
		}
	}
	return rs
}

// NotExpressibleError says that a tenant rule cannot be written as a
// dynamodb:LeadingKeys condition, so that a deny for some tenants would
// have to freeze the whole table. rewind never widens a freeze silently:
// the operator chooses --all or --iam whole-table.
type NotExpressibleError struct {
	Rule   string
	Table  string
	Reason string
}

func (e *NotExpressibleError) Error() string {
	return fmt.Sprintf("the IAM layer cannot deny only some tenants of table %s: %s (tenant rule %s); an IAM deny would freeze the whole table: rerun with --all to freeze every tenant, or with --iam whole-table to freeze every tenant in IAM while the application layer freezes only the tenants given", e.Table, e.Reason, e.Rule)
}

// ErrTenantOutsideRule is a tenant id the tenant rule can never produce.
var ErrTenantOutsideRule = errors.New("tenant id cannot be produced by the tenant rule")

// leadingShape is a tenant rule as partition key patterns: an item of
// tenant t has a partition key that is prefix+t+suffix exactly (exact), or
// starts with prefix+t+suffix (when after is empty), or is prefix+t or
// starts with prefix+t+c for a c in after (the runes the rule's capture
// group cannot match, so that the tenant ends there).
type leadingShape struct {
	prefix, suffix string
	exact          bool
	after          []rune
	class          func(rune) bool
	minLen         int
}

// maxAfterRunes bounds the runes a capture group may exclude when nothing
// follows it (one pattern each): `([^#]+)` excludes one.
const maxAfterRunes = 4

func ruleString(r rewind.TenantRule) string {
	attr := r.Attribute
	if attr == "" {
		attr = rewind.DefaultTenantAttribute
	}
	if r.Regex == nil {
		return fmt.Sprintf("attribute %s, whole value", attr)
	}
	return fmt.Sprintf("attribute %s, regex %s", attr, r.Regex)
}

// shapeOf reads the rule as a leadingShape, or says why it cannot be.
func shapeOf(rule rewind.TenantRule, t TableInfo) (leadingShape, error) {
	attr := rule.Attribute
	if attr == "" {
		attr = rewind.DefaultTenantAttribute
	}
	fail := func(format string, args ...any) (leadingShape, error) {
		return leadingShape{}, &NotExpressibleError{Rule: ruleString(rule), Table: t.Name, Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case attr == t.SortKey:
		return fail("the tenant is read from the sort key %s, and dynamodb:LeadingKeys sees only the partition key %s", attr, t.PartitionKey)
	case attr != t.PartitionKey:
		return fail("the tenant is read from attribute %s, which is not the partition key (%s), and dynamodb:LeadingKeys sees only the partition key", attr, t.PartitionKey)
	case t.PartitionKeyType != "S":
		// The tenant of a binary key is its base64, of a number key its
		// text as written: neither is certain to be the string IAM
		// matches, so only string keys are trusted.
		return fail("the partition key %s is of type %s, and rewind matches dynamodb:LeadingKeys only for string keys", attr, t.PartitionKeyType)
	}
	if rule.Regex == nil {
		return leadingShape{exact: true, class: func(rune) bool { return true }, minLen: 1}, nil
	}
	re, err := syntax.Parse(rule.Regex.String(), syntax.Perl)
	if err != nil {
		return fail("the regex does not parse: %v", err)
	}
	subs := []*syntax.Regexp{re}
	if re.Op == syntax.OpConcat {
		subs = re.Sub
	}
	if len(subs) == 0 || subs[0].Op != syntax.OpBeginText {
		return fail("the regex is not anchored with ^ at the start of the key, and IAM patterns match whole values")
	}
	subs = subs[1:]
	var sh leadingShape
	literal := func() (string, bool) {
		var b strings.Builder
		for len(subs) > 0 && subs[0].Op == syntax.OpLiteral {
			if subs[0].Flags&syntax.FoldCase != 0 {
				return "", false
			}
			b.WriteString(string(subs[0].Rune))
			subs = subs[1:]
		}
		return b.String(), true
	}
	var ok bool
	if sh.prefix, ok = literal(); !ok {
		return fail("the regex matches case-insensitively, and StringLike is case-sensitive")
	}
	if len(subs) == 0 || subs[0].Op != syntax.OpCapture {
		return fail("the regex has more than a literal prefix before its capture group")
	}
	capture := subs[0].Sub[0]
	subs = subs[1:]
	if (capture.Op != syntax.OpPlus && capture.Op != syntax.OpStar) || capture.Flags&syntax.NonGreedy != 0 {
		return fail("the capture group is not a greedy repetition of one character class (such as ([^#]+))")
	}
	if capture.Op == syntax.OpPlus {
		sh.minLen = 1
	}
	switch cls := capture.Sub[0]; cls.Op {
	case syntax.OpCharClass:
		ranges := slices.Clone(cls.Rune)
		sh.class = func(r rune) bool {
			for i := 0; i+1 < len(ranges); i += 2 {
				if r >= ranges[i] && r <= ranges[i+1] {
					return true
				}
			}
			return false
		}
	case syntax.OpAnyCharNotNL:
		sh.class = func(r rune) bool { return r != '\n' }
	case syntax.OpAnyChar:
		sh.class = func(rune) bool { return true }
	case syntax.OpLiteral:
		if len(cls.Rune) != 1 || cls.Flags&syntax.FoldCase != 0 {
			return fail("the capture group is not a repetition of one character class")
		}
		c := cls.Rune[0]
		sh.class = func(r rune) bool { return r == c }
	default:
		return fail("the capture group is not a repetition of one character class")
	}
	if sh.suffix, ok = literal(); !ok {
		return fail("the regex matches case-insensitively, and StringLike is case-sensitive")
	}
	if len(subs) == 1 && subs[0].Op == syntax.OpEndText {
		sh.exact = true
		subs = subs[1:]
	}
	if len(subs) > 0 {
		return fail("the regex has more than a literal after its capture group")
	}
	switch {
	case sh.exact:
		// Anchored at both ends: the capture is what lies between prefix
		// and suffix, whatever the class.
	case sh.suffix != "":
		// The tenant ends where the suffix starts only if the class
		// cannot eat the suffix's first rune.
		if first, _ := utf8.DecodeRuneInString(sh.suffix); sh.class(first) {
			return fail("the capture group can match %q, the first character after it, so where a tenant ends depends on the rest of the key", first)
		}
	default:
		// Nothing after the capture: the tenant runs to the end of the
		// key or to the first rune outside the class.
		sh.after = complementRunes(sh.class, maxAfterRunes+1)
		if len(sh.after) > maxAfterRunes {
			return fail("nothing follows the capture group and it stops at more than %d different characters, one IAM pattern each", maxAfterRunes)
		}
	}
	return sh, nil
}

// complementRunes returns up to limit runes for which in is false.
func complementRunes(in func(rune) bool, limit int) []rune {
	var out []rune
	for r := rune(0); r <= utf8.MaxRune && len(out) < limit; r++ {
		if utf8.ValidRune(r) && !in(r) {
			out = append(out, r)
		}
	}
	return out
}

// iamEscaper writes a literal string in an IAM StringLike pattern. In
// StringLike, * matches any run of characters and ? any one character,
// and ${...} is a policy variable; the IAM User Guide ("IAM policy
// elements: Variables and tags", special characters) gives the predefined
// variables ${*}, ${?} and ${$} for a literal *, ? and $. Every $ is
// written as ${$}, which is always right, whether or not a { follows.
var iamEscaper = strings.NewReplacer("*", "${*}", "?", "${?}", "$", "${$}")

// EscapeStringLike returns s as a StringLike pattern that matches s only.
func EscapeStringLike(s string) string { return iamEscaper.Replace(s) }

// tenantPatterns returns the StringLike patterns that match the partition
// keys of tenant's items, and one sample partition key per pattern (for
// IAM simulation).
func (sh leadingShape) tenantPatterns(tenant string) (patterns, samples []string, err error) {
	n := 0
	for _, r := range tenant {
		if !sh.class(r) {
			return nil, nil, fmt.Errorf("%w: tenant %q (character %q is outside the rule's capture group), so no item belongs to it and a pattern for it could match another tenant's keys", ErrTenantOutsideRule, tenant, r)
		}
		n++
	}
	if n < sh.minLen {
		return nil, nil, fmt.Errorf("empty tenant id")
	}
	base := sh.prefix + tenant + sh.suffix
	switch {
	case sh.exact:
		return []string{EscapeStringLike(base)}, []string{base}, nil
	case sh.suffix != "":
		return []string{EscapeStringLike(base) + "*"}, []string{base + "rewind-probe"}, nil
	}
	patterns, samples = []string{EscapeStringLike(base)}, []string{base}
	for _, c := range sh.after {
		patterns = append(patterns, EscapeStringLike(base+string(c))+"*")
		samples = append(samples, base+string(c)+"rewind-probe")
	}
	return patterns, samples, nil
}

// TenantPatterns returns, for each tenant, the dynamodb:LeadingKeys
// StringLike patterns that match its items' partition keys under rule on
// table t, and a sample partition key per pattern. The error is a
// *NotExpressibleError when the rule cannot be matched by IAM at all.
func TenantPatterns(rule rewind.TenantRule, t TableInfo, tenants []string) (map[string]TenantMatch, error) {
	sh, err := shapeOf(rule, t)
	if err != nil {
		return nil, err
	}
	out := map[string]TenantMatch{}
	for _, tenant := range tenants {
		p, s, err := sh.tenantPatterns(tenant)
		if err != nil {
			return nil, fmt.Errorf("IAM layer: table %s, %s: %w", t.Name, ruleString(rule), err)
		}
		// The patterns must mean what the rule means: each sample key's
		// tenant, by the rule itself, is tenant.
		for _, key := range s {
			if got := rule.Tenant(rewind.Key{{Name: t.PartitionKey, Type: 'S', Value: key}}); got != tenant {
				return nil, &NotExpressibleError{Rule: ruleString(rule), Table: t.Name, Reason: fmt.Sprintf("the pattern rewind would write for tenant %s does not agree with the rule (key %q has tenant %q)", tenant, key, got)}
			}
		}
		out[tenant] = TenantMatch{Patterns: p, Samples: s}
	}
	return out, nil
}

// TenantMatch is how the IAM layer matches one tenant's items.
type TenantMatch struct {
	// Patterns are StringLike patterns on dynamodb:LeadingKeys.
	Patterns []string `json:"patterns"`
	// Samples are partition keys of the tenant, one per pattern.
	Samples []string `json:"samples"`
}
