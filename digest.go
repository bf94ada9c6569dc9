package rewind

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// AbsentDigest is the digest of an item that does not exist.
const AbsentDigest = "absent"

// ItemDigest returns a fingerprint of an item's state: the hex SHA-256 of a
// canonical encoding in which attribute names and map keys are sorted,
// numbers normalised (NormalizeNumber) and sets sorted, so that two items
// have the same digest exactly when EqualItems says they are equal. A nil
// item (absent) has the digest AbsentDigest; an item with no attributes
// has an ordinary digest.
//
// A patch plan records the digests of the production and wanted states it
// saw, so that applying the plan later can tell whether either changed
// since it was reviewed, without the plan carrying whole items.
func ItemDigest(item Item) string {
	if item == nil {
		return AbsentDigest
	}
	h := sha256.New()
	var buf []byte
	buf = appendCanonicalMap(buf, item)
	h.Write(buf)
	return hex.EncodeToString(h.Sum(nil))
}

// appendCanonical appends one value: a type tag, then the value with every
// variable-length part length-prefixed, so that no two distinct values
// share an encoding.
func appendCanonical(dst []byte, av types.AttributeValue) []byte {
	switch v := av.(type) {
	case *types.AttributeValueMemberS:
		return appendLenBytes(append(dst, 'S'), []byte(v.Value))
	case *types.AttributeValueMemberN:
		return appendLenBytes(append(dst, 'N'), []byte(canonicalNumber(v.Value)))
	case *types.AttributeValueMemberB:
		return appendLenBytes(append(dst, 'B'), v.Value)
	case *types.AttributeValueMemberBOOL:
		if v.Value {
			return append(dst, 'T')
		}
		return append(dst, 'F')
	case *types.AttributeValueMemberNULL:
		return append(dst, '0')
	case *types.AttributeValueMemberSS:
		return appendSortedSet(append(dst, 's'), slices.Clone(v.Value))
	case *types.AttributeValueMemberNS:
		ns := make([]string, len(v.Value))
		for i, n := range v.Value {
			ns[i] = canonicalNumber(n)
		}
		return appendSortedSet(append(dst, 'n'), ns)
	case *types.AttributeValueMemberBS:
		bs := make([]string, len(v.Value))
		for i, b := range v.Value {
			bs[i] = string(b)
		}
		return appendSortedSet(append(dst, 'b'), bs)
	case *types.AttributeValueMemberL:
		dst = strconv.AppendInt(append(dst, 'L'), int64(len(v.Value)), 10)
		dst = append(dst, ':')
		for _, e := range v.Value {
			dst = appendCanonical(dst, e)
		}
		return dst
	case *types.AttributeValueMemberM:
		return appendCanonicalMap(append(dst, 'M'), v.Value)
	}
	return append(dst, '?')
}

func appendCanonicalMap(dst []byte, m map[string]types.AttributeValue) []byte {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	dst = strconv.AppendInt(dst, int64(len(names)), 10)
	dst = append(dst, ':')
	for _, n := range names {
		dst = appendLenBytes(dst, []byte(n))
		dst = appendCanonical(dst, m[n])
	}
	return dst
}

func appendSortedSet(dst []byte, ss []string) []byte {
	slices.Sort(ss)
	dst = strconv.AppendInt(dst, int64(len(ss)), 10)
	dst = append(dst, ':')
	for _, s := range ss {
		dst = appendLenBytes(dst, []byte(s))
	}
	return dst
}

func appendLenBytes(dst, b []byte) []byte {
	dst = strconv.AppendInt(dst, int64(len(b)), 10)
	dst = append(dst, ':')
	return append(dst, b...)
}

// canonicalNumber is the normalised number, or the text as written when it
// is not a number NormalizeNumber accepts (so that equal texts still have
// equal digests, as equalNumbers treats them).
func canonicalNumber(s string) string {
	if n, err := NormalizeNumber(s); err == nil {
		return n
	}
	return "!" + s
}
