// Package readonly freezes writes to a DynamoDB table while it is being
// recovered, in two layers that can be switched independently and are both
// idempotent:
//
//   - The application layer, TenantList: an SSM Parameter Store StringList
//     (DefaultParameter, "read-only-customers") of tenant ids, or All. The
//     application reads it through package recover/guard and answers writes
//     by those tenants with 503. SSM cannot store an empty StringList, so
//     an empty list is stored as Placeholder ("none"). Or FlagList: the
//     feature flag DefaultFlag ("readonly", attribute "tenants") of an
//     AppConfig feature flag profile, changed by creating a hosted
//     configuration version and deploying it (`--flags
//     appconfig:APP/ENV/PROFILE`), which the guard reads through the
//     AppConfig Agent. Both are an AppLayer.
//   - The IAM layer, DenyPolicy: a managed policy (DefaultPolicy,
//     "DenyWrite") attached to the application's roles (inline where a
//     role is at its managed-policy quota). For the whole table, statement
//     PolicySid denies WriteActions on the table and its indexes in every
//     replica region; for some tenants, statement TenantsSid denies
//     ItemWriteActions on the items whose partition key matches the
//     tenants' dynamodb:LeadingKeys patterns (TenantPatterns), and
//     statement TableSid the control-plane TableWriteActions. It catches
//     writes that bypass the guard (other services, scripts, a guard that
//     fails open). DenyPolicy.Check proves it in force with
//     iam:SimulatePrincipalPolicy.
//
// Freeze applies both (application layer first) and Thaw lifts both (IAM
// layer first); each layer runs under its own deadline and a failed layer
// never stops the other: the Report says, per layer, ok, failed (and why)
// or skipped. ReadStatus reads both the same way and Warnings says where
// they disagree.
//
// The operator's role is never given the deny policy (DenyPolicy.On
// refuses it), so the patch can still write while the application cannot.
//
// Importers alias the parent: the directory is recover/readonly, and
// "recover" would shadow the builtin.
package readonly
