package cli

import (
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// TestExportTTLInference: an export's removal of an item whose TTL value
// had passed is a TTL expiry, told by the table's TTL attribute
// (DescribeTimeToLive, or --ttl-attribute for a copy): --ttl exclude
// leaves it out of the key set, so a patch does not bring it back. A
// delete of an item whose TTL lies ahead stays in.
func TestExportTTLInference(t *testing.T) {
	s := newExportStack(t)
	ctx := t.Context()
	if _, err := s.ddb.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName:               aws.String("orders"),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String("expiresAt"), Enabled: aws.Bool(true)},
	}); err != nil {
		t.Fatal(err)
	}
	putTTL := func(pk string, expires time.Time) {
		if _, err := s.ddb.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("orders"), Item: map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: pk}, "v": &types.AttributeValueMemberS{Value: "good"},
			"expiresAt": &types.AttributeValueMemberN{Value: strconv.FormatInt(expires.Unix(), 10)},
		}}); err != nil {
			t.Fatal(err)
		}
	}
	putTTL("expired", time.Now().Add(-time.Hour))
	putTTL("alive", time.Now().Add(24*time.Hour))
	s.put(t, "o1", "good")
	if code, _, stderr := runRecoverCLI(t, "pitr", "enable", "--table", "orders"); code != 0 {
		t.Fatalf("pitr enable: exit %d\n%s", code, stderr)
	}
	enabled := time.Now()
	s.snapshot(t, enabled.Add(-48*time.Hour))
	from := enabled.Add(-2 * time.Hour).UTC().Truncate(time.Millisecond).Format(time.RFC3339Nano)
	// In the window: TTL removes "expired" (DynamoDB Local does not run
	// TTL; the removal is the same in an export), "alive" is deleted by a
	// deploy, o1 overwritten.
	s.del(t, "expired")
	s.del(t, "alive")
	s.put(t, "o1", "bad")
	s.snapshot(t, time.Now())
	time.Sleep(5 * time.Millisecond)
	code, objs, stderr := runRecoverCLI(t, "export", "--table", "orders", "--from", from, "--to", "now",
		"--s3", "s3://"+s.s3.Bucket+"/incident", "--wait", "--poll", "20ms", "--timeout", "30s")
	if code != 0 || len(objs) != 1 {
		t.Fatalf("export: exit %d %v\n%s", code, objs, stderr)
	}
	loc, _ := objs[0]["location"].(string)
	to, _ := objs[0]["to"].(string)

	keys := func(store string, ttl string) []string {
		t.Helper()
		code, out, stderr := runIndexCLI(t, "query", "--store", store, "--from", from, "--to", to, "--ttl", ttl)
		if code != 0 {
			t.Fatalf("query --ttl %s: exit %d\n%s", ttl, code, stderr)
		}
		var got []string
		for _, l := range jsonLines(t, out) {
			got = append(got, l["key"].(map[string]any)["pk"].(map[string]any)["S"].(string))
		}
		slices.Sort(got) // the key set is in canonical key order
		return got
	}

	// From S3: the attribute is asked of DynamoDB.
	store := filepath.Join(t.TempDir(), "s3")
	code, _, stderr = runRecoverCLI(t, "index", "--export", loc, "--store", store)
	if code != 0 || !strings.Contains(stderr, "1 removal(s) taken for TTL expiries (TTL attribute expiresAt from DescribeTimeToLive") {
		t.Fatalf("index --export: exit %d, want the TTL summary\n%s", code, stderr)
	}
	if got := keys(store, "exclude"); strings.Join(got, ",") != "alive,o1" {
		t.Errorf("--ttl exclude: keys %v, want alive,o1 (the expired item left out)", got)
	}
	if got := keys(store, "only"); strings.Join(got, ",") != "expired" {
		t.Errorf("--ttl only: keys %v, want expired", got)
	}

	// A local copy: --ttl-attribute names it; without, a warning.
	copyDir := t.TempDir()
	if code, _, stderr := runRecoverCLI(t, "index", "--export", loc, "--store", filepath.Join(copyDir, "unused"), "--ttl-attribute", "expiresAt"); code != 0 || !strings.Contains(stderr, "from --ttl-attribute") {
		t.Fatalf("index --export --ttl-attribute: exit %d\n%s", code, stderr)
	}
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:1") // DynamoDB unreachable
	noTTL := filepath.Join(t.TempDir(), "nottl")
	code, _, stderr = runRecoverCLI(t, "index", "--export", loc, "--store", noTTL)
	if code != 0 || !strings.Contains(stderr, "warning: DescribeTimeToLive orders") || !strings.Contains(stderr, "2 removal(s) could not be told from TTL expiries") {
		t.Fatalf("index --export, DynamoDB unreachable: exit %d, want the warnings\n%s", code, stderr)
	}
	if got := keys(noTTL, "exclude"); strings.Join(got, ",") != "alive,expired,o1" {
		t.Errorf("unchecked --ttl exclude: keys %v, want all three", got)
	}
}
