import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type App, createApp } from '../../src/app.ts';
import { testConfig } from '../helpers/config.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';

describe('health endpoints', () => {
  let database: TestDatabase;
  before(async () => {
    database = await createTestDatabase();
  });
  after(async () => database.drop());

  it('answers /healthz always and /readyz only once the database is migrated', async () => {
    const unmigrated = await createApp(testConfig(database), { migrate: false });
    let app: App | undefined;
    try {
      const { port } = await unmigrated.listen({ host: '127.0.0.1' });
      const healthz = await fetch(`http://127.0.0.1:${port}/healthz`);
      assert.equal(healthz.status, 200);
      assert.deepEqual(await healthz.json(), { status: 'ok' });
      const notReady = await fetch(`http://127.0.0.1:${port}/readyz`);
      assert.equal(notReady.status, 503);
      const body = (await notReady.json()) as { status: string; pendingMigrations: string[] };
      assert.equal(body.status, 'not_ready');
      assert.ok(body.pendingMigrations.length > 0);
    } finally {
      await unmigrated.close();
    }
    try {
      app = await createApp(testConfig(database), { migrate: true });
      const { port } = await app.listen({ host: '127.0.0.1' });
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
      assert.equal(ready.status, 200);
      assert.equal(((await ready.json()) as { status: string }).status, 'ready');
    } finally {
      await app?.close();
    }
  });
});
