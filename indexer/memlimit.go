package indexer

import (
	"math"
	"os"
	"runtime/debug"
	"sync"
)

// memoryLimitPerBatchByte is Config.MemoryLimit's default as a multiple
// of BatchBytes: with the default 32 MiB batches an ingest holds about
// 160 MiB of live heap at its peak (one batch collected while the last is
// written, their sorted copies and the decoders' objects), and under the
// Go runtime's default GOGC=100 the heap would grow to twice that before
// each collection; 256 MiB leaves the collector room to work.
const (
	memoryLimitPerBatchByte = 8
	minMemoryLimit          = 256 << 20
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
