import { type Kysely, sql } from 'kysely';

/**
 * The secondary indexes of `oidc_payload` on columns that many rows leave empty keep only the rows
 * that have a value. Every write paid for an entry in each index, the empty ones included: a
 * client-credentials token has no grant, no user and no session uid, a session no grant, an access
 * or refresh token no uid. Every lookup through these indexes compares the column with a value
 * (`=`, `in`), which a row without one never matches, so SQLite and PostgreSQL use the smaller
 * index for them as before (checked with EXPLAIN QUERY PLAN on every statement the tests run).
 *
 * The index on `client_id` stays whole: SQLite, which keeps no statistics, would then prefer it for
 * "this user's tokens at this application" over the user's index, and read every row of the
 * application (see 0052).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  for (const column of ['grant_id', 'uid'] as const) {
    const name = `oidc_payload_${column}_idx`;
    await db.schema.dropIndex(name).execute();
    await db.schema
      .createIndex(name)
      .on('oidc_payload')
      .column(column)
      .where(sql.ref(column), 'is not', null)
      .execute();
  }
  await db.schema.dropIndex('oidc_payload_user_model_idx').execute();
  await db.schema
    .createIndex('oidc_payload_user_model_idx')
    .on('oidc_payload')
    .columns(['user_id', 'model'])
    .where(sql.ref('user_id'), 'is not', null)
    .execute();
}
