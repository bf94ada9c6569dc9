package streampoller

import (
	"encoding/base64"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
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

// AppendItemJSON appends item as DynamoDB JSON with attribute names sorted.
func AppendItemJSON(dst []byte, item map[string]types.AttributeValue) []byte {
	names := make([]string, 0, len(item))
	for n := range item {
		names = append(names, n)
	}
	slices.Sort(names)
	dst = append(dst, '{')
	for i, n := range names {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, n)
		dst = append(dst, ':')
		dst = AppendAttributeValueJSON(dst, item[n])
	}
	return append(dst, '}')
}

// AppendAttributeValueJSON appends a DynamoDB Streams attribute value as
// DynamoDB JSON: {"S":"x"}, {"N":"1.5"}, {"B":"<base64>"}, {"BOOL":true},
// {"NULL":true}, {"SS":[...]}, {"NS":[...]}, {"BS":[<base64>...]},
// {"L":[...]}, {"M":{...}}.
//
// The Streams SDK has its own AttributeValue types, distinct from the
// DynamoDB SDK's that the rewind package encodes, hence this copy.
func AppendAttributeValueJSON(dst []byte, av types.AttributeValue) []byte {
	switch v := av.(type) {
	case *types.AttributeValueMemberS:
		dst = append(dst, `{"S":`...)
		dst = appendString(dst, v.Value)
	case *types.AttributeValueMemberN:
		dst = append(dst, `{"N":`...)
		dst = appendString(dst, v.Value)
	case *types.AttributeValueMemberB:
		dst = append(dst, `{"B":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, v.Value)
		dst = append(dst, '"')
	case *types.AttributeValueMemberBOOL:
		dst = append(dst, `{"BOOL":`...)
		dst = strconv.AppendBool(dst, v.Value)
	case *types.AttributeValueMemberNULL:
		dst = append(dst, `{"NULL":true`...)
	case *types.AttributeValueMemberSS:
		dst = appendStrings(append(dst, `{"SS":`...), v.Value)
	case *types.AttributeValueMemberNS:
		dst = appendStrings(append(dst, `{"NS":`...), v.Value)
	case *types.AttributeValueMemberBS:
		dst = append(dst, `{"BS":[`...)
		for i, b := range v.Value {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, '"')
			dst = base64.StdEncoding.AppendEncode(dst, b)
			dst = append(dst, '"')
		}
		dst = append(dst, ']')
	case *types.AttributeValueMemberL:
		dst = append(dst, `{"L":[`...)
		for i, e := range v.Value {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendAttributeValueJSON(dst, e)
		}
		dst = append(dst, ']')
	case *types.AttributeValueMemberM:
		dst = append(dst, `{"M":`...)
		dst = AppendItemJSON(dst, v.Value)
	default:
		// Unknown (a type newer than this SDK) or nil: NULL is the closest
		// value that still parses.
		dst = append(dst, `{"NULL":true`...)
	}
	return append(dst, '}')
}

func appendStrings(dst []byte, ss []string) []byte {
	dst = append(dst, '[')
	for i, s := range ss {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, s)
	}
	return append(dst, ']')
}

// appendString appends s as a JSON string. Unlike encoding/json it does not
// escape <, > and &, as Lambda does not.
func appendString(dst []byte, s string) []byte {
	out, _ := jsontext.AppendQuote(dst, s)
	return out
}
