package rewind

import (
	"bytes"
	"slices"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// ImageAttribute is one top-level attribute of an image, as
// ChangedAttributes compares them: its name and its value as DynamoDB
// JSON (JSON) or as a value (Value), whichever the caller holds. A stream
// decoder has the JSON bytes at hand and builds no values; a reader of
// whole items has the values.
type ImageAttribute struct {
	Name  string
	JSON  []byte
	Value types.AttributeValue
}

// ItemAttributes returns the attributes of item for ChangedAttributes:
// nil for a nil item (an absent image), an empty non-nil list for an item
// with no attributes.
func ItemAttributes(item Item) []ImageAttribute {
	if item == nil {
		return nil
	}
	out := make([]ImageAttribute, 0, len(item))
	for n, v := range item {
		out = append(out, ImageAttribute{Name: n, Value: v})
	}
	return out
}

// ChangedAttributes is the one definition of ChangeEvent.ChangedAttributes,
// whatever captured the event (a stream record, an incremental export):
// the names of the top-level attributes present in only one of the old
// and the new image, or present in both with values that differ as
// DynamoDB compares them (EqualAttributeValues: numbers by value, sets in
// any order), sorted. With one image absent, that is every attribute of
// the other; with both absent, nil. A nil list is an absent image; an
// image with no attributes is an empty, non-nil list.
//
// Values given as JSON are compared byte for byte first and parsed only
// when the bytes differ, so equal values written alike cost no parse. A
// value that does not parse differs from every other.
func ChangedAttributes(oldAttrs, newAttrs []ImageAttribute) []string {
	if oldAttrs == nil && newAttrs == nil {
		return nil
	}
	out := []string{}
	for i := range newAttrs {
		b := &newAttrs[i]
		j := slices.IndexFunc(oldAttrs, func(a ImageAttribute) bool { return a.Name == b.Name })
		if j < 0 || !equalImageAttributes(&oldAttrs[j], b) {
			out = append(out, b.Name)
		}
	}
	for i := range oldAttrs {
		a := &oldAttrs[i]
		if !slices.ContainsFunc(newAttrs, func(b ImageAttribute) bool { return a.Name == b.Name }) {
			out = append(out, a.Name)
		}
	}
	slices.Sort(out)
	return out
}

func equalImageAttributes(a, b *ImageAttribute) bool {
	if a.JSON != nil && b.JSON != nil && bytes.Equal(a.JSON, b.JSON) {
		return true
	}
	x, y := a.Value, b.Value
	var err error
	if x == nil {
		if x, err = ParseAttributeValue(a.JSON); err != nil {
			return false
		}
	}
	if y == nil {
		if y, err = ParseAttributeValue(b.JSON); err != nil {
			return false
		}
	}
	return EqualAttributeValues(x, y)
}
