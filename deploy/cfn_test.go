package deploy_test

// A reader for CloudFormation YAML templates: go.yaml.in/yaml/v3 plus the
// short-form intrinsic tags (!Ref, !GetAtt, !Sub, ...), which it turns into
// their long forms so that checks see what CloudFormation sees. It stands
// in for goformation, which v7.14.9 cannot do for this template: it rejects
// the function's LoggingConfig ("unknown field"), resolves !Ref to parameter
// defaults (then fails on a Number parameter used as an environment
// variable), blanks references to resources, and drops FunctionResponseTypes
// from SAM stream events, so it cannot answer "does REWIND_BUCKET name the
// bucket?".

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// template is a CloudFormation template decoded to maps, slices and
// scalars, with short-form intrinsic functions in their long form:
// !Ref X is {"Ref": "X"}, !GetAtt A.B is {"Fn::GetAtt": ["A", "B"]}.
type template map[string]any

// intrinsicTags maps each short-form tag to its long-form key.
var intrinsicTags = map[string]string{
	"!Ref":          "Ref",
	"!Condition":    "Condition",
	"!Base64":       "Fn::Base64",
	"!Cidr":         "Fn::Cidr",
	"!FindInMap":    "Fn::FindInMap",
	"!GetAtt":       "Fn::GetAtt",
	"!GetAZs":       "Fn::GetAZs",
	"!ImportValue":  "Fn::ImportValue",
	"!Join":         "Fn::Join",
	"!Select":       "Fn::Select",
	"!Split":        "Fn::Split",
	"!Sub":          "Fn::Sub",
	"!Transform":    "Fn::Transform",
	"!And":          "Fn::And",
	"!Equals":       "Fn::Equals",
	"!If":           "Fn::If",
	"!Not":          "Fn::Not",
	"!Or":           "Fn::Or",
	"!Length":       "Fn::Length",
	"!ToJsonString": "Fn::ToJsonString",
}

func parseTemplate(data []byte) (template, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	v, err := decodeNode(&doc)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("template is a %T, want a mapping", v)
	}
	return template(m), nil
}

func decodeNode(n *yaml.Node) (any, error) {
	if fn, ok := intrinsicTags[n.Tag]; ok {
		arg, err := decodeUntagged(n)
		if err != nil {
			return nil, err
		}
		if s, ok := arg.(string); ok && fn == "Fn::GetAtt" {
			res, attr, found := strings.Cut(s, ".")
			if !found {
				return nil, fmt.Errorf("line %d: !GetAtt %q: want Resource.Attribute", n.Line, s)
			}
			arg = []any{res, attr}
		}
		return map[string]any{fn: arg}, nil
	}
	if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		return nil, fmt.Errorf("line %d: unknown tag %s", n.Line, n.Tag)
	}
	return decodeUntagged(n)
}

// decodeUntagged decodes n as if it had no explicit tag of its own.
func decodeUntagged(n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) != 1 {
			return nil, fmt.Errorf("want one YAML document, got %d", len(n.Content))
		}
		return decodeNode(n.Content[0])
	case yaml.AliasNode:
		return decodeNode(n.Alias)
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: mapping key is not a scalar", k.Line)
			}
			if k.Value == "<<" {
				return nil, fmt.Errorf("line %d: YAML merge keys are not supported by CloudFormation", k.Line)
			}
			// yaml.v3 accepts duplicate keys when decoding to a Node;
			// CloudFormation rejects the template.
			if _, dup := m[k.Value]; dup {
				return nil, fmt.Errorf("line %d: duplicate key %q", k.Line, k.Value)
			}
			val, err := decodeNode(v)
			if err != nil {
				return nil, err
			}
			m[k.Value] = val
		}
		return m, nil
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := decodeNode(c)
			if err != nil {
				return nil, err
			}
			s = append(s, v)
		}
		return s, nil
	case yaml.ScalarNode:
		if _, ok := intrinsicTags[n.Tag]; ok {
			return n.Value, nil
		}
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, fmt.Errorf("line %d: %w", n.Line, err)
		}
		return v, nil
	}
	return nil, fmt.Errorf("line %d: unexpected YAML node kind %v", n.Line, n.Kind)
}

func loadTemplate(t testing.TB) template {
	t.Helper()
	data, err := os.ReadFile("template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := parseTemplate(data)
	if err != nil {
		t.Fatalf("template.yaml: %v", err)
	}
	return tpl
}

// at walks v along path: string elements index mappings, int elements
// index sequences. It returns nil when the path does not exist.
func at(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			s, ok := v.([]any)
			if !ok || k < 0 || k >= len(s) {
				return nil
			}
			v = s[k]
		default:
			panic(fmt.Sprintf("path element %v is a %T", p, p))
		}
	}
	return v
}

func asMap(v any) map[string]any { m, _ := v.(map[string]any); return m }

// asList returns v as a list; a scalar or mapping is a list of one, as in
// IAM's Action and Resource.
func asList(v any) []any {
	switch v := v.(type) {
	case nil:
		return nil
	case []any:
		return v
	}
	return []any{v}
}

func toInt(v any) (int, bool) {
	switch v := v.(type) {
	case int:
		return v, true
	case string:
		n, err := strconv.Atoi(v)
		return n, err == nil
	}
	return 0, false
}

// intrinsic returns the function name and argument of a one-key mapping
// such as {"Ref": "X"}.
func intrinsic(v any) (string, any, bool) {
	m := asMap(v)
	if len(m) != 1 {
		return "", nil, false
	}
	for k, arg := range m {
		if k == "Ref" || k == "Condition" || strings.HasPrefix(k, "Fn::") {
			return k, arg, true
		}
	}
	return "", nil, false
}

func refOf(v any) (string, bool) {
	fn, arg, ok := intrinsic(v)
	if !ok || fn != "Ref" {
		return "", false
	}
	s, ok := arg.(string)
	return s, ok
}

func getAttOf(v any) (res, attr string, ok bool) {
	fn, arg, ok := intrinsic(v)
	if !ok || fn != "Fn::GetAtt" {
		return "", "", false
	}
	l := asList(arg)
	if s, isStr := arg.(string); isStr {
		res, attr, ok = strings.Cut(s, ".")
		return res, attr, ok
	}
	if len(l) != 2 {
		return "", "", false
	}
	res, ok1 := l[0].(string)
	attr, ok2 := l[1].(string)
	return res, attr, ok1 && ok2
}

// subOf returns the string of a !Sub without a variable map (a map could
// rebind ${Name} to anything).
func subOf(v any) (string, bool) {
	fn, arg, ok := intrinsic(v)
	if !ok || fn != "Fn::Sub" {
		return "", false
	}
	s, ok := arg.(string)
	return s, ok
}

func show(v any) string {
	if fn, arg, ok := intrinsic(v); ok {
		return fmt.Sprintf("%s %v", fn, arg)
	}
	return fmt.Sprintf("%#v", v)
}

func (tpl template) resources() map[string]any { return asMap(tpl["Resources"]) }

func (tpl template) typeOf(name string) string {
	s, _ := at(tpl.resources(), name, "Type").(string)
	return s
}

func (tpl template) props(name string) map[string]any {
	return asMap(at(tpl.resources(), name, "Properties"))
}

// ofType returns the logical IDs of the resources of type typ, sorted.
func (tpl template) ofType(typ string) []string {
	var names []string
	for name := range tpl.resources() {
		if tpl.typeOf(name) == typ {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// one returns the logical ID of the one resource of type typ, leaving out
// the optional compaction resources (Condition CompactionOn), which
// TestCompaction checks.
func (tpl template) one(typ string) (string, error) {
	var names []string
	for _, n := range tpl.ofType(typ) {
		if at(tpl.resources(), n, "Condition") != "CompactionOn" {
			names = append(names, n)
		}
	}
	if len(names) != 1 {
		return "", fmt.Errorf("want one %s resource, found %d: %v", typ, len(names), names)
	}
	return names[0], nil
}

// refTo checks that v is a Ref to a resource of type typ and returns its
// logical ID.
func (tpl template) refTo(v any, typ string) (string, error) {
	name, ok := refOf(v)
	if !ok {
		return "", fmt.Errorf("is %s, want a Ref to an %s", show(v), typ)
	}
	if got := tpl.typeOf(name); got != typ {
		return "", fmt.Errorf("refers to %s (%q), want an %s", name, got, typ)
	}
	return name, nil
}

// arnOf checks that v is !GetAtt X.Arn of a resource of type typ and
// returns X.
func (tpl template) arnOf(v any, typ string) (string, error) {
	res, attr, ok := getAttOf(v)
	if !ok || attr != "Arn" {
		return "", fmt.Errorf("is %s, want !GetAtt of an %s's Arn", show(v), typ)
	}
	if got := tpl.typeOf(res); got != typ {
		return "", fmt.Errorf("is the Arn of %s (%q), want an %s", res, got, typ)
	}
	return res, nil
}

// resolve evaluates an environment variable's value the way CloudFormation
// would with the given parameter values, standing in a resource's logical
// ID for its physical name. present is false for AWS::NoValue.
func (tpl template) resolve(v any, params map[string]any) (s string, present bool, err error) {
	switch v := v.(type) {
	case string:
		return v, true, nil
	case int, bool:
		return fmt.Sprint(v), true, nil
	}
	fn, arg, ok := intrinsic(v)
	switch {
	case !ok:
		return "", false, fmt.Errorf("cannot resolve %s", show(v))
	case fn == "Ref":
		name, _ := arg.(string)
		if name == "AWS::NoValue" {
			return "", false, nil
		}
		if p, ok := params[name]; ok {
			return fmt.Sprint(p), true, nil
		}
		if tpl.typeOf(name) != "" {
			return name, true, nil
		}
		return "", false, fmt.Errorf("Ref %s: no such parameter or resource", name)
	case fn == "Fn::If":
		l := asList(arg)
		if len(l) != 3 {
			return "", false, fmt.Errorf("malformed Fn::If %v", arg)
		}
		cond, _ := l[0].(string)
		yes, err := tpl.condition(asMap(tpl["Conditions"])[cond], params)
		if err != nil {
			return "", false, fmt.Errorf("condition %s: %w", cond, err)
		}
		if yes {
			return tpl.resolve(l[1], params)
		}
		return tpl.resolve(l[2], params)
	}
	return "", false, fmt.Errorf("cannot resolve %s", show(v))
}

func (tpl template) condition(v any, params map[string]any) (bool, error) {
	fn, arg, ok := intrinsic(v)
	if !ok {
		return false, fmt.Errorf("%s is not a condition", show(v))
	}
	l := asList(arg)
	switch fn {
	case "Condition":
		name, _ := arg.(string)
		return tpl.condition(asMap(tpl["Conditions"])[name], params)
	case "Fn::Not":
		b, err := tpl.condition(l[0], params)
		return !b, err
	case "Fn::And", "Fn::Or":
		for _, c := range l {
			b, err := tpl.condition(c, params)
			if err != nil {
				return false, err
			}
			if b == (fn == "Fn::Or") {
				return b, nil
			}
		}
		return fn == "Fn::And", nil
	case "Fn::Equals":
		if len(l) != 2 {
			return false, fmt.Errorf("malformed Fn::Equals %v", arg)
		}
		a, _, err := tpl.resolve(l[0], params)
		if err != nil {
			return false, err
		}
		b, _, err := tpl.resolve(l[1], params)
		return a == b, err
	}
	return false, fmt.Errorf("unsupported condition function %s", fn)
}

func TestParseTemplateShortForms(t *testing.T) {
	tests := []struct {
		yaml string
		want string // fmt %v of the decoded value of key v
		err  bool
	}{
		{"v: !Ref Bucket", "map[Ref:Bucket]", false},
		{"v: !GetAtt Table.Arn", "map[Fn::GetAtt:[Table Arn]]", false},
		{"v: !GetAtt [Table, StreamArn]", "map[Fn::GetAtt:[Table StreamArn]]", false},
		{`v: !Sub "${Bucket.Arn}/x/*"`, "map[Fn::Sub:${Bucket.Arn}/x/*]", false},
		{"v: !If [C, !Ref A, !Ref AWS::NoValue]", "map[Fn::If:[C map[Ref:A] map[Ref:AWS::NoValue]]]", false},
		{"v: !Not [!Equals [!Ref P, '']]", "map[Fn::Not:[map[Fn::Equals:[map[Ref:P] ]]]]", false},
		{"v: !Join ['', [a, !Ref B]]", "map[Fn::Join:[ [a map[Ref:B]]]]", false},
		{"v: !Select [0, !Split [',', !Ref L]]", "map[Fn::Select:[0 map[Fn::Split:[, map[Ref:L]]]]]", false},
		{"v: {Ref: X}", "map[Ref:X]", false},
		{"v: 100", "100", false},
		{`v: "100"`, "100", false},
		{"v: true", "true", false},
		{"v: !GetAtt TableArn", "", true},
		{"v: !Reff X", "", true},
		{"v: 1\nv: 2", "", true},
		{"a: &x {b: 1}\nv: {<<: *x}", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.yaml, func(t *testing.T) {
			tpl, err := parseTemplate([]byte(tt.yaml))
			if tt.err {
				if err == nil {
					t.Fatalf("parsed to %v, want an error", tpl)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprintf("%v", tpl["v"]); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
	// A quoted number stays a string; CloudFormation treats both alike but
	// the checks compare with ==.
	tpl, _ := parseTemplate([]byte(`{a: "100", b: 100}`))
	if _, ok := tpl["a"].(string); !ok {
		t.Errorf(`"100" decoded to %T, want string`, tpl["a"])
	}
	if _, ok := tpl["b"].(int); !ok {
		t.Errorf("100 decoded to %T, want int", tpl["b"])
	}
}
