package query

import (
	"strings"
	"testing"
	"time"

	"github.com/ddbrewind/rewind"
)

// TestAthenaStatsHistoryStatements: the stats and history SQL take every
// user value as an execution parameter, in the order of the placeholders,
// and the stats bucket must be whole milliseconds.
func TestAthenaStatsHistoryStatements(t *testing.T) {
	o := AthenaOptions{Location: "s3://b/capture", Tables: []string{"orders"}}
	from := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	m, _ := ParseMatch("new.deployVersion=v'42")
	q := Query{From: from, To: from.Add(2 * time.Hour), Tenants: []string{"ac'me"}, Matches: []Match{m}}
	st, err := AthenaStatsStatement(q, o, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(st.SQL, "?"); n != len(st.Params) {
		t.Fatalf("%d placeholders, %d parameters\n%s", n, len(st.Params), st.SQL)
	}
	if strings.Contains(st.SQL, "ac'me") || strings.Contains(st.SQL, "v'42") || strings.Contains(st.SQL, "deployVersion") {
		t.Fatalf("user input in the SQL:\n%s", st.SQL)
	}
	// The undecodable count reads the tenant too; the bucket's width is
	// the last parameter.
	if strings.Count(strings.Join(st.Params, " "), "'ac''me'") != 2 || st.Params[len(st.Params)-1] != "'60000'" {
		t.Fatalf("parameters %q", st.Params)
	}
	for _, bad := range []time.Duration{0, time.Microsecond, 1500 * time.Microsecond} {
		if _, err := AthenaStatsStatement(q, o, bad); err == nil || !strings.Contains(err.Error(), "milliseconds") {
			t.Errorf("bucket %s: %v, want an error naming milliseconds", bad, err)
		}
	}

	key, err := rewind.ParseKey([]byte(`{"sk":{"N":"1.50"},"pk":{"S":"t'1"}}`))
	if err != nil {
		t.Fatal(err)
	}
	hs, err := AthenaHistoryStatement("orders", key, from, time.Time{}, o)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(hs.SQL, "?"); n != len(hs.Params) || strings.Contains(hs.SQL, "t'1") {
		t.Fatalf("%d placeholders, %d parameters %q\n%s", n, len(hs.Params), hs.Params, hs.SQL)
	}
	// The key as the capture's keys column holds it: canonical JSON.
	if want := sqlString(key.String()); hs.Params[len(hs.Params)-1] != want || !strings.Contains(want, `"N":"1.5"`) {
		t.Fatalf("key parameter %q, want %q", hs.Params[len(hs.Params)-1], want)
	}
	if _, err := AthenaHistoryStatement("", key, from, time.Time{}, o); err == nil {
		t.Error("history without a table: no error")
	}
}
