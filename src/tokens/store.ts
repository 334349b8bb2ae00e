/**
 * Codes, tokens, grants and sessions at rest: the only modules that query `oidc_payload` are this
 * store's files. The provider's storage adapter (src/oidc/adapter.ts), revocation, listings, the
 * issued-code audit and the logout fan-out all go through their functions:
 *
 * - payload-rows.ts: one row at a time, as the storage adapter reads and writes them;
 * - token-rows.ts: codes and tokens in bulk (revocation, listings, counts);
 * - user-sessions.ts: a user's grants and provider sessions;
 * - store-users.ts: the same for many users at once (a state or group change of every member).
 *
 * Rows are keyed by `storageId(id)`, a SHA-256 digest of the provider's id: for codes and tokens
 * that id is the bearer value itself, and a copy of the database must not be a copy of live
 * credentials. Tooling that starts from a token value finds the row with `storageId(value)`.
 */
export * from './payload-rows.ts';
export * from './token-rows.ts';
export * from './user-sessions.ts';
