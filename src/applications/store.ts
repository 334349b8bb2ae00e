import {
  type ExpressionBuilder,
  type Kysely,
  type RawBuilder,
  type Selectable,
  sql,
  type Transaction,
} from 'kysely';
import type { DatabaseKind } from '../db/connect.ts';
import { raiseChangeEpoch } from '../db/change-epoch.ts';
import { precompiled } from '../db/precompiled.ts';
import type { ApplicationTable, Database } from '../db/schema.ts';
import type { Application, GrantType } from './types.ts';
import type { ValidApplication } from './validate.ts';

/**
 * The SQL for applications. Domain rules live in validate.ts and service.ts. Every write raises the
 * change epoch in its transaction (src/db/change-epoch.ts): the provider keeps applications in
 * memory until it moves.
 */

type Db = Kysely<Database> | Transaction<Database>;

/**
 * A JSON array (as text) of the whitelisted names, as a correlated subquery, so that an application
 * and both whitelists come back in one round trip.
 */
function whitelistNames(kind: DatabaseKind, whitelist: 'state' | 'group'): RawBuilder<string> {
  const names =
    kind === 'sqlite' ? sql`json_group_array(w.name)` : sql`coalesce(json_agg(w.name)::text, '[]')`;
  return sql<string>`(select ${names} from application_whitelist as w where w.client_id = application.client_id and w.kind = ${whitelist})`;
}

export function selectApplications(db: Db, kind: DatabaseKind) {
  return db
    .selectFrom('application')
    .selectAll('application')
    .select([
      whitelistNames(kind, 'state').as('state_names'),
      whitelistNames(kind, 'group').as('group_names'),
    ]);
}

type ApplicationQueryRow = Selectable<ApplicationTable> & { state_names: string; group_names: string };

function parseList(text: string): string[] {
  const parsed: unknown = JSON.parse(text);
  return Array.isArray(parsed) ? parsed.filter((item): item is string => typeof item === 'string') : [];
}

function sortedNames(text: string): string[] {
  return parseList(text).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

export function toApplication(row: ApplicationQueryRow): Application {
  return {
    clientId: row.client_id,
    clientSecretSha256: row.client_secret_sha256,
    clientSecretPbkdf2: row.client_secret_pbkdf2 ?? null,
    name: row.name,
    logoUrl: row.logo_url,
    redirectUris: parseList(row.redirect_uris),
    postLogoutRedirectUris: parseList(row.post_logout_redirect_uris),
    clientType: row.client_type,
    grantTypes: parseList(row.grant_types) as GrantType[],
    skipAuthorization: row.skip_authorization === 1,
    states: sortedNames(row.state_names),
    groups: sortedNames(row.group_names),
    active: row.active === 1,
    debugMode: row.debug_mode === 1,
    pkceRequired: row.pkce_required === 1,
    accessTokenFormat: row.access_token_format,
    backchannelLogoutUri: row.backchannel_logout_uri,
    backchannelLogoutOnRevokeOnly: row.backchannel_logout_on_revoke_only === 1,
    idTokenClaims: row.id_token_claims === 1,
    createdBy: row.created_by,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}

/** The lookup of one application by client id, compiled once (it runs for every provider request). */
const findByClientId = {
  sqlite: precompiled((db: Db, clientId: string) =>
    selectApplications(db, 'sqlite').where('application.client_id', '=', clientId),
  ),
  postgres: precompiled((db: Db, clientId: string) =>
    selectApplications(db, 'postgres').where('application.client_id', '=', clientId),
  ),
} satisfies Record<DatabaseKind, unknown>;

export async function findApplication(
  db: Db,
  kind: DatabaseKind,
  clientId: string,
): Promise<Application | undefined> {
  const row = await findByClientId[kind].takeFirst(db, clientId);
  return row === undefined ? undefined : toApplication(row as ApplicationQueryRow);
}

export async function listApplications(
  db: Db,
  kind: DatabaseKind,
  filter: { active?: boolean; search?: string },
): Promise<Application[]> {
  let query = selectApplications(db, kind);
  if (filter.active !== undefined) query = query.where('application.active', '=', filter.active ? 1 : 0);
  if (filter.search !== undefined && filter.search !== '') {
    const pattern = `%${filter.search.toLowerCase().replace(/[\\%_]/g, (char) => `\\${char}`)}%`;
    query = query.where((eb) =>
      eb.or([
        sql<boolean>`lower(application.name) like ${pattern} escape '\\'`,
        sql<boolean>`lower(application.client_id) like ${pattern} escape '\\'`,
      ]),
    );
  }
  const rows = await query.orderBy('application.name').orderBy('application.client_id').execute();
  return rows.map((row) => toApplication(row as ApplicationQueryRow));
}

/**
 * A client_id (the column, or a value) folded as the unique index `application_client_id_folded_uq`
 * (migration 0082) folds it, so that this read finds what that index refuses: ASCII letters alone
 * (client ids are ASCII, validate.ts). SQLite's `lower()` folds ASCII only; PostgreSQL's, under the C
 * collation, A–Z only whatever the database's locale (in a Turkish one `lower('I')` is `ı`).
 */
function foldedClientId(kind: DatabaseKind, clientId: RawBuilder<string> | string): RawBuilder<string> {
  const value = typeof clientId === 'string' ? sql<string>`${clientId}` : clientId;
  return kind === 'postgres' ? sql<string>`lower(${value} collate "C")` : sql<string>`lower(${value})`;
}

/**
 * The client ids of the applications whose client_id is `clientId` in any case (`Wiki` and `wiki`),
 * itself included when taken, in code point order.
 */
export async function clientIdsInAnyCase(db: Db, kind: DatabaseKind, clientId: string): Promise<string[]> {
  const rows = await db
    .selectFrom('application')
    .select('client_id')
    .where(foldedClientId(kind, sql<string>`client_id`), '=', foldedClientId(kind, clientId))
    .execute();
  return rows.map((row) => row.client_id).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** The columns a validated application sets (everything but secret and provenance). */
function settableColumns(app: ValidApplication) {
  return {
    name: app.name,
    logo_url: app.logoUrl,
    redirect_uris: JSON.stringify(app.redirectUris),
    post_logout_redirect_uris: JSON.stringify(app.postLogoutRedirectUris),
    grant_types: JSON.stringify(app.grantTypes),
    skip_authorization: flag(app.skipAuthorization),
    active: flag(app.active),
    debug_mode: flag(app.debugMode),
    pkce_required: flag(app.pkceRequired),
    access_token_format: app.accessTokenFormat,
    backchannel_logout_uri: app.backchannelLogoutUri,
    backchannel_logout_on_revoke_only: flag(app.backchannelLogoutOnRevokeOnly),
    id_token_claims: flag(app.idTokenClaims),
  } as const;
}

function flag(value: boolean): 0 | 1 {
  return value ? 1 : 0;
}

export async function insertApplication(
  trx: Transaction<Database>,
  app: ValidApplication,
  secret: { sha256: string | null; pbkdf2?: string | null },
  createdBy: string,
  now: number,
): Promise<void> {
  await trx
    .insertInto('application')
    .values({
      client_id: app.clientId,
      client_secret_sha256: secret.sha256,
      client_secret_pbkdf2: secret.pbkdf2 ?? null,
      client_type: app.clientType,
      ...settableColumns(app),
      created_by: createdBy,
      created_at: now,
      updated_at: now,
    })
    .execute();
  await replaceWhitelists(trx, app);
  await raiseChangeEpoch(trx);
}

/**
 * Writes an update inside `trx`, only over the row as it was read (`readAt`, its `updated_at`): false,
 * and nothing written, when it is gone or another write changed it since (see `versionedAt`).
 */
export async function updateApplicationRow(
  trx: Transaction<Database>,
  app: ValidApplication,
  now: number,
  whitelistsChanged: boolean,
  readAt: number,
): Promise<boolean> {
  const result = await trx
    .updateTable('application')
    .set({ ...settableColumns(app), updated_at: versionedAt(now, readAt) })
    .where('client_id', '=', app.clientId)
    .where('updated_at', '=', readAt)
    .executeTakeFirst();
  if (Number(result.numUpdatedRows) !== 1) return false;
  if (whitelistsChanged) {
    await trx.deleteFrom('application_whitelist').where('client_id', '=', app.clientId).execute();
    await replaceWhitelists(trx, app);
  }
  await raiseChangeEpoch(trx);
  return true;
}

async function replaceWhitelists(trx: Transaction<Database>, app: ValidApplication): Promise<void> {
  const rows = [
    ...app.states.map((name) => ({ client_id: app.clientId, kind: 'state' as const, name })),
    ...app.groups.map((name) => ({ client_id: app.clientId, kind: 'group' as const, name })),
  ];
  if (rows.length > 0) await trx.insertInto('application_whitelist').values(rows).execute();
}

/** The client ids of the applications whose whitelist names `name` (exactly, as the policy matches). */
export async function applicationsWhitelisting(
  db: Db,
  kind: 'state' | 'group',
  name: string,
): Promise<string[]> {
  const rows = await db
    .selectFrom('application_whitelist')
    .select('client_id')
    .where('kind', '=', kind)
    .where('name', '=', name)
    .orderBy('client_id')
    .execute();
  return rows.map((row) => row.client_id);
}

/**
 * Renames a whitelisted state or group in every whitelist that names it; returns how many. The
 * applications whose whitelists it renames are versioned too (their `updated_at`, see `versionedAt`),
 * first, so that an edit that read them before writes nothing instead of putting the old name back.
 */
export async function renameWhitelisted(
  trx: Transaction<Database>,
  kind: 'state' | 'group',
  from: string,
  to: string,
  now: number,
): Promise<number> {
  // Exactly the old name, as whitelists are matched: on Alliance Auth over PostgreSQL another
  // application's `directors` may be another group than this `Directors`.
  const named = (name: string) => (eb: ExpressionBuilder<Database, 'application_whitelist'>) =>
    eb('name', '=', name);
  await trx
    .updateTable('application')
    .set((eb) => ({ updated_at: nextVersion(eb, now) }))
    .where('client_id', 'in', (eb) =>
      eb.selectFrom('application_whitelist').select('client_id').where('kind', '=', kind).where(named(from)),
    )
    .execute();
  // An application that already whitelists the new name (one the directory no longer had) is left
  // with one entry for it, the renamed one: two would name the same state or group twice.
  if (from !== to) {
    await trx
      .deleteFrom('application_whitelist')
      .where('kind', '=', kind)
      .where(named(to))
      .where('client_id', 'in', (eb) =>
        eb
          .selectFrom('application_whitelist')
          .select('client_id')
          .where('kind', '=', kind)
          .where(named(from)),
      )
      .execute();
  }
  const result = await trx
    .updateTable('application_whitelist')
    .set({ name: to })
    .where('kind', '=', kind)
    .where(named(from))
    .executeTakeFirst();
  const renamed = Number(result.numUpdatedRows);
  if (renamed > 0) await raiseChangeEpoch(trx);
  return renamed;
}

/**
 * The `updated_at` a write over the row read at `readAt` stores: later than `readAt` even within the
 * same millisecond, so that a write prepared on the row as it was before finds it changed.
 */
function versionedAt(now: number, readAt: number): number {
  return Math.max(now, readAt + 1);
}

/**
 * The `updated_at` of a write that did not read the row first (a rename, a secret): `now`, or one
 * past the stored value when that is not earlier (written within the same millisecond, or by an
 * instance whose clock runs ahead). The version only ever grows, so an edit prepared before such a
 * write never finds its `readAt` again.
 */
function nextVersion(eb: ExpressionBuilder<Database, 'application'>, now: number) {
  return eb
    .case()
    .when('updated_at', '<', now)
    .then(now)
    .else(eb('updated_at', '+', 1))
    .end();
}

/** Runs one UPDATE of the application table and raises the change epoch with it when a row changed. */
async function updateRaisingEpoch(
  db: Kysely<Database>,
  update: (trx: Transaction<Database>) => Promise<{ numUpdatedRows: bigint }>,
): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    const updated = Number((await update(trx)).numUpdatedRows) === 1;
    if (updated) await raiseChangeEpoch(trx);
    return updated;
  });
}

/**
 * Replaces a confidential client's secret, only while its stored digest is still `readDigest` (the
 * one the rotation read): false, and nothing written, when it is gone or was rotated meanwhile.
 */
export function setSecretDigest(
  db: Kysely<Database>,
  clientId: string,
  digest: string,
  now: number,
  readDigest: string | null,
): Promise<boolean> {
  return updateRaisingEpoch(db, (trx) =>
    trx
      .updateTable('application')
      .set((eb) => ({
        client_secret_sha256: digest,
        client_secret_pbkdf2: null,
        updated_at: nextVersion(eb, now),
      }))
      .where('client_id', '=', clientId)
      .where('client_type', '=', 'confidential')
      .where((eb) =>
        readDigest === null
          ? eb('client_secret_sha256', 'is', null)
          : eb('client_secret_sha256', '=', readDigest),
      )
      .executeTakeFirstOrThrow(),
  );
}

/**
 * Replaces an imported PBKDF2 hash by a digest, only while that hash is still the stored one (a
 * rotation or a concurrent first authentication in between wins).
 */
export function replaceImportedSecret(
  db: Kysely<Database>,
  clientId: string,
  pbkdf2: string,
  digest: string,
  now: number,
): Promise<boolean> {
  return updateRaisingEpoch(db, (trx) =>
    trx
      .updateTable('application')
      .set((eb) => ({
        client_secret_sha256: digest,
        client_secret_pbkdf2: null,
        updated_at: nextVersion(eb, now),
      }))
      .where('client_id', '=', clientId)
      .where('client_secret_pbkdf2', '=', pbkdf2)
      .executeTakeFirstOrThrow(),
  );
}

/**
 * Switches an application on or off inside `trx`, only over the row as it was read (`readAt`, its
 * `updated_at`): false, and nothing written, when it is gone or another write changed it since (see
 * `versionedAt`).
 */
export async function setActiveRow(
  trx: Transaction<Database>,
  clientId: string,
  active: boolean,
  now: number,
  readAt: number,
): Promise<boolean> {
  const result = await trx
    .updateTable('application')
    .set({ active: flag(active), updated_at: versionedAt(now, readAt) })
    .where('client_id', '=', clientId)
    .where('updated_at', '=', readAt)
    .executeTakeFirst();
  const updated = Number(result.numUpdatedRows) === 1;
  if (updated) await raiseChangeEpoch(trx);
  return updated;
}

/** How many applications there are (the backup report). */
export async function countApplications(db: Db): Promise<number> {
  const row = await db
    .selectFrom('application')
    .select((eb) => eb.fn.countAll().as('n'))
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}
