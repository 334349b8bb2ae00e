import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { sql } from 'kysely';
import {
  PGBOSS_UNCHECKED_REASON,
  PGBOSS_UNUSABLE_REASON,
  READINESS_REUSE_MS,
} from '../../src/http/health.ts';
import { migratePgBoss } from '../../src/logout/pgboss-transport.ts';
import { type Child, startChild } from '../helpers/child-process.ts';
import { cli } from '../helpers/cli.ts';
import { testEnv } from '../helpers/config.ts';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { statementsDuring } from '../helpers/statements.ts';
import { createLeakHarness } from '../helpers/leak-harness.ts';
import {
  asRoot,
  migratedSqliteEnv,
  unprivilegedCommand,
  whyNobodyCannotRun,
} from '../helpers/unprivileged.ts';

/** Waits until an answer of /readyz given before now is no longer reused (a margin for the timers). */
const pastReuse = () => delay(READINESS_REUSE_MS + 50);

describe(`health endpoints (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  before(async () => {
    database = await createTestDatabase();
  });
  after(async () => database.drop());

  it('answers /healthz always and /readyz only once the database is migrated', async () => {
    const unmigrated = await startServer({}, { database, migrate: false });
    let migrated: TestServer | undefined;
    try {
      const healthz = await fetch(`${unmigrated.origin}/healthz`);
      assert.equal(healthz.status, 200);
      assert.deepEqual(await healthz.json(), { status: 'ok' });
      const notReady = await fetch(`${unmigrated.origin}/readyz`);
      assert.equal(notReady.status, 503);
      // Whether migrations are pending, never which: their names tell an attacker the release.
      assert.deepEqual(await notReady.json(), {
        status: 'not_ready',
        database: 'reachable',
        migrations: 'pending',
      });
    } finally {
      await unmigrated.close();
    }
    try {
      migrated = await startServer({}, { database });
      const ready = await fetch(`${migrated.origin}/readyz`);
      assert.equal(ready.status, 200);
      assert.equal(((await ready.json()) as { status: string }).status, 'ready');
    } finally {
      await migrated?.close();
    }
  });

  it('answers 405 naming GET and HEAD to another method on /healthz and /readyz', async () => {
    const server = await startServer();
    try {
      for (const [method, path] of [
        ['POST', '/healthz'],
        ['PUT', '/readyz'],
        ['DELETE', '/healthz'],
      ]) {
        const response = await fetch(`${server.origin}${path}`, { method });
        assert.equal(response.status, 405, `${method} ${path}`);
        assert.equal(response.headers.get('allow'), 'GET, HEAD', `${method} ${path}`);
        assert.deepEqual(await response.json(), {
          error: 'invalid_request',
          error_description: 'This endpoint takes GET, HEAD requests only.',
        });
      }
    } finally {
      await server.close();
    }
  });
});

/**
 * The SQLite file stops taking writes while the server runs (its mode changed, as after a restore; a
 * file system remounted read-only reads the same through access(2)): /readyz says so, and recovers.
 * The file's mode is what changes, so the server runs as a user modes apply to (nobody, as root).
 */
describe('/readyz on an SQLite file that stops taking writes', () => {
  const unreachable = asRoot ? whyNobodyCannotRun() : undefined;
  let folder: string;
  let serve: Child | undefined;
  before(() => {
    folder = mkdtempSync(path.join(tmpdir(), 'aa-oidc-readyz-'));
  });
  after(async () => {
    await serve?.stop('SIGTERM');
    rmSync(folder, { recursive: true, force: true });
  });

  it(
    'answers 503 read_only while the file cannot be written, and ready again once it can',
    { skip: unreachable },
    async () => {
      chmodSync(folder, 0o777);
      const file = path.join(folder, 'aa-oidc.sqlite');
      const env = await migratedSqliteEnv(file, folder);
      const writable = asRoot ? 0o666 : 0o644;
      const readOnly = asRoot ? 0o644 : 0o444;
      chmodSync(file, writable);
      serve = startChild(process.execPath, unprivilegedCommand(['serve']), { env });
      const [, origin] = await serve.waitFor(/ server on (http:\/\/127\.0\.0\.1:\d+)/);
      const readyz = async () => {
        const response = await fetch(`${origin}/readyz`);
        return { status: response.status, body: (await response.json()) as Record<string, unknown> };
      };
      assert.deepEqual(await readyz(), {
        status: 200,
        body: { status: 'ready', database: 'reachable', migrations: 'applied' },
      });

      chmodSync(file, readOnly);
      await pastReuse();
      assert.deepEqual(await readyz(), {
        status: 503,
        body: { status: 'not_ready', database: 'read_only', migrations: 'applied' },
      });
      await serve.waitFor(/"msg":"the database takes no writes; \/readyz answers 503 until it does"/);
      const logged = JSON.parse(
        serve
          .stdout()
          .split('\n')
          .find((line) => line.includes('takes no writes'))!,
      ) as {
        database: string;
        reason: string;
      };
      assert.equal(logged.database, `the SQLite file ${file}`);
      assert.match(logged.reason, /^this user \(\S+\) may not write it; give this user write access/);

      chmodSync(file, writable);
      await pastReuse();
      assert.equal((await readyz()).status, 200);
    },
  );
});

/**
 * /readyz is public and its check reads the database: a flood of it must not become a flood of
 * queries. Checks are counted at the database driver: each begins with `select 1` (is the database
 * reachable), which nothing else sends.
 */
describe(`/readyz under a flood of requests (${testDatabaseKind})`, () => {
  let server: TestServer;
  const harness = createLeakHarness();
  before(async () => {
    server = await startServer({}, { harness });
  });
  after(async () => server?.close());

  const readyz = async () => {
    const response = await fetch(`${server.origin}/readyz`);
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };
  const checksDuring = async <T>(work: () => Promise<T>) => {
    const { result, texts } = await statementsDuring(work);
    return { result, checks: texts.filter((text) => text.trim() === 'select 1').length };
  };

  it('runs one check for many requests at once, reuses its answer for a while, and checks again after', async () => {
    const one = await checksDuring(readyz);
    assert.equal(one.checks, 1);
    assert.deepEqual(one.result, {
      status: 200,
      body: { status: 'ready', database: 'reachable', migrations: 'applied' },
    });

    // Each round starts once the last answer is no longer reused; a round whose last request came
    // later than the reuse time on a loaded machine proves nothing about reuse, and is played again.
    let reuseSeen = false;
    for (let round = 0; round < 5 && !reuseSeen; round += 1) {
      await pastReuse();
      const startedAt = performance.now();
      const flood = await checksDuring(() => Promise.all(Array.from({ length: 25 }, readyz)));
      assert.equal(flood.checks, 1, 'one check for 25 requests at once');
      for (const answer of flood.result) assert.deepEqual(answer, one.result);
      const next = await checksDuring(readyz);
      assert.deepEqual(next.result, one.result);
      if (performance.now() - startedAt < READINESS_REUSE_MS) {
        assert.equal(next.checks, 0, 'the answer is reused');
        reuseSeen = true;
      }
    }
    assert.ok(reuseSeen, 'a request came within the reuse time of a check');

    await pastReuse();
    const later = await checksDuring(readyz);
    assert.equal(later.checks, 1, 'checked again once the answer is older than the reuse time');
    assert.deepEqual(later.result, one.result);
  });

  it("reads the pending migrations from the migration table, without reading the catalog's columns", async () => {
    await pastReuse();
    const { result, texts } = await statementsDuring(readyz);
    assert.deepEqual(result, {
      status: 200,
      body: { status: 'ready', database: 'reachable', migrations: 'applied' },
    });
    assert.ok(
      texts.some((text) => /\bfrom "?schema_migration"?/.test(text)),
      'the migration table is read',
    );
    assert.deepEqual(
      texts.filter((text) => /pg_attribute|pragma_table_info/.test(text)),
      [],
      'no statement reads every column of every table',
    );
  });

  it('shows a change of readiness, and its recovery, once the reuse time has passed', async () => {
    const db = server.app.database.db;
    assert.equal((await readyz()).status, 200);
    const { rows } = await sql<{ name: string; timestamp: string }>`
      select name, timestamp from schema_migration order by name desc limit 1`.execute(db);
    const latest = rows[0]!;
    await sql`delete from schema_migration where name = ${latest.name}`.execute(db);
    try {
      await pastReuse();
      assert.deepEqual(await readyz(), {
        status: 503,
        body: { status: 'not_ready', database: 'reachable', migrations: 'pending' },
      });
      // The operator reads which in the log, once: the public answer does not name it.
      const named = harness.logLines.filter((line) => line.includes('pending migration(s)'));
      assert.equal(named.length, 1, named.join('\n'));
      assert.match(named[0]!, /"level":40/);
      assert.ok(named[0]!.includes(`"pendingMigrations":["${latest.name}"]`), named[0]);
    } finally {
      await sql`insert into schema_migration (name, timestamp) values (${latest.name}, ${latest.timestamp})`.execute(
        db,
      );
    }
    await pastReuse();
    assert.deepEqual(await readyz(), {
      status: 200,
      body: { status: 'ready', database: 'reachable', migrations: 'applied' },
    });
  });

  it(
    'answers not ready, naming the pg-boss schema, while pg-boss cannot use it, and ready once it can',
    { skip: testDatabaseKind !== 'postgres' && 'pg-boss runs on PostgreSQL only' },
    async () => {
      const database = server.app.database;
      // The test's own database: pg-boss installed as `aa-oidc migrate` installs it.
      await migratePgBoss(database, 60);
      await pastReuse();
      const ready = { status: 200, body: { status: 'ready', database: 'reachable', migrations: 'applied' } };
      assert.deepEqual(await readyz(), ready);
      const notReady = {
        status: 503,
        body: {
          status: 'not_ready',
          database: 'reachable',
          migrations: 'applied',
          pgBoss: 'unusable',
          reason: PGBOSS_UNUSABLE_REASON,
        },
      };
      const logged = harness.logLines.length;
      // Damaged as an operator might: the version table emptied, then gone (renamed away).
      await sql`create table pgboss_version_kept as select * from pgboss.version`.execute(database.db);
      await sql`delete from pgboss.version`.execute(database.db);
      try {
        await pastReuse();
        assert.deepEqual(await readyz(), notReady);
        await sql`alter table pgboss.version rename to version_moved`.execute(database.db);
        try {
          await pastReuse();
          assert.deepEqual(await readyz(), notReady);
        } finally {
          await sql`alter table pgboss.version_moved rename to version`.execute(database.db);
        }
      } finally {
        await sql`insert into pgboss.version select * from pgboss_version_kept`.execute(database.db);
        await sql`drop table pgboss_version_kept`.execute(database.db);
      }
      await pastReuse();
      assert.deepEqual(await readyz(), ready);
      const lines = harness.logLines.slice(logged).join('\n');
      assert.match(lines, /version table pgboss\.version is empty.*pg-boss cannot use its schema/);
      assert.match(lines, /but not pg-boss's version table.*pg-boss cannot use its schema/);
      assert.match(lines, /pg-boss can use its schema again/);

      // Dropped while this process's pg-boss has not started: it installs the schema when it starts.
      await sql`drop schema pgboss cascade`.execute(database.db);
      await pastReuse();
      assert.deepEqual(await readyz(), ready);
      await migratePgBoss(database, 60);
      // Started (a delivery pass claims through it), pg-boss installs nothing again: a schema dropped
      // or emptied since leaves nowhere to queue logouts.
      await server.app.logout.deliverDue();
      assert.equal(server.app.logout.transportStarted(), true);
      const startedLogged = harness.logLines.length;
      await sql`drop schema pgboss cascade`.execute(database.db);
      await pastReuse();
      assert.deepEqual(await readyz(), notReady);
      await sql`create schema pgboss`.execute(database.db);
      await pastReuse();
      assert.deepEqual(await readyz(), notReady);
      // The test's own database gets its schema back as the remedy says: aa-oidc migrate.
      await sql`drop schema pgboss cascade`.execute(database.db);
      await migratePgBoss(database, 60);
      await pastReuse();
      assert.deepEqual(await readyz(), ready);
      const startedLines = harness.logLines.slice(startedLogged).join('\n');
      assert.match(
        startedLines,
        /is gone although this process's pg-boss started on it.*pg-boss cannot use its schema/,
      );
      assert.match(
        startedLines,
        /is empty although this process's pg-boss started on it.*pg-boss cannot use its schema/,
      );
    },
  );

  it(
    'answers not ready, naming the job queue, while the check of the pg-boss schema fails, and ready once it passes',
    { skip: testDatabaseKind !== 'postgres' && 'pg-boss runs on PostgreSQL only' },
    async () => {
      const database = server.app.database;
      await migratePgBoss(database, 60);
      await pastReuse();
      const ready = { status: 200, body: { status: 'ready', database: 'reachable', migrations: 'applied' } };
      assert.deepEqual(await readyz(), ready);
      const logged = harness.logLines.length;
      // Something named pgboss.version is there, but the check's read of the version fails.
      await sql`alter table pgboss.version rename to version_kept`.execute(database.db);
      await sql`create view pgboss.version as select (1 / 0)::int as version`.execute(database.db);
      try {
        await pastReuse();
        assert.deepEqual(await readyz(), {
          status: 503,
          body: {
            status: 'not_ready',
            database: 'reachable',
            migrations: 'applied',
            pgBoss: 'unusable',
            reason: PGBOSS_UNCHECKED_REASON,
          },
        });
      } finally {
        await sql`drop view pgboss.version`.execute(database.db);
        await sql`alter table pgboss.version_kept rename to version`.execute(database.db);
      }
      await pastReuse();
      assert.deepEqual(await readyz(), ready);
      const lines = harness.logLines.slice(logged);
      const failed = lines.find((line) => line.includes('the check of pg-boss'));
      assert.ok(failed, 'the failed check is logged');
      const entry = JSON.parse(failed) as { problem: string; err: { code: string; message: string } };
      assert.match(entry.problem, /^the check of pg-boss's schema "pgboss" failed \(22012\)$/);
      assert.equal(entry.err.code, '22012');
      assert.match(entry.err.message, /division by zero/);
      assert.match(lines.join('\n'), /pg-boss can use its schema again/);
    },
  );
});

/**
 * On PostgreSQL the role aa-oidc connects as may lose its privileges on pg-boss's schema (a restore
 * as another owner, a REVOKE): every statement of pg-boss then fails, and no logout can be queued.
 * The server runs as a role of the test's own, dropped afterwards.
 */
describe(
  `/readyz while the role may not use the pg-boss schema (${testDatabaseKind})`,
  { skip: testDatabaseKind !== 'postgres' && 'pg-boss runs on PostgreSQL only' },
  () => {
    const role = `aa_oidc_t_role_${randomBytes(6).toString('hex')}`;
    const password = randomBytes(12).toString('hex');
    const harness = createLeakHarness();
    let database: TestDatabase;
    let owner: pg.Client;
    let server: TestServer | undefined;
    const asOwner = async (text: string) => void (await owner.query(text));
    before(async () => {
      database = await createTestDatabase({ migrated: true });
      owner = new pg.Client({ connectionString: database.url });
      await owner.connect();
      // pg-boss's schema, as `aa-oidc migrate` makes it as the database's owner.
      const migrated = await cli(['migrate'], testEnv(database));
      assert.equal(migrated.code, 0, migrated.stderr);
      await asOwner(`create role ${role} login password '${password}'`);
      for (const schema of ['public', 'pgboss']) {
        await asOwner(`grant usage on schema ${schema} to ${role}`);
        await asOwner(`grant select, insert, update, delete on all tables in schema ${schema} to ${role}`);
        await asOwner(`grant usage, select on all sequences in schema ${schema} to ${role}`);
      }
      const url = new URL(database.url);
      url.username = role;
      url.password = password;
      server = await startServer({ databaseUrl: url.toString() }, { database, migrate: false, harness });
    });
    after(async () => {
      await server?.close();
      await owner?.end();
      await database?.drop();
      const admin = new pg.Client({ connectionString: process.env.AA_OIDC_TEST_DATABASE_URL });
      await admin.connect();
      try {
        await admin.query(`drop role if exists ${role}`);
      } finally {
        await admin.end();
      }
    });

    it('answers not ready naming the job queue while the role lacks USAGE on it, and ready once granted', async () => {
      const readyz = async () => {
        const response = await fetch(`${server!.origin}/readyz`);
        return { status: response.status, body: (await response.json()) as Record<string, unknown> };
      };
      const ready = { status: 200, body: { status: 'ready', database: 'reachable', migrations: 'applied' } };
      assert.deepEqual(await readyz(), ready);
      const logged = harness.logLines.length;
      await asOwner(`revoke usage on schema pgboss from ${role}`);
      try {
        await pastReuse();
        assert.deepEqual(await readyz(), {
          status: 503,
          body: {
            status: 'not_ready',
            database: 'reachable',
            migrations: 'applied',
            pgBoss: 'unusable',
            reason: PGBOSS_UNUSABLE_REASON,
          },
        });
      } finally {
        await asOwner(`grant usage on schema pgboss to ${role}`);
      }
      await pastReuse();
      assert.deepEqual(await readyz(), ready);
      const lines = harness.logLines.slice(logged).join('\n');
      assert.match(
        lines,
        new RegExp(`the role ${role} lacks USAGE on schema pgboss.*GRANT USAGE ON SCHEMA pgboss TO ${role}`),
      );
      assert.ok(!lines.includes(password), 'the password is in no log line');
      assert.match(lines, /pg-boss can use its schema again/);
    });
  },
);
