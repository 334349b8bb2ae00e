import type { JWK } from 'jose';
import { type Kysely, sql, type Transaction } from 'kysely';
import type { DatabaseKind } from '../db/connect.ts';
import type { Database, SigningKeyRow } from '../db/schema.ts';
import { rsaShape, SIGNING_ALG } from './crypto.ts';
import type { SigningKeySummary } from './types.ts';

/** SQL for the `signing_key` table; the lifecycle rules live in service.ts. */

type Executor = Kysely<Database> | Transaction<Database>;

export function toSummary(row: SigningKeyRow): SigningKeySummary {
  return {
    kid: row.kid,
    alg: row.alg,
    status: row.status,
    createdAt: Number(row.created_at),
    activatedAt: row.activated_at === null ? null : Number(row.activated_at),
    retiredAt: row.retired_at === null ? null : Number(row.retired_at),
    removedAt: row.removed_at === null ? null : Number(row.removed_at),
    withdrawnAt: row.withdrawn_at === null ? null : Number(row.withdrawn_at),
    publishUntil: row.publish_until === null ? null : Number(row.publish_until),
    ...rsaShape(JSON.parse(row.public_jwk) as JWK),
  };
}

/**
 * A cheap summary of the whole table that changes with every insert, update or delete: every write
 * bumps a row's `revision`, so the sum only grows (rows are never deleted by the service).
 */
export async function keySetFingerprint(db: Executor): Promise<string> {
  const row = await db
    .selectFrom('signing_key')
    .select((eb) => [
      eb.fn.countAll().as('keys'),
      eb.fn.sum<number | string | null>('revision').as('revisions'),
    ])
    .executeTakeFirstOrThrow();
  return `${Number(row.keys)}:${Number(row.revisions ?? 0)}`;
}

/** Keys that JWKS publishes: next, active and retired. */
export function publishedKeyRows(db: Executor): Promise<SigningKeyRow[]> {
  return db.selectFrom('signing_key').selectAll().where('status', '!=', 'removed').execute();
}

export function keyRowsByStatus(db: Executor, status: SigningKeyRow['status']): Promise<SigningKeyRow[]> {
  return db.selectFrom('signing_key').selectAll().where('status', '=', status).execute();
}

export function keyRow(db: Executor, kid: string): Promise<SigningKeyRow | undefined> {
  return db.selectFrom('signing_key').selectAll().where('kid', '=', kid).executeTakeFirst();
}

/** Retired keys whose publication window has passed become removed; their private part is dropped. */
export async function removeExpiredKeys(db: Executor, now: number): Promise<string[]> {
  const removed = await db
    .updateTable('signing_key')
    .set((eb) => ({
      status: 'removed',
      removed_at: now,
      private_jwk_encrypted: null,
      revision: eb('revision', '+', 1),
    }))
    .where('status', '=', 'retired')
    .where('publish_until', '<=', now)
    .returning('kid')
    .execute();
  return removed.map((row) => row.kid).sort();
}

/**
 * Serialises writers of `signing_key` for the rest of the transaction, so that "read the active key,
 * then change it" never races another instance or a CLI run. Plain readers are not blocked.
 * PostgreSQL: a self-conflicting table lock. SQLite: a write statement that matches nothing takes the
 * database's write lock at once (a plain `begin` would only take it at the first real write).
 */
export async function lockSigningKeys(trx: Transaction<Database>, kind: DatabaseKind): Promise<void> {
  if (kind === 'postgres') {
    await sql`lock table signing_key in share row exclusive mode`.execute(trx);
  } else {
    await sql`update signing_key set revision = revision where 1 = 0`.execute(trx);
  }
}

/** Every key, removed ones included, in no particular order. */
export function allKeyRows(db: Executor): Promise<SigningKeyRow[]> {
  return db.selectFrom('signing_key').selectAll().execute();
}

/** Stores a key whose private JWK is already encrypted. */
export async function insertKeyRow(
  trx: Transaction<Database>,
  key: { kid: string; publicJwk: object; privateJwkEncrypted: string },
  status: 'next' | 'active' | 'retired',
  now: number,
  publishUntil: number | null,
): Promise<void> {
  await trx
    .insertInto('signing_key')
    .values({
      kid: key.kid,
      alg: SIGNING_ALG,
      status,
      public_jwk: JSON.stringify(key.publicJwk),
      private_jwk_encrypted: key.privateJwkEncrypted,
      created_at: now,
      activated_at: status === 'active' ? now : null,
      retired_at: status === 'retired' ? now : null,
      removed_at: null,
      withdrawn_at: null,
      publish_until: publishUntil,
    })
    .execute();
}

/** Moves one key from `from` to a new status, bumping its revision (the key set's fingerprint). */
export async function setKeyStatus(
  trx: Transaction<Database>,
  kid: string,
  from: SigningKeyRow['status'],
  changes: {
    status: SigningKeyRow['status'];
    activated_at?: number;
    retired_at?: number;
    publish_until?: number;
  },
): Promise<void> {
  const result = await trx
    .updateTable('signing_key')
    .set((eb) => ({ ...changes, revision: eb('revision', '+', 1) }))
    .where('kid', '=', kid)
    .where('status', '=', from)
    .executeTakeFirst();
  // Unreachable under the writers' lock; guards against a schema or lock mistake.
  if (Number(result.numUpdatedRows) !== 1) throw new Error(`signing key ${kid} changed concurrently`);
}

/**
 * Withdraws one key that JWKS publishes (`from`): removed at once with its private part erased, as
 * if its publication had ended now. A key that never stopped signing (`active`) is retired now too.
 */
export async function withdrawKeyRow(
  trx: Transaction<Database>,
  kid: string,
  from: 'next' | 'active' | 'retired',
  now: number,
): Promise<void> {
  const result = await trx
    .updateTable('signing_key')
    .set((eb) => ({
      status: 'removed',
      retired_at: eb.fn.coalesce('retired_at', eb.val(now)),
      publish_until: now,
      removed_at: now,
      withdrawn_at: now,
      private_jwk_encrypted: null,
      revision: eb('revision', '+', 1),
    }))
    .where('kid', '=', kid)
    .where('status', '=', from)
    .executeTakeFirst();
  // Unreachable under the writers' lock; guards against a schema or lock mistake.
  if (Number(result.numUpdatedRows) !== 1) throw new Error(`signing key ${kid} changed concurrently`);
}

/** How many signing keys there are, removed ones included (the backup report). */
export async function countSigningKeys(db: Executor): Promise<number> {
  const row = await db
    .selectFrom('signing_key')
    .select((eb) => eb.fn.countAll().as('n'))
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}
