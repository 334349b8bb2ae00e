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
/** A wrong password for `username` from a client the proxy says is `forwardedFor`; the status. */
async function wrongPassword(
  server: TestServer,
  clientId: string,
  username: string,
  forwardedFor: string,
): Promise<number> {
  const page = await openLoginPage(server, clientId);
  const response = await submitLogin(page, username, 'wrong', {
    headers: { 'x-forwarded-for': forwardedFor },
  });
  return response.status;
}

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

  const guess = (username: string, forwardedFor: string) =>
    wrongPassword(server, clientId, username, forwardedFor);

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

  it('reads the number of proxy hops from AA_OIDC_TRUSTED_PROXY_HOPS, one by default, and refuses none', () => {
    const cwd = server.database.dataDir;
    assert.equal(loadConfig({ env: { AA_OIDC_TRUSTED_PROXY_HOPS: '2' }, cwd }).trustedProxyHops, 2);
    assert.equal(loadConfig({ env: {}, cwd }).trustedProxyHops, 1);
    assert.throws(
      () => loadConfig({ env: { AA_OIDC_TRUSTED_PROXY_HOPS: '0' }, cwd }),
      (error: unknown) => error instanceof ConfigError && /AA_OIDC_TRUSTED_PROXY_HOPS/.test(error.message),
      'zero hops would read the address from the left, where the client writes',
    );
  });
});

/**
 * Behind trusted proxies (the test client on loopback is the proxy here), the client address is the
 * entry `trustedProxyHops` from the right of X-Forwarded-For: the one the outermost trusted proxy
 * appended. Entries further left are whatever the client wrote, and choose nothing.
 */
for (const hops of [1, 2] as const) {
  describe(`the client address behind ${hops} trusted prox${hops === 1 ? 'y' : 'ies'} (${testDatabaseKind})`, () => {
    let server: TestServer;
    let harness: LeakHarness;
    let clientId: string;
    // What the trusted proxies append after the client's own header: with two, the inner one adds the
    // outer one's address, the same for every client.
    const appended = (client: string) => (hops === 1 ? client : `${client}, 10.0.0.2`);

    before(async () => {
      harness = createLeakHarness();
      server = await startServer(
        { trustProxy: true, trustedProxyHops: hops, login: { maxFailuresPerAddress: 3 } },
        { harness },
      );
      clientId = (await seedApp(server)).clientId;
    });
    after(async () => server.close());

    const guess = (username: string, forwardedFor: string) =>
      wrongPassword(server, clientId, username, forwardedFor);

    it(`throttles the address ${hops === 1 ? 'the proxy appended' : 'second from the right'}, whatever the client forges to its left`, async () => {
      for (let i = 1; i <= 3; i += 1)
        assert.equal(await guess(`someone-${i}`, `198.51.100.${i}, ${appended('203.0.113.7')}`), 401);
      assert.equal(
        await guess('someone-4', `198.51.100.4, ${appended('203.0.113.7')}`),
        429,
        'a new forged entry on the left does not escape the budget of the address the proxy saw',
      );
      assert.equal(
        await guess('someone-5', `203.0.113.7, ${appended('203.0.113.8')}`),
        401,
        'another client behind the proxy is not locked out, though it names the locked address on the left',
      );
      const rows = await server.app.database.db.selectFrom('login_failure').select('address').execute();
      assert.deepEqual(rows.map((row) => row.address).sort(), [
        '203.0.113.7',
        '203.0.113.7',
        '203.0.113.7',
        '203.0.113.8',
      ]);
      const logged = harness.logLines
        .map(
          (line) => JSON.parse(line) as { msg?: string; req?: { method?: string; remoteAddress?: string } },
        )
        .filter((line) => line.msg === 'request completed' && line.req?.method === 'POST')
        .map((line) => line.req?.remoteAddress);
      assert.deepEqual(
        logged,
        ['203.0.113.7', '203.0.113.7', '203.0.113.7', '203.0.113.7', '203.0.113.8'],
        'the access log names the client the proxy saw',
      );
    });
  });
}
