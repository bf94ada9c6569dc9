package rewind

// StreamViewChangeLog is the StreamViewType of an event read from an
// application's change log (package recover/changelog) rather than from a
// stream: it carries the item's key and the action only, no images, and
// its time is the application's clock, not DynamoDB's, so the order of two
// such events of one item written by different processes is not proven.
// History-based recovery treats the state next to such an event as
// unknown; patch those items from a restored table.
const StreamViewChangeLog = "CHANGE_LOG"
