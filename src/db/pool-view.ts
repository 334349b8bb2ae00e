import type { PostgresPool, PostgresPoolClient } from 'kysely';
import type pg from 'pg';

/**
 * node-postgres's pool as Kysely's PostgresDialect takes it, every statement of a client run through
 * `queryOf(client)`: made once a client (state of its own, such as an open transaction, lives in
 * it), and one view a client, since Kysely keeps its connection objects by the client it is given.
 */
export function postgresPoolView(
  pool: pg.Pool,
  queryOf: (client: pg.PoolClient) => PostgresPoolClient['query'],
): PostgresPool {
  const views = new WeakMap<pg.PoolClient, PostgresPoolClient>();
  const viewOf = (client: pg.PoolClient): PostgresPoolClient => ({
    get processID() {
      return (client as unknown as { processID?: number }).processID;
    },
    release: (destroy?: boolean) => client.release(destroy),
    query: queryOf(client),
  });
  return {
    Client: (pool as unknown as { Client: PostgresPool['Client'] }).Client,
    get options() {
      return pool.options;
    },
    async connect() {
      const client = await pool.connect();
      let view = views.get(client);
      if (!view) {
        view = viewOf(client);
        views.set(client, view);
      }
      return view;
    },
    end: () => pool.end(),
  };
}
