import assert from 'node:assert/strict';
import { generateKeyPair } from 'node:crypto';
import BetterSqlite3 from 'better-sqlite3';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import type { Config } from '../../src/config/load.ts';
import type { DatabaseHandle } from '../../src/db/connect.ts';
import { createKeyService, type KeyService } from '../../src/keys/service.ts';
import { createKeyStore } from '../../src/keys/store.ts';
import { createLogger } from '../../src/logging/logger.ts';
import { cli } from '../helpers/cli.ts';
import { testEnv } from '../helpers/config.ts';
import { createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';
import { leftoversOf } from '../helpers/leftovers.ts';
import { capturingLogger, openInstance } from './helpers.ts';

/** An RSA key (PKCS#8 PEM) of `bits` bits: at 4096, its encrypted private part needs more than one 4 KiB page. */
async function keyPem(bits = 4096): Promise<string> {
  const { privateKey } = await promisify(generateKeyPair)('rsa', { modulusLength: bits });
  return privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
}

describe(
  'signing keys: an erased private part leaves the SQLite files and the backups taken afterwards',
  {
    skip:
      testDatabaseKind === 'sqlite'
        ? false
        : 'SQLite only: pg_dump copies live rows only, and dead rows stay in PostgreSQL until VACUUM reuses their space',
  },
  () => {
    let database: TestDatabase;
    let config: Config;
    /** Held open all along, as a running server holds the database: the log is not removed at close. */
    let handle: DatabaseHandle;
    let keys: KeyService;
    let clock = Date.now();
    const now = () => clock;
    const file = () => (config.database.kind === 'sqlite' ? config.database.path : '');

    /** The stored (encrypted) private part of a key, read before it is erased. */
    const storedPrivatePart = async (kid: string) => {
      const row = await handle.db
        .selectFrom('signing_key')
        .select('private_jwk_encrypted')
        .where('kid', '=', kid)
        .executeTakeFirstOrThrow();
      assert.ok(row.private_jwk_encrypted, `${kid} has its private part before the erasure`);
      return row.private_jwk_encrypted;
    };
    const erased = async (kid: string) =>
      (
        await handle.db
          .selectFrom('signing_key')
          .select('private_jwk_encrypted')
          .where('kid', '=', kid)
          .executeTakeFirstOrThrow()
      ).private_jwk_encrypted === null;

    /** What is left of each secret in the database's files, then in a backup made with the CLI. */
    const leftovers = async (secrets: string[], backupName: string) => {
      const live = secrets.flatMap((secret) =>
        [file(), `${file()}-wal`].flatMap((f) => leftoversOf(secret, f)),
      );
      const backup = path.join(database.dataDir, backupName);
      const run = await cli(['backup', '--to', backup], testEnv(database));
      assert.equal(run.code, 0, run.stderr);
      return { live, backup: secrets.flatMap((secret) => leftoversOf(secret, backup)) };
    };

    before(async () => {
      database = await createTestDatabase({ migrated: true });
      ({ config, handle } = await openInstance(database));
      keys = createKeyService(handle, config, undefined, { now });
      await keys.ensureActiveKey();
    });
    after(async () => {
      await handle?.close();
      await database?.drop();
    });

    it('withdrawn with the CLI while the database is open elsewhere (a server): no run of its stored private part is left in the database file, its write-ahead log or a backup taken afterwards', async () => {
      // A key of the usual size, whose row fits in its page, and one whose private part overflows it.
      const next = (await keys.list()).find((key) => key.status === 'next')!.kid;
      const pem = path.join(database.dataDir, 'large.pem');
      writeFileSync(pem, await keyPem(), { mode: 0o600 });
      const imported = await cli(['keys', 'import', '--pem', pem, '--as', 'retired'], testEnv(database));
      assert.equal(imported.code, 0, imported.stderr);
      const large = /^imported: (\S{43}) as retired/m.exec(imported.stdout)![1]!;
      const secrets = [await storedPrivatePart(next), await storedPrivatePart(large)];
      assert.ok(secrets[1]!.length > 4096, 'the large key does not fit in one page');

      for (const kid of [next, large]) {
        const run = await cli(['keys', 'withdraw', kid], testEnv(database));
        assert.equal(run.code, 0, run.stderr);
        assert.equal(await erased(kid), true);
      }

      const found = await leftovers(secrets, 'after-withdrawal.sqlite');
      assert.deepEqual(found.live, [], 'the database and its log hold nothing of the withdrawn keys');
      assert.deepEqual(found.backup, [], 'a backup taken after the withdrawal holds nothing of them');
    });

    it('removed by a running instance’s key store when its publication ends: no run of its stored private part is left in the database file, its write-ahead log or a backup taken afterwards', async () => {
      const imported = await keys.importKey(await keyPem(), { as: 'retired' });
      const secret = await storedPrivatePart(imported.kid);
      const store = await createKeyStore(handle, config, createLogger(config), {
        now,
        reloadIntervalMs: 600_000,
      });
      try {
        assert.ok(store.loadedKeys().some((key) => key.kid === imported.kid));
        clock = imported.publishUntil! + 1;
        // The first reload sees the key's publication ended and removes it, then loads the set without it.
        await store.reload();
        assert.ok(!store.loadedKeys().some((key) => key.kid === imported.kid));
        assert.equal(await erased(imported.kid), true);
      } finally {
        store.close();
      }

      const found = await leftovers([secret], 'after-removal.sqlite');
      assert.deepEqual(found.live, [], 'the database and its log hold nothing of the removed key');
      assert.deepEqual(found.backup, [], 'a backup taken after the removal holds nothing of it');
    });

    it('withdrawn while another connection reads the database: the withdrawal is done, and the log kept until later is said at debug level only', async () => {
      const imported = await keys.importKey(await keyPem(2048), { as: 'retired' });
      const { logger, lines } = capturingLogger(config, 'debug');
      const withdrawing = createKeyService(handle, config, logger, { now });
      // A reader in the middle of a read transaction (a backup being made, a server's query): the
      // log cannot be emptied under it.
      const reader = new BetterSqlite3(file(), { readonly: true });
      try {
        reader.exec('begin');
        reader.prepare('select count(*) from signing_key').get();
        const result = await withdrawing.withdraw(imported.kid);
        assert.equal(result.key.status, 'removed');
        assert.equal(await erased(imported.kid), true);
      } finally {
        reader.close();
      }
      assert.deepEqual(
        lines
          .filter((line) => line.msg !== 'withdrew a signing key: it is no longer published')
          .map((line) => [line.level, line.msg, line.reason]),
        [
          [
            20,
            'the write-ahead log keeps the erased private part until a later checkpoint empties it',
            'another connection was reading or writing',
          ],
        ],
      );
    });
  },
);
