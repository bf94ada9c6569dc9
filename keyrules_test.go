package rewind

import (
	"encoding/base64"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"unicode/utf8"
)

// keyRuleCase is one value for one key attribute: role 0 is the partition
// key, 1 the sort key. wantErr is a fragment of CheckDynamoDB's error, or
// "" when DynamoDB takes the value. The integration test in
// keyrules_local_test.go puts every case to DynamoDB Local.
type keyRuleCase struct {
	name    string
	typ     byte
	role    int
	value   string
	wantErr string
}

const (
	max38  = "99999999999999999999999999999999999999"  // 38 nines
	max39  = "999999999999999999999999999999999999999" // 39 nines
	digits = "12345678901234567890123456789012345678"  // 38 digits
)

func keyRuleCases() []keyRuleCase {
	euro := "€" // 3 bytes of UTF-8
	var cs []keyRuleCase
	add := func(name string, typ byte, role int, value, wantErr string) {
		cs = append(cs, keyRuleCase{name, typ, role, value, wantErr})
	}
	for role, limit := range []int{MaxPartitionKeyBytes, MaxSortKeyBytes} {
		r := keyRole(role)
		over := fmt.Sprintf("%s value is %d bytes (UTF-8), more than DynamoDB's %d", r, limit+1, limit)
		add(r+"/S/empty", 'S', role, "", "empty string")
		add(r+"/S/1 byte", 'S', role, "a", "")
		add(r+"/S/limit", 'S', role, strings.Repeat("a", limit), "")
		add(r+"/S/limit+1", 'S', role, strings.Repeat("a", limit+1), over)
		// Multi-byte UTF-8: the limit is in bytes, not characters.
		add(r+"/S/limit in euros and ascii", 'S', role, strings.Repeat(euro, limit/3)+strings.Repeat("a", limit%3), "")
		add(r+"/S/limit+1 in euros", 'S', role, strings.Repeat(euro, limit/3)+strings.Repeat("a", limit%3+1), over)
		add(r+"/S/limit/3+1 euros is over", 'S', role, strings.Repeat(euro, limit/3+1), fmt.Sprintf("%s value is %d bytes", r, (limit/3+1)*3))
		add(r+"/S/4-byte runes at limit", 'S', role, strings.Repeat("😀", limit/4), "")
		add(r+"/S/4-byte runes over", 'S', role, strings.Repeat("😀", limit/4)+"a", fmt.Sprintf("%s value is %d bytes", r, limit+1))
		add(r+"/S/invalid UTF-8", 'S', role, "a\xffb", "not valid UTF-8")
		add(r+"/B/empty", 'B', role, "", "empty binary value")
		add(r+"/B/1 byte", 'B', role, "\x00", "")
		add(r+"/B/limit", 'B', role, strings.Repeat("\xff", limit), "")
		add(r+"/B/limit+1", 'B', role, strings.Repeat("\xff", limit+1), fmt.Sprintf("%s value is %d bytes (binary, decoded), more than DynamoDB's %d", r, limit+1, limit))
	}
	for _, role := range []int{0, 1} {
		r := keyRole(role) + "/N/"
		tooMany := "significant digits, more than DynamoDB's 38"
		tooLarge := "is too large: DynamoDB's largest magnitude is 9.9999999999999999999999999999999999999E+125"
		tooSmall := "is too small: DynamoDB's smallest nonzero magnitude is 1E-130"
		for _, c := range []struct{ name, v, wantErr string }{
			{"zero", "0", ""},
			{"negative zero", "-0", ""},
			{"zero with exponent", "0E+200", ""},
			{"zero with a huge exponent", "0e10000000000000000000", "has an exponent out of DynamoDB's range"},
			{"zero with a huge negative exponent", "0e-10000000000000000000", "has an exponent out of DynamoDB's range"},
			{"38 digits", digits, ""},
			{"38 nines negative", "-" + max38, ""},
			{"39 digits", digits + "9", "has 39 " + tooMany},
			{"39 nines", max39, "has 39 " + tooMany},
			{"38 digits with leading zeros", "000" + digits, ""},
			{"38 digits with trailing zeros", digits + "000", ""},
			{"38 digits with trailing fraction zeros", digits + ".000", ""},
			{"38 digits around the point", digits[:20] + "." + digits[20:], ""},
			{"39 digits around the point", digits[:20] + "." + digits[20:] + "1", "has 39 " + tooMany},
			{"38 digits behind leading fraction zeros", "0.000" + digits, ""},
			{"1 digit, 50 trailing zeros", "1" + strings.Repeat("0", 50), ""},
			{"smallest", "1E-130", ""},
			{"smallest, plain", "0." + strings.Repeat("0", 129) + "1", ""},
			{"below smallest", "1E-131", "number \"1E-131\" " + tooSmall},
			{"below smallest, 38 digits", "9.9999999999999999999999999999999999999E-131", tooSmall},
			{"below smallest, written 0.1E-130", "0.1E-130", tooSmall},
			{"negative smallest", "-1E-130", ""},
			{"negative below smallest", "-1E-131", tooSmall},
			{"largest", "9.9999999999999999999999999999999999999E+125", ""},
			{"largest, plain", max38 + strings.Repeat("0", 88), ""},
			{"largest negative", "-9.9999999999999999999999999999999999999E+125", ""},
			{"1E+125", "1E+125", ""},
			{"1E+126", "1E+126", "number \"1E+126\" " + tooLarge},
			{"-1E+126", "-1E+126", tooLarge},
			{"10E+125", "10E+125", tooLarge},
			{"1e200", "1e200", tooLarge},
			{"1e999999", "1e999999", tooLarge},
			{"huge exponent", "1e99999999999999999999", tooLarge},
			{"tiny exponent", "1e-99999999999999999999", tooSmall},
			{"plus sign", "+5", ""},
			{"point first", ".5", ""},
			{"point last", "5.", ""},
			{"exponent plus", "1.5e+3", ""},
			{"exponent leading zeros", "1e0003", ""},
			{"empty", "", "is not a number"},
			{"point only", ".", "is not a number"},
			{"two points", "1.2.3", "is not a number"},
			{"no exponent digits", "1e", "is not a number"},
			{"hex", "0x10", "is not a number"},
			{"NaN", "NaN", "is not a number"},
			{"Infinity", "Infinity", "is not a number"},
			{"space", " 1", "is not a number"},
		} {
			add(r+c.name, 'N', role, c.v, c.wantErr)
		}
	}
	return cs
}

// keyForCase is a key with the case's value in its attribute and a valid
// value of the same type in the other.
func keyForCase(c keyRuleCase) (Key, []string) {
	other := map[byte]string{'S': "x", 'N': "1", 'B': "\x01"}[c.typ]
	pk := KeyAttr{Name: "pk", Type: c.typ, Value: c.value}
	sk := KeyAttr{Name: "sk", Type: c.typ, Value: other}
	if c.role == 1 {
		pk.Value, sk.Value = other, c.value
	}
	return Key{pk, sk}, []string{"pk", "sk"}
}

func TestCheckDynamoDBRules(t *testing.T) {
	for _, c := range keyRuleCases() {
		t.Run(c.name, func(t *testing.T) {
			k, schema := keyForCase(c)
			err := k.CheckDynamoDB(schema...)
			attr := schema[c.role]
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("CheckDynamoDB = %v, want nil", err)
			case c.wantErr != "" && err == nil:
				t.Fatalf("CheckDynamoDB = nil, want an error with %q", c.wantErr)
			case c.wantErr != "" && !strings.Contains(err.Error(), c.wantErr):
				t.Fatalf("CheckDynamoDB = %v, want an error with %q", err, c.wantErr)
			case c.wantErr != "" && !strings.HasPrefix(err.Error(), fmt.Sprintf("attribute %q: ", attr)):
				t.Fatalf("CheckDynamoDB = %v, want it to name attribute %q first", err, attr)
			}
			if c.typ == 'N' {
				// One rule: CheckNumber, NormalizeNumber and ParseKey agree.
				_, nerr := NormalizeNumber(c.value)
				if (nerr == nil) != (c.wantErr == "") {
					t.Fatalf("NormalizeNumber(%q) error %v, but CheckDynamoDB says %v", c.value, nerr, err)
				}
				if (CheckNumber([]byte(c.value)) == nil) != (c.wantErr == "") {
					t.Fatalf("CheckNumber([]byte) disagrees with CheckDynamoDB on %q", c.value)
				}
				_, perr := ParseKey([]byte(fmt.Sprintf(`{"pk":{"N":%q}}`, c.value)))
				if (perr == nil) != (c.wantErr == "") {
					t.Fatalf("ParseKey error %v, but CheckDynamoDB says %v", perr, err)
				}
			}
		})
	}
}

func TestCheckDynamoDBMessages(t *testing.T) {
	for _, tc := range []struct {
		key    Key
		schema []string
		want   string
	}{
		{Key{{"pk", 'S', "x"}, {"sk", 'N', digits + "9"}}, []string{"pk", "sk"},
			`attribute "sk": number "123456789012345678901234567890123456789" has 39 significant digits, more than DynamoDB's 38`},
		{Key{{"pk", 'S', strings.Repeat("a", 2049)}}, []string{"pk"},
			`attribute "pk": partition key value is 2049 bytes (UTF-8), more than DynamoDB's 2048`},
		{Key{{"pk", 'S', "x"}, {"sk", 'S', ""}}, []string{"pk", "sk"},
			`attribute "sk": empty string: a sort key value is at least 1 byte`},
		{Key{{"pk", 'N', "1e200"}}, []string{"pk"},
			`attribute "pk": number "1e200" is too large: DynamoDB's largest magnitude is 9.9999999999999999999999999999999999999E+125`},
		{Key{{"pk", 'N', "1" + strings.Repeat("0", 60) + "1"}}, []string{"pk"},
			`attribute "pk": number "10000000000000000000"...(62 characters) has 62 significant digits, more than DynamoDB's 38`},
		// The schema decides which attribute is the partition key, not
		// the key's (sorted) order.
		{Key{{"a", 'S', "x"}, {"b", 'S', strings.Repeat("b", 1025)}}, []string{"b", "a"}, ""},
		{Key{{"a", 'S', strings.Repeat("a", 1025)}, {"b", 'S', "x"}}, []string{"b", "a"},
			`attribute "a": sort key value is 1025 bytes (UTF-8), more than DynamoDB's 1024`},
		{Key{{"pk", 'S', "x"}}, []string{"pk", "sk"},
			`key has 1 attribute ("pk"); the table's key is "pk" (partition key), "sk" (sort key)`},
		{Key{{"id", 'S', "x"}}, []string{"pk"},
			`key has no attribute "pk" (the table's partition key); the table's key is "pk" (partition key)`},
		{Key{{"pk", 'S', "x"}, {"sk", 'S', "y"}}, []string{"pk"},
			`key has 2 attributes ("pk", "sk"); the table's key is "pk" (partition key)`},
		{Key{{"pk", 'X', "x"}}, []string{"pk"}, `attribute "pk": type 'X': key attributes are S, N or B`},
		{Key{{"pk", 'S', "x"}}, nil, "a key schema has one or two attribute names, got 0"},
		{Key{{"pk", 'S', "x"}}, []string{"pk", "pk"}, `key schema names "pk" twice`},
	} {
		err := tc.key.CheckDynamoDB(tc.schema...)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if tc.want == "" && err != nil || tc.want != "" && !strings.HasSuffix(got, tc.want) {
			t.Errorf("%v.CheckDynamoDB(%q) = %q, want %q", tc.key, tc.schema, got, tc.want)
		}
	}
}

// ratBounds are DynamoDB's magnitudes as exact rationals, the oracle the
// fuzz target checks CheckNumber against.
var ratMin, ratMax = func() (*big.Rat, *big.Rat) {
	lo, _ := new(big.Rat).SetString("1e-130")
	hi, _ := new(big.Rat).SetString("9.9999999999999999999999999999999999999e125")
	return lo, hi
}()

func FuzzCheckDynamoDB(f *testing.F) {
	for _, c := range keyRuleCases() {
		if len(c.value) < 200 {
			f.Add(string(c.typ), c.value, c.role == 1)
		}
	}
	f.Add("N", "0.00012300", false)
	f.Add("S", `{"pk":{"N":"1e5"}}`, false)
	f.Fuzz(func(t *testing.T, typ, value string, sortKey bool) {
		// The number rule, against exact arithmetic.
		nerr := CheckNumber(value)
		norm, normErr := NormalizeNumber(value)
		if (nerr == nil) != (normErr == nil) {
			t.Fatalf("CheckNumber(%q) = %v but NormalizeNumber error %v", value, nerr, normErr)
		}
		if nerr == nil {
			if again, err := NormalizeNumber(norm); err != nil || again != norm {
				t.Fatalf("NormalizeNumber(%q) = %q, which normalises to %q, %v", value, norm, again, err)
			}
			x, ok := new(big.Rat).SetString(value)
			y, ok2 := new(big.Rat).SetString(norm)
			if !ok || !ok2 || x.Cmp(y) != 0 {
				t.Fatalf("NormalizeNumber(%q) = %q, a different value (%v %v)", value, norm, ok, ok2)
			}
			if abs := new(big.Rat).Abs(x); abs.Sign() != 0 && (abs.Cmp(ratMin) < 0 || abs.Cmp(ratMax) > 0) {
				t.Fatalf("CheckNumber(%q) = nil, but it is out of DynamoDB's range", value)
			}
		}
		// The key rules, through ParseKey as a key set line gives them.
		if typ != "S" && typ != "N" && typ != "B" {
			return
		}
		av := `{"` + typ + `":` + string(appendJSONString(nil, value)) + `}`
		if typ == "B" {
			av = `{"B":"` + base64.StdEncoding.EncodeToString([]byte(value)) + `"}`
		}
		line := `{"pk":{"S":"p"},"sk":` + av + `}`
		schema := []string{"pk", "sk"}
		if !sortKey {
			line = `{"pk":` + av + `}`
			schema = schema[:1]
		}
		k, err := ParseKey([]byte(line))
		if err != nil {
			if typ == "N" && nerr == nil {
				t.Fatalf("ParseKey(%s) = %v, but CheckNumber takes the number", line, err)
			}
			return
		}
		err = k.CheckDynamoDB(schema...)
		a, _ := k.Get(schema[len(schema)-1])
		limit := MaxPartitionKeyBytes
		if sortKey {
			limit = MaxSortKeyBytes
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), fmt.Sprintf("attribute %q: ", a.Name)) {
				t.Fatalf("error does not name the attribute: %v", err)
			}
			if a.Type == 'N' {
				t.Fatalf("a parsed number key is refused: %v", err)
			}
			if a.Value != "" && len(a.Value) <= limit && (a.Type == 'B' || a.Type == 'S' && utf8.ValidString(a.Value)) {
				t.Fatalf("CheckDynamoDB(%s) = %v for a value of %d bytes", k, err, len(a.Value))
			}
			return
		}
		if a.Value == "" || len(a.Value) > limit {
			t.Fatalf("CheckDynamoDB(%s) = nil for a value of %d bytes", k, len(a.Value))
		}
		if a.Type == 'N' {
			if n, err := NormalizeNumber(a.Value); err != nil || n != a.Value {
				t.Fatalf("key number %q passes but normalises to %q, %v", a.Value, n, err)
			}
		}
	})
}

// TestCheckNumberDoesNotAllocate: stream decoders may call CheckNumber on
// every number of every record.
func TestCheckNumberDoesNotAllocate(t *testing.T) {
	for _, s := range []string{"0", "-12.5e3", digits, "9.9999999999999999999999999999999999999E+125"} {
		b := []byte(s)
		if n := testing.AllocsPerRun(100, func() {
			if CheckNumber(b) != nil || CheckNumber(s) != nil {
				t.Fatalf("CheckNumber(%q) failed", s)
			}
		}); n != 0 {
			t.Errorf("CheckNumber(%q) allocates %v times", s, n)
		}
	}
}
