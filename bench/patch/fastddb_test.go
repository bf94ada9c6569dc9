package patch_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/ddbrewind/rewind"
)

// fastDDB is a DynamoDB JSON-protocol server that keeps items in memory and
// answers at once: DescribeTable, CreateTable, GetItem, PutItem, UpdateItem (SET and
// REMOVE), DeleteItem and BatchGetItem, enough for the seed loop, patch and verify. It does not
// evaluate condition expressions (the benchmark has no conflicts). With
// latency set it waits that long before answering each request, as a
// round trip to DynamoDB does, and so shows what batching and concurrency
// buy when the server is not the bottleneck, as with DynamoDB itself,
// unlike DynamoDB Local on two shared cores.
type fastDDB struct {
	URL string
	srv *http.Server

	// latency is added to every request before it is answered: the
	// round trip the seed loop and rewind both wait for. It is the
	// server's own wait rather than a proxy in front of it (one HTTP
	// server and client pair fewer on the cores the client shares with
	// the server); set before the first request.
	latency time.Duration

	mu     sync.RWMutex
	tables map[string]*fastTable

	// writeLimit, when set, throttles writes (PutItem, UpdateItem,
	// DeleteItem) above its rate with ProvisionedThroughputExceededException,
	// as a provisioned table does once its burst capacity is spent (HTTP
	// 400, retryable by the SDK). throttled counts them.
	writeLimit *rate.Limiter
	throttled  atomic.Int64
}

type fastTable struct {
	keys  []string // key attribute names, partition key first
	types []string
	items map[string]json.RawMessage // canonical key -> item JSON
}

func startFastDDB() (*fastDDB, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &fastDDB{URL: "http://" + ln.Addr().String(), tables: map[string]*fastTable{}}
	f.srv = &http.Server{Handler: f}
	go f.srv.Serve(ln)
	return f, nil
}

func (f *fastDDB) Close() { f.srv.Close() }

func (f *fastDDB) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if f.latency > 0 {
		time.Sleep(f.latency)
	}
	op := r.Header.Get("X-Amz-Target")
	op = op[strings.LastIndexByte(op, '.')+1:]
	out, status := f.handle(op, body)
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.WriteHeader(status)
	w.Write(out)
}

func fastErr(typ, msg string) ([]byte, int) {
	b, _ := json.Marshal(map[string]string{"__type": "com.amazonaws.dynamodb.v20120810#" + typ, "message": msg})
	return b, 400
}

func (f *fastDDB) table(name string) (*fastTable, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	t, ok := f.tables[name]
	return t, ok
}

func (t *fastTable) keyOf(raw json.RawMessage) (string, error) {
	item, err := rewind.ParseItem(raw)
	if err != nil {
		return "", err
	}
	k, err := rewind.KeyFromItemSchema(item, t.keys...)
	if err != nil {
		return "", err
	}
	return string(k.Encode()), nil
}

func (f *fastDDB) handle(op string, body []byte) ([]byte, int) {
	var in struct {
		TableName                 string
		Item                      json.RawMessage
		Key                       json.RawMessage
		ReturnValues              string
		UpdateExpression          string
		ExpressionAttributeNames  map[string]string
		ExpressionAttributeValues map[string]json.RawMessage
		KeySchema                 []struct{ AttributeName, KeyType string }
		AttributeDefinitions      []struct{ AttributeName, AttributeType string }
		RequestItems              map[string]struct {
			Keys []json.RawMessage
		}
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return fastErr("ValidationException", err.Error())
	}
	switch op {
	case "CreateTable":
		t := &fastTable{items: map[string]json.RawMessage{}}
		for _, want := range []string{"HASH", "RANGE"} {
			for _, k := range in.KeySchema {
				if k.KeyType == want {
					t.keys = append(t.keys, k.AttributeName)
					for _, d := range in.AttributeDefinitions {
						if d.AttributeName == k.AttributeName {
							t.types = append(t.types, d.AttributeType)
						}
					}
				}
			}
		}
		f.mu.Lock()
		f.tables[in.TableName] = t
		f.mu.Unlock()
		return f.describe(in.TableName)
	case "DescribeTable":
		return f.describe(in.TableName)
	case "Scan":
		t, ok := f.table(in.TableName)
		if !ok {
			return fastErr("ResourceNotFoundException", "no table "+in.TableName)
		}
		f.mu.RLock()
		items := make([]json.RawMessage, 0, len(t.items))
		for _, it := range t.items {
			items = append(items, it)
		}
		f.mu.RUnlock()
		b, _ := json.Marshal(map[string]any{"Items": items, "Count": len(items), "ScannedCount": len(items)})
		return b, 200
	}
	if op == "BatchGetItem" {
		resp := map[string][]json.RawMessage{}
		for name, ka := range in.RequestItems {
			t, ok := f.table(name)
			if !ok {
				return fastErr("ResourceNotFoundException", "no table "+name)
			}
			resp[name] = []json.RawMessage{}
			f.mu.RLock()
			for _, k := range ka.Keys {
				enc, err := t.keyOf(k)
				if err != nil {
					f.mu.RUnlock()
					return fastErr("ValidationException", err.Error())
				}
				if item, ok := t.items[enc]; ok {
					resp[name] = append(resp[name], item)
				}
			}
			f.mu.RUnlock()
		}
		b, _ := json.Marshal(map[string]any{"Responses": resp, "UnprocessedKeys": map[string]any{}})
		return b, 200
	}
	if f.writeLimit != nil && op != "GetItem" && !f.writeLimit.Allow() {
		f.throttled.Add(1)
		return fastErr("ProvisionedThroughputExceededException", "The level of configured provisioned throughput for the table was exceeded.")
	}
	t, ok := f.table(in.TableName)
	if !ok {
		return fastErr("ResourceNotFoundException", "no table "+in.TableName)
	}
	src := in.Key
	if op == "PutItem" {
		src = in.Item
	}
	enc, err := t.keyOf(src)
	if err != nil {
		return fastErr("ValidationException", err.Error())
	}
	f.mu.Lock()
	old, had := t.items[enc]
	switch op {
	case "PutItem":
		t.items[enc] = append(json.RawMessage(nil), in.Item...)
	case "DeleteItem":
		delete(t.items, enc)
	case "UpdateItem":
		item := map[string]json.RawMessage{}
		if had {
			json.Unmarshal(old, &item)
		} else {
			json.Unmarshal(in.Key, &item)
		}
		if err := applyUpdate(item, in.UpdateExpression, in.ExpressionAttributeNames, in.ExpressionAttributeValues); err != nil {
			f.mu.Unlock()
			return fastErr("ValidationException", err.Error())
		}
		t.items[enc], _ = json.Marshal(item)
	case "GetItem":
	default:
		f.mu.Unlock()
		return fastErr("ValidationException", "unsupported operation "+op)
	}
	f.mu.Unlock()
	out := map[string]json.RawMessage{}
	if had && (op == "GetItem" || in.ReturnValues == "ALL_OLD") {
		key := "Attributes"
		if op == "GetItem" {
			key = "Item"
		}
		out[key] = old
	}
	b, _ := json.Marshal(out)
	return b, 200
}

// applyUpdate applies the UpdateExpressions the patcher writes: "SET #a =
// :v, ..." then "REMOVE #b, ...", nothing else.
func applyUpdate(item map[string]json.RawMessage, expr string, names map[string]string, values map[string]json.RawMessage) error {
	set, remove := expr, ""
	if i := strings.Index(expr, "REMOVE "); i >= 0 {
		set, remove = expr[:i], expr[i+len("REMOVE "):]
	}
	set = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(set), "SET "))
	if set != "" {
		for _, a := range strings.Split(set, ", ") {
			n, v, ok := strings.Cut(a, " = ")
			if !ok || names[n] == "" || values[v] == nil {
				return fmt.Errorf("fastDDB: unsupported SET action %q", a)
			}
			item[names[n]] = values[v]
		}
	}
	if remove = strings.TrimSpace(remove); remove != "" {
		for _, n := range strings.Split(remove, ", ") {
			if names[n] == "" {
				return fmt.Errorf("fastDDB: unsupported REMOVE action %q", n)
			}
			delete(item, names[n])
		}
	}
	return nil
}

func (f *fastDDB) describe(name string) ([]byte, int) {
	t, ok := f.table(name)
	if !ok {
		return fastErr("ResourceNotFoundException", "Requested resource not found: Table: "+name+" not found")
	}
	var ks, defs []map[string]string
	for i, k := range t.keys {
		ks = append(ks, map[string]string{"AttributeName": k, "KeyType": []string{"HASH", "RANGE"}[i]})
		defs = append(defs, map[string]string{"AttributeName": k, "AttributeType": t.types[i]})
	}
	b, _ := json.Marshal(map[string]any{"Table": map[string]any{
		"TableName": name, "TableStatus": "ACTIVE", "KeySchema": ks, "AttributeDefinitions": defs,
	}, "TableDescription": map[string]any{
		"TableName": name, "TableStatus": "ACTIVE", "KeySchema": ks, "AttributeDefinitions": defs,
	}})
	return b, 200
}
