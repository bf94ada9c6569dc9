package diff

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/ddbrewind/rewind"
	"github.com/google/go-cmp/cmp"

	"github.com/ddbrewind/rewind/recover/patch"
)

// fakeClient serves tables held in memory: item j of a table is in
// segment j mod TotalSegments; pages hold Limit items (default 10) and
// each costs unitsPerPage read units.
type fakeClient struct {
	tables       map[string][]rewind.Item
	unitsPerPage float64
	calls        atomic.Int64
}

func (f *fakeClient) DescribeTable(_ context.Context, in *dynamodb.DescribeTableInput, _ ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	name := aws.ToString(in.TableName)
	if n, ok := patch.TableNameOfARN(name); ok {
		name = n // DynamoDB takes a table's ARN for its name
	}
	items, ok := f.tables[name]
	if !ok {
		return nil, &types.ResourceNotFoundException{Message: aws.String("no table " + name)}
	}
	return &dynamodb.DescribeTableOutput{Table: &types.TableDescription{
		TableName: aws.String(name), TableArn: aws.String("arn:aws:dynamodb:xx-test-1:000000000000:table/" + name), TableId: aws.String("id-" + name),
		ItemCount:            aws.Int64(int64(len(items))),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeN}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
	}}, nil
}

func (f *fakeClient) Scan(_ context.Context, in *dynamodb.ScanInput, _ ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	f.calls.Add(1)
	name := aws.ToString(in.TableName)
	if n, ok := patch.TableNameOfARN(name); ok {
		name = n
	}
	items := f.tables[name]
	seg, total := int(aws.ToInt32(in.Segment)), int(aws.ToInt32(in.TotalSegments))
	limit := int(aws.ToInt32(in.Limit))
	if limit == 0 {
		limit = 10
	}
	j := seg
	if s, ok := in.ExclusiveStartKey["j"].(*types.AttributeValueMemberN); ok {
		j, _ = strconv.Atoi(s.Value)
		j += total
	}
	out := &dynamodb.ScanOutput{ConsumedCapacity: &types.ConsumedCapacity{CapacityUnits: aws.Float64(f.unitsPerPage)}}
	for ; j < len(items) && len(out.Items) < limit; j += total {
		out.Items = append(out.Items, items[j])
		out.LastEvaluatedKey = map[string]types.AttributeValue{"j": &types.AttributeValueMemberN{Value: strconv.Itoa(j)}}
	}
	if j >= len(items) {
		out.LastEvaluatedKey = nil
	}
	out.ScannedCount = int32(len(out.Items))
	return out, nil
}

func n(i int) types.AttributeValue { return &types.AttributeValueMemberN{Value: strconv.Itoa(i)} }

// twoTables: items 0..size-1 in both, but every 7th changed, every 11th
// only in the restored table and every 13th only in production.
func twoTables(size int) (*fakeClient, []string) {
	var from, to []rewind.Item
	var want []string
	for i := range size {
		it := rewind.Item{"pk": n(i), "v": n(i)}
		switch {
		case i%11 == 0:
			from = append(from, it)
			want = append(want, fmt.Sprintf("%d REMOVE", i))
		case i%13 == 0:
			to = append(to, it)
			want = append(want, fmt.Sprintf("%d INSERT", i))
		case i%7 == 0:
			from = append(from, it)
			to = append(to, rewind.Item{"pk": n(i), "v": n(-i)})
			want = append(want, fmt.Sprintf("%d MODIFY", i))
		default:
			from, to = append(from, it), append(to, it)
		}
	}
	return &fakeClient{tables: map[string][]rewind.Item{"restored": from, "prod": to}}, want
}

func run(t *testing.T, c Client, cfg Config) ([]rewind.Key, []string, *Summary) {
	t.Helper()
	var keys []rewind.Key
	var got []string
	sum, err := Diff(t.Context(), c, cfg, func(d Difference) error {
		keys = append(keys, d.Key)
		got = append(got, fmt.Sprintf("%s %s", d.Key[0].Value, d.Kind.Action()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys, got, sum
}

func TestDiffSpillsAndMatchesInKeyOrder(t *testing.T) {
	c, want := twoTables(2000)
	_, inMemory, sum := run(t, c, Config{From: "restored", To: "prod"})
	if sum.Runs != 0 {
		t.Fatalf("spilled %d runs with the default budget", sum.Runs)
	}
	keys, spilled, sum := run(t, c, Config{From: "restored", To: "prod", Options: Options{MemoryBudget: 4 << 10, TempDir: t.TempDir(), Segments: 5, Workers: 3}})
	if sum.Runs < 10 || sum.SpilledBytes == 0 {
		t.Fatalf("a 4 KiB budget spilled %d runs (%d bytes)", sum.Runs, sum.SpilledBytes)
	}
	if d := cmp.Diff(inMemory, spilled); d != "" {
		t.Fatalf("spilled diff differs from the in-memory one (-in memory +spilled):\n%s", d)
	}
	// A cap on run files merges runs as it goes; the result is the same.
	defer func(n int) { maxRuns = n }(maxRuns)
	maxRuns = 3
	_, compacted, sum2 := run(t, c, Config{From: "restored", To: "prod", Options: Options{MemoryBudget: 4 << 10, TempDir: t.TempDir(), Segments: 5, Workers: 3}})
	if d := cmp.Diff(inMemory, compacted); d != "" || sum2.Runs < 10 {
		t.Fatalf("%d runs merged 3 at a time: differs from the in-memory diff (-in memory +merged):\n%s", sum2.Runs, d)
	}
	// Canonical key order is the key set's; numbers do not sort by value.
	for i := 1; i < len(keys); i++ {
		if keys[i-1].Compare(keys[i]) >= 0 {
			t.Fatalf("keys out of order at %d: %s then %s", i, keys[i-1], keys[i])
		}
	}
	wantSet, gotSet := map[string]bool{}, map[string]bool{}
	for _, w := range want {
		wantSet[w] = true
	}
	for _, g := range spilled {
		gotSet[g] = true
	}
	if d := cmp.Diff(wantSet, gotSet); d != "" {
		t.Fatalf("differences (-want +got):\n%s", d)
	}
	if sum.Changed+sum.OnlyInFrom+sum.OnlyInTo != int64(len(want)) || sum.Unchanged == 0 {
		t.Fatalf("summary counts: %+v", sum)
	}
}

func TestDiffReadRate(t *testing.T) {
	c, _ := twoTables(300)
	c.unitsPerPage = 20
	// About 300 items a table in pages of 10: about 30 pages, 600 units a
	// table. Without a limit that is instant.
	start := time.Now()
	_, _, sum := run(t, c, Config{From: "restored", To: "prod", Options: Options{Segments: 3, Workers: 6}})
	if fast := time.Since(start); fast > 300*time.Millisecond {
		t.Fatalf("no read limit took %s", fast)
	}
	if sum.ConsumedRCU != float64(c.calls.Load())*20 {
		t.Fatalf("ConsumedRCU %g for %d pages of 20", sum.ConsumedRCU, c.calls.Load())
	}
	// At 400 units/s a table, with a burst of 400: the rest of each
	// table's units take (units-400)/400 s, both tables at once.
	start = time.Now()
	var reports []Progress
	var mu sync.Mutex
	_, _, sum = run(t, c, Config{From: "restored", To: "prod", Options: Options{Segments: 3, Workers: 6, ReadRate: 400,
		ProgressEvery: 50 * time.Millisecond, Progress: func(p Progress) { mu.Lock(); reports = append(reports, p); mu.Unlock() }}})
	took := time.Since(start)
	// Progress while it waits, with the ETA's total from DescribeTable,
	// and a final report of everything scanned.
	if len(reports) < 3 {
		t.Fatalf("%d progress reports in %s at one per 50ms", len(reports), took)
	}
	last := reports[len(reports)-1]
	total := int64(len(c.tables["restored"]) + len(c.tables["prod"]))
	if r := last.Report(); !last.Final || r.Done != sum.FromScanned+sum.ToScanned || r.Total != total || r.Phase != "diff" {
		t.Fatalf("final report %+v (%+v); scanned %d+%d of %d", last, r, sum.FromScanned, sum.ToScanned, total)
	}
	if mid := reports[len(reports)/2].Report(); mid.Final || mid.Done <= 0 || mid.Done >= total || mid.Remaining() <= 0 {
		t.Fatalf("a report midway: %+v, remaining %s", mid, mid.Remaining())
	}
	perTable := sum.ConsumedRCU / 2
	if want := time.Duration((perTable - 400) / 400 * 0.9 * float64(time.Second)); took < want || want < 300*time.Millisecond {
		t.Fatalf("ReadRate 400 read %g units a table in %s; want at least %s", perTable, took, want)
	}
}

func TestAttributeDiffs(t *testing.T) {
	s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	m := func(kv map[string]types.AttributeValue) types.AttributeValue {
		return &types.AttributeValueMemberM{Value: kv}
	}
	from := rewind.Item{
		"pk":   s("a"),
		"n":    &types.AttributeValueMemberN{Value: "1.50"},
		"set":  &types.AttributeValueMemberSS{Value: []string{"x", "y"}},
		"addr": m(map[string]types.AttributeValue{"city": s("Oslo"), "geo": m(map[string]types.AttributeValue{"lat": s("1")})}),
		"gone": s("g"),
		"t":    &types.AttributeValueMemberN{Value: "5"},
	}
	to := rewind.Item{
		"pk":   s("a"),
		"n":    &types.AttributeValueMemberN{Value: "1.5"},
		"set":  &types.AttributeValueMemberSS{Value: []string{"y", "x"}},
		"addr": m(map[string]types.AttributeValue{"city": s("Oslo"), "geo": m(map[string]types.AttributeValue{"lat": s("2"), "lon": s("3")})}),
		"new":  s("n"),
		"t":    s("5"),
	}
	var got []string
	for _, d := range AttributeDiffs(from, to) {
		got = append(got, fmt.Sprintf("%v %s -> %s", d.Path, avJSON(d.From), avJSON(d.To)))
	}
	want := []string{
		`[addr geo lat] {"S":"1"} -> {"S":"2"}`,
		`[addr geo lon] null -> {"S":"3"}`,
		`[gone] {"S":"g"} -> null`,
		`[new] null -> {"S":"n"}`,
		`[t] {"N":"5"} -> {"S":"5"}`,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("attribute diffs (-want +got):\n%s", d)
	}
	if len(AttributeDiffs(from, from)) != 0 {
		t.Fatal("an item differs from itself")
	}
}

func avJSON(av types.AttributeValue) string {
	if av == nil {
		return "null"
	}
	return string(rewind.AppendAttributeValueJSON(nil, av))
}

func TestDiffRefusals(t *testing.T) {
	c, _ := twoTables(10)
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{From: "prod", To: "prod"}, "From and To are the same table"},
		{Config{From: "arn:aws:dynamodb:xx-test-1:000000000000:table/prod", To: "prod"}, "are the same table (arn:aws:dynamodb:xx-test-1:000000000000:table/prod)"},
		{Config{From: "nosuch", To: "prod"}, `restored table: table "nosuch" does not exist`},
		{Config{From: "restored", To: "prod", SinceAttribute: "t"}, "go together"},
		{Config{From: "restored", To: "prod", SinceAttribute: "t", Since: &types.AttributeValueMemberBOOL{Value: true}}, "string or a number"},
		{Config{From: "restored", To: "prod", Options: Options{Workers: -1}}, "Workers -1"},
		{Config{From: "restored", To: "prod", Options: Options{ReadRate: -3}}, "ReadRate -3"},
	} {
		_, err := Diff(t.Context(), c, tc.cfg, func(Difference) error { return nil })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.cfg, err, tc.want)
		}
		var ce *ConfigError
		if errors.As(err, &ce) && ce.Field == "" {
			t.Errorf("config error without a field: %v", err)
		}
	}
}
