package streampoller

import (
	"strconv"
	"time"

	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
	"github.com/ddbrewind/rewind"
	"github.com/go-json-experiment/json/jsontext"
)

// EventJSON returns the payload a Lambda event source mapping sends for
// records read from the stream streamARN:
//
//	{"Records":[{"eventID":...,"eventName":...,"eventVersion":"1.1",
//	  "eventSource":"aws:dynamodb","awsRegion":...,
//	  "dynamodb":{"ApproximateCreationDateTime":<epoch seconds>,"Keys":...,
//	    "NewImage":...,"OldImage":...,"SequenceNumber":...,"SizeBytes":...,
//	    "StreamViewType":...},
//	  "eventSourceARN":streamARN,
//	  "userIdentity":{"type":"Service","principalId":"dynamodb.amazonaws.com"}}]}
//
// Members a record does not have are left out (userIdentity is only on TTL
// deletes, images only where the view type and event carry them).
// Attribute values are DynamoDB JSON, attribute names sorted.
func EventJSON(streamARN string, records []types.Record) []byte {
	dst := []byte(`{"Records":[`)
	for i, r := range records {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendRecordJSON(dst, streamARN, r)
	}
	return append(dst, "]}"...)
}

// AppendRecordJSON appends one record of a Lambda DynamoDB event (see
// EventJSON).
func AppendRecordJSON(dst []byte, streamARN string, r types.Record) []byte {
	dst = append(dst, '{')
	first := true
	str := func(name string, v *string) {
		if v == nil {
			return
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendString(dst, name)
		dst = append(dst, ':')
		dst = appendString(dst, *v)
	}
	str("eventID", r.EventID)
	if r.EventName != "" {
		str("eventName", ptr(string(r.EventName)))
	}
	str("eventVersion", r.EventVersion)
	str("eventSource", r.EventSource)
	str("awsRegion", r.AwsRegion)
	if r.Dynamodb != nil {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, `"dynamodb":`...)
		dst = appendStreamRecord(dst, r.Dynamodb)
	}
	str("eventSourceARN", &streamARN)
	if u := r.UserIdentity; u != nil {
		dst = append(dst, `,"userIdentity":{`...)
		n := 0
		for _, f := range []struct {
			name string
			v    *string
		}{{"type", u.Type}, {"principalId", u.PrincipalId}} {
			if f.v == nil {
				continue
			}
			if n > 0 {
				dst = append(dst, ',')
			}
			n++
			dst = appendString(dst, f.name)
			dst = append(dst, ':')
			dst = appendString(dst, *f.v)
		}
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

func ptr[T any](v T) *T { return &v }

func appendStreamRecord(dst []byte, s *types.StreamRecord) []byte {
	dst = append(dst, '{')
	n := 0
	sep := func(name string) {
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		dst = appendString(dst, name)
		dst = append(dst, ':')
	}
	if s.ApproximateCreationDateTime != nil {
		sep("ApproximateCreationDateTime")
		dst = appendEpochSeconds(dst, *s.ApproximateCreationDateTime)
	}
	if s.Keys != nil {
		sep("Keys")
		dst = AppendItemJSON(dst, s.Keys)
	}
	if s.NewImage != nil {
		sep("NewImage")
		dst = AppendItemJSON(dst, s.NewImage)
	}
	if s.OldImage != nil {
		sep("OldImage")
		dst = AppendItemJSON(dst, s.OldImage)
	}
	if s.SequenceNumber != nil {
		sep("SequenceNumber")
		dst = appendString(dst, *s.SequenceNumber)
	}
	if s.SizeBytes != nil {
		sep("SizeBytes")
		dst = strconv.AppendInt(dst, *s.SizeBytes, 10)
	}
	if s.StreamViewType != "" {
		sep("StreamViewType")
		dst = appendString(dst, string(s.StreamViewType))
	}
	return append(dst, '}')
}

// appendEpochSeconds writes t as a JSON number of seconds since the epoch,
// with a fraction only when t has one, as Lambda does
// (aws-lambda-go's SecondsEpochTime reads both).
func appendEpochSeconds(dst []byte, t time.Time) []byte {
	ms := t.UnixMilli()
	if ms%1000 == 0 {
		return strconv.AppendInt(dst, ms/1000, 10)
	}
	return strconv.AppendFloat(dst, float64(ms)/1000, 'f', -1, 64)
}

// AppendItemJSON appends item as DynamoDB JSON with attribute names
// sorted, in the rewind package's encoding (rewind.AppendItemJSON) of the
// same values.
func AppendItemJSON(dst []byte, item map[string]types.AttributeValue) []byte {
	return rewind.AppendItemJSON(dst, ddbItem(item))
}

// AppendAttributeValueJSON appends a DynamoDB Streams attribute value as
// DynamoDB JSON: {"S":"x"}, {"N":"1.5"}, {"B":"<base64>"}, {"BOOL":true},
// {"NULL":true}, {"SS":[...]}, {"NS":[...]}, {"BS":[<base64>...]},
// {"L":[...]}, {"M":{...}}.
func AppendAttributeValueJSON(dst []byte, av types.AttributeValue) []byte {
	return rewind.AppendAttributeValueJSON(dst, ddbValue(av))
}

// The Streams SDK has its own AttributeValue types, distinct from the
// DynamoDB SDK's that the rewind package encodes; ddbValue converts.
func ddbItem(item map[string]types.AttributeValue) rewind.Item {
	if item == nil {
		return nil
	}
	out := make(rewind.Item, len(item))
	for n, v := range item {
		out[n] = ddbValue(v)
	}
	return out
}

func ddbValue(av types.AttributeValue) ddbtypes.AttributeValue {
	switch v := av.(type) {
	case *types.AttributeValueMemberS:
		return &ddbtypes.AttributeValueMemberS{Value: v.Value}
	case *types.AttributeValueMemberN:
		return &ddbtypes.AttributeValueMemberN{Value: v.Value}
	case *types.AttributeValueMemberB:
		return &ddbtypes.AttributeValueMemberB{Value: v.Value}
	case *types.AttributeValueMemberBOOL:
		return &ddbtypes.AttributeValueMemberBOOL{Value: v.Value}
	case *types.AttributeValueMemberNULL:
		return &ddbtypes.AttributeValueMemberNULL{Value: v.Value}
	case *types.AttributeValueMemberSS:
		return &ddbtypes.AttributeValueMemberSS{Value: v.Value}
	case *types.AttributeValueMemberNS:
		return &ddbtypes.AttributeValueMemberNS{Value: v.Value}
	case *types.AttributeValueMemberBS:
		return &ddbtypes.AttributeValueMemberBS{Value: v.Value}
	case *types.AttributeValueMemberL:
		l := make([]ddbtypes.AttributeValue, len(v.Value))
		for i, e := range v.Value {
			l[i] = ddbValue(e)
		}
		return &ddbtypes.AttributeValueMemberL{Value: l}
	case *types.AttributeValueMemberM:
		return &ddbtypes.AttributeValueMemberM{Value: ddbItem(v.Value)}
	}
	// Unknown (a type newer than this SDK) or nil: the rewind encoding
	// writes NULL, the closest value that still parses.
	return nil
}

// appendString appends s as a JSON string. Unlike encoding/json it does not
// escape <, > and &, as Lambda does not.
func appendString(dst []byte, s string) []byte {
	out, _ := jsontext.AppendQuote(dst, s)
	return out
}
