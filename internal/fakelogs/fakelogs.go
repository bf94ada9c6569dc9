// Package fakelogs is a local stand-in for Amazon CloudWatch Logs, speaking
// the service's JSON 1.1 protocol (POST /, X-Amz-Target
// Logs_20140328.<Operation>, errors as {"__type": ..., "message": ...} with
// HTTP 400), so tests drive it through the real SDK client
// (aws-sdk-go-v2/service/cloudwatchlogs) with BaseEndpoint set to
// Server.URL.
//
// What it models, after the CloudWatch Logs API reference:
//
//   - CreateLogGroup, CreateLogStream: ResourceAlreadyExistsException when
//     the group or stream exists.
//   - PutLogEvents: events appended to a stream; ResourceNotFoundException
//     for a missing group or stream; InvalidParameterException for an
//     empty batch or events out of chronological order (the API requires
//     a batch in timestamp order).
//   - FilterLogEvents: events of a group (logGroupName or
//     logGroupIdentifier), narrowed by logStreamNames or
//     logStreamNamePrefix (not both: InvalidParameterException), startTime
//     and endTime in milliseconds, both inclusive ("events with a timestamp
//     before/later than this time are not returned"), and filterPattern;
//     sorted by timestamp, then ingestion order; at most limit events per
//     page (default and maximum 10000; InvalidParameterException outside
//     1..10000), with an opaque nextToken while more remain. Like the
//     service, a page may hold fewer events than limit, even none, and
//     still carry a nextToken (PageSize and EmptyPages force this). A
//     missing group is ResourceNotFoundException.
//   - Filter patterns: "" (every event), terms (`ERROR` or quoted
//     `"item change"`: each must appear in the message, case-sensitive),
//     and the JSON form on one top-level field, `{ $.field = "value" }`
//     or `{ $.field = value }` (the message must be a JSON object whose
//     field equals the string). Anything else is InvalidParameterException
//     ("Invalid filter pattern").
//   - CreateExportTask: with Server.S3 set, writes the events of the
//     group in [from, to] to the bucket in the export layout
//     <destinationPrefix>/<taskId>/<stream>/000000.gz (destinationPrefix
//     default "exportedlogs"), gzip, one event per line,
//     "<timestamp RFC 3339, milliseconds, Z> <message>", plus the
//     <destinationPrefix>/aws-logs-write-test object the service writes
//     when it checks the bucket's permissions. Unlike the service the
//     export is complete when the call returns (no DescribeExportTasks).
//
// What it does not model: authentication (any signature is accepted),
// throttling, quotas (event and batch sizes, 10000 events per batch),
// retention, sequence tokens, log group classes, the other operations
// (UnknownOperationException), filter pattern forms beyond the above
// (OR/-term exclusion, numeric comparisons, space-delimited fields, regex).
package fakelogs

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Event is one stored log event.
type Event struct {
	Stream    string
	Timestamp int64 // ms since the epoch
	Message   string
	Ingestion int64 // ms since the epoch
	ID        string
	seq       int64
}

// S3API is the part of an S3 client CreateExportTask writes through.
type S3API interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// Server is a CloudWatch Logs stand-in listening on 127.0.0.1.
type Server struct {
	// URL is the endpoint to give the SDK client (BaseEndpoint).
	URL string
	// PageSize, when positive, caps the events of one FilterLogEvents
	// page below the request's limit, so clients must follow nextToken.
	PageSize int
	// EmptyPages, when true, answers the first call of every filter with
	// no events and a nextToken, as the service may.
	EmptyPages bool
	// S3 is where CreateExportTask writes; nil makes it fail.
	S3 S3API

	srv *httptest.Server

	mu      sync.Mutex
	groups  map[string]map[string][]Event // group → stream → events
	seq     int64
	calls   map[string]int
	filters []FilterCall
	tasks   int
}

// FilterCall records one FilterLogEvents request, for assertions.
type FilterCall struct {
	Group     string
	Streams   []string
	Start     *int64
	End       *int64
	Pattern   string
	Limit     int
	NextToken string
}

// Start starts a server; Close stops it.
func Start() *Server {
	s := &Server{groups: map[string]map[string][]Event{}, calls: map[string]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// Calls returns how many calls an operation received.
func (s *Server) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// Filters returns the FilterLogEvents requests received, in order.
func (s *Server) Filters() []FilterCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]FilterCall(nil), s.filters...)
}

// Put appends events to a stream, creating the group and stream when
// missing: the test's shortcut for what an application's runtime ships.
func (s *Server) Put(group, stream string, events ...Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[group]
	if g == nil {
		g = map[string][]Event{}
		s.groups[group] = g
	}
	for _, e := range events {
		s.appendLocked(g, stream, e.Timestamp, e.Message)
	}
	if _, ok := g[stream]; !ok {
		g[stream] = nil
	}
}

func (s *Server) appendLocked(g map[string][]Event, stream string, ts int64, msg string) {
	s.seq++
	g[stream] = append(g[stream], Event{
		Stream: stream, Timestamp: ts, Message: msg,
		Ingestion: time.Now().UnixMilli(), ID: fmt.Sprintf("%056d", s.seq), seq: s.seq,
	})
}

type apiError struct {
	Type    string `json:"__type"`
	Message string `json:"message"`
}

func (e *apiError) Error() string { return e.Type + ": " + e.Message }

func errorf(typ, format string, args ...any) *apiError {
	return &apiError{Type: typ, Message: fmt.Sprintf(format, args...)}
}

const targetPrefix = "Logs_20140328."

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), targetPrefix)
	var out any
	var aerr *apiError
	body, err := io.ReadAll(r.Body)
	switch {
	case r.Method != http.MethodPost || !ok:
		aerr = errorf("UnknownOperationException", "want POST with X-Amz-Target %s<Operation>", targetPrefix)
	case err != nil:
		aerr = errorf("SerializationException", "%v", err)
	default:
		s.mu.Lock()
		s.calls[op]++
		s.mu.Unlock()
		out, aerr = s.dispatch(r.Context(), op, body)
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Requestid", "fakelogs")
	if aerr != nil {
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(aerr)
		return
	}
	if out == nil {
		out = struct{}{}
	}
	json.NewEncoder(w).Encode(out)
}

func (s *Server) dispatch(ctx context.Context, op string, body []byte) (any, *apiError) {
	decode := func(v any) *apiError {
		if err := json.Unmarshal(body, v); err != nil {
			return errorf("SerializationException", "%s: %v", op, err)
		}
		return nil
	}
	switch op {
	case "CreateLogGroup":
		var in struct{ LogGroupName string }
		if e := decode(&in); e != nil {
			return nil, e
		}
		return nil, s.createGroup(in.LogGroupName)
	case "CreateLogStream":
		var in struct{ LogGroupName, LogStreamName string }
		if e := decode(&in); e != nil {
			return nil, e
		}
		return nil, s.createStream(in.LogGroupName, in.LogStreamName)
	case "PutLogEvents":
		var in struct {
			LogGroupName, LogStreamName string
			LogEvents                   []struct {
				Timestamp int64
				Message   string
			}
		}
		if e := decode(&in); e != nil {
			return nil, e
		}
		return s.putEvents(in.LogGroupName, in.LogStreamName, in.LogEvents)
	case "FilterLogEvents":
		var in filterInput
		if e := decode(&in); e != nil {
			return nil, e
		}
		return s.filter(in)
	case "CreateExportTask":
		var in exportInput
		if e := decode(&in); e != nil {
			return nil, e
		}
		return s.export(ctx, in)
	}
	return nil, errorf("UnknownOperationException", "fakelogs does not model %s", op)
}

func (s *Server) createGroup(name string) *apiError {
	if name == "" {
		return errorf("InvalidParameterException", "logGroupName is required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.groups[name]; ok {
		return errorf("ResourceAlreadyExistsException", "The specified log group already exists")
	}
	s.groups[name] = map[string][]Event{}
	return nil
}

func (s *Server) createStream(group, stream string) *apiError {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[group]
	if !ok {
		return errorf("ResourceNotFoundException", "The specified log group does not exist.")
	}
	if _, ok := g[stream]; ok {
		return errorf("ResourceAlreadyExistsException", "The specified log stream already exists")
	}
	g[stream] = nil
	return nil
}

func (s *Server) putEvents(group, stream string, events []struct {
	Timestamp int64
	Message   string
}) (any, *apiError) {
	if len(events) == 0 {
		return nil, errorf("InvalidParameterException", "logEvents must not be empty")
	}
	for i := 1; i < len(events); i++ {
		if events[i].Timestamp < events[i-1].Timestamp {
			return nil, errorf("InvalidParameterException", "Log events in a single PutLogEvents request must be in chronological order.")
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[group]
	if !ok {
		return nil, errorf("ResourceNotFoundException", "The specified log group does not exist.")
	}
	if _, ok := g[stream]; !ok {
		return nil, errorf("ResourceNotFoundException", "The specified log stream does not exist.")
	}
	for _, e := range events {
		s.appendLocked(g, stream, e.Timestamp, e.Message)
	}
	return map[string]any{}, nil
}

type filterInput struct {
	LogGroupName        string
	LogGroupIdentifier  string
	LogStreamNames      []string
	LogStreamNamePrefix string
	StartTime           *int64
	EndTime             *int64
	FilterPattern       string
	NextToken           string
	Limit               *int
}

type outEvent struct {
	LogStreamName string `json:"logStreamName"`
	Timestamp     int64  `json:"timestamp"`
	Message       string `json:"message"`
	IngestionTime int64  `json:"ingestionTime"`
	EventID       string `json:"eventId"`
}

// token is the state a nextToken stands for: the position in the
// filter's sorted events, and whether the empty first page was served.
func (s *Server) filter(in filterInput) (any, *apiError) {
	group := in.LogGroupName
	if group == "" {
		// An ARN or a name; the stand-in takes the text after "log-group:".
		group = in.LogGroupIdentifier
		if _, rest, ok := strings.Cut(group, ":log-group:"); ok {
			group = strings.TrimSuffix(rest, ":*")
		}
	}
	limit := 10000
	if in.Limit != nil {
		limit = *in.Limit
		if limit < 1 || limit > 10000 {
			return nil, errorf("InvalidParameterException", "1 validation error detected: Value '%d' at 'limit' failed to satisfy constraint: Member must have value between 1 and 10000", limit)
		}
	}
	if len(in.LogStreamNames) > 0 && in.LogStreamNamePrefix != "" {
		return nil, errorf("InvalidParameterException", "logStreamNames and logStreamNamePrefix are mutually exclusive")
	}
	match, perr := compilePattern(in.FilterPattern)
	if perr != nil {
		return nil, perr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.filters = append(s.filters, FilterCall{Group: group, Streams: in.LogStreamNames, Start: in.StartTime, End: in.EndTime, Pattern: in.FilterPattern, Limit: limit, NextToken: in.NextToken})
	g, ok := s.groups[group]
	if !ok {
		return nil, errorf("ResourceNotFoundException", "The specified log group does not exist.")
	}
	var streams []string
	if len(in.LogStreamNames) > 0 {
		for _, n := range in.LogStreamNames {
			if _, ok := g[n]; !ok {
				return nil, errorf("ResourceNotFoundException", "The specified log stream does not exist.")
			}
			streams = append(streams, n)
		}
	} else {
		for n := range g {
			if strings.HasPrefix(n, in.LogStreamNamePrefix) {
				streams = append(streams, n)
			}
		}
	}
	var all []Event
	for _, n := range streams {
		for _, e := range g[n] {
			if in.StartTime != nil && e.Timestamp < *in.StartTime || in.EndTime != nil && e.Timestamp > *in.EndTime {
				continue
			}
			if match(e.Message) {
				all = append(all, e)
			}
		}
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].Timestamp != all[j].Timestamp {
			return all[i].Timestamp < all[j].Timestamp
		}
		return all[i].seq < all[j].seq
	})
	pos, empties := 0, 0
	if in.NextToken != "" {
		p, e, ok := parseToken(in.NextToken)
		if !ok || p > len(all) {
			return nil, errorf("InvalidParameterException", "The specified nextToken is invalid.")
		}
		pos, empties = p, e
	}
	n := limit
	if s.PageSize > 0 && s.PageSize < n {
		n = s.PageSize
	}
	if s.EmptyPages && empties == 0 {
		n, empties = 0, 1
	}
	end := min(pos+n, len(all))
	events := make([]outEvent, 0, end-pos)
	for _, e := range all[pos:end] {
		events = append(events, outEvent{LogStreamName: e.Stream, Timestamp: e.Timestamp, Message: e.Message, IngestionTime: e.Ingestion, EventID: e.ID})
	}
	out := map[string]any{"events": events}
	if end < len(all) || n == 0 {
		out["nextToken"] = fmt.Sprintf("tok/%d/%d", end, empties)
	}
	return out, nil
}

func parseToken(t string) (pos, empties int, ok bool) {
	parts := strings.Split(t, "/")
	if len(parts) != 3 || parts[0] != "tok" {
		return 0, 0, false
	}
	p, err1 := strconv.Atoi(parts[1])
	e, err2 := strconv.Atoi(parts[2])
	return p, e, err1 == nil && err2 == nil && p >= 0
}

var jsonEq = regexp.MustCompile(`^\{\s*\$\.([A-Za-z0-9_]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s{}"]+)\s*\}$`)

// compilePattern returns a matcher for the filter pattern forms the
// package doc lists.
func compilePattern(p string) (func(string) bool, *apiError) {
	p = strings.TrimSpace(p)
	if p == "" {
		return func(string) bool { return true }, nil
	}
	if strings.HasPrefix(p, "{") {
		m := jsonEq.FindStringSubmatch(p)
		if m == nil {
			return nil, errorf("InvalidParameterException", "Invalid filter pattern")
		}
		field, want := m[1], m[2]
		if strings.HasPrefix(want, `"`) {
			var err error
			if want, err = strconv.Unquote(want); err != nil {
				return nil, errorf("InvalidParameterException", "Invalid filter pattern")
			}
		}
		return func(msg string) bool {
			var obj map[string]any
			if json.Unmarshal([]byte(msg), &obj) != nil {
				return false
			}
			v, ok := obj[field].(string)
			return ok && v == want
		}, nil
	}
	var terms []string
	for rest := p; rest != ""; rest = strings.TrimSpace(rest) {
		if strings.HasPrefix(rest, `"`) {
			end := strings.Index(rest[1:], `"`)
			if end < 0 {
				return nil, errorf("InvalidParameterException", "Invalid filter pattern")
			}
			terms = append(terms, rest[1:1+end])
			rest = rest[2+end:]
			continue
		}
		word, after, _ := strings.Cut(rest, " ")
		if strings.ContainsAny(word, `?-[]{}`) {
			return nil, errorf("InvalidParameterException", "Invalid filter pattern")
		}
		terms = append(terms, word)
		rest = after
	}
	return func(msg string) bool {
		for _, t := range terms {
			if !strings.Contains(msg, t) {
				return false
			}
		}
		return true
	}, nil
}

type exportInput struct {
	TaskName            string
	LogGroupName        string
	LogStreamNamePrefix string
	From, To            int64
	Destination         string
	DestinationPrefix   string
}

// ExportTimeLayout is the timestamp at the start of each line of an
// exported object.
const ExportTimeLayout = "2006-01-02T15:04:05.000Z"

func (s *Server) export(ctx context.Context, in exportInput) (any, *apiError) {
	if s.S3 == nil {
		return nil, errorf("InvalidParameterException", "fakelogs: no S3 client to export to (set Server.S3)")
	}
	if in.Destination == "" || in.To < in.From {
		return nil, errorf("InvalidParameterException", "destination is required and to must not be before from")
	}
	prefix := in.DestinationPrefix
	if prefix == "" {
		prefix = "exportedlogs"
	}
	s.mu.Lock()
	g, ok := s.groups[in.LogGroupName]
	if !ok {
		s.mu.Unlock()
		return nil, errorf("ResourceNotFoundException", "The specified log group does not exist.")
	}
	s.tasks++
	taskID := fmt.Sprintf("%08x-fake-task-%04d", time.Now().Unix(), s.tasks)
	objects := map[string][]byte{}
	for name, events := range g {
		if !strings.HasPrefix(name, in.LogStreamNamePrefix) {
			continue
		}
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		n := 0
		for _, e := range events {
			if e.Timestamp < in.From || e.Timestamp > in.To {
				continue
			}
			fmt.Fprintf(zw, "%s %s\n", time.UnixMilli(e.Timestamp).UTC().Format(ExportTimeLayout), e.Message)
			n++
		}
		zw.Close()
		if n > 0 {
			objects[prefix+"/"+taskID+"/"+name+"/000000.gz"] = buf.Bytes()
		}
	}
	s.mu.Unlock()
	objects[prefix+"/aws-logs-write-test"] = []byte("Permission Check Successful")
	for key, data := range objects {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := s.S3.PutObject(cctx, &s3.PutObjectInput{Bucket: aws.String(in.Destination), Key: aws.String(key), Body: bytes.NewReader(data)})
		cancel()
		if err != nil {
			return nil, errorf("InvalidParameterException", "export to s3://%s/%s: %v", in.Destination, key, err)
		}
	}
	return map[string]any{"taskId": taskID}, nil
}
