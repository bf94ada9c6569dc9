package patch

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	"github.com/ddbrewind/rewind"
)

// Source gives the wanted state of items: what each impacted item should
// be once patched. The restored table is one (Table); the indexed change
// history is another (wired by the command line), which may be unable to
// tell some keys' state, as when an item's history does not reach back
// far enough.
type Source interface {
	// States returns the wanted state of each key, in the order of keys.
	// keys are distinct and at most 100.
	States(ctx context.Context, keys []rewind.Key) ([]State, error)
}

// State is the wanted state of one item as a Source gives it.
type State struct {
	// Item is the wanted item; nil where the item should not exist.
	Item rewind.Item
	// Unknown, when not empty, says why the source cannot tell the wanted
	// state. The patcher then leaves the key alone and lists it (action
	// "unknown"); it never guesses.
	Unknown string
}

// ItemReader reads items by key.
type ItemReader interface {
	BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
}

var _ ItemReader = (*dynamodb.Client)(nil)

// Table is a Source reading a DynamoDB table with consistent BatchGetItem
// calls. It is also how the patcher reads the production table.
type Table struct {
	Client ItemReader
	Name   string
	// Options are applied to every call (the patcher sets its retryer).
	Options []func(*dynamodb.Options)
	// MaxStalls is how many BatchGetItem rounds in a row may return nothing
	// but UnprocessedKeys before Get gives up. Default 12 (about a minute
	// of backoff).
	MaxStalls int
}

var _ Source = (*Table)(nil)

// NewTable returns a Source reading the table name through client.
func NewTable(client ItemReader, name string) *Table {
	return &Table{Client: client, Name: name}
}

// States reads the items (see Get); a table always knows its items'
// states.
func (t *Table) States(ctx context.Context, keys []rewind.Key) ([]State, error) {
	items, err := t.Get(ctx, keys)
	if err != nil {
		return nil, err
	}
	out := make([]State, len(items))
	for i, item := range items {
		out[i].Item = item
	}
	return out, nil
}

// Get reads the items with consistent reads, retrying UnprocessedKeys until
// every key is answered. A round that made progress (some keys answered,
// as when a response hits the 16 MB limit) is retried at once; a round that
// made none (throttling) backs off exponentially with full jitter.
func (t *Table) Get(ctx context.Context, keys []rewind.Key) ([]rewind.Item, error) {
	out := make([]rewind.Item, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	if len(keys) > maxBatch {
		return nil, fmt.Errorf("table %s: %d keys in one read; at most %d", t.Name, len(keys), maxBatch)
	}
	index := make(map[string]int, len(keys))
	pending := make([]map[string]types.AttributeValue, 0, len(keys))
	for i, k := range keys {
		enc := string(k.Encode())
		if _, dup := index[enc]; dup {
			return nil, fmt.Errorf("table %s: key %s twice in one read", t.Name, k)
		}
		index[enc] = i
		pending = append(pending, k.Item())
	}
	names := keys[0].Names()
	maxStalls := t.MaxStalls
	if maxStalls == 0 {
		maxStalls = 12
	}
	stalls := 0
	for len(pending) > 0 {
		res, err := t.Client.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{
			RequestItems: map[string]types.KeysAndAttributes{
				t.Name: {Keys: pending, ConsistentRead: aws.Bool(true)},
			},
		}, t.Options...)
		if err != nil {
			return nil, fmt.Errorf("table %s: read %d keys: %w", t.Name, len(pending), err)
		}
		got := res.Responses[t.Name]
		for _, item := range got {
			k, err := rewind.KeyFromItemSchema(item, names...)
			if err != nil {
				return nil, fmt.Errorf("table %s: item returned by BatchGetItem: %w", t.Name, err)
			}
			i, ok := index[string(k.Encode())]
			if !ok {
				return nil, fmt.Errorf("table %s: BatchGetItem returned key %s that was not asked for", t.Name, k)
			}
			out[i] = item
		}
		var next []map[string]types.AttributeValue
		if u, ok := res.UnprocessedKeys[t.Name]; ok {
			next = u.Keys
		}
		if len(got) == 0 && len(next) >= len(pending) {
			stalls++
			if stalls > maxStalls {
				return nil, fmt.Errorf("table %s: %d keys still unprocessed after %d rounds of backoff (the table is throttling reads)", t.Name, len(next), stalls-1)
			}
			if err := sleepBackoff(ctx, stalls); err != nil {
				return nil, err
			}
		} else {
			stalls = 0
		}
		pending = next
	}
	return out, nil
}

// sleepBackoff sleeps a random time up to 50 ms * 2^(attempt-1), capped at
// 5 s (exponential backoff, full jitter).
func sleepBackoff(ctx context.Context, attempt int) error {
	ceil := 50 * time.Millisecond << min(attempt-1, 7)
	ceil = min(ceil, 5*time.Second)
	d := time.Duration(rand.Int64N(int64(ceil)) + 1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// keySchema is a table's primary key: names in key order (HASH first) and
// their types, with the table's identity as DescribeTable gave it.
type keySchema struct {
	Table string // as the caller named it: a name or an ARN
	Call  string // as the patcher names it in its calls
	Names []string
	Types []byte // 'S', 'N' or 'B'

	Name   string // the table's name
	ARN    string
	ID     string
	Status string // ACTIVE, UPDATING, CREATING, ...

	// WriteCapacity is the table's provisioned write capacity units
	// (PROVISIONED), or the maximum write request units per second set on
	// an on-demand table (OnDemandThroughput); 0 when neither is.
	WriteCapacity int64
	// OnDemand is true for a PAY_PER_REQUEST table.
	OnDemand bool
}

// autoRate is the cap AutoRate gives writes to the table described by s,
// and a sentence saying why: half its write capacity, so that the
// application keeps the other half, or none when the table has no fixed
// capacity.
func (s keySchema) autoRate() (float64, string) {
	switch {
	case s.WriteCapacity > 0 && s.OnDemand:
		r := max(1, float64(s.WriteCapacity)/2)
		return r, fmt.Sprintf("%g writes/s (auto: half the on-demand table's maximum of %d write units/s)", r, s.WriteCapacity)
	case s.WriteCapacity > 0:
		r := max(1, float64(s.WriteCapacity)/2)
		return r, fmt.Sprintf("%g writes/s (auto: half the table's %d provisioned write capacity units)", r, s.WriteCapacity)
	}
	return NoRateLimit, "no cap (auto: an on-demand table without a maximum; the writes in flight back off when DynamoDB throttles)"
}

// sameTable reports whether s and o are one table, however each was
// spelled (name or ARN): by table ARN, and by table ID where both have one.
func (s keySchema) sameTable(o keySchema) bool {
	if s.ID != "" && o.ID != "" && s.ID == o.ID {
		return true
	}
	if s.ARN != "" && o.ARN != "" {
		return s.ARN == o.ARN
	}
	return s.Name == o.Name
}

// holds reports whether a key-set line naming table is for this table:
// its name, or the name or ARN it was given as.
func (s keySchema) holds(table string) bool {
	return table == s.Name || table == s.Table || (s.ARN != "" && table == s.ARN)
}

func (s keySchema) String() string {
	out := ""
	for i, n := range s.Names {
		if i > 0 {
			out += ", "
		}
		role := "partition key"
		if i == 1 {
			role = "sort key"
		}
		out += fmt.Sprintf("%s %q (%c)", role, n, s.Types[i])
	}
	return out
}

func (s keySchema) equal(o keySchema) bool {
	if len(s.Names) != len(o.Names) {
		return false
	}
	for i := range s.Names {
		if s.Names[i] != o.Names[i] || s.Types[i] != o.Types[i] {
			return false
		}
	}
	return true
}

// check reports why key does not fit the schema, or nil.
func (s keySchema) check(key rewind.Key) error {
	if len(key) != len(s.Names) {
		return fmt.Errorf("key %s has %d %s; table %s has %s", key, len(key), plural(len(key), "attribute", "attributes"), s.Table, s)
	}
	for i, n := range s.Names {
		a, ok := key.Get(n)
		if !ok {
			return fmt.Errorf("key %s has no attribute %q; table %s has %s", key, n, s.Table, s)
		}
		if a.Type != s.Types[i] {
			return fmt.Errorf("key %s: attribute %q is %c; table %s has %s", key, n, a.Type, s.Table, s)
		}
	}
	return nil
}

type describer interface {
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
}

// describeKeySchema describes table, a name or an ARN. DynamoDB takes a
// table ARN wherever it takes a name; an endpoint that does not (DynamoDB
// Local answers ValidationException) is asked for the ARN's table name
// instead, and the answer's ARN must be the one given. Call in the result
// is then what the patcher names the table in its calls.
func describeKeySchema(ctx context.Context, c describer, table string, opts ...func(*dynamodb.Options)) (keySchema, error) {
	out, call, err := DescribeTable(table, func(name string) (*dynamodb.DescribeTableOutput, error) {
		return c.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, opts...)
	})
	if err != nil {
		return keySchema{}, err
	}
	td := out.Table
	types := map[string]byte{}
	for _, d := range td.AttributeDefinitions {
		types[aws.ToString(d.AttributeName)] = string(d.AttributeType)[0]
	}
	s := keySchema{Table: table, Call: call, Name: aws.ToString(td.TableName), ARN: aws.ToString(td.TableArn),
		ID: aws.ToString(td.TableId), Status: string(td.TableStatus)}
	s.OnDemand = td.BillingModeSummary != nil && string(td.BillingModeSummary.BillingMode) == "PAY_PER_REQUEST"
	switch {
	case s.OnDemand && td.OnDemandThroughput != nil:
		s.WriteCapacity = max(0, aws.ToInt64(td.OnDemandThroughput.MaxWriteRequestUnits))
	case !s.OnDemand && td.ProvisionedThroughput != nil:
		s.WriteCapacity = aws.ToInt64(td.ProvisionedThroughput.WriteCapacityUnits)
		s.OnDemand = s.WriteCapacity == 0 // DynamoDB Local omits the billing mode of on-demand tables
	}
	if s.Name == "" {
		s.Name = table
	}
	for _, want := range []string{"HASH", "RANGE"} {
		for _, e := range td.KeySchema {
			if string(e.KeyType) == want {
				n := aws.ToString(e.AttributeName)
				s.Names = append(s.Names, n)
				s.Types = append(s.Types, types[n])
			}
		}
	}
	if len(s.Names) == 0 {
		return keySchema{}, fmt.Errorf("describe table %q: no key schema", table)
	}
	return s, nil
}

// DescribeTable describes the table spelled as a name or an ARN with
// describe (one DescribeTable call for the name it is given). An endpoint
// that does not take ARNs (DynamoDB Local answers ValidationException) is
// asked for the ARN's table name instead, and the answer's ARN must be
// the one given; call is then what to name the table in later calls. A
// table that does not exist is an error that says so.
func DescribeTable(spelled string, describe func(name string) (*dynamodb.DescribeTableOutput, error)) (out *dynamodb.DescribeTableOutput, call string, err error) {
	call = spelled
	out, err = describe(spelled)
	var ve smithy.APIError
	if name, ok := TableNameOfARN(spelled); ok && errors.As(err, &ve) && ve.ErrorCode() == "ValidationException" {
		out, err = describe(name)
		if err == nil && aws.ToString(out.Table.TableArn) != spelled {
			return nil, "", fmt.Errorf("table %q: this endpoint does not take ARNs, and its table %q has ARN %s, not that one", spelled, name, aws.ToString(out.Table.TableArn))
		}
		call = name
	}
	if err != nil {
		var nf *types.ResourceNotFoundException
		if errors.As(err, &nf) {
			return nil, "", fmt.Errorf("table %q does not exist (check the name and the region): %w", spelled, err)
		}
		return nil, "", fmt.Errorf("describe table %q: %w", spelled, err)
	}
	return out, call, nil
}

// TableNameOfARN returns NAME of arn:PARTITION:dynamodb:REGION:ACCOUNT:table/NAME.
func TableNameOfARN(s string) (string, bool) {
	parts := strings.SplitN(s, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "dynamodb" {
		return "", false
	}
	name, ok := strings.CutPrefix(parts[5], "table/")
	if !ok || name == "" || strings.Contains(name, "/") {
		return "", false
	}
	return name, true
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
