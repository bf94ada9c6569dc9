package rewind

import (
	"strings"
	"time"
)

// Events read from a DynamoDB incremental export carry the export's window
// in their ShardID, since they have no stream shard: an export holds one
// line per item changed in [from, to), whose old image is the item's state
// at from (not just before the event's time) and whose new image is its
// state at to. Whoever rebuilds an item's state at a time T from such an
// event needs the window: the old image proves the state at T only when T
// is from.

const exportShardPrefix = "export:"

// ExportShardID is the ShardID of events read from export exportID of the
// window [from, to): "export:<export-id>:<from>/<to>", times in RFC 3339
// UTC.
func ExportShardID(exportID string, from, to time.Time) string {
	return exportShardPrefix + exportID + ":" + from.UTC().Format(time.RFC3339Nano) + "/" + to.UTC().Format(time.RFC3339Nano)
}

// ParseExportShardID reads what ExportShardID wrote; ok is false for any
// other shard id, such as a stream shard's.
func ParseExportShardID(s string) (exportID string, from, to time.Time, ok bool) {
	rest, ok := strings.CutPrefix(s, exportShardPrefix)
	if !ok {
		return "", time.Time{}, time.Time{}, false
	}
	exportID, window, ok := strings.Cut(rest, ":")
	if !ok {
		return "", time.Time{}, time.Time{}, false
	}
	f, t, ok := strings.Cut(window, "/")
	if !ok {
		return "", time.Time{}, time.Time{}, false
	}
	from, err1 := time.Parse(time.RFC3339Nano, f)
	to, err2 := time.Parse(time.RFC3339Nano, t)
	if err1 != nil || err2 != nil || exportID == "" {
		return "", time.Time{}, time.Time{}, false
	}
	return exportID, from.UTC(), to.UTC(), true
}
