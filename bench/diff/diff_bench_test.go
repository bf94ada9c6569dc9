// Package diff_test benchmarks rewind diff against the plain way to
// compare two tables: a sequential Scan of each into memory, then a
// comparison of the two maps. Both run in the same benchmark, on the same
// DynamoDB Local tables, straight and through a proxy adding 5 ms to every
// request (a round trip to DynamoDB), and must find the same differences.
// BenchmarkDiffRSS runs the whole library path (segmented scans, records,
// spilled runs, merge) at 1e5 and 1e6 items in a child process against a
// synthetic in-memory client, since loading a million items into DynamoDB
// Local takes longer than this machine can spare, and reports its peak RSS
// next to the in-memory comparison's at the same size.
//
// This directory is a module of its own (as bench/patch); run from here:
//
//	go test -run '^$' -bench . -benchtime 1x -timeout 30m
//
// REWIND_BENCH_ITEMS (default 20000) is the size of each table in
// BenchmarkDiff.
package diff_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/internal/faultproxy"
	"github.com/ddbrewind/rewind/internal/localaws"
	"github.com/ddbrewind/rewind/recover/diff"
	"github.com/ddbrewind/rewind/recover/patch/patchtest"
)

func TestMain(m *testing.M) {
	// This module's go.mod would make localaws look for DynamoDB Local
	// under bench/diff; the installation is at the repository root.
	if os.Getenv("REWIND_DYNAMODB_LOCAL_DIR") == "" {
		if wd, err := os.Getwd(); err == nil {
			os.Setenv("REWIND_DYNAMODB_LOCAL_DIR", filepath.Join(wd, "..", "..", ".local", "dynamodb-local"))
		}
	}
	if spec := os.Getenv("REWIND_BENCH_DIFF_CHILD"); spec != "" {
		os.Exit(rssChild(spec))
	}
	os.Exit(m.Run())
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// differs says how item i of the synthetic tables differs: 1 in 100
// changed, 1 in 250 deleted from production, 1 in 250 created in it.
func differs(i int) (inFrom, inTo, changed bool) {
	switch {
	case i%250 == 1:
		return true, false, false
	case i%250 == 2:
		return false, true, false
	}
	return true, true, i%100 == 0
}

// synthItem is item i, about 200 bytes, as the restored table (prod
// false) or production holds it.
func synthItem(i int, prod bool) rewind.Item {
	_, _, changed := differs(i)
	status := "paid"
	if prod && changed {
		status = "refunded"
	}
	return rewind.Item{
		"pk":     &types.AttributeValueMemberS{Value: "tenant" + strconv.Itoa(i%97)},
		"sk":     &types.AttributeValueMemberN{Value: strconv.Itoa(i)},
		"status": &types.AttributeValueMemberS{Value: status},
		"amount": &types.AttributeValueMemberN{Value: strconv.Itoa(i * 7 % 10000)},
		"addr": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
			"city": &types.AttributeValueMemberS{Value: "Oslo"}, "zip": &types.AttributeValueMemberS{Value: strconv.Itoa(1000 + i%9000)}}},
		"note": &types.AttributeValueMemberS{Value: strings.Repeat("n", 100)},
	}
}

func wantDiffs(n int) int {
	d := 0
	for i := range n {
		if a, b, c := differs(i); !a || !b || c {
			d++
		}
	}
	return d
}

// BenchmarkDiff compares rewind diff with a sequential scan of both tables
// and an in-memory comparison, on the same tables in the same run.
func BenchmarkDiff(b *testing.B) {
	n := envInt("REWIND_BENCH_ITEMS", 20000)
	ddb := localaws.DynamoDBForTest(b)
	ctx := context.Background()
	for _, name := range []string{"orders", "orders-restored"} {
		if err := patchtest.CreateTable(ctx, ddb.DynamoDB, name); err != nil {
			b.Fatal(err)
		}
	}
	var from, to []rewind.Item
	for i := range n {
		inFrom, inTo, _ := differs(i)
		if inFrom {
			from = append(from, synthItem(i, false))
		}
		if inTo {
			to = append(to, synthItem(i, true))
		}
	}
	start := time.Now()
	if err := patchtest.Put(ctx, ddb.DynamoDB, "orders-restored", from); err != nil {
		b.Fatal(err)
	}
	if err := patchtest.Put(ctx, ddb.DynamoDB, "orders", to); err != nil {
		b.Fatal(err)
	}
	b.Logf("loaded %d + %d items in %s", len(from), len(to), time.Since(start).Round(time.Millisecond))
	want := wantDiffs(n)
	// DynamoDB Local is a JVM: the first scans of a table run cold and
	// would count against whichever contender came first. Warm it up.
	if _, err := sequentialDiff(ctx, ddb.DynamoDB, "orders-restored", "orders"); err != nil {
		b.Fatal(err)
	}
	for _, lat := range []time.Duration{0, 5 * time.Millisecond} {
		c := ddb.DynamoDB
		if lat > 0 {
			p, err := faultproxy.Start(faultproxy.Config{Upstream: ddb.Endpoint, Latency: lat})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			c = dynamodb.NewFromConfig(ddb.Config, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(p.URL) })
		}
		name := fmt.Sprintf("items=%d/latency=%s", len(from)+len(to), lat)
		var seqRate float64
		b.Run(name+"/sequential", func(b *testing.B) {
			for b.Loop() {
				got, err := sequentialDiff(ctx, c, "orders-restored", "orders")
				if err != nil {
					b.Fatal(err)
				}
				if got != want {
					b.Fatalf("sequential found %d differences, want %d", got, want)
				}
			}
			seqRate = float64(len(from)+len(to)) * float64(b.N) / b.Elapsed().Seconds()
			b.ReportMetric(seqRate, "items/s")
		})
		b.Run(name+"/rewind", func(b *testing.B) {
			for b.Loop() {
				got := 0
				sum, err := diff.Diff(ctx, c, diff.Config{From: "orders-restored", To: "orders", Options: diff.Options{Segments: 16, Workers: 8}}, func(diff.Difference) error {
					got++
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
				if got != want || int(sum.Differences()) != want {
					b.Fatalf("rewind found %d differences, want %d", got, want)
				}
			}
			r := float64(len(from)+len(to)) * float64(b.N) / b.Elapsed().Seconds()
			b.ReportMetric(r, "items/s")
			if seqRate > 0 {
				b.ReportMetric(r/seqRate, "x-sequential")
			}
		})
	}
}

// sequentialDiff is the plain way: one Scan of each table, page after
// page, into maps by canonical key, then a comparison. It returns the
// number of items that differ.
func sequentialDiff(ctx context.Context, c *dynamodb.Client, from, to string) (int, error) {
	read := func(table string) (map[string]rewind.Item, error) {
		out := map[string]rewind.Item{}
		p := dynamodb.NewScanPaginator(c, &dynamodb.ScanInput{TableName: aws.String(table)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, err
			}
			for _, it := range page.Items {
				k, err := rewind.KeyFromItemSchema(it, "pk", "sk")
				if err != nil {
					return nil, err
				}
				out[string(k.Encode())] = it
			}
		}
		return out, nil
	}
	a, err := read(from)
	if err != nil {
		return 0, err
	}
	b, err := read(to)
	if err != nil {
		return 0, err
	}
	return compareMaps(a, b), nil
}

func compareMaps(a, b map[string]rewind.Item) int {
	d := 0
	for k, ia := range a {
		if ib, ok := b[k]; !ok || !rewind.EqualItems(ia, ib) {
			d++
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			d++
		}
	}
	return d
}

// synthClient serves two synthetic tables of n item numbers each, built
// on the fly page by page, so that the items are never all in memory at
// once on the serving side.
type synthClient struct{ n int }

func (s synthClient) DescribeTable(_ context.Context, in *dynamodb.DescribeTableInput, _ ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	name := aws.ToString(in.TableName)
	return &dynamodb.DescribeTableOutput{Table: &types.TableDescription{
		TableName: aws.String(name), TableArn: aws.String("arn:aws:dynamodb:xx-synth-1:000000000000:table/" + name), TableId: aws.String(name),
		ItemCount: aws.Int64(int64(s.n)),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String("sk"), AttributeType: types.ScalarAttributeTypeN}},
		KeySchema: []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}, {AttributeName: aws.String("sk"), KeyType: types.KeyTypeRange}},
	}}, nil
}

const synthPage = 1000

func (s synthClient) Scan(_ context.Context, in *dynamodb.ScanInput, _ ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	prod := aws.ToString(in.TableName) == "orders"
	seg, total := int(aws.ToInt32(in.Segment)), int(aws.ToInt32(in.TotalSegments))
	i := seg
	if sk, ok := in.ExclusiveStartKey["sk"].(*types.AttributeValueMemberN); ok {
		i, _ = strconv.Atoi(sk.Value)
		i += total
	}
	out := &dynamodb.ScanOutput{}
	for ; i < s.n && len(out.Items) < synthPage; i += total {
		inFrom, inTo, _ := differs(i)
		if (prod && inTo) || (!prod && inFrom) {
			out.Items = append(out.Items, synthItem(i, prod))
		}
		out.LastEvaluatedKey = map[string]types.AttributeValue{"sk": &types.AttributeValueMemberN{Value: strconv.Itoa(i)}}
	}
	if i >= s.n {
		out.LastEvaluatedKey = nil
	}
	out.ScannedCount = int32(len(out.Items))
	return out, nil
}

// BenchmarkDiffRSS reports the peak RSS of a child process diffing two
// synthetic tables of n items with rewind (memory budgets of 16 and 64
// MiB) and with the in-memory comparison.
func BenchmarkDiffRSS(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		for _, how := range []string{"rewind/memory=16MiB", "rewind/memory=64MiB", "in-memory"} {
			b.Run(fmt.Sprintf("items=%d/%s", n, how), func(b *testing.B) {
				for b.Loop() {
					cmd := exec.Command(os.Args[0], "-test.run=^$")
					budget := "0"
					if mib, ok := strings.CutPrefix(how, "rewind/memory="); ok {
						budget = strings.TrimSuffix(mib, "MiB")
					}
					cmd.Env = append(os.Environ(), fmt.Sprintf("REWIND_BENCH_DIFF_CHILD=%s:%d:%s:%s", strings.SplitN(how, "/", 2)[0], n, budget, b.TempDir()))
					out, err := cmd.CombinedOutput()
					if err != nil {
						b.Fatalf("child: %v\n%s", err, out)
					}
					ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
					b.ReportMetric(float64(ru.Maxrss)/1024, "peak-RSS-MB") // Linux: KiB
					var items float64
					fmt.Sscanf(strings.TrimSpace(string(out)), "items/s %g", &items)
					b.ReportMetric(items, "items/s")
				}
			})
		}
	}
}

func rssChild(spec string) int {
	parts := strings.SplitN(spec, ":", 4) // how:items:budget MiB:temp dir
	n, _ := strconv.Atoi(parts[1])
	mib, _ := strconv.Atoi(parts[2])
	c := synthClient{n: n}
	ctx := context.Background()
	start := time.Now()
	got := 0
	switch parts[0] {
	case "rewind":
		_, err := diff.Diff(ctx, c, diff.Config{From: "orders-restored", To: "orders", Options: diff.Options{Segments: 16, Workers: 2, MemoryBudget: int64(mib) << 20, TempDir: parts[3]}}, func(diff.Difference) error {
			got++
			return nil
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	default:
		read := func(table string) map[string]rewind.Item {
			m := map[string]rewind.Item{}
			var start map[string]types.AttributeValue
			for {
				out, _ := c.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(table), Segment: aws.Int32(0), TotalSegments: aws.Int32(1), ExclusiveStartKey: start})
				for _, it := range out.Items {
					k, _ := rewind.KeyFromItemSchema(it, "pk", "sk")
					m[string(k.Encode())] = it
				}
				if out.LastEvaluatedKey == nil {
					return m
				}
				start = out.LastEvaluatedKey
			}
		}
		got = compareMaps(read("orders-restored"), read("orders"))
	}
	if got != wantDiffs(n) {
		fmt.Fprintf(os.Stderr, "found %d differences, want %d\n", got, wantDiffs(n))
		return 1
	}
	fmt.Printf("items/s %g\n", float64(2*n)/time.Since(start).Seconds())
	return 0
}
