package rewind

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// DynamoDB's rules for the values of primary key attributes, from the
// DynamoDB Developer Guide ("Constraints in Amazon DynamoDB": partition keys
// and sort keys, data types; "Supported data types and naming rules";
// "DynamoDB item sizes and formats"):
//
//   - a partition key value is 1 to 2048 bytes, a sort key value 1 to 1024
//     bytes: UTF-8 bytes for a string, raw (decoded, not base64) bytes for a
//     binary, so neither may be empty;
//   - a number has at most 38 significant digits (leading and trailing zeros
//     do not count) and is zero or of magnitude 1E-130 to
//     9.9999999999999999999999999999999999999E+125. A number's stored size
//     is about one byte per two significant digits plus one, at most 21
//     bytes, so the byte limits never bind for numbers.
//
// The number rule is CheckNumber, the one number check of the module:
// NormalizeNumber, ParseItem and ParseKey call it, so a number DynamoDB
// cannot store never parses.
const (
	// MaxPartitionKeyBytes is the largest partition key value DynamoDB takes.
	MaxPartitionKeyBytes = 2048
	// MaxSortKeyBytes is the largest sort key value DynamoDB takes.
	MaxSortKeyBytes = 1024
	// MaxNumberDigits is the most significant digits a DynamoDB number has.
	MaxNumberDigits = 38
	// MinNumberExponent is the power of ten of the smallest nonzero
	// magnitude, 1E-130.
	MinNumberExponent = -130
	// MaxNumberExponent is the power of ten of the leading digit of the
	// largest magnitude, 9.9999999999999999999999999999999999999E+125.
	MaxNumberExponent = 125
)

// CheckDynamoDB reports the first way k breaks DynamoDB's rules for a
// primary key of a table whose key attributes are schema, in key-schema
// order: the partition (HASH) key first, then the sort (RANGE) key if the
// table has one. It checks that k has exactly those attributes, each an S,
// N or B within DynamoDB's limits (see MaxPartitionKeyBytes and the rules
// above), and returns nil when DynamoDB would take k as the key of an item.
//
// Errors name the attribute and the rule:
//
//	attribute "pk": partition key value is 2049 bytes, more than DynamoDB's 2048
//
// Callers add where the key came from (file, line).
func (k Key) CheckDynamoDB(schema ...string) error {
	if len(schema) == 0 || len(schema) > 2 {
		return fmt.Errorf("check key %s: a key schema has one or two attribute names, got %d", k, len(schema))
	}
	if len(schema) == 2 && schema[0] == schema[1] {
		return fmt.Errorf("check key %s: key schema names %q twice", k, schema[0])
	}
	if len(k) != len(schema) {
		return fmt.Errorf("key has %d %s (%s); the table's key is %s", len(k), pluralWord(len(k), "attribute", "attributes"), strings.Join(quoteAll(k.Names()), ", "), describeSchema(schema))
	}
	for i, name := range schema {
		a, ok := k.Get(name)
		if !ok {
			return fmt.Errorf("key has no attribute %q (the table's %s); the table's key is %s", name, keyRole(i), describeSchema(schema))
		}
		if err := a.checkDynamoDB(i); err != nil {
			return fmt.Errorf("attribute %q: %w", name, err)
		}
	}
	return nil
}

// checkDynamoDB checks one key attribute; role is 0 for the partition key,
// 1 for the sort key.
func (a KeyAttr) checkDynamoDB(role int) error {
	limit := MaxPartitionKeyBytes
	if role == 1 {
		limit = MaxSortKeyBytes
	}
	switch a.Type {
	case 'S':
		if a.Value == "" {
			return fmt.Errorf("empty string: a %s value is at least 1 byte", keyRole(role))
		}
		if !utf8.ValidString(a.Value) {
			return fmt.Errorf("string is not valid UTF-8")
		}
		if len(a.Value) > limit {
			return fmt.Errorf("%s value is %d bytes (UTF-8), more than DynamoDB's %d", keyRole(role), len(a.Value), limit)
		}
	case 'B':
		if a.Value == "" {
			return fmt.Errorf("empty binary value: a %s value is at least 1 byte", keyRole(role))
		}
		if len(a.Value) > limit {
			return fmt.Errorf("%s value is %d bytes (binary, decoded), more than DynamoDB's %d", keyRole(role), len(a.Value), limit)
		}
	case 'N':
		if err := CheckNumber(a.Value); err != nil {
			return err
		}
	default:
		return fmt.Errorf("type %q: key attributes are S, N or B", a.Type)
	}
	return nil
}

func keyRole(i int) string {
	if i == 0 {
		return "partition key"
	}
	return "sort key"
}

func describeSchema(schema []string) string {
	parts := make([]string, len(schema))
	for i, n := range schema {
		parts[i] = fmt.Sprintf("%q (%s)", n, keyRole(i))
	}
	return strings.Join(parts, ", ")
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

func pluralWord(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
