package indexer

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/recover/changelog"
)

// Log sources: an application's change log (package recover/changelog)
// read from CloudWatch Logs or from a log group's export to S3. Their
// events are key-only: Keys, Action, Tenant, Time (the line's), no images,
// StreamViewType rewind.StreamViewChangeLog, EventID "changelog:<id>" (so
// a line read from both places is one change), no sequence number, shard
// or region, and no changed attributes. Query's key sets, stats and
// history read them like any other event; query.StateAt never proves a
// state from them (see rewind.StreamViewChangeLog).
//
// Lines that are not change lines (the rest of the application's logs,
// the runtime's START/END/REPORT lines) are skipped and counted; change
// lines that do not parse are listed, by stream or object and line, in
// the LogReport; the other lines of the object are indexed.

// LogsAPI is the part of the CloudWatch Logs client CWLogsSource uses.
type LogsAPI interface {
	FilterLogEvents(ctx context.Context, in *cloudwatchlogs.FilterLogEventsInput, optFns ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.FilterLogEventsOutput, error)
}

var _ LogsAPI = (*cloudwatchlogs.Client)(nil)

// LogLineError is one change line that did not parse.
type LogLineError struct {
	// Where names the stream or object and the line: "cwlogs:GROUP stream
	// S event ID (timestamp T)" or "s3://bucket/key line N".
	Where string
	Err   string
}

// LogReport counts what a log source read, over the objects opened.
type LogReport struct {
	// Lines is every log line (event) read; Changes the change lines
	// among them, Skipped the others.
	Lines, Changes, Skipped int64
	// Malformed lists change lines that did not parse.
	Malformed []LogLineError
}

// logStats keeps a LogReport per object, so that an object opened twice
// counts once.
type logStats struct {
	mu  sync.Mutex
	per map[string]LogReport
	ord []string
}

func (s *logStats) set(name string, r LogReport) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.per == nil {
		s.per = map[string]LogReport{}
	}
	if _, ok := s.per[name]; !ok {
		s.ord = append(s.ord, name)
	}
	s.per[name] = r
}

func (s *logStats) report() LogReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	var t LogReport
	for _, n := range s.ord {
		r := s.per[n]
		t.Lines += r.Lines
		t.Changes += r.Changes
		t.Skipped += r.Skipped
		t.Malformed = append(t.Malformed, r.Malformed...)
	}
	return t
}

// logCallTimeout bounds one FilterLogEvents or S3 call.
const logCallTimeout = time.Minute

// CWLogsSource reads change lines from a CloudWatch Logs log group over a
// window with FilterLogEvents, following nextToken to the end. Each
// stream named in Streams is one object (one filtered read); with no
// Streams the whole group is one object. Objects are read again on every
// ingest (the window may still be filling): their lines deduplicate by
// event ID.
type CWLogsSource struct {
	API   LogsAPI
	Group string
	// Streams, when set, are the log streams read; default every stream
	// of the group.
	Streams []string
	// From and To bound the events' timestamps (CloudWatch's, in
	// milliseconds: From inclusive, To exclusive here; FilterLogEvents'
	// endTime is inclusive, so To-1ms is sent). Zero leaves a side open.
	From, To time.Time
	// Pattern is the filter pattern sent; default changelog.FilterPattern,
	// which selects change lines on the service side.
	Pattern string
	// Limit is the events per page asked for; default 10000 (the
	// service's maximum).
	Limit int32

	stats logStats
}

var _ Source = (*CWLogsSource)(nil)

// Name implements Source: cwlogs:GROUP.
func (c *CWLogsSource) Name() string { return "cwlogs:" + c.Group }

// Report returns what the objects opened so far held.
func (c *CWLogsSource) Report() LogReport { return c.stats.report() }

func (c *CWLogsSource) window() string {
	f, t := "", ""
	if !c.From.IsZero() {
		f = c.From.UTC().Format(time.RFC3339Nano)
	}
	if !c.To.IsZero() {
		t = c.To.UTC().Format(time.RFC3339Nano)
	}
	return f + ".." + t
}

// List implements Source. Sizes are -1, so the store never skips an
// object: a log window is read again on every run.
func (c *CWLogsSource) List(ctx context.Context, fn func(Object) error) error {
	streams := c.Streams
	if len(streams) == 0 {
		streams = []string{""}
	}
	for _, s := range streams {
		name := c.Name() + "@" + c.window()
		if s != "" {
			name = c.Name() + "/" + s + "@" + c.window()
		}
		if err := fn(Object{Name: name, Key: s, Size: -1}); err != nil {
			return err
		}
	}
	return nil
}

// Open implements Source: one stream's (or the group's) change lines in
// the window, as an in-memory Parquet object. Its ETag is a digest of the
// events read.
func (c *CWLogsSource) Open(ctx context.Context, o Object) (Content, string, int64, error) {
	in := &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String(c.Group), FilterPattern: aws.String(c.Pattern)}
	if c.Pattern == "" {
		in.FilterPattern = aws.String(changelog.FilterPattern)
	}
	if o.Key != "" {
		in.LogStreamNames = []string{o.Key}
	}
	if !c.From.IsZero() {
		in.StartTime = aws.Int64(c.From.UnixMilli())
	}
	if !c.To.IsZero() {
		// FilterLogEvents returns events up to endTime inclusive.
		in.EndTime = aws.Int64(c.To.UnixMilli() - 1)
	}
	limit := c.Limit
	if limit == 0 {
		limit = 10000
	}
	in.Limit = aws.Int32(limit)
	var rep LogReport
	digest := sha256.New()
	var evs []rewind.ChangeEvent
	pages := cloudwatchlogs.NewFilterLogEventsPaginator(c.API, in)
	for pages.HasMorePages() {
		cctx, cancel := context.WithTimeout(ctx, logCallTimeout)
		out, err := pages.NextPage(cctx)
		cancel()
		if err != nil {
			return nil, "", 0, fmt.Errorf("%s: FilterLogEvents: %w (check the log group and stream names and the credentials' logs:FilterLogEvents permission)", o.Name, err)
		}
		for _, e := range out.Events {
			rep.Lines++
			msg := []byte(aws.ToString(e.Message))
			fmt.Fprintf(digest, "%s\x00%s\x00", aws.ToString(e.EventId), msg)
			rec, ok, err := changelog.Parse(msg)
			switch {
			case !ok:
				rep.Skipped++
			case err != nil:
				rep.Malformed = append(rep.Malformed, LogLineError{
					Where: fmt.Sprintf("%s stream %s event %s (timestamp %s)", c.Name(), aws.ToString(e.LogStreamName), aws.ToString(e.EventId), time.UnixMilli(aws.ToInt64(e.Timestamp)).UTC().Format(time.RFC3339Nano)),
					Err:   err.Error(),
				})
			default:
				rep.Changes++
				evs = append(evs, rec.Event())
			}
		}
	}
	c.stats.set(o.Name, rep)
	return eventsContent(evs, "cw:"+hex.EncodeToString(digest.Sum(nil))[:32])
}

// eventsContent is decoded events as the Parquet object a source's Open
// returns, with etag.
func eventsContent(evs []rewind.ChangeEvent, etag string) (Content, string, int64, error) {
	pq, err := parquetOf(func(yield func(*rewind.ChangeEvent) error) error {
		for i := range evs {
			if err := yield(&evs[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, "", 0, err
	}
	return exportContent{bytes.NewReader(pq)}, etag, int64(len(pq)), nil
}

// LogExportSource reads change lines from a CloudWatch Logs export to S3
// (CreateExportTask). It models the layout the CloudWatch Logs user guide
// and API reference describe for exported log data: every object under
// the export's destination prefix (default "exportedlogs"), one folder per
// export task and in it one per log stream,
// <prefix>/<task-id>/<log-stream>/000000.gz (then 000001.gz, ... for a
// large stream), each gzip-compressed text with one log event per line,
// "<timestamp> <message>", the timestamp in RFC 3339 with milliseconds
// (2026-12-02T00:10:11.123Z). Objects not ending in .gz (the
// aws-logs-write-test object the service writes when it checks the
// bucket's permissions) are not listed. The documentation says events
// within an exported file are not guaranteed to be time-sorted: the index
// orders them itself. The line's own "time" is the event's time, not the
// export timestamp (the time CloudWatch received the event).
//
// A message with a newline in it spans lines in the export; such a line
// is split and read as two, which for a change line (one JSON object
// without newlines) does not happen.
type LogExportSource struct {
	API    S3API
	Bucket string
	// Prefix is the export's destination prefix, or a task's folder under
	// it; without slashes at either end.
	Prefix string

	st    *Store
	stats logStats
}

var _ Source = (*LogExportSource)(nil)

// ParseLogExportSource returns the export source s3://bucket/prefix names.
func ParseLogExportSource(uri string, api S3API) (*LogExportSource, error) {
	rest, ok := strings.CutPrefix(uri, "s3://")
	if !ok {
		return nil, fmt.Errorf("log export %q: want s3://bucket/prefix, the export task's destination and prefix (default prefix exportedlogs)", uri)
	}
	bucket, prefix, _ := strings.Cut(rest, "/")
	if bucket == "" {
		return nil, fmt.Errorf("log export %q: no bucket (want s3://bucket/prefix)", uri)
	}
	if api == nil {
		return nil, fmt.Errorf("log export %q: no S3 client", uri)
	}
	return &LogExportSource{API: api, Bucket: bucket, Prefix: strings.Trim(prefix, "/")}, nil
}

// Name implements Source.
func (l *LogExportSource) Name() string {
	if l.Prefix == "" {
		return "s3://" + l.Bucket
	}
	return "s3://" + l.Bucket + "/" + l.Prefix
}

// Report returns what the objects opened so far held.
func (l *LogExportSource) Report() LogReport { return l.stats.report() }

// List implements Source: the .gz objects in key order. An object's size
// is that of the Parquet object Open makes: for an object the store holds
// with the same ETag, the size the store recorded (so it is skipped), else
// -1.
func (l *LogExportSource) List(ctx context.Context, fn func(Object) error) error {
	return listDecoded(ctx, l.API, l.Bucket, l.Prefix, l.Name(), l.st, func(key string) bool {
		return strings.HasSuffix(key, ".gz")
	}, fn)
}

// maxLogLine bounds one exported line: a CloudWatch Logs event is at most
// 1 MB (256 KB before 2025), plus its timestamp.
const maxLogLine = 2 << 20

// Open implements Source: the object's change lines as an in-memory
// Parquet object.
func (l *LogExportSource) Open(ctx context.Context, o Object) (Content, string, int64, error) {
	cctx, cancel := context.WithTimeout(ctx, logCallTimeout)
	defer cancel()
	out, err := l.API.GetObject(cctx, &s3.GetObjectInput{Bucket: aws.String(l.Bucket), Key: aws.String(o.Key)})
	if err != nil {
		return nil, "", 0, err
	}
	defer out.Body.Close()
	zr, err := gzip.NewReader(out.Body)
	if err != nil {
		return nil, "", 0, fmt.Errorf("%s: not gzip (want a CloudWatch Logs export object, <prefix>/<task-id>/<stream>/000000.gz): %w", o.Name, err)
	}
	var rep LogReport
	var evs []rewind.ChangeEvent
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 64<<10), maxLogLine)
	for n := 1; sc.Scan(); n++ {
		text := sc.Bytes()
		if len(bytes.TrimSpace(text)) == 0 {
			continue
		}
		rep.Lines++
		// "<timestamp> <message>": the message is what follows the first
		// space.
		_, msg, _ := bytes.Cut(text, []byte(" "))
		rec, ok, err := changelog.Parse(msg)
		switch {
		case !ok:
			rep.Skipped++
		case err != nil:
			rep.Malformed = append(rep.Malformed, LogLineError{Where: fmt.Sprintf("%s line %d", o.Name, n), Err: err.Error()})
		default:
			rep.Changes++
			evs = append(evs, rec.Event())
		}
	}
	if err := sc.Err(); err != nil {
		if err == io.ErrUnexpectedEOF {
			err = fmt.Errorf("truncated gzip: %w", err)
		}
		return nil, "", 0, fmt.Errorf("%s: %w", o.Name, err)
	}
	l.stats.set(o.Name, rep)
	return eventsContent(evs, strings.Trim(aws.ToString(out.ETag), `"`))
}

// IngestLogs ingests a log source (a *CWLogsSource or *LogExportSource)
// like any other source; its Report says what the lines were.
func (s *Store) IngestLogs(ctx context.Context, src Source, cfg Config) (Result, error) {
	if l, ok := src.(*LogExportSource); ok {
		l.st = s
	}
	return s.Ingest(ctx, src, cfg)
}
