package rewind

import (
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

func TestChangedAttributes(t *testing.T) {
	js := func(name, v string) ImageAttribute { return ImageAttribute{Name: name, JSON: []byte(v)} }
	val := func(name string, av types.AttributeValue) ImageAttribute {
		return ImageAttribute{Name: name, Value: av}
	}
	n := func(s string) types.AttributeValue { return &types.AttributeValueMemberN{Value: s} }
	for _, tc := range []struct {
		name     string
		old, new []ImageAttribute
		want     []string
	}{
		{"both absent", nil, nil, nil},
		{"insert: every attribute", nil, []ImageAttribute{js("b", `{"S":"x"}`), js("a", `{"N":"1"}`)}, []string{"a", "b"}},
		{"remove: every attribute", []ImageAttribute{js("a", `{"N":"1"}`)}, nil, []string{"a"}},
		{"empty images", []ImageAttribute{}, []ImageAttribute{}, []string{}},
		{"equal", []ImageAttribute{js("a", `{"N":"1"}`)}, []ImageAttribute{js("a", `{"N":"1"}`)}, []string{}},
		{"number by value", []ImageAttribute{js("a", `{"N":"1"}`)}, []ImageAttribute{js("a", `{"N":"1.0"}`)}, []string{}},
		{"set order", []ImageAttribute{js("s", `{"SS":["x","y"]}`)}, []ImageAttribute{js("s", `{"SS":["y","x"]}`)}, []string{}},
		{"whitespace", []ImageAttribute{js("a", `{"S":"x"}`)}, []ImageAttribute{js("a", `{ "S" : "x" }`)}, []string{}},
		{"changed, added, removed", []ImageAttribute{js("a", `{"N":"1"}`), js("gone", `{"S":"x"}`)}, []ImageAttribute{js("a", `{"N":"2"}`), js("new", `{"S":"x"}`)}, []string{"a", "gone", "new"}},
		{"type changed", []ImageAttribute{js("a", `{"N":"1"}`)}, []ImageAttribute{js("a", `{"S":"1"}`)}, []string{"a"}},
		{"value against JSON", []ImageAttribute{val("a", n("10"))}, []ImageAttribute{js("a", `{"N":"1E+1"}`)}, []string{}},
		{"values", []ImageAttribute{val("a", n("1")), val("b", n("2"))}, []ImageAttribute{val("a", n("1.00")), val("b", n("3"))}, []string{"b"}},
		{"unparsable differs", []ImageAttribute{js("a", `{"N":"x"}`)}, []ImageAttribute{js("a", `{"N": "x"}`)}, []string{"a"}},
	} {
		got := ChangedAttributes(tc.old, tc.new)
		if !slices.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
			t.Errorf("%s: ChangedAttributes = %#v, want %#v", tc.name, got, tc.want)
		}
	}
}

func TestItemAttributes(t *testing.T) {
	if ItemAttributes(nil) != nil {
		t.Error("ItemAttributes(nil) is not nil: an absent image would count as one with no attributes")
	}
	if a := ItemAttributes(Item{}); a == nil || len(a) != 0 {
		t.Errorf("ItemAttributes(empty) = %#v, want an empty list", a)
	}
	old := Item{"a": &types.AttributeValueMemberN{Value: "1"}, "b": &types.AttributeValueMemberS{Value: "x"}}
	nw := Item{"a": &types.AttributeValueMemberN{Value: "1.0"}, "c": &types.AttributeValueMemberS{Value: "x"}}
	if got := ChangedAttributes(ItemAttributes(old), ItemAttributes(nw)); !slices.Equal(got, []string{"b", "c"}) {
		t.Errorf("ChangedAttributes of items = %q, want [b c]", got)
	}
}
