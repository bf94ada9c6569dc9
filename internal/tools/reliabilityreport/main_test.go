package main

import (
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	in := `{"suite":"faults","scenario":"TestReliabilityPatchFaults/rate=10%","runs":1,"exact":true,"faultRate":0.1,"calls":158}
{"suite":"crash","scenario":"TestReliabilityCrashIndexer","runs":20,"exact":19,"command":"rewind index","killedMidway":12}

{"suite":"crash","scenario":"TestReliabilityCrashPatcher","command":"rewind patch --yes","runs":20,"exact":20,"resumeKilledToo":3}
{"suite":"bad input","scenario":"TestReliabilityBadInput/x","case":"key set: a | b","exitCode":1,"changedNothing":false,"error":"line 3:\nbad"}
{"suite":"capture","scenario":"TestReliabilityCaptureRedelivery","changes":400,"exact":true}
`
	rows, err := read(strings.NewReader(in), "in")
	if err != nil {
		t.Fatal(err)
	}
	want := `### capture

| scenario | runs | exact | changes |
|---|---|---|---|
| CaptureRedelivery | 1 | yes | 400 |

### crash

| scenario | runs | exact | command | killedMidway | resumeKilledToo |
|---|---|---|---|---|---|
| CrashIndexer | 20 | 19 | rewind index | 12 |  |
| CrashPatcher | 20 | 20 | rewind patch --yes |  | 3 |

### faults

| scenario | runs | exact | faultRate | calls |
|---|---|---|---|---|
| PatchFaults/rate=10% | 1 | yes | 0.1 | 158 |

### bad input

| case | runs | exact | exitCode | changedNothing | error |
|---|---|---|---|---|---|
| key set: a \| b | 1 |  | 1 | no | line 3: bad |
`
	if got := render(rows); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestReadErrors(t *testing.T) {
	for _, in := range []string{
		"[1,2]\n",
		`{"suite":"s"}` + "\n",
		`{"suite":1,"scenario":"x"}` + "\n",
		`{"suite":"s","scenario":"x","a":}` + "\n",
	} {
		if _, err := read(strings.NewReader(in), "in"); err == nil || !strings.Contains(err.Error(), "in: line 1") {
			t.Errorf("%q: error %v, want one naming line 1", in, err)
		}
	}
}
