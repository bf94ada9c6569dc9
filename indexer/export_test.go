package indexer

import (
	"fmt"
	"io"

	"github.com/cockroachdb/pebble/v2"
)

// DumpForTest writes every key and value of the store, in key order, so
// tests can compare whole stores.
func DumpForTest(s *Store, w io.Writer) error {
	it, err := s.db.NewIter(&pebble.IterOptions{})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%q %q\n", it.Key(), v)
	}
	return it.Error()
}

// SetVersionForTest writes v as the store's format version, as an older
// or newer rewind would have.
func SetVersionForTest(s *Store, v string) error {
	return s.db.Set(metaVersion, []byte(v), pebble.Sync)
}
