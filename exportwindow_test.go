package rewind

import (
	"testing"
	"time"
)

func TestExportShardID(t *testing.T) {
	from := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	to := from.Add(90*time.Minute + 123*time.Millisecond)
	s := ExportShardID("01795172412345-a1b2c3d4", from, to)
	if s != "export:01795172412345-a1b2c3d4:2026-11-20T10:00:00Z/2026-11-20T11:30:00.123Z" {
		t.Fatalf("ExportShardID = %q", s)
	}
	id, f, tt, ok := ParseExportShardID(s)
	if !ok || id != "01795172412345-a1b2c3d4" || !f.Equal(from) || !tt.Equal(to) {
		t.Fatalf("ParseExportShardID = %q %s %s %v", id, f, tt, ok)
	}
	for _, bad := range []string{"", "shardId-00000001", "export:", "export:x:2026-11-20T10:00:00Z", "export::2026-11-20T10:00:00Z/2026-11-20T11:00:00Z", "export:x:a/b"} {
		if _, _, _, ok := ParseExportShardID(bad); ok {
			t.Errorf("ParseExportShardID(%q) accepted it", bad)
		}
	}
}
