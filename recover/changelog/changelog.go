// Package changelog is the application's change log: the small piece a
// service embeds, next to package recover/guard, that writes one
// structured log line per item it changes in DynamoDB. It is the runbook's
// first option for a table without a capture stack: from these lines
// `rewind index --logs` learns which items a bad deploy touched, so
// `rewind query` can build the key set and `rewind patch` can copy those
// items back from a restored table.
//
// New returns a Logger over any slog.Handler (default: JSON on stdout, so
// a Lambda function's lines land in its CloudWatch Logs log group); call
// Logger.Change after each successful write:
//
//	cl, err := changelog.New(changelog.Config{})
//	...
//	out, err := db.PutItem(ctx, in)
//	if err == nil {
//		cl.Change(ctx, "orders", key, rewind.ActionModify)
//	}
//
// One line is a JSON object (slog's JSON handler writes it):
//
//	{"time":"2026-12-02T00:10:11.123456789Z","level":"INFO","msg":"itemChange",
//	 "operation":"itemChange","id":"5f0c…","table":"orders",
//	 "key":{"pk":{"S":"t1"},"sk":{"S":"ORDER#42"}},"tenant":"t1","action":"MODIFY"}
//
// The key is DynamoDB JSON, as the capture writes keys; the action is
// INSERT, MODIFY or REMOVE, as in a stream record; id is random and unique
// per line, so the same line read from CloudWatch Logs and from an export
// of the log group to S3 is one change in the index. Parse reads a line
// back; it is what the indexer calls.
//
// The lines carry no item images: history-based recovery (patch
// --from-history) cannot tell an item's state from them and lists such
// items as unknown; patch them from a restored table. Their time is the
// application's clock when it logged, after the write returned: keep the
// point in time of a restore a little before the bad deploy's first line.
package changelog

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/ddbrewind/rewind"
)

// Operation is the "operation" (and "msg") of every change line, and the
// term a CloudWatch Logs filter pattern selects them by (FilterPattern).
const Operation = "itemChange"

// FilterPattern is the CloudWatch Logs filter pattern that selects change
// lines: the JSON form on the operation field.
const FilterPattern = `{ $.operation = "itemChange" }`

// Config configures a Logger. The zero value is ready to use.
type Config struct {
	// Handler receives one record per change. Default: a
	// slog.NewJSONHandler on os.Stdout. Any handler that writes JSON
	// objects one per line (slog.JSONHandler, or one wrapping it) makes
	// lines Parse reads; a text handler does not.
	Handler slog.Handler
	// Tenant says which key attribute the tenant comes from, as the
	// capture's TenantRule does. Default: attribute "pk", whole value.
	Tenant rewind.TenantRule
	// Now stamps the lines. Default time.Now.
	Now func() time.Time
}

// EnsureDefaults fills the zero fields with their defaults.
func (c *Config) EnsureDefaults() {
	if c.Handler == nil {
		c.Handler = slog.NewJSONHandler(os.Stdout, nil)
	}
	c.Tenant.EnsureDefaults()
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports a bad field by name.
func (c Config) Validate() error {
	if err := c.Tenant.Validate(); err != nil {
		return fmt.Errorf("changelog: Config.Tenant: %w", err)
	}
	return nil
}

// Logger writes change lines. It is safe for concurrent use when its
// handler is (slog's handlers are).
type Logger struct {
	cfg Config
}

// New returns a Logger with cfg's defaults filled in, or an error naming
// the bad field.
func New(cfg Config) (*Logger, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Logger{cfg: cfg}, nil
}

// Change logs one change of the item with key key in table. Call it once
// the write succeeded; the error is the handler's, or a bad argument.
func (l *Logger) Change(ctx context.Context, table string, key rewind.Key, action rewind.Action) error {
	if table == "" {
		return errors.New("changelog: empty table name")
	}
	if len(key) == 0 {
		return fmt.Errorf("changelog: table %s: empty key", table)
	}
	if _, err := rewind.ParseAction(string(action)); err != nil {
		return fmt.Errorf("changelog: table %s key %s: %w", table, key, err)
	}
	if !l.cfg.Handler.Enabled(ctx, slog.LevelInfo) {
		return nil
	}
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return fmt.Errorf("changelog: id: %w", err)
	}
	r := slog.NewRecord(l.cfg.Now().UTC(), slog.LevelInfo, Operation, 0)
	r.AddAttrs(
		slog.String("operation", Operation),
		slog.String("id", hex.EncodeToString(id[:])),
		slog.String("table", table),
		slog.Any("key", json.RawMessage(key.AppendJSON(nil))),
		slog.String("tenant", l.cfg.Tenant.Tenant(key)),
		slog.String("action", string(action)),
	)
	if err := l.cfg.Handler.Handle(ctx, r); err != nil {
		return fmt.Errorf("changelog: table %s key %s: %w", table, key, err)
	}
	return nil
}

// ChangeItem logs a change of item, whose key is the attributes named by
// keyAttrs (the table's partition key, then its sort key if it has one).
func (l *Logger) ChangeItem(ctx context.Context, table string, item rewind.Item, action rewind.Action, keyAttrs ...string) error {
	key, err := rewind.KeyFromItemSchema(item, keyAttrs...)
	if err != nil {
		return fmt.Errorf("changelog: table %s: %w", table, err)
	}
	return l.Change(ctx, table, key, action)
}

// Record is one change line read back.
type Record struct {
	// ID is the line's id, unique per change.
	ID string
	// Time is the line's time, in UTC.
	Time   time.Time
	Table  string
	Key    rewind.Key
	Tenant string
	Action rewind.Action
	// Size is the length of the line in bytes.
	Size int
}

// line is a change line's JSON form.
type line struct {
	Time      string          `json:"time"`
	Operation string          `json:"operation"`
	ID        string          `json:"id"`
	Table     string          `json:"table"`
	Key       json.RawMessage `json:"key"`
	Tenant    *string         `json:"tenant"`
	Action    string          `json:"action"`
}

// Parse reads one log message. ok is false when the message is not a
// change line (any other log output: not a JSON object, or one whose
// operation is not Operation); err is set when it is one but malformed,
// naming the field. A message may carry text before the JSON object (a
// runtime's "<time> <request id> INFO " prefix): the object is looked for
// from the first '{'.
func Parse(msg []byte) (rec Record, ok bool, err error) {
	if !bytes.Contains(msg, []byte(Operation)) {
		return Record{}, false, nil
	}
	i := bytes.IndexByte(msg, '{')
	if i < 0 {
		return Record{}, false, nil
	}
	body := bytes.TrimSpace(msg[i:])
	var op struct {
		Operation string `json:"operation"`
	}
	if json.Unmarshal(body, &op) != nil {
		// Not JSON, or broken JSON: a change line only if it says so.
		if bytes.Contains(body, []byte(`"operation":"`+Operation+`"`)) {
			return Record{}, true, errors.New("change line is not a valid JSON object")
		}
		return Record{}, false, nil
	}
	if op.Operation != Operation {
		return Record{}, false, nil
	}
	var l line
	if err := json.Unmarshal(body, &l); err != nil {
		return Record{}, true, fmt.Errorf("change line: %w", err)
	}
	rec = Record{ID: l.ID, Table: l.Table, Size: len(msg)}
	switch {
	case l.ID == "":
		return Record{}, true, errors.New(`change line has no "id"`)
	case l.Table == "":
		return Record{}, true, errors.New(`change line has no "table"`)
	case len(l.Key) == 0:
		return Record{}, true, errors.New(`change line has no "key"`)
	case l.Tenant == nil:
		return Record{}, true, errors.New(`change line has no "tenant"`)
	}
	rec.Tenant = *l.Tenant
	if rec.Time, err = time.Parse(time.RFC3339Nano, l.Time); err != nil {
		return Record{}, true, fmt.Errorf(`change line "time" %q: want RFC 3339`, l.Time)
	}
	rec.Time = rec.Time.UTC()
	if rec.Key, err = rewind.ParseKey(l.Key); err != nil {
		return Record{}, true, fmt.Errorf(`change line "key": %w`, err)
	}
	if rec.Action, err = rewind.ParseAction(l.Action); err != nil {
		return Record{}, true, fmt.Errorf(`change line "action": %w`, err)
	}
	return rec, true, nil
}

// Event returns the change event the record stands for, as the index
// stores it: the key and action, no images, StreamViewType
// rewind.StreamViewChangeLog, event ID "changelog:" and the line's id, no
// sequence number or shard, the region empty.
func (r Record) Event() rewind.ChangeEvent {
	return rewind.ChangeEvent{
		EventID:        "changelog:" + r.ID,
		Table:          r.Table,
		Tenant:         r.Tenant,
		Action:         r.Action,
		Time:           r.Time,
		StreamViewType: rewind.StreamViewChangeLog,
		Keys:           r.Key,
		SizeBytes:      int64(r.Size),
	}
}
