// Package traffic writes realistic multi-tenant traffic to a DynamoDB table
// and keeps the ground truth: every change it made, with the old and new
// images DynamoDB returned. Integration tests and the drill compare what
// rewind captured, indexed or restored against it.
package traffic

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/ddbrewind/rewind"
)

// Change is one write the generator made that changed an item, so one
// stream record.
type Change struct {
	Seq      int // order of the write
	Action   rewind.Action
	Tenant   string
	Key      rewind.Key
	Old, New rewind.Item
	At       time.Time // wall clock just before the write
}

// API is the part of the DynamoDB client the generator uses.
type API interface {
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
}

var _ API = (*dynamodb.Client)(nil)

// Generator writes traffic to one table keyed pk (S) = "TENANT#<tenant>",
// sk (S) = "ORDER#<n>".
type Generator struct {
	API     API
	Table   string
	Tenants []string
	// Attrs are extra attributes set on every write (a deploy version,
	// say).
	Attrs rewind.Item
	// TTLFraction of inserted items get an expiresAt in the past, so
	// DynamoDB's TTL process deletes them.
	TTLFraction float64

	rng     *rand.Rand
	live    map[string]rewind.Item // by canonical key
	keys    map[string][]rewind.Key
	next    map[string]int
	Changes []Change
}

// New returns a generator with a fixed seed.
func New(api API, table string, tenants []string, seed uint64) *Generator {
	return &Generator{
		API: api, Table: table, Tenants: tenants,
		rng:  rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		live: map[string]rewind.Item{}, keys: map[string][]rewind.Key{}, next: map[string]int{},
	}
}

// TenantKey is the partition key value for a tenant.
func TenantKey(tenant string) string { return "TENANT#" + tenant }

// TenantRegex extracts the tenant from the partition key.
const TenantRegex = `^TENANT#(.+)$`

// Live returns the items the generator believes exist, by canonical key.
func (g *Generator) Live() map[string]rewind.Item { return g.live }

// Run makes n changes: inserts, updates and deletes, over the tenants.
func (g *Generator) Run(ctx context.Context, n int) error {
	for i := 0; i < n; i++ {
		tenant := g.Tenants[g.rng.IntN(len(g.Tenants))]
		keys := g.keys[tenant]
		var err error
		switch r := g.rng.IntN(10); {
		case len(keys) < 3 || r < 4:
			err = g.Insert(ctx, tenant)
		case r < 8:
			err = g.Update(ctx, keys[g.rng.IntN(len(keys))])
		default:
			err = g.Delete(ctx, keys[g.rng.IntN(len(keys))])
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (g *Generator) item(tenant string, n int) rewind.Item {
	item := rewind.Item{
		"pk":     &types.AttributeValueMemberS{Value: TenantKey(tenant)},
		"sk":     &types.AttributeValueMemberS{Value: fmt.Sprintf("ORDER#%06d", n)},
		"status": &types.AttributeValueMemberS{Value: "new"},
		"amount": &types.AttributeValueMemberN{Value: strconv.Itoa(g.rng.IntN(100000)) + "." + strconv.Itoa(g.rng.IntN(100))},
		"big":    &types.AttributeValueMemberN{Value: "1234567890123456789012345678901234567" + strconv.Itoa(g.rng.IntN(10))},
		"blob":   &types.AttributeValueMemberB{Value: []byte{byte(n), 0, 255, byte(g.rng.IntN(256))}},
		"tags":   &types.AttributeValueMemberSS{Value: []string{"a", "t" + strconv.Itoa(g.rng.IntN(5))}},
		"scores": &types.AttributeValueMemberNS{Value: []string{"1", "2.5", strconv.Itoa(100 + g.rng.IntN(100))}},
		"bins":   &types.AttributeValueMemberBS{Value: [][]byte{{1}, {2, byte(g.rng.IntN(256))}}},
		"lines": &types.AttributeValueMemberL{Value: []types.AttributeValue{
			&types.AttributeValueMemberM{Value: rewind.Item{
				"sku": &types.AttributeValueMemberS{Value: "sku-" + strconv.Itoa(g.rng.IntN(1000))},
				"qty": &types.AttributeValueMemberN{Value: strconv.Itoa(1 + g.rng.IntN(5))},
			}},
			&types.AttributeValueMemberNULL{Value: true},
		}},
		"paid":  &types.AttributeValueMemberBOOL{Value: false},
		"note":  &types.AttributeValueMemberS{Value: ""},
		"count": &types.AttributeValueMemberN{Value: "0"},
	}
	if g.TTLFraction > 0 && g.rng.Float64() < g.TTLFraction {
		item["expiresAt"] = &types.AttributeValueMemberN{Value: strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10)}
	}
	for k, v := range g.Attrs {
		item[k] = v
	}
	return item
}

// Insert puts a new item for tenant.
func (g *Generator) Insert(ctx context.Context, tenant string) error {
	n := g.next[tenant]
	g.next[tenant]++
	item := g.item(tenant, n)
	key, err := rewind.KeyFromItemSchema(item, "pk", "sk")
	if err != nil {
		return err
	}
	at := time.Now()
	if _, err := g.API.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:           &g.Table,
		Item:                item,
		ConditionExpression: aws.String("attribute_not_exists(pk)"),
	}); err != nil {
		return fmt.Errorf("insert %s: %w", key, err)
	}
	g.keys[tenant] = append(g.keys[tenant], key)
	g.live[string(key.Encode())] = item
	g.record(rewind.ActionInsert, tenant, key, nil, item, at)
	return nil
}

// Update changes an existing item's status and counter.
func (g *Generator) Update(ctx context.Context, key rewind.Key) error {
	expr := "SET #s = :s, #c = #c + :one, paid = :p"
	values := map[string]types.AttributeValue{
		":s":   &types.AttributeValueMemberS{Value: []string{"new", "paid", "shipped", "refunded"}[g.rng.IntN(4)]},
		":one": &types.AttributeValueMemberN{Value: "1"},
		":p":   &types.AttributeValueMemberBOOL{Value: g.rng.IntN(2) == 0},
	}
	names := map[string]string{"#s": "status", "#c": "count"}
	i := 0
	for k, v := range g.Attrs {
		ph := fmt.Sprintf("#a%d", i)
		names[ph] = k
		values[fmt.Sprintf(":a%d", i)] = v
		expr += fmt.Sprintf(", %s = :a%d", ph, i)
		i++
	}
	at := time.Now()
	out, err := g.API.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &g.Table,
		Key:                       key.Item(),
		UpdateExpression:          &expr,
		ConditionExpression:       aws.String("attribute_exists(pk)"),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
		ReturnValues:              types.ReturnValueAllNew,
	})
	if err != nil {
		return fmt.Errorf("update %s: %w", key, err)
	}
	id := string(key.Encode())
	old := g.live[id]
	g.live[id] = out.Attributes
	tenant := tenantOf(key)
	g.record(rewind.ActionModify, tenant, key, old, out.Attributes, at)
	return nil
}

// Delete removes an existing item.
func (g *Generator) Delete(ctx context.Context, key rewind.Key) error {
	at := time.Now()
	out, err := g.API.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:    &g.Table,
		Key:          key.Item(),
		ReturnValues: types.ReturnValueAllOld,
	})
	if err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	tenant := tenantOf(key)
	id := string(key.Encode())
	delete(g.live, id)
	ks := g.keys[tenant]
	for i := range ks {
		if ks[i].Equal(key) {
			g.keys[tenant] = append(ks[:i:i], ks[i+1:]...)
			break
		}
	}
	if out.Attributes != nil {
		g.record(rewind.ActionRemove, tenant, key, out.Attributes, nil, at)
	}
	return nil
}

func (g *Generator) record(a rewind.Action, tenant string, key rewind.Key, old, new rewind.Item, at time.Time) {
	g.Changes = append(g.Changes, Change{Seq: len(g.Changes), Action: a, Tenant: tenant, Key: key, Old: old, New: new, At: at})
}

func tenantOf(k rewind.Key) string {
	a, _ := k.Get("pk")
	if len(a.Value) > len("TENANT#") {
		return a.Value[len("TENANT#"):]
	}
	return ""
}
