package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/recover/patch/patchtest"
)

// TestPatchExpiredItems: production lacks three impacted items; the
// restored copy holds them, one with a TTL already past (DynamoDB's TTL
// deleted it from production: the drill's runs meet this whenever an
// item expires mid-incident). The dry run plans it "expired", the patch
// leaves it out, and verify passes with it counted as expired, not as a
// difference; the whole production table is then exactly the two others
// added to what it held.
func TestPatchExpiredItems(t *testing.T) {
	ddb, _, _, _ := patchStack(t, patchtest.ScenarioOptions{Items: 6, Seed: 3})
	ctx := t.Context()
	if _, err := ddb.DynamoDB.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName:               aws.String("orders"),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String("expiresAt"), Enabled: aws.Bool(true)},
	}); err != nil {
		t.Fatal(err)
	}
	before, err := patchtest.Scan(ctx, ddb.DynamoDB, "orders")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	item := func(n int, ttl string) rewind.Item {
		it := rewind.Item{
			"pk":   &types.AttributeValueMemberS{Value: fmt.Sprintf("ttl#%d", n)},
			"sk":   &types.AttributeValueMemberN{Value: strconv.Itoa(n)},
			"body": &types.AttributeValueMemberS{Value: "restored"},
		}
		if ttl != "" {
			it["expiresAt"] = &types.AttributeValueMemberN{Value: ttl}
		}
		return it
	}
	expired := item(1, strconv.FormatInt(now-3600, 10))
	live := item(2, strconv.FormatInt(now+86400, 10))
	noTTL := item(3, "")
	var lines strings.Builder
	for _, it := range []rewind.Item{expired, live, noTTL} {
		if _, err := ddb.DynamoDB.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("orders-restored"), Item: it}); err != nil {
			t.Fatal(err)
		}
		k, err := rewind.KeyFromItemSchema(it, patchtest.KeyNames...)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&lines, `{"table":"orders","key":%s}`+"\n", k.String())
	}
	keys := filepath.Join(t.TempDir(), "ttl.jsonl")
	if err := os.WriteFile(keys, []byte(lines.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	code, stdout, stderr := runPatchCLI(t, "patch", "--keys", keys, "--from", "orders-restored", "--to", "orders", "--progress", "0")
	if code != exitOK {
		t.Fatalf("dry run: exit %d\n%s", code, stderr)
	}
	actions := map[string]string{}
	for _, l := range jsonLines(t, stdout) {
		k, _ := l["key"].(map[string]any)
		pk, _ := k["pk"].(map[string]any)
		actions[fmt.Sprint(pk["S"])] = fmt.Sprint(l["action"])
	}
	if actions["ttl#1"] != "expired" || actions["ttl#2"] != "restore" || actions["ttl#3"] != "restore" {
		t.Fatalf("dry run actions %v, want ttl#1 expired and the others restore", actions)
	}
	if !strings.Contains(stderr, "expired    1") || !strings.Contains(stderr, "TTL expiresAt has passed") {
		t.Errorf("dry run summary lacks the expired count:\n%s", stderr)
	}
	plan := filepath.Join(t.TempDir(), "plan.jsonl")
	if err := os.WriteFile(plan, []byte(stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runPatchCLI(t, "patch", "--plan", plan, "--from", "orders-restored", "--to", "orders", "--yes", "--progress", "0"); code != exitOK {
		t.Fatalf("patch: exit %d\n%s", code, stderr)
	}
	want := map[string]rewind.Item{}
	for k, v := range before {
		want[k] = v
	}
	for _, it := range []rewind.Item{live, noTTL} {
		k, _ := rewind.KeyFromItemSchema(it, patchtest.KeyNames...)
		want[string(k.Encode())] = it
	}
	assertProd(t, ddb.DynamoDB, want, "after the patch")

	code, stdout, stderr = runPatchCLI(t, "verify", "--keys", keys, "--from", "orders-restored", "--to", "orders", "--progress", "0")
	if code != exitOK || stdout != "" || !strings.Contains(stderr, "all 3 keys match") || !strings.Contains(stderr, "expired    1") {
		t.Fatalf("verify: exit %d, stdout %q\n%s", code, stdout, stderr)
	}
}
