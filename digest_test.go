package rewind_test

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/recover/patch/patchtest"
)

// TestItemDigestAgreesWithEqualItems checks, on random items of every type,
// that the digest is equal exactly when EqualItems says so: for an item
// rewritten in another but equal form (sets reordered, numbers respelled),
// and for an item with one attribute changed.
func TestItemDigestAgreesWithEqualItems(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range 500 {
		a := patchtest.RandomItem(rnd, patchtest.Key("t1", i), 0)
		b := respell(a)
		if !rewind.EqualItems(a, b) {
			t.Fatalf("respelled item not equal: %s vs %s", rewind.ItemJSON(a), rewind.ItemJSON(b))
		}
		if da, db := rewind.ItemDigest(a), rewind.ItemDigest(b); da != db {
			t.Fatalf("equal items, digests differ: %s vs %s\n%s\n%s", da, db, rewind.ItemJSON(a), rewind.ItemJSON(b))
		}
		c := respell(a)
		c["n38"] = &types.AttributeValueMemberN{Value: patchtest.RandomNumber(rnd)}
		if eq := rewind.EqualItems(a, c); eq != (rewind.ItemDigest(a) == rewind.ItemDigest(c)) {
			t.Fatalf("EqualItems %v but digests equal %v: %s vs %s", eq, !eq, rewind.ItemJSON(a), rewind.ItemJSON(c))
		}
	}
}

func TestItemDigestDistinguishes(t *testing.T) {
	s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	n := func(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }
	items := []rewind.Item{
		{},
		{"a": s("")},
		{"a": s("1")},
		{"a": n("1")},
		{"a": &types.AttributeValueMemberB{Value: []byte("1")}},
		{"a": &types.AttributeValueMemberSS{Value: []string{"1"}}},
		{"a": &types.AttributeValueMemberL{Value: []types.AttributeValue{s("1")}}},
		{"a": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"1": s("")}}},
		{"a": s("1"), "b": s("")},
		{"a1": s("")},
		{"a": &types.AttributeValueMemberNULL{Value: true}},
		{"a": &types.AttributeValueMemberBOOL{Value: false}},
		{"a": &types.AttributeValueMemberBOOL{Value: true}},
		{"a": &types.AttributeValueMemberSS{Value: []string{"1", "2"}}},
		{"a": &types.AttributeValueMemberSS{Value: []string{"12"}}},
	}
	seen := map[string]int{rewind.AbsentDigest: -1}
	if d := rewind.ItemDigest(nil); d != rewind.AbsentDigest {
		t.Fatalf("digest of an absent item = %q", d)
	}
	for i, it := range items {
		d := rewind.ItemDigest(it)
		if j, ok := seen[d]; ok {
			t.Fatalf("items %d and %d share digest %s", i, j, d)
		}
		seen[d] = i
	}
	if rewind.ItemDigest(rewind.Item{"a": n("1.50")}) != rewind.ItemDigest(rewind.Item{"a": n("15e-1")}) {
		t.Fatal("equal numbers in other spellings have different digests")
	}
}

// respell returns an equal item in another form: sets reversed, numbers
// with a trailing ".0" or an exponent, recursively.
func respell(item rewind.Item) rewind.Item {
	out := rewind.Item{}
	for k, v := range item {
		out[k] = respellValue(v)
	}
	return out
}

func respellValue(av types.AttributeValue) types.AttributeValue {
	switch v := av.(type) {
	case *types.AttributeValueMemberN:
		return &types.AttributeValueMemberN{Value: respellNumber(v.Value)}
	case *types.AttributeValueMemberSS:
		s := slices.Clone(v.Value)
		slices.Reverse(s)
		return &types.AttributeValueMemberSS{Value: s}
	case *types.AttributeValueMemberNS:
		s := make([]string, len(v.Value))
		for i, x := range v.Value {
			s[len(s)-1-i] = respellNumber(x)
		}
		return &types.AttributeValueMemberNS{Value: s}
	case *types.AttributeValueMemberBS:
		s := slices.Clone(v.Value)
		slices.Reverse(s)
		return &types.AttributeValueMemberBS{Value: s}
	case *types.AttributeValueMemberL:
		l := make([]types.AttributeValue, len(v.Value))
		for i, x := range v.Value {
			l[i] = respellValue(x)
		}
		return &types.AttributeValueMemberL{Value: l}
	case *types.AttributeValueMemberM:
		return &types.AttributeValueMemberM{Value: respell(v.Value)}
	}
	return av
}

func respellNumber(s string) string {
	if slices.Contains([]byte(s), 'e') || slices.Contains([]byte(s), 'E') {
		return s
	}
	return s + "e0"
}
