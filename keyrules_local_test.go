package rewind

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/ddbrewind/rewind/internal/localaws"
)

// localDisagreements are the cases where DynamoDB Local takes what
// CheckDynamoDB refuses, and why CheckDynamoDB is right to; the test
// asserts the difference so that a change shows up.
var localDisagreements = map[string]string{
	// The SDK sends JSON, and its encoder writes invalid UTF-8 as U+FFFD,
	// so DynamoDB stores a different key from the one asked for: a patch
	// would write the wrong item. (Keys read from key sets are always
	// valid UTF-8: the JSON decoder refuses anything else.)
	"partition key/S/invalid UTF-8": "stored as U+FFFD",
	"sort key/S/invalid UTF-8":      "stored as U+FFFD",
}

// TestCheckDynamoDBAgainstDynamoDBLocal puts every case of keyRuleCases to
// DynamoDB Local as the key of an item and checks that it is taken exactly
// when CheckDynamoDB says so.
func TestCheckDynamoDBAgainstDynamoDBLocal(t *testing.T) {
	ddb := localaws.DynamoDBForTest(t)
	ctx := context.Background()
	tables := map[byte]string{'S': "keys_s", 'N': "keys_n", 'B': "keys_b"}
	for typ, name := range tables {
		at := types.ScalarAttributeType(string(typ))
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := ddb.DynamoDB.CreateTable(cctx, &dynamodb.CreateTableInput{
			TableName:   aws.String(name),
			BillingMode: types.BillingModePayPerRequest,
			AttributeDefinitions: []types.AttributeDefinition{
				{AttributeName: aws.String("pk"), AttributeType: at},
				{AttributeName: aws.String("sk"), AttributeType: at},
			},
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String("sk"), KeyType: types.KeyTypeRange},
			},
		})
		cancel()
		if err != nil {
			t.Fatalf("create table %s: %v", name, err)
		}
	}
	for _, c := range keyRuleCases() {
		t.Run(c.name, func(t *testing.T) {
			k, schema := keyForCase(c)
			checkErr := k.CheckDynamoDB(schema...)
			item := Item{}
			for _, a := range k {
				switch a.Type {
				case 'S':
					item[a.Name] = &types.AttributeValueMemberS{Value: a.Value}
				case 'N':
					// As written, not normalised: the case may be a number
					// NormalizeNumber refuses.
					item[a.Name] = &types.AttributeValueMemberN{Value: a.Value}
				case 'B':
					item[a.Name] = &types.AttributeValueMemberB{Value: []byte(a.Value)}
				}
			}
			pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			_, putErr := ddb.DynamoDB.PutItem(pctx, &dynamodb.PutItemInput{TableName: aws.String(tables[c.typ]), Item: item})
			var apiErr smithy.APIError
			if putErr != nil && !errors.As(putErr, &apiErr) {
				t.Fatalf("PutItem: %v (not an answer from DynamoDB Local)", putErr)
			}
			local := "taken"
			if putErr != nil {
				local = "refused: " + apiErr.ErrorMessage()
			}
			ours := "taken"
			if checkErr != nil {
				ours = "refused: " + checkErr.Error()
			}
			if want, known := localDisagreements[c.name]; known {
				if (putErr == nil) == (checkErr == nil) {
					t.Fatalf("DynamoDB Local now agrees with CheckDynamoDB (%s); drop the case from localDisagreements (%s)", local, want)
				}
				t.Logf("known disagreement: DynamoDB Local %s; CheckDynamoDB %s (%s)", local, ours, want)
				if want == "stored as U+FFFD" {
					stored := Item{}
					for n, av := range item {
						stored[n] = &types.AttributeValueMemberS{Value: strings.ToValidUTF8(av.(*types.AttributeValueMemberS).Value, "\uFFFD")}
					}
					out, err := ddb.DynamoDB.GetItem(pctx, &dynamodb.GetItemInput{TableName: aws.String(tables[c.typ]), Key: stored, ConsistentRead: aws.Bool(true)})
					if err != nil || out.Item == nil {
						t.Fatalf("no item under the key with U+FFFD: %v", err)
					}
				}
				return
			}
			if (putErr == nil) != (checkErr == nil) {
				t.Fatalf("DynamoDB Local %s\nCheckDynamoDB %s", local, ours)
			}
			t.Log(fmt.Sprintf("both %s", local))
		})
	}
}
