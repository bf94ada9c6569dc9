package rewind

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// A capture failure record is what a Lambda event source mapping with an
// Amazon S3 on-failure destination writes when it gives up on a batch of
// stream records (MaximumRetryAttempts or MaximumRecordAgeInSeconds
// exhausted). This file models what AWS documents in "Retain discarded
// records for a DynamoDB event source in Lambda"
// (https://docs.aws.amazon.com/lambda/latest/dg/services-dynamodb-errors.html):
//
//   - the object key is
//     aws/lambda/<ESM UUID>/<shard ID>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<Random UUID>,
//     the time being when Lambda wrote the record, in UTC;
//   - the object is one JSON document with requestContext (requestId,
//     functionArn, condition such as "RetryAttemptsExhausted" or
//     "RecordAgeExceeded", approximateInvokeCount), responseContext
//     (statusCode, executedVersion, functionError), version ("1.0"),
//     timestamp, DDBStreamBatchInfo (shardId, startSequenceNumber,
//     endSequenceNumber, approximateArrivalOfFirstRecord,
//     approximateArrivalOfLastRecord, batchSize, streamArn) and, for S3
//     destinations only, payload: the whole invocation event, the
//     {"Records":[...]} the function was invoked with. The documented
//     example shows payload as the event; FailureRecord.Event accepts it as
//     a JSON object or as a JSON string holding the event.

// FailurePrefix is the key prefix under which Lambda writes failure
// records in an S3 on-failure destination.
const FailurePrefix = "aws/lambda/"

// FailureLayout is the documented key layout, for messages.
const FailureLayout = "aws/lambda/<ESM UUID>/<shard ID>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<UUID>"

// failureKeyTime is the layout of the time in a failure record's name.
const failureKeyTime = "2006-01-02T15.04.05"

// StreamRetention is how long DynamoDB Streams keeps a record (24 hours):
// the records of a batch Lambda gave up on were all written at most this
// long before the failure record.
const StreamRetention = 24 * time.Hour

// FailureRecord is a decoded on-failure invocation record.
type FailureRecord struct {
	RequestContext struct {
		RequestID              string `json:"requestId"`
		FunctionARN            string `json:"functionArn"`
		Condition              string `json:"condition"`
		ApproximateInvokeCount int    `json:"approximateInvokeCount"`
	} `json:"requestContext"`
	ResponseContext struct {
		StatusCode      int    `json:"statusCode"`
		ExecutedVersion string `json:"executedVersion"`
		FunctionError   string `json:"functionError,omitempty"`
	} `json:"responseContext"`
	Version   string          `json:"version"`
	Timestamp string          `json:"timestamp"`
	BatchInfo StreamBatchInfo `json:"DDBStreamBatchInfo"`
	// Payload is the invocation event as stored: a JSON object, or a JSON
	// string holding one. Use Event.
	Payload json.RawMessage `json:"payload,omitempty"`
}

// StreamBatchInfo names the stream records a failure record is about.
type StreamBatchInfo struct {
	ShardID                         string `json:"shardId"`
	StartSequenceNumber             string `json:"startSequenceNumber"`
	EndSequenceNumber               string `json:"endSequenceNumber"`
	ApproximateArrivalOfFirstRecord string `json:"approximateArrivalOfFirstRecord"`
	ApproximateArrivalOfLastRecord  string `json:"approximateArrivalOfLastRecord"`
	BatchSize                       int    `json:"batchSize"`
	StreamARN                       string `json:"streamArn"`
}

// ParseFailureRecord decodes a failure record object.
func ParseFailureRecord(b []byte) (*FailureRecord, error) {
	var r FailureRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("failure record: %w", err)
	}
	if r.BatchInfo.ShardID == "" || r.BatchInfo.StartSequenceNumber == "" {
		return nil, errors.New("failure record: no DDBStreamBatchInfo.shardId or startSequenceNumber (not a DynamoDB stream failure record)")
	}
	return &r, nil
}

// Event returns the invocation event the record carries, the payload the
// stream handler decodes. A record without a payload (an SQS or SNS
// destination's, or one Lambda could not fit) is an error: only the stream,
// within its 24 hours, still holds those records.
func (r *FailureRecord) Event() ([]byte, error) {
	p := bytes.TrimSpace(r.Payload)
	switch {
	case len(p) == 0 || string(p) == "null":
		return nil, fmt.Errorf("failure record for shard %s records %s..%s has no payload: read them from the stream while it still holds them (24 h)",
			r.BatchInfo.ShardID, r.BatchInfo.StartSequenceNumber, r.BatchInfo.EndSequenceNumber)
	case p[0] == '"':
		var s string
		if err := json.Unmarshal(p, &s); err != nil {
			return nil, fmt.Errorf("failure record payload: %w", err)
		}
		return []byte(s), nil
	case p[0] == '{':
		return p, nil
	}
	return nil, fmt.Errorf("failure record payload is neither an object nor a string: %.40s", p)
}

// FailureKey returns the key Lambda gives a failure record written at t.
func FailureKey(mappingUUID, shardID string, t time.Time, id string) string {
	t = t.UTC()
	return fmt.Sprintf("%s%s/%s/%s/%s-%s", FailurePrefix, mappingUUID, shardID, t.Format("2006/01/02"), t.Format(failureKeyTime), id)
}

// FailureKeyInfo is what a failure record's key says.
type FailureKeyInfo struct {
	MappingUUID string
	ShardID     string
	// Written is when Lambda wrote the record (to the second).
	Written time.Time
}

// Window is the span the record's stream records may have been written
// in: the stream keeps records StreamRetention, so no earlier.
func (k FailureKeyInfo) Window() (from, to time.Time) {
	return k.Written.Add(-StreamRetention), k.Written.Add(time.Second)
}

// ParseFailureKey reads a failure record's key (with any prefix before
// aws/lambda/).
func ParseFailureKey(key string) (FailureKeyInfo, error) {
	i := strings.Index(key, FailurePrefix)
	if i < 0 {
		return FailureKeyInfo{}, fmt.Errorf("key %q is not a failure record (want %s)", key, FailureLayout)
	}
	parts := strings.Split(key[i+len(FailurePrefix):], "/")
	if len(parts) != 6 || parts[0] == "" || parts[1] == "" {
		return FailureKeyInfo{}, fmt.Errorf("key %q is not a failure record (want %s)", key, FailureLayout)
	}
	name := parts[5]
	if len(name) < len(failureKeyTime) {
		return FailureKeyInfo{}, fmt.Errorf("key %q: name %q does not start with YYYY-MM-DDTHH.MM.SS", key, name)
	}
	t, err := time.Parse(failureKeyTime, name[:len(failureKeyTime)])
	if err != nil {
		return FailureKeyInfo{}, fmt.Errorf("key %q: name %q does not start with YYYY-MM-DDTHH.MM.SS: %w", key, name, err)
	}
	return FailureKeyInfo{MappingUUID: parts[0], ShardID: parts[1], Written: t.UTC()}, nil
}
