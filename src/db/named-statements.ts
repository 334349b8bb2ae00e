import { randomBytes } from 'node:crypto';
import type { PostgresPool, PostgresPoolClient } from 'kysely';
import type pg from 'pg';
import { DatabaseUnavailableError } from './errors.ts';
import { postgresPoolView } from './pool-view.ts';

/**
 * PostgreSQL: the pool as Kysely sees it, running each parameterized statement as a named prepared
 * statement (pg's `{ name, text, values }`). The server then parses and plans the statement once per
 * connection instead of at every run: the hot path runs the same few statements for every request,
 * and on a machine where the database shares the cores with aa-oidc, parsing and planning them again
 * cost about as much CPU as aa-oidc itself spent on the request.
 *
 * A statement gets a name when it has parameters (a statement without any runs through the simple
 * protocol, which allows several statements in one text: its meaning must not change) and when its
 * select or returning list names its columns: PostgreSQL plans a prepared statement again after a
 * migration changes a table it reads, but refuses to run it when the columns it returns changed
 * ("cached plan must not change result type"), which a `*` would do when a column is added. Should a
 * named statement still hit that error (a column's type changed under a running server), its text runs
 * unnamed from then on, and the statement is retried at once when no transaction is open.
 *
 * Names are given to the first `NAMED_STATEMENT_LIMIT` texts seen; later texts run unnamed. The
 * statements the code issues are far fewer; a query whose text grows with its input (a batch of rows,
 * an `in` list) makes several, and each is kept by every connection of the pool.
 *
 * A statement prepared on a connection stays there: a connection pooler between aa-oidc and
 * PostgreSQL must give each client connection one server connection (PgBouncer's session mode), or
 * keep track of the statements itself (PgBouncer 1.21 or later with `max_prepared_statements`). One
 * that passes server connections from client to client (transaction or statement mode otherwise)
 * makes PostgreSQL find a name prepared already, or missing: the query then fails with
 * `pooledConnectionError`, which says so. Each process names its statements with a tag of its own,
 * so that behind such a pooler a statement one process prepared never runs with another process's
 * values (a name of the same number and another text would).
 */
export const NAMED_STATEMENT_LIMIT = 100;

/** More parameters than this marks a text built for a batch: such texts vary, and run unnamed. */
const MAX_NAMED_PARAMETERS = 64;

/** `*` or `"table".*` as a select or returning item (not `count(*)`, not a product). */
const EXPANDED_STAR = /"[^"]*"\.\*|(?:\bselect(?:\s+distinct)?|\breturning|,)\s*\*(?=\s*(?:,|\bfrom\b|$))/i;

/** SQLSTATE feature_not_supported, which PostgreSQL answers for a prepared statement whose result type changed. */
export const FEATURE_NOT_SUPPORTED = '0A000';

/** SQLSTATEs of a statement name the server connection already holds, and of one it lacks. */
const DUPLICATE_PREPARED_STATEMENT = '42P05';
const UNDEFINED_PREPARED_STATEMENT = '26000';

/**
 * The error to fail a named statement with when PostgreSQL found its name prepared already on the
 * connection, or missing from it (see above): the server connection is not the one the client
 * prepared its statements on, which only a pooler passing server connections between clients does.
 * A database that cannot be used as configured: requests are answered 503, and the message tells
 * the operator what to change. Undefined for any other error.
 */
export function pooledConnectionError(error: unknown, name: string): DatabaseUnavailableError | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  if (code !== DUPLICATE_PREPARED_STATEMENT && code !== UNDEFINED_PREPARED_STATEMENT) return undefined;
  const found = code === DUPLICATE_PREPARED_STATEMENT ? 'already holds' : 'does not hold';
  return new DatabaseUnavailableError(
    `PostgreSQL's connection ${found} aa-oidc's prepared statement "${name}": a connection pooler ` +
      'between aa-oidc and PostgreSQL passes server connections from client to client (PgBouncer with ' +
      'pool_mode = transaction or statement). aa-oidc keeps statements prepared on its connections: ' +
      'use pool_mode = session, or PgBouncer 1.21 or later with max_prepared_statements set',
    { cause: error },
  );
}

/**
 * node-postgres's error for a query whose answer did not come within `query_timeout`. It fails the
 * query but leaves the connection waiting for that answer: released to the pool as it is, the next
 * query there would queue behind one that never ends (a connection gone silent, not closed), and the
 * pool hands out the connection released last first. Such a connection is ended at once: the pool
 * then drops it on release and opens a new one.
 */
function endIfAnswerNeverCame(client: pg.PoolClient, error: unknown): void {
  if ((error as { message?: unknown } | null)?.message === 'Query read timeout') void client.end();
}

export function mayBeNamed(text: string, parameters: number): boolean {
  return parameters > 0 && parameters <= MAX_NAMED_PARAMETERS && !EXPANDED_STAR.test(text);
}

/** Which texts run as named prepared statements, shared by every connection of a database. */
export interface StatementNames {
  /** The name `text` runs under, or null when it runs unnamed. */
  nameOf(text: string, parameters: number): string | null;
  /** `text` runs unnamed from now on (PostgreSQL refused its prepared form). */
  unname(text: string): void;
}

export function statementNames(limit = NAMED_STATEMENT_LIMIT): StatementNames {
  // text → its name, or null for a text that runs unnamed (not eligible, over the limit, or refused).
  const names = new Map<string, string | null>();
  let given = 0;
  // This process's own names (see above).
  const tag = randomBytes(4).toString('hex');
  return {
    nameOf(text, parameters) {
      let name = names.get(text);
      if (name !== undefined) return name;
      name = given < limit && mayBeNamed(text, parameters) ? `aa_${tag}_${(given += 1)}` : null;
      // Texts that run unnamed are remembered too, up to a bound, so the checks above run once each.
      if (name !== null || names.size < limit * 4) names.set(text, name);
      return name;
    },
    unname: (text) => void names.set(text, null),
  };
}

export function namingStatements(pool: pg.Pool, names: StatementNames = statementNames()): PostgresPool {
  const nameOf = (text: string, parameters: number) => names.nameOf(text, parameters);
  return postgresPoolView(pool, (client) => {
    // Kysely opens and ends its transactions with these parameterless statements (never named).
    let inTransaction = false;
    const query = async (text: string, values: unknown[]): Promise<pg.QueryResult> => {
      const name = nameOf(text, values.length);
      if (name === null) {
        const ends = /^(?:commit|rollback)$/i.test(text);
        try {
          const result = await client.query(text, values);
          if (/^(?:begin|start transaction)\b/i.test(text)) inTransaction = true;
          return result;
        } catch (error) {
          endIfAnswerNeverCame(client, error);
          throw error;
        } finally {
          if (ends) inTransaction = false;
        }
      }
      try {
        return await client.query({ name, text, values });
      } catch (error) {
        endIfAnswerNeverCame(client, error);
        if ((error as { code?: string }).code !== FEATURE_NOT_SUPPORTED)
          throw pooledConnectionError(error, name) ?? error;
        names.unname(text);
        if (inTransaction) throw error;
        return client.query(text, values);
      }
    };
    // A cursor (Kysely's streaming) passes through.
    return ((text: unknown, parameters?: readonly unknown[]) =>
      typeof text === 'string'
        ? query(text, (parameters ?? []) as unknown[])
        : client.query(text as pg.Submittable)) as unknown as PostgresPoolClient['query'];
  });
}
