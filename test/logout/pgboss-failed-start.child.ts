/**
 * A process that starts the pg-boss logout transport on a database whose pg-boss queues cannot be
 * read: pg-boss's own start goes through (it reads them again later), and the transport's start then
 * fails making sure of our queue, with pg-boss started and its timers armed. It closes the transport
 * and the database. Run by pgboss-failed-start.test.ts, which expects it to end by itself; the
 * database URL is its argument.
 */
import pino from 'pino';
import { parseDatabaseUrl } from '../../src/config/load.ts';
import { openDatabase } from '../../src/db/connect.ts';
import { createPgBossTransport } from '../../src/logout/pgboss-transport.ts';

const database = openDatabase(parseDatabaseUrl(process.argv[2]!, process.cwd()));
const pool = database.pgPool!;
const query = pool.query.bind(pool) as (text: unknown, values?: unknown) => Promise<unknown>;
// Every read of pg-boss's queues (`select q.name, …`) fails, as on a table lost or locked away.
(pool as unknown as { query: typeof query }).query = (text, values) =>
  typeof text === 'string' && /^\s*select\s+q\.name\b/i.test(text)
    ? Promise.reject(new Error('injected: the queue table cannot be read'))
    : query(text, values);

const transport = createPgBossTransport(database, { expireInSeconds: 30, logger: pino({ level: 'silent' }) });
const outcome = await transport.startWorker().then(
  () => 'started',
  (error: Error) => `start failed: ${error.message}`,
);
process.stdout.write(`${outcome}\n`);
await transport.close();
await database.close();
process.stdout.write('closed\n');
