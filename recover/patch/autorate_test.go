package patch

import (
	"math"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/ddbrewind/rewind/internal/localaws"
)

// The default cap on writes comes from the production table as DynamoDB
// Local describes it: half the provisioned write capacity, so that the
// application keeps the other half; no cap on an on-demand table, whose
// capacity the adaptive concurrency finds.
func TestAutoRateFromTheTable(t *testing.T) {
	env := localaws.DynamoDBForTest(t)
	ctx := t.Context()
	create := func(name string, in *dynamodb.CreateTableInput) {
		in.TableName = aws.String(name)
		in.AttributeDefinitions = []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}}
		in.KeySchema = []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}}
		if _, err := env.DynamoDB.CreateTable(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	create("provisioned", &dynamodb.CreateTableInput{BillingMode: types.BillingModeProvisioned,
		ProvisionedThroughput: &types.ProvisionedThroughput{ReadCapacityUnits: aws.Int64(50), WriteCapacityUnits: aws.Int64(40)}})
	create("tiny", &dynamodb.CreateTableInput{BillingMode: types.BillingModeProvisioned,
		ProvisionedThroughput: &types.ProvisionedThroughput{ReadCapacityUnits: aws.Int64(1), WriteCapacityUnits: aws.Int64(1)}})
	create("ondemand", &dynamodb.CreateTableInput{BillingMode: types.BillingModePayPerRequest})
	for _, tc := range []struct {
		table string
		rate  float64
		says  string
	}{
		{"provisioned", 20, "half the table's 40 provisioned write capacity units"},
		{"tiny", 1, "half the table's 1 provisioned"},
		{"ondemand", math.Inf(1), "on-demand table without a maximum"},
	} {
		s, err := describeKeySchema(ctx, env.DynamoDB, tc.table)
		if err != nil {
			t.Fatal(err)
		}
		r, why := s.autoRate()
		if r != tc.rate || !strings.Contains(why, tc.says) {
			t.Errorf("%s: auto rate %g (%s), want %g saying %q", tc.table, r, why, tc.rate, tc.says)
		}
	}
	// An on-demand table with a maximum write throughput gets half of it.
	s := keySchema{OnDemand: true, WriteCapacity: 3000}
	if r, why := s.autoRate(); r != 1500 || !strings.Contains(why, "on-demand table's maximum of 3000") {
		t.Errorf("on-demand with a maximum: %g (%s)", r, why)
	}
	if o := DefaultOptions(); o.Rate != AutoRate || o.Validate() != nil {
		t.Errorf("default Rate %g (Validate %v), want AutoRate", o.Rate, o.Validate())
	}
}
