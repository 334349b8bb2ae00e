import { type Kysely, type RawBuilder, sql, type Transaction } from 'kysely';
import { precompiled } from './precompiled.ts';
import type { Database } from './schema.ts';

/**
 * The change epoch: a counter in aa-oidc's database that every write to applications and their
 * whitelists raises in the write's own transaction. A process may keep applications in memory as
 * long as the epoch has not moved since it loaded them: requests read the epoch with a statement
 * they make anyway (the token lookup carries it as a scalar subquery) or, when they make none before
 * they need it, on its own. A change committed by any process — another instance on the same
 * PostgreSQL database, a CLI command on the same SQLite file — has raised the epoch, so the next
 * request of every process sees it moved and reloads.
 *
 * Every write to `application` and `application_whitelist` is in `applications/store.ts` and raises
 * it there (the service's create, update, secret rotation and imported-secret replacement,
 * activation, and whitelists following a renamed state or group).
 */

type Db = Kysely<Database> | Transaction<Database>;

/** The epoch as a scalar subquery, to add to a statement a request makes anyway. */
export function changeEpochColumn(): RawBuilder<number | string | null> {
  return sql<number | string | null>`(select value from change_epoch where id = 1)`;
}

const readEpoch = precompiled((db: Db) => db.selectFrom('change_epoch').select('value').where('id', '=', 1));

/** The epoch now (0 before migration 0055 ran its insert: never the case once migrated). */
export async function readChangeEpoch(db: Db): Promise<number> {
  const row = await readEpoch.takeFirst(db);
  return Number(row?.value ?? 0);
}

/** A value read through `changeEpochColumn()`, as a number (PostgreSQL answers bigint as text). */
export function epochValue(value: unknown): number | undefined {
  if (value === null || value === undefined) return undefined;
  const epoch = Number(value);
  return Number.isSafeInteger(epoch) ? epoch : undefined;
}

const raised = new WeakSet<object>();

const raiseEpoch = precompiled((trx: Db) =>
  trx
    .updateTable('change_epoch')
    .set((eb) => ({ value: eb('value', '+', 1) }))
    .where('id', '=', 1),
);

/**
 * Raises the epoch in `trx`, once per transaction: every process drops what it keeps in memory of
 * applications and the directory when the transaction commits (and nothing if it rolls back).
 */
export async function raiseChangeEpoch(trx: Transaction<Database>): Promise<void> {
  if (raised.has(trx)) return;
  raised.add(trx);
  await raiseEpoch.execute(trx);
}
