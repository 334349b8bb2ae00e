import pg from 'pg';
import type { DatabaseHandle } from '../../src/db/connect.ts';
import { connect, createTestDatabase, type TestDatabase } from './database.ts';

/**
 * A migrated PostgreSQL test database for tests of the driver layer: aa-oidc's handle on it, an
 * administrator's client of its own (to change tables under the handle), one user, and a table of
 * the test's own, `probeTable` (id integer primary key, v integer not null), holding `probeRows`.
 */
export interface PostgresProbe {
  database: TestDatabase;
  handle: DatabaseHandle;
  admin: pg.Client;
  userId: number;
  drop(): Promise<void>;
}

export async function createPostgresProbe(
  url: string,
  probeTable: string,
  probeRows: ReadonlyArray<readonly [id: number, v: number]>,
): Promise<PostgresProbe> {
  const database = await createTestDatabase({ migrated: true, postgresUrl: url });
  const handle = connect(database);
  const admin = new pg.Client({ connectionString: database.url });
  await admin.connect();
  const now = Date.now();
  const { rows } = await admin.query<{ id: number }>(
    `insert into app_user (username, username_key, email, email_verified, active, superuser, oidc_access, created_at, updated_at)
     values ('pilot', 'pilot', 'pilot@example.test', 1, 1, 0, 1, $1, $1) returning id`,
    [now],
  );
  await admin.query(`create table ${probeTable} (id integer primary key, v integer not null)`);
  for (const [id, v] of probeRows) await admin.query(`insert into ${probeTable} values ($1, $2)`, [id, v]);
  return {
    database,
    handle,
    admin,
    userId: Number(rows[0]!.id),
    async drop() {
      await admin.end();
      await handle.close();
      await database.drop();
    },
  };
}
