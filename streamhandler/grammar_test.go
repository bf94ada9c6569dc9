package streamhandler

import (
	"bytes"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/ddbrewind/rewind"
)

// imageSeeds are images on the edges of DynamoDB JSON's grammar: numbers
// past DynamoDB's precision and range, zeros, set and nesting edges, and
// JSON that spells a type descriptor with an escape.
var imageSeeds = []string{
	`{"pk":{"S":"a"},"n":{"N":"1e999999"}}`,
	`{"pk":{"S":"a"},"n":{"N":"123456789012345678901234567890123456789"}}`, // 39 digits
	`{"pk":{"S":"a"},"n":{"N":"12345678901234567890123456789012345678"}}`,  // 38 digits
	`{"pk":{"S":"a"},"n":{"N":"1234567890123456789012345678901234567800000"}}`,
	`{"pk":{"S":"a"},"n":{"N":"-0"}}`,
	`{"pk":{"S":"a"},"n":{"N":"0e999999"}}`,
	`{"pk":{"S":"a"},"n":{"N":"0e999999999"}}`,
	`{"pk":{"S":"a"},"n":{"N":"007.50"}}`,
	`{"pk":{"S":"a"},"n":{"N":"+1"}}`,
	`{"pk":{"S":"a"},"n":{"N":"1."}}`,
	`{"pk":{"S":"a"},"n":{"N":".5"}}`,
	`{"pk":{"S":"a"},"n":{"N":"."}}`,
	`{"pk":{"S":"a"},"n":{"N":"1e"}}`,
	`{"pk":{"S":"a"},"n":{"N":"9.9999999999999999999999999999999999999E+125"}}`,
	`{"pk":{"S":"a"},"n":{"N":"1E+126"}}`,
	`{"pk":{"S":"a"},"n":{"N":"1E-130"}}`,
	`{"pk":{"S":"a"},"n":{"N":"1E-131"}}`,
	`{"pk":{"S":"a"},"n":{"N":"1e-99999999999999999999"}}`,
	`{"pk":{"S":"a"},"ns":{"NS":["1","1e999999"]}}`,
	`{"pk":{"S":"a"},"ns":{"NS":[]},"ss":{"SS":[]},"bs":{"BS":[]}}`,
	`{"pk":{"S":"a"},"b":{"B":""},"bs":{"BS":["AP8=",""]}}`,
	`{"pk":{"S":"a"},"b":{"B":"not base64"}}`,
	`{"pk":{"S":"a"},"m":{"M":{"a":{"M":{"b":{"L":[{"N":"1"},{"M":{}},{"NULL":true}]}}}}}}`,
	`{"pk":{"S":"a"},"x":{"\u0053":"escaped S"}}`,
	`{"pk":{"S":"a"},"x":{"S ":"x"}}`,
	`{"pk":{"S":"a"},"x":{"bool":true}}`,
	`{"pk":{"S":"a"},"x":{"NULL":false}}`,
	`{"pk":{"S":"a"},"x":{"S":"a","N":"1"}}`,
	`{"pk":{"S":"a"},"x":{}}`,
	`{"pk":{"S":"a"},"x":{"L":{}}}`,
	`{"pk":{"S":"a"},"x":{"N":1}}`,
	`{"pk":{"S":"a"},"x":{"NS":[1]}}`,
	`{"pk":{"S":"a"},"\u00e9":{"S":"\u00e9"}}`,
	`{}`,
	`[]`,
	`{"pk":{"S":"a"}, "n" : { "N" : " 1" }}`,
	nested(32),
	nested(33),
}

// nested is an image whose attribute nests depth lists.
func nested(depth int) string {
	return `{"pk":{"S":"a"},"l":` + strings.Repeat(`{"L":[`, depth) + `{"S":"x"}` + strings.Repeat(`]}`, depth) + `}`
}

// recordWith is one stream record whose NewImage is image.
func recordWith(image string) []byte {
	return []byte(`{"Records":[{"eventID":"e1","eventName":"INSERT","awsRegion":"us-east-1",` +
		`"eventSourceARN":"arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-11-20T10:00:00.000",` +
		`"dynamodb":{"ApproximateCreationDateTime":1795172400,"Keys":{"pk":{"S":"a"}},"NewImage":` + image +
		`,"SequenceNumber":"100","SizeBytes":10,"StreamViewType":"NEW_AND_OLD_IMAGES"}}]}`)
}

// checkAgainstParseItem decodes image as a stream record's NewImage with
// the handler's fast decoder and with rewind.ParseItem, and fails unless
// both accept it, with the same value, or both refuse it.
func checkAgainstParseItem(t *testing.T, image []byte) {
	t.Helper()
	want, perr := rewind.ParseItem(image)
	if !jsontext.Value(image).IsValid() {
		// Not one JSON value: it cannot be embedded in a record without
		// changing the record's shape, so only ParseItem is asked.
		if perr == nil {
			t.Fatalf("ParseItem accepted %q, which is not one valid JSON value", image)
		}
		return
	}
	if trimmed := bytes.TrimSpace(image); string(trimmed) == "null" {
		return // an absent image to the handler; no item to ParseItem
	}
	d := testDecoder(t, nil)
	evs, err := d.decode(recordWith(string(image)), nil)
	if err != nil {
		t.Fatalf("payload around %q: %v", image, err)
	}
	if len(evs) != 1 {
		t.Fatalf("%d events for one record", len(evs))
	}
	ev := evs[0]
	fastErr := ev.DecodeError
	switch {
	case perr != nil && fastErr == "":
		t.Fatalf("the handler accepted %q; ParseItem refused it: %v", image, perr)
	case perr == nil && fastErr != "":
		t.Fatalf("the handler refused %q (%s); ParseItem accepted it", image, fastErr)
	case perr != nil:
		if len(ev.Raw) == 0 {
			t.Fatalf("refused record %q not kept raw", image)
		}
		return
	}
	got, err := ev.NewImage.Item()
	if err != nil {
		t.Fatalf("the handler kept an image that does not parse: %v: %s", err, ev.NewImage)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("the handler kept %s for %q; ParseItem reads %s", ev.NewImage, image, rewind.ItemJSON(want))
	}
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	slices.Sort(names)
	if !slices.Equal(ev.ChangedAttributes, names) {
		t.Fatalf("changed attributes %q for an insert of %q, want every attribute %q", ev.ChangedAttributes, image, names)
	}
}

// TestFastDecoderAgreesWithParseItem runs the differential check on the
// seeds. Before the handler used the root grammar it accepted 1e999999,
// 39-digit numbers and numbers beyond DynamoDB's range, which ParseItem
// (following DynamoDB) refuses, and refused an escaped type descriptor
// that ParseItem reads.
func TestFastDecoderAgreesWithParseItem(t *testing.T) {
	for _, s := range imageSeeds {
		t.Run("", func(t *testing.T) { checkAgainstParseItem(t, []byte(s)) })
	}
}

// FuzzFastDecoderAgainstParseItem: the handler's decoder, which checks
// images in place, and rewind.ParseItem, which builds them, accept and
// refuse the same images, and the image the handler keeps parses to the
// value ParseItem reads.
func FuzzFastDecoderAgainstParseItem(f *testing.F) {
	for _, s := range imageSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(checkAgainstParseItem)
}

// TestDecodeRefusesNumbersDynamoDBCannotStore: a record with such a number
// is kept raw, with an error naming the number and the rule, instead of
// reaching the index where the key set and patch paths would refuse it.
func TestDecodeRefusesNumbersDynamoDBCannotStore(t *testing.T) {
	for _, tc := range []struct{ n, rule string }{
		{"1e999999", "too large"},
		{"123456789012345678901234567890123456789", "39 significant digits"},
		{"1E-131", "too small"},
	} {
		evs, err := testDecoder(t, nil).decode(recordWith(`{"pk":{"S":"a"},"n":{"N":"`+tc.n+`"}}`), nil)
		if err != nil {
			t.Fatal(err)
		}
		ev := evs[0]
		if ev.DecodeError == "" || !strings.Contains(ev.DecodeError, tc.rule) || !strings.Contains(ev.DecodeError, `attribute "n"`) || len(ev.Raw) == 0 {
			t.Errorf("N %s: DecodeError %q, raw %d bytes; want the record kept raw with an error naming attribute n and %q", tc.n, ev.DecodeError, len(ev.Raw), tc.rule)
		}
		if ev.EventID != "e1" || ev.SequenceNumber != "100" || ev.Table != "orders" {
			t.Errorf("N %s: undecodable event lost its id, sequence number or table: %+v", tc.n, ev)
		}
	}
}
