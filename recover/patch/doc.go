// Package patch puts the items a bad deploy damaged back into a production
// DynamoDB table, from a source of the wanted item states (normally a
// point-in-time restore of the table), safely, fast and resumably.
//
// The entry points are Patch, Verify and Undo. All three run the same
// engine: keys are streamed in chunks of up to 100 from a key set (or, for
// Undo, from a journal), the wanted state of each chunk comes from a Source
// and the production state from BatchGetItem with consistent reads, and the
// planner classifies every key (restore, delete, unchanged, absent). A dry
// run prints that plan as JSON Lines; an apply executes exactly that plan.
// There is no second code path that could drift from what the dry run
// showed.
//
// The three share one set of knobs, Options (rate, concurrency, readers,
// attempts, timeouts, output), defaulted by EnsureDefaults and checked by
// Validate; DefaultOptions is what a command line binds its flags to. How
// a run ended is Summary.Outcome: Done, Partial, Failed or Interrupted.
//
// Writes are conditional on the production item still being the one that
// was planned against, so a write made after planning is reported as a
// conflict and left alone (Config.Force overrides). Before any write, the
// production pre-image is appended to a journal and fsynced; a checkpoint
// next to the journal records how far the patch got, so a crashed patch can
// be resumed, and Undo puts the journaled pre-images back.
//
// Memory is bounded by the number of chunks in flight, not by the size of
// the key set. Values stay types.AttributeValue end to end (never Go floats,
// never attributevalue marshalling), so numbers with 38 digits, binary,
// sets and nested maps round-trip exactly.
//
// This package never imports the indexer or query: it takes key sets, and
// item states through the Source interface.
package patch
