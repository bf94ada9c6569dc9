package diff

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ddbrewind/rewind/recover/patch"
)

// Client is the part of the DynamoDB API a diff calls; *dynamodb.Client
// has it.
type Client interface {
	DescribeTable(context.Context, *dynamodb.DescribeTableInput, ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	Scan(context.Context, *dynamodb.ScanInput, ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
}

var _ Client = (*dynamodb.Client)(nil)

// Table is one side of a diff as DescribeTable gave it.
type Table struct {
	// Spelled is the table as the caller named it: a name or an ARN.
	Spelled string
	// Name, ARN and ID identify the table.
	Name, ARN, ID string
	// KeyNames are the primary key's attributes, partition key first, and
	// KeyTypes their types ('S', 'N' or 'B').
	KeyNames []string
	KeyTypes []byte
	// ItemCount and SizeBytes are DynamoDB's figures, refreshed about
	// every six hours (DescribeTable documents them so): an estimate.
	ItemCount, SizeBytes int64

	call string // the TableName the Scans use
}

func (t Table) schema() string {
	var b strings.Builder
	for i, n := range t.KeyNames {
		if i > 0 {
			b.WriteString(", ")
		}
		role := "partition key"
		if i == 1 {
			role = "sort key"
		}
		fmt.Fprintf(&b, "%s %q (%c)", role, n, t.KeyTypes[i])
	}
	return b.String()
}

// sameTable reports whether two descriptions are of one table, however
// each was spelled: by table ID where both have one, else by ARN, else by
// name.
func (t Table) sameTable(o Table) bool {
	if t.ID != "" && o.ID != "" {
		return t.ID == o.ID
	}
	if t.ARN != "" && o.ARN != "" {
		return t.ARN == o.ARN
	}
	return t.Name == o.Name
}

func (t Table) sameSchema(o Table) bool {
	return strings.Join(t.KeyNames, "\x00") == strings.Join(o.KeyNames, "\x00") && string(t.KeyTypes) == string(o.KeyTypes)
}

// describe reads a table's identity, key schema and size. DynamoDB takes a
// table ARN wherever it takes a TableName; an endpoint that does not
// (DynamoDB Local) answers ValidationException, and the name inside the
// ARN is tried, checking that the ARN is that table's.
func describe(ctx context.Context, c Client, spelled string, o *Options, opts ...func(*dynamodb.Options)) (Table, error) {
	out, call, err := patch.DescribeTable(spelled, func(name string) (*dynamodb.DescribeTableOutput, error) {
		return describeOnce(ctx, c, name, o, opts...)
	})
	if err != nil {
		return Table{}, err
	}
	td := out.Table
	t := Table{Spelled: spelled, call: call, Name: aws.ToString(td.TableName), ARN: aws.ToString(td.TableArn), ID: aws.ToString(td.TableId),
		ItemCount: aws.ToInt64(td.ItemCount), SizeBytes: aws.ToInt64(td.TableSizeBytes)}
	if t.Name == "" {
		t.Name = spelled
	}
	typ := map[string]byte{}
	for _, d := range td.AttributeDefinitions {
		if s := string(d.AttributeType); s != "" {
			typ[aws.ToString(d.AttributeName)] = s[0]
		}
	}
	for _, want := range []types.KeyType{types.KeyTypeHash, types.KeyTypeRange} {
		for _, e := range td.KeySchema {
			if e.KeyType == want {
				n := aws.ToString(e.AttributeName)
				t.KeyNames = append(t.KeyNames, n)
				t.KeyTypes = append(t.KeyTypes, typ[n])
			}
		}
	}
	if len(t.KeyNames) == 0 {
		return Table{}, fmt.Errorf("describe table %q: no key schema in the answer", spelled)
	}
	return t, nil
}

func describeOnce(ctx context.Context, c Client, name string, o *Options, opts ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	ctx, cancel := context.WithTimeout(ctx, o.CallTimeout)
	defer cancel()
	return c.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, opts...)
}
