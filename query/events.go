package query

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ddbrewind/rewind"
)

// AppendEventJSON appends ev as one JSON line (with the newline):
//
//	{"time":"2026-11-20T10:31:12Z","event_id":"…","sequence_number":"…","table":"orders","tenant":"acme",
//	 "action":"MODIFY","ttl_expiry":false,"key":{"pk":{"S":"TENANT#acme"}},"changed":["status"],
//	 "old":{…},"new":{…}}
//
// old and new are compact DynamoDB JSON, left out when the event has no
// such image. Images are compacted here too, for stores indexed from
// capture objects written before the stream handler compacted them.
func AppendEventJSON(b []byte, ev *rewind.ChangeEvent) ([]byte, error) {
	b = append(b, `{"time":`...)
	b = appendJSONString(b, ev.Time.UTC().Format(time.RFC3339Nano))
	b = append(b, `,"event_id":`...)
	b = appendJSONString(b, ev.EventID)
	b = append(b, `,"sequence_number":`...)
	b = appendJSONString(b, ev.SequenceNumber)
	b = append(b, `,"table":`...)
	b = appendJSONString(b, ev.Table)
	b = append(b, `,"tenant":`...)
	b = appendJSONString(b, ev.Tenant)
	b = append(b, `,"action":`...)
	b = appendJSONString(b, string(ev.Action))
	b = append(b, `,"ttl_expiry":`...)
	b = strconv.AppendBool(b, ev.TTLExpiry)
	b = append(b, `,"key":`...)
	b = ev.Keys.AppendJSON(b)
	b = append(b, `,"changed":[`...)
	for i, a := range ev.ChangedAttributes {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, a)
	}
	b = append(b, ']')
	for _, im := range []struct {
		name  string
		image rewind.Image
	}{{"old", ev.OldImage}, {"new", ev.NewImage}} {
		if im.image == nil {
			continue
		}
		b = append(append(append(b, `,"`...), im.name...), `":`...)
		var err error
		if b, err = rewind.AppendCompactJSON(b, im.image); err != nil {
			return b, fmt.Errorf("event %s: %s image: %w", ev.EventID, im.name, err)
		}
	}
	return append(b, "}\n"...), nil
}

// EventTableHeader is the header line of AppendEventRow's table.
const EventTableHeader = "TIME (UTC)                   ACTION  TABLE / TENANT / KEY / CHANGED\n"

// AppendEventRow appends one line about e for people: time, action,
// table, tenant, key and changed attributes.
func AppendEventRow(b []byte, e *Event) ([]byte, error) {
	k, err := e.ItemKey()
	if err != nil {
		return b, fmt.Errorf("event %s: %w", e.EventID, err)
	}
	action := string(e.Action)
	if e.TTLExpiry {
		action = "TTL"
	}
	b = fmt.Appendf(b, "%-27s  %-6s  %s  %s  %s  %s\n",
		e.Time().Format(time.RFC3339Nano), action, e.Table, displayTenant(string(e.Tenant)), k, strings.Join(e.ChangedAttributes(), ","))
	return b, nil
}
