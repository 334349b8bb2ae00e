import { createHash } from 'node:crypto';
import type { ExpressionBuilder, Insertable, Kysely, Selectable, Transaction } from 'kysely';
import type { Database } from '../db/schema.ts';

/**
 * Codes, tokens, grants and sessions at rest: the only module that queries `oidc_payload`. The
 * provider's storage adapter (src/oidc/adapter.ts), revocation, listings, the issued-code audit and
 * the logout fan-out all go through these functions.
 *
 * Rows are keyed by `storageId(id)`, a SHA-256 digest of the provider's id: for codes and tokens
 * that id is the bearer value itself, and a copy of the database must not be a copy of live
 * credentials. Tooling that starts from a token value finds the row with `storageId(value)`.
 */

type Db = Kysely<Database> | Transaction<Database>;
type PayloadEb = ExpressionBuilder<Database, 'oidc_payload'>;

/** The storage id of a provider id (a code or token value, a jti, a session id). */
export function storageId(id: string): string {
  return createHash('sha256').update(id, 'utf8').digest('base64url');
}

/** A row as the adapter writes it. */
export type PayloadRow = Insertable<Database['oidc_payload']>;

/** What a lookup returns of a row. */
export type StoredPayload = Pick<
  Selectable<Database['oidc_payload']>,
  'payload' | 'expires_at' | 'consumed_at' | 'format' | 'value_sha256' | 'revoked_at'
>;
const STORED_COLUMNS = [
  'payload',
  'expires_at',
  'consumed_at',
  'format',
  'value_sha256',
  'revoked_at',
] as const;

/** The provider models that are codes or tokens. */
export const TOKEN_MODELS = [
  'AccessToken',
  'ClientCredentials',
  'RefreshToken',
  'AuthorizationCode',
] as const;
export type TokenModel = (typeof TOKEN_MODELS)[number];

/** The provider models that are a user's tokens at an application. */
const USER_TOKEN_MODELS = ['AccessToken', 'RefreshToken'] as const;

function unexpired(eb: PayloadEb, now: number) {
  return eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]);
}

/** Writes (inserts or replaces) one row. */
export async function writePayloadRow(db: Db, row: PayloadRow): Promise<void> {
  const { model: _model, id: _id, ...columns } = row;
  await db
    .insertInto('oidc_payload')
    .values(row)
    .onConflict((conflict) => conflict.columns(['model', 'id']).doUpdateSet(columns))
    .execute();
}

export function findPayload(db: Db, model: string, id: string): Promise<StoredPayload | undefined> {
  return db
    .selectFrom('oidc_payload')
    .select(STORED_COLUMNS)
    .where('model', '=', model)
    .where('id', '=', id)
    .executeTakeFirst();
}

/** A session by its uid, or a device-flow row by its user code. */
export function findPayloadBy(
  db: Db,
  model: string,
  column: 'uid' | 'user_code',
  value: string,
): Promise<StoredPayload | undefined> {
  return db
    .selectFrom('oidc_payload')
    .select(STORED_COLUMNS)
    .where('model', '=', model)
    .where(column, '=', value)
    .executeTakeFirst();
}

/**
 * Marks a live code or refresh token consumed; undefined when it was consumed or revoked already.
 * One conditional UPDATE: of N concurrent redemptions exactly one gets past it.
 */
export function consumePayload(
  trx: Db,
  model: string,
  id: string,
  now: number,
): Promise<{ client_id: string | null; user_id: string | null; grant_id: string | null } | undefined> {
  return trx
    .updateTable('oidc_payload')
    .set({ consumed_at: now })
    .where('model', '=', model)
    .where('id', '=', id)
    .where('consumed_at', 'is', null)
    .where('revoked_at', 'is', null)
    .returning(['client_id', 'user_id', 'grant_id'])
    .executeTakeFirst();
}

/** Revokes one row in place (kept for listings until it expires). */
export async function revokePayload(
  db: Db,
  model: string,
  id: string,
  now: number,
  reason: string,
): Promise<void> {
  await db
    .updateTable('oidc_payload')
    .set({ revoked_at: now, revoked_reason: reason })
    .where('model', '=', model)
    .where('id', '=', id)
    .where('revoked_at', 'is', null)
    .execute();
}

/** Revokes in place every row of `model` in a grant. */
export async function revokePayloadsOfGrant(
  db: Db,
  model: string,
  grantId: string,
  now: number,
  reason: string,
): Promise<void> {
  await db
    .updateTable('oidc_payload')
    .set({ revoked_at: now, revoked_reason: reason })
    .where('model', '=', model)
    .where('grant_id', '=', grantId)
    .where('revoked_at', 'is', null)
    .execute();
}

export async function deletePayload(db: Db, model: string, id: string): Promise<void> {
  await db.deleteFrom('oidc_payload').where('model', '=', model).where('id', '=', id).execute();
}

export async function deletePayloadsOfGrant(db: Db, model: string, grantId: string): Promise<void> {
  await db.deleteFrom('oidc_payload').where('model', '=', model).where('grant_id', '=', grantId).execute();
}

/** Deletes rows whose lifetime is over; returns how many went. */
export async function purgeExpiredPayloads(db: Db, now = Date.now()): Promise<number> {
  const result = await db
    .deleteFrom('oidc_payload')
    .where('expires_at', 'is not', null)
    .where('expires_at', '<=', now)
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}

/** One code or token as revocation reports it: its storage id, never its value. */
export interface TokenRow {
  model: TokenModel;
  id: string;
  client_id: string | null;
  user_id: string | null;
  grant_id: string | null;
  format: string | null;
}
const TOKEN_ROW_COLUMNS = ['model', 'id', 'client_id', 'user_id', 'grant_id', 'format'] as const;

/**
 * Which live codes and tokens: every one of a user (at one application, when given), or of a grant
 * (plus these storage ids).
 */
export type LiveTokenSelection =
  | { userId: number; clientId?: string; clientIds?: readonly string[] }
  | { grantId: string; ids?: readonly string[] };

/**
 * Marks every matching live (unexpired, unrevoked) code and token revoked and returns them, in one
 * UPDATE … RETURNING; with `dryRun` only selects them. Expired rows are left alone.
 */
export async function revokeLiveTokenRows(
  db: Db,
  selection: LiveTokenSelection,
  reason: string,
  now: number,
  options: { dryRun?: boolean } = {},
): Promise<TokenRow[]> {
  const condition = (eb: PayloadEb) =>
    eb.and([
      eb('model', 'in', [...TOKEN_MODELS]),
      eb('revoked_at', 'is', null),
      unexpired(eb, now),
      'userId' in selection
        ? eb.and([
            eb('user_id', '=', String(selection.userId)),
            ...(selection.clientId === undefined ? [] : [eb('client_id', '=', selection.clientId)]),
            ...(selection.clientIds === undefined ? [] : [eb('client_id', 'in', [...selection.clientIds])]),
          ])
        : eb.or([
            eb('grant_id', '=', selection.grantId),
            ...(selection.ids && selection.ids.length > 0 ? [eb('id', 'in', [...selection.ids])] : []),
          ]),
    ]);
  const rows = options.dryRun
    ? await db.selectFrom('oidc_payload').select(TOKEN_ROW_COLUMNS).where(condition).execute()
    : await db
        .updateTable('oidc_payload')
        .set({ revoked_at: now, revoked_reason: reason })
        .where(condition)
        .returning(TOKEN_ROW_COLUMNS)
        .execute();
  return rows as TokenRow[];
}

/** The codes and tokens of a grant revoked for `reason` since `since` (by anyone, the provider too). */
export async function tokenRowsRevokedSince(
  db: Db,
  grantId: string,
  reason: string,
  since: number,
): Promise<TokenRow[]> {
  const rows = await db
    .selectFrom('oidc_payload')
    .select(TOKEN_ROW_COLUMNS)
    .where('grant_id', '=', grantId)
    .where('revoked_reason', '=', reason)
    .where('revoked_at', '>=', since)
    .execute();
  return rows as TokenRow[];
}

/** An authorization code as stored, found by its storage id. */
export function findStoredCode(
  db: Db,
  id: string,
): Promise<
  | { client_id: string | null; user_id: string | null; grant_id: string | null; consumed_at: number | null }
  | undefined
> {
  return db
    .selectFrom('oidc_payload')
    .select(['client_id', 'user_id', 'grant_id', 'consumed_at'])
    .where('model', '=', 'AuthorizationCode')
    .where('id', '=', id)
    .executeTakeFirst();
}

/**
 * The client ids at which the user holds live access or refresh tokens. Tokens that this very unit
 * of work revoked (same time and reason) still count: the applications holding them must hear of it.
 */
export async function clientsWithLiveTokens(
  db: Db,
  userId: number,
  now: number,
  revokedByThisChange?: { at: number; reason: string },
): Promise<Set<string>> {
  const rows = await db
    .selectFrom('oidc_payload')
    .select('client_id')
    .distinct()
    .where('user_id', '=', String(userId))
    .where('model', 'in', [...USER_TOKEN_MODELS])
    .where('client_id', 'is not', null)
    .where((eb) => unexpired(eb, now))
    .where((eb) =>
      revokedByThisChange
        ? eb.or([
            eb('revoked_at', 'is', null),
            eb.and([
              eb('revoked_at', '=', revokedByThisChange.at),
              eb('revoked_reason', '=', revokedByThisChange.reason),
            ]),
          ])
        : eb('revoked_at', 'is', null),
    )
    .execute();
  return new Set(rows.map((row) => row.client_id!));
}

/** What `tokens audit` lists of a stored token. */
export type ListedTokenRow = Pick<
  Selectable<Database['oidc_payload']>,
  | 'model'
  | 'id'
  | 'payload'
  | 'client_id'
  | 'user_id'
  | 'format'
  | 'expires_at'
  | 'consumed_at'
  | 'revoked_at'
  | 'revoked_reason'
>;

/** Stored access and refresh tokens, newest expiry first. */
export function selectListedTokens(
  db: Db,
  filter: { userId?: number; clientId?: string; includeExpired?: boolean },
  now: number,
): Promise<ListedTokenRow[]> {
  let query = db
    .selectFrom('oidc_payload')
    .select([
      'model',
      'id',
      'payload',
      'client_id',
      'user_id',
      'format',
      'expires_at',
      'consumed_at',
      'revoked_at',
      'revoked_reason',
    ])
    .where('model', 'in', ['AccessToken', 'ClientCredentials', 'RefreshToken']);
  if (filter.userId !== undefined) query = query.where('user_id', '=', String(filter.userId));
  if (filter.clientId !== undefined) query = query.where('client_id', '=', filter.clientId);
  if (!filter.includeExpired) query = query.where((eb) => unexpired(eb, now));
  return query.orderBy('expires_at', 'desc').execute();
}

/** One of a user's grants: what the user allowed one application (the account page lists them). */
export interface UserGrant {
  clientId: string;
  /** The OIDC scopes granted. */
  scopes: string[];
  /** Epoch milliseconds. */
  grantedAt: number | null;
  expiresAt: number | null;
}

interface StoredGrantPayload {
  clientId?: unknown;
  iat?: unknown;
  openid?: { scope?: unknown };
}

/** The user's live grants, one per application (the latest when several), newest first. */
export async function selectUserGrants(
  db: Db,
  userId: number,
  now: number = Date.now(),
): Promise<UserGrant[]> {
  const rows = await db
    .selectFrom('oidc_payload')
    .select(['client_id', 'payload', 'expires_at'])
    .where('user_id', '=', String(userId))
    .where('model', '=', 'Grant')
    .where((eb) => unexpired(eb, now))
    .execute();
  const byClient = new Map<string, UserGrant>();
  for (const row of rows) {
    const payload = JSON.parse(row.payload) as StoredGrantPayload;
    const clientId = row.client_id ?? (typeof payload.clientId === 'string' ? payload.clientId : null);
    if (clientId === null) continue;
    const scope = typeof payload.openid?.scope === 'string' ? payload.openid.scope : '';
    const grant: UserGrant = {
      clientId,
      scopes: [...new Set(scope.split(' ').filter(Boolean))],
      grantedAt: typeof payload.iat === 'number' ? payload.iat * 1000 : null,
      expiresAt: row.expires_at,
    };
    const known = byClient.get(clientId);
    if (!known || (grant.grantedAt ?? 0) > (known.grantedAt ?? 0)) byClient.set(clientId, grant);
  }
  return [...byClient.values()].sort((a, b) => (b.grantedAt ?? 0) - (a.grantedAt ?? 0));
}

/** Deletes the user's grants at one application; returns how many went. */
export async function deleteUserGrants(db: Db, userId: number, clientId: string): Promise<number> {
  const result = await db
    .deleteFrom('oidc_payload')
    .where('model', '=', 'Grant')
    .where('user_id', '=', String(userId))
    .where('client_id', '=', clientId)
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}

/**
 * One of a user's live provider sessions (a browser signed in): what the admin page and `user show`
 * list, and what back-channel logout reads.
 */
export interface UserSession {
  /** The storage id (a digest of the session id, never the id the cookie carries). */
  storageId: string;
  /** The session's `uid` (what the web console's cookie names), when stored. */
  uid: string | null;
  /** Epoch milliseconds of the sign-in, when known. */
  loginAt: number | null;
  /** How the person signed in (`pwd`, `otp`…). */
  amr: string[];
  /** The applications signed in through this session. */
  clientIds: string[];
  /** The same, each with the `sid` its ID tokens carry. */
  clients: Array<{ clientId: string; sid: string | null }>;
  expiresAt: number | null;
}

interface StoredSessionPayload {
  uid?: unknown;
  loginTs?: unknown;
  amr?: unknown;
  authorizations?: Record<string, { sid?: unknown } | undefined>;
}

function storedSession(row: { id: string; payload: string; expires_at: number | null }): UserSession {
  let payload: StoredSessionPayload = {};
  try {
    payload = JSON.parse(row.payload) as StoredSessionPayload;
  } catch {
    // An unreadable payload still names a session to end.
  }
  const authorizations =
    payload.authorizations && typeof payload.authorizations === 'object' ? payload.authorizations : {};
  const clients = Object.entries(authorizations)
    .map(([clientId, authorization]) => ({
      clientId,
      sid: typeof authorization?.sid === 'string' ? authorization.sid : null,
    }))
    .sort((a, b) => (a.clientId < b.clientId ? -1 : a.clientId > b.clientId ? 1 : 0));
  return {
    storageId: row.id,
    uid: typeof payload.uid === 'string' ? payload.uid : null,
    loginAt: typeof payload.loginTs === 'number' ? payload.loginTs * 1000 : null,
    amr: Array.isArray(payload.amr) ? payload.amr.filter((method) => typeof method === 'string') : [],
    clientIds: clients.map((client) => client.clientId),
    clients,
    expiresAt: row.expires_at,
  };
}

/**
 * The user's live provider sessions (one indexed query by user), newest sign-in first. Sessions that
 * this very unit of work ended (same time and reason) still count, so that back-channel logout of the
 * same change still finds their `sid`s.
 */
export async function selectUserSessions(
  db: Db,
  userId: number,
  now: number = Date.now(),
  endedByThisChange?: { at: number; reason: string },
): Promise<UserSession[]> {
  const rows = await db
    .selectFrom('oidc_payload')
    .select(['id', 'payload', 'expires_at'])
    .where('user_id', '=', String(userId))
    .where('model', '=', 'Session')
    .where((eb) => unexpired(eb, now))
    .where((eb) =>
      endedByThisChange
        ? eb.or([
            eb('revoked_at', 'is', null),
            eb.and([
              eb('revoked_at', '=', endedByThisChange.at),
              eb('revoked_reason', '=', endedByThisChange.reason),
            ]),
          ])
        : eb('revoked_at', 'is', null),
    )
    .execute();
  return rows.map(storedSession).sort((a, b) => (b.loginAt ?? 0) - (a.loginAt ?? 0));
}

/**
 * Ends every live provider session of the user (but the one whose uid is `exceptUid`), in place (`revoked_at`): the adapter no longer finds
 * them, so a kept session cookie meets the login page (or `login_required`) on its next request, on
 * every instance. Ending in place rather than deleting means a request that read the session just
 * before cannot bring it back by saving it. Returns the sessions ended, read in the same statement.
 */
export async function endUserSessions(
  db: Db,
  userId: number,
  at: number,
  reason: string,
  options: { dryRun?: boolean; exceptUid?: string } = {},
): Promise<UserSession[]> {
  if (options.dryRun) return selectUserSessions(db, userId, at);
  let query = db
    .updateTable('oidc_payload')
    .set({ revoked_at: at, revoked_reason: reason })
    .where('user_id', '=', String(userId))
    .where('model', '=', 'Session')
    .where('revoked_at', 'is', null)
    .where((eb) => unexpired(eb, at));
  if (options.exceptUid !== undefined)
    query = query.where((eb) => eb.or([eb('uid', 'is', null), eb('uid', '!=', options.exceptUid!)]));
  const rows = await query.returning(['id', 'payload', 'expires_at']).execute();
  return rows.map(storedSession).sort((a, b) => (b.loginAt ?? 0) - (a.loginAt ?? 0));
}

/** Deletes the user's grants (at one application, when given); returns how many went. */
export async function deleteGrantsOfUser(
  db: Db,
  userId: number,
  options: { clientId?: string; dryRun?: boolean } = {},
): Promise<number> {
  if (options.dryRun) {
    let query = db
      .selectFrom('oidc_payload')
      .select((eb) => eb.fn.countAll<string | number>().as('count'))
      .where('model', '=', 'Grant')
      .where('user_id', '=', String(userId));
    if (options.clientId !== undefined) query = query.where('client_id', '=', options.clientId);
    return Number((await query.executeTakeFirst())?.count ?? 0);
  }
  let query = db
    .deleteFrom('oidc_payload')
    .where('model', '=', 'Grant')
    .where('user_id', '=', String(userId));
  if (options.clientId !== undefined) query = query.where('client_id', '=', options.clientId);
  return Number((await query.executeTakeFirst()).numDeletedRows);
}

/** How many access and refresh tokens have not expired at `now` (the backup report). */
export async function countLiveTokens(db: Db, now: number): Promise<number> {
  const row = await db
    .selectFrom('oidc_payload')
    .select((eb) => eb.fn.countAll().as('n'))
    .where('model', 'in', ['AccessToken', 'RefreshToken'])
    .where('expires_at', '>', now)
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}
