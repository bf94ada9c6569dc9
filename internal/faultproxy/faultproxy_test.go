package faultproxy_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	"github.com/ddbrewind/rewind/internal/faultproxy"
	"github.com/ddbrewind/rewind/internal/localaws"
)

// client returns a client through a proxy with the given faults, making one
// attempt per call so the faults show.
func client(t *testing.T, env *localaws.DynamoDBEnv, cfg faultproxy.Config) (*dynamodb.Client, *faultproxy.Proxy) {
	t.Helper()
	cfg.Upstream = env.Endpoint
	p, err := faultproxy.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	ac, err := localaws.Config(t.Context(), p.URL, env.AccessKeyID)
	if err != nil {
		t.Fatal(err)
	}
	return dynamodb.NewFromConfig(ac, func(o *dynamodb.Options) { o.RetryMaxAttempts = 1 }), p
}

func TestErrorShapes(t *testing.T) {
	env := localaws.DynamoDBForTest(t)
	for _, tc := range []struct {
		name   string
		cfg    faultproxy.Config
		code   string
		status int
	}{
		{"provisioned throughput", faultproxy.Config{ProvisionedThroughputExceeded: 1}, "ProvisionedThroughputExceededException", 400},
		{"throttling", faultproxy.Config{Throttling: 1}, "ThrottlingException", 400},
		{"server error", faultproxy.Config{ServerError: 1}, "InternalServerError", 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, p := client(t, env, tc.cfg)
			// GetItem, whose model lists ProvisionedThroughputExceeded:
			// the SDK decodes an error into its modeled type only for an
			// operation that lists it (ListTables does not).
			_, err := c.GetItem(t.Context(), &dynamodb.GetItemInput{
				TableName: aws.String("never-forwarded"),
				Key:       map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "k"}},
			})
			var ae smithy.APIError
			if !errors.As(err, &ae) || ae.ErrorCode() != tc.code {
				t.Fatalf("error %v, want API error %s", err, tc.code)
			}
			if tc.code == "ProvisionedThroughputExceededException" {
				var pte *types.ProvisionedThroughputExceededException
				if !errors.As(err, &pte) {
					t.Errorf("the SDK did not decode %T as its modeled ProvisionedThroughputExceededException", err)
				}
			}
			var re interface{ HTTPStatusCode() int }
			if !errors.As(err, &re) || re.HTTPStatusCode() != tc.status {
				t.Errorf("error %v: want HTTP %d", err, tc.status)
			}
			if s := p.Stats(); s.Faults() != 1 || s.Requests != 1 {
				t.Errorf("stats %+v, want one request, one fault", s)
			}
		})
	}
	t.Run("drop before forward", func(t *testing.T) {
		c, p := client(t, env, faultproxy.Config{DropBeforeForward: 1})
		if _, err := c.ListTables(t.Context(), &dynamodb.ListTablesInput{}); err == nil {
			t.Fatal("no error from a dropped connection")
		}
		if p.Stats().DropBeforeForward != 1 {
			t.Errorf("stats %+v", p.Stats())
		}
	})
	t.Run("drop after forward executes the request", func(t *testing.T) {
		c, p := client(t, env, faultproxy.Config{DropAfterForward: 1, Operations: []string{"CreateTable"}})
		_, err := c.CreateTable(t.Context(), &dynamodb.CreateTableInput{
			TableName:            aws.String("dropped"),
			AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}},
			KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
			BillingMode:          types.BillingModePayPerRequest,
		})
		if err == nil {
			t.Fatal("no error from a dropped connection")
		}
		if _, err := c.DescribeTable(t.Context(), &dynamodb.DescribeTableInput{TableName: aws.String("dropped")}); err != nil {
			t.Errorf("the request behind the dropped response was not executed: %v", err)
		}
		if p.Stats().DropAfterForward != 1 {
			t.Errorf("stats %+v", p.Stats())
		}
	})
}

func TestUnprocessedKeys(t *testing.T) {
	env := localaws.DynamoDBForTest(t)
	ctx := t.Context()
	direct := env.DynamoDB
	_, err := direct.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String("things"),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	})
	if err != nil {
		t.Fatal(err)
	}
	var keys []map[string]types.AttributeValue
	for i := range 50 {
		k := map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: fmt.Sprintf("k%02d", i)}}
		keys = append(keys, k)
		if i%5 == 4 {
			continue // some keys have no item
		}
		item := map[string]types.AttributeValue{"pk": k["pk"], "n": &types.AttributeValueMemberN{Value: "12345678901234567890123456789012345678"}, "b": &types.AttributeValueMemberB{Value: []byte{0, 1, 2, 255}}}
		if _, err := direct.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("things"), Item: item}); err != nil {
			t.Fatal(err)
		}
	}
	c, p := client(t, env, faultproxy.Config{UnprocessedKeys: 1, Seed: 5})
	out, err := c.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: map[string]types.KeysAndAttributes{"things": {Keys: keys, ConsistentRead: aws.Bool(true)}}})
	if err != nil {
		t.Fatalf("rewritten response rejected by the SDK (CRC32?): %v", err)
	}
	un := out.UnprocessedKeys["things"]
	if len(un.Keys) == 0 || len(un.Keys) == len(keys) {
		t.Fatalf("%d of %d keys unprocessed, want some", len(un.Keys), len(keys))
	}
	if un.ConsistentRead == nil || !*un.ConsistentRead {
		t.Errorf("UnprocessedKeys lost ConsistentRead")
	}
	seen := map[string]bool{}
	for _, k := range un.Keys {
		seen[k["pk"].(*types.AttributeValueMemberS).Value] = true
	}
	for _, item := range out.Responses["things"] {
		pk := item["pk"].(*types.AttributeValueMemberS).Value
		if seen[pk] {
			t.Errorf("key %s both returned and unprocessed", pk)
		}
		if n := item["n"].(*types.AttributeValueMemberN).Value; n != "12345678901234567890123456789012345678" {
			t.Errorf("number rewritten to %s", n)
		}
		seen[pk] = true
	}
	if got := len(seen); got != 40+countAbsentUnprocessed(un.Keys) {
		t.Errorf("%d keys accounted for", got)
	}
	if p.Stats().UnprocessedKeys != 1 {
		t.Errorf("stats %+v", p.Stats())
	}
}

func countAbsentUnprocessed(keys []map[string]types.AttributeValue) int {
	n := 0
	for _, k := range keys {
		var i int
		fmt.Sscanf(k["pk"].(*types.AttributeValueMemberS).Value, "k%d", &i)
		if i%5 == 4 {
			n++
		}
	}
	return n
}
