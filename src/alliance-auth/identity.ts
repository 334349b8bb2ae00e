import { sql } from 'kysely';
import type { AllianceAuthDatabaseKind } from './database.ts';
import type { AaDb } from './schema.ts';

/**
 * What tells one Alliance Auth database from another, for aa-oidc's directory binding
 * (src/directory/binding.ts): its first Django migration (the lowest `django_migrations.id`), named
 * with the time Django applied it, to the microsecond, in UTC. It is data, so a dump and its restore,
 * another host, another database name or login all keep it; a database made anew (`migrate` on an
 * empty one) has another. Django writes that row when the database is created and never again. A
 * staging copy restored from production's dump shares it, and its user ids are production's people.
 * Django keeps `applied` in UTC: MySQL's `datetime(6)` holds it as written, PostgreSQL's
 * `timestamp with time zone` is read at UTC whatever the session's time zone.
 */
export async function readAllianceAuthIdentity(db: AaDb, kind: AllianceAuthDatabaseKind): Promise<string> {
  const applied =
    kind === 'mysql'
      ? sql<string>`date_format(applied, '%Y-%m-%d %H:%i:%s.%f')`
      : sql<string>`to_char(applied at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')`;
  const row = await db
    .selectFrom('django_migrations')
    .select(['app', 'name', applied.as('applied')])
    .orderBy('id')
    .limit(1)
    .executeTakeFirst();
  if (!row) throw new Error("Alliance Auth's django_migrations is empty: no migration names this database");
  return `${row.app}.${row.name} applied ${String(row.applied)} UTC`;
}
