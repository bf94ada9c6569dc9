// Command rwquery prints the key set of one tenant in a window, like
// `rewind query --tenants T --from F --to T`, from a binary that links only
// the indexer and query packages: the cold-query benchmark runs it to show
// the query's own cold cost apart from the rewind CLI's start-up (its AWS
// SDK clients and their init).
//
//	rwquery STORE TENANT FROM TO
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/ddbrewind/rewind/indexer"
	"github.com/ddbrewind/rewind/query"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "rwquery:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) != 4 {
		return fmt.Errorf("usage: rwquery STORE TENANT FROM TO")
	}
	from, err := time.Parse(time.RFC3339Nano, args[2])
	if err != nil {
		return err
	}
	to, err := time.Parse(time.RFC3339Nano, args[3])
	if err != nil {
		return err
	}
	// Open as `rewind query` does for a key set.
	st, err := indexer.Open(args[0], indexer.Options{ReadOnly: true, CacheSize: indexer.ScanCacheSize})
	if err != nil {
		return err
	}
	defer st.Close()
	_, err = query.KeySet(context.Background(), st, query.Query{From: from, To: to, Tenants: []string{args[1]}}, os.Stdout, query.KeySetOptions{})
	return err
}
