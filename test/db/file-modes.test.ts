import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createApp } from '../../src/app.ts';
import { testConfig } from '../helpers/config.ts';
import { createTestDatabase, testDatabaseKind, type TestDatabase } from '../helpers/database.ts';

const mode = (file: string) => (statSync(file).mode & 0o777).toString(8);

/**
 * What aa-oidc creates on disk is readable by its own user only: the data directory 0700, the
 * secret key and the SQLite database with its -wal and -shm files 0600, whatever the umask.
 */
describe(`file modes of a first start (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  before(async () => {
    database = await createTestDatabase();
  });
  after(async () => database.drop());

  it('creates the data directory 0700 and the secret key and database files 0600', async () => {
    const dataDir = path.join(database.dataDir, 'fresh');
    const sqliteFile = path.join(dataDir, 'aa-oidc.sqlite');
    const previousUmask = process.umask(0o022);
    try {
      const config = testConfig(database, {
        dataDir,
        ...(database.kind === 'sqlite' && { databaseUrl: `sqlite:${sqliteFile}` }),
      });
      const app = await createApp(config, { migrate: true });
      try {
        assert.equal(mode(dataDir), '700');
        assert.equal(mode(path.join(dataDir, 'secret.key')), '600');
        if (database.kind === 'sqlite') {
          for (const file of [sqliteFile, `${sqliteFile}-wal`, `${sqliteFile}-shm`]) {
            assert.ok(existsSync(file), `${path.basename(file)} exists while the database is open`);
            assert.equal(mode(file), '600', path.basename(file));
          }
        }
      } finally {
        await app.close();
      }
    } finally {
      process.umask(previousUmask);
    }
  });
});
