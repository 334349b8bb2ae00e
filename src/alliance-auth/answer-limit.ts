import type { Socket } from 'node:net';
import type { MysqlPool, MysqlPoolConnection, PostgresPool, PostgresPoolClient } from 'kysely';
import type * as mysql from 'mysql2';
import type pg from 'pg';
import { postgresPoolView } from '../db/pool-view.ts';

/**
 * How much longer than the statement timeout aa-oidc waits for the answer to one statement on
 * Alliance Auth's database. The server answers a statement it gave up on with an error at the
 * statement timeout; an answer that has not come this much later is not coming: the connection is
 * open but nothing comes back (a hung server or proxy, a route that died without a reset). Neither the
 * server's limit nor TCP keepalive ends that wait (the peer's kernel, or a proxy's, still answers
 * keepalive probes).
 */
export const NO_ANSWER_MARGIN_MS = 5000;

/** Alliance Auth's database sent no answer to a statement within the limit; its connection was closed. */
export class AllianceAuthNoAnswerError extends Error {
  override name = 'AllianceAuthNoAnswerError';
  constructor(limitMs: number) {
    super(
      `no answer from Alliance Auth's database within ${limitMs / 1000} s (a connection open but silent: a hung server or proxy, a dead route); the connection was closed`,
    );
  }
}

/**
 * Starts the wait for one statement's answer. Past `limitMs` without `answered()`, `abandon` closes
 * the connection (so that the pool opens another rather than hand this one out again, its answer
 * still pending) and `late` is told with an `AllianceAuthNoAnswerError`. `answered()` ends the wait
 * and says whether the answer still counts (false once the wait was given up).
 */
function awaitAnswer(
  limitMs: number,
  abandon: () => void,
  late: (error: AllianceAuthNoAnswerError) => void,
): () => boolean {
  let givenUp = false;
  const timer = setTimeout(() => {
    givenUp = true;
    abandon();
    late(new AllianceAuthNoAnswerError(limitMs));
  }, limitMs);
  return () => {
    clearTimeout(timer);
    return !givenUp;
  };
}

/**
 * node-postgres's pool as Kysely's PostgresDialect uses it, each statement's answer awaited at most
 * `limitMs`. (pg's own `query_timeout` fails the query but leaves the connection waiting for its
 * answer, and the pool hands it out again: the next query there queues behind the one that never
 * ends.) `end()` on a client with a query in flight destroys its socket; the pool drops it on release.
 */
export function postgresPoolWithAnswerLimit(pool: pg.Pool, limitMs: number): PostgresPool {
  // Kysely's executeQuery; nothing streams from AA's database (no cursor).
  return postgresPoolView(
    pool,
    (client) =>
      ((text: string, parameters: readonly unknown[]) =>
        new Promise<pg.QueryResult>((resolve, reject) => {
          const answered = awaitAnswer(limitMs, () => void client.end(), reject);
          client
            .query(text, [...parameters])
            .then(resolve, reject)
            .finally(answered);
        })) as unknown as PostgresPoolClient['query'],
  );
}

/**
 * mysql2's pool as Kysely's MysqlDialect uses it, each statement's answer awaited at most `limitMs`.
 * (mysql2's per-query `timeout` fails the query but leaves the connection busy with it, and the pool
 * hands it out again: the next query there never starts.) The connection is taken out of the pool and
 * its socket destroyed: mysql2's `destroy()` only half-closes it, which a peer that never answers
 * would keep open, and the process with it. `lending` is told of each connection handed out and
 * given back (mysql2's own events miss one destroyed meanwhile).
 */
export function mysqlPoolWithAnswerLimit(
  pool: mysql.Pool,
  limitMs: number,
  lending?: { lent(): void; returned(): void },
): MysqlPool {
  // One view a connection: Kysely keeps its connection objects (and runs onCreateConnection once) by it.
  const views = new WeakMap<mysql.PoolConnection, MysqlPoolConnection>();
  // The connections lent and not yet given back: one is given back by its release, or by its socket's
  // close, whichever comes first. Kysely releases no connection whose onCreateConnection failed (its
  // session settings cut by the answer limit, or by a restart of AA's server), and a close would
  // otherwise wait for it as for work in flight.
  const lentOut = new WeakSet<mysql.PoolConnection>();
  const giveBack = (connection: mysql.PoolConnection) => {
    if (lentOut.delete(connection)) lending?.returned();
  };
  const closeAtOnce = (connection: mysql.PoolConnection) => {
    connection.destroy();
    (connection as unknown as { stream?: Socket }).stream?.destroy();
  };
  const viewOf = (connection: mysql.PoolConnection): MysqlPoolConnection => ({
    get config() {
      return connection.config;
    },
    get threadId() {
      return connection.threadId;
    },
    connect: (callback) => connection.connect(callback),
    destroy: () => connection.destroy(),
    release: () => {
      giveBack(connection);
      connection.release();
    },
    // Kysely's executeQuery, which passes a callback; nothing streams from AA's database.
    query(text: string, parameters: unknown[], callback: Parameters<MysqlPoolConnection['query']>[2]) {
      const answered = awaitAnswer(
        limitMs,
        () => closeAtOnce(connection),
        (error) => callback?.(error, []),
      );
      return connection.query(text, parameters, (error, result) => {
        if (answered()) callback?.(error, result as Parameters<NonNullable<typeof callback>>[1]);
      });
    },
  });
  return {
    getConnection(callback) {
      pool.getConnection((error, connection) => {
        if (error) {
          callback(error, connection as unknown as MysqlPoolConnection);
          return;
        }
        let view = views.get(connection);
        if (!view) {
          view = viewOf(connection);
          views.set(connection, view);
          (connection as unknown as { stream?: Socket }).stream?.once('close', () => giveBack(connection));
        }
        if (!lentOut.has(connection)) {
          lentOut.add(connection);
          lending?.lent();
        }
        callback(null, view);
      });
    },
    end: (callback) => pool.end(callback),
  };
}
