import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Child, startChild } from '../helpers/child-process.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import {
  asRoot,
  migratedSqliteEnv,
  unprivilegedCommand,
  whyNobodyCannotRun,
} from '../helpers/unprivileged.ts';

describe('health endpoints', () => {
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
      const body = (await notReady.json()) as { status: string; pendingMigrations: string[] };
      assert.equal(body.status, 'not_ready');
      assert.ok(body.pendingMigrations.length > 0);
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
        body: { status: 'ready', database: 'reachable', pendingMigrations: [] },
      });

      chmodSync(file, readOnly);
      assert.deepEqual(await readyz(), {
        status: 503,
        body: { status: 'not_ready', database: 'read_only', pendingMigrations: [] },
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
      assert.equal((await readyz()).status, 200);
    },
  );
});
