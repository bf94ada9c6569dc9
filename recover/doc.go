// Package recover is the recover stage of rewind: what an on-call engineer
// runs to repair a DynamoDB table after a bad deploy, in runbook order.
//
//  1. Freeze writes: package recover/readonly (`rewind readonly on`) puts
//     tenants in read-only mode in SSM, which the application enforces
//     through package recover/guard (503 for their writes), and attaches a
//     deny-write IAM policy to the application's roles.
//  2. Restore: package recover/pitr (`rewind pitr`, `rewind restore`)
//     checks point-in-time recovery and restores the table as it was
//     before the damage into a new table, never in place.
//  3. Patch the impacted items back from the restored table, verify, and
//     undo if needed (the patcher).
//  4. Unfreeze: `rewind readonly off`.
//
// This package holds only this overview; each step is a subpackage.
// Importers alias the subpackages' parent path, since "recover" shadows
// the builtin.
package recover
