import { hash } from 'node:crypto';
import type {
  CompiledQuery,
  Expression,
  ExpressionBuilder,
  Insertable,
  InsertObject,
  InsertQueryBuilder,
  InsertResult,
  Kysely,
  OnConflictBuilder,
  QueryCreator,
  Selectable,
  SqlBool,
  Transaction,
} from 'kysely';
import { sql } from 'kysely';
import { changeEpochColumn, epochValue } from '../db/change-epoch.ts';
import { type PurgeBounds, type PurgeRound, purgeRound } from '../db/bounded-purge.ts';
import { type LogPosition, logPosition, logPositionColumn } from '../db/change-log.ts';
import { isPostgres } from '../db/dialect.ts';
import { precompiled } from '../db/precompiled.ts';
import type { Database } from '../db/schema.ts';
import { inTransaction, type PlannedWrite, plannedStatement, type WriteBatch } from '../db/write-batch.ts';
import { wellFormed } from '../util/well-formed.ts';

/**
 * The provider's rows at rest, one at a time: what the storage adapter (src/oidc/adapter.ts) writes,
 * finds, consumes, revokes and deletes, keyed by `storageId`. Part of the token store (store.ts).
 */

/** A connection or a transaction: every query of the token store runs on either. */
export type Db = Kysely<Database> | Transaction<Database>;
export type PayloadEb = ExpressionBuilder<Database, 'oidc_payload'>;

/**
 * The storage id of a provider id (a code or token value, a jti, a session id). `crypto.hash` is the
 * one-shot form of `createHash().update().digest()`: the same digest without a Hash object per call
 * (every find and write of the adapter hashes its id).
 */
export function storageId(id: string): string {
  return hash('sha256', id, 'base64url');
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

/** One code or token as revocation reports it: its storage id, never its value. */
export interface TokenRow {
  model: TokenModel;
  id: string;
  client_id: string | null;
  user_id: string | null;
  grant_id: string | null;
  format: string | null;
}
export const TOKEN_ROW_COLUMNS = ['model', 'id', 'client_id', 'user_id', 'grant_id', 'format'] as const;

/** Rows whose lifetime is not over at `now` (rows without an expiry never end). */
export function unexpired(eb: PayloadEb, now: number) {
  return eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]);
}

/** What one unit of work revoked rows with: its time and reason (`revoked_at`, `revoked_reason`). */
export interface ThisChange {
  at: number;
  reason: string;
}

/**
 * Rows not revoked, or revoked by `thisChange` itself (same time and reason): what a unit of work
 * still counts as live after its own revocations, so that it finds whom they concern.
 */
export function unrevokedOrRevokedBy(eb: PayloadEb, thisChange?: ThisChange) {
  return thisChange
    ? eb.or([
        eb('revoked_at', 'is', null),
        eb.and([eb('revoked_at', '=', thisChange.at), eb('revoked_reason', '=', thisChange.reason)]),
      ])
    : eb('revoked_at', 'is', null);
}

/**
 * Held at `now`: unexpired, not used up (an exchanged code, a rotated refresh token: they can never
 * be used again, and revocation leaves them alone), and unrevoked or revoked by this very unit of
 * work (same time and reason).
 */
export function liveAt(eb: PayloadEb, now: number, revokedByThisChange?: ThisChange) {
  return eb.and([
    unexpired(eb, now),
    eb('consumed_at', 'is', null),
    unrevokedOrRevokedBy(eb, revokedByThisChange),
  ]);
}

/** The columns the adapter writes for every row, in this order (the precompiled upsert's arguments). */
export const ADAPTER_COLUMNS = [
  'model',
  'id',
  'consumed_at',
  'payload',
  'grant_id',
  'user_id',
  'client_id',
  'uid',
  'user_code',
  'expires_at',
  'format',
  'value_sha256',
] as const;

export type AdapterRow = { [K in (typeof ADAPTER_COLUMNS)[number]]: PayloadRow[K] };

/** A row of exactly the adapter's columns: anything else (a row written revoked) is written as built. */
export function isAdapterRow(row: PayloadRow): row is PayloadRow & AdapterRow {
  const keys = Object.keys(row);
  return keys.length === ADAPTER_COLUMNS.length && ADAPTER_COLUMNS.every((column) => column in row);
}

function upsertQuery(db: Db, row: PayloadRow) {
  const { model: _model, id: _id, ...columns } = row;
  return db
    .insertInto('oidc_payload')
    .values(row)
    .onConflict((conflict) => conflict.columns(['model', 'id']).doUpdateSet(columns));
}

const upsertAdapterRow = precompiled(
  (db: Db, ...values: Array<AdapterRow[keyof AdapterRow]>) =>
    upsertQuery(
      db,
      Object.fromEntries(ADAPTER_COLUMNS.map((column, index) => [column, values[index]])) as PayloadRow,
    ),
  ADAPTER_COLUMNS.length,
);

/**
 * Writes (inserts or replaces) one row. Replacing keeps what the row does not name: a session ended
 * in place (`revoked_at`) stays ended when a request that read it before saves it again.
 */
export async function writePayloadRow(db: Db, row: PayloadRow): Promise<void> {
  if (isAdapterRow(row)) await upsertAdapterRow.execute(db, ...ADAPTER_COLUMNS.map((column) => row[column]));
  else await upsertQuery(db, row).execute();
}

/**
 * Rows of the same columns, replaced as `writePayloadRow` replaces one: each names what it sets. A
 * value may be an expression (issued-codes.ts writes a code exchange's tokens in a CTE this way).
 */
export function upsertPayloadRowsQuery(
  db: QueryCreator<Database>,
  rows: ReadonlyArray<InsertObject<Database, 'oidc_payload'>>,
) {
  return db
    .insertInto('oidc_payload')
    .values([...rows])
    .onConflict(replacing(Object.keys(rows[0]!) as Array<keyof PayloadRow>));
}

/**
 * The conflict clause of a row stored under the same key (`model`, `id`): the row's other `columns`
 * replaced by the new row's.
 */
function replacing(columns: ReadonlyArray<keyof PayloadRow>) {
  const replaced = columns.filter((column) => column !== 'model' && column !== 'id');
  return (conflict: OnConflictBuilder<Database, 'oidc_payload'>) =>
    conflict
      .columns(['model', 'id'])
      .doUpdateSet((eb) =>
        Object.fromEntries(replaced.map((column) => [column, eb.ref(`excluded.${column}`)])),
      );
}

/** On a row stored under the same key: its adapter columns replaced by the new row's. */
const replaceAdapterColumns = replacing(ADAPTER_COLUMNS);

/** The two rows a token response stores (an access and a refresh token), precompiled. */
const upsertTwoAdapterRows = precompiled(
  (db: Db, ...values: Array<AdapterRow[keyof AdapterRow]>) =>
    upsertPayloadRowsQuery(
      db,
      [0, 1].map(
        (row) =>
          Object.fromEntries(
            ADAPTER_COLUMNS.map((column, index) => [column, values[row * ADAPTER_COLUMNS.length + index]]),
          ) as PayloadRow,
      ),
    ),
  ADAPTER_COLUMNS.length * 2,
);

function sameColumns(rows: readonly PayloadRow[]): boolean {
  const first = Object.keys(rows[0]!).sort().join(' ');
  return rows.every((row) => Object.keys(row).sort().join(' ') === first);
}

/**
 * Writes several rows (the tokens of one response) in one statement, each as `writePayloadRow`
 * would; rows of different columns go one statement each.
 */
export async function writePayloadRows(db: Db, rows: readonly PayloadRow[]): Promise<void> {
  for (const statement of payloadRowsStatements(db, rows)) await db.executeQuery(statement);
}

/** The statements `writePayloadRows` runs, compiled and not run (a write's plan, write-batch.ts). */
export function payloadRowsStatements(db: Db, rows: readonly PayloadRow[]): CompiledQuery[] {
  if (rows.length === 2 && rows.every(isAdapterRow)) {
    return [
      upsertTwoAdapterRows.compile(
        db,
        ...rows.flatMap((row) => ADAPTER_COLUMNS.map((column) => (row as AdapterRow)[column])),
      ),
    ];
  }
  if (rows.length <= 1 || !sameColumns(rows)) {
    return rows.map((row) =>
      isAdapterRow(row)
        ? upsertAdapterRow.compile(db, ...ADAPTER_COLUMNS.map((column) => row[column]))
        : upsertQuery(db, row).compile(),
    );
  }
  return [upsertPayloadRowsQuery(db, rows).compile()];
}

/** `writePayloadRows` as a plan (SQLite's write worker). */
function payloadRowsPlan(db: Db, rows: readonly PayloadRow[]): PlannedWrite<void> {
  return {
    statements: payloadRowsStatements(db, rows).map((query) => plannedStatement(query)),
    result: () => {},
  };
}

/** PostgreSQL's type of each adapter column (the arrays `unnest` takes apart, the rows `json_to_recordset` reads). */
export const ADAPTER_COLUMN_TYPES: Record<(typeof ADAPTER_COLUMNS)[number], 'text' | 'int8'> = {
  model: 'text',
  id: 'text',
  consumed_at: 'int8',
  payload: 'text',
  grant_id: 'text',
  user_id: 'text',
  client_id: 'text',
  uid: 'text',
  user_code: 'text',
  expires_at: 'int8',
  format: 'text',
  value_sha256: 'text',
};

/**
 * PostgreSQL: any number of adapter rows replaced as `writePayloadRow` replaces one, in a statement
 * whose text does not depend on how many there are: it is prepared once per connection like the
 * single-row upsert, where a `values` list would make a text, and a parse, for every count. The rows
 * are one JSON parameter, an array of the rows as they are (read by `json_to_recordset`, which names
 * each column's type), and their epochs a JSON array beside it, row by row (`rows from`): one array
 * parameter per column made pg quote and escape every value into an array literal in JavaScript (the
 * payloads above all), where `JSON.stringify` escapes them all natively (the audit store's batch does
 * the same, src/audit/store.ts). Each row may name the change epoch it is written at (`at_epoch`,
 * null: whatever it is): such a row is written only while the epoch is still that one. Each row
 * written returns the epoch the statement saw, which tells which rows were.
 */
const upsertAdapterRowsJson = precompiled((db: Db, rows: string, epochs: string) =>
  db
    .insertInto('oidc_payload')
    .columns([...ADAPTER_COLUMNS])
    .expression(
      // The columns by name, not `*`: a statement returning `*` runs unnamed (named-statements.ts).
      sql`select ${sql.join(ADAPTER_COLUMNS.map((column) => sql.ref(`r.${column}`)))}
        from rows from (
          json_to_recordset(${rows}::json) as (${sql.join(
            ADAPTER_COLUMNS.map((column) => sql`${sql.ref(column)} ${sql.raw(ADAPTER_COLUMN_TYPES[column])}`),
          )}),
          json_array_elements_text(${epochs}::json)
        ) as r(${sql.join([...ADAPTER_COLUMNS.map((column) => sql.ref(column)), sql.ref('at_epoch')])})
        where r.at_epoch is null or r.at_epoch::int8 = ${changeEpochColumn()}`,
    )
    .onConflict(replaceAdapterColumns)
    // The epoch as the statement saw it (one snapshot for the whole statement), once per row written.
    .returning(changeEpochColumn().as('seen_epoch')),
);

/**
 * A lone surrogate, escaped: `JSON.stringify` writes one as `\ud800`, which PostgreSQL's JSON parser
 * refuses. A match may also be an escaped backslash followed by `ud800` (a payload's own escape): the
 * rows are then made well-formed anyway, which changes nothing in them.
 */
const ESCAPED_LONE_SURROGATE = /\\ud[89a-f]/;

/**
 * The rows as `json_to_recordset` reads them. A text with a lone surrogate is stored with U+FFFD in
 * its place, as the UTF-8 encoding of a text parameter (the array literals before) stored it.
 */
export function rowsAsJson(rows: readonly AdapterRow[]): string {
  const json = JSON.stringify(rows);
  if (!ESCAPED_LONE_SURROGATE.test(json)) return json;
  return JSON.stringify(rows, (_key, value: unknown) =>
    typeof value === 'string' ? wellFormed(value) : value,
  );
}

/**
 * One request's rows, and the change epoch they are written at: `null`, whatever it is; a number,
 * only while the epoch is still that one (the `save_bearer` stage decided with the applications of
 * that epoch, src/oidc/save-bearer.ts).
 */
export interface RowsAtEpoch {
  rows: readonly AdapterRow[];
  epoch: number | null;
}

/**
 * The rows of several requests in one statement (PostgreSQL), each item true when its rows were
 * written. A row saved twice in the turn (a session two requests saved) is written once, as the
 * later save left it, which is what writing them one after the other would leave; one statement may
 * not replace a row twice. Rows go in key order, so that two such statements that touch the same rows
 * take their locks in the same order.
 */
async function writeAdapterRowsTogether(db: Db, items: readonly RowsAtEpoch[]): Promise<boolean[]> {
  // Every row given, in the items' order (its key, its epoch), and the last save of each key.
  const givenKeys: string[] = [];
  const givenEpochs: Array<number | null> = [];
  const givenRows: AdapterRow[] = [];
  const lastSave = new Map<string, number>();
  for (let item = 0; item < items.length; item += 1) {
    const { rows, epoch } = items[item]!;
    for (let index = 0; index < rows.length; index += 1) {
      const row = rows[index]!;
      const key = `${row.model} ${row.id}`;
      lastSave.set(key, givenKeys.length);
      givenKeys.push(key);
      givenEpochs.push(epoch);
      givenRows.push(row);
    }
  }
  // Each key once (the keys given, when no row was saved twice), sorted.
  const keys = (lastSave.size === givenKeys.length ? givenKeys.slice() : [...lastSave.keys()]).sort();
  const rows: AdapterRow[] = [];
  const epochs: Array<number | null> = [];
  for (const key of keys) {
    const save = lastSave.get(key)!;
    rows.push(givenRows[save]!);
    epochs.push(givenEpochs[save] ?? null);
  }
  const answer = await upsertAdapterRowsJson.takeFirst(db, rowsAsJson(rows), JSON.stringify(epochs));
  // No row written: every row named an epoch, and the epoch was none of them.
  const seen = epochValue(answer?.seen_epoch);
  const results: boolean[] = [];
  let given = 0;
  for (const { rows: itemRows } of items) {
    let written = true;
    for (let index = 0; index < itemRows.length; index += 1) {
      const epoch = givenEpochs[lastSave.get(givenKeys[given + index]!)!] ?? null;
      if (epoch !== null && (seen === undefined || epoch !== seen)) written = false;
    }
    given += itemRows.length;
    results.push(written);
  }
  return results;
}

/**
 * One row written as `writePayloadRow` writes it, only while the change epoch is `epoch` (SQLite: in
 * the write's transaction, where no other writer can move it before the commit).
 */
const upsertAdapterRowAtEpoch = precompiled(
  (db: Db, epoch: number, ...values: Array<AdapterRow[keyof AdapterRow]>) =>
    db
      .insertInto('oidc_payload')
      .columns([...ADAPTER_COLUMNS])
      .expression(sql`select ${sql.join(values)} where ${changeEpochColumn()} = ${epoch}`)
      .onConflict(replaceAdapterColumns),
  ADAPTER_COLUMNS.length + 1,
);

/** One request's rows written alone (as `writePayloadRows`), true when they were (see `RowsAtEpoch`). */
async function writeRowsAtEpoch(db: Db, { rows, epoch }: RowsAtEpoch): Promise<boolean> {
  if (epoch === null) {
    await writePayloadRows(db, rows);
    return true;
  }
  if (isPostgres(db)) return (await writeAdapterRowsTogether(db, [{ rows, epoch }]))[0]!;
  let written = true;
  for (const row of rows) {
    const result = await upsertAdapterRowAtEpoch.execute(
      db,
      epoch,
      ...ADAPTER_COLUMNS.map((column) => row[column]),
    );
    written &&= Number(result.numAffectedRows ?? 0) > 0;
  }
  return written;
}

/** `writeRowsAtEpoch` on SQLite as a plan: the same statements; written when each row was. */
export function rowsAtEpochPlan(db: Db, { rows, epoch }: RowsAtEpoch): PlannedWrite<boolean> {
  if (epoch === null) return { ...payloadRowsPlan(db, rows), result: () => true };
  return {
    statements: rows.map((row) =>
      plannedStatement(
        upsertAdapterRowAtEpoch.compile(db, epoch, ...ADAPTER_COLUMNS.map((column) => row[column])),
      ),
    ),
    result: (changes) => changes.every((changed) => changed > 0),
  };
}

interface RowWrites {
  any: (rows: readonly PayloadRow[]) => Promise<void>;
  atEpoch: (item: RowsAtEpoch) => Promise<boolean>;
}
const rowWritesOf = new WeakMap<WriteBatch, RowWrites>();

function rowWrites(writes: WriteBatch): RowWrites {
  let found = rowWritesOf.get(writes);
  if (!found) {
    const merged = writes.merging<RowsAtEpoch, boolean>({
      together: writeAdapterRowsTogether,
      alone: writeRowsAtEpoch,
      plan: rowsAtEpochPlan,
    });
    found = {
      any: async (rows) => {
        if (rows.length > 0 && rows.every(isAdapterRow)) await merged({ rows, epoch: null });
        else
          await writes.run(
            (db) => writePayloadRows(db, rows),
            (db) => payloadRowsPlan(db, rows),
          );
      },
      atEpoch: merged,
    };
    rowWritesOf.set(writes, found);
  }
  return found;
}

/**
 * Writes one request's rows (as `writePayloadRows`) through `writes`, merged with the rows other
 * requests write in the same turn (`WriteBatch.merging`: on PostgreSQL one statement for them all).
 * Rows that name other columns than the adapter's (written revoked) go on their own. One writer per
 * batch, so that the adapter's saves and the token responses' rows merge with each other.
 */
export function payloadRowWrites(writes: WriteBatch): (rows: readonly PayloadRow[]) => Promise<void> {
  return rowWrites(writes).any;
}

/**
 * Writes one request's rows as `payloadRowWrites` does, merged with them, only while the change epoch
 * is still `epoch` (the rows' check and write are one statement, and on SQLite in the transaction
 * that commits them): false, and nothing written, once it has moved.
 */
export function payloadRowWritesAtEpoch(
  writes: WriteBatch,
): (rows: readonly AdapterRow[], epoch: number) => Promise<boolean> {
  const { atEpoch } = rowWrites(writes);
  return (rows, epoch) => atEpoch({ rows, epoch });
}

const findById = precompiled((db: Db, model: string, id: string) =>
  db.selectFrom('oidc_payload').select(STORED_COLUMNS).where('model', '=', model).where('id', '=', id),
);

export function findPayload(db: Db, model: string, id: string): Promise<StoredPayload | undefined> {
  return findById.takeFirst(db, model, id);
}

/** The models a presented bearer value may belong to: introspection and revocation look in all three. */
const BEARER_MODELS = ['AccessToken', 'ClientCredentials', 'RefreshToken'];

const findBearerRows = precompiled((db: Db, id: string) =>
  db
    .selectFrom('oidc_payload')
    .select(['model', ...STORED_COLUMNS])
    .select(changeEpochColumn().as('change_epoch'))
    .select(logPositionColumn(db).as('log_position'))
    .where('model', 'in', BEARER_MODELS)
    .where('id', '=', id),
);

/** Rows found by one statement, with the change log's position as that statement saw it. */
export interface FoundPayloads<Row> {
  rows: Row[];
  /** Undefined when no row matched. */
  position: LogPosition | undefined;
}

/**
 * The access-token, client-credentials and refresh-token rows stored under one id, in one query,
 * and the change epoch and the change log's position as that statement saw them
 * (src/db/change-epoch.ts, src/db/change-log.ts; undefined when no row matched): the request then
 * knows whether what the process keeps in memory is still current, and whether the rows may be kept.
 */
export async function findBearerPayloads(
  db: Db,
  id: string,
): Promise<FoundPayloads<StoredPayload & { model: string }> & { changeEpoch: number | undefined }> {
  const found = await findBearerRows.rows(db, id);
  return {
    rows: found.map(({ change_epoch: _epoch, log_position: _position, ...row }) => row),
    changeEpoch: epochValue(found[0]?.change_epoch),
    position: logPosition(found[0]?.log_position),
  };
}

const findSessionAndGrantRows = precompiled((db: Db, uid: string, grantKey: string) =>
  db
    .selectFrom('oidc_payload')
    .select(['model', ...STORED_COLUMNS])
    .select(logPositionColumn(db).as('log_position'))
    .where('model', '=', 'Session')
    .where('uid', '=', uid)
    .unionAll(
      db
        .selectFrom('oidc_payload')
        .select(['model', ...STORED_COLUMNS])
        .select(logPositionColumn(db).as('log_position'))
        .where('model', '=', 'Grant')
        .where('id', '=', grantKey),
    ),
);

/**
 * A session by its uid and a grant by its storage id, in one query: what the token endpoint reads
 * right after the code or refresh token it redeems. With the change log's position (src/db/change-log.ts).
 */
export async function findSessionAndGrant(
  db: Db,
  uid: string,
  grantKey: string,
): Promise<{
  session: StoredPayload | undefined;
  grant: StoredPayload | undefined;
  position: LogPosition | undefined;
}> {
  const rows = (await findSessionAndGrantRows.rows(db, uid, grantKey)).map(
    ({ log_position: position, ...row }) => ({ row, position }),
  );
  return {
    session: rows.find(({ row }) => row.model === 'Session')?.row,
    grant: rows.find(({ row }) => row.model === 'Grant')?.row,
    position: logPosition(rows[0]?.position),
  };
}

/** A row by `column`, with the change log's position: one query per column (its shape is fixed). */
const findKeptBy = (column: 'id' | 'uid') =>
  precompiled((db: Db, model: string, value: string) =>
    db
      .selectFrom('oidc_payload')
      .select(STORED_COLUMNS)
      .select(logPositionColumn(db).as('log_position'))
      .where('model', '=', model)
      .where(column, '=', value),
  );
const findKept = { id: findKeptBy('id'), uid: findKeptBy('uid') };

/**
 * A row by its storage id (`column` 'id') or a session by its uid, with the change log's position
 * (src/db/change-log.ts): a row the process may keep in memory.
 */
export async function findPayloadWithPosition(
  db: Db,
  model: string,
  column: 'id' | 'uid',
  value: string,
): Promise<FoundPayloads<StoredPayload>> {
  const found = await findKept[column].takeFirst(db, model, value);
  if (!found) return { rows: [], position: undefined };
  const { log_position: position, ...row } = found;
  return { rows: [row], position: logPosition(position) };
}

const findByUid = precompiled((db: Db, model: string, uid: string) =>
  db.selectFrom('oidc_payload').select(STORED_COLUMNS).where('model', '=', model).where('uid', '=', uid),
);

/** A session by its uid, or a device-flow row by its user code. */
export function findPayloadBy(
  db: Db,
  model: string,
  column: 'uid' | 'user_code',
  value: string,
): Promise<StoredPayload | undefined> {
  if (column === 'uid') return findByUid.takeFirst(db, model, value);
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
function consumeLiveQuery(db: QueryCreator<Database>, model: string, id: string, now: number) {
  return db
    .updateTable('oidc_payload')
    .set({ consumed_at: now })
    .where('model', '=', model)
    .where('id', '=', id)
    .where('consumed_at', 'is', null)
    .where('revoked_at', 'is', null)
    .returning(['client_id', 'user_id', 'grant_id']);
}

const consumeLive = precompiled((trx: Db, model: string, id: string, now: number) =>
  consumeLiveQuery(trx, model, id, now),
);

export function consumePayload(
  trx: Db,
  model: string,
  id: string,
  now: number,
): Promise<{ client_id: string | null; user_id: string | null; grant_id: string | null } | undefined> {
  return consumeLive.takeFirst(trx, model, id, now);
}

/** A consume one request asks for: a code's or a refresh token's row, at `at`. */
export interface Consume {
  model: string;
  id: string;
  at: number;
}

/**
 * PostgreSQL: the consumes of several requests in one statement whose text does not depend on how
 * many there are. Each row is updated under the same conditions as `consumeLiveQuery`'s, so a row
 * another statement consumed first (on another connection: the update waits for its lock, then
 * checks again) is not returned.
 */
const consumeLiveArrays = precompiled(
  (db: Db, models: readonly string[], ids: readonly string[], ats: readonly number[]) => ({
    compile: () =>
      sql<{ model: string; id: string }>`update "oidc_payload" as p set "consumed_at" = c.at
        from unnest(${models}::text[], ${ids}::text[], ${ats}::int8[]) as c(model, id, at)
        where p."model" = c.model and p."id" = c.id and p."consumed_at" is null and p."revoked_at" is null
        returning p."model", p."id"`.compile(db),
  }),
);

/**
 * The consumes of several requests in one statement (PostgreSQL). A row named twice in the turn (the
 * same refresh token presented by two requests) is consumed by the first that named it, as running
 * them one after the other would; the later one finds it consumed. Rows go in key order, so that two
 * such statements that touch the same rows take their locks in the same order.
 */
async function consumeTogether(db: Db, items: readonly Consume[]): Promise<boolean[]> {
  const first = new Map<string, number>();
  items.forEach((item, index) => {
    const key = `${item.model} ${item.id}`;
    if (!first.has(key)) first.set(key, index);
  });
  const keys = [...first.keys()].sort();
  const unique = keys.map((key) => items[first.get(key)!]!);
  const consumed = new Set(
    (
      await consumeLiveArrays.rows(
        db,
        unique.map((item) => item.model),
        unique.map((item) => item.id),
        unique.map((item) => item.at),
      )
    ).map((row) => `${row.model} ${row.id}`),
  );
  return items.map((item, index) => {
    const key = `${item.model} ${item.id}`;
    return first.get(key) === index && consumed.has(key);
  });
}

const consumesOf = new WeakMap<WriteBatch, (consume: Consume) => Promise<boolean>>();

/**
 * Marks a live code or refresh token consumed through `writes` (false when it was consumed or revoked
 * already), merged with the consumes other requests make in the same turn (`WriteBatch.merging`: on
 * PostgreSQL one statement for them all, on SQLite a write of the batch's transaction). Atomic as
 * `consumePayload`: of N concurrent redemptions of one row exactly one gets true.
 */
export function payloadConsumes(writes: WriteBatch): (consume: Consume) => Promise<boolean> {
  let consume = consumesOf.get(writes);
  if (!consume) {
    consume = writes.merging<Consume, boolean>({
      together: consumeTogether,
      alone: async (db, { model, id, at }) => (await consumePayload(db, model, id, at)) !== undefined,
      plan: (db, { model, id, at }) => ({
        statements: [plannedStatement(consumeLive.compile(db, model, id, at))],
        result: ([consumed]) => consumed! > 0,
      }),
    });
    consumesOf.set(writes, consume);
  }
  return consume;
}

/**
 * A code's or a refresh token's redemption: the presented row (its storage id) consumed at `at` and
 * the rows of the response written, all or nothing.
 */
export interface Redemption {
  id: string;
  at: number;
  rows: readonly PayloadRow[];
}

/** The presented row as its consume left it (the columns `consumeLiveQuery` returns). */
export interface ConsumedTable {
  consumed: Pick<Selectable<Database['oidc_payload']>, 'client_id' | 'user_id' | 'grant_id'>;
}

/**
 * A redemption's last statement (a code's audit row, issued-codes.ts), run only once the consume
 * changed the presented row, which it reads from `consumed` (on PostgreSQL the consume's own CTE).
 * Its arguments are values only, as a precompiled query's.
 */
export type AfterConsume<Args extends unknown[], Table extends keyof Database> = (
  db: QueryCreator<Database & ConsumedTable>,
  ...args: Args
) => InsertQueryBuilder<Database & ConsumedTable, Table, InsertResult>;

/**
 * The write of a redemption of `model`, its statements compiled once: the presented row consumed (as
 * by `consumeLiveQuery`), then the rows and `after.statement` (given the call's `args`) only when that
 * changed it, all or nothing; true when it did. False, and nothing written, when the row was consumed or
 * revoked meanwhile (of N concurrent redemptions of one row exactly one gets true). PostgreSQL: one
 * statement, the consume and `after` in CTEs, and without `after` one statement for the redemptions of
 * a turn (`redeemTogether`); otherwise (or rows that are not the adapter's) one
 * transaction, or on SQLite's write worker a plan whose statements after the consume run only once it
 * changed the row. A write that fails leaves the row unconsumed: the client's retry is no replay.
 */
export function redemptionWrite<Args extends unknown[] = [], Table extends keyof Database = never>(
  model: 'AuthorizationCode' | 'RefreshToken',
  /** `arity`: how many of the call's arguments `statement` takes, stated (and type-checked against
   * `Args`) rather than read off the function, whose `length` a default or rest parameter shortens. */
  after?: { statement: AfterConsume<Args, Table>; arity: Args['length'] },
): (writes: WriteBatch, redemption: Redemption, ...args: Args) => Promise<boolean> {
  const afterArity = after?.arity ?? 0;
  // A row written counts as changed, so the statement changed rows exactly when it consumed.
  const atOnce = precompiled((db: Db, id: string, at: number, rows: string, ...args: Args) => {
    const consuming = db.with('consumed', (cte) => consumeLiveQuery(cte, model, id, at));
    const creator: QueryCreator<Database & ConsumedTable> = after
      ? consuming.with('after', (cte) => after.statement(cte, ...args))
      : consuming;
    return creator
      .insertInto('oidc_payload')
      .columns([...ADAPTER_COLUMNS])
      .expression(
        sql`select ${sql.join(ADAPTER_COLUMNS.map((column) => sql.ref(`r.${column}`)))}
          from json_to_recordset(${rows}::json) as r(${sql.join(
            ADAPTER_COLUMNS.map((column) => sql`${sql.ref(column)} ${sql.raw(ADAPTER_COLUMN_TYPES[column])}`),
          )})
          where exists (select 1 from "consumed")`,
      )
      .onConflict(replaceAdapterColumns);
  }, 3 + afterArity);
  const afterAlone =
    after &&
    precompiled(
      (db: Db, id: string, ...args: Args) =>
        after.statement(
          db.with('consumed', (cte) =>
            cte
              .selectFrom('oidc_payload')
              .select(['client_id', 'user_id', 'grant_id'])
              .where('model', '=', model)
              .where('id', '=', id),
          ),
          ...args,
        ),
      1 + afterArity,
    );

  const alone = async (db: Db, { id, at, rows }: Redemption, args: Args): Promise<boolean> => {
    if (isPostgres(db) && rows.length > 0 && rows.every(isAdapterRow)) {
      const result = await atOnce.execute(db, id, at, rowsAsJson(rows), ...args);
      return Number(result.numAffectedRows ?? 0) > 0;
    }
    return inTransaction(db, async (trx) => {
      if ((await consumePayload(trx, model, id, at)) === undefined) return false;
      await writePayloadRows(trx, rows);
      if (afterAlone) await afterAlone.execute(trx, id, ...args);
      return true;
    });
  };
  const plan = (db: Db, { id, at, rows }: Redemption, args: Args): PlannedWrite<boolean> => {
    const statements = [
      plannedStatement(consumeLive.compile(db, model, id, at)),
      ...payloadRowsStatements(db, rows).map((query) => plannedStatement(query, true)),
    ];
    if (afterAlone) statements.push(plannedStatement(afterAlone.compile(db, id, ...args), true));
    return { statements, result: ([consumed]) => consumed! > 0 };
  };
  if (after) {
    return (writes, redemption, ...args) =>
      writes.run(
        (db) => alone(db, redemption, args),
        (db) => plan(db, redemption, args),
      );
  }
  // Without `after` (a refresh token's rotation): the redemptions of one turn merge, on PostgreSQL
  // into one statement (`redeemTogether`).
  const mergedOf = new WeakMap<WriteBatch, (redemption: Redemption) => Promise<boolean>>();
  const none = [] as unknown as Args;
  return (writes, redemption, ..._args) => {
    let merged = mergedOf.get(writes);
    if (!merged) {
      merged = writes.merging<Redemption, boolean>({
        together: (db, items) => redeemTogether(db, model, items),
        alone: (db, item) => alone(db, item, none),
        plan: (db, item) => plan(db, item, none),
      });
      mergedOf.set(writes, merged);
    }
    return merged(redemption);
  };
}

/**
 * PostgreSQL: the redemptions of several requests in one statement whose text does not depend on how
 * many there are. Each presented row is consumed under the conditions of `consumeLiveQuery` (its
 * model from an array beside its id, as `consumeLiveArrays`), and each request's rows are written only
 * when its own row was consumed (each row names the id it redeems). Every request costs the server a
 * commit of its own when it runs alone: a commit's WAL flush costs the backend as much CPU as the
 * rows of two or three rotations (docs/performance-history.md).
 */
const redeemArrays = precompiled(
  (db: Db, models: readonly string[], ids: readonly string[], ats: readonly number[], rows: string) => ({
    compile: () =>
      sql<{ id: string }>`with "consumed" as (
          update "oidc_payload" as p set "consumed_at" = c.at
          from unnest(${models}::text[], ${ids}::text[], ${ats}::int8[]) as c(model, id, at)
          where p."model" = c.model and p."id" = c.id and p."consumed_at" is null and p."revoked_at" is null
          returning p."id"),
        "written" as (
          insert into "oidc_payload" (${sql.join(ADAPTER_COLUMNS.map((column) => sql.ref(column)))})
          select ${sql.join(ADAPTER_COLUMNS.map((column) => sql.ref(`r.${column}`)))}
          from json_to_recordset(${rows}::json) as r(${sql.join(
            ADAPTER_COLUMNS.map((column) => sql`${sql.ref(column)} ${sql.raw(ADAPTER_COLUMN_TYPES[column])}`),
          )}, "redeems" text)
          where r."redeems" in (select "id" from "consumed")
          on conflict ("model", "id") do update set ${sql.join(
            ADAPTER_COLUMNS.filter((column) => column !== 'model' && column !== 'id').map(
              (column) => sql`${sql.ref(column)} = ${sql.ref(`excluded.${column}`)}`,
            ),
          )})
        select "id" from "consumed"`.compile(db),
  }),
);

/**
 * The redemptions of one turn of `model`, each true when it consumed its row. A row presented twice
 * in the turn is consumed by the first request that presented it, as one after the other would; the
 * later one finds it consumed, and its rows are not written. Rows go in id order, so that two such
 * statements that touch the same rows take their locks in the same order. A turn with a redemption
 * whose rows are not the adapter's (or that has none) is refused before anything is written: the write
 * batch then writes each redemption alone.
 */
async function redeemTogether(db: Db, model: string, items: readonly Redemption[]): Promise<boolean[]> {
  if (items.some((item) => item.rows.length === 0 || !item.rows.every(isAdapterRow))) {
    throw new Error('a redemption whose rows are not the adapter’s is written alone');
  }
  const first = new Map<string, number>();
  items.forEach((item, index) => {
    if (!first.has(item.id)) first.set(item.id, index);
  });
  const ids = [...first.keys()].sort();
  const merged = ids.map((id) => items[first.get(id)!]!);
  const rows = merged.flatMap((item) =>
    (item.rows as readonly AdapterRow[]).map((row) => ({ ...row, redeems: item.id })),
  );
  const consumed = new Set(
    (
      await redeemArrays.rows(
        db,
        merged.map(() => model),
        ids,
        merged.map((item) => item.at),
        rowsAsJson(rows),
      )
    ).map((row) => row.id),
  );
  return items.map((item, index) => first.get(item.id) === index && consumed.has(item.id));
}

/** A refresh token's rotation: the presented token consumed, the new one and the access token written. */
export const rotateRefreshToken = redemptionWrite('RefreshToken');

/**
 * The condition `selected` of a multi-row UPDATE of `oidc_payload`, which on PostgreSQL also locks the
 * rows it chooses in key order (model, then id, in code-unit order as JavaScript sorts them, whatever
 * the database's collation) before the UPDATE changes any. The merged consumes and redemptions
 * (`consumeTogether`, `redeemTogether`, issued-codes.ts's `consumeCodeArrays`) lock their rows in that
 * order; a plain multi-row UPDATE locks in scan order (the index's, or the table's), and two
 * statements that lock the same rows in different orders can deadlock: PostgreSQL aborts one after
 * `deadlock_timeout`, and the write batch then retries each item of its turn alone. The UPDATE keeps
 * `selected` too: a row another statement changed before the lock is read again as it now is, and
 * must still match. SQLite has one writer and takes no row locks: `selected` alone.
 */
export function lockedInKeyOrder(
  db: Db,
  selected: (eb: PayloadEb) => Expression<SqlBool>,
): (eb: PayloadEb) => Expression<SqlBool> {
  if (!isPostgres(db)) return selected;
  return (eb) =>
    eb.and([
      selected(eb),
      eb(
        eb.refTuple('model', 'id'),
        'in',
        eb
          .selectFrom('oidc_payload')
          .select(['model', 'id'])
          .where(selected)
          .orderBy(sql`"model" collate "C"`)
          .orderBy(sql`"id" collate "C"`)
          .forUpdate()
          .$asTuple('model', 'id'),
      ),
    ]);
}

/**
 * Revokes one row in place (kept for listings until it expires); the row when this statement revoked
 * it, none when it was revoked already (of concurrent revocations of one row, exactly one returns it).
 * Only for a model of `TOKEN_MODELS`.
 */
export function revokePayload(
  db: Db,
  model: string,
  id: string,
  now: number,
  reason: string,
): Promise<TokenRow[]> {
  return revokeUnrevoked(db, model, 'id', id, now, reason);
}

/**
 * Revokes in place every row of `model` in a grant; the rows this statement revoked (of concurrent
 * revocations of one grant, each row is returned by exactly one). Only for a model of `TOKEN_MODELS`.
 */
export function revokePayloadsOfGrant(
  db: Db,
  model: string,
  grantId: string,
  now: number,
  reason: string,
): Promise<TokenRow[]> {
  return revokeUnrevoked(db, model, 'grant_id', grantId, now, reason);
}

/**
 * Revokes the unrevoked rows of `model` whose `column` is `value`; the rows this statement revoked.
 * A grant's rows are locked in key order on PostgreSQL (`lockedInKeyOrder`); one row needs no order.
 */
async function revokeUnrevoked(
  db: Db,
  model: string,
  column: 'id' | 'grant_id',
  value: string,
  now: number,
  reason: string,
): Promise<TokenRow[]> {
  const condition = (eb: PayloadEb) =>
    eb.and([eb('model', '=', model), eb(column, '=', value), eb('revoked_at', 'is', null)]);
  const rows = await db
    .updateTable('oidc_payload')
    .set({ revoked_at: now, revoked_reason: reason })
    .where(column === 'grant_id' ? lockedInKeyOrder(db, condition) : condition)
    .returning(TOKEN_ROW_COLUMNS)
    .execute();
  return rows as TokenRow[];
}

export async function deletePayload(db: Db, model: string, id: string): Promise<void> {
  await db.deleteFrom('oidc_payload').where('model', '=', model).where('id', '=', id).execute();
}

/**
 * Deletes a session's row; true when this statement ended it: the row was there and not ended
 * already (a revoked session, `endUserSessions`). Of several requests ending one session at once
 * (a sign-out confirmed twice, each post on another instance), only the one whose delete found it
 * live is told so: the row lock orders them, and the later delete finds nothing.
 */
export async function deleteLiveSession(db: Db, id: string): Promise<boolean> {
  const row = await db
    .deleteFrom('oidc_payload')
    .where('model', '=', 'Session')
    .where('id', '=', id)
    .returning('revoked_at')
    .executeTakeFirst();
  return row !== undefined && row.revoked_at === null;
}

export async function deletePayloadsOfGrant(db: Db, model: string, grantId: string): Promise<void> {
  await db.deleteFrom('oidc_payload').where('model', '=', model).where('grant_id', '=', grantId).execute();
}

/**
 * One round of each purge of expired rows (src/oidc/expired-rows-purge.ts: codes, tokens and
 * sessions, the change log, login failures, issued codes): two hundred rows a statement, ten
 * statements, 10 ms apart. A statement of two hundred payload rows (their indexes, the change log's
 * trigger) holds SQLite, on the event loop, for a few milliseconds, and the pause lets the requests
 * that waited meanwhile run. A backlog (millions of expired tokens after an outage, an instance that
 * never purged) goes two thousand rows a round, the next round a second later: no purge holds the
 * writer for long, and a stop waits for one statement at most.
 */
export const EXPIRED_ROWS_PURGE: Readonly<PurgeBounds> = { rows: 200, statements: 10, pauseMs: 10 };

/**
 * Deletes rows whose lifetime is over, the earliest expired first, one round (`bounds`); `more` when
 * some may remain. By the expiry index (`oidc_payload_expires_at_idx`): ordered by it, PostgreSQL
 * walks it even when nearly every row has expired, rather than read the table from its start, past
 * the rows earlier statements deleted, at every statement.
 */
export function purgeExpiredPayloads(
  db: Db,
  now = Date.now(),
  signal?: AbortSignal,
  bounds: PurgeBounds = EXPIRED_ROWS_PURGE,
): Promise<PurgeRound> {
  const deleteBatch = async (rows: number) => {
    const result = await db
      .deleteFrom('oidc_payload')
      .where(({ eb, refTuple, selectFrom }) =>
        eb(
          refTuple('model', 'id'),
          'in',
          selectFrom('oidc_payload')
            .select(['model', 'id'])
            .where('expires_at', 'is not', null)
            .where('expires_at', '<=', now)
            .orderBy('expires_at')
            .limit(rows)
            .$asTuple('model', 'id'),
        ),
      )
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  };
  return purgeRound(deleteBatch, bounds, signal);
}

/**
 * Deletes the change log's rows (src/db/change-log.ts) that were already there at the previous prune,
 * the oldest first, one round (`bounds`); `more` when some may remain. A prune begins by raising the
 * horizon, so that a reader whose position is behind it (idle since before the previous prune) knows
 * it may have missed keys and drops everything it keeps; a round that `continues` a prune whose
 * previous round left rows behind keeps the horizon where it is: raised at every round of a backlog
 * (a second apart), it would make every reader a second behind drop what it keeps.
 */
export async function pruneChangeLog(
  db: Kysely<Database>,
  options: { signal?: AbortSignal; bounds?: PurgeBounds; continues?: boolean } = {},
): Promise<PurgeRound> {
  const postgres = isPostgres(db);
  if (options.continues !== true) {
    await db.transaction().execute(async (trx) => {
      await sql`update change_epoch set value = (select value from change_epoch where id = 3) where id = 2`.execute(
        trx,
      );
      await (
        postgres
          ? sql`update change_epoch set value = pg_snapshot_xmin(pg_current_snapshot())::text::bigint where id = 3`
          : sql`update change_epoch set value = coalesce((select seq from sqlite_sequence where name = 'change_log'), 0) where id = 3`
      ).execute(trx);
    });
  }
  // By the transaction id's index on PostgreSQL (`change_log_xid_idx`), by `seq` (the row id) on SQLite.
  const deleteBatch = async (rows: number) => {
    const result = await (
      postgres
        ? sql`delete from change_log where seq in (select seq from change_log
          where xid < (select value from change_epoch where id = 2)::text::xid8 order by xid limit ${rows})`
        : sql`delete from change_log where seq in (select seq from change_log
          where seq <= (select value from change_epoch where id = 2) order by seq limit ${rows})`
    ).execute(db);
    return Number(result.numAffectedRows ?? 0);
  };
  return purgeRound(deleteBatch, options.bounds ?? EXPIRED_ROWS_PURGE, options.signal);
}
