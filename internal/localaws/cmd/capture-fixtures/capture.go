package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/ddbrewind/rewind/internal/localaws/streampoller"
)

// Fixture is one captured Lambda payload.
type Fixture struct {
	// Name is the file name without .json.
	Name    string
	Payload []byte
}

// scenario writes to one table and names the payloads it produces.
type scenario struct {
	name   string
	table  *dynamodb.CreateTableInput
	ttlOn  string // attribute to enable TTL on, if any
	writes func(ctx context.Context, c *dynamodb.Client, table string) error
	// ttl, when set, drains the writes first and then waits for the TTL
	// deletes; only those are saved.
	ttl bool
}

// Options tunes Capture.
type Options struct {
	// TTLWait bounds the wait for DynamoDB Local's TTL sweep; 0 skips the
	// TTL scenario.
	TTLWait time.Duration
	// Logf receives progress.
	Logf func(format string, args ...any)
}

// Capture runs every scenario against the DynamoDB behind db and streams
// and returns the Lambda payloads the stream poller builds, in scenario
// order.
func Capture(ctx context.Context, db *dynamodb.Client, streams *dynamodbstreams.Client, opt Options) ([]Fixture, error) {
	if opt.Logf == nil {
		opt.Logf = func(string, ...any) {}
	}
	var out []Fixture
	for _, sc := range scenarios() {
		if sc.ttl && opt.TTLWait == 0 {
			opt.Logf("%s: skipped (TTL wait is 0)", sc.name)
			continue
		}
		fx, err := runScenario(ctx, db, streams, sc, opt)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", sc.name, err)
		}
		out = append(out, fx...)
	}
	return out, nil
}

func runScenario(ctx context.Context, db *dynamodb.Client, streams *dynamodbstreams.Client, sc scenario, opt Options) ([]Fixture, error) {
	created, err := db.CreateTable(ctx, sc.table)
	if err != nil {
		return nil, fmt.Errorf("CreateTable: %w", err)
	}
	table := aws.ToString(sc.table.TableName)
	if sc.ttlOn != "" {
		if _, err := db.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
			TableName:               aws.String(table),
			TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String(sc.ttlOn), Enabled: aws.Bool(true)},
		}); err != nil {
			return nil, fmt.Errorf("UpdateTimeToLive: %w", err)
		}
	}
	if err := sc.writes(ctx, db, table); err != nil {
		return nil, err
	}
	p, err := streampoller.New(streampoller.Config{
		StreamARN: aws.ToString(created.TableDescription.LatestStreamArn),
		Streams:   streams,
		Invoker:   streampoller.InvokerFunc(func(context.Context, []byte) ([]byte, error) { return []byte(`{"batchItemFailures":[]}`), nil }),
		BatchSize: 1000,
	})
	if err != nil {
		return nil, err
	}
	if _, err := p.PollOnce(ctx); err != nil {
		return nil, err
	}
	skip := 0
	if sc.ttl {
		skip = len(p.Payloads())
		begin := time.Now()
		deadline := time.Now().Add(opt.TTLWait)
		want := expiredItems
		got := 0
		for got < want {
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("%d of %d TTL deletes after %v", got, want, opt.TTLWait)
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(2 * time.Second):
			}
			stats, err := p.PollOnce(ctx)
			if err != nil {
				return nil, err
			}
			got += stats.Delivered
		}
		opt.Logf("%s: TTL deleted %d items after %v", sc.name, got, time.Since(begin).Round(time.Second))
	}
	var out []Fixture
	for i, payload := range p.Payloads()[skip:] {
		name := sc.name
		if i > 0 {
			name += "-" + strconv.Itoa(i+1)
		}
		var pretty bytes.Buffer
		if err := json.Indent(&pretty, payload, "", "  "); err != nil {
			return nil, fmt.Errorf("payload is not JSON: %w", err)
		}
		pretty.WriteByte('\n')
		out = append(out, Fixture{Name: name, Payload: pretty.Bytes()})
		opt.Logf("%s: %d bytes", name, pretty.Len())
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no payloads")
	}
	return out, nil
}

var (
	s = func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	n = func(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }
	b = func(v ...byte) types.AttributeValue {
		return &types.AttributeValueMemberB{Value: append([]byte{}, v...)}
	}
	null = &types.AttributeValueMemberNULL{Value: true}
)

// everyType is an item with an attribute of every type and the edge cases
// of each: numbers at DynamoDB's precision and range limits, empty
// strings and binaries, sets, nested and empty lists and maps.
func everyType(pk types.AttributeValue, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		"pk":        pk,
		"sk":        n(sk),
		"str":       s(`héllo "quoted" <tag> & ünïcode 🚀 \ back\slash`),
		"emptyStr":  s(""),
		"int":       n("42"),
		"negDec":    n("-123.4560"),
		"big38":     n("12345678901234567890123456789012345678"),
		"negBig38":  n("-0.12345678901234567890123456789012345678"),
		"tiny":      n("1E-130"),
		"huge":      n("9.9999999999999999999999999999999999999E+125"),
		"bin":       b(0x00, 0x01, 0xfe, 0xff, 0x80, 'r', 'w'),
		"emptyBin":  b(),
		"yes":       &types.AttributeValueMemberBOOL{Value: true},
		"no":        &types.AttributeValueMemberBOOL{Value: false},
		"nothing":   null,
		"strSet":    &types.AttributeValueMemberSS{Value: []string{"red", "green", "blue"}},
		"numSet":    &types.AttributeValueMemberNS{Value: []string{"1", "-2.5", "3e10", "0.000"}},
		"binSet":    &types.AttributeValueMemberBS{Value: [][]byte{{0x01, 0x02}, {0xff}}},
		"emptyList": &types.AttributeValueMemberL{Value: []types.AttributeValue{}},
		"emptyMap":  &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{}},
		"list": &types.AttributeValueMemberL{Value: []types.AttributeValue{
			s("x"), n("1"), null, &types.AttributeValueMemberBOOL{Value: true}, b(0xca, 0xfe),
			&types.AttributeValueMemberL{Value: []types.AttributeValue{s("inner")}},
			&types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"k": s("v")}},
		}},
		"map": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
			"nested": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
				"deep": &types.AttributeValueMemberL{Value: []types.AttributeValue{
					&types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"leaf": n("0.001")}},
				}},
			}},
			"with space": s("ok"),
		}},
	}
}

// compositeWrites inserts, modifies (update and overwrite), rewrites
// unchanged and removes items in a table keyed pk (S) and sk (N).
func compositeWrites(ctx context.Context, c *dynamodb.Client, table string) error {
	pk := s("TENANT#t1#ORDER#42")
	steps := []func() error{
		func() error { // INSERT of every type
			_, err := c.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: everyType(pk, "1")})
			return err
		},
		func() error { // INSERT of a second item, with a negative decimal sort key
			_, err := c.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: map[string]types.AttributeValue{
				"pk": s("TENANT#t2#ORDER#7"), "sk": n("-1.5"), "status": s("new"),
			}})
			return err
		},
		func() error { // MODIFY by UpdateItem: set, increment, remove, add to and delete from sets
			_, err := c.UpdateItem(ctx, &dynamodb.UpdateItemInput{
				TableName:        aws.String(table),
				Key:              map[string]types.AttributeValue{"pk": pk, "sk": n("1")},
				UpdateExpression: aws.String("SET #str = :s, #int = #int + :one, #map.nested.deep[0].leaf = :leaf REMOVE nothing, emptyStr ADD strSet :more DELETE numSet :gone"),
				ExpressionAttributeNames: map[string]string{
					"#int": "int",
					"#str": "str",
					"#map": "map",
				},
				ExpressionAttributeValues: map[string]types.AttributeValue{
					":s":    s("updated"),
					":one":  n("1"),
					":leaf": n("-0.002"),
					":more": &types.AttributeValueMemberSS{Value: []string{"purple"}},
					":gone": &types.AttributeValueMemberNS{Value: []string{"1"}},
				},
			})
			return err
		},
		func() error { // no change: DynamoDB writes no stream record
			_, err := c.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: map[string]types.AttributeValue{
				"pk": s("TENANT#t2#ORDER#7"), "sk": n("-1.5"), "status": s("new"),
			}})
			return err
		},
		func() error { // MODIFY by PutItem overwriting the whole item
			_, err := c.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: map[string]types.AttributeValue{
				"pk": s("TENANT#t2#ORDER#7"), "sk": n("-1.5"), "status": s("shipped"), "carrier": s("ups"),
			}})
			return err
		},
		func() error { // REMOVE
			_, err := c.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(table), Key: map[string]types.AttributeValue{"pk": pk, "sk": n("1")}})
			return err
		},
		func() error { // a delete of a missing item: no stream record
			_, err := c.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(table), Key: map[string]types.AttributeValue{"pk": pk, "sk": n("404")}})
			return err
		},
		func() error { // two items in one transaction
			_, err := c.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
				{Put: &types.Put{TableName: aws.String(table), Item: map[string]types.AttributeValue{"pk": s("TENANT#t3#ORDER#1"), "sk": n("1"), "v": n("1")}}},
				{Delete: &types.Delete{TableName: aws.String(table), Key: map[string]types.AttributeValue{"pk": s("TENANT#t2#ORDER#7"), "sk": n("-1.5")}}},
			}})
			return err
		},
	}
	for i, step := range steps {
		if err := step(); err != nil {
			return fmt.Errorf("write %d: %w", i+1, err)
		}
	}
	return nil
}

// binaryKeyWrites writes to a table keyed by a binary partition key only.
func binaryKeyWrites(ctx context.Context, c *dynamodb.Client, table string) error {
	keys := [][]byte{{0x00}, {0xff, 0xfe, 0x00, 0x80}, []byte("TENANT#t1#plain ascii")}
	for i, k := range keys {
		if _, err := c.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: map[string]types.AttributeValue{
			"id": b(k...), "seq": n(strconv.Itoa(i)), "payload": b(bytes.Repeat([]byte{byte(i)}, 3)...),
		}}); err != nil {
			return err
		}
	}
	if _, err := c.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(table),
		Key:                       map[string]types.AttributeValue{"id": b(keys[1]...)},
		UpdateExpression:          aws.String("SET payload = :p, tags = :t"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": b(), ":t": &types.AttributeValueMemberBS{Value: [][]byte{{0}, {1}}}},
	}); err != nil {
		return err
	}
	_, err := c.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{
		table: {
			{DeleteRequest: &types.DeleteRequest{Key: map[string]types.AttributeValue{"id": b(keys[0]...)}}},
			{PutRequest: &types.PutRequest{Item: map[string]types.AttributeValue{"id": b('n', 'e', 'w'), "seq": n("9")}}},
		},
	}})
	return err
}

// expiredItems is how many items ttlWrites writes already expired.
const expiredItems = 2

// ttlWrites writes items whose TTL has passed, one that has not, and one
// without the attribute.
func ttlWrites(ctx context.Context, c *dynamodb.Client, table string) error {
	past := strconv.FormatInt(time.Now().Add(-48*time.Hour).Unix(), 10)
	future := strconv.FormatInt(time.Now().Add(30*24*time.Hour).Unix(), 10)
	items := []map[string]types.AttributeValue{
		{"pk": s("TENANT#t1#SESSION#a"), "sk": n("1"), "expiresAt": n(past), "data": s("expired")},
		{"pk": s("TENANT#t2#SESSION#b"), "sk": n("2"), "expiresAt": n(past), "data": &types.AttributeValueMemberSS{Value: []string{"x", "y"}}},
		{"pk": s("TENANT#t1#SESSION#c"), "sk": n("3"), "expiresAt": n(future), "data": s("alive")},
		{"pk": s("TENANT#t1#SESSION#d"), "sk": n("4"), "data": s("no ttl")},
	}
	for _, it := range items {
		if _, err := c.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: it}); err != nil {
			return err
		}
	}
	return nil
}

func compositeTable(name string, view types.StreamViewType) *dynamodb.CreateTableInput {
	return &dynamodb.CreateTableInput{
		TableName: aws.String(name),
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String("sk"), AttributeType: types.ScalarAttributeTypeN},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String("sk"), KeyType: types.KeyTypeRange},
		},
		BillingMode:         types.BillingModePayPerRequest,
		StreamSpecification: &types.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: view},
	}
}

func scenarios() []scenario {
	var out []scenario
	for _, view := range []types.StreamViewType{
		types.StreamViewTypeKeysOnly, types.StreamViewTypeNewImage,
		types.StreamViewTypeOldImage, types.StreamViewTypeNewAndOldImages,
	} {
		slug := strings.ReplaceAll(strings.ToLower(string(view)), "_", "-")
		out = append(out, scenario{
			name:   "ddblocal-" + slug,
			table:  compositeTable("orders-"+slug, view),
			writes: compositeWrites,
		})
	}
	out = append(out, scenario{
		name: "ddblocal-binary-key",
		table: &dynamodb.CreateTableInput{
			TableName:            aws.String("blobs"),
			AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: types.ScalarAttributeTypeB}},
			KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: types.KeyTypeHash}},
			BillingMode:          types.BillingModePayPerRequest,
			StreamSpecification:  &types.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: types.StreamViewTypeNewAndOldImages},
		},
		writes: binaryKeyWrites,
	})
	out = append(out, scenario{
		name:   "ddblocal-ttl-expiry",
		table:  compositeTable("sessions", types.StreamViewTypeNewAndOldImages),
		ttlOn:  "expiresAt",
		writes: ttlWrites,
		ttl:    true,
	})
	return out
}
