// Package patch_test benchmarks rewind's patcher against the seed
// runbook's loop (GetItem from the restored table, then PutItem into
// production, one key at a time), on the same DynamoDB Local, the same
// keys, with verify passing for both; once straight to the server and
// once with 5 ms added to every request, as a real round trip to DynamoDB
// does. On DynamoDB Local the 5 ms is a proxy in front of it
// (faultproxy); the in-memory fast server waits the 5 ms itself before
// answering, which spares the shared cores the proxy's extra HTTP hop per
// request: it changes what the benchmark spends, not what it compares
// (the seed loop and rewind wait the same round trip). It also measures
// the peak RSS of planning a key set of a million lines.
//
// This directory is a module of its own (it needs golang.org/x/time through
// recover/patch, and the local test stack); run from here:
//
//	go test -run '^$' -bench . -benchtime 1x -timeout 30m
//
// Each sub-benchmark runs once per b.N over its whole key set and reports
// keys/s; BenchmarkPatch/*/rewind also reports its ratio to the seed loop
// (x-seed). server=dynamodb-local is the emulator, whose own CPU (about
// 800 conditional PutItem/s on two cores shared with the client) caps
// rewind; server=fast is an in-memory server answering at once, so that
// at 5 ms the ratio shows what batching and concurrency buy
// against a server that is not the bottleneck, as DynamoDB is not.
// REWIND_BENCH_KEYS (default 1000) and REWIND_BENCH_CONCURRENCY (default
// the library's, 128) change the size and rewind's --concurrency. rewind
// runs on the client `rewind patch` builds (cli.NewPatchClient), so its
// defaults are the command's. Each run also reports cpu-us/key, the CPU
// time of the whole process per key (client and in-memory server; the
// proxy too on DynamoDB Local at 5 ms): on a loaded machine it holds where
// keys/s does not. Rewind's client side is labelled phase=rewind for
// go test -cpuprofile (go tool pprof -tagfocus phase=rewind).
// BenchmarkPlanRSS reports the peak RSS (MB) of a separate process
// planning 10k, 100k and 1M keys.
package patch_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/logging"
	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/internal/cli"
	"github.com/ddbrewind/rewind/internal/faultproxy"
	"github.com/ddbrewind/rewind/internal/localaws"
	"github.com/ddbrewind/rewind/recover/patch"
	"github.com/ddbrewind/rewind/recover/patch/patchtest"
	"golang.org/x/time/rate"
)

func TestMain(m *testing.M) {
	// This module's go.mod would make localaws look for DynamoDB Local
	// under bench/patch; the installation is at the repository root.
	if os.Getenv("REWIND_DYNAMODB_LOCAL_DIR") == "" {
		if wd, err := os.Getwd(); err == nil {
			os.Setenv("REWIND_DYNAMODB_LOCAL_DIR", filepath.Join(wd, "..", "..", ".local", "dynamodb-local"))
		}
	}
	if n := os.Getenv("REWIND_BENCH_PLAN_CHILD"); n != "" {
		os.Exit(planChild(n))
	}
	os.Exit(m.Run())
}

// benchKeys is the number of impacted keys; items are about 1 KB.
var benchKeys = envInt("REWIND_BENCH_KEYS", 1000)

// benchConcurrency is rewind's --concurrency, the cap of its adaptive
// writes in flight; 0 (the default) is the library's default.
var benchConcurrency = envInt("REWIND_BENCH_CONCURRENCY", 0)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkPatch compares rewind patch with the seed loop on DynamoDB
// Local, and (server=fast) on an in-memory server that answers at once, to
// show what the design buys when the server is not the bottleneck.
func BenchmarkPatch(b *testing.B) {
	for _, server := range []string{"dynamodb-local", "fast"} {
		for _, latency := range []time.Duration{0, 5 * time.Millisecond} {
			b.Run(fmt.Sprintf("server=%s/latency=%dms", server, latency.Milliseconds()), func(b *testing.B) {
				benchPatch(b, server, latency, 0, 0)
			})
		}
	}
}

// BenchmarkPatchThrottled runs the fast server at 5 ms behind a write
// capacity (writes/s above it are throttled, as a provisioned table's):
// the patcher should settle near capacity × latency writes in flight with
// few throttled attempts instead of hammering. It reports the achieved
// writes/s against the capacity, the throttled share of attempts and the
// settled range.
func BenchmarkPatchThrottled(b *testing.B) {
	for _, capacity := range []float64{500, 2000} {
		b.Run(fmt.Sprintf("server=fast/latency=5ms/capacity=%g", capacity), func(b *testing.B) {
			benchPatch(b, "fast", 5*time.Millisecond, capacity, 0)
		})
	}
}

// BenchmarkPatchRate: at --rate R against the fast server at 5 ms, the
// achieved rate (reported as of-rate) should be at least 0.8.
func BenchmarkPatchRate(b *testing.B) {
	for _, r := range []float64{500, 2000} {
		b.Run(fmt.Sprintf("server=fast/latency=5ms/rate=%g", r), func(b *testing.B) {
			benchPatch(b, "fast", 5*time.Millisecond, 0, r)
		})
	}
}

func benchPatch(b *testing.B, server string, latency time.Duration, capacity, writeRate float64) {
	var env *localaws.DynamoDBEnv
	var fast *fastDDB
	if server == "fast" {
		f, err := startFastDDB()
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		fast = f
		cfg, err := localaws.Config(b.Context(), f.URL, "fast")
		if err != nil {
			b.Fatal(err)
		}
		env = &localaws.DynamoDBEnv{Endpoint: f.URL, AccessKeyID: "fast", Config: cfg, DynamoDB: dynamodb.NewFromConfig(cfg)}
	} else {
		env = localaws.DynamoDBForTest(b)
	}
	ctx := context.Background()
	// Modified and deleted items only: the seed loop cannot delete the
	// items a bug created, and verify must pass for both.
	s, err := patchtest.BuildScenario(ctx, env.DynamoDB, patchtest.ScenarioOptions{
		Prod: "orders-seed", Restored: "orders-restored",
		Items: benchKeys + 50, Modify: benchKeys * 4 / 5, Delete: benchKeys / 5, Seed: 1,
	})
	if err != nil {
		b.Fatal(err)
	}
	// A second production table, damaged the same way, for rewind.
	if err := patchtest.CreateTable(ctx, env.DynamoDB, "orders-rewind"); err != nil {
		b.Fatal(err)
	}
	var damaged []rewind.Item
	for _, it := range s.Damaged {
		damaged = append(damaged, it)
	}
	if err := patchtest.Put(ctx, env.DynamoDB, "orders-rewind", damaged); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	keySets := map[string]string{}
	for _, t := range []string{"orders-seed", "orders-rewind"} {
		keySets[t] = filepath.Join(dir, t+".jsonl")
		if err := patchtest.WriteKeySet(keySets[t], t, s.Keys); err != nil {
			b.Fatal(err)
		}
	}

	endpoint := env.Endpoint
	if fast != nil {
		// The fast server waits out the round trip itself: the seed loop
		// and rewind wait the same 5 ms per call as through the proxy, and
		// the shared cores do not also run the proxy's HTTP server and
		// client for every request.
		fast.latency = latency
	} else if latency > 0 {
		p, err := faultproxy.Start(faultproxy.Config{Upstream: env.Endpoint, Latency: latency})
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		endpoint = p.URL
	}
	cfg, err := localaws.Config(ctx, endpoint, env.AccessKeyID)
	if err != nil {
		b.Fatal(err)
	}
	if os.Getenv("REWIND_BENCH_DEBUG") != "" {
		cfg.ClientLogMode = aws.LogRetries
	}
	// The seed loop's client is the SDK's default one; rewind's is the one
	// `rewind patch` builds (its HTTP pool, timeouts and middleware), from
	// the CLI's own constructor, so that "default settings" are the
	// command's.
	client := dynamodb.NewFromConfig(cfg)
	rewindOpts := patch.Options{Concurrency: benchConcurrency, Rate: writeRate, Progress: progressOut(), ProgressEvery: time.Second}
	rewindClient, err := cli.NewPatchClient(ctx, &cli.Env{Stdout: io.Discard, Stderr: io.Discard, Getenv: func(string) string { return "" },
		AWS: &cli.AWS{Endpoints: map[string]string{"DynamoDB": endpoint}, Region: cfg.Region, Credentials: cfg.Credentials}}, rewindOpts)
	if err != nil {
		b.Fatal(err)
	}
	var rewindAPI patch.Client = rewindClient
	if os.Getenv("REWIND_BENCH_DEBUG") != "" {
		rewindAPI = logRetries{rewindClient}
	}

	rates, cpuPerKey := map[string]float64{}, map[string]float64{}
	runs := map[string]int{} // runs of each table, across -count
	var last *patch.Summary
	var journals atomic.Int64
	for _, impl := range []string{"seed", "rewind"} {
		b.Run(impl, func(b *testing.B) {
			table := "orders-" + impl
			for i := 0; i < b.N; i++ {
				runs[impl]++
				if runs[impl] > 1 { // put the damage back (b.N > 1 or -count)
					if err := reset(ctx, env.DynamoDB, table, s); err != nil {
						b.Fatal(err)
					}
				}
				if fast != nil && capacity > 0 && impl == "rewind" {
					// Throttle rewind's writes only (the seed loop is
					// serial, far below the capacity); a fresh bucket
					// with 100 ms of burst.
					fast.writeLimit = rate.NewLimiter(rate.Limit(capacity), max(1, int(capacity/10)))
					fast.throttled.Store(0)
				}
				start, cpu0 := time.Now(), processCPU()
				if impl == "seed" {
					err = seedLoop(ctx, client, "orders-restored", table, s.Keys)
				} else {
					var sum *patch.Summary
					// The label marks rewind's client side in a -cpuprofile
					// (pprof -tagfocus phase=rewind); the server's goroutines
					// are not labelled.
					pprof.Do(ctx, pprof.Labels("phase", "rewind"), func(ctx context.Context) {
						sum, err = patch.Patch(ctx, rewindAPI, patch.Config{
							Keys: keySets[table], From: "orders-restored", To: table, Apply: true,
							// One journal per run: -count runs this again with i from 0.
							Journal: filepath.Join(dir, fmt.Sprintf("%s-%d.journal", table, journals.Add(1))),
							Options: rewindOpts,
						})
					})
					last = sum
					if err == nil && (sum.Partial() || sum.Written != sum.Restore+sum.Delete || sum.Written < int64(len(s.Keys))*9/10) {
						err = fmt.Errorf("patch: %+v", sum.Counts)
					}
				}
				el := time.Since(start)
				cpuPerKey[impl] = float64((processCPU() - cpu0).Microseconds()) / float64(len(s.Keys))
				if fast != nil {
					fast.writeLimit = nil
				}
				if err != nil {
					b.Fatal(err)
				}
				rates[impl] = float64(len(s.Keys)) / el.Seconds()
				vs, err := patch.Verify(ctx, env.DynamoDB, patch.Config{Keys: keySets[table], From: "orders-restored", To: table})
				if err != nil || vs.Mismatches() != 0 {
					b.Fatalf("verify after %s: %v, %d mismatches", impl, err, vs.Mismatches())
				}
			}
			b.ReportMetric(rates[impl], "keys/s")
			// The CPU time of the whole process (client, proxy and server)
			// per key: unlike keys/s, it holds on a loaded machine.
			b.ReportMetric(cpuPerKey[impl], "cpu-us/key")
			if impl == "rewind" && rates["seed"] > 0 {
				b.ReportMetric(rates["rewind"]/rates["seed"], "x-seed")
			}
			if impl == "rewind" && last != nil {
				w := last.Writes
				b.ReportMetric(float64(w.Low), "writers-low")
				b.ReportMetric(float64(w.High), "writers-high")
				b.ReportMetric(100*float64(w.Throttled)/float64(max(1, w.Attempts)), "throttled-%")
				writes := float64(last.Written) / last.Elapsed.Seconds()
				if capacity > 0 {
					b.ReportMetric(writes/capacity, "of-capacity")
				}
				if writeRate > 0 {
					b.ReportMetric(writes/writeRate, "of-rate")
				}
			}
		})
	}
	if last == nil {
		return
	}
	b.Logf("%s, latency %s, %d keys: seed %.0f keys/s, rewind %.0f keys/s, ratio %.1fx; rewind's writers: %s", server, latency, len(s.Keys), rates["seed"], rates["rewind"], rates["rewind"]/rates["seed"], last.Writes)
}

func progressOut() func(patch.Progress) {
	if os.Getenv("REWIND_BENCH_DEBUG") == "" {
		return nil
	}
	return func(p patch.Progress) {
		r := p.Report()
		fmt.Fprintf(os.Stderr, "%s %s: %d/%d keys, %.0f keys/s %s\n", time.Now().Format("05.000"), r.Phase, r.Done, r.Total, r.PerSecond(), r.Note)
	}
}

// processCPU is the CPU time this process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// logRetries logs the retries of rewind's calls (REWIND_BENCH_DEBUG).
type logRetries struct{ *dynamodb.Client }

func logOpt(o *dynamodb.Options) {
	o.ClientLogMode |= aws.LogRetries
	o.Logger = logging.NewStandardLogger(os.Stderr)
}

func (c logRetries) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	return c.Client.BatchGetItem(ctx, in, append(opts, logOpt)...)
}

func (c logRetries) PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	return c.Client.PutItem(ctx, in, append(opts, logOpt)...)
}

func (c logRetries) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	return c.Client.UpdateItem(ctx, in, append(opts, logOpt)...)
}

func (c logRetries) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	return c.Client.DeleteItem(ctx, in, append(opts, logOpt)...)
}

// seedLoop is the loop every team writes by hand: for each key, read the
// restored item, put it into production.
func seedLoop(ctx context.Context, c *dynamodb.Client, from, to string, keys []rewind.Item) error {
	for _, k := range keys {
		out, err := c.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(from), Key: k, ConsistentRead: aws.Bool(true)})
		if err != nil {
			return err
		}
		if out.Item == nil {
			continue
		}
		if _, err := c.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(to), Item: out.Item}); err != nil {
			return err
		}
	}
	return nil
}

// reset puts the damaged state back into table.
func reset(ctx context.Context, c *dynamodb.Client, table string, s *patchtest.Scenario) error {
	var put []rewind.Item
	var del []rewind.Item
	for _, k := range s.Keys {
		enc := patchtest.EncodeKey(k)
		if it, ok := s.Damaged[enc]; ok {
			put = append(put, it)
		} else {
			del = append(del, k)
		}
	}
	if err := patchtest.Put(ctx, c, table, put); err != nil {
		return err
	}
	return patchtest.Delete(ctx, c, table, del)
}

// BenchmarkPlanRSS measures the peak RSS of a process planning (dry run)
// key sets of growing size, against a fake DynamoDB that answers every key
// with a 1 KB item in each table, so that every key is a restore with a
// diff: the worst case for the planner's memory.
func BenchmarkPlanRSS(b *testing.B) {
	sizes := []int{10_000, 100_000, 1_000_000}
	if n := envInt("REWIND_BENCH_PLAN_KEYS", 0); n > 0 {
		sizes = []int{n}
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("keys=%.0e", float64(n)), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "keys.jsonl")
			if err := writeBigKeySet(path, n); err != nil {
				b.Fatal(err)
			}
			for range b.N {
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), "REWIND_BENCH_PLAN_CHILD="+path)
				var out bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &out
				start := time.Now()
				if err := cmd.Run(); err != nil {
					b.Fatalf("plan child: %v\n%s", err, out.String())
				}
				el := time.Since(start)
				rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss // KB on Linux
				b.ReportMetric(float64(rss)/1024, "peak-RSS-MB")
				b.ReportMetric(float64(n)/el.Seconds(), "keys/s")
				b.Logf("%d keys: peak RSS %.1f MB, %s, %s", n, float64(rss)/1024, el.Round(time.Millisecond), strings.TrimSpace(out.String()))
			}
		})
	}
}

func writeBigKeySet(path string, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	var line []byte
	for i := range n {
		k, _ := rewind.KeyFromItem(patchtest.Key(fmt.Sprintf("t%d#%08d", i%7, i), i))
		e := rewind.KeySetEntry{Table: "orders", Key: k, Count: 1}
		line = append(e.AppendJSON(line[:0]), '\n')
		if _, err := f.Write(line); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// planChild plans the key set at path against fakeDDB and prints the
// counts; its parent measures its peak RSS.
func planChild(path string) int {
	sum, err := patch.Patch(context.Background(), fakeDDB{}, patch.Config{Keys: path, From: "orders-restored", To: "orders", Options: patch.Options{Out: io.Discard}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("planned %d keys, restore %d\n", sum.Keys, sum.Restore)
	return 0
}

// fakeDDB answers DescribeTable with the (pk S, sk N) schema and
// BatchGetItem with a 1 KB item for every key, different per table.
type fakeDDB struct{}

var _ patch.Client = fakeDDB{}

func (fakeDDB) DescribeTable(_ context.Context, in *dynamodb.DescribeTableInput, _ ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	return &dynamodb.DescribeTableOutput{Table: &types.TableDescription{
		TableName: in.TableName,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String("sk"), AttributeType: types.ScalarAttributeTypeN},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String("sk"), KeyType: types.KeyTypeRange},
		},
	}}, nil
}

func (fakeDDB) BatchGetItem(_ context.Context, in *dynamodb.BatchGetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	out := &dynamodb.BatchGetItemOutput{Responses: map[string][]map[string]types.AttributeValue{}}
	for table, ka := range in.RequestItems {
		for _, k := range ka.Keys {
			item := map[string]types.AttributeValue{}
			for n, v := range k {
				item[n] = v
			}
			payload := make([]byte, 1024)
			binary.LittleEndian.PutUint64(payload, uint64(len(table)))
			item["payload"] = &types.AttributeValueMemberB{Value: payload}
			item["table"] = &types.AttributeValueMemberS{Value: table}
			out.Responses[table] = append(out.Responses[table], item)
		}
	}
	return out, nil
}

func (fakeDDB) PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	return nil, fmt.Errorf("fakeDDB: dry run only")
}

func (fakeDDB) UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	return nil, fmt.Errorf("fakeDDB: dry run only")
}

func (fakeDDB) DeleteItem(context.Context, *dynamodb.DeleteItemInput, ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	return nil, fmt.Errorf("fakeDDB: dry run only")
}
