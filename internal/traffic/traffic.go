// Package traffic writes realistic multi-tenant traffic to a DynamoDB table
// and keeps the ground truth: every change it made, with the old and new
// images DynamoDB returned. Integration tests and the drill compare what
// rewind captured, indexed or restored against it.
package traffic

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
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
	// NoDeletes lists tenants whose traffic Run makes no deletes for.
	NoDeletes map[string]bool
	// Allow, when set, is asked before each write in Run, as an
	// application asks its read-only guard; a refused write is counted in
	// Refused and not made.
	Allow   func(ctx context.Context, tenant string) bool
	Refused int

	rng     *rand.Rand
	live    map[string]rewind.Item  // by canonical key
	keys    map[string][]rewind.Key // keys Run may touch, per tenant
	avoided map[string]bool         // keys Run leaves alone (see Avoid)
	next    map[string]int
	Changes []Change
	// expiring holds the last state of items with an expiresAt, which
	// DynamoDB's TTL process may delete at any time.
	expiring map[string]rewind.Item
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
		if g.Allow != nil && !g.Allow(ctx, tenant) {
			g.Refused++
			continue
		}
		keys := g.keys[tenant]
		var err error
		switch r := g.rng.IntN(10); {
		case len(keys) < 3 || r < 4:
			err = g.Insert(ctx, tenant)
		case r < 8 || g.NoDeletes[tenant]:
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
	if !g.avoided[string(key.Encode())] {
		g.keys[tenant] = append(g.keys[tenant], key)
	}
	g.live[string(key.Encode())] = item
	g.record(rewind.ActionInsert, tenant, key, nil, item, at)
	return nil
}

// Keys returns the keys of tenant's live items that Run may still touch.
func (g *Generator) Keys(tenant string) []rewind.Key { return slices.Clone(g.keys[tenant]) }

// Avoid makes Run leave keys alone from now on, so a test can tell what
// the later traffic did from what happened to those keys.
func (g *Generator) Avoid(keys ...rewind.Key) {
	if g.avoided == nil {
		g.avoided = map[string]bool{}
	}
	for _, k := range keys {
		g.avoided[string(k.Encode())] = true
		tenant := tenantOf(k)
		g.keys[tenant] = slices.DeleteFunc(g.keys[tenant], k.Equal)
	}
}

// Bug is what a bad deploy did to one tenant: the items it overwrote or
// deleted, and the junk items it created.
type Bug struct {
	Modified, Deleted, Created []rewind.Key
}

// Damaged lists every key the bug touched.
func (b Bug) Damaged() []rewind.Key {
	return slices.Concat(b.Modified, b.Deleted, b.Created)
}

// Bug plays a bad deploy on tenant: it overwrites attributes of modify
// items (marking them with attrs, say deployVersion), deletes del items
// and creates junk junk items (also marked), then makes Run leave all of
// them alone. Every write is recorded as a change.
//
// The bug leaves items with an expiresAt alone and gives its junk none:
// DynamoDB's TTL process may delete such an item at any moment (DynamoDB
// Local sweeps every few seconds), so whether the patch later finds it in
// production, or finds it gone between its read and its conditional
// write, would depend on timing, and the drill's counts with it.
func (g *Generator) Bug(ctx context.Context, tenant string, modify, del, junk int, attrs rewind.Item) (Bug, error) {
	var b Bug
	keys := slices.DeleteFunc(g.Keys(tenant), func(k rewind.Key) bool {
		_, expiring := g.live[string(k.Encode())]["expiresAt"]
		return expiring
	})
	g.rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	if len(keys) < modify+del {
		return b, fmt.Errorf("tenant %s has %d items; the bug needs %d", tenant, len(keys), modify+del)
	}
	for _, k := range keys[:modify] {
		item := maps.Clone(g.live[string(k.Encode())])
		item["status"] = &types.AttributeValueMemberS{Value: "cancelled"}
		item["amount"] = &types.AttributeValueMemberN{Value: "0"}
		delete(item, "lines")
		for n, v := range attrs {
			item[n] = v
		}
		at := time.Now()
		out, err := g.API.PutItem(ctx, &dynamodb.PutItemInput{TableName: &g.Table, Item: item, ReturnValues: types.ReturnValueAllOld})
		if err != nil {
			return b, fmt.Errorf("bug: overwrite %s: %w", k, err)
		}
		if out.Attributes == nil { // expired by TTL meanwhile: the put created it
			g.record(rewind.ActionInsert, tenant, k, nil, item, at)
		} else {
			g.record(rewind.ActionModify, tenant, k, out.Attributes, item, at)
		}
		g.live[string(k.Encode())] = item
		b.Modified = append(b.Modified, k)
	}
	for _, k := range keys[modify : modify+del] {
		if err := g.Delete(ctx, k); err != nil {
			return b, fmt.Errorf("bug: %w", err)
		}
		b.Deleted = append(b.Deleted, k)
	}
	saved, savedTTL := g.Attrs, g.TTLFraction
	g.Attrs, g.TTLFraction = attrs, 0
	for i := 0; i < junk; i++ {
		n := g.next[tenant]
		if err := g.Insert(ctx, tenant); err != nil {
			g.Attrs, g.TTLFraction = saved, savedTTL
			return b, fmt.Errorf("bug: %w", err)
		}
		b.Created = append(b.Created, keyFor(tenant, n))
	}
	g.Attrs, g.TTLFraction = saved, savedTTL
	g.Avoid(b.Damaged()...)
	return b, nil
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
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		// DynamoDB's TTL process deleted it first.
		g.forget(key)
		return nil
	}
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
	g.forget(key)
	if out.Attributes != nil {
		g.record(rewind.ActionRemove, tenantOf(key), key, out.Attributes, nil, at)
	}
	return nil
}

// forget drops a key the generator will not touch again: deleted, or
// found deleted by TTL (its last state stays in Expiring, if it had one).
func (g *Generator) forget(key rewind.Key) {
	tenant := tenantOf(key)
	delete(g.live, string(key.Encode()))
	ks := g.keys[tenant]
	for i := range ks {
		if ks[i].Equal(key) {
			g.keys[tenant] = append(ks[:i:i], ks[i+1:]...)
			break
		}
	}
}

func (g *Generator) record(a rewind.Action, tenant string, key rewind.Key, old, new rewind.Item, at time.Time) {
	g.Changes = append(g.Changes, Change{Seq: len(g.Changes), Action: a, Tenant: tenant, Key: key, Old: old, New: new, At: at})
	id := string(key.Encode())
	if _, ok := new["expiresAt"]; ok {
		if g.expiring == nil {
			g.expiring = map[string]rewind.Item{}
		}
		g.expiring[id] = new
	} else {
		delete(g.expiring, id)
	}
}

// Compare checks captured events of table against the changes made: every
// change captured once, in order per item, with its action, tenant and
// images. The only other events allowed are TTL deletes of items the
// generator gave a past expiresAt, carrying the item's last state, after
// which the item has no changes. It returns the first difference.
func (g *Generator) Compare(table string, events []rewind.ChangeEvent) error {
	byItem := map[string][]rewind.ChangeEvent{}
	seen := map[string]bool{}
	for _, ev := range events {
		if ev.DecodeError != "" {
			return fmt.Errorf("event %s: undecodable: %s\nrecord: %s", ev.EventID, ev.DecodeError, ev.Raw)
		}
		if seen[ev.EventID] {
			return fmt.Errorf("event %s captured twice", ev.EventID)
		}
		seen[ev.EventID] = true
		if ev.Table != table {
			return fmt.Errorf("event %s is for table %q, want %q", ev.EventID, ev.Table, table)
		}
		id := string(ev.Keys.Encode())
		byItem[id] = append(byItem[id], ev)
	}
	for _, evs := range byItem {
		slices.SortFunc(evs, func(a, b rewind.ChangeEvent) int {
			return rewind.CompareSequenceNumbers(a.SequenceNumber, b.SequenceNumber)
		})
	}
	next := map[string]int{}
	for _, c := range g.Changes {
		id := string(c.Key.Encode())
		i := next[id]
		next[id]++
		if i >= len(byItem[id]) {
			return fmt.Errorf("change %d (%s %s) not captured", c.Seq, c.Action, c.Key)
		}
		ev := byItem[id][i]
		if ev.Action != c.Action || ev.Tenant != c.Tenant || ev.TTLExpiry {
			return fmt.Errorf("change %d: captured %s (ttl %v) for tenant %q, made %s %s for %q", c.Seq, ev.Action, ev.TTLExpiry, ev.Tenant, c.Action, c.Key, c.Tenant)
		}
		if err := sameImages(ev, c.Old, c.New); err != nil {
			return fmt.Errorf("change %d (%s %s): %w", c.Seq, c.Action, c.Key, err)
		}
	}
	for id, evs := range byItem {
		extra := evs[next[id]:]
		if len(extra) == 0 {
			continue
		}
		ev := extra[0]
		last, ok := g.expiring[id]
		if len(extra) > 1 || !ev.TTLExpiry || ev.Action != rewind.ActionRemove || !ok {
			return fmt.Errorf("event %s (%s %s, ttl %v) matches no change made", ev.EventID, ev.Action, ev.Keys, ev.TTLExpiry)
		}
		if err := sameImages(ev, last, nil); err != nil {
			return fmt.Errorf("TTL delete %s: %w", ev.Keys, err)
		}
	}
	return nil
}

func sameImages(ev rewind.ChangeEvent, old, new rewind.Item) error {
	for _, im := range []struct {
		name string
		got  rewind.Image
		want rewind.Item
	}{{"old", ev.OldImage, old}, {"new", ev.NewImage, new}} {
		got, err := im.got.Item()
		if err != nil {
			return fmt.Errorf("%s image: %w", im.name, err)
		}
		if !rewind.EqualItems(got, im.want) {
			return fmt.Errorf("%s image\n got %s\nwant %s", im.name, im.got, rewind.ItemJSON(im.want))
		}
	}
	return nil
}

// keyFor is the key of tenant's n-th item.
func keyFor(tenant string, n int) rewind.Key {
	return rewind.Key{
		{Name: "pk", Type: 'S', Value: TenantKey(tenant)},
		{Name: "sk", Type: 'S', Value: fmt.Sprintf("ORDER#%06d", n)},
	}
}

func tenantOf(k rewind.Key) string {
	a, _ := k.Get("pk")
	if len(a.Value) > len("TENANT#") {
		return a.Value[len("TENANT#"):]
	}
	return ""
}
