package query

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/indexer"
)

// Change is one change of an item, with the attributes it changed.
type Change struct {
	Time           time.Time
	EventID        string
	SequenceNumber string
	Tenant         string
	Action         rewind.Action
	TTLExpiry      bool
	// Images is false when the stream carried no images (KEYS_ONLY): Attrs
	// then name the changed attributes without values.
	Images bool
	// Attrs are the top-level attributes that differ between the old and
	// the new image, in name order.
	Attrs []AttrChange
}

// AttrChange is one attribute's value before and after a change; nil
// means absent.
type AttrChange struct {
	Name     string
	Old, New types.AttributeValue
}

// History returns every change of one item in [from, to) (zero times leave
// a side open), in order: by time, then sequence number, then event ID
// (sortChanges).
func History(ctx context.Context, st *indexer.Store, table string, key rewind.Key, from, to time.Time) ([]Change, error) {
	q := Query{From: from, To: to}
	if err := q.Validate(); err != nil {
		return nil, err
	}
	w := q.Window()
	it, err := st.ScanItem(table, key, w)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	recs, err := st.Records(w)
	if err != nil {
		return nil, err
	}
	defer recs.Close()
	var out []Change
	for it.Next() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ev, err := recs.Event(it.Entry())
		if err != nil {
			return nil, err
		}
		c, err := changeOf(&ev)
		if err != nil {
			return nil, fmt.Errorf("history of %s %s: %w", table, key, err)
		}
		out = append(out, c)
	}
	if err := it.Err(); err != nil {
		return nil, err
	}
	sortChanges(out)
	return out, nil
}

// sortChanges puts an item's changes in history order: time, sequence
// number, event ID. The store already holds them by time and sequence
// number; two changes that share both (never from one stream's shard,
// whose sequence numbers are unique, but possible from damaged or merged
// input) are ordered by event ID here, so that the order does not depend
// on which was indexed first and every engine prints the same history.
func sortChanges(cs []Change) {
	slices.SortStableFunc(cs, func(a, b Change) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		if c := rewind.CompareSequenceNumbers(a.SequenceNumber, b.SequenceNumber); c != 0 {
			return c
		}
		return strings.Compare(a.EventID, b.EventID)
	})
}

func changeOf(ev *rewind.ChangeEvent) (Change, error) {
	c := Change{
		Time: ev.Time, EventID: ev.EventID, SequenceNumber: ev.SequenceNumber,
		Tenant: ev.Tenant, Action: ev.Action, TTLExpiry: ev.TTLExpiry,
		Images: ev.OldImage != nil || ev.NewImage != nil,
	}
	if !c.Images {
		for _, n := range ev.ChangedAttributes {
			c.Attrs = append(c.Attrs, AttrChange{Name: n})
		}
		return c, nil
	}
	old, err := ev.OldImage.Item()
	if err != nil {
		return c, fmt.Errorf("event %s: old image: %w", ev.EventID, err)
	}
	nw, err := ev.NewImage.Item()
	if err != nil {
		return c, fmt.Errorf("event %s: new image: %w", ev.EventID, err)
	}
	var names []string
	for n := range old {
		names = append(names, n)
	}
	for n := range nw {
		if _, ok := old[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		o, ok1 := old[n]
		v, ok2 := nw[n]
		if ok1 && ok2 && rewind.EqualAttributeValues(o, v) {
			continue
		}
		c.Attrs = append(c.Attrs, AttrChange{Name: n, Old: o, New: v})
	}
	return c, nil
}

// WriteHistoryJSON writes one JSON line per change:
//
//	{"time":"2026-11-20T10:31:12Z","event_id":"…","sequence_number":"…","action":"MODIFY","ttl_expiry":false,"tenant":"acme","images":true,
//	 "changes":[{"attr":"status","old":{"S":"new"},"new":{"S":"paid"}}]}
//
// old or new is left out where the attribute was absent.
func WriteHistoryJSON(w io.Writer, changes []Change) error {
	bw := bufio.NewWriter(w)
	var b []byte
	for _, c := range changes {
		b = append(b[:0], `{"time":`...)
		b = appendJSONString(b, c.Time.UTC().Format(time.RFC3339Nano))
		b = append(b, `,"event_id":`...)
		b = appendJSONString(b, c.EventID)
		b = append(b, `,"sequence_number":`...)
		b = appendJSONString(b, c.SequenceNumber)
		b = append(b, `,"action":`...)
		b = appendJSONString(b, string(c.Action))
		b = append(b, `,"ttl_expiry":`...)
		b = strconv.AppendBool(b, c.TTLExpiry)
		b = append(b, `,"tenant":`...)
		b = appendJSONString(b, c.Tenant)
		b = append(b, `,"images":`...)
		b = strconv.AppendBool(b, c.Images)
		b = append(b, `,"changes":[`...)
		for i, a := range c.Attrs {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"attr":`...)
			b = appendJSONString(b, a.Name)
			if a.Old != nil {
				b = append(b, `,"old":`...)
				b = rewind.AppendAttributeValueJSON(b, a.Old)
			}
			if a.New != nil {
				b = append(b, `,"new":`...)
				b = rewind.AppendAttributeValueJSON(b, a.New)
			}
			b = append(b, '}')
		}
		b = append(b, "]}\n"...)
		bw.Write(b)
	}
	return bw.Flush()
}

// WriteHistoryTable writes the changes for a person: one header line per
// change, then one line per attribute with its value before and after.
func WriteHistoryTable(w io.Writer, table string, key rewind.Key, changes []Change) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%s %s: %d change(s)\n", table, key, len(changes))
	for _, c := range changes {
		action := string(c.Action)
		if c.TTLExpiry {
			action += " (TTL expiry)"
		}
		fmt.Fprintf(bw, "\n%s  %s  tenant %q  seq %s  event %s\n",
			c.Time.UTC().Format(time.RFC3339Nano), action, c.Tenant, c.SequenceNumber, c.EventID)
		if !c.Images {
			names := make([]string, len(c.Attrs))
			for i, a := range c.Attrs {
				names[i] = a.Name
			}
			fmt.Fprintf(bw, "  (no images in the stream) changed: %s\n", strings.Join(names, ", "))
			continue
		}
		if len(c.Attrs) == 0 {
			fmt.Fprintf(bw, "  (no attribute changed)\n")
			continue
		}
		nameW, oldW := 0, 0
		olds := make([]string, len(c.Attrs))
		news := make([]string, len(c.Attrs))
		for i, a := range c.Attrs {
			olds[i], news[i] = ShortValue(a.Old), ShortValue(a.New)
			nameW = max(nameW, len(a.Name))
			oldW = max(oldW, len([]rune(olds[i])))
		}
		for i, a := range c.Attrs {
			fmt.Fprintf(bw, "  %-*s  %s%s  →  %s\n", nameW, a.Name, olds[i], strings.Repeat(" ", oldW-len([]rune(olds[i]))), news[i])
		}
	}
	return bw.Flush()
}

// ShortValue renders an attribute value on one line for people: strings
// quoted, numbers and booleans bare, binary as b64:…, NULL as null, other
// types as DynamoDB JSON, "(absent)" for nil, cut at 80 characters.
func ShortValue(av types.AttributeValue) string {
	var s string
	switch v := av.(type) {
	case nil:
		return "(absent)"
	case *types.AttributeValueMemberS:
		s = string(appendJSONString(nil, v.Value))
	case *types.AttributeValueMemberN:
		s = v.Value
	case *types.AttributeValueMemberBOOL:
		s = strconv.FormatBool(v.Value)
	case *types.AttributeValueMemberNULL:
		s = "null"
	case *types.AttributeValueMemberB:
		s = "b64:" + base64.StdEncoding.EncodeToString(v.Value)
	default:
		s = string(rewind.AppendAttributeValueJSON(nil, av))
	}
	if r := []rune(s); len(r) > 80 {
		s = string(r[:79]) + "…"
	}
	return s
}
