import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';

/**
 * The whole database schema, one interface every query is checked against.
 *
 * Portable conventions (SQLite and PostgreSQL share one migration set):
 * - booleans are integers 0/1 (`Flag`);
 * - times are epoch milliseconds in a 64-bit integer (`EpochMs`);
 * - lists and provider payloads are JSON text.
 */
export type Flag = 0 | 1;
export type EpochMs = number;

/** A normalised name (src/util/name-key.ts), set by every write; null only on rows written before. */
type NameKey = ColumnType<string | null, string, string>;

export interface StateTable {
  id: Generated<number>;
  name: string;
  /** `nameKey(name)`, unique: names are unique regardless of case and Unicode form. */
  name_key: NameKey;
  priority: number;
  oidc_access: Flag;
  created_at: EpochMs;
}

export interface GroupTable {
  id: Generated<number>;
  name: string;
  /** `nameKey(name)`, unique. */
  name_key: NameKey;
  oidc_access: Flag;
  created_at: EpochMs;
}

export interface UserTable {
  id: Generated<number>;
  username: string;
  /** `nameKey(username)`, unique: `Ärger` cannot pose as `ärger`. */
  username_key: NameKey;
  email: string;
  email_verified: Flag;
  password_hash: string | null;
  active: Flag;
  superuser: Flag;
  /** The `oidc_access` permission granted to the user directly. */
  oidc_access: Flag;
  state_id: number | null;
  character_id: number | null;
  character_name: string | null;
  corporation_id: number | null;
  corporation_name: string | null;
  corporation_ticker: string | null;
  alliance_id: number | null;
  alliance_name: string | null;
  alliance_ticker: string | null;
  faction_id: number | null;
  faction_name: string | null;
  locale: string | null;
  last_login_at: EpochMs | null;
  /** The next sign-in asks for a new password first (the bootstrap superuser's). */
  must_change_password: ColumnType<Flag, Flag | undefined, Flag>;
  created_at: EpochMs;
  updated_at: EpochMs;
}

export interface UserGroupTable {
  user_id: number;
  group_id: number;
}

/** Outbox of directory lifecycle events, written in the transaction of the change. */
export interface LifecycleEventTable {
  id: Generated<number>;
  kind: string;
  user_id: number | null;
  /** Who made the change (`cli:root`, `admin:alice`, `bootstrap`); null when not told. */
  actor: string | null;
  payload: string;
  created_at: EpochMs;
}

/** An OIDC client. Lists are JSON text; the secret is only ever stored as a digest. */
export interface ApplicationTable {
  client_id: string;
  /** Hex SHA-256 of the client secret; null for public clients. */
  client_secret_sha256: string | null;
  /**
   * A secret imported from the Python plugin as a Django PBKDF2 hash, until the client's first
   * successful authentication replaces it with `client_secret_sha256`.
   */
  client_secret_pbkdf2: ColumnType<string | null, string | null | undefined, string | null>;
  name: string;
  logo_url: string | null;
  /** JSON array of exact redirect URIs. */
  redirect_uris: string;
  /** JSON array of exact post-logout redirect URIs. */
  post_logout_redirect_uris: string;
  client_type: 'confidential' | 'public';
  /** JSON array of grant types. */
  grant_types: string;
  skip_authorization: Flag;
  active: Flag;
  debug_mode: Flag;
  pkce_required: Flag;
  access_token_format: 'inherit' | 'opaque' | 'jwt';
  backchannel_logout_uri: string | null;
  backchannel_logout_on_revoke_only: Flag;
  /** Its id_tokens also carry the granted scopes' claims (not only the protocol claims). */
  id_token_claims: ColumnType<Flag, Flag | undefined, Flag>;
  created_by: string | null;
  created_at: EpochMs;
  updated_at: EpochMs;
}

/** The states and groups an application whitelists, by name (matched regardless of case). */
export interface ApplicationWhitelistTable {
  client_id: string;
  kind: 'state' | 'group';
  name: string;
}

/** Signing keys: `next → active → retired → removed`. */
export interface SigningKeyTable {
  /** RFC 7638 SHA-256 thumbprint of the public key. */
  kid: string;
  alg: 'RS256';
  status: 'next' | 'active' | 'retired' | 'removed';
  /** Public JWK (kty, n, e), JSON text. */
  public_jwk: string;
  /** Private JWK encrypted with a key derived from the secret key; null once removed. */
  private_jwk_encrypted: string | null;
  created_at: EpochMs;
  activated_at: EpochMs | null;
  retired_at: EpochMs | null;
  removed_at: EpochMs | null;
  /**
   * A retired key stays in JWKS until then (retired_at + the longest token lifetime +
   * keys.reloadIntervalMs).
   */
  publish_until: EpochMs | null;
  /** When an operator withdrew it (`keys withdraw`: removed at once, not at `publish_until`); else null. */
  withdrawn_at: EpochMs | null;
  /** Grows with every change of the row; watched by every running instance. */
  revision: Generated<number>;
}

/**
 * oidc-provider storage: one row per stored model instance, clients excepted. `id` is the
 * base64url SHA-256 of the provider's id (codes and tokens are bearer values and are never stored).
 */
export interface OidcPayloadTable {
  model: string;
  id: string;
  /** The provider's payload, JSON text, without the id itself. */
  payload: string;
  grant_id: string | null;
  /** The accountId (`String(app_user.id)`). */
  user_id: string | null;
  client_id: string | null;
  /** Session uid (sessions only). */
  uid: string | null;
  user_code: string | null;
  expires_at: EpochMs | null;
  consumed_at: EpochMs | null;
  /** Access tokens: `opaque` or `jwt`; null for other models. */
  format: ColumnType<string | null, string | null | undefined, string | null>;
  /** A JWT access token: hex SHA-256 of the whole token (its jti alone is no credential). */
  value_sha256: ColumnType<string | null, string | null | undefined, string | null>;
  /** Codes and tokens are revoked in place (kept for `tokens audit` until they expire). */
  revoked_at: ColumnType<EpochMs | null, EpochMs | null | undefined, EpochMs | null>;
  revoked_reason: ColumnType<string | null, string | null | undefined, string | null>;
}

/**
 * Code-reuse audit: one row per redeemed authorization code. `code_hash` is the hex SHA-256 of the code;
 * the token ids are `oidc_payload.id` values (digests), never token values.
 */
export interface IssuedCodeTable {
  code_hash: string;
  client_id: string;
  user_id: string | null;
  grant_id: string | null;
  access_token_id: string | null;
  refresh_token_id: string | null;
  reuse_count: ColumnType<number, number | undefined, number>;
  last_reuse_at: EpochMs | null;
  created_at: EpochMs;
  /** Unreused rows are purged after this (the refresh-token lifetime); reused rows are kept. */
  expires_at: EpochMs;
}

/** One failed login attempt, kept for throttling per account and per address. */
export interface LoginFailureTable {
  id: Generated<number>;
  /**
   * How the attempt signed in: `password`, `external` (an identity provider such as EVE SSO), or
   * `code` (a second-factor code, whichever first factor came before). An account's budgets count
   * only failures of its own method (`SignInMethod`).
   */
  method: ColumnType<'password' | 'external' | 'code', 'password' | 'external' | 'code' | undefined, never>;
  /**
   * The account, NFKC-normalised and lower-cased (`accountKey`). For `password`, the attempt's
   * `throttledName`, the same whether or not the user exists: the name typed, or with Alliance Auth
   * on MySQL or MariaDB a hash of how the collation compares it (`allianceAuthThrottleKey`). For
   * `external`, what the identity provider proved (`eve:<character id>`). For `code`, the user
   * (`user:<id>`, `codeAccount`).
   */
  username: string;
  address: string;
  failed_at: EpochMs;
}

/** One back-channel logout delivery (a logout for one application), durable. */
export interface BclJobTable {
  id: Generated<number>;
  /** What triggered the logout (`user_deactivated`, `rp_initiated`, …). */
  trigger: string;
  /** Null only for the `admin_test` no-op subject. */
  user_id: number | null;
  sub: string;
  client_id: string;
  /** Pinned: every attempt rebuilds the same token from these. */
  jti: string;
  /** Seconds since the epoch. */
  iat: number;
  exp: number;
  kid: string;
  sid: string | null;
  status: 'pending' | 'done';
  attempts: ColumnType<number, number | undefined, number>;
  next_attempt_at: EpochMs;
  lease_owner: string | null;
  lease_until: EpochMs | null;
  first_attempt_at: EpochMs | null;
  last_http_status: number | null;
  outcome: string | null;
  created_at: EpochMs;
  finished_at: EpochMs | null;
}

/** The final outcome of a back-channel logout delivery; failures always, successes when configured. */
export interface BclDeliveryAttemptTable {
  id: Generated<number>;
  client_id: string;
  /** The application's name when the outcome was recorded. */
  client_name: string;
  user_id: number | null;
  trigger: string;
  jti: string;
  attempts: number;
  outcome: string;
  http_status: number | null;
  detail: string | null;
  recorded_at: EpochMs;
}

/** The Alliance Auth directory: each AA user's fingerprint as of the last completed poll cycle. */
export interface AaUserFingerprintTable {
  /** `auth_user.id` in Alliance Auth's database. */
  user_id: number;
  /** `serializeFingerprint()` text. */
  fingerprint: string;
  updated_at: EpochMs;
}

/** The Alliance Auth directory: each state's and group's name (by its id in AA) as of the last cycle. */
export interface AaCatalogNameTable {
  entity: 'state' | 'group';
  /** `authentication_state.id` or `auth_group.id` in Alliance Auth's database. */
  id: number;
  name: string;
}

/** The Alliance Auth directory: who polls (one instance at a time). */
export interface AaPollLeaseTable {
  name: string;
  owner: string | null;
  lease_until: EpochMs;
  /** Grows with every completed cycle. */
  generation: ColumnType<number, number | undefined, number>;
  last_success_at: EpochMs | null;
}

/** One audit event kept for the admin UI and `aa-oidc audit list`, until its retention ends. */
export interface AuditEventTable {
  id: Generated<number>;
  /** The event's publication time. */
  recorded_at: EpochMs;
  kind: string;
  user_id: number | null;
  client_id: string | null;
  request_id: string | null;
  /** The whole audit record (`time`, `kind`, the event's fields, `request_id`), JSON text. */
  payload: string;
}

/** Two-factor sign-in: a user's TOTP enrolment (the secret encrypted at rest). */
export interface TotpEnrolmentTable {
  user_id: number;
  secret_encrypted: string;
  /** Null until a first code proved the user's app holds the secret. */
  confirmed_at: EpochMs | null;
  /** The time step of the last accepted code: no code counts twice. */
  last_used_step: number | null;
  created_at: EpochMs;
}

/** Two-factor sign-in: single-use recovery codes, as SHA-256 digests. */
export interface RecoveryCodeTable {
  id: Generated<number>;
  user_id: number;
  code_sha256: string;
  used_at: EpochMs | null;
  created_at: EpochMs;
}

/**
 * The change epoch: one row (`id` 1) whose `value` every write to applications raises in its
 * transaction (`src/db/change-epoch.ts`).
 */
export interface ChangeEpochTable {
  id: number;
  value: number;
}

/** Raised when a user's sessions end or two-factor is reset: sign-ins of an earlier one stop. */
export interface SignInGenerationTable {
  user_id: number;
  generation: number;
}

/**
 * The directory whose user ids this database keeps: one row (`id` 1), recorded at the first start
 * and changed only by `aa-oidc directory rebind` (src/directory/binding.ts).
 */
export interface DirectoryBindingTable {
  id: number;
  directory: 'builtin' | 'alliance-auth';
  /** Empty for the built-in directory; for Alliance Auth, its database's (`allianceAuthIdentity`). */
  identity: string;
  bound_at: EpochMs;
}

/** What changed, named by the triggers of migration 0071 (src/db/change-log.ts). */
export interface ChangeLogTable {
  seq: Generated<number>;
  key: string;
}

export interface Database {
  state: StateTable;
  auth_group: GroupTable;
  app_user: UserTable;
  user_group: UserGroupTable;
  lifecycle_event: LifecycleEventTable;
  signing_key: SigningKeyTable;
  application: ApplicationTable;
  application_whitelist: ApplicationWhitelistTable;
  oidc_payload: OidcPayloadTable;
  issued_code: IssuedCodeTable;
  login_failure: LoginFailureTable;
  bcl_job: BclJobTable;
  bcl_delivery_attempt: BclDeliveryAttemptTable;
  aa_user_fingerprint: AaUserFingerprintTable;
  aa_poll_lease: AaPollLeaseTable;
  aa_catalog_name: AaCatalogNameTable;
  sign_in_generation: SignInGenerationTable;
  audit_event: AuditEventTable;
  totp_enrolment: TotpEnrolmentTable;
  recovery_code: RecoveryCodeTable;
  change_epoch: ChangeEpochTable;
  change_log: ChangeLogTable;
  directory_binding: DirectoryBindingTable;
}

export type StateRow = Selectable<StateTable>;
export type GroupRow = Selectable<GroupTable>;
export type UserRow = Selectable<UserTable>;
export type NewUserRow = Insertable<UserTable>;
export type UserUpdate = Updateable<UserTable>;
export type LifecycleEventRow = Selectable<LifecycleEventTable>;
export type SigningKeyRow = Selectable<SigningKeyTable>;

// Re-exported so that table modules added by later sections use the same helpers.
export type { ColumnType, Generated };
