// Package patchtest builds the tables and items the patcher's tests and
// benchmarks use: random items of every DynamoDB type, a production table
// with its restored copy, damage of the kinds a bad deploy does, and exact
// comparison of whole tables.
//
// It talks to DynamoDB through the SDK only (never the local test stack
// directly), so it works against any endpoint.
package patchtest

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/ddbrewind/rewind"
)

// KeyNames are the key attributes of the tables CreateTable makes:
// partition key "pk" (S) and sort key "sk" (N).
var KeyNames = []string{"pk", "sk"}

// CreateTable creates an on-demand table with partition key pk (S) and sort
// key sk (N) and waits until it is active.
func CreateTable(ctx context.Context, c *dynamodb.Client, name string) error {
	return createTable(ctx, c, name, []types.AttributeDefinition{
		{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS},
		{AttributeName: aws.String("sk"), AttributeType: types.ScalarAttributeTypeN},
	}, []types.KeySchemaElement{
		{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash},
		{AttributeName: aws.String("sk"), KeyType: types.KeyTypeRange},
	})
}

// CreateTableHashOnly creates an on-demand table with only a partition key
// of the given name and type.
func CreateTableHashOnly(ctx context.Context, c *dynamodb.Client, name, pk string, typ types.ScalarAttributeType) error {
	return createTable(ctx, c, name, []types.AttributeDefinition{
		{AttributeName: aws.String(pk), AttributeType: typ},
	}, []types.KeySchemaElement{
		{AttributeName: aws.String(pk), KeyType: types.KeyTypeHash},
	})
}

func createTable(ctx context.Context, c *dynamodb.Client, name string, defs []types.AttributeDefinition, ks []types.KeySchemaElement) error {
	_, err := c.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		AttributeDefinitions: defs,
		KeySchema:            ks,
		BillingMode:          types.BillingModePayPerRequest,
	})
	if err != nil {
		return fmt.Errorf("create table %s: %w", name, err)
	}
	return dynamodb.NewTableExistsWaiter(c).Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, time.Minute)
}

// Key returns the key item for (pk, sk).
func Key(pk string, sk int) rewind.Item {
	return rewind.Item{
		"pk": &types.AttributeValueMemberS{Value: pk},
		"sk": &types.AttributeValueMemberN{Value: strconv.Itoa(sk)},
	}
}

// RandomItem returns an item with key and random attributes of every type:
// S (empty strings included), N (38 digits, negative, decimal), B, BOOL,
// NULL, SS, NS, BS, and L and M nested a few levels. pad, when positive,
// adds a binary attribute of that many bytes.
func RandomItem(rnd *rand.Rand, key rewind.Item, pad int) rewind.Item {
	item := rewind.Item{}
	for k, v := range key {
		item[k] = v
	}
	n := 3 + rnd.IntN(8)
	for i := range n {
		item[fmt.Sprintf("a%02d_%s", i, randWord(rnd, 3))] = RandomValue(rnd, 0)
	}
	// Always some of the tricky ones.
	item["n38"] = &types.AttributeValueMemberN{Value: RandomNumber(rnd)}
	item["empty"] = &types.AttributeValueMemberS{Value: ""}
	item["bin"] = &types.AttributeValueMemberB{Value: randBytes(rnd, 1+rnd.IntN(40))}
	if pad > 0 {
		item["pad"] = &types.AttributeValueMemberB{Value: randBytes(rnd, pad)}
	}
	return item
}

// RandomValue returns a random attribute value; depth bounds nesting.
func RandomValue(rnd *rand.Rand, depth int) types.AttributeValue {
	kinds := 10
	if depth >= 3 {
		kinds = 8 // no more L or M
	}
	switch rnd.IntN(kinds) {
	case 0:
		if rnd.IntN(5) == 0 {
			return &types.AttributeValueMemberS{Value: ""}
		}
		return &types.AttributeValueMemberS{Value: randText(rnd)}
	case 1:
		return &types.AttributeValueMemberN{Value: RandomNumber(rnd)}
	case 2:
		return &types.AttributeValueMemberB{Value: randBytes(rnd, rnd.IntN(30))}
	case 3:
		return &types.AttributeValueMemberBOOL{Value: rnd.IntN(2) == 0}
	case 4:
		return &types.AttributeValueMemberNULL{Value: true}
	case 5:
		return &types.AttributeValueMemberSS{Value: distinct(rnd, func() string { return randText(rnd) })}
	case 6:
		return &types.AttributeValueMemberNS{Value: distinctNumbers(rnd)}
	case 7:
		var bs [][]byte
		for _, s := range distinct(rnd, func() string { return string(randBytes(rnd, 1+rnd.IntN(8))) }) {
			bs = append(bs, []byte(s))
		}
		return &types.AttributeValueMemberBS{Value: bs}
	case 8:
		l := []types.AttributeValue{}
		for range rnd.IntN(4) {
			l = append(l, RandomValue(rnd, depth+1))
		}
		return &types.AttributeValueMemberL{Value: l}
	default:
		m := map[string]types.AttributeValue{}
		for range rnd.IntN(4) {
			m[randWord(rnd, 4)] = RandomValue(rnd, depth+1)
		}
		return &types.AttributeValueMemberM{Value: m}
	}
}

// RandomNumber returns a number DynamoDB accepts: up to 38 significant
// digits, negative or not, integer or decimal.
func RandomNumber(rnd *rand.Rand) string {
	var b strings.Builder
	if rnd.IntN(2) == 0 {
		b.WriteByte('-')
	}
	digits := 1 + rnd.IntN(38)
	if rnd.IntN(3) == 0 {
		digits = 38
	}
	b.WriteByte(byte('1' + rnd.IntN(9)))
	for range digits - 1 {
		b.WriteByte(byte('0' + rnd.IntN(10)))
	}
	s := b.String()
	if rnd.IntN(2) == 0 && digits > 1 {
		// Put a decimal point inside, never leaving a trailing zero that
		// DynamoDB would normalize away.
		neg := strings.HasPrefix(s, "-")
		d := strings.TrimPrefix(s, "-")
		i := 1 + rnd.IntN(len(d)-1)
		frac := strings.TrimRight(d[i:], "0")
		if frac != "" {
			d = d[:i] + "." + frac
		} else {
			d = d[:i]
		}
		s = d
		if neg {
			s = "-" + d
		}
	}
	return s
}

func distinct(rnd *rand.Rand, gen func() string) []string {
	n := 1 + rnd.IntN(4)
	seen := map[string]bool{}
	var out []string
	for len(out) < n {
		s := gen()
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func distinctNumbers(rnd *rand.Rand) []string {
	n := 1 + rnd.IntN(4)
	seen := map[string]bool{}
	var out []string
	for len(out) < n {
		s := RandomNumber(rnd)
		norm, _ := rewind.NormalizeNumber(s)
		if !seen[norm] {
			seen[norm] = true
			out = append(out, s)
		}
	}
	return out
}

const letters = "abcdefghijklmnopqrstuvwxyz"

func randWord(rnd *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = letters[rnd.IntN(len(letters))]
	}
	return string(b)
}

func randText(rnd *rand.Rand) string {
	words := []string{"ünïcödé", "日本語", "emoji 🎉", "quote\"s", "back\\slash", "tab\t", "line\nbreak", "<html>&amp;"}
	if rnd.IntN(3) == 0 {
		return words[rnd.IntN(len(words))]
	}
	return randWord(rnd, 1+rnd.IntN(12))
}

func randBytes(rnd *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rnd.IntN(256))
	}
	return b
}

// Put writes items with PutItem, several at once.
func Put(ctx context.Context, c *dynamodb.Client, table string, items []rewind.Item) error {
	sem := make(chan struct{}, 8)
	errs := make(chan error, len(items))
	for _, item := range items {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			_, err := c.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: item})
			if err != nil {
				err = fmt.Errorf("put %s into %s: %w", rewind.ItemJSON(item)[:min(80, len(rewind.ItemJSON(item)))], table, err)
			}
			errs <- err
		}()
	}
	for range items {
		if err := <-errs; err != nil {
			return err
		}
	}
	return nil
}

// Delete deletes the items with the given keys.
func Delete(ctx context.Context, c *dynamodb.Client, table string, keys []rewind.Item) error {
	for _, k := range keys {
		if _, err := c.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(table), Key: k}); err != nil {
			return fmt.Errorf("delete from %s: %w", table, err)
		}
	}
	return nil
}

// Scan returns every item of the table by canonical key encoding, read with
// consistent scans.
func Scan(ctx context.Context, c *dynamodb.Client, table string, keyNames ...string) (map[string]rewind.Item, error) {
	if len(keyNames) == 0 {
		keyNames = KeyNames
	}
	out := map[string]rewind.Item{}
	p := dynamodb.NewScanPaginator(c, &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("scan %s: %w", table, err)
		}
		for _, item := range page.Items {
			k, err := rewind.KeyFromItemSchema(item, keyNames...)
			if err != nil {
				return nil, err
			}
			out[string(k.Encode())] = item
		}
	}
	return out, nil
}

// Canonical returns the item as DynamoDB JSON with attribute names sorted
// and set elements sorted: the bytes two equal items share. DynamoDB does
// not promise an order for set elements; everything else is compared as
// the bytes DynamoDB returned.
func Canonical(item rewind.Item) []byte {
	if item == nil {
		return nil
	}
	return rewind.ItemJSON(sortSets(item))
}

func sortSets(item rewind.Item) rewind.Item {
	out := make(rewind.Item, len(item))
	for k, v := range item {
		out[k] = sortSetsAV(v)
	}
	return out
}

func sortSetsAV(av types.AttributeValue) types.AttributeValue {
	switch v := av.(type) {
	case *types.AttributeValueMemberSS:
		return &types.AttributeValueMemberSS{Value: slices.Sorted(slices.Values(v.Value))}
	case *types.AttributeValueMemberNS:
		return &types.AttributeValueMemberNS{Value: slices.Sorted(slices.Values(v.Value))}
	case *types.AttributeValueMemberBS:
		bs := slices.Clone(v.Value)
		slices.SortFunc(bs, bytes.Compare)
		return &types.AttributeValueMemberBS{Value: bs}
	case *types.AttributeValueMemberL:
		l := make([]types.AttributeValue, len(v.Value))
		for i, e := range v.Value {
			l[i] = sortSetsAV(e)
		}
		return &types.AttributeValueMemberL{Value: l}
	case *types.AttributeValueMemberM:
		return &types.AttributeValueMemberM{Value: sortSets(v.Value)}
	}
	return av
}

// DiffTables returns a line for every key whose item differs between want
// and got (by Canonical bytes), at most max lines.
func DiffTables(want, got map[string]rewind.Item, max int) []string {
	var out []string
	keys := make([]string, 0, len(want)+len(got))
	for k := range want {
		keys = append(keys, k)
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		w, g := Canonical(want[k]), Canonical(got[k])
		if bytes.Equal(w, g) {
			continue
		}
		key, _, _ := rewind.DecodeKey([]byte(k))
		out = append(out, fmt.Sprintf("key %s:\n  want %s\n  got  %s", key, short(w), short(g)))
		if len(out) >= max {
			break
		}
	}
	return out
}

func short(b []byte) string {
	if b == nil {
		return "(absent)"
	}
	if len(b) > 300 {
		return string(b[:300]) + fmt.Sprintf("... (%d bytes)", len(b))
	}
	return string(b)
}

// WriteKeySet writes a key set for table with the given keys, one line
// each, in the order given.
func WriteKeySet(path, table string, keys []rewind.Item) error {
	var b []byte
	for _, k := range keys {
		key, err := rewind.KeyFromItem(k)
		if err != nil {
			return err
		}
		e := rewind.KeySetEntry{Table: table, Key: key, Count: 1, Actions: []rewind.Action{rewind.ActionModify}}
		b = append(e.AppendJSON(b), '\n')
	}
	return os.WriteFile(path, b, 0o644)
}

// KeyOf returns the key item (pk, sk) of an item.
func KeyOf(item rewind.Item) rewind.Item {
	return rewind.Item{"pk": item["pk"], "sk": item["sk"]}
}

// EncodeKey returns the canonical encoding of an item's (pk, sk) key.
func EncodeKey(item rewind.Item) string {
	k, err := rewind.KeyFromItemSchema(item, KeyNames...)
	if err != nil {
		panic(err)
	}
	return string(k.Encode())
}

// B64 is base64 of b, for messages.
func B64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// ScenarioOptions shapes a Scenario.
type ScenarioOptions struct {
	Prod, Restored string // table names
	Items          int    // items in the restored table (and, before damage, production)
	Modify         int    // impacted items the bug modified
	Delete         int    // impacted items the bug deleted
	Junk           int    // items the bug created (absent from the restored table)
	Unchanged      int    // keys in the key set the bug did not change
	Absent         int    // keys in the key set that exist in neither table
	GoodWrites     int    // later, legitimate writes to items outside the key set
	BigItem        bool   // make one impacted item about 350 KB
	WideItem       bool   // give one impacted item (pk "t1#1") 300 more attributes, w000 to w299
	Seed           uint64
}

// Scenario is a production table damaged by a bad deploy, its restored
// copy, the key set of the impacted items and the state a correct patch
// leaves.
type Scenario struct {
	Opts ScenarioOptions
	// Keys is the key set, sorted by canonical key.
	Keys []rewind.Item
	// Restored, Damaged and Expected are whole tables by canonical key:
	// the restored copy, production after the damage, and production after
	// a correct patch. All are read back from DynamoDB.
	Restored, Damaged, Expected map[string]rewind.Item
}

// BuildScenario creates both tables, fills them, damages production and
// computes the expected state.
func BuildScenario(ctx context.Context, c *dynamodb.Client, o ScenarioOptions) (*Scenario, error) {
	rnd := rand.New(rand.NewPCG(o.Seed, 42))
	for _, t := range []string{o.Prod, o.Restored} {
		if err := CreateTable(ctx, c, t); err != nil {
			return nil, err
		}
	}
	items := make([]rewind.Item, o.Items)
	for i := range items {
		pad := 0
		if o.BigItem && i == 0 {
			pad = 350 << 10
		}
		items[i] = RandomItem(rnd, Key(fmt.Sprintf("t%d#%d", i%5, i), i), pad)
		if o.WideItem && i == 1 {
			for j := range 300 {
				items[i][fmt.Sprintf("w%03d", j)] = RandomValue(rnd, 2)
			}
		}
	}
	if err := Put(ctx, c, o.Restored, items); err != nil {
		return nil, err
	}
	if err := Put(ctx, c, o.Prod, items); err != nil {
		return nil, err
	}
	need := o.Modify + o.Delete + o.Unchanged + o.GoodWrites
	if need > o.Items {
		return nil, fmt.Errorf("scenario needs %d items, has %d", need, o.Items)
	}
	perm := rnd.Perm(o.Items)
	if o.BigItem {
		// The big item is among the modified ones.
		i := slices.Index(perm, 0)
		perm[0], perm[i] = perm[i], perm[0]
	}
	if o.WideItem {
		i := slices.Index(perm, 1)
		perm[1], perm[i] = perm[i], perm[1]
	}
	take := func(n int) []rewind.Item {
		out := make([]rewind.Item, n)
		for i := range out {
			out[i] = items[perm[0]]
			perm = perm[1:]
		}
		return out
	}
	modified, deleted, unchanged, good := take(o.Modify), take(o.Delete), take(o.Unchanged), take(o.GoodWrites)

	var damage []rewind.Item
	for _, it := range modified {
		damage = append(damage, Mutate(rnd, it))
	}
	for i := range o.Junk {
		damage = append(damage, RandomItem(rnd, Key(fmt.Sprintf("junk#%d", i), 1_000_000+i), 0))
	}
	for _, it := range good {
		damage = append(damage, Mutate(rnd, it))
	}
	if err := Put(ctx, c, o.Prod, damage); err != nil {
		return nil, err
	}
	var delKeys []rewind.Item
	for _, it := range deleted {
		delKeys = append(delKeys, KeyOf(it))
	}
	if err := Delete(ctx, c, o.Prod, delKeys); err != nil {
		return nil, err
	}

	var keys []rewind.Item
	for _, it := range modified {
		keys = append(keys, KeyOf(it))
	}
	keys = append(keys, delKeys...)
	for i := range o.Junk {
		keys = append(keys, Key(fmt.Sprintf("junk#%d", i), 1_000_000+i))
	}
	for _, it := range unchanged {
		keys = append(keys, KeyOf(it))
	}
	for i := range o.Absent {
		keys = append(keys, Key(fmt.Sprintf("nowhere#%d", i), 2_000_000+i))
	}
	slices.SortFunc(keys, func(a, b rewind.Item) int { return strings.Compare(EncodeKey(a), EncodeKey(b)) })

	s := &Scenario{Opts: o, Keys: keys}
	var err error
	if s.Restored, err = Scan(ctx, c, o.Restored); err != nil {
		return nil, err
	}
	if s.Damaged, err = Scan(ctx, c, o.Prod); err != nil {
		return nil, err
	}
	s.Expected = make(map[string]rewind.Item, len(s.Damaged))
	for k, v := range s.Damaged {
		s.Expected[k] = v
	}
	for _, k := range keys {
		enc := EncodeKey(k)
		if it, ok := s.Restored[enc]; ok {
			s.Expected[enc] = it
		} else {
			delete(s.Expected, enc)
		}
	}
	return s, nil
}

// Mutate returns a copy of item with what a bad deploy does: an attribute
// changed, one removed, one added, a set grown, a nested map changed.
func Mutate(rnd *rand.Rand, item rewind.Item) rewind.Item {
	out := rewind.Item{}
	for k, v := range item {
		out[k] = v
	}
	var names []string
	for k := range out {
		if k != "pk" && k != "sk" {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	switch rnd.IntN(4) {
	case 0:
		out[names[rnd.IntN(len(names))]] = RandomValue(rnd, 0)
	case 1:
		delete(out, names[rnd.IntN(len(names))])
	case 2:
		out["added_by_bug"] = &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
			"nested": &types.AttributeValueMemberNS{Value: []string{"1", "-2.5", "12345678901234567890123456789012345678"}},
		}}
	default:
		// Same number, another spelling: equal by value, so also change
		// something real.
		out["n38"] = &types.AttributeValueMemberN{Value: RandomNumber(rnd)}
		out["empty"] = &types.AttributeValueMemberS{Value: "not empty any more"}
	}
	return out
}
