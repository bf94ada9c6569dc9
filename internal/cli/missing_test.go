package cli

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ddbrewind/rewind/indexer/indextest"
)

// TestFiltersNamingWhatTheStoreLacks: query, stats and history with a
// table, tenant, window or item the store holds nothing of warn naming what
// it does hold, and exit 3 when the answer is empty because of it. Empty
// answers to filters that name only what the store holds still exit 0.
func TestFiltersNamingWhatTheStoreLacks(t *testing.T) {
	src := t.TempDir()
	evs := indextest.NewGen(41).Events(500)
	if err := indextest.WriteDir(src, indextest.Objects("capture", evs, 100)); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(t.TempDir(), "store")
	if code, _, errs := runIndexCLI(t, "index", "--source", src, "--store", store); code != exitOK {
		t.Fatalf("index: exit %d\n%s", code, errs)
	}
	var first, last time.Time
	for _, ev := range evs {
		if ev.DecodeError != "" {
			continue
		}
		if first.IsZero() {
			first = ev.Time
		}
		last = ev.Time
	}
	storeSpan := "which run from " + first.Format(time.RFC3339Nano) + " to " + last.Format(time.RFC3339Nano)
	// A key-set line of an item the store holds.
	_, keyset, _ := runIndexCLI(t, "query", "--store", store, "--tables", "orders")
	// One whose first change is not the store's first, so that a window
	// ending at it holds other events but none of the item's.
	var itemLine string
	var item struct {
		Table string          `json:"table"`
		Key   json.RawMessage `json:"key"`
		First time.Time       `json:"first"`
	}
	for _, line := range strings.Split(strings.TrimSpace(keyset), "\n") {
		if err := json.Unmarshal([]byte(line), &item); err != nil || item.Table != "orders" {
			t.Fatalf("key set line %q: %v", line, err)
		}
		if item.First.After(first) && strings.Contains(string(item.Key), `"S":`) {
			itemLine = line
			break
		}
	}
	if itemLine == "" {
		t.Fatal("no item to ask the history of")
	}
	// A held item's number key given as a string: another item, never seen.
	var wrongType string
	for _, line := range strings.Split(strings.TrimSpace(keyset), "\n") {
		var e struct {
			Key json.RawMessage `json:"key"`
		}
		json.Unmarshal([]byte(line), &e)
		if k := string(e.Key); strings.HasPrefix(k, `{"id":{"N":`) {
			wrongType = strings.Replace(k, `{"N":`, `{"S":`, 1)
			break
		}
	}
	if wrongType == "" {
		t.Fatal("no item with a number key")
	}
	before := first.Add(-48 * time.Hour).Format(time.RFC3339)
	beforeTo := first.Add(-24 * time.Hour).Format(time.RFC3339)
	after := last.Add(time.Minute).Format(time.RFC3339)

	for _, tc := range []struct {
		name  string
		args  []string
		code  int
		warns []string // on stderr; none when empty
		out   bool     // stdout has data
	}{
		{"table in the wrong case", []string{"query", "--tables", "Orders"}, exitPartial,
			[]string{`query: warning: the store holds no table "Orders"; the store holds tables: ledger, orders, users`}, false},
		{"table, json", []string{"query", "--tables", "Orders", "--format", "json"}, exitPartial,
			[]string{`the store holds no table "Orders"`}, false},
		{"two unknown tables", []string{"query", "--tables", "Orders,ordres"}, exitPartial,
			[]string{`the store holds no tables "Orders", "ordres"; the store holds tables: ledger, orders, users`}, false},
		{"one known table of two: an answer, a warning", []string{"query", "--tables", "orders,Orders"}, exitOK,
			[]string{`the store holds no table "Orders"`}, true},
		{"tenant never seen", []string{"query", "--tenants", "ACME"}, exitPartial,
			[]string{`query: warning: the store holds no events of tenant "ACME"; it holds 9 tenants, with close names "acme", "acme2"`}, false},
		{"tenant with no close name", []string{"query", "--tenants", "zzzzzzzz"}, exitPartial,
			[]string{`the store holds no events of tenant "zzzzzzzz"; it holds 9 tenants, none with a close name`}, false},
		{"window before the store", []string{"query", "--from", before, "--to", beforeTo}, exitPartial,
			[]string{"query: warning: the window [" + first.Add(-48*time.Hour).Format(time.RFC3339Nano) + ", " + first.Add(-24*time.Hour).Format(time.RFC3339Nano) + ") holds none of the store's events, " + storeSpan}, false},
		{"window after the store", []string{"query", "--from", after}, exitPartial,
			[]string{"holds none of the store's events, " + storeSpan}, false},
		{"held names, nothing matches: an answer", []string{"query", "--tables", "orders", "--tenants", "acme", "--match", "new.deployVersion=v99"}, exitOK, nil, false},
		{"held names, answer", []string{"query", "--tables", "orders", "--tenants", "acme"}, exitOK, nil, true},
		{"stats, unknown table", []string{"stats", "--tables", "Orders", "--format", "json"}, exitPartial,
			[]string{`stats: warning: the store holds no table "Orders"; the store holds tables: ledger, orders, users`}, true},
		{"stats, unknown tenant", []string{"stats", "--tenants", "globexx"}, exitPartial,
			[]string{`stats: warning: the store holds no events of tenant "globexx"; it holds 9 tenants, with close names "globex"`}, true},
		{"stats, window outside", []string{"stats", "--from", after, "--format", "json"}, exitPartial,
			[]string{"stats: warning: the window [", storeSpan}, true},
		{"stats, held names", []string{"stats", "--tenants", "acme"}, exitOK, nil, true},
		{"history, unknown table", []string{"history", "--table", "Orders", "--key", string(item.Key), "--format", "json"}, exitPartial,
			[]string{`history: warning: the store holds no table "Orders"; the store holds tables: ledger, orders, users`}, false},
		{"history, key of the wrong type", []string{"history", "--table", "orders", "--key", wrongType, "--format", "json"}, exitPartial,
			[]string{"history: warning: the store holds no change of this item in any window", "(S or N)"}, false},
		{"history, window outside", []string{"history", "--key", itemLine, "--from", after, "--format", "json"}, exitPartial,
			[]string{"history: warning: the window [", storeSpan}, false},
		{"history, held item and window, no change in it: an answer", []string{"history", "--key", itemLine, "--to", item.First.Format(time.RFC3339Nano), "--format", "json"}, exitOK, nil, false},
		{"history, held item", []string{"history", "--key", itemLine, "--format", "json"}, exitOK, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runIndexCLI(t, append(tc.args, "--store", store)...)
			if code != tc.code {
				t.Errorf("%v: exit %d, want %d\n%s", tc.args, code, tc.code, errs)
			}
			for _, w := range tc.warns {
				if !strings.Contains(errs, w) {
					t.Errorf("%v: stderr does not say %q:\n%s", tc.args, w, errs)
				}
			}
			if len(tc.warns) == 0 && strings.Contains(errs, "warning: the ") {
				t.Errorf("%v: unexpected warning:\n%s", tc.args, errs)
			}
			if (out != "") != tc.out {
				t.Errorf("%v: stdout %q, want data: %v", tc.args, out, tc.out)
			}
		})
	}

	// A store with no events: every query says so.
	empty := filepath.Join(t.TempDir(), "store")
	runIndexCLI(t, "index", "--source", t.TempDir(), "--store", empty)
	code, _, errs := runIndexCLI(t, "query", "--store", empty)
	if code != exitPartial || !strings.Contains(errs, "query: warning: the store holds no events (rewind index adds captured changes to it)") || !strings.Contains(errs, "rewind query: the answer is empty: the store holds no events") {
		t.Errorf("query of an empty store: exit %d\n%s", code, errs)
	}
}
