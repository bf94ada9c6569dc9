package streamhandler

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/ddbrewind/rewind"
	"github.com/go-json-experiment/json/jsontext"
)

// undecodable keeps what could be read of a record, its raw JSON and the
// error. The event ID, when missing, is derived from the raw bytes so a
// redelivery still overwrites its own audit item.
func undecodable(ev rewind.ChangeEvent, raw []byte, err error) rewind.ChangeEvent {
	out := rewind.ChangeEvent{
		EventID:        ev.EventID,
		Table:          ev.Table,
		Region:         ev.Region,
		Action:         ev.Action,
		Time:           ev.Time,
		SequenceNumber: ev.SequenceNumber,
		SizeBytes:      ev.SizeBytes,
		StreamViewType: ev.StreamViewType,
		DecodeError:    err.Error(),
		Raw:            raw,
	}
	salvage(&out, raw)
	if out.EventID == "" {
		sum := sha256.Sum256(raw)
		out.EventID = "undecodable-" + hex.EncodeToString(sum[:16])
	}
	return out
}

// salvage fills what a failed decode left empty from a lenient reading
// of the raw record, so an undecodable record still has its sequence
// number (to be retried from), table and time (to be filed under).
func salvage(ev *rewind.ChangeEvent, raw []byte) {
	var r struct {
		EventID        any `json:"eventID"`
		EventName      any `json:"eventName"`
		EventSourceARN any `json:"eventSourceARN"`
		AWSRegion      any `json:"awsRegion"`
		DynamoDB       struct {
			ApproximateCreationDateTime json.Number `json:"ApproximateCreationDateTime"`
			SequenceNumber              any         `json:"SequenceNumber"`
			StreamViewType              any         `json:"StreamViewType"`
			SizeBytes                   json.Number `json:"SizeBytes"`
		} `json:"dynamodb"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	_ = dec.Decode(&r) // partial results are what we want
	str := func(v any) string { s, _ := v.(string); return s }
	if ev.EventID == "" {
		ev.EventID = str(r.EventID)
	}
	if ev.SequenceNumber == "" {
		if s := str(r.DynamoDB.SequenceNumber); s != "" && strings.Trim(s, "0123456789") == "" {
			ev.SequenceNumber = s
		}
	}
	if ev.Table == "" {
		if t, region, err := parseStreamARN(str(r.EventSourceARN)); err == nil {
			ev.Table, ev.Region = t, region
		}
	}
	if ev.Region == "" {
		ev.Region = str(r.AWSRegion)
	}
	if ev.Time.IsZero() && r.DynamoDB.ApproximateCreationDateTime != "" {
		if t, err := parseEpoch(jsontext.Value(r.DynamoDB.ApproximateCreationDateTime)); err == nil {
			ev.Time = t
		}
	}
	if ev.StreamViewType == "" {
		ev.StreamViewType = str(r.DynamoDB.StreamViewType)
	}
	if ev.SizeBytes == 0 {
		ev.SizeBytes, _ = r.DynamoDB.SizeBytes.Int64()
	}
	if ev.Action == "" {
		if a, err := rewind.ParseAction(str(r.EventName)); err == nil {
			ev.Action = a
		}
	}
}

// parseEpoch reads ApproximateCreationDateTime: epoch seconds, possibly
// with a fraction (milliseconds when the stream is configured for them).
func parseEpoch(v jsontext.Value) (time.Time, error) {
	if v.Kind() != '0' {
		return time.Time{}, fmt.Errorf("want epoch seconds, got %s", v)
	}
	s := string(v)
	if strings.ContainsAny(s, "eE") {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f < 0 || f > math.MaxInt32*4 {
			return time.Time{}, fmt.Errorf("bad epoch seconds %s", s)
		}
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(math.Round(frac*1e6))*1000).UTC(), nil
	}
	ip, fp, _ := strings.Cut(s, ".")
	sec, err := strconv.ParseInt(ip, 10, 64)
	if err != nil || sec < 0 {
		return time.Time{}, fmt.Errorf("bad epoch seconds %s", s)
	}
	var nsec int64
	if fp != "" {
		if len(fp) > 9 {
			fp = fp[:9]
		}
		n, err := strconv.ParseInt(fp, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("bad epoch seconds %s", s)
		}
		for i := len(fp); i < 9; i++ {
			n *= 10
		}
		nsec = n
	}
	// Parquet and the audit table keep microseconds.
	return time.Unix(sec, nsec).UTC().Truncate(time.Microsecond), nil
}

// parseStreamARN returns the table name and region of a stream ARN:
// arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-11-20T10:00:00.000
func parseStreamARN(arn string) (table, region string, err error) {
	if arn == "" {
		return "", "", errors.New("no eventSourceARN")
	}
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "dynamodb" {
		return "", "", fmt.Errorf("eventSourceARN %q is not a DynamoDB stream ARN", arn)
	}
	res, ok := strings.CutPrefix(parts[5], "table/")
	if !ok {
		return "", "", fmt.Errorf("eventSourceARN %q is not a DynamoDB stream ARN", arn)
	}
	table, _, _ = strings.Cut(res, "/stream/")
	if table == "" {
		return "", "", fmt.Errorf("eventSourceARN %q names no table", arn)
	}
	return table, parts[3], nil
}

// streamLabel returns the stream label of a stream ARN, the part after
// "/stream/", which tells streams of one table apart.
func streamLabel(arn string) string {
	_, label, _ := strings.Cut(arn, "/stream/")
	return label
}

// cleanLabel keeps letters and digits of a stream label and turns the rest
// into '-', so it is safe in object keys and Hadoop paths.
func cleanLabel(s string) string {
	if s == "" {
		return "stream"
	}
	b := []byte(s)
	for i, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			b[i] = '-'
		}
	}
	return string(b)
}
