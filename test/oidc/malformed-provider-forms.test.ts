import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { testDatabaseKind } from '../helpers/database.ts';
import {
  basicAuth,
  pkcePair,
  REDIRECT_URI,
  seedApp,
  startServer,
  type TestServer,
} from '../helpers/server.ts';
import { type RawResponse, rawRequest } from '../http/raw-request.ts';

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

/** A form body whose `field` is sent malformed: `%ff`, a raw 0xff byte, `%zz`. */
const MALFORMED: Array<[string, (field: string, rest: string) => Buffer]> = [
  ['%ff', (field, rest) => Buffer.from(`${rest}&${field}=%ff`)],
  ['raw 0xff', (field, rest) => Buffer.concat([Buffer.from(`${rest}&${field}=`), Buffer.from([0xff])])],
  ['%zz', (field, rest) => Buffer.from(`${rest}&${field}=%zz`)],
];

function assertNoStack(response: RawResponse, what: string): void {
  assert.ok(response.status < 500, `${what}: status ${response.status}`);
  assert.doesNotMatch(response.body, /at \w+ \(|node_modules|TypeError/, `${what}: no stack trace`);
}

function jsonError(response: RawResponse): string | undefined {
  return (JSON.parse(response.body) as { error?: string }).error;
}

/**
 * The provider's own POST routes and bodies that are not UTF-8 or carry malformed %-escapes. On
 * authorize and logout (read here) they are refused up front: read loosely, U+FFFD would be kept
 * with the request (nonce, state) and handed back. On the others (read by the provider, loosely)
 * nothing malformed is kept: the value is unknown, and refused with the endpoint's own error.
 */
describe(`malformed form bodies on the provider's routes (${testDatabaseKind})`, () => {
  let server: TestServer;
  let clientId: string;
  let secret: string;

  before(async () => {
    server = await startServer();
    const app = await seedApp(server);
    clientId = app.clientId;
    secret = app.clientSecret ?? '';
  });
  after(async () => server.close());

  const authorizeForm = () =>
    new URLSearchParams({
      client_id: clientId,
      redirect_uri: REDIRECT_URI,
      response_type: 'code',
      scope: 'openid',
      code_challenge: pkcePair().challenge,
      code_challenge_method: 'S256',
    }).toString();

  it('refuses an authorization or logout form that is not UTF-8 or has malformed %-escapes, with an HTML page', async () => {
    const cases: Array<[string, string, string]> = [
      ['/o/authorize/', 'nonce', authorizeForm()],
      ['/o/authorize/', 'state', authorizeForm()],
      ['/o/logout/', 'state', `client_id=${clientId}`],
    ];
    for (const [path, field, rest] of cases) {
      for (const [kind, make] of MALFORMED) {
        const what = `${path} ${field}=${kind}`;
        const response = await rawRequest(`${server.origin}${path}`, {
          method: 'POST',
          headers: FORM,
          body: make(field, rest),
        });
        assert.equal(response.status, 400, what);
        assert.match(String(response.headers['content-type']), /^text\/html/, what);
        assert.match(response.body, /invalid_request/, what);
        assert.match(response.body, /well-formed %-escapes/, what);
        assertNoStack(response, what);
      }
    }
    // The same form, well formed, goes on to the sign-in page.
    const valid = await rawRequest(`${server.origin}/o/authorize/`, {
      method: 'POST',
      headers: FORM,
      body: `${authorizeForm()}&nonce=n%C3%A9`,
    });
    assert.equal(valid.status, 303);
  });

  it('answers the token, introspection, revocation, userinfo and logout confirmation endpoints with their own error, never a 500', async () => {
    const authorization = { ...FORM, authorization: basicAuth(clientId, secret) };
    const cases: Array<{
      path: string;
      field: string;
      rest: string;
      headers: Record<string, string>;
      status: number;
      error?: string;
      active?: false;
    }> = [
      {
        path: '/o/token/',
        field: 'code',
        rest: `grant_type=authorization_code&redirect_uri=${encodeURIComponent(REDIRECT_URI)}&code_verifier=${pkcePair().verifier}`,
        headers: authorization,
        status: 400,
        error: 'invalid_grant',
      },
      {
        path: '/o/token/',
        field: 'refresh_token',
        rest: 'grant_type=refresh_token',
        headers: authorization,
        status: 400,
        error: 'invalid_grant',
      },
      {
        path: '/o/token/',
        field: 'grant_type',
        rest: 'code=x',
        headers: authorization,
        status: 400,
        error: 'unsupported_grant_type',
      },
      {
        path: '/o/token/',
        field: 'client_id',
        rest: `grant_type=refresh_token&refresh_token=x&client_secret=${secret}`,
        headers: FORM,
        status: 401,
        error: 'invalid_client',
      },
      {
        path: '/o/introspect/',
        field: 'token',
        rest: 'token_type_hint=access_token',
        headers: authorization,
        status: 200,
        active: false,
      },
      {
        path: '/o/revoke_token/',
        field: 'token',
        rest: 'token_type_hint=access_token',
        headers: authorization,
        status: 200,
      },
      {
        path: '/o/userinfo/',
        field: 'access_token',
        rest: 'x=1',
        headers: FORM,
        status: 401,
        error: 'invalid_token',
      },
    ];
    for (const { path, field, rest, headers, status, error, active } of cases) {
      for (const [kind, make] of MALFORMED) {
        const what = `${path} ${field}=${kind}`;
        const response = await rawRequest(`${server.origin}${path}`, {
          method: 'POST',
          headers,
          body: make(field, rest),
        });
        assertNoStack(response, what);
        assert.equal(response.status, status, what);
        if (error) assert.equal(jsonError(response), error, what);
        if (active === false) assert.deepEqual(JSON.parse(response.body), { active: false }, what);
      }
    }
    for (const [kind, make] of MALFORMED) {
      const what = `/o/logout/confirm xsrf=${kind}`;
      const response = await rawRequest(`${server.origin}/o/logout/confirm`, {
        method: 'POST',
        headers: { ...FORM, accept: 'text/html' },
        body: make('xsrf', 'logout=yes'),
      });
      assertNoStack(response, what);
      assert.equal(response.status, 400, what);
      assert.match(String(response.headers['content-type']), /^text\/html/, what);
      assert.match(response.body, /invalid_request/, what);
    }
  });

  it('refuses a compressed body with 415 invalid_request naming content encodings, JSON or an HTML page', async () => {
    const routes: Array<[string, 'json' | 'html']> = [
      ['/o/token/', 'json'],
      ['/o/introspect/', 'json'],
      ['/o/revoke_token/', 'json'],
      ['/o/userinfo/', 'json'],
      ['/o/authorize/', 'html'],
      ['/o/logout/', 'html'],
      ['/o/logout/confirm', 'html'],
    ];
    for (const [path, kind] of routes) {
      for (const coding of ['gzip', 'deflate', 'br', 'GZIP']) {
        const what = `${path} ${coding}`;
        const response = await rawRequest(`${server.origin}${path}`, {
          method: 'POST',
          headers: { ...FORM, 'content-encoding': coding, authorization: basicAuth(clientId, secret) },
          body: Buffer.from([0x1f, 0x8b, 0x08, 0x00]),
        });
        assert.equal(response.status, 415, what);
        assert.equal(response.headers['accept-encoding'], 'identity', what);
        assert.equal(response.headers.connection, 'close', what);
        if (kind === 'json') {
          const body = JSON.parse(response.body) as { error: string; error_description: string };
          assert.equal(body.error, 'invalid_request', what);
          assert.match(body.error_description, /content encodings .* not accepted/i, what);
        } else {
          assert.match(String(response.headers['content-type']), /^text\/html/, what);
          assert.match(response.body, /Content encodings .* not accepted/, what);
        }
      }
    }
    // `identity` is no coding: the form is read as any other.
    const identity = await rawRequest(`${server.origin}/o/token/`, {
      method: 'POST',
      headers: { ...FORM, 'content-encoding': 'identity', authorization: basicAuth(clientId, secret) },
      body: 'grant_type=refresh_token&refresh_token=unknown',
    });
    assert.equal(identity.status, 400);
    assert.equal(jsonError(identity), 'invalid_grant');
  });

  it('refuses a query under the issuer that is not UTF-8 or has a malformed %-escape, with 400 invalid_request and no redirect', async () => {
    const authorize = () =>
      new URLSearchParams({
        client_id: clientId,
        redirect_uri: REDIRECT_URI,
        response_type: 'code',
        scope: 'openid',
        code_challenge: pkcePair().challenge,
        code_challenge_method: 'S256',
        // Without a session, an error the provider redirects back with the request's state.
        prompt: 'none',
      });
    const withField = (params: URLSearchParams, field: string, escape: string) => {
      params.delete(field);
      return `${params.toString()}&${field}=x${escape}`;
    };
    const cases: Array<[string, (escape: string) => string, 'html' | 'json']> = [
      ...['state', 'nonce', 'login_hint', 'redirect_uri', 'client_id'].map(
        (field): [string, (escape: string) => string, 'html'] => [
          `/o/authorize/ ${field}`,
          (escape) => `/o/authorize/?${withField(authorize(), field, escape)}`,
          'html',
        ],
      ),
      [
        '/o/logout/ state',
        (escape) =>
          `/o/logout/?client_id=${clientId}&post_logout_redirect_uri=${encodeURIComponent('https://rp.example.org/bye')}&state=x${escape}`,
        'html',
      ],
      ['/o/interaction/', (escape) => `/o/interaction/unknown?x=${escape}`, 'html'],
      ['/o/userinfo/', (escape) => `/o/userinfo/?x=${escape}`, 'json'],
      ['/o/token/', (escape) => `/o/token/?x=${escape}`, 'json'],
    ];
    for (const [name, target, kind] of cases) {
      for (const escape of ['%ff', '%zz', '%e2%82', '%ed%a0%80', '%']) {
        const what = `${name}=x${escape}`;
        const response = await rawRequest(`${server.origin}${target(escape)}`, {
          ...(name === '/o/token/' && {
            method: 'POST',
            headers: { ...FORM, authorization: basicAuth(clientId, secret) },
            body: 'grant_type=refresh_token&refresh_token=unknown',
          }),
        });
        assertNoStack(response, what);
        assert.equal(response.status, 400, what);
        assert.equal(response.headers.location, undefined, what);
        if (kind === 'json') {
          assert.deepEqual(
            JSON.parse(response.body),
            {
              error: 'invalid_request',
              error_description:
                'This address is malformed: its query must be UTF-8 text with well-formed %-escapes, as a browser sends it.',
            },
            what,
          );
        } else {
          assert.match(String(response.headers['content-type']), /^text\/html/, what);
          assert.match(response.body, /invalid_request/, what);
          assert.match(response.body, /its query must be UTF-8 text with well-formed %-escapes/, what);
        }
      }
    }
    // Well-formed escapes of any character go on: the state comes back as sent.
    const valid = await rawRequest(
      `${server.origin}/o/authorize/?${authorize().toString()}&state=caf%C3%A9%2550`,
    );
    assert.equal(valid.status, 303);
    const location = new URL(String(valid.headers.location));
    assert.equal(location.origin + location.pathname, REDIRECT_URI);
    assert.equal(location.searchParams.get('error'), 'login_required');
    assert.equal(location.searchParams.get('state'), 'caf\u00e9%50');
  });

  it('issues a token to a back end declaring charset=ISO-8859-1, as Apache HttpClient 4.0-4.1 does by default', async () => {
    const machine = await seedApp(server, { grantTypes: ['client_credentials'] });
    const response = await rawRequest(`${server.origin}/o/token/`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded; charset=ISO-8859-1',
        authorization: basicAuth(machine.clientId, machine.clientSecret ?? ''),
      },
      body: 'grant_type=client_credentials',
    });
    assertNoStack(response, 'token');
    assert.equal(response.status, 200, response.body);
    assert.equal(typeof (JSON.parse(response.body) as { access_token?: unknown }).access_token, 'string');
  });

  it('refuses a form declared in a charset other than UTF-8 with 415 (US-ASCII and ISO-8859-1 taken on the back-end endpoints), and reads charset=utf-8 as UTF-8', async () => {
    const routes: Array<[string, 'json' | 'html', string, number, string | undefined]> = [
      ['/o/token/', 'json', 'grant_type=refresh_token&refresh_token=unknown', 400, 'invalid_grant'],
      ['/o/introspect/', 'json', 'token=unknown', 200, undefined],
      ['/o/revoke_token/', 'json', 'token=unknown', 200, undefined],
      ['/o/userinfo/', 'json', 'access_token=unknown', 401, 'invalid_token'],
      ['/o/authorize/', 'html', `${authorizeForm()}&state=caf%C3%A9`, 303, undefined],
      ['/o/logout/', 'html', `client_id=${clientId}`, 200, undefined],
      ['/o/logout/confirm', 'html', 'logout=yes&xsrf=unknown', 400, undefined],
    ];
    // What Apache HttpClient 4.0-4.1 (and Android's) declares by default, and its other names.
    const latin = ['ISO-8859-1', 'windows-1252', '"us-ascii"', 'latin1'];
    for (const [path, kind, body, status, error] of routes) {
      const refused = kind === 'html' ? [...latin, 'UTF-16'] : ['UTF-16', 'koi8-r', 'unknown-charset'];
      for (const charset of refused) {
        const what = `${path} charset=${charset}`;
        const response = await rawRequest(`${server.origin}${path}`, {
          method: 'POST',
          headers: {
            'content-type': `application/x-www-form-urlencoded; charset=${charset}`,
            ...(kind === 'json' && path !== '/o/userinfo/' && { authorization: basicAuth(clientId, secret) }),
          },
          body,
        });
        assertNoStack(response, what);
        assert.equal(response.status, 415, what);
        assert.equal(response.headers.connection, 'close', what);
        if (kind === 'json') {
          const answer = JSON.parse(response.body) as { error: string; error_description: string };
          assert.equal(answer.error, 'invalid_request', what);
          assert.match(answer.error_description, /charset other than UTF-8/, what);
        } else {
          assert.match(String(response.headers['content-type']), /^text\/html/, what);
          assert.match(response.body, /invalid_request/, what);
          assert.match(response.body, /charset other than UTF-8/, what);
        }
      }
      const read =
        kind === 'html'
          ? ['utf-8', 'UTF-8', '"UTF-8"', 'utf8']
          : ['utf-8', 'UTF-8', '"UTF-8"', 'utf8', ...latin];
      for (const charset of read) {
        const what = `${path} charset=${charset}`;
        const response = await rawRequest(`${server.origin}${path}`, {
          method: 'POST',
          headers: {
            'content-type': `application/x-www-form-urlencoded; charset=${charset}`,
            ...(kind === 'json' && path !== '/o/userinfo/' && { authorization: basicAuth(clientId, secret) }),
          },
          body,
        });
        assertNoStack(response, what);
        assert.equal(response.status, status, what);
        if (error) assert.equal(jsonError(response), error, what);
      }
    }
  });
});
