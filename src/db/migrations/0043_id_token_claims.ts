import type { Kysely } from 'kysely';

/**
 * `application.id_token_claims`: the application's id_tokens also carry the claims of the granted
 * scopes (email, groups, preferred_username, …), for relying parties that read them only from the
 * id_token (oauth2-proxy). Off for every existing application: the id_token stays minimal, as the
 * Python plugin's was, and the claims come from userinfo.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('application')
    .addColumn('id_token_claims', 'integer', (col) => col.notNull().defaultTo(0))
    .execute();
}
