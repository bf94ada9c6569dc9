package indexer

import (
	"math"
	"os"
	"runtime/debug"
	"sync"
)

// memoryLimitPerBatchByte is Config.MemoryLimit's default as a multiple
// of BatchBytes, and minMemoryLimit its floor. With the default 32 MiB
// batches an ingest holds about 160 MiB of live heap at its peak when its
// objects hold ~15,000 events, and about 250 MiB when they hold ~45,000
// (one batch collected while the last is written, their sorted copies,
// and the objects the decoders hold). Under the runtime's default
// GOGC=100 the heap grows to twice the live heap before each collection;
// 384 MiB caps that at large objects, and is above twice the live heap at
// smaller ones, where it costs the collector nothing. (256 MiB made a
// 10 M-event ingest spend 40% more CPU time collecting.)
const (
	memoryLimitPerBatchByte = 12
	minMemoryLimit          = 384 << 20
)

// memLimit counts the ingests under way that lowered the runtime's soft
// memory limit, so that the last one to end restores it.
var memLimit struct {
	sync.Mutex
	n    int
	prev int64
}

// limitMemory sets the Go runtime's soft memory limit to limit for the
// ingest's duration and returns the function that restores it. It leaves
// the limit alone when limit is negative, when GOMEMLIMIT is set (the
// operator's choice wins), or when the limit in force is already lower.
func limitMemory(limit int64) (restore func()) {
	if limit < 0 || os.Getenv("GOMEMLIMIT") != "" {
		return func() {}
	}
	memLimit.Lock()
	defer memLimit.Unlock()
	if memLimit.n == 0 {
		prev := debug.SetMemoryLimit(-1)
		if prev < limit {
			return func() {}
		}
		memLimit.prev = prev
		debug.SetMemoryLimit(limit)
	}
	memLimit.n++
	return func() {
		memLimit.Lock()
		defer memLimit.Unlock()
		if memLimit.n--; memLimit.n == 0 {
			debug.SetMemoryLimit(memLimit.prev)
			memLimit.prev = math.MaxInt64
		}
	}
}
