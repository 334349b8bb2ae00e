import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

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
