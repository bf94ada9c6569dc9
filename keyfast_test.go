package rewind

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// parseKeyGeneral is ParseKey without its fast path.
func parseKeyGeneral(data []byte) (Key, error) {
	item, err := ParseItem(data)
	if err != nil {
		return nil, err
	}
	return KeyFromItem(item)
}

// checkFastPath fails t if parseKeyFast accepts data as anything but what
// the general decoder makes of it.
func checkFastPath(t testing.TB, data []byte) (fast bool) {
	t.Helper()
	k, ok := parseKeyFast(data)
	if !ok {
		return false
	}
	want, err := parseKeyGeneral(data)
	if err != nil {
		t.Fatalf("fast path accepted %q as %v; the general decoder refuses it: %v", data, k, err)
	}
	if !k.Equal(want) {
		t.Fatalf("fast path read %q as %v; the general decoder as %v", data, k, want)
	}
	return true
}

// randomKeyJSON returns a random key written as DynamoDB JSON in the ways a
// writer might: names in either order, white space, escapes, numbers in
// any form, now and then other types or bytes the fast path leaves alone.
func randomKeyJSON(r *rand.Rand) string {
	pieces := []string{"a", "pk", "sk", "TENANT#t0001", "ITEM#0000042", "x y", "é", `\"`, `\\`, `\u0041`, " ", "\t", "\x7f", "日本"}
	plain := 6 // pieces[:plain] are what the fast path takes
	str := func() string {
		var b strings.Builder
		from := plain
		if r.IntN(5) == 0 {
			from = len(pieces)
		}
		for range r.IntN(4) {
			b.WriteString(pieces[r.IntN(from)])
		}
		return b.String()
	}
	nums := []string{"0", "-0", "42", "007", "1.50", "1e3", "-2.5E-3", "1e999", "abc", "", "1.2.3", "+7"}
	ws := func() string { return []string{"", "", "", " ", "\n\t", "\r "}[r.IntN(6)] }
	attr := func() string {
		name := str()
		var v string
		switch r.IntN(8) {
		case 0:
			v = fmt.Sprintf(`{%s"N"%s:%s"%s"%s}`, ws(), ws(), ws(), nums[r.IntN(len(nums))], ws())
		case 1:
			v = `{"B":"AAEC"}`
		case 2:
			v = `{"BOOL":true}`
		case 3:
			v = `{"S":"x","N":"1"}`
		default:
			v = fmt.Sprintf(`{%s"S"%s:%s"%s"%s}`, ws(), ws(), ws(), str(), ws())
		}
		return fmt.Sprintf(`%s"%s"%s:%s%s`, ws(), name, ws(), ws(), v)
	}
	n := 1 + r.IntN(2)
	if r.IntN(20) == 0 {
		n = 3
	}
	var attrs []string
	for range n {
		attrs = append(attrs, attr())
	}
	if n == 2 && r.IntN(10) == 0 {
		attrs[1] = attrs[0] // a duplicate name
	}
	return "{" + strings.Join(attrs, ",") + ws() + "}" + ws()
}

// TestParseKeyFastAgreesWithTheGeneralDecoder: on random keys, and on
// each with a byte cut, doubled or changed, whatever the fast path accepts
// the general decoder reads as the same key; and it takes the stream
// records' usual keys.
func TestParseKeyFastAgreesWithTheGeneralDecoder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	fast, general := 0, 0
	for range 20000 {
		s := []byte(randomKeyJSON(r))
		if checkFastPath(t, s) {
			fast++
		} else {
			general++
		}
		if len(s) == 0 {
			continue
		}
		i := r.IntN(len(s))
		for _, m := range [][]byte{
			append(append([]byte{}, s[:i]...), s[i+1:]...),
			append(append([]byte{}, s[:i+1]...), s[i:]...),
			append(append(append([]byte{}, s[:i]...), byte(r.IntN(128))), s[i+1:]...),
			s[:i],
		} {
			checkFastPath(t, m)
		}
	}
	if fast < 3000 || general < 3000 {
		t.Fatalf("fast path took %d random keys and left %d: the test no longer covers both", fast, general)
	}
	for _, s := range []string{
		`{"pk":{"S":"TENANT#t0000"},"sk":{"S":"ITEM#0000005"}}`,
		`{"sk":{"N":"0042"},"pk":{"S":"t1"}}`,
		` { "id" : { "N" : "1.50" } } `,
	} {
		if !checkFastPath(t, []byte(s)) {
			t.Errorf("fast path left %s to the general decoder", s)
		}
	}
	k, err := ParseKey([]byte(`{"sk":{"N":"0042"},"pk":{"S":"t1"}}`))
	if err != nil || k.String() != `{"pk":{"S":"t1"},"sk":{"N":"42"}}` {
		t.Fatalf("ParseKey = %v, %v", k, err)
	}
}

func FuzzParseKeyFast(f *testing.F) {
	for _, s := range []string{`{"pk":{"S":"t"}}`, `{"a":{"N":"1"},"b":{"S":""}}`, `{"a":{"S":"x"},"a":{"S":"y"}}`, `{"a":{"N":"1e999"}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkFastPath(t, data) })
}

// BenchmarkParseKey: a stream record's key, by ParseKey (the fast path)
// and by the general decoder.
func BenchmarkParseKey(b *testing.B) {
	d := []byte(`{"pk":{"S":"TENANT#t0000"},"sk":{"S":"ITEM#0000005"}}`)
	b.Run("fast", func(b *testing.B) {
		for range b.N {
			if _, err := ParseKey(d); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("general", func(b *testing.B) {
		for range b.N {
			if _, err := parseKeyGeneral(d); err != nil {
				b.Fatal(err)
			}
		}
	})
}
