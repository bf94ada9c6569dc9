package readonly_test

import (
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/ddbrewind/rewind/internal/fakessm"
	"github.com/ddbrewind/rewind/internal/localaws"
	"github.com/ddbrewind/rewind/recover/readonly"
)

func startSSM(t *testing.T) (*fakessm.Server, *ssm.Client) {
	t.Helper()
	srv, err := fakessm.Start(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	cfg, err := localaws.Config(t.Context(), srv.Endpoint, "AKIDTEST")
	if err != nil {
		t.Fatal(err)
	}
	return srv, ssm.NewFromConfig(cfg)
}

func TestParseFormatValue(t *testing.T) {
	for _, tc := range []struct {
		value string
		ids   []string
		back  string
	}{
		{"none", nil, "none"},
		{"t2,t1", []string{"t1", "t2"}, "t1,t2"},
		{" t1 , none,t1,,", []string{"t1"}, "t1"},
		{"all", []string{"all"}, "all"},
	} {
		ids := readonly.ParseValue(tc.value)
		if !slices.Equal(ids, tc.ids) {
			t.Errorf("ParseValue(%q) = %q, want %q", tc.value, ids, tc.ids)
		}
		if got := readonly.FormatValue(ids); got != tc.back {
			t.Errorf("FormatValue(%q) = %q, want %q", ids, got, tc.back)
		}
	}
}

func TestTenantsReadOnly(t *testing.T) {
	some := readonly.Tenants{IDs: []string{"t1"}}
	if !some.ReadOnly("t1") || some.ReadOnly("t2") || some.ReadOnly("") {
		t.Error("list [t1]: want only t1 read-only")
	}
	all := readonly.Tenants{IDs: []string{"all"}}
	if !all.ReadOnly("t2") || !all.ReadOnly("") {
		t.Error("list [all]: want every tenant read-only")
	}
}

func TestOnOff(t *testing.T) {
	srv, c := startSSM(t)
	ctx := t.Context()
	l := readonly.NewTenantList(c, "")
	if l.Name() != readonly.DefaultParameter {
		t.Fatalf("default name = %q", l.Name())
	}

	// Clearing a list that was never written writes nothing.
	ch, err := l.Off(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Changed || srv.Count("PutParameter") != 0 {
		t.Fatalf("off on missing parameter: changed=%v, puts=%d", ch.Changed, srv.Count("PutParameter"))
	}

	ch, err = l.On(ctx, []string{"t2", "t1"})
	if err != nil {
		t.Fatal(err)
	}
	if !ch.Changed || !slices.Equal(ch.Added, []string{"t1", "t2"}) || len(ch.Before) != 0 || ch.Version != 1 {
		t.Fatalf("on t1,t2: %+v", ch)
	}
	p, _ := srv.Get(readonly.DefaultParameter)
	if p.Value != "t1,t2" || p.Type != "StringList" {
		t.Fatalf("stored %s %q, want StringList \"t1,t2\"", p.Type, p.Value)
	}

	// Idempotent: nothing written the second time.
	puts := srv.Count("PutParameter")
	ch, err = l.On(ctx, []string{"t1"})
	if err != nil {
		t.Fatal(err)
	}
	if ch.Changed || srv.Count("PutParameter") != puts || !slices.Equal(ch.After, []string{"t1", "t2"}) {
		t.Fatalf("second on t1: %+v, puts %d -> %d", ch, puts, srv.Count("PutParameter"))
	}

	ch, err = l.Off(ctx, []string{"t1", "t9"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ch.Removed, []string{"t1"}) || !slices.Equal(ch.After, []string{"t2"}) || len(ch.Added) != 0 {
		t.Fatalf("off t1,t9: %+v", ch)
	}

	if _, err := l.On(ctx, []string{readonly.All}); err != nil {
		t.Fatal(err)
	}
	got, err := l.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !got.ReadOnly("t7") || got.Version != 3 {
		t.Fatalf("after on all: %+v", got)
	}

	ch, err = l.Off(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ch.Removed, []string{"all", "t2"}) || len(ch.After) != 0 {
		t.Fatalf("off (clear): %+v", ch)
	}
	if p, _ := srv.Get(readonly.DefaultParameter); p.Value != readonly.Placeholder {
		t.Fatalf("cleared list stored as %q, want %q", p.Value, readonly.Placeholder)
	}
	got, _ = l.Get(ctx)
	if len(got.IDs) != 0 || !got.Exists {
		t.Fatalf("after clear: %+v", got)
	}
}

func TestValidation(t *testing.T) {
	_, c := startSSM(t)
	l := readonly.NewTenantList(c, "p")
	for _, bad := range []string{"", "a,b", "a b", "none"} {
		if _, err := l.On(t.Context(), []string{bad}); err == nil {
			t.Errorf("On(%q) succeeded", bad)
		}
	}
	if _, err := l.On(t.Context(), nil); err == nil {
		t.Error("On with no tenants succeeded")
	}
	many := make([]string, 500)
	for i := range many {
		many[i] = strings.Repeat("x", 8) + string(rune('a'+i%26)) + strings.Repeat("y", i%7) + string(rune('A'+i/26))
	}
	if _, err := l.On(t.Context(), many); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("On(500 long ids): got %v, want the SSM size limit", err)
	}
}

// A concurrent writer's put lands between our read and our put: our put
// overwrites it, sees the version skipped, and merges.
func TestConcurrentWriterMerged(t *testing.T) {
	srv, c := startSSM(t)
	l := readonly.NewTenantList(c, "p")
	if _, err := l.On(t.Context(), []string{"t1"}); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	srv.SetHook(func(op, name string) error {
		if op == "PutParameter" {
			once.Do(func() { srv.Put("p", "StringList", "t1,other") })
		}
		return nil
	})
	ch, err := l.On(t.Context(), []string{"t2"})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := srv.Get("p")
	if p.Value != "other,t1,t2" {
		t.Fatalf("stored %q, want the other writer's tenant kept: \"other,t1,t2\"", p.Value)
	}
	if ch.Retries != 1 || !slices.Equal(ch.Added, []string{"t2"}) || ch.Version != 4 {
		t.Fatalf("change %+v, want 1 retry, added [t2], version 4", ch)
	}

	// Same for a removal racing an addition.
	once = sync.Once{}
	srv.SetHook(func(op, name string) error {
		if op == "PutParameter" {
			once.Do(func() { srv.Put("p", "StringList", "other,t1,t2,t3") })
		}
		return nil
	})
	if _, err := l.Off(t.Context(), []string{"t1"}); err != nil {
		t.Fatal(err)
	}
	if p, _ := srv.Get("p"); p.Value != "other,t2,t3" {
		t.Fatalf("stored %q, want \"other,t2,t3\"", p.Value)
	}
}

// Two writers create the parameter at once: the loser's create fails with
// ParameterAlreadyExists and it starts again from the winner's value.
func TestConcurrentCreate(t *testing.T) {
	srv, c := startSSM(t)
	l := readonly.NewTenantList(c, "p")
	var once sync.Once
	srv.SetHook(func(op, name string) error {
		if op == "PutParameter" {
			once.Do(func() { srv.Put("p", "StringList", "other") })
		}
		return nil
	})
	ch, err := l.On(t.Context(), []string{"t1"})
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := srv.Get("p"); p.Value != "other,t1" || ch.Retries != 1 {
		t.Fatalf("stored %q after %d retries, want \"other,t1\" after 1", p.Value, ch.Retries)
	}
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	srv, c := startSSM(t)
	l := readonly.NewTenantList(c, "p")
	l.MaxAttempts = 3
	if _, err := l.On(t.Context(), []string{"t1"}); err != nil {
		t.Fatal(err)
	}
	n := 0
	srv.SetHook(func(op, name string) error {
		if op == "PutParameter" {
			n++
			srv.Put("p", "StringList", "x"+strings.Repeat("y", n))
		}
		return nil
	})
	if _, err := l.On(t.Context(), []string{"t2"}); err == nil || !strings.Contains(err.Error(), "racing") {
		t.Fatalf("got %v, want a give-up error", err)
	}
	if n != 3 {
		t.Errorf("puts = %d, want 3", n)
	}
}
