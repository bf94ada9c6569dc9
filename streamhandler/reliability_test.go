package streamhandler_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/internal/faultproxy"
	"github.com/ddbrewind/rewind/internal/localaws"
	"github.com/ddbrewind/rewind/internal/localaws/streampoller"
	"github.com/ddbrewind/rewind/internal/reliability"
	"github.com/ddbrewind/rewind/internal/traffic"
	"github.com/ddbrewind/rewind/streamhandler"
)

// The capture reliability suite: each scenario makes real traffic on
// DynamoDB Local, captures it under some kind of trouble, and checks that
// nothing was lost and nothing duplicated. With REWIND_REPORT=<file> each
// scenario appends one JSON line of figures to that file (see
// internal/reliability), from which `make reliability` builds the README's
// table.

// flakyPutter fails a share of PutObject calls the way S3 does under load:
// 503 SlowDown, 500 InternalError, or a write that happened but whose
// answer was lost.
type flakyPutter struct {
	next streamhandler.ObjectPutter
	rate float64

	mu       sync.Mutex
	rng      *rand.Rand
	injected int
}

func (f *flakyPutter) PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	f.mu.Lock()
	r := f.rng.Float64()
	kind := f.rng.IntN(3)
	if r < f.rate {
		f.injected++
	}
	f.mu.Unlock()
	if r >= f.rate {
		return f.next.PutObject(ctx, in, opts...)
	}
	switch kind {
	case 0:
		return nil, &smithy.GenericAPIError{Code: "SlowDown", Message: "Please reduce your request rate."}
	case 1:
		return nil, &smithy.GenericAPIError{Code: "InternalError", Message: "We encountered an internal error. Please try again."}
	}
	if _, err := f.next.PutObject(ctx, in, opts...); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("read tcp: connection reset by peer")
}

// rowsByEvent reads the captured rows and reports the duplicates among
// them (an event in two objects).
func (st *stack) events(t *testing.T) (evs []rewind.ChangeEvent, rows, dups int) {
	t.Helper()
	all, _ := st.rows(t)
	seen := map[string]bool{}
	for _, r := range all {
		if seen[r.EventID] {
			dups++
			continue
		}
		seen[r.EventID] = true
		ev, err := r.ChangeEvent()
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	return evs, len(all), dups
}

func newCaptureStack(t *testing.T, ddb streamhandler.BatchWriter, s3c streamhandler.ObjectPutter, mutate func(*streamhandler.Config)) (*stack, *streamhandler.Handler) {
	t.Helper()
	st := newStack(t)
	cfg := st.cfg
	cfg.KeyAttributes = []string{"pk", "sk"}
	if mutate != nil {
		mutate(&cfg)
	}
	if ddb == nil {
		ddb = st.ddb.DynamoDB
	}
	if s3c == nil {
		s3c = st.s3.Client
	}
	h, err := streamhandler.New(cfg, ddb, s3c, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return st, h
}

func TestReliabilityCaptureFaults(t *testing.T) {
	for _, rate := range []float64{0.10, 0.30} {
		t.Run(fmt.Sprintf("rate=%.0f%%", rate*100), func(t *testing.T) {
			ctx := context.Background()
			st0 := localaws.DynamoDBForTest(t)
			proxy, err := faultproxy.Start(faultproxy.Config{
				Upstream:          st0.Endpoint,
				Seed:              uint64(rate * 1000),
				Throttling:        rate / 4,
				ServerError:       rate / 4,
				DropBeforeForward: rate / 4,
				DropAfterForward:  rate / 4,
				Operations:        []string{"BatchWriteItem"},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer proxy.Close()
			pcfg, err := localaws.Config(ctx, proxy.URL, st0.AccessKeyID)
			if err != nil {
				t.Fatal(err)
			}
			faulty := dynamodb.NewFromConfig(pcfg)
			st := &stack{ddb: st0, s3: localaws.S3ForTest(t)}
			st.createOrders(t)
			if err := streamhandler.CreateAuditTable(ctx, st.ddb.DynamoDB, "audit"); err != nil {
				t.Fatal(err)
			}
			st.cfg = streamhandler.Config{AuditTable: "audit", Bucket: st.s3.Bucket, Tenant: rewind.TenantRule{Regex: regexp.MustCompile(traffic.TenantRegex)}, KeyAttributes: []string{"pk", "sk"}}
			putter := &flakyPutter{next: st.s3.Client, rate: rate, rng: rand.New(rand.NewPCG(7, uint64(rate*100)))}
			h, err := streamhandler.New(st.cfg, faulty, putter, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			gen := traffic.New(st.ddb.DynamoDB, "orders", []string{"a", "b", "c", "d"}, 11)
			if err := gen.Run(ctx, 600); err != nil {
				t.Fatal(err)
			}
			p, err := streampoller.New(streampoller.Config{StreamARN: st.streamARN, Streams: st.ddb.Streams, Invoker: h, BatchSize: 50, MaxRetries: 100})
			if err != nil {
				t.Fatal(err)
			}
			stats, err := p.PollOnce(ctx)
			if err != nil {
				t.Fatal(err)
			}
			evs, rows, dups := st.events(t)
			exact := gen.Compare("orders", evs) == nil
			audit := len(st.auditItems(t))
			ps := proxy.Stats()
			reliability.Report(t, "capture",
				"faultRate", rate, "changes", len(gen.Changes), "captured", len(evs), "parquetRows", rows, "duplicateRows", dups,
				"auditItems", audit, "invocations", stats.Invocations, "retries", stats.Retries,
				"ddbRequests", ps.Requests, "s3Faults", putter.injected, "exact", exact,
			)
			if err := gen.Compare("orders", evs); err != nil {
				t.Fatal(err)
			}
			if audit != len(evs) {
				t.Fatalf("%d audit items for %d events", audit, len(evs))
			}
			if stats.Retries == 0 || putter.injected == 0 {
				t.Fatalf("no fault reached the handler: retries %d, S3 faults %d", stats.Retries, putter.injected)
			}
		})
	}
}

// invokerFunc adapts a function to the poller's Invoker.
type invokerFunc = streampoller.InvokerFunc

func TestReliabilityCaptureRedelivery(t *testing.T) {
	ctx := context.Background()
	st, h := newCaptureStack(t, nil, nil, nil)
	gen := traffic.New(st.ddb.DynamoDB, "orders", []string{"a", "b", "c"}, 12)
	if err := gen.Run(ctx, 400); err != nil {
		t.Fatal(err)
	}
	// Every batch is delivered twice, as at-least-once delivery allows,
	// and every third one a third time after a later batch.
	var held [][]byte
	n := 0
	twice := invokerFunc(func(ctx context.Context, payload []byte) ([]byte, error) {
		n++
		if _, err := h.Invoke(ctx, payload); err != nil {
			return nil, err
		}
		if n%3 == 0 {
			held = append(held, payload)
		}
		return h.Invoke(ctx, payload)
	})
	p, err := streampoller.New(streampoller.Config{StreamARN: st.streamARN, Streams: st.ddb.Streams, Invoker: twice, BatchSize: 40})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.PollOnce(ctx); err != nil {
		t.Fatal(err)
	}
	for _, payload := range held {
		if _, err := h.Invoke(ctx, payload); err != nil {
			t.Fatal(err)
		}
	}
	evs, rows, dups := st.events(t)
	audit := len(st.auditItems(t))
	reliability.Report(t, "capture", "changes", len(gen.Changes), "deliveries", 2*n+len(held), "batches", n, "parquetRows", rows, "duplicateRows", dups, "auditItems", audit, "exact", dups == 0 && audit == len(evs) && gen.Compare("orders", evs) == nil)
	if err := gen.Compare("orders", evs); err != nil {
		t.Fatal(err)
	}
	if dups != 0 || audit != len(evs) {
		t.Fatalf("redelivery duplicated: %d duplicate rows, %d audit items for %d events", dups, audit, len(evs))
	}
}

func TestReliabilityCapturePoisonRecord(t *testing.T) {
	ctx := context.Background()
	st, h := newCaptureStack(t, nil, nil, nil)
	gen := traffic.New(st.ddb.DynamoDB, "orders", []string{"a", "b"}, 13)
	if err := gen.Run(ctx, 200); err != nil {
		t.Fatal(err)
	}
	// One record of the third batch arrives broken: a binary attribute
	// that is null, which aws-lambda-go's own types refuse.
	n := 0
	poison := invokerFunc(func(ctx context.Context, payload []byte) ([]byte, error) {
		n++
		if n == 3 {
			payload = []byte(strings.Replace(string(payload), `"NewImage":{`, `"NewImage":{"broken":{"B":null},`, 1))
		}
		return h.Invoke(ctx, payload)
	})
	p, err := streampoller.New(streampoller.Config{StreamARN: st.streamARN, Streams: st.ddb.Streams, Invoker: poison, BatchSize: 30})
	if err != nil {
		t.Fatal(err)
	}
	stats, err := p.PollOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	all, _ := st.rows(t)
	var good []rewind.ChangeEvent
	undecodable := 0
	for _, r := range all {
		if len(r.DecodeError) > 0 {
			undecodable++
			continue
		}
		ev, _ := r.ChangeEvent()
		good = append(good, ev)
	}
	reliability.Report(t, "capture", "changes", len(gen.Changes), "captured", len(all), "undecodableKept", undecodable, "retries", stats.Retries, "blocked", stats.Retries > 0,
		"exact", undecodable == 1 && len(all) == len(gen.Changes) && stats.Retries == 0)
	if undecodable != 1 || len(all) != len(gen.Changes) || stats.Retries != 0 {
		t.Fatalf("poison: %d undecodable rows, %d rows for %d changes, %d retries", undecodable, len(all), len(gen.Changes), stats.Retries)
	}
}

func TestReliabilityCaptureTimeout(t *testing.T) {
	ctx := context.Background()
	st0 := localaws.DynamoDBForTest(t)
	// Every audit write takes 120 ms; an invocation has 550 ms and stops
	// 150 ms early, so a batch of 600 records (24 requests of 25, 4 in
	// flight at a time: 6 rounds) cannot finish in one go, while each
	// invocation still has room for a round on a loaded machine (with 400
	// ms, a round that took over 250 ms under the race detector left
	// every invocation with nothing done, and the batch failed).
	proxy, err := faultproxy.Start(faultproxy.Config{Upstream: st0.Endpoint, Latency: 120 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	pcfg, err := localaws.Config(ctx, proxy.URL, st0.AccessKeyID)
	if err != nil {
		t.Fatal(err)
	}
	st := &stack{ddb: st0, s3: localaws.S3ForTest(t)}
	st.createOrders(t)
	if err := streamhandler.CreateAuditTable(ctx, st.ddb.DynamoDB, "audit"); err != nil {
		t.Fatal(err)
	}
	st.cfg = streamhandler.Config{AuditTable: "audit", Bucket: st.s3.Bucket, Tenant: rewind.TenantRule{Regex: regexp.MustCompile(traffic.TenantRegex)}, SafetyMargin: 150 * time.Millisecond}
	h, err := streamhandler.New(st.cfg, dynamodb.NewFromConfig(pcfg), st.s3.Client, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	gen := traffic.New(st.ddb.DynamoDB, "orders", []string{"a", "b", "c"}, 14)
	if err := gen.Run(ctx, 600); err != nil {
		t.Fatal(err)
	}
	partial := 0
	deadline := invokerFunc(func(ctx context.Context, payload []byte) ([]byte, error) {
		ctx, cancel := context.WithTimeout(ctx, 550*time.Millisecond)
		defer cancel()
		out, err := h.Invoke(ctx, payload)
		if err == nil && strings.Contains(string(out), "itemIdentifier") {
			partial++
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("handler ran past its deadline")
		}
		return out, err
	})
	p, err := streampoller.New(streampoller.Config{StreamARN: st.streamARN, Streams: st.ddb.Streams, Invoker: deadline, BatchSize: 600, MaxRetries: 50})
	if err != nil {
		t.Fatal(err)
	}
	stats, err := p.PollOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	evs, rows, dups := st.events(t)
	exact := gen.Compare("orders", evs) == nil && dups == 0
	reliability.Report(t, "capture", "changes", len(gen.Changes), "captured", len(evs), "parquetRows", rows, "duplicateRows", dups, "partialAnswers", partial, "invocations", stats.Invocations, "exact", exact)
	if err := gen.Compare("orders", evs); err != nil {
		t.Fatal(err)
	}
	if partial == 0 {
		t.Fatal("no invocation stopped early: the scenario did not test the deadline")
	}
	if dups != 0 {
		t.Fatalf("%d duplicate rows after deadline retries", dups)
	}
}
