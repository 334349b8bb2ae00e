import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createServices } from '../../src/services.ts';
import { cli } from '../helpers/cli.ts';
import { testConfig, testEnv } from '../helpers/config.ts';
import { createTestDatabase, testDatabaseKind, type TestDatabase } from '../helpers/database.ts';
import { startRpReceiver, type RpReceiver } from './rp-receiver.ts';
import { logoutJobs } from './jobs.ts';

describe(`aa-oidc bcl test (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  let ok: RpReceiver;
  let failing: RpReceiver;
  const clients: Record<string, string> = {};

  before(async () => {
    database = await createTestDatabase({ migrated: true });
    ok = await startRpReceiver([200]);
    failing = await startRpReceiver([500]);
    const services = await createServices(testConfig(database, { logout: { allowPrivateTargets: true } }), {
      migrate: true,
    });
    try {
      for (const [name, receiver] of [
        ['ok', ok],
        ['failing', failing],
      ] as const) {
        const created = await services.applications.create(
          { name, redirectUris: ['https://rp.example.org/cb'], backchannelLogoutUri: receiver.url() },
          'test',
        );
        clients[name] = created.application.clientId;
      }
    } finally {
      await services.close();
    }
  });
  after(async () => {
    await ok.close();
    await failing.close();
    await database.drop();
  });

  const env = () => testEnv(database, { AA_OIDC_LOGOUT_ALLOW_PRIVATE_TARGETS: 'true' });

  it('delivers one test token to each app now and prints the outcome per app (json)', async () => {
    const result = await cli(['bcl', 'test', clients.ok!, '--format', 'json'], env());
    assert.equal(result.code, 0, result.stderr);
    const rows = JSON.parse(result.stdout) as Array<Record<string, unknown>>;
    assert.deepEqual(rows, [
      { client_id: clients.ok, name: 'ok', outcome: 'success', http_status: 200, detail: 'HTTP 200' },
    ]);
    assert.equal(ok.requests.length, 1);
    const token = new URLSearchParams(ok.requests[0]!.body).get('logout_token')!;
    const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { sub: string };
    assert.match(claims.sub, /^aa-oidc-bcl-test-/);
    assert.ok(!result.stdout.includes(token) && !result.stderr.includes(token), 'the token is never printed');
  });

  it('tokens revoke-user queues user_revoked for the apps whose tokens it revoked (none on --dry-run)', async () => {
    const services = await createServices(testConfig(database, { logout: { allowPrivateTargets: true } }));
    try {
      const profile = await services.directoryAdmin.createUser({
        username: 'revoked-pilot',
        oidcAccess: true,
      });
      await services.database.db
        .insertInto('oidc_payload')
        .values({
          model: 'RefreshToken',
          id: 'refresh-token-digest',
          payload: '{}',
          grant_id: 'grant-r',
          user_id: String(profile.user.id),
          client_id: clients.ok!,
          uid: null,
          user_code: null,
          expires_at: Date.now() + 3_600_000,
          consumed_at: null,
        })
        .execute();
      const jobs = async () =>
        (await logoutJobs(services.database, { userId: profile.user.id })).map(
          ({ client_id, trigger, status }) => ({ client_id, trigger, status }),
        );
      const dry = await cli(['tokens', 'revoke-user', '--username', 'revoked-pilot', '--dry-run'], env());
      assert.equal(dry.code, 0, dry.stderr);
      assert.deepEqual(await jobs(), []);
      const done = await cli(['tokens', 'revoke-user', '--username', 'revoked-pilot'], env());
      assert.equal(done.code, 0, done.stderr);
      assert.deepEqual(await jobs(), [{ client_id: clients.ok, trigger: 'user_revoked', status: 'pending' }]);
    } finally {
      await services.close();
    }
  });

  it('aa-oidc worker refuses an unmigrated database, naming the command that fixes it', async () => {
    const empty = await createTestDatabase();
    try {
      const result = await cli(
        ['worker'],
        testEnv(empty, {
          NODE_ENV: 'production',
          AA_OIDC_ISSUER: 'https://auth.example.org/o',
          AA_OIDC_SECRET_KEY: 'another-test-secret-key-long-enough-0123456789',
        }),
      );
      assert.notEqual(result.code, 0);
      assert.match(
        result.stderr,
        /pending migration\(s\); run `aa-oidc migrate` first|does not exist; check AA_OIDC_DATABASE_URL, or create the database with `aa-oidc migrate`/,
      );
    } finally {
      await empty.drop();
    }
  });

  it('exits non-zero naming the apps whose delivery failed (one attempt, no retry)', async () => {
    const result = await cli(['bcl', 'test', clients.ok!, clients.failing!], env());
    assert.notEqual(result.code, 0);
    assert.match(result.stdout, /retries_exhausted/);
    assert.match(result.stdout, /success/);
    assert.match(result.stderr, new RegExp(`1 of 2 test deliveries did not succeed: "${clients.failing}"`));
    assert.equal(failing.requests.length, 1);
  });

  it('tests an application named twice once: one row, one logout at its receiver', async () => {
    const before = ok.requests.length;
    const result = await cli(['bcl', 'test', clients.ok!, clients.ok!, '--format', 'json'], env());
    assert.equal(result.code, 0, result.stderr);
    const rows = JSON.parse(result.stdout) as Array<Record<string, unknown>>;
    assert.deepEqual(
      rows.map((row) => row.client_id),
      [clients.ok],
    );
    assert.equal(ok.requests.length, before + 1);
  });

  it('refuses an empty client_id up front, naming the argument, and delivers to none', async () => {
    const before = ok.requests.length;
    const result = await cli(['bcl', 'test', clients.ok!, ''], env());
    assert.equal(result.code, 1);
    assert.equal(result.stdout, '');
    assert.equal(
      result.stderr,
      'aa-oidc: client_id: an empty client_id ("") names no application; give the client_id of each application to test (see aa-oidc app list)\n',
    );
    assert.equal(ok.requests.length, before);
  });
});
