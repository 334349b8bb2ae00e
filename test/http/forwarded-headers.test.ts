import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config/load.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { openLoginPage, submitLogin } from '../helpers/flows.ts';
import { createLeakHarness, type LeakHarness } from '../helpers/leak-harness.ts';
import { seedApp, startServer, type TestServer } from '../helpers/server.ts';

/**
 * With `trustProxy` on, X-Forwarded-* count only from the `trustedProxies` (default: loopback). A
 * client that reaches the port directly can neither pick the address the throttle and the logs see
 * nor the scheme and host.
 */
describe(`forwarded headers only from trusted proxies (${testDatabaseKind})`, () => {
  let server: TestServer;
  let harness: LeakHarness;
  let clientId: string;

  before(async () => {
    harness = createLeakHarness();
    // The test client is on loopback, which is NOT a trusted proxy here.
    server = await startServer(
      {
        trustProxy: true,
        trustedProxies: ['10.0.0.0/8', 'fd00::/8'],
        login: { maxFailuresPerAddress: 3 },
      },
      { harness },
    );
    clientId = (await seedApp(server)).clientId;
  });
  after(async () => server.close());

  async function guess(username: string, forwardedFor: string): Promise<number> {
    const page = await openLoginPage(server, clientId);
    const response = await submitLogin(page, username, 'wrong', {
      headers: { 'x-forwarded-for': forwardedFor },
    });
    return response.status;
  }

  it('counts every guess of a direct client against its own address, whatever X-Forwarded-For says', async () => {
    for (let i = 1; i <= 3; i += 1) assert.equal(await guess(`someone-${i}`, `198.51.100.${i}`), 401);
    assert.equal(await guess('someone-4', '198.51.100.4'), 429, 'rotating X-Forwarded-For gains nothing');
    const rows = await server.app.database.db.selectFrom('login_failure').select('address').execute();
    assert.deepEqual(new Set(rows.map((row) => row.address)), new Set(['127.0.0.1']));
    const addresses = harness.logLines
      .map((line) => JSON.parse(line) as { msg?: string; req?: { remoteAddress?: string } })
      .filter((line) => line.msg === 'request completed')
      .map((line) => line.req?.remoteAddress);
    assert.ok(addresses.length > 0);
    assert.ok(
      addresses.every((address) => address === '127.0.0.1'),
      'the access log shows the real peer',
    );
  });

  it('ignores X-Forwarded-Host and X-Forwarded-Proto from a direct client', async () => {
    const response = await fetch(`${server.origin}/o/.well-known/openid-configuration`, {
      headers: { 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' },
    });
    assert.equal(response.status, 200);
    const text = await response.text();
    assert.doesNotMatch(text, /evil\.example|https:\/\//);
  });

  it('refuses a trustedProxies entry that is no address or range, naming it', () => {
    assert.throws(
      () =>
        loadConfig({
          env: { AA_OIDC_TRUSTED_PROXIES: '10.0.0.0/8, proxy.internal' },
          cwd: server.database.dataDir,
        }),
      (error: unknown) =>
        error instanceof ConfigError &&
        /AA_OIDC_TRUSTED_PROXIES/.test(error.message) &&
        /"proxy\.internal" is not an IP address or CIDR range/.test(error.message),
    );
    const config = loadConfig({
      env: { AA_OIDC_TRUSTED_PROXIES: '10.1.2.3, fd00::/8' },
      cwd: server.database.dataDir,
    });
    assert.deepEqual(config.trustedProxies, ['10.1.2.3', 'fd00::/8']);
    assert.deepEqual(
      loadConfig({ env: {}, cwd: server.database.dataDir }).trustedProxies,
      ['127.0.0.0/8', '::1/128'],
      'loopback only by default',
    );
  });
});
