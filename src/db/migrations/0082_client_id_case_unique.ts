import { type Kysely, sql } from 'kysely';
import type { DatabaseKind } from '../connect.ts';
import { type MigrationContext, tableExists } from './helpers.ts';

/**
 * Client ids are unique regardless of case (`Wiki` beside `wiki` is refused at create): a unique index
 * on the case-folded client_id makes the database refuse the twin that a create racing another one
 * inserts after both read that neither exists. Client ids are ASCII (src/applications/validate.ts),
 * and the index folds ASCII letters alone, as the create's read does (`foldedClientId` in
 * src/applications/store.ts): SQLite's `lower()` folds ASCII only; PostgreSQL's folds by the
 * database's locale (in a Turkish one `I` becomes `ı`), so it is applied under the C collation, which
 * folds A–Z alone whatever the locale.
 *
 * Applications whose client ids differ only in case (stored before creates refused them, or by two
 * creates at once) stop the migration before it changes anything, naming them: the operator chooses
 * which application keeps its client id (docs/upgrading.md).
 */
export async function up(db: Kysely<unknown>, { kind }: MigrationContext): Promise<void> {
  const twins = await clientIdCaseTwins(db, kind);
  if (twins.length > 0) throw new Error(caseTwinsRefusal(twins));
  await db.schema
    .createIndex('application_client_id_folded_uq')
    .on('application')
    .unique()
    .expression(folded(kind))
    .execute();
}

/** What `up` would stop with on the database as it is (client ids that differ only in case), for the dry run. */
export async function precheck(db: Kysely<unknown>, { kind }: MigrationContext): Promise<string | undefined> {
  // A new database: 0004, pending too, creates the table, empty.
  if (!(await tableExists(db, kind, 'application'))) return undefined;
  const twins = await clientIdCaseTwins(db, kind);
  return twins.length > 0 ? caseTwinsRefusal(twins) : undefined;
}

function folded(kind: DatabaseKind) {
  return kind === 'postgres' ? sql`lower(client_id collate "C")` : sql`lower(client_id)`;
}

/** The sets of stored client ids that are one client id in different cases, in code point order. */
async function clientIdCaseTwins(db: Kysely<unknown>, kind: DatabaseKind): Promise<string[][]> {
  const { rows } = await sql<{ folded: string; client_id: string }>`
    select ${folded(kind)} as folded, client_id from application
    where ${folded(kind)} in (select ${folded(kind)} from application group by 1 having count(*) > 1)`.execute(
    db,
  );
  const sets = new Map<string, string[]>();
  for (const row of rows) sets.set(row.folded, [...(sets.get(row.folded) ?? []), row.client_id]);
  return [...sets.values()].map((set) => set.sort(byCodePoint)).sort((a, b) => byCodePoint(a[0]!, b[0]!));
}

function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function caseTwinsRefusal(twins: readonly string[][]): string {
  const named = twins.map((set) => set.map((clientId) => JSON.stringify(clientId)).join(' and ')).join('; ');
  return (
    `cannot make client ids unique regardless of case: applications have client ids that differ only in case (${named}). ` +
    "Keep one application of each set and remove the others' rows (DELETE FROM application_whitelist WHERE " +
    "client_id = '…'; DELETE FROM application WHERE client_id = '…'), then migrate again; give each relying party " +
    'whose application was removed a new one, under a client id of its own (aa-oidc app create). Nothing was ' +
    'changed (docs/upgrading.md)'
  );
}
