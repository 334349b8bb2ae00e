import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { consoleSignIn } from '../helpers/console.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { createLeakHarness, type LeakHarness } from '../helpers/leak-harness.ts';
import {
  authorizeUrl,
  Browser,
  formAction,
  formField,
  pkcePair,
  REDIRECT_URI,
  seedApp,
  seedUser,
  PASSWORD,
  startServer,
  type TestServer,
} from '../helpers/server.ts';
import { cookieHeader, type RawResponse, rawRequest } from './raw-request.ts';

/** Limits of the form bodies: authorize and logout as the provider's own, interaction forms 16 KiB. */
const FRONT_CHANNEL_LIMIT = 56 * 1024;
const INTERACTION_LIMIT = 16 * 1024;

/** A form body `excess` bytes longer than `limit`. */
const overLimit = (limit: number, fields: Record<string, string> = {}, excess = 1): string => {
  const head = new URLSearchParams(fields).toString();
  const prefix = `${head}${head ? '&' : ''}padding=`;
  return prefix + 'x'.repeat(limit - prefix.length + excess);
};

/**
 * A body over the limit is a 413 with `Connection: close` (an HTML page on browser routes, JSON on
 * the others), never a 500; and every request, this one too, gets its access-log line.
 */
describe(`request bodies over the limit (${testDatabaseKind})`, () => {
  let server: TestServer;
  let harness: LeakHarness;
  let clientId: string;
  let user: { id: number; username: string };

  before(async () => {
    harness = createLeakHarness();
    server = await startServer({}, { harness });
    clientId = (await seedApp(server)).clientId;
    user = await seedUser(server);
  });
  after(async () => server.close());

  const authorize = () =>
    authorizeUrl(server, {
      client_id: clientId,
      redirect_uri: REDIRECT_URI,
      response_type: 'code',
      scope: 'openid',
      code_challenge: pkcePair().challenge,
      code_challenge_method: 'S256',
    });

  const accessLines = (path: string) =>
    harness.logLines
      .map((line) => JSON.parse(line) as { msg?: string; req?: { url?: string }; res?: { status?: number } })
      .filter((line) => line.msg === 'request completed' && line.req?.url?.startsWith(path));

  function assertTooLarge(response: RawResponse, kind: 'html' | 'json', what: string): void {
    assert.equal(response.status, 413, what);
    assert.equal(response.headers.connection, 'close', what);
    if (kind === 'html') assert.match(String(response.headers['content-type']), /^text\/html/, what);
    else {
      assert.match(String(response.headers['content-type']), /^application\/json/, what);
      assert.equal((JSON.parse(response.body) as { error: string }).error, 'invalid_request', what);
    }
    assert.doesNotMatch(response.body, /at \w+ \(|node_modules|TypeError/, `${what}: no stack trace`);
  }

  it('answers 413 on authorize and logout form posts just over the limit', async () => {
    for (const path of ['/o/authorize/', '/o/logout/']) {
      const before = accessLines(path).length;
      const response = await rawRequest(`${server.origin}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: overLimit(FRONT_CHANNEL_LIMIT, { client_id: clientId }),
      });
      assertTooLarge(response, 'html', path);
      const lines = accessLines(path).slice(before);
      assert.equal(lines.length, 1, `one access line for ${path}`);
      assert.equal(lines[0]?.res?.status, 413);
    }
  });

  it('answers 413 on the login and consent forms just over the limit', async () => {
    const browser = new Browser();
    const page = await browser.follow(authorize(), server.origin);
    const loginPage = await page.text();
    const login = new URL(formAction(loginPage, server.origin));
    const before = accessLines(login.pathname).length;
    const response = await rawRequest(login.href, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: overLimit(INTERACTION_LIMIT, {
        csrf_token: formField(loginPage, 'csrf_token'),
        username: user.username,
      }),
      browser,
    });
    assertTooLarge(response, 'html', 'login');
    assert.equal(accessLines(login.pathname).length - before, 1);

    const consentBrowser = new Browser();
    const again = await consentBrowser.follow(authorize(), server.origin);
    const loginAgain = await again.text();
    const consent = await consentBrowser.follow(formAction(loginAgain, server.origin), server.origin, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        csrf_token: formField(loginAgain, 'csrf_token'),
        username: user.username,
        password: PASSWORD,
      }).toString(),
    });
    const consentPage = await consent.text();
    assert.match(consentPage, /name="decision"/);
    const tooLarge = await rawRequest(formAction(consentPage, server.origin), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: overLimit(INTERACTION_LIMIT, {
        csrf_token: formField(consentPage, 'csrf_token'),
        decision: 'allow',
      }),
      browser: consentBrowser,
    });
    assertTooLarge(tooLarge, 'html', 'consent');
  });

  it('answers 413 in JSON on the token endpoint', async () => {
    const response = await rawRequest(`${server.issuer}/token/`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: overLimit(FRONT_CHANNEL_LIMIT, { grant_type: 'client_credentials' }),
    });
    assertTooLarge(response, 'json', 'token');
  });

  /** A POST whose body is sent in chunks, without a Content-Length: its size is known only once read. */
  function chunkedRequest(path: string, body: string): Promise<RawResponse> {
    const url = new URL(`${server.origin}${path}`);
    return new Promise((resolve, reject) => {
      const request = http.request(
        {
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: 'POST',
          agent: false,
          headers: { 'content-type': 'application/x-www-form-urlencoded', 'transfer-encoding': 'chunked' },
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () =>
            resolve({
              status: response.statusCode ?? 0,
              headers: response.headers,
              body: Buffer.concat(chunks).toString('utf8'),
            }),
          );
        },
      );
      // The server may answer and close before the last chunk: what matters is its answer.
      request.on('error', () => {});
      request.on('close', () => reject(new Error(`no answer to the chunked POST ${path}`)));
      const half = Math.floor(body.length / 2);
      request.write(body.slice(0, half));
      request.end(body.slice(half));
    });
  }

  it('answers 413 to a chunked body over the limit on the token, introspection, revocation, userinfo and logout confirmation endpoints', async () => {
    const routes: Array<[string, 'html' | 'json']> = [
      ['/o/token/', 'json'],
      ['/o/introspect/', 'json'],
      ['/o/revoke_token/', 'json'],
      ['/o/userinfo/', 'json'],
      ['/o/logout/confirm', 'html'],
    ];
    for (const [path, kind] of routes) {
      const before = accessLines(path).length;
      const response = await chunkedRequest(path, overLimit(FRONT_CHANNEL_LIMIT, { token: 'x' }));
      assertTooLarge(response, kind, `chunked ${path}`);
      const lines = accessLines(path).slice(before);
      assert.equal(lines[0]?.res?.status, 413, `access line of chunked ${path}`);
    }
    // At the limit it is read and answered as the endpoint answers any form.
    const atLimit = await chunkedRequest(
      '/o/token/',
      overLimit(FRONT_CHANNEL_LIMIT, { grant_type: 'client_credentials' }, 0),
    );
    assert.equal(atLimit.status, 400);
    assert.notEqual((JSON.parse(atLimit.body) as { error: string }).error, undefined);
  });

  it('answers 413 with Connection: close on the account and admin forms, a declared length before reading it', async () => {
    const admin = await seedUser(server, { superuser: true });
    const browser = await consoleSignIn(server, admin.username);
    const limit = 64 * 1024;
    for (const path of ['/account/password', '/admin/states']) {
      const response = await rawRequest(`${server.origin}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin: server.origin },
        body: overLimit(limit, { csrf_token: 'x' }),
        browser,
      });
      assertTooLarge(response, 'html', path);
    }
    // 10 MB announced, 1 KiB sent: the answer comes without the rest, and the connection closes.
    const url = new URL(`${server.origin}/account/password`);
    const answer = await new Promise<{ status: number; connection: string | undefined }>(
      (resolve, reject) => {
        const request = http.request(
          {
            host: url.hostname,
            port: url.port,
            path: url.pathname,
            method: 'POST',
            agent: false,
            headers: {
              'content-type': 'application/x-www-form-urlencoded',
              'content-length': String(10_000_000),
              cookie: cookieHeader(browser, url),
              origin: server.origin,
            },
          },
          (response) => {
            response.resume();
            resolve({ status: response.statusCode ?? 0, connection: response.headers.connection });
            request.destroy();
          },
        );
        request.on('error', reject);
        request.write('a'.repeat(1024));
      },
    );
    assert.deepEqual(answer, { status: 413, connection: 'close' });
  });

  it('still serves forms at the limit', async () => {
    const response = await rawRequest(`${server.origin}/o/authorize/`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: overLimit(FRONT_CHANNEL_LIMIT, { client_id: clientId }, 0),
    });
    assert.notEqual(response.status, 413);
    assert.ok(response.status < 500, `status ${response.status}`);
  });
});
