import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { testDatabaseKind } from '../helpers/database.ts';
import {
  authorizeUrl,
  Browser,
  formAction,
  formField,
  PASSWORD,
  pkcePair,
  REDIRECT_URI,
  seedApp,
  seedUser,
  signIn,
  startServer,
  type TestServer,
} from '../helpers/server.ts';
import { rawRequest } from './raw-request.ts';

const escaped = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A foreign host as a client names it directly, and as a (trusted) proxy forwards it. */
const FOREIGN_HOSTS: Array<Record<string, string>> = [
  { host: 'evil.example' },
  { 'x-forwarded-host': 'evil.example' },
];

const MALFORMED_HOSTS = ['bad host', 'evil.example/path', '[::1', 'user@evil.example', 'a\\b'];

/**
 * Every URL the provider builds (forms, redirects, the logout question) comes from the configured
 * issuer, never from the request's Host or X-Forwarded-Host: a malformed Host is a 400, and a
 * production server refuses a request for any other host.
 */
describe(`URLs pinned to the issuer (development, ${testDatabaseKind})`, () => {
  let server: TestServer;
  let clientId: string;
  let user: { id: number; username: string };
  let issuerHost: string;

  before(async () => {
    // A loopback reverse proxy is trusted: X-Forwarded-Host is believed, and must still not leak.
    server = await startServer({ trustProxy: true });
    clientId = (await seedApp(server)).clientId;
    user = await seedUser(server);
    issuerHost = new URL(server.issuer).host;
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

  it('answers 400, not 500, to a malformed Host on discovery, logout and authorize', async () => {
    for (const host of MALFORMED_HOSTS) {
      for (const path of ['/o/.well-known/openid-configuration', '/o/logout/', '/o/authorize/']) {
        const response = await rawRequest(`${server.origin}${path}`, { headers: { host } });
        assert.equal(response.status, 400, `${path} with Host ${JSON.stringify(host)}`);
        assert.doesNotMatch(response.body, /evil\.example/);
      }
    }
  });

  it('answers 400, not 500, to an absolute-form request target that cannot be read, and serves one that can', async () => {
    for (const target of [
      'http://[::1',
      'http://[::1/o/token/',
      'http://',
      'https://',
      'http://127.0.0.1:port/',
      // No authority: the WHATWG parser would take `o` for the host while the path kept `/o/…`.
      'http:///o/.well-known/openid-configuration',
      'https:///o/token/',
      // Koa reads these, but the provider cannot build its URLs on them: only http(s) is served.
      `ws://${issuerHost}/o/logout/`,
      'foo://x/o/.well-known/openid-configuration',
    ]) {
      for (const method of ['GET', 'POST']) {
        const response = await rawRequest(`${server.origin}/`, { method, target });
        assert.equal(response.status, 400, `${method} ${target}`);
        assert.deepEqual(JSON.parse(response.body), {
          error: 'invalid_request',
          error_description:
            'The request target is malformed: send a path such as /o/token/, or an absolute http(s) URL.',
        });
      }
    }
    // A proxy's absolute form is served as the origin form would be.
    const discovery = await rawRequest(`${server.origin}/`, {
      target: `http://${issuerHost}/o/.well-known/openid-configuration`,
    });
    assert.equal(discovery.status, 200);
    assert.equal((JSON.parse(discovery.body) as { issuer: string }).issuer, server.issuer);
  });

  it('keeps the host an absolute-form request target names out of the URLs it builds', async () => {
    const browser = new Browser();
    const signedIn = await signIn(browser, server, authorize(), { username: user.username });
    assert.equal(signedIn.status, 303);
    // The target's authority is the request's host (RFC 9112 §3.2.2), whatever Host says.
    for (const headers of [{}, ...FOREIGN_HOSTS] as Array<Record<string, string>>) {
      const page = await rawRequest(`${server.origin}/`, {
        target: 'http://evil.example/o/logout/',
        headers,
        browser,
      });
      assert.equal(page.status, 200, JSON.stringify(headers));
      assert.doesNotMatch(page.body, /evil\.example/);
      assert.match(page.body, new RegExp(`action="http://${escaped(issuerHost)}/o/logout/confirm`));
    }
    const authorizeTarget = new URL(authorize());
    const started = await rawRequest(`${server.origin}/`, {
      target: `http://evil.example${authorizeTarget.pathname}${authorizeTarget.search}`,
    });
    assert.equal(started.status, 303);
    assert.doesNotMatch(started.headers.location ?? '', /evil\.example/);
  });

  it('keeps a foreign Host out of the logout form and question', async () => {
    const browser = new Browser();
    const signedIn = await signIn(browser, server, authorize(), { username: user.username });
    assert.equal(signedIn.status, 303);
    for (const headers of FOREIGN_HOSTS) {
      const page = await rawRequest(`${server.origin}/o/logout/`, { headers, browser });
      assert.equal(page.status, 200);
      assert.doesNotMatch(page.body, /evil\.example/);
      assert.match(page.body, new RegExp(`action="http://${escaped(issuerHost)}/o/logout/confirm`));
      assert.match(page.body, /sign out of\s*<strong>aa-oidc<\/strong/, 'the question names the community');
    }
  });

  it("builds the issuer's own scheme into its URLs, whatever scheme the trusted proxy forwards", async () => {
    const browser = new Browser();
    const signedIn = await signIn(browser, server, authorize(), { username: user.username });
    assert.equal(signedIn.status, 303);
    const headers = { 'x-forwarded-proto': 'https' };
    const page = await rawRequest(`${server.origin}/o/logout/`, { headers, browser });
    assert.equal(page.status, 200);
    assert.match(page.body, new RegExp(`action="http://${escaped(issuerHost)}/o/logout/confirm`));
    const started = await rawRequest(authorize(), { headers, browser: new Browser() });
    assert.equal(started.status, 303);
    assert.ok(
      new URL(started.headers.location!, server.origin).href.startsWith(`http://${issuerHost}/o/`),
      `authorize redirects to ${started.headers.location}`,
    );
  });

  it('redirects after login and consent to the issuer, whatever Host the authorization came with', async () => {
    for (const headers of FOREIGN_HOSTS) {
      const browser = new Browser();
      const started = await rawRequest(authorize(), { headers, browser, keepCookies: true });
      assert.equal(started.status, 303);
      assert.doesNotMatch(started.headers.location ?? '', /evil\.example/);
      const interaction = new URL(started.headers.location!, server.origin);
      const login = await browser.fetch(`${server.origin}${interaction.pathname}${interaction.search}`);
      const loginPage = await login.text();
      const afterLogin = await browser.fetch(formAction(loginPage, server.origin), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          csrf_token: formField(loginPage, 'csrf_token'),
          username: user.username,
          password: PASSWORD,
        }).toString(),
      });
      assert.equal(afterLogin.status, 303);
      const resume = afterLogin.headers.get('location')!;
      assert.ok(resume.startsWith(`${server.issuer}/`), `login redirects to ${resume}`);
      const consent = await browser.follow(resume, server.origin);
      const consentPage = await consent.text();
      assert.match(consentPage, /name="decision"/);
      const afterConsent = await browser.fetch(formAction(consentPage, server.origin), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          csrf_token: formField(consentPage, 'csrf_token'),
          decision: 'allow',
        }).toString(),
      });
      assert.equal(afterConsent.status, 303);
      const resumed = afterConsent.headers.get('location')!;
      assert.ok(resumed.startsWith(`${server.issuer}/`), `consent redirects to ${resumed}`);
    }
  });
});

describe(`a production server answers only for the issuer's host (${testDatabaseKind})`, () => {
  let server: TestServer;
  const issuer = 'https://auth.example.test/o';
  const proxied = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'auth.example.test' };

  before(async () => {
    server = await startServer({
      mode: 'production',
      issuer,
      secretKey: 'a production secret key of at least 32 chars',
      trustProxy: true,
    });
  });
  after(async () => server.close());

  it('serves the issuer host through the proxy, with its URLs', async () => {
    const response = await fetch(`${server.origin}/o/.well-known/openid-configuration`, { headers: proxied });
    assert.equal(response.status, 200);
    const body = (await response.json()) as { issuer: string; authorization_endpoint: string };
    assert.equal(body.issuer, issuer);
    assert.equal(body.authorization_endpoint, `${issuer}/authorize/`);
  });

  it('refuses (400) an absolute-form request target that names a foreign host', async () => {
    const cases: Array<Record<string, string>> = [
      { 'x-forwarded-proto': 'https' },
      { 'x-forwarded-proto': 'https', host: 'auth.example.test' },
    ];
    for (const headers of cases) {
      for (const path of ['/o/.well-known/openid-configuration', '/o/logout/', '/o/authorize/']) {
        const response = await rawRequest(`${server.origin}/`, {
          headers,
          target: `https://evil.example${path}`,
        });
        assert.equal(response.status, 400, `${path} with ${JSON.stringify(headers)}`);
        assert.doesNotMatch(response.body, /evil\.example/);
      }
    }
    const served = await rawRequest(`${server.origin}/`, {
      headers: { 'x-forwarded-proto': 'https', host: 'evil.example' },
      target: 'https://auth.example.test/o/.well-known/openid-configuration',
    });
    assert.equal(served.status, 200);
    assert.equal((JSON.parse(served.body) as { issuer: string }).issuer, issuer);
  });

  it('refuses (400) a foreign Host or X-Forwarded-Host, and plain http', async () => {
    const cases: Array<Record<string, string>> = [
      { ...proxied, 'x-forwarded-host': 'evil.example' },
      { 'x-forwarded-proto': 'https', host: 'evil.example' },
      { 'x-forwarded-proto': 'https' },
      { 'x-forwarded-host': 'auth.example.test' },
    ];
    for (const headers of cases) {
      for (const path of ['/o/.well-known/openid-configuration', '/o/logout/', '/o/authorize/']) {
        const response = await rawRequest(`${server.origin}${path}`, { headers });
        assert.equal(response.status, 400, `${path} with ${JSON.stringify(headers)}`);
        assert.doesNotMatch(response.body, /evil\.example/);
      }
    }
    const health = await rawRequest(`${server.origin}/healthz`, { headers: { host: '10.1.2.3:8000' } });
    assert.equal(health.status, 200, 'load-balancer probes by address still get an answer');
  });
});
