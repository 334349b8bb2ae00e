import type { Kysely } from 'kysely';
import type { MigrationContext } from './helpers.ts';

/**
 * Client secrets imported from the Python plugin (`aa-oidc import plugin-apps`): django-oauth-toolkit
 * stored them as Django PBKDF2 hashes, which cannot be turned into the SHA-256 digest aa-oidc keeps.
 * `client_secret_pbkdf2` holds such a hash until the client's first successful authentication, which
 * replaces it with the digest of the secret it presented.
 */
export async function up(db: Kysely<unknown>, _context: MigrationContext): Promise<void> {
  await db.schema.alterTable('application').addColumn('client_secret_pbkdf2', 'varchar(255)').execute();
}
