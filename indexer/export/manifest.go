package export

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Manifest versions this package reads.
const (
	// VersionFull is the summary version of full exports.
	VersionFull = "2020-06-30"
	// VersionIncremental is the summary version of incremental exports.
	VersionIncremental = "2023-08-01"
)

// Values of the summary's fields this package accepts.
const (
	ExportTypeIncremental = "INCREMENTAL_EXPORT"
	FormatDynamoDBJSON    = "DYNAMODB_JSON"
	ViewNewAndOld         = "NEW_AND_OLD_IMAGES"
	ViewNew               = "NEW_IMAGE"
)

// Summary is manifest-summary.json.
type Summary struct {
	Version            string  `json:"version"`
	ExportArn          string  `json:"exportArn"`
	StartTime          string  `json:"startTime"`
	EndTime            string  `json:"endTime"`
	TableArn           string  `json:"tableArn"`
	TableID            string  `json:"tableId"`
	ExportTime         string  `json:"exportTime,omitempty"`
	ExportFromTime     string  `json:"exportFromTime,omitempty"`
	ExportToTime       string  `json:"exportToTime,omitempty"`
	S3Bucket           string  `json:"s3Bucket"`
	S3Prefix           *string `json:"s3Prefix"`
	S3SseAlgorithm     string  `json:"s3SseAlgorithm"`
	S3SseKmsKeyID      *string `json:"s3SseKmsKeyId"`
	ManifestFilesS3Key string  `json:"manifestFilesS3Key"`
	BilledSizeBytes    int64   `json:"billedSizeBytes"`
	ItemCount          int64   `json:"itemCount"`
	OutputFormat       string  `json:"outputFormat"`
	OutputView         string  `json:"outputView,omitempty"`
	ExportType         string  `json:"exportType,omitempty"`
}

// FileEntry is one line of manifest-files.json.
type FileEntry struct {
	ItemCount     int64  `json:"itemCount"`
	MD5Checksum   string `json:"md5Checksum"`
	ETag          string `json:"etag"`
	DataFileS3Key string `json:"dataFileS3Key"`
}

// info is what the rest of the package needs from a checked summary.
type info struct {
	id, arn       string
	table, region string
	from, to      time.Time
	view          string
	prefix        string // s3Prefix without slashes at either end
}

// parseTimestamp reads a manifest time: ISO 8601 with milliseconds and Z.
func parseTimestamp(field, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s %q is not an ISO 8601 time", field, s)
	}
	return t.UTC(), nil
}

// parseSummary decodes and checks manifest-summary.json.
func parseSummary(data []byte) (Summary, info, error) {
	var s Summary
	if err := json.Unmarshal(data, &s); err != nil {
		return s, info{}, fmt.Errorf("not a manifest summary: %w", err)
	}
	var in info
	switch s.Version {
	case VersionIncremental:
	case VersionFull:
		if s.ExportType == "" {
			return s, in, errors.New("this is a full export (a snapshot of the table, not its changes); rewind reads incremental exports (rewind export)")
		}
	case "":
		return s, in, errors.New("no version: not a DynamoDB export manifest summary")
	default:
		return s, in, fmt.Errorf("unknown manifest version %q (this rewind reads %s and %s); upgrade rewind", s.Version, VersionIncremental, VersionFull)
	}
	if s.ExportType != ExportTypeIncremental {
		return s, in, fmt.Errorf("exportType %q: rewind reads %s exports", s.ExportType, ExportTypeIncremental)
	}
	if s.OutputFormat != FormatDynamoDBJSON {
		return s, in, fmt.Errorf("outputFormat %q: rewind reads %s exports (export again with --export-format DYNAMODB_JSON)", s.OutputFormat, FormatDynamoDBJSON)
	}
	switch s.OutputView {
	case ViewNewAndOld, "":
		// The view's default is NEW_AND_OLD_IMAGES.
		in.view = ViewNewAndOld
	case ViewNew, "NEW_IMAGES":
		in.view = ViewNew
	default:
		return s, in, fmt.Errorf("unknown outputView %q", s.OutputView)
	}
	_, id, ok := strings.Cut(s.ExportArn, "/export/")
	if !ok || id == "" || strings.Contains(id, "/") {
		return s, in, fmt.Errorf("exportArn %q has no export id", s.ExportArn)
	}
	in.id, in.arn = id, s.ExportArn
	var err error
	if in.table, in.region, err = parseTableArn(s.TableArn); err != nil {
		return s, in, err
	}
	if in.from, err = parseTimestamp("exportFromTime", s.ExportFromTime); err != nil {
		return s, in, err
	}
	if in.to, err = parseTimestamp("exportToTime", s.ExportToTime); err != nil {
		return s, in, err
	}
	if !in.to.After(in.from) {
		return s, in, fmt.Errorf("exportToTime %s is not after exportFromTime %s", s.ExportToTime, s.ExportFromTime)
	}
	if s.S3Prefix != nil {
		in.prefix = strings.Trim(*s.S3Prefix, "/")
	}
	return s, in, nil
}

// parseTableArn splits arn:aws:dynamodb:REGION:ACCOUNT:table/NAME.
func parseTableArn(arn string) (table, region string, err error) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "dynamodb" {
		return "", "", fmt.Errorf("tableArn %q is not a DynamoDB table ARN", arn)
	}
	name, ok := strings.CutPrefix(parts[5], "table/")
	if !ok || name == "" || strings.Contains(name, "/") {
		return "", "", fmt.Errorf("tableArn %q is not a DynamoDB table ARN", arn)
	}
	return name, parts[3], nil
}

// parseFiles decodes manifest-files.json: JSON Lines, blank lines allowed.
// Errors name the line.
func parseFiles(r io.Reader) ([]FileEntry, error) {
	br := bufio.NewReader(r)
	var out []FileEntry
	seen := map[string]int{}
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var f FileEntry
			dec := json.NewDecoder(bytes.NewReader(line))
			if derr := dec.Decode(&f); derr != nil {
				return nil, fmt.Errorf("line %d: %w", n, derr)
			}
			switch {
			case f.DataFileS3Key == "":
				return nil, fmt.Errorf("line %d: no dataFileS3Key", n)
			case f.ItemCount < 0:
				return nil, fmt.Errorf("line %d (%s): negative itemCount %d", n, f.DataFileS3Key, f.ItemCount)
			case f.MD5Checksum == "":
				return nil, fmt.Errorf("line %d (%s): no md5Checksum", n, f.DataFileS3Key)
			}
			if sum, derr := base64.StdEncoding.DecodeString(f.MD5Checksum); derr != nil || len(sum) != 16 {
				return nil, fmt.Errorf("line %d (%s): md5Checksum %q is not a base64 MD5", n, f.DataFileS3Key, f.MD5Checksum)
			}
			if prev, dup := seen[f.DataFileS3Key]; dup {
				return nil, fmt.Errorf("line %d: %s is already listed on line %d", n, f.DataFileS3Key, prev)
			}
			seen[f.DataFileS3Key] = n
			out = append(out, f)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("after line %d: %w", n, err)
		}
	}
	return slices.Clip(out), nil
}
