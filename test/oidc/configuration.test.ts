import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { generateKeyPair, exportJWK } from 'jose';
import type { DatabaseHandle } from '../../src/db/connect.ts';
import { createDirectory } from '../../src/directory/builtin/create.ts';
import { builtinDirectoryReader } from '../../src/directory/builtin/reads.ts';
import type { Directory } from '../../src/directory/port.ts';
import { cookieKeys, providerConfiguration } from '../../src/oidc/configuration.ts';
import { createFindAccount } from '../../src/oidc/find-account.ts';
import { createMetrics } from '../../src/metrics/registry.ts';
import { createPolicyEnforcer } from '../../src/oidc/policy-enforcer.ts';
import { testConfig } from '../helpers/config.ts';
import { connect, createTestDatabase, testDatabaseKind, type TestDatabase } from '../helpers/database.ts';

describe(`provider configuration (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;

  before(async () => {
    database = await createTestDatabase({ migrated: true });
    handle = connect(database);
  });
  after(async () => {
    await handle.close();
    await database.drop();
  });

  const noApplications = { findByClientId: async () => undefined };
  const policyFor = (directory: Directory) =>
    createPolicyEnforcer({
      directory,
      applications: noApplications,
      metrics: createMetrics({ defaultMetrics: false }),
      audit: { publish: () => undefined },
    });

  it('marks cookies Secure in production only, always HttpOnly and SameSite=Lax, keyed from the secret key', async () => {
    const jwk = await exportJWK((await generateKeyPair('RS256', { extractable: true })).privateKey);
    const directory = builtinDirectoryReader(handle.db);
    const development = testConfig(database);
    const production = testConfig(database, {
      mode: 'production',
      issuer: 'https://sso.example.org/o',
      secretKey: 'a-production-secret-key-of-enough-length-0123456789',
    });
    for (const [config, secure] of [
      [development, false],
      [production, true],
    ] as const) {
      const configuration = providerConfiguration({
        config,
        db: handle.db,
        applications: noApplications,
        directory,
        jwks: { keys: [jwk] },
        policy: policyFor(directory),
      });
      for (const options of [configuration.cookies!.long!, configuration.cookies!.short!]) {
        assert.equal(options.secure, secure);
        assert.equal(options.httpOnly, true);
        assert.equal(options.sameSite, 'lax');
      }
      assert.deepEqual(configuration.cookies!.keys, cookieKeys(config.secretKey));
      assert.ok(
        !String(configuration.cookies!.keys).includes(config.secretKey),
        'derived, not the secret key itself',
      );
      assert.equal(configuration.ttl!.AccessToken, config.tokens.accessTokenTtl);
      assert.equal(configuration.ttl!.RefreshToken, config.tokens.refreshTokenTtl);
      assert.equal(configuration.ttl!.AuthorizationCode, config.tokens.codeTtl);
      assert.equal(configuration.ttl!.IdToken, config.tokens.idTokenTtl);
    }
    assert.notDeepEqual(cookieKeys(development.secretKey), cookieKeys(production.secretKey));
  });

  it('loads a profile once per request, and a deactivated user is no account', async () => {
    const directory = createDirectory(handle.db);
    const reader = builtinDirectoryReader(handle.db);
    const created = await directory.createUser({ username: 'once', password: 'long enough password' });
    let loads = 0;
    const counting = {
      profileById: (id: number) => {
        loads += 1;
        return reader.profileById(id);
      },
    };
    const findAccount = createFindAccount(counting, testConfig(database), policyFor(reader));
    const request = {} as Parameters<typeof findAccount>[0];
    const first = await findAccount(request, String(created.user.id));
    const second = await findAccount(request, String(created.user.id));
    assert.equal(first?.accountId, String(created.user.id));
    assert.equal(second?.accountId, String(created.user.id));
    assert.equal(loads, 1);
    await findAccount({} as Parameters<typeof findAccount>[0], String(created.user.id));
    assert.equal(loads, 2, 'another request loads again');
    assert.equal(await findAccount(request, 'not-a-number'), undefined);
    assert.equal(await findAccount(request, '999999'), undefined);
    await directory.deactivate({ id: created.user.id });
    assert.equal(
      await findAccount({} as Parameters<typeof findAccount>[0], String(created.user.id)),
      undefined,
    );
  });
});
