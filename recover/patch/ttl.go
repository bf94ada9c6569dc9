package patch

import (
	"context"
	"fmt"
	"math/big"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/ddbrewind/rewind"
)

// ttlDescriber is the optional part of a Client that reads the table's
// TTL setting. A client without it (a test fake) patches without
// ActionExpired, as a table without TTL does.
type ttlDescriber interface {
	DescribeTimeToLive(ctx context.Context, in *dynamodb.DescribeTimeToLiveInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTimeToLiveOutput, error)
}

// productionTTL returns the production table's TTL attribute when TTL is
// ENABLED (or ENABLING: items may already be deleted), "" otherwise. A
// failure to read it is a warning, not an error: the patch then treats
// expired items as any other (it may put back an item TTL deleted).
func productionTTL(ctx context.Context, client Client, table string, opts []func(*dynamodb.Options)) (attr, warning string) {
	d, ok := client.(ttlDescriber)
	if !ok {
		return "", ""
	}
	out, err := d.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(table)}, opts...)
	if err != nil {
		return "", fmt.Sprintf("the TTL setting of %s could not be read (%v): items whose TTL has passed are compared as any other, and a patch may put back an item DynamoDB's TTL deleted", table, err)
	}
	desc := out.TimeToLiveDescription
	if desc == nil || desc.AttributeName == nil {
		return "", ""
	}
	switch desc.TimeToLiveStatus {
	case types.TimeToLiveStatusEnabled, types.TimeToLiveStatusEnabling:
		return *desc.AttributeName, ""
	}
	return "", ""
}

// ttlPassed reports whether item's TTL attribute attr holds a time before
// now. DynamoDB's TTL reads a Number of seconds since the Unix epoch and
// ignores an item whose attribute is missing or of another type; so does
// this.
func ttlPassed(item rewind.Item, attr string, now time.Time) bool {
	if item == nil || attr == "" {
		return false
	}
	n, ok := item[attr].(*types.AttributeValueMemberN)
	if !ok {
		return false
	}
	v, ok := new(big.Float).SetString(n.Value)
	if !ok {
		return false
	}
	return v.Cmp(new(big.Float).SetInt64(now.Unix())) < 0
}
