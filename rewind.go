// Package rewind holds the vocabulary shared by every stage of rewind: the
// change event captured from a DynamoDB stream, the primary key of an item
// with its canonical byte encoding, DynamoDB JSON for attribute values, and
// the key-set format that drives a recovery.
//
// The stages live in their own packages: streamhandler captures change
// events, indexer and query answer forensic questions over them, and recover
// puts the impacted items back. They talk to each other only through the
// types in this package and the files they write.
package rewind

import (
	"fmt"
	"time"
)

// Action is what a stream record did to an item.
type Action string

// The three stream event names DynamoDB emits.
const (
	ActionInsert Action = "INSERT"
	ActionModify Action = "MODIFY"
	ActionRemove Action = "REMOVE"
)

// ParseAction returns the Action named s, or an error naming s.
func ParseAction(s string) (Action, error) {
	switch Action(s) {
	case ActionInsert, ActionModify, ActionRemove:
		return Action(s), nil
	}
	return "", fmt.Errorf("unknown action %q (want INSERT, MODIFY or REMOVE)", s)
}

// ChangeEvent is one change to one item, as read from a DynamoDB stream
// record. It is what the stream handler persists and what the indexer
// ingests.
type ChangeEvent struct {
	// EventID is the stream record's eventID: unique per change, and the
	// same when AWS redelivers the record, so it deduplicates.
	EventID string
	// Table and Region come from the stream ARN (eventSourceARN).
	Table  string
	Region string
	// Tenant is taken from a key attribute by a TenantRule, the same rule
	// whatever captured the event; empty when the item has none.
	Tenant string
	// Action is INSERT, MODIFY or REMOVE.
	Action Action
	// TTLExpiry is true for a REMOVE done by DynamoDB's TTL process
	// (userIdentity type Service, principal dynamodb.amazonaws.com).
	TTLExpiry bool
	// Time is the record's ApproximateCreationDateTime, in UTC.
	Time time.Time
	// SequenceNumber orders records within a shard. It is a decimal string
	// of varying length: compare with CompareSequenceNumbers, not as text.
	SequenceNumber string
	// ShardID is the stream shard the record came from, when known; empty
	// for an event read from an incremental export.
	ShardID string
	// Export is the incremental export the event was read from, and its
	// window; zero for an event read from a stream.
	Export ExportWindow
	// StreamViewType is KEYS_ONLY, NEW_IMAGE, OLD_IMAGE or NEW_AND_OLD_IMAGES
	// for a stream's events; StreamViewChangeLog for an application change
	// log's (keys and action only).
	StreamViewType string
	// Keys are the item's primary key attributes.
	Keys Key
	// OldImage and NewImage are DynamoDB JSON objects ({"a":{"S":"x"}}), or
	// nil when the stream view type or the action does not carry them.
	OldImage Image
	NewImage Image
	// ChangedAttributes names the top-level attributes whose value differs
	// between OldImage and NewImage (or every attribute of the one image
	// present), sorted. Nil when neither image is present. Every source of
	// events computes it with the function ChangedAttributes.
	ChangedAttributes []string
	// SizeBytes is the record's SizeBytes as DynamoDB reports it.
	SizeBytes int64
	// DecodeError is set when the record could not be decoded; Raw then holds
	// the record as received, so nothing is lost.
	DecodeError string
	Raw         []byte
}

// ItemID returns the identity of the item the event touched: its table and
// canonical key.
func (e *ChangeEvent) ItemID() string {
	return e.Table + "\x00" + string(e.Keys.Encode())
}
