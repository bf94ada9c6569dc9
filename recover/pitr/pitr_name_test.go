package pitr

import (
	"strings"
	"testing"
)

func TestValidTableName(t *testing.T) {
	for name, want := range map[string]bool{
		"abc": true, "ab": false, "orders-rewind-20250101T120000": true, "a.b_c-D9": true,
		strings.Repeat("x", 255): true, strings.Repeat("x", 256): false,
		"orders restored": false, "arn:aws:dynamodb:eu-west-1:1:table/orders": false, "tablé": false, "": false,
	} {
		if got := validTableName(name); got != want {
			t.Errorf("validTableName(%q) = %v, want %v", name, got, want)
		}
	}
}
