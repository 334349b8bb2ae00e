import type { Kysely } from 'kysely';
import type { MigrationContext } from './helpers.ts';

/**
 * `signing_key.withdrawn_at`: when an operator withdrew the key (`aa-oidc keys withdraw`, a leaked
 * private part), which removes it from JWKS at once instead of when its publication ends. Such a key
 * is `removed` like an expired one; this column tells the two apart in listings. Null for every
 * existing key.
 */
export async function up(db: Kysely<unknown>, _context: MigrationContext): Promise<void> {
  await db.schema.alterTable('signing_key').addColumn('withdrawn_at', 'bigint').execute();
}
