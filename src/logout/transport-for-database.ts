import type { DatabaseHandle } from '../db/connect.ts';
import type { LogoutJobTransport } from './job-transport.ts';
import { createPgBossTransport, type PgBossTransportOptions } from './pgboss-transport.ts';
import { createTableTransport } from './table-transport.ts';

/** The transport for a database: pg-boss on PostgreSQL, the `bcl_job` table on SQLite. */
export function createLogoutTransport(
  database: DatabaseHandle,
  options: PgBossTransportOptions,
): LogoutJobTransport {
  if (database.kind === 'sqlite') return createTableTransport(database);
  return createPgBossTransport(database, options);
}
