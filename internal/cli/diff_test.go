package cli

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/internal/localaws"
	"github.com/ddbrewind/rewind/recover/patch/patchtest"
)

// diffStack makes the tables orders-restored and orders, differing in
// known ways, in a database of the test's own, and points this process's
// AWS environment at it. It returns the client and both tables' items.
func diffStack(t *testing.T, filler int) (c *dynamodb.Client, restored, prod []rewind.Item) {
	t.Helper()
	ddb := localaws.DynamoDBForTest(t)
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_DYNAMODB":   ddb.Endpoint,
		"AWS_ACCESS_KEY_ID":           ddb.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY":       localaws.SecretAccessKey,
		"AWS_REGION":                  localaws.Region,
		"AWS_CONFIG_FILE":             os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE": os.DevNull,
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_ENDPOINT_URL":            "",
		"AWS_SESSION_TOKEN":           "",
		"AWS_PROFILE":                 "",
		"REWIND_PROGRESS":             "0",
	} {
		t.Setenv(k, v)
	}
	c = ddb.DynamoDB
	for _, name := range []string{"orders", "orders-restored"} {
		if err := patchtest.CreateTable(t.Context(), c, name); err != nil {
			t.Fatal(err)
		}
	}
	s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	n := func(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }
	b := func(v ...byte) types.AttributeValue { return &types.AttributeValueMemberB{Value: v} }
	m := func(kv ...any) types.AttributeValue {
		mm := map[string]types.AttributeValue{}
		for i := 0; i < len(kv); i += 2 {
			mm[kv[i].(string)] = kv[i+1].(types.AttributeValue)
		}
		return &types.AttributeValueMemberM{Value: mm}
	}
	item := func(pk string, sk int, kv ...any) rewind.Item {
		it := patchtest.Key(pk, sk)
		for i := 0; i < len(kv); i += 2 {
			it[kv[i].(string)] = kv[i+1].(types.AttributeValue)
		}
		return it
	}
	old, later := s("2026-11-20T09:00:00Z"), s("2026-11-20T11:00:00Z")
	restored = []rewind.Item{
		// 1: unchanged, every kind of value; sets read back in any order.
		item("t1", 1, "lastUpdatedTime", old, "blob", b(0, 1, 2, 255), "tags", &types.AttributeValueMemberSS{Value: []string{"a", "b", "c"}},
			"addr", m("city", s("Oslo"), "geo", m("lat", n("59.9"))), "ok", &types.AttributeValueMemberBOOL{Value: true}, "none", &types.AttributeValueMemberNULL{Value: true},
			"l", &types.AttributeValueMemberL{Value: []types.AttributeValue{n("1"), s("x")}}),
		// 2: a changed string, written with the attribute set.
		item("t1", 2, "lastUpdatedTime", old, "status", s("paid")),
		// 3: a number that became a string.
		item("t1", 3, "lastUpdatedTime", old, "amount", n("10")),
		// 4: a city deep in a nested map, changed by a write that did not
		// set lastUpdatedTime.
		item("t1", 4, "lastUpdatedTime", old, "addr", m("city", s("Oslo"), "geo", m("lat", n("59.9"), "lon", n("10.7")))),
		// 5: one byte of a binary value.
		item("t1", 5, "lastUpdatedTime", old, "blob", b(1, 2, 3)),
		// 6, 7: deleted in production.
		item("t1", 6, "lastUpdatedTime", old, "status", s("open")),
		item("t2", 7, "lastUpdatedTime", old),
		// 9: an attribute removed in production.
		item("t2", 9, "lastUpdatedTime", old, "note", s("call back")),
	}
	prod = []rewind.Item{
		restored[0],
		item("t1", 2, "lastUpdatedTime", later, "status", s("refunded")),
		item("t1", 3, "lastUpdatedTime", later, "amount", s("10")),
		item("t1", 4, "lastUpdatedTime", old, "addr", m("city", s("Bergen"), "geo", m("lat", n("59.9"), "lon", n("10.7")))),
		item("t1", 5, "lastUpdatedTime", later, "blob", b(1, 2, 4)),
		item("t2", 9, "lastUpdatedTime", later),
		// 10, 11: created after the restore point; 11 without the attribute.
		item("t3", 10, "lastUpdatedTime", later, "status", s("new")),
		item("t3", 11, "status", s("new")),
	}
	// Unchanged items, for volume (and spilling).
	for i := range filler {
		it := item("f"+strconv.Itoa(i%7), 100+i, "lastUpdatedTime", old, "v", n(strconv.Itoa(i)), "pad", s(strings.Repeat("x", i%50)))
		restored, prod = append(restored, it), append(prod, it)
	}
	if err := patchtest.Put(t.Context(), c, "orders-restored", restored); err != nil {
		t.Fatal(err)
	}
	if err := patchtest.Put(t.Context(), c, "orders", prod); err != nil {
		t.Fatal(err)
	}
	return c, restored, prod
}

// expectedKeySet is the key set, as KeySetWriter sorts it, of the given
// (pk, sk, action) items of table orders.
func expectedKeySet(t *testing.T, items ...any) string {
	t.Helper()
	var buf bytes.Buffer
	w := rewind.NewKeySetWriter(&buf)
	for i := 0; i < len(items); i += 3 {
		k, err := rewind.KeyFromItem(patchtest.Key(items[i].(string), items[i+1].(int)))
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Add(rewind.KeySetEntry{Table: "orders", Key: k, Actions: []rewind.Action{items[i+2].(rewind.Action)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestDiffKeySetThenPatch(t *testing.T) {
	c, restored, prod := diffStack(t, 300)
	dir := t.TempDir()
	want := expectedKeySet(t,
		"t1", 2, rewind.ActionModify, "t1", 3, rewind.ActionModify, "t1", 4, rewind.ActionModify, "t1", 5, rewind.ActionModify,
		"t1", 6, rewind.ActionRemove, "t2", 7, rewind.ActionRemove, "t2", 9, rewind.ActionModify,
		"t3", 10, rewind.ActionInsert, "t3", 11, rewind.ActionInsert)

	code, stdout, stderr := runPatchCLI(t, "diff", "--from", "orders-restored", "--to", "orders", "--segments", "3", "--workers", "2")
	if code != exitOK {
		t.Fatalf("diff: exit %d\n%s", code, stderr)
	}
	if stdout != want {
		t.Fatalf("diff key set:\n%s\nwant:\n%s", stdout, want)
	}
	// The format, spelled out once: what rewind query writes.
	if line := `{"table":"orders","key":{"pk":{"S":"t1"},"sk":{"N":"6"}},"tenant":"","first":"0001-01-01T00:00:00Z","last":"0001-01-01T00:00:00Z","count":0,"actions":["REMOVE"]}`; !strings.Contains(stdout, line+"\n") {
		t.Errorf("no line %s in\n%s", line, stdout)
	}
	for _, s := range []string{"restored            308", "production          308", "unchanged           301", "restore               5", "delete                2", "create                2", "WARNING: a diff cannot tell a bad write from a good one", "rewind keys subtract"} {
		if !strings.Contains(stderr, s) {
			t.Errorf("summary lacks %q:\n%s", s, stderr)
		}
	}
	if strings.Contains(stderr, "runs") {
		t.Errorf("spilled with the default budget:\n%s", stderr)
	}

	// A tiny budget spills many runs, and changes nothing in the output.
	code, spilled, stderr := runPatchCLI(t, "diff", "--from", "orders-restored", "--to", "orders", "--memory", "2KiB", "--tmp", dir, "--page-limit", "7")
	if code != exitOK || spilled != want {
		t.Fatalf("diff with a 2 KiB budget: exit %d\n%s\nwant:\n%s\n%s", code, spilled, want, stderr)
	}
	if !strings.Contains(stderr, "sorted runs spilled to disk") {
		t.Errorf("nothing spilled with a 2 KiB budget:\n%s", stderr)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("runs left behind in %s: %v", dir, left)
	}

	// The operator knows t3/10 is a good write made since the restore:
	// subtract it, patch the rest, and production equals the restored
	// table but for it.
	diffFile, good, impacted := filepath.Join(dir, "diff.jsonl"), filepath.Join(dir, "good.jsonl"), filepath.Join(dir, "impacted.jsonl")
	os.WriteFile(diffFile, []byte(stdout), 0o644)
	os.WriteFile(good, []byte(expectedKeySet(t, "t3", 10, rewind.ActionInsert)), 0o644)
	code, sub, stderr := runPatchCLI(t, "keys", "subtract", diffFile, good)
	if code != exitOK || strings.Count(sub, "\n") != 8 || strings.Contains(sub, `"S":"t3"},"sk":{"N":"10"}`) {
		t.Fatalf("keys subtract: exit %d\n%s\n%s", code, sub, stderr)
	}
	os.WriteFile(impacted, []byte(sub), 0o644)
	code, _, stderr = runPatchCLI(t, "patch", "--keys", impacted, "--from", "orders-restored", "--to", "orders", "--yes", "--journal", filepath.Join(dir, "patch.journal"))
	if code != exitOK {
		t.Fatalf("patch: exit %d\n%s", code, stderr)
	}
	wantProd := map[string]rewind.Item{}
	for _, it := range restored {
		wantProd[patchtest.EncodeKey(it)] = it
	}
	kept := prod[6] // t3/10
	wantProd[patchtest.EncodeKey(kept)] = kept
	assertProd(t, c, wantProd, "after patching the diff less the good write")

	// And a diff now finds only the good write.
	code, stdout, stderr = runPatchCLI(t, "diff", "--from", "orders-restored", "--to", "orders")
	if want := expectedKeySet(t, "t3", 10, rewind.ActionInsert); code != exitOK || stdout != want {
		t.Fatalf("diff after patch: exit %d\n%s\nwant:\n%s\n%s", code, stdout, want, stderr)
	}
}

func TestDiffAttributes(t *testing.T) {
	diffStack(t, 0)
	code, stdout, stderr := runPatchCLI(t, "diff", "--from", "orders-restored", "--to", "orders", "--format", "json")
	if code != exitOK {
		t.Fatalf("diff: exit %d\n%s", code, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(lines) != 9 {
		t.Fatalf("%d lines, want 9:\n%s", len(lines), stdout)
	}
	// Every line is still a key-set line. An item on one side only
	// differs in every attribute, its key's too.
	for i, l := range lines {
		if _, err := rewind.ParseKeySetLine([]byte(l)); err != nil {
			t.Fatalf("line %d is not a key-set line: %v: %s", i+1, err, l)
		}
	}
	for _, want := range []string{
		`"actions":["MODIFY"],"attributes":[{"path":["lastUpdatedTime"],"from":{"S":"2026-11-20T09:00:00Z"},"to":{"S":"2026-11-20T11:00:00Z"}},{"path":["status"],"from":{"S":"paid"},"to":{"S":"refunded"}}]}`,
		`{"path":["amount"],"from":{"N":"10"},"to":{"S":"10"}}`,
		`"attributes":[{"path":["addr","city"],"from":{"S":"Oslo"},"to":{"S":"Bergen"}}]}`,
		`{"path":["blob"],"from":{"B":"AQID"},"to":{"B":"AQIE"}}`,
		`{"path":["note"],"from":{"S":"call back"},"to":null}`,
		`"sk":{"N":"7"}},"tenant":"","first":"0001-01-01T00:00:00Z","last":"0001-01-01T00:00:00Z","count":0,"actions":["REMOVE"],"attributes":[{"path":["lastUpdatedTime"],"from":{"S":"2026-11-20T09:00:00Z"},"to":null},{"path":["pk"],"from":{"S":"t2"},"to":null},{"path":["sk"],"from":{"N":"7"},"to":null}]}`,
		`"sk":{"N":"11"}},"tenant":"","first":"0001-01-01T00:00:00Z","last":"0001-01-01T00:00:00Z","count":0,"actions":["INSERT"],"attributes":[{"path":["pk"],"from":null,"to":{"S":"t3"}},{"path":["sk"],"from":null,"to":{"N":"11"}},{"path":["status"],"from":null,"to":{"S":"new"}}]}`,
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("no %s in\n%s", want, stdout)
		}
	}
}

func TestDiffSince(t *testing.T) {
	diffStack(t, 20)
	code, stdout, stderr := runPatchCLI(t, "diff", "--from", "orders-restored", "--to", "orders", "--since-attribute", "lastUpdatedTime", "--since", "2026-11-20T10:00:00Z")
	if code != exitOK {
		t.Fatalf("diff --since: exit %d\n%s", code, stderr)
	}
	// Only production items written since 10:00 that set the attribute:
	// not t1/4 (changed without it), t3/11 (created without it), nor the
	// deletes t1/6, t2/7.
	want := expectedKeySet(t, "t1", 2, rewind.ActionModify, "t1", 3, rewind.ActionModify, "t1", 5, rewind.ActionModify, "t2", 9, rewind.ActionModify, "t3", 10, rewind.ActionInsert)
	if stdout != want {
		t.Fatalf("diff --since:\n%s\nwant:\n%s", stdout, want)
	}
	for _, s := range []string{"items with lastUpdatedTime >= {\"S\":\"2026-11-20T10:00:00Z\"} (of 28 read)", "It cannot see deletes, nor writes", "24 restored items had no such match", "DynamoDB reads (and bills) every item"} {
		if !strings.Contains(stderr, s) {
			t.Errorf("summary lacks %q:\n%s", s, stderr)
		}
	}
	if code, _, stderr := runPatchCLI(t, "diff", "--from", "orders-restored", "--to", "orders", "--since", "-1h"); code != exitUsage || !strings.Contains(stderr, "go together") {
		t.Fatalf("--since alone: exit %d\n%s", code, stderr)
	}
}

func TestDiffRefusesSameTable(t *testing.T) {
	c, _, _ := diffStack(t, 0)
	out, err := c.DescribeTable(t.Context(), &dynamodb.DescribeTableInput{TableName: aws.String("orders")})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(out.Table.TableArn)
	code, stdout, stderr := runPatchCLI(t, "diff", "--from", "orders", "--to", "orders")
	if code != exitUsage || stdout != "" || !strings.Contains(stderr, "same table") {
		t.Fatalf("--from orders --to orders: exit %d, stdout %q\n%s", code, stdout, stderr)
	}
	code, stdout, stderr = runPatchCLI(t, "diff", "--from", arn, "--to", "orders")
	if code != exitError || stdout != "" || !strings.Contains(stderr, fmt.Sprintf("refused: --from %q and --to \"orders\" are the same table", arn)) {
		t.Fatalf("--from %s --to orders: exit %d, stdout %q\n%s", arn, code, stdout, stderr)
	}
	// The ARN of the other table is a diff like any other.
	rout, err := c.DescribeTable(t.Context(), &dynamodb.DescribeTableInput{TableName: aws.String("orders-restored")})
	if err != nil {
		t.Fatal(err)
	}
	if code, stdout, stderr = runPatchCLI(t, "diff", "--from", aws.ToString(rout.Table.TableArn), "--to", arn); code != exitOK || strings.Count(stdout, "\n") != 9 {
		t.Fatalf("diff by ARNs: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if code, _, stderr = runPatchCLI(t, "diff", "--from", "orders-restored", "--to", "nosuch"); code != exitError || !strings.Contains(stderr, `table "nosuch" does not exist`) {
		t.Fatalf("missing table: exit %d\n%s", code, stderr)
	}
}

func TestDiffInterrupted(t *testing.T) {
	diffStack(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errb bytes.Buffer
	env := &Env{Stdout: &out, Stderr: &errb, Log: slog.New(slog.NewTextHandler(&errb, nil)), Getenv: os.Getenv}
	code := Run(ctx, env, []string{"diff", "--from", "orders-restored", "--to", "orders"})
	if code != exitInterrupted || out.Len() != 0 || !strings.Contains(errb.String(), "do not patch from it; run the diff again") {
		t.Fatalf("interrupted diff: exit %d, stdout %q\n%s", code, out.String(), errb.String())
	}
}
