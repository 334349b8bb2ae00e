import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import pg from 'pg';
import { cli, startCliProcess } from '../helpers/cli.ts';
import { testEnv } from '../helpers/config.ts';
import { createTestDatabase, reachablePostgres, type TestDatabase } from '../helpers/database.ts';
import { missing } from '../helpers/e2e.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';
import { waitUntil } from '../helpers/wait.ts';
import { within } from '../../src/util/within.ts';

const postgres = await reachablePostgres();

/** The timeouts the stop is bounded by, as `serve` is configured below. */
const GRACE_SECONDS = 1;
const CONNECT_TIMEOUT_MS = 1000;
const LOGOUT_REQUEST_TIMEOUT_MS = 1000;
const AUDIT_RECEIVER_TIMEOUT_MS = 2000;
/** HANDLERS_SETTLE_MS (src/http/graceful-shutdown.ts). */
const HANDLERS_SETTLE_MS = 5000;
/**
 * The longest the stop may take over a dead route, step by step (docs/deployment.md, "Stopping"):
 * the requests' grace and settle, the purges' rounds, the logout worker's round, the logout job transport, the audit
 * bus's deliveries in flight, the audit store's last writes, the pool's goodbyes. Without the bounds
 * each statement on the dead route waits for the query timeout (60 s), and the stop for several.
 */
const STOP_BOUND_MS =
  GRACE_SECONDS * 1000 +
  HANDLERS_SETTLE_MS +
  CONNECT_TIMEOUT_MS +
  (LOGOUT_REQUEST_TIMEOUT_MS + CONNECT_TIMEOUT_MS) +
  CONNECT_TIMEOUT_MS +
  AUDIT_RECEIVER_TIMEOUT_MS +
  CONNECT_TIMEOUT_MS +
  CONNECT_TIMEOUT_MS;
/** Room for a loaded machine: the deadline only bounds a failure (a stop that waits for the query timeout). */
const STOP_DEADLINE_MS = STOP_BOUND_MS + 30_000;

/**
 * `aa-oidc serve` on PostgreSQL stopped by SIGTERM while the route to its own database is dead (a relay
 * that passes nothing either way and closes nothing), with audit events whose write is in flight:
 * every step of the stop gives up on the database within its bound, the log counts the audit events
 * that were not written (by kind, never with a token or secret) in one line, logs nothing the stop
 * itself cut as an error, and the process exits 0.
 */
describe(
  'aa-oidc serve stopped while the route to its own PostgreSQL is dead',
  { skip: 'missing' in postgres ? missing(postgres.missing) : false },
  () => {
    let database: TestDatabase;
    let proxy: TcpProxy;
    let direct: pg.Client | undefined;

    beforeEach(async () => {
      database = await createTestDatabase({ migrated: true, postgresUrl: (postgres as { url: string }).url });
      const url = new URL(database.url);
      proxy = await startTcpProxy(url.hostname, Number(url.port || 5432));
    });
    afterEach(async () => {
      await direct?.end().catch(() => undefined);
      await proxy?.close();
      await database?.drop();
    });

    it('exits 0 within the bounds of its timeouts, counting the audit events it could not write', async () => {
      const created = await cli(
        ['app', 'create', '--name', 'Machine', '--grant-type', 'client_credentials', '--format', 'json'],
        testEnv(database),
      );
      assert.equal(created.code, 0, created.stderr);
      const machine = JSON.parse(created.stdout) as { client_id: string; client_secret: string };
      const credentials = Buffer.from(`${machine.client_id}:${machine.client_secret}`).toString('base64');
      direct = new pg.Client({ connectionString: database.url });
      await direct.connect();
      // The events stored before `serve` starts (the application's creation) are not its own.
      const storedBefore = await storedEvents(direct);

      const serve = startCliProcess(
        ['serve'],
        testEnv(database, {
          AA_OIDC_DATABASE_URL: proxy.wrap(database.url),
          AA_OIDC_DATABASE_CONNECT_TIMEOUT_MS: String(CONNECT_TIMEOUT_MS),
          AA_OIDC_HTTP_SHUTDOWN_GRACE_SECONDS: String(GRACE_SECONDS),
          AA_OIDC_LOGOUT_REQUEST_TIMEOUT_MS: String(LOGOUT_REQUEST_TIMEOUT_MS),
          AA_OIDC_AUDIT_RECEIVER_TIMEOUT_MS: String(AUDIT_RECEIVER_TIMEOUT_MS),
          AA_OIDC_PORT: '0',
          AA_OIDC_HOST: '127.0.0.1',
          AA_OIDC_METRICS_ENABLED: 'false',
          AA_OIDC_LOG_LEVEL: 'info',
        }),
      );
      try {
        const port = Number((await serve.waitFor(/ server on http:\/\/127\.0\.0\.1:(\d+) /))[1]);
        // The audit table takes no insert (taken by this test's transaction, on the server's side of
        // the relay): the batch of the events below is in flight when the route dies.
        await direct.query('begin');
        await direct.query('lock table audit_event in exclusive mode');
        const tokens: string[] = [];
        for (let request = 0; request < 3; request += 1) {
          const answer = await fetch(`http://127.0.0.1:${port}/o/token/`, {
            method: 'POST',
            headers: {
              authorization: `Basic ${credentials}`,
              'content-type': 'application/x-www-form-urlencoded',
            },
            body: 'grant_type=client_credentials',
          });
          assert.equal(answer.status, 200);
          tokens.push(((await answer.json()) as { access_token: string }).access_token);
        }
        await waitUntil(
          async () => (await waitingForLock(direct!, 'insert into "audit_event"%')) > 0,
          'the audit batch waits for its table',
        );
        proxy.freeze();
        serve.process.kill('SIGTERM');
        await serve.waitFor(/"shutting down"/);
        assert.equal(
          await within(serve.exited, STOP_DEADLINE_MS, 'still running'),
          0,
          serve.stdout() + serve.stderr(),
        );
        const output = serve.stdout() + serve.stderr();

        // What the stop could not write is what the log shows and the table does not hold: the
        // server's connections are ended before the table is given back (the insert waiting for it
        // would otherwise commit now).
        await proxy.close();
        await direct.query(
          'select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()',
        );
        await direct.query('rollback');
        const stored = (await storedEvents(direct)) - storedBefore;
        const published = [...output.matchAll(/"msg":"audit [a-z_]+"/g)].length;

        const line = /^.*audit event\(s\) not confirmed written to the database.*$/m.exec(output);
        assert.ok(line, output);
        const unwritten = JSON.parse(line[0]) as Record<string, unknown>;
        assert.equal(unwritten.level, 40, 'logged at warn');
        assert.equal(unwritten.events, published - stored, 'each event published and not in the table');
        assert.ok(((unwritten.kinds as Record<string, number>).token_issued ?? 0) >= tokens.length, line[0]);
        assert.match(line[0], /within 1 s \(AA_OIDC_DATABASE_CONNECT_TIMEOUT_MS; /);

        // What the stop cut (the key store's reload, the logout worker's and pg-boss's statements in
        // flight as the connections closed, pg-boss's own statements run into the dead route once the
        // stop began) is not logged as a fault, and the events the stop did not write are that one
        // line, not a line each besides.
        const stop = output.slice(output.indexOf('"shutting down"'));
        const logged = stop
          .split('\n')
          .filter((text) => text.startsWith('{'))
          .map((text) => JSON.parse(text) as { level: number; msg: string });
        assert.deepEqual(
          logged.filter((entry) => entry.level >= 50),
          [],
          'nothing at error level: what failed is what the stop gave up on',
        );
        assert.deepEqual(
          logged.filter((entry) => entry.msg === 'audit receiver failed'),
          [],
          'the unwritten events are counted once',
        );

        // Never a secret in the log.
        for (const secret of [machine.client_secret, ...tokens]) assert.ok(!output.includes(secret));
      } finally {
        await serve.stop('SIGKILL');
      }
    });
  },
);

async function storedEvents(client: pg.Client): Promise<number> {
  const { rows } = await client.query<{ n: string }>('select count(*) as n from audit_event');
  return Number(rows[0]!.n);
}

/** The statements (`similar to` the pattern) waiting for a lock (one this test's transaction holds). */
async function waitingForLock(client: pg.Client, statement: string): Promise<number> {
  const { rows } = await client.query<{ n: string }>(
    `select count(*) as n from pg_locks l join pg_stat_activity a on a.pid = l.pid
      where not l.granted and a.query similar to $1`,
    [statement],
  );
  return Number(rows[0]!.n);
}
