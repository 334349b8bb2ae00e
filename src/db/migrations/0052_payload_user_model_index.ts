import type { Kysely } from 'kysely';

/**
 * A user's rows of one model (their sessions, grants, tokens) are found by `(user_id, model)`.
 * With `user_id` alone indexed beside `client_id`, SQLite (which keeps no statistics) answered
 * "this user's grants at this application" through the `client_id` index, reading every row of the
 * application: a state change that takes an application from thousands of users read the
 * application's rows once per user. The pair serves every lookup by user, so the index on
 * `user_id` alone goes.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createIndex('oidc_payload_user_model_idx')
    .on('oidc_payload')
    .columns(['user_id', 'model'])
    .execute();
  await db.schema.dropIndex('oidc_payload_user_id_idx').execute();
}
