package rewind

import (
	"testing"
	"time"
)

func TestExportWindow(t *testing.T) {
	from := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	w := ExportWindow{ID: "01795172412345-a1b2c3d4", From: from, To: from.Add(90*time.Minute + 123*time.Millisecond)}
	if w.IsZero() {
		t.Fatal("a window with an id is zero")
	}
	if got, want := w.String(), "export 01795172412345-a1b2c3d4 [2026-11-20T10:00:00Z, 2026-11-20T11:30:00.123Z)"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if !(ExportWindow{}).IsZero() {
		t.Error("the zero window is not zero")
	}
	var ev ChangeEvent
	if !ev.Export.IsZero() {
		t.Error("a stream event has an export window")
	}
}

func TestExportWindowParquetRoundTrip(t *testing.T) {
	from := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	for _, w := range []ExportWindow{{}, {ID: "0123-abc", From: from, To: from.Add(time.Hour)}} {
		ev := ChangeEvent{EventID: "e", Table: "t", Action: ActionModify, Time: from.Add(time.Minute), Keys: Key{{Name: "pk", Type: 'S', Value: "a"}}, Export: w}
		var row ParquetRow
		ev.ToParquetRow(&row)
		if w.IsZero() != (row.ExportID == nil && row.ExportFrom == 0 && row.ExportTo == 0) {
			t.Errorf("window %s: row export columns %q %d %d", w, row.ExportID, row.ExportFrom, row.ExportTo)
		}
		back, err := row.ChangeEvent()
		if err != nil {
			t.Fatal(err)
		}
		if back.Export != w {
			t.Errorf("window %s came back as %s", w, back.Export)
		}
	}
}
