import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { postgresAddress } from '../../src/db/errors.ts';
import { READINESS_REUSE_MS } from '../../src/http/health.ts';
import { createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';
import { createLeakHarness } from '../helpers/leak-harness.ts';
import { statementsDuring } from '../helpers/statements.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';
import { waitUntil } from '../helpers/wait.ts';
import { basicAuth, postForm, REDIRECT_URI, startServer, type TestServer } from '../helpers/server.ts';
import {
  type Client,
  codeFlow,
  type Pilot,
  seedClient,
  seedDirectory,
  seedPilot,
} from '../tokens/helpers.ts';

const skip =
  testDatabaseKind === 'postgres'
    ? false
    : 'needs PostgreSQL (set AA_OIDC_TEST_DATABASE_URL): the outage is played on its TCP connection path';

/** The community's look, which the "try again" page carries as every other page does. */
const BRANDING = {
  name: 'Goon <Fleet> & Co',
  logoUrl: 'https://static.example.org/goon-logo.png',
  accentColor: '#ffcc00',
  supportUrl: 'https://help.example.org/auth',
};

/** Every request of these tests must end; a hang fails it here instead of stalling the run. */
const ANSWER_WITHIN_MS = 30_000;

/**
 * A database lost while serving: requests answer 503 "try again" (a page for browsers, JSON
 * `temporarily_unavailable` for clients), `/readyz` answers 503, nothing hangs, and the service
 * recovers by itself once the database is back. The database sits behind a TCP proxy the test
 * cuts, silences and restores.
 */
describe(`a database lost while serving (${testDatabaseKind})`, { skip }, () => {
  const harness = createLeakHarness();
  let database: TestDatabase;
  let proxy: TcpProxy;
  let server: TestServer;
  let client: Client;
  let pilot: Pilot;

  before(async () => {
    database = await createTestDatabase();
    const { host, port } = postgresAddress(database.url);
    proxy = await startTcpProxy(host, Number(port));
    server = await startServer(
      { databaseUrl: proxy.wrap(database.url), databaseConnectTimeoutMs: 1000, branding: BRANDING },
      { database, harness },
    );
    await seedDirectory(server);
    pilot = await seedPilot(server, harness);
    client = await seedClient(server, harness);
  });
  after(async () => {
    await server?.close();
    await proxy?.close();
    await database?.drop();
  });

  const get = (path: string, headers: Record<string, string> = {}) =>
    fetch(`${server.origin}${path}`, { headers, signal: AbortSignal.timeout(ANSWER_WITHIN_MS) });
  const refresh = (refreshToken: string) =>
    postForm(
      `${server.issuer}/token/`,
      { grant_type: 'refresh_token', refresh_token: refreshToken },
      { authorization: basicAuth(client.clientId, client.clientSecret) },
    );
  const authorizePath = () =>
    `/o/authorize/?${new URLSearchParams({
      client_id: client.clientId,
      redirect_uri: REDIRECT_URI,
      response_type: 'code',
      scope: 'openid',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
      code_challenge_method: 'S256',
    })}`;

  async function assertUnavailable(): Promise<void> {
    // An answer of /readyz is reused for READINESS_REUSE_MS: the outage shows once that has passed.
    await delay(READINESS_REUSE_MS + 50);
    const ready = await get('/readyz');
    assert.equal(ready.status, 503);
    assert.equal(((await ready.json()) as { database: string }).database, 'unreachable');

    const info = await get('/o/userinfo/', { authorization: 'Bearer some-access-token-value' });
    assert.equal(info.status, 503);
    assert.equal(info.headers.get('retry-after'), '5');
    assert.deepEqual(await info.json(), {
      error: 'temporarily_unavailable',
      error_description: 'the service cannot reach its database right now; try again in a few seconds',
    });

    // The page, with the headers and the community's look of the server's pages, and the request id to
    // quote, wherever a browser meets the outage.
    for (const [path, headers] of [
      [authorizePath(), {}],
      ['/o/userinfo/', { authorization: 'Bearer some-access-token-value' }],
    ] as const) {
      const page = await get(path, { accept: 'text/html', ...headers });
      assert.equal(page.status, 503, path);
      assert.match(page.headers.get('content-type') ?? '', /text\/html/, path);
      assert.equal(page.headers.get('x-frame-options'), 'DENY', path);
      assert.match(page.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/, path);
      assert.equal(page.headers.get('x-content-type-options'), 'nosniff', path);
      assert.equal(page.headers.get('referrer-policy'), 'same-origin', path);
      const body = await page.text();
      assert.match(body, /Try again in a few seconds/, path);
      assert.ok(body.includes('<title>Temporarily unavailable · Goon &lt;Fleet&gt; &amp; Co</title>'), path);
      assert.match(body, /<header class="site">[\s\S]*<span\s*>Goon &lt;Fleet&gt; &amp; Co<\/span/, path);
      assert.match(body, /<img src="https:\/\/static\.example\.org\/goon-logo\.png" alt="" \/>/, path);
      assert.match(body, /--accent:#ffcc00;--accent-text:#000000/, path);
      assert.match(body, /<a href="https:\/\/help\.example\.org\/auth">Help and support<\/a>/, path);
      const requestId = page.headers.get('x-request-id');
      assert.ok(requestId, path);
      assert.ok(
        body.includes(`<code id="request-id">${requestId}</code>`),
        `${path}: the request id on the page`,
      );
    }
  }

  /** Waits (polling, generously) until the service answers again, then checks a real token path. */
  async function assertRecovered(refreshToken: string): Promise<string> {
    await waitUntil(async () => (await get('/readyz')).status === 200, '/readyz answers 200 again');
    const refreshed = await refresh(refreshToken);
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
    const info = await get('/o/userinfo/', {
      authorization: `Bearer ${String(refreshed.body.access_token)}`,
    });
    assert.equal(info.status, 200);
    return String(refreshed.body.refresh_token);
  }

  it('answers 503 "try again" while the database is down, and recovers by itself when it is back', async () => {
    const tokens = await codeFlow(server, harness, client, pilot, 'openid email offline_access');
    proxy.cut();
    await assertUnavailable();
    const refused = await refresh(tokens.refreshToken!);
    assert.equal(refused.status, 503);
    assert.equal(refused.body.error, 'temporarily_unavailable');

    proxy.restore();
    const next = await assertRecovered(tokens.refreshToken!);
    assert.notEqual(next, tokens.refreshToken);
  });

  it('answers 503 within the connect timeout while the database accepts connections but never answers', async () => {
    const tokens = await codeFlow(server, harness, client, pilot, 'openid email offline_access');
    proxy.silence();
    await assertUnavailable();
    proxy.restore();
    await assertRecovered(tokens.refreshToken!);
  });

  it('has the /readyz requests that come while a check waits on a slow database share that check', async () => {
    await delay(READINESS_REUSE_MS + 50);
    const { result: answers, texts } = await statementsDuring(async () => {
      proxy.hold();
      try {
        const flood = Promise.all(Array.from({ length: 25 }, () => get('/readyz')));
        // The requests arrive while the check waits; any later one finds its answer reused.
        await delay(500);
        proxy.release();
        return await flood;
      } finally {
        proxy.release();
      }
    });
    assert.deepEqual(
      answers.map((answer) => answer.status),
      answers.map(() => 200),
    );
    assert.equal(texts.filter((text) => text.trim() === 'select 1').length, 1, 'one check for 25 requests');
  });

  it('answers /readyz 503 when a pooled connection holds its check, instead of waiting for the query timeout', async () => {
    // A check now leaves a connection idle in the pool; the next check takes it, and its answer
    // never comes (a connection gone silent): the query timeout (60 s) is far beyond this test's
    // hang guard (ANSWER_WITHIN_MS), so only the check's own deadline can answer in time.
    await delay(READINESS_REUSE_MS + 50);
    assert.equal((await get('/readyz')).status, 200);
    await delay(READINESS_REUSE_MS + 50);
    proxy.hold();
    try {
      const held = await get('/readyz');
      assert.equal(held.status, 503);
      assert.deepEqual(await held.json(), { status: 'not_ready', database: 'unreachable' });
    } finally {
      proxy.release();
    }
    await waitUntil(async () => (await get('/readyz')).status === 200, '/readyz answers 200 again');
  });

  it('logs the outage naming the database, never a token', async () => {
    const lines = harness.logLines
      .map((line) => JSON.parse(line) as { msg: string; database?: string })
      .filter((line) => line.msg === 'the database is unavailable; answering 503 until it returns');
    assert.ok(lines.length > 0, 'the outage was logged');
    for (const line of lines)
      assert.match(String(line.database), /^PostgreSQL at 127\.0\.0\.1:\d+ \(database aa_oidc_t_\w+\)$/);
    await harness.assertNoLeaks();
  });
});
