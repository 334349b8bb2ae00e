import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { testDatabaseKind } from '../helpers/database.ts';
import { currentCode } from '../../src/two-factor/totp.ts';
import { consoleSignIn } from '../helpers/console.ts';
import { authorizeParams, openLoginPage } from '../helpers/flows.ts';
import {
  authorizeUrl,
  Browser,
  formAction,
  formField,
  PASSWORD,
  seedApp,
  seedTwoFactorUser,
  seedUser,
  signIn,
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

/**
 * What is sent to an interaction form (consent, account choice, two-factor code) in place of its
 * well-formed `fields` with the page's CSRF token `token`, and the status each is answered with: none
 * of it is used, the page still takes the form sent right after.
 */
function hostileInteractionForms(
  token: string,
  fields: Record<string, string>,
): Array<[string, Record<string, string>, string | Buffer, number]> {
  const [name, value] = Object.entries(fields).at(-1)!;
  const right = new URLSearchParams({ csrf_token: token, ...fields }).toString();
  const without = new URLSearchParams(
    Object.fromEntries(Object.entries({ csrf_token: token, ...fields }).filter(([key]) => key !== name)),
  ).toString();
  return [
    [`${name} twice`, FORM, `${right}&${name}=${encodeURIComponent(value)}`, 400],
    [
      `${name} twice, another value first`,
      FORM,
      `${without}&${name}=x&${name}=${encodeURIComponent(value)}`,
      400,
    ],
    [`${name} as an array`, FORM, `${without}&${name}[]=${encodeURIComponent(value)}`, 400],
    [`${name} as an object`, FORM, `${without}&${name}[x]=${encodeURIComponent(value)}`, 400],
    [`${name} a NUL byte`, FORM, `${without}&${name}=%00`, 400],
    [`${name} of 60 KB`, FORM, `${without}&${name}=${'x'.repeat(60_000)}`, 413],
    [
      `${name} bytes that are no UTF-8`,
      FORM,
      Buffer.concat([Buffer.from(`${without}&${name}=`), Buffer.from([0xff])]),
      400,
    ],
    ['the CSRF token twice', FORM, `${right}&csrf_token=${encodeURIComponent(token)}`, 400],
    ['no CSRF token', FORM, right.replace(/^csrf_token=[^&]*&/, ''), 403],
    ['a garbage CSRF token', FORM, right.replace(/^csrf_token=[^&]*/, 'csrf_token=%00garbage'), 403],
    ['JSON', { 'content-type': 'application/json' }, JSON.stringify({ csrf_token: token, ...fields }), 415],
    ['no type', {}, right, 415],
    ['from another site', { ...FORM, 'sec-fetch-site': 'cross-site' }, right, 403],
  ];
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

  /** Posts `body` to an interaction form of `browser`'s, with its cookies (same-origin). */
  const postInteraction = (
    browser: Browser,
    action: string,
    headers: Record<string, string>,
    body: string | Buffer,
  ) => rawRequest(action, { method: 'POST', headers: { origin: server.origin, ...headers }, body, browser });

  /** Code attempts counted (`login_failure` rows of the code method). */
  async function codeAttempts(): Promise<number> {
    const row = await server.app.database.db
      .selectFrom('login_failure')
      .select(sql<number>`count(*)`.as('n'))
      .where('method', '=', 'code')
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  it('answers hostile consent and account-choice forms with a 4xx, using none of it, and takes the right form after', async () => {
    const { clientId } = await seedApp(server, { name: 'Consenting' });
    const user = await seedUser(server);
    const pages: Array<[string, () => Promise<{ browser: Browser; body: string }>, Record<string, string>]> =
      [
        [
          'consent',
          async () => {
            const login = await openLoginPage(server, clientId);
            const response = await login.browser.follow(login.action, server.origin, {
              method: 'POST',
              headers: FORM,
              body: new URLSearchParams({
                csrf_token: login.csrf,
                username: user.username,
                password: PASSWORD,
              }).toString(),
            });
            return { browser: login.browser, body: await response.text() };
          },
          { decision: 'allow' },
        ],
        [
          'account choice',
          async () => {
            const browser = new Browser();
            const { params } = authorizeParams({ clientId, clientSecret: '' });
            const signedIn = await signIn(browser, server, authorizeUrl(server, params), {
              username: user.username,
            });
            assert.equal(signedIn.status, 303);
            const { params: again } = authorizeParams(
              { clientId, clientSecret: '' },
              { prompt: 'select_account' },
            );
            const page = await browser.follow(authorizeUrl(server, again), server.origin);
            return { browser, body: await page.text() };
          },
          { account: 'current' },
        ],
      ];
    for (const [what, open, fields] of pages) {
      const { browser, body } = await open();
      assert.ok(
        body.includes(`name="${Object.keys(fields)[0]}"`),
        `${what}: the page, not ${body.slice(0, 200)}`,
      );
      const action = formAction(body, server.origin);
      const token = formField(body, 'csrf_token');
      await server.app.audit.idle();
      const before = await stored();
      for (const [how, headers, sent, status] of hostileInteractionForms(token, fields)) {
        const response = await postInteraction(browser, action, headers, sent);
        assertHeld(`${what} with ${how}`, response);
        assert.equal(response.status, status, `${what} with ${how}: ${response.body.slice(0, 200)}`);
      }
      await server.app.audit.idle();
      assert.equal(await stored(), before, `${what}: nothing stored by a refused form`);
      const right = await postInteraction(
        browser,
        action,
        FORM,
        new URLSearchParams({ csrf_token: token, ...fields }).toString(),
      );
      assert.equal(
        right.status,
        303,
        `${what}: the page still takes the right form: ${right.body.slice(0, 200)}`,
      );
    }
  });

  it('answers a hostile two-factor code form with a 4xx, counting no code, and no field doubled or nested buys a code past the budget', async () => {
    const { clientId } = await seedApp(server, { name: 'Two steps', skipAuthorization: true });
    const { user, secret } = await seedTwoFactorUser(server);
    const codePage = async () => {
      const browser = new Browser();
      const { params } = authorizeParams({ clientId, clientSecret: '' });
      const response = await signIn(browser, server, authorizeUrl(server, params), {
        username: user.username,
      });
      const body = await response.text();
      assert.match(body, /name="pending"/, 'the code page');
      return { browser, body, action: formAction(body, server.origin), token: formField(body, 'csrf_token') };
    };
    const page = await codePage();
    const pending = formField(page.body, 'pending');
    const attempts = await codeAttempts();
    const cases = [
      ...hostileInteractionForms(page.token, { pending, code: '000000' }),
      ...hostileInteractionForms(page.token, { code: '000000', pending }).filter(([how]) =>
        how.startsWith('pending'),
      ),
      [
        'a pending state of 8 KB',
        FORM,
        new URLSearchParams({ csrf_token: page.token, pending: 'p'.repeat(8000), code: '000000' }).toString(),
        400,
      ] as const,
      [
        'a pending state of another shape',
        FORM,
        new URLSearchParams({ csrf_token: page.token, pending: `${pending}.x`, code: '000000' }).toString(),
        400,
      ] as const,
    ];
    for (const [how, headers, sent, status] of cases) {
      const response = await postInteraction(page.browser, page.action, headers, sent);
      assertHeld(`the code form with ${how}`, response);
      assert.equal(response.status, status, `the code form with ${how}: ${response.body.slice(0, 200)}`);
    }
    assert.equal(await codeAttempts(), attempts, 'no code counted for a form refused');

    // The budget spent by wrong codes: the right one, however it is sent, is refused unchecked.
    const budget = server.app.config.login.maxCodeFailuresPerUser;
    for (let tried = 0; tried < budget; tried += 1) {
      const wrong = await postInteraction(
        page.browser,
        page.action,
        FORM,
        new URLSearchParams({ csrf_token: page.token, pending, code: '000000' }).toString(),
      );
      assert.ok(wrong.status === 401 || wrong.status === 429, `wrong code ${tried}: ${wrong.status}`);
    }
    const code = currentCode(secret, Date.now() + 30_000);
    const right = new URLSearchParams({ csrf_token: page.token, pending, code }).toString();
    for (const sent of [
      right,
      `${right}&code=${code}`,
      `csrf_token=${encodeURIComponent(page.token)}&pending=${encodeURIComponent(pending)}&code[]=${code}`,
      `csrf_token=${encodeURIComponent(page.token)}&pending=${encodeURIComponent(pending)}&code[0]=${code}&code[1]=${code}`,
      `${right}&pending=${encodeURIComponent(pending)}`,
    ]) {
      const response = await postInteraction(page.browser, page.action, FORM, sent);
      assertHeld(`the right code past the budget, as ${sent.slice(-40)}`, response);
      assert.ok(
        response.status >= 400,
        `the right code past the budget, as ${sent.slice(-40)}: ${response.status}`,
      );
    }
  });

  it('answers a hostile logout confirmation form with a 4xx, ending no session', async () => {
    const { clientId } = await seedApp(server, { name: 'Signing out', skipAuthorization: true });
    const user = await seedUser(server);
    const browser = new Browser();
    const { params } = authorizeParams({ clientId, clientSecret: '' });
    assert.equal(
      (await signIn(browser, server, authorizeUrl(server, params), { username: user.username })).status,
      303,
    );
    const confirm = await browser.fetch(`${server.issuer}/logout`);
    const body = await confirm.text();
    assert.equal(confirm.status, 200, body.slice(0, 200));
    const action = formAction(body, server.origin);
    const xsrf = formField(body, 'xsrf');
    const sessions = async () =>
      (
        await server.app.database.db
          .selectFrom('oidc_payload')
          .select('id')
          .where('model', '=', 'Session')
          .where('user_id', '=', String(user.id))
          .execute()
      ).length;
    const signedIn = await sessions();
    assert.ok(signedIn > 0);
    const token = encodeURIComponent(xsrf);
    const forms: Array<[string, Record<string, string>, string | Buffer]> = [
      ['xsrf twice', FORM, `xsrf=${token}&xsrf=${token}&logout=yes`],
      ['xsrf as an array', FORM, `xsrf[]=${token}&logout=yes`],
      ['xsrf as an object', FORM, `xsrf[a]=${token}&logout=yes`],
      ['no xsrf', FORM, 'logout=yes'],
      ['a NUL xsrf', FORM, 'xsrf=%00&logout=yes'],
      ['an xsrf of 60 KB', FORM, `xsrf=${'x'.repeat(60_000)}&logout=yes`],
      ['logout twice', FORM, `xsrf=${token}&logout=yes&logout=yes`],
      // Not swept: `logout=` and a byte that is no UTF-8 beside the right xsrf token, which the provider
      // reads (loosely) as U+FFFD, a `logout` given: it signs out, as only the token's holder can ask.
      ['JSON', { 'content-type': 'application/json' }, JSON.stringify({ xsrf, logout: 'yes' })],
    ];
    for (const [what, headers, sent] of forms) {
      const response = await rawRequest(action, {
        method: 'POST',
        headers: { ...headers, accept: 'text/html' },
        body: sent,
        browser,
      });
      assertHeld(`the logout form with ${what}`, response);
      assert.equal(await sessions(), signedIn, `the logout form with ${what}: still signed in`);
      assert.ok(
        response.status >= 400,
        `the logout form with ${what}: ${response.status} ${response.body.slice(0, 200)}`,
      );
      assert.ok(!response.body.includes(xsrf), `the logout form with ${what}: its xsrf token not echoed`);
    }
    // `logout[]` is no `logout`: the right xsrf token with it is the "No, stay signed in" button.
    const declined = await rawRequest(action, {
      method: 'POST',
      headers: { ...FORM, accept: 'text/html' },
      body: `xsrf=${token}&logout[]=yes&logout[x]=yes`,
      browser,
    });
    assertHeld('the logout form with logout as an array', declined);
    assert.equal(declined.status, 303, declined.body.slice(0, 200));
    assert.equal(new URL(declined.headers.location!).pathname, '/o/logout/success');
    assert.equal(await sessions(), signedIn, 'the logout form with logout as an array: still signed in');
  });

  it('refuses an interaction page or form under an unknown, garbage, finished or foreign uid, with a 4xx page', async () => {
    const { clientId } = await seedApp(server, { name: 'Interactions' });
    const user = await seedUser(server);
    const mine = await openLoginPage(server, clientId);
    const theirs = await openLoginPage(server, clientId);
    const uidOf = (page: { action: string }) => new URL(page.action).pathname.split('/').at(-2)!;
    const base = `${server.issuer}/interaction`;
    // A finished interaction: signed in and consented, its uid then asked for again.
    const finished = await openLoginPage(server, clientId);
    const done = await signIn(finished.browser, server, finished.action.replace(/\/login$/, ''), {
      username: user.username,
    });
    assert.ok(done.status === 303 || done.status === 200, `the finished sign-in: ${done.status}`);
    const targets: Array<[string, Browser, string]> = [
      ['an unknown uid', mine.browser, `${base}/${'A'.repeat(21)}`],
      ['a garbage uid', mine.browser, `${base}/%00%FF`],
      ['a uid with a dot', mine.browser, `${base}/..%2F..`],
      ['a uid of 8 KB', mine.browser, `${base}/${'u'.repeat(8192)}`],
      ["another browser's uid", mine.browser, `${base}/${uidOf(theirs)}`],
      ['a finished uid', finished.browser, `${base}/${uidOf(finished)}`],
      ['a uid without any cookie', new Browser(), `${base}/${uidOf(mine)}`],
    ];
    // The finished sign-in's events are told first.
    await server.app.audit.idle();
    const before = await stored();
    for (const [what, browser, target] of targets) {
      const page = await rawRequest(target, { browser });
      assertHeld(`GET ${what}`, page);
      assert.ok(page.status >= 400, `GET ${what}: ${page.status}`);
      for (const action of ['login', 'consent', 'select_account', 'otp', 'otp-enrol', 'otp-continue']) {
        const response = await rawRequest(`${target}/${action}`, {
          method: 'POST',
          headers: { ...FORM, origin: server.origin },
          body: new URLSearchParams({
            csrf_token: mine.csrf,
            username: user.username,
            password: PASSWORD,
            decision: 'allow',
            account: 'current',
            code: '000000',
            pending: 'x.y',
          }).toString(),
          browser,
        });
        assertHeld(`POST ${what}/${action}`, response);
        assert.ok(response.status >= 400, `POST ${what}/${action}: ${response.status}`);
        assert.doesNotMatch(
          response.body,
          new RegExp(mine.csrf),
          `POST ${what}/${action}: no CSRF token echoed`,
        );
      }
    }
    await server.app.audit.idle();
    assert.equal(await stored(), before, 'nothing stored');
    // The pages under way are as they were: each signs in.
    for (const page of [mine, theirs]) {
      const response = await rawRequest(page.action, {
        method: 'POST',
        headers: { ...FORM, origin: server.origin },
        body: new URLSearchParams({
          csrf_token: page.csrf,
          username: user.username,
          password: PASSWORD,
        }).toString(),
        browser: page.browser,
      });
      assert.equal(response.status, 303, `the page under way still signs in: ${response.body.slice(0, 200)}`);
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
