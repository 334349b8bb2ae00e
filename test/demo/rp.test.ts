import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { demoClientFilePath } from '../../src/demo/client-file.ts';
import { seedDemo, type DemoSeedResult } from '../../src/demo/seed.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { Browser, signIn, startServer, type TestServer } from '../helpers/server.ts';
import { rawRequest } from '../http/raw-request.ts';

function passwordOf(seeded: DemoSeedResult, username: string): string {
  const password = seeded.users.find((user) => user.username === username)?.password;
  assert.ok(password);
  return password;
}

/** Remembers every URL it fetched (the callback URL, for a replay). */
class RecordingBrowser extends Browser {
  readonly visited: string[] = [];
  override async fetch(url: string, init: RequestInit = {}): Promise<Response> {
    this.visited.push(url);
    return super.fetch(url, init);
  }
}

describe(`demo relying party at /demo/ (${testDatabaseKind})`, () => {
  let server: TestServer;

  before(async () => {
    server = await startServer();
  });
  after(async () => server.close());

  const demo = (path = '') => `${server.origin}/demo/${path}`;

  it('answers 404 with what to run until the demo is seeded', async () => {
    const response = await fetch(demo());
    assert.equal(response.status, 404);
    assert.match(await response.text(), /npx aa-oidc demo/);
    const bare = await fetch(`${server.origin}/demo`, { redirect: 'manual' });
    assert.equal(bare.status, 301);
    assert.equal(bare.headers.get('location'), '/demo/');
  });

  it('signs in with code + PKCE, validates the id_token and shows id_token and userinfo claims', async () => {
    const seeded = await seedDemo(server.app);
    const browser = new RecordingBrowser();
    const start = await browser.fetch(demo());
    assert.equal(start.status, 302);
    const authorize = new URL(start.headers.get('location')!);
    assert.equal(`${authorize.origin}${authorize.pathname}`, `${server.issuer}/authorize/`);
    assert.equal(authorize.searchParams.get('client_id'), 'aa-oidc-demo');
    assert.equal(authorize.searchParams.get('redirect_uri'), `${server.origin}/demo/callback`);
    assert.equal(authorize.searchParams.get('code_challenge_method'), 'S256');
    assert.ok(authorize.searchParams.get('state') && authorize.searchParams.get('nonce'));
    const flowCookie = browser.setCookieLines.find((line) => line.startsWith('aa_oidc_demo_flow='));
    assert.ok(flowCookie);
    assert.match(flowCookie, /; path=\/demo\//);
    assert.match(flowCookie, /; httponly/i);
    assert.match(flowCookie, /; samesite=lax/i);
    assert.ok(
      browser.setCookieLines.some((line) => line.startsWith('aa_oidc_demo_flow.sig=')),
      'signed',
    );

    const page = await signIn(browser, server, authorize.href, {
      username: 'demo-member',
      password: passwordOf(seeded, 'demo-member'),
    });
    const body = await page.text();
    assert.equal(page.status, 200, body);
    assert.equal(page.headers.get('cache-control'), 'no-store');
    assert.equal(page.headers.get('x-frame-options'), 'DENY');
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'/);
    const user = await server.app.directoryAdmin.findUserByUsername('demo-member');
    assert.match(body, /<h1>Signed in as Kaelen Voss<\/h1>/);
    const idTokenPart = body.slice(
      body.indexOf('id="id-token-claims"'),
      body.indexOf('id="userinfo-claims"'),
    );
    const userinfoPart = body.slice(body.indexOf('id="userinfo-claims"'));
    assert.match(idTokenPart, new RegExp(`<th scope="row">sub</th>\\s*<td><code>${user!.id}</code>`));
    assert.match(idTokenPart, /<th scope="row">aud<\/th>\s*<td><code>aa-oidc-demo<\/code>/);
    assert.doesNotMatch(idTokenPart, /<th scope="row">email<\/th>/, 'scope claims come from userinfo');
    assert.match(userinfoPart, /<th scope="row">email<\/th>\s*<td><code>demo-member@example.org<\/code>/);
    assert.match(userinfoPart, /<th scope="row">name<\/th>\s*<td><code>Kaelen Voss<\/code>/);
    assert.match(userinfoPart, /&quot;Fleet Commanders&quot;,\s*&quot;Member&quot;/);
    assert.match(body, /Refresh token issued:\s*yes/);

    // The flow cookie was used up: the same answer (code, state, iss) again is refused.
    const callback = browser.visited.find((url) => url.startsWith(`${server.origin}/demo/callback?`));
    assert.ok(callback);
    const replay = await browser.fetch(callback);
    assert.equal(replay.status, 400);
    assert.match(await replay.text(), /No sign-in in progress/);
  });

  it("moves a browser that opened the demo under another host name to the issuer's host first", async () => {
    await seedDemo(server.app);
    const { port } = new URL(server.origin);
    const answer = await new Promise<{ status: number; location: string | undefined }>((resolve, reject) => {
      const request = httpRequest(
        { host: '127.0.0.1', port, path: '/demo/', headers: { host: `localhost:${port}` } },
        (response) => {
          response.resume();
          resolve({ status: response.statusCode ?? 0, location: response.headers.location });
        },
      );
      request.on('error', reject);
      request.end();
    });
    assert.equal(answer.status, 302);
    assert.equal(answer.location, `${server.origin}/demo/?moved=1`);
    // Once moved, the flow starts (no loop even if the host still differs, e.g. behind a proxy).
    const moved = await fetch(`${server.origin}/demo/?moved=1`, { redirect: 'manual' });
    assert.equal(moved.status, 302);
    assert.match(moved.headers.get('location') ?? '', /\/o\/authorize\//);
  });

  it('refuses an answer whose state is not the one this browser started, or without the flow cookie', async () => {
    const browser = new Browser();
    const start = await browser.fetch(demo());
    assert.equal(start.status, 302);
    const query = new URLSearchParams({ code: 'x', state: 'not-the-state', iss: server.issuer });
    const mismatch = await browser.fetch(demo(`callback?${query.toString()}`));
    assert.equal(mismatch.status, 400);
    assert.match(await mismatch.text(), /State mismatch/);

    const stranger = await fetch(demo(`callback?${query.toString()}`));
    assert.equal(stranger.status, 400);
    assert.match(await stranger.text(), /No sign-in in progress/);

    // A cookie changed by hand fails its signature.
    const forged = new Browser();
    await forged.fetch(demo());
    const key = [...forged.cookies.keys()].find((name) => name.endsWith('|aa_oidc_demo_flow'))!;
    const flow = JSON.parse(Buffer.from(forged.cookies.get(key)!, 'base64url').toString()) as {
      state: string;
    };
    forged.cookies.set(key, Buffer.from(JSON.stringify({ ...flow, state: 'chosen' })).toString('base64url'));
    const tampered = await forged.fetch(
      demo(`callback?${new URLSearchParams({ code: 'x', state: 'chosen', iss: server.issuer }).toString()}`),
    );
    assert.equal(tampered.status, 400);
    assert.match(await tampered.text(), /No sign-in in progress/);
  });

  it('refuses HEAD on the start and the callback, whose GETs start a flow and redeem its code', async () => {
    const seeded = await seedDemo(server.app, { resetPasswords: true });
    const stranger = await rawRequest(demo(), { method: 'HEAD' });
    assert.equal(stranger.status, 405);
    assert.equal(stranger.headers.allow, 'GET');
    assert.equal(stranger.headers['set-cookie'], undefined, 'no flow started');
    assert.equal(stranger.body, '');
    // HEAD stays answered where the GET changes nothing.
    const bare = await rawRequest(`${server.origin}/demo`, { method: 'HEAD' });
    assert.equal(bare.status, 301);
    const other = await rawRequest(demo('elsewhere'), { method: 'HEAD' });
    assert.equal(other.status, 404);

    // Signed in at the provider with consent given, a flow comes straight back to the callback.
    const browser = new Browser();
    const first = await browser.fetch(demo());
    const signedIn = await signIn(browser, server, first.headers.get('location')!, {
      username: 'demo-member',
      password: passwordOf(seeded, 'demo-member'),
    });
    assert.equal(signedIn.status, 200, await signedIn.text());
    let url = demo();
    for (let hop = 0; hop < 6 && !url.startsWith(demo('callback')); hop += 1) {
      const response = await browser.fetch(url);
      assert.ok(response.status >= 300 && response.status < 400, `a redirect from ${url}`);
      url = new URL(response.headers.get('location')!, url).href;
    }
    assert.ok(url.startsWith(`${demo('callback')}?`), url);
    const cookies = new Map(browser.cookies);
    for (const target of [demo(), url]) {
      const head = await rawRequest(target, { method: 'HEAD', browser, keepCookies: true });
      assert.equal(head.status, 405, `HEAD ${target}`);
      assert.equal(head.headers.allow, 'GET', `HEAD ${target}`);
      assert.equal(head.headers['set-cookie'], undefined, `HEAD ${target}`);
    }
    assert.deepEqual(browser.cookies, cookies, 'the flow under way is kept');
    const page = await browser.fetch(url);
    assert.equal(page.status, 200, 'the code is still there to redeem');
    assert.match(await page.text(), /<h1>Signed in as /);
  });

  it('shows the provider’s access_denied when the person denies consent', async () => {
    const seeded = await seedDemo(server.app, { resetPasswords: true });
    const browser = new Browser();
    const start = await browser.fetch(demo());
    const page = await signIn(browser, server, start.headers.get('location')!, {
      username: 'demo-blue',
      password: passwordOf(seeded, 'demo-blue'),
      consent: 'deny',
    });
    assert.equal(page.status, 403);
    assert.match(await page.text(), /<code>access_denied<\/code>/);
  });

  it('escapes claim values in the page', async () => {
    await seedDemo(server.app);
    await server.app.directoryAdmin.createUser({
      username: 'demo-xss',
      password: 'a long enough password',
      email: 'xss@example.org',
      state: 'Member',
      characterId: 95000001,
      characterName: '<script>alert(1)</script>',
    });
    const browser = new Browser();
    const start = await browser.fetch(demo());
    const page = await signIn(browser, server, start.headers.get('location')!, {
      username: 'demo-xss',
      password: 'a long enough password',
    });
    const body = await page.text();
    assert.equal(page.status, 200, body);
    assert.ok(!body.includes('<script>'));
    assert.match(body, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
  });

  it('explains a deactivated app, a rotated secret and a missing secret file instead of starting a flow', async () => {
    await seedDemo(server.app);
    await server.app.applications.deactivate('aa-oidc-demo', 'test');
    const inactive = await fetch(demo(), { redirect: 'manual' });
    assert.equal(inactive.status, 409);
    assert.match(await inactive.text(), /app activate aa-oidc-demo/);
    await server.app.applications.activate('aa-oidc-demo', 'test');

    await server.app.applications.rotateSecret('aa-oidc-demo', 'test');
    const rotated = await fetch(demo(), { redirect: 'manual' });
    assert.equal(rotated.status, 409);
    assert.match(await rotated.text(), /secret has changed/);

    rmSync(demoClientFilePath(server.app.config.dataDir));
    const missing = await fetch(demo(), { redirect: 'manual' });
    assert.equal(missing.status, 404);

    const healed = await seedDemo(server.app);
    assert.deepEqual(healed.application.changes, ['secret_rotated']);
    assert.equal((await fetch(demo(), { redirect: 'manual' })).status, 302);
  });
});

describe(`demo relying party in production mode (${testDatabaseKind})`, () => {
  it('is not served at all', async () => {
    const production = await startServer({
      mode: 'production',
      issuer: 'https://auth.example.org/o',
      secretKey: 's'.repeat(48),
      trustProxy: true,
    });
    try {
      // As the reverse proxy forwards a request for the issuer's host.
      const response = await fetch(`${production.origin}/demo/`, {
        redirect: 'manual',
        headers: { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'auth.example.org' },
      });
      assert.equal(response.status, 404);
      assert.doesNotMatch(await response.text(), /aa-oidc demo/);
    } finally {
      await production.close();
    }
  });
});
