import type { Selectable } from 'kysely';
import type { Database } from '../db/schema.ts';
import {
  type Db,
  liveAt,
  lockedInKeyOrder,
  type PayloadEb,
  type ThisChange,
  TOKEN_MODELS,
  TOKEN_ROW_COLUMNS,
  type TokenRow,
  unexpired,
} from './payload-rows.ts';

/**
 * Codes and tokens in bulk: revoking every live one of a user or a grant, finding the applications a
 * user holds tokens at, and the listings of `tokens audit` and the backup report. Part of the token
 * store (store.ts).
 */

/** The provider models that are a user's tokens at an application. */
const USER_TOKEN_MODELS = ['AccessToken', 'RefreshToken'] as const;

/**
 * Which live codes and tokens: every one of a user (at one application, when given), or of a grant
 * (plus these storage ids).
 */
export type LiveTokenSelection =
  | { userId: number; clientId?: string; clientIds?: readonly string[] }
  | { grantId: string; ids?: readonly string[] };

/**
 * Marks every matching live (unexpired, unrevoked, unconsumed) code and token revoked and returns
 * them, in one UPDATE … RETURNING; with `dryRun` only selects them. Expired rows are left alone, and
 * so are codes already exchanged and refresh tokens already rotated: they can never be used again
 * (one presented again revokes its grant), and their use was audited when it happened. On
 * PostgreSQL the rows are locked in key order (`lockedInKeyOrder`), as the merged consumes lock them.
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
      eb('consumed_at', 'is', null),
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
        .where(lockedInKeyOrder(db, condition))
        .returning(TOKEN_ROW_COLUMNS)
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
 * The client ids at which the user holds live access or refresh tokens (`liveAt`: a rotated refresh
 * token is not held). Tokens that this very unit of work revoked (same time and reason) still count:
 * the applications holding them must hear of it.
 */
export async function clientsWithLiveTokens(
  db: Db,
  userId: number,
  now: number,
  revokedByThisChange?: ThisChange,
): Promise<Set<string>> {
  const rows = await db
    .selectFrom('oidc_payload')
    .select('client_id')
    .distinct()
    .where('user_id', '=', String(userId))
    .where('model', 'in', [...USER_TOKEN_MODELS])
    .where('client_id', 'is not', null)
    .where((eb) => liveAt(eb, now, revokedByThisChange))
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
