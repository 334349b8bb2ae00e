import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ApplicationError } from '../../src/applications/errors.ts';
import {
  clientSecretDigest,
  IMPORTED_SECRET_MAX_ITERATIONS,
  verifyClientSecret,
} from '../../src/applications/secret.ts';
import { createApplicationService } from '../../src/applications/service.ts';
import { builtinDirectoryReader } from '../../src/directory/builtin/reads.ts';
import type { ApplicationService } from '../../src/applications/types.ts';
import type { DatabaseHandle } from '../../src/db/connect.ts';
import { createLogger } from '../../src/logging/logger.ts';
import { makeDjangoPbkdf2 } from '../../src/util/django-pbkdf2.ts';
import { testConfig } from '../helpers/config.ts';
import { connect, createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';

const ACTOR = 'import:plugin-apps';
const app = (clientId: string) => ({ clientId, name: clientId, redirectUris: ['https://rp.example.org/cb'] });

describe(`secrets imported from the Python plugin (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let service: ApplicationService;

  before(async () => {
    database = await createTestDatabase({ migrated: true });
    const config = testConfig(database);
    handle = connect(database);
    service = createApplicationService(handle.db, config, createLogger(config), {
      directory: builtinDirectoryReader(handle.db),
    });
  });
  after(async () => {
    await handle.close();
    await database.drop();
  });

  it('keep a PBKDF2-hashed secret working, and replace it by its SHA-256 digest on first success', async () => {
    const secret = 'plugin-secret-0123456789abcdefghijklmnopqrstuvwxyz';
    const hash = await makeDjangoPbkdf2(secret, 1000);
    const { application, clientSecret } = await service.create(app('from-plugin-1'), ACTOR, {
      importedSecret: { djangoPbkdf2: hash },
    });
    assert.equal(clientSecret, null, 'no new secret is made');
    assert.equal(verifyClientSecret(application, secret), false, 'only the hash matches, for now');
    assert.equal(application.clientSecretPbkdf2, hash);

    assert.deepEqual(await service.verifyImportedSecret('from-plugin-1', `${secret}x`), {
      against: 'hash',
      matches: false,
    });
    assert.equal(
      (await service.findByClientId('from-plugin-1'))?.clientSecretPbkdf2,
      hash,
      'a failure changes nothing',
    );
    assert.deepEqual(await service.verifyImportedSecret('from-plugin-1', secret), {
      against: 'hash',
      matches: true,
    });

    const upgraded = await service.findByClientId('from-plugin-1');
    assert.equal(upgraded?.clientSecretPbkdf2, null);
    assert.equal(upgraded?.clientSecretSha256, clientSecretDigest(secret));
    assert.equal(verifyClientSecret(upgraded!, secret), true);
    // A check that waited behind this success finds the hash gone: the digest answers, no PBKDF2.
    assert.deepEqual(await service.verifyImportedSecret('from-plugin-1', secret), {
      against: 'digest',
      matches: true,
    });
    assert.deepEqual(await service.verifyImportedSecret('from-plugin-1', `${secret}x`), {
      against: 'digest',
      matches: false,
    });
  });

  it('store a secret the plugin kept in clear as its digest only', async () => {
    const { application } = await service.create(app('from-plugin-2'), ACTOR, {
      importedSecret: { sha256Hex: clientSecretDigest('clear-secret') },
    });
    assert.equal(verifyClientSecret(application, 'clear-secret'), true);
    assert.equal(application.clientSecretPbkdf2, null);
  });

  it('forget the imported hash when the secret is rotated', async () => {
    await service.create(app('from-plugin-3'), ACTOR, {
      importedSecret: { djangoPbkdf2: await makeDjangoPbkdf2('old-secret', 1000) },
    });
    const { clientSecret } = await service.rotateSecret('from-plugin-3', 'cli:root');
    const rotated = await service.findByClientId('from-plugin-3');
    assert.equal(rotated?.clientSecretPbkdf2, null);
    assert.equal(verifyClientSecret(rotated!, clientSecret), true);
    assert.deepEqual(await service.verifyImportedSecret('from-plugin-3', 'old-secret'), {
      against: 'digest',
      matches: false,
    });
    assert.deepEqual(await service.verifyImportedSecret('from-plugin-3', clientSecret!), {
      against: 'digest',
      matches: true,
    });
  });

  it('refuse a hash costlier than IMPORTED_SECRET_MAX_ITERATIONS, at import and, unchecked, when one is stored', async () => {
    const costly = (await makeDjangoPbkdf2('costly-secret', 1000)).replace(
      '$1000$',
      `$${IMPORTED_SECRET_MAX_ITERATIONS + 1}$`,
    );
    await assert.rejects(
      service.create(app('too-costly'), ACTOR, { importedSecret: { djangoPbkdf2: costly } }),
      (error: unknown) => {
        assert.ok(error instanceof ApplicationError);
        assert.match(
          error.message,
          /client_secret: an imported hash may use at most 2000000 PBKDF2 iterations \(this one uses 2000001\)/,
        );
        return true;
      },
    );
    // One stored by an earlier version, which took up to 10,000,000: never run, whatever is presented.
    await service.create(app('stored-too-costly'), ACTOR, {
      importedSecret: { djangoPbkdf2: await makeDjangoPbkdf2('costly-secret', 1000) },
    });
    await handle.db
      .updateTable('application')
      .set({ client_secret_pbkdf2: costly })
      .where('client_id', '=', 'stored-too-costly')
      .execute();
    assert.deepEqual(await service.verifyImportedSecret('stored-too-costly', 'costly-secret'), {
      against: 'too_costly',
      matches: false,
      iterations: IMPORTED_SECRET_MAX_ITERATIONS + 1,
    });
    // The bound itself is accepted.
    const atBound = costly.replace(
      `$${IMPORTED_SECRET_MAX_ITERATIONS + 1}$`,
      `$${IMPORTED_SECRET_MAX_ITERATIONS}$`,
    );
    await service.create(app('at-the-bound'), ACTOR, { importedSecret: { djangoPbkdf2: atBound } });
  });

  it('refuse malformed secrets and secrets for public clients, naming the field', async () => {
    for (const [input, importedSecret] of [
      [app('bad-1'), { djangoPbkdf2: 'argon2$argon2id$v=19$m=1,t=1,p=1$c2FsdA$aGFzaA' }],
      [app('bad-2'), { sha256Hex: 'ABC' }],
      [{ ...app('bad-3'), clientType: 'public' as const }, { sha256Hex: clientSecretDigest('x') }],
    ] as const) {
      await assert.rejects(service.create(input, ACTOR, { importedSecret }), (error: unknown) => {
        assert.ok(error instanceof ApplicationError);
        assert.match(error.message, /client_secret/);
        return true;
      });
    }
  });
});
