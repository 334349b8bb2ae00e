import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { testDatabaseKind } from '../helpers/database.ts';
import { consoleSignIn } from '../helpers/console.ts';
import { openLoginPage } from '../helpers/flows.ts';
import {
  type Browser,
  PASSWORD,
  seedApp,
  seedUser,
  startServer,
  type TestServer,
} from '../helpers/server.ts';
import { type RawResponse, rawRequest } from './raw-request.ts';

/**
 * An attacker's malformed input on every route aa-oidc serves beside the provider's protocol
 * endpoints: the console (landing, account, admin), the sign-in page, health and metrics. Each probe
 * is answered with a 4xx that says why (or a redirect, or the page), never a 500, a stack trace or a
 * secret; a form refused unread stores nothing. A table, so that a route added later is swept too.
 */
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const STACK_OR_DRIVER_TEXT =
  /\bat [^\n<]*\.[cm]?[jt]s:\d+|TypeError|ReferenceError|invalid byte sequence|SQLITE_|syntax error at/;
const METRICS_TOKEN = 'm'.repeat(40);

/** What no answer to a hostile request may be or hold. */
function assertHeld(label: string, response: RawResponse): void {
  assert.ok(
    response.status >= 200 && response.status < 500,
    `${label}: ${response.status} ${response.body.slice(0, 200)}`,
  );
  assert.doesNotMatch(response.body, STACK_OR_DRIVER_TEXT, `${label}: no stack trace or driver text`);
  assert.ok(!response.body.includes(PASSWORD), `${label}: no password echoed`);
  assert.ok(!response.body.includes(METRICS_TOKEN), `${label}: no bearer token echoed`);
}

/** Path parameters as an attacker writes them: traversal, encoded slashes, NUL, bad UTF-8, 2^53+1, long. */
const HOSTILE_SEGMENTS = [
  '..',
  '%2e%2e',
  'a%2Fb',
  '%00',
  'a%00b',
  '%FF',
  '%C3%28',
  '9007199254740993',
  '-1',
  '1e3',
  'x'.repeat(6000),
];
/** The query parameters the console's pages read. */
const QUERY_NAMES = [
  'q',
  'state',
  'group',
  'active',
  'page',
  'done',
  'before',
  'outcome',
  'kind',
  'client_id',
  'user',
  'since',
  'until',
  'served',
  'to',
  'priority',
  'oidc_access',
  'return',
  'again',
  'signed-out',
  'code',
  'error',
];

describe(`hostile input on the console, sign-in, health and metrics (${testDatabaseKind})`, () => {
  let server: TestServer;
  let admin: Browser;
  let csrf: string;
  const values: Record<string, string> = {};

  before(async () => {
    server = await startServer({ metrics: { bearerToken: METRICS_TOKEN } });
    await server.app.directoryAdmin.createState('Member', 100, true);
    await server.app.directoryAdmin.createGroup('Directors');
    values.clientId = (await seedApp(server, { name: 'Wiki' })).clientId;
    values.id = String((await seedUser(server)).id);
    values.name = 'Directors';
    const key = await server.app.database.db
      .selectFrom('signing_key')
      .select('kid')
      .executeTakeFirstOrThrow();
    values.kid = key.kid;
    admin = await consoleSignIn(server, (await seedUser(server, { superuser: true })).username, {
      returnTo: '/admin',
    });
    csrf = (await rawRequest(`${server.origin}/account`, { browser: admin })).body.match(
      /name="csrf_token" value="([^"]*)"/,
    )![1]!;
  });
  after(async () => server.close());

  const routes = () => server.app.consoleRoutes.filter((route) => !route.path.includes('sign-out'));
  const filled = (path: string, segment?: string) =>
    path.replace(/:(\w+)/g, (_, name: string) => segment ?? values[name]!);
  const send = (target: string, options: Parameters<typeof rawRequest>[1] = {}) =>
    rawRequest(`${server.origin}/`, { browser: admin, ...options, target });

  /** Everything a refused form could have written: the directory, the applications, keys, audit, the change log. */
  async function stored(): Promise<string> {
    const db = server.app.database.db;
    const counts = await Promise.all(
      (
        [
          'state',
          'auth_group',
          'app_user',
          'user_group',
          'application',
          'signing_key',
          'audit_event',
          'totp_enrolment',
          'change_log',
        ] as const
      ).map(
        async (table) =>
          `${table}=${
            (
              await db
                .selectFrom(table)
                .select(sql<number>`count(*)`.as('n'))
                .executeTakeFirstOrThrow()
            ).n
          }`,
      ),
    );
    return counts.join(' ');
  }

  it('answers other methods than a route takes with 405, and a HEAD as the GET or 405', async () => {
    for (const route of routes()) {
      for (const method of ['OPTIONS', 'PUT', 'DELETE', 'PATCH', route.method === 'GET' ? 'HEAD' : 'GET']) {
        const response = await send(filled(route.path), { method });
        assertHeld(`${method} ${route.path}`, response);
        // A GET to a POST's address may be another route's (`/admin/apps/test-logout`, an application's page).
        if (method !== 'GET' && (method !== 'HEAD' || route.refusesHead))
          assert.equal(response.status, 405, `${method} ${route.path}`);
      }
    }
  });

  it('never fails on a malformed, repeated or oversized query of a page', async () => {
    const every = (value: (name: string) => string) => QUERY_NAMES.map(value).join('&');
    const queries = [
      every((name) => `${name}[]=1&${name}[x]=2`),
      every((name) => `${name}=1&${name}=2`),
      every((name) => `${name}=9007199254740993`),
      every((name) => `${name}=%E2%80%AE`),
      // Each alone, where a value reaches the database: a NUL byte, a value longer than any field takes.
      ...QUERY_NAMES.flatMap((name) => [`${name}=a%00b`, `${name}=${'x'.repeat(4000)}`]),
    ];
    for (const route of routes().filter((route) => route.method === 'GET')) {
      for (const query of queries)
        assertHeld(`GET ${route.path}?${query.slice(0, 40)}`, await send(`${filled(route.path)}?${query}`));
      for (const query of ['q=%FF', 'page=%C3%28']) {
        const response = await send(`${filled(route.path)}?${query}`);
        assertHeld(`GET ${route.path}?${query}`, response);
        assert.equal(response.status, 400, `GET ${route.path}?${query}`);
      }
    }
  });

  it('never fails on a hostile path parameter, for a GET or a POST with a valid CSRF token', async () => {
    for (const route of routes().filter((route) => route.path.includes(':'))) {
      for (const segment of HOSTILE_SEGMENTS) {
        const response = await send(filled(route.path, segment), {
          method: route.method,
          ...(route.method === 'POST' && {
            headers: { ...FORM, origin: server.origin },
            body: new URLSearchParams({
              csrf_token: csrf,
              to: 'Renamed',
              priority: '5',
              oidc_access: '1',
              state: 'Member',
              group: 'Directors',
              reason: 'test',
            }).toString(),
          }),
        });
        assertHeld(`${route.method} ${route.path} with ${segment.slice(0, 20)}`, response);
        if (/%(?:00|FF|C3%28)/.test(segment))
          assert.equal(response.status, 400, `${route.method} ${route.path} ${segment}`);
      }
    }
    for (const path of [
      '/admin//users',
      '/admin/users/',
      '/%2e%2e/admin',
      '/admin%2Fusers',
      '/admin/' + 'a/'.repeat(3000),
    ]) {
      assertHeld(`GET ${path.slice(0, 40)}`, await send(path));
    }
  });

  it('refuses a form of another type, without or with a bad CSRF token, or its token in the query, storing nothing', async () => {
    const before = await stored();
    const body = (token: string) =>
      `csrf_token=${token}&name=Hostile&to=Hostile&priority=1&password=${encodeURIComponent('x'.repeat(20))}`;
    for (const route of routes().filter((route) => route.method === 'POST')) {
      const target = filled(route.path);
      const refusals: Array<[string, Record<string, string>, string | Buffer, number, string?]> = [
        [
          'JSON',
          { 'content-type': 'application/json' },
          JSON.stringify({ csrf_token: csrf, name: 'Hostile' }),
          415,
        ],
        [
          'multipart',
          { 'content-type': 'multipart/form-data; boundary=b' },
          `--b\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n${csrf}\r\n--b--\r\n`,
          415,
        ],
        ['no type', {}, body(csrf), 415],
        ['no CSRF token', FORM, 'name=Hostile', 403],
        ['a garbage CSRF token', FORM, body('%00garbage'), 403],
        ['the CSRF token twice', FORM, `${body(csrf)}&csrf_token=${csrf}`, 400],
        [
          'bytes that are no UTF-8',
          FORM,
          Buffer.concat([Buffer.from(`${body(csrf)}&name=`), Buffer.from([0xff])]),
          400,
        ],
        ['the CSRF token in the query only', FORM, 'name=Hostile', 403, `?csrf_token=${csrf}`],
      ];
      for (const [what, headers, sent, status, query] of refusals) {
        const response = await send(`${target}${query ?? ''}`, {
          method: 'POST',
          headers: { ...headers, origin: server.origin },
          body: sent,
        });
        assertHeld(`POST ${route.path} with ${what}`, response);
        assert.equal(
          response.status,
          status,
          `POST ${route.path} with ${what}: ${response.body.slice(0, 200)}`,
        );
      }
    }
    assert.equal(await stored(), before, 'nothing stored by a refused form');
  });

  it('never fails on NUL bytes, arrays or oversized values in the fields of the admin and account forms', async () => {
    const forms = new Map<string, Set<string>>();
    for (const route of routes().filter(
      (route) => route.method === 'GET' && !route.refusesHead && !route.path.includes(':'),
    )) {
      const page = await send(route.path);
      for (const form of page.body.matchAll(/<form\b[^>]*method="post"[^>]*>([\s\S]*?)<\/form>/g)) {
        const action = /action="([^"]*)"/.exec(form[0])![1]!;
        if (action.includes('sign-out')) continue;
        const names = forms.get(action) ?? new Set<string>();
        for (const field of form[1]!.matchAll(/<(?:input|select|textarea)\b[^>]*\bname="([^"]*)"/g))
          names.add(field[1]!);
        forms.set(action, names);
      }
    }
    assert.ok(
      forms.has('/admin/apps/new') && forms.has('/account/password') && forms.has('/admin/groups'),
      [...forms.keys()].join(' '),
    );
    for (const [action, names] of forms) {
      for (const name of [...names].filter((name) => name !== 'csrf_token')) {
        for (const value of ['\0', 'a\0b', 'x'.repeat(60_000), '9007199254740993']) {
          const response = await send(action, {
            method: 'POST',
            headers: { ...FORM, origin: server.origin },
            body: new URLSearchParams({ csrf_token: csrf, [name]: value }).toString(),
          });
          assertHeld(`POST ${action} ${name}=${JSON.stringify(value.slice(0, 12))}`, response);
        }
        const array = await send(action, {
          method: 'POST',
          headers: { ...FORM, origin: server.origin },
          body: `csrf_token=${csrf}&${name}[]=1&${name}[x]=2`,
        });
        assertHeld(`POST ${action} ${name}[]`, array);
      }
    }
  });

  it('answers a malformed sign-in form with a 4xx', async () => {
    const { clientId } = await seedApp(server, { name: 'Login' });
    const forms: Array<[string, Record<string, string>, (token: string) => string | Buffer, number]> = [
      ['a NUL username', FORM, (token) => `csrf_token=${token}&username=%00&password=x`, 400],
      ['a username twice', FORM, (token) => `csrf_token=${token}&username=a&username=b&password=x`, 400],
      ['a username array', FORM, (token) => `csrf_token=${token}&username[]=a&password=x`, 400],
      [
        'a password of 100 KB',
        FORM,
        (token) => `csrf_token=${token}&username=a&password=${'x'.repeat(100_000)}`,
        413,
      ],
      [
        'JSON',
        { 'content-type': 'application/json' },
        (token) => JSON.stringify({ csrf_token: token, username: 'a' }),
        415,
      ],
      ['no type', {}, (token) => `csrf_token=${token}&username=a&password=x`, 415],
      ['a garbage CSRF token', FORM, () => 'csrf_token=%00&username=a&password=x', 403],
      [
        'bytes that are no UTF-8',
        FORM,
        (token) => Buffer.concat([Buffer.from(`csrf_token=${token}&username=`), Buffer.from([0xff])]),
        400,
      ],
    ];
    for (const [what, headers, body, status] of forms) {
      const page = await openLoginPage(server, clientId);
      const response = await rawRequest(page.action, {
        method: 'POST',
        headers: { ...headers, origin: server.origin },
        body: body(page.csrf),
        browser: page.browser,
      });
      assertHeld(`sign-in with ${what}`, response);
      assert.equal(response.status, status, `sign-in with ${what}: ${response.body.slice(0, 200)}`);
    }
  });

  it('answers health and metrics probes with what they are, never a 500', async () => {
    for (const path of ['/healthz', '/readyz', '/metrics']) {
      for (const method of ['GET', 'HEAD', 'POST', 'PUT', 'OPTIONS']) {
        assertHeld(
          `${method} ${path}`,
          await rawRequest(`${server.origin}${path}?a[]=1&a=%FF&b=%00`, { method }),
        );
      }
      assertHeld(`${path}/`, await rawRequest(`${server.origin}${path}/`));
    }
    for (const authorization of [
      'Bearer ',
      `Bearer ${'m'.repeat(39)}`,
      `Bearer ${'x'.repeat(8000)}`,
      'Basic Zm9vOmJhcg==',
    ]) {
      assert.equal(
        (await rawRequest(`${server.origin}/metrics`, { headers: { authorization } })).status,
        401,
        authorization.slice(0, 20),
      );
    }
  });
});
