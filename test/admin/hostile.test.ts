import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import type { ConsoleRoute } from '../../src/console/http.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { consoleGet, consolePost, consoleSignIn, pageText } from '../helpers/console.ts';
import { createLeakHarness } from '../helpers/leak-harness.ts';
import {
  type Browser,
  formField,
  PASSWORD,
  seedApp,
  seedUser,
  startServer,
  type TestServer,
} from '../helpers/server.ts';

/**
 * The admin pages swept as an attacker would: every route, by a signed-out visitor, a member and a
 * superuser, with hostile ids, query strings, form bodies, methods and CSRF tokens, and the
 * application form with hostile URIs. Each answer is a 4xx page (or the sign-in, or the page itself
 * for a filter it reads as nothing), never a 500; nothing is changed; no secret is echoed or logged.
 */

/** An answer read whole, from a request sent as written (no URL normalization, any method, any body). */
interface RawAnswer {
  status: number;
  body: string;
}

/** The console cookies `browser` holds for `path`, as a Cookie header. */
function cookieHeader(browser: Browser, path: string): string {
  return [...browser.cookies.entries()]
    .filter(([key]) => path.startsWith(key.split('|')[0]!))
    .map(([key, value]) => `${key.split('|')[1]}=${value}`)
    .join('; ');
}

/** Path segments no entity has, each hostile in its own way (`%ff`: no UTF-8; `%00`: a NUL byte). */
const HOSTILE_SEGMENTS = [
  'no-such-thing',
  '-1',
  '0',
  '2147483648',
  '99999999999999999999',
  '1e3',
  '%201',
  '%00',
  '%ff',
  '%C0%AE',
  '%2e%2e',
  '%2F',
  encodeURIComponent('<script>alert(1)</script>'),
  '%E2%80%AE',
  '%0d%0aSet-Cookie:%20x=1',
  '%',
  'x'.repeat(10_000),
];

/** The ids a signed-out visitor and a member try too: an unknown one, two malformed ones, a huge one. */
const ACCESS_SEGMENTS: ReadonlySet<string> = new Set(['no-such-thing', '%ff', '%00', 'x'.repeat(10_000)]);

/** The query parameters each admin page reads: its filters, the values an action carries, `done`. */
const PAGE_PARAMETERS: ReadonlyArray<readonly [pattern: RegExp, names: readonly string[]]> = [
  [/^\/admin(\/(apps\/:clientId|users\/:id|states|groups|(states|groups)\/:name))?$/, ['done']],
  [/^\/admin\/apps$/, ['q', 'active', 'format', 'pkce', 'bcl']],
  [/^\/admin\/users$/, ['q', 'state', 'group', 'active', 'page']],
  [/^\/admin\/users\/:id\/state$/, ['state']],
  [/^\/admin\/users\/:id\/(add|remove)-group$/, ['group']],
  [/^\/admin\/(users\/:id|states\/:name|groups\/:name)\/access$/, ['oidc_access']],
  [/^\/admin\/(states|groups)\/:name\/rename$/, ['to']],
  [/^\/admin\/states\/:name\/priority$/, ['priority']],
  [/^\/admin\/keys$/, ['done', 'served', 'active', 'next']],
  [/^\/admin\/deliveries$/, ['client_id', 'user', 'since', 'until', 'outcome', 'before']],
  [/^\/admin\/code-reuse$/, ['client_id', 'user', 'since', 'until', 'page']],
  [/^\/admin\/audit$/, ['kind', 'client_id', 'user', 'since', 'until', 'before']],
];

/** Query values no filter takes, as sent (percent-encoded where a raw request line needs it). */
const HOSTILE_QUERY_VALUES = [
  'x'.repeat(10_000),
  '-1',
  '99999999999999999999999',
  '1e309',
  'NaN',
  '%00',
  '%0d%0a',
  '%E2%80%AE',
  '__proto__',
  'constructor',
  '2024-13-45',
  '999999w',
  '275760-09-13',
  '0000-01-01T00:00:00-23:59',
  encodeURIComponent('é'.repeat(200)),
];

const FORM = 'application/x-www-form-urlencoded';

describe(`a hostile sweep of the admin pages (${testDatabaseKind})`, () => {
  const harness = createLeakHarness();
  let server: TestServer;
  let routes: readonly ConsoleRoute[];
  let admin: Browser;
  let member: Browser;
  let adminCsrf: string;
  let memberCsrf: string;
  let clientId: string;
  let targetId: number;
  let kid: string;

  before(async () => {
    server = await startServer({}, { harness });
    routes = server.app.consoleRoutes.filter((route) => route.path.startsWith('/admin'));
    await server.app.directoryAdmin.createState('Member', 100, true);
    await server.app.directoryAdmin.createGroup('Directors');
    const adminUser = await seedUser(server, { superuser: true });
    const memberUser = await seedUser(server);
    targetId = (await seedUser(server)).id;
    const app = await seedApp(server);
    clientId = app.clientId;
    harness.registerSecret(app.clientSecret!, 'client secret');
    harness.registerSecret(PASSWORD, 'the users’ password');
    admin = await consoleSignIn(server, adminUser.username, { returnTo: '/admin' });
    member = await consoleSignIn(server, memberUser.username);
    adminCsrf = (await consoleGet(admin, `${server.origin}/admin`)).csrf!;
    memberCsrf = (await consoleGet(member, `${server.origin}/account`)).csrf!;
    kid = (await server.app.keys.list()).find((key) => key.status === 'active')!.kid;
  });
  after(async () => server.close());

  /** Sends a request as written, with `browser`'s cookies (none for a signed-out visitor). */
  const send = (
    browser: Browser | undefined,
    method: string,
    path: string,
    headers: Record<string, string> = {},
    body?: Buffer | string,
  ): Promise<RawAnswer> =>
    new Promise((resolve, reject) => {
      const origin = new URL(server.origin);
      const request = httpRequest(
        {
          host: origin.hostname,
          port: origin.port,
          method,
          path,
          headers: {
            ...(browser ? { cookie: cookieHeader(browser, path) } : {}),
            ...(body === undefined ? {} : { 'content-length': String(Buffer.byteLength(body)) }),
            ...headers,
          },
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () =>
            resolve({ status: response.statusCode!, body: Buffer.concat(chunks).toString() }),
          );
          response.on('error', reject);
        },
      );
      request.on('error', reject);
      if (body !== undefined) request.write(body);
      request.end();
    });

  /** A form POST of the admin, its CSRF token first, from this site. */
  const postForm = (path: string, body: Buffer | string, headers: Record<string, string> = {}) =>
    send(admin, 'POST', path, { 'content-type': FORM, origin: server.origin, ...headers }, body);

  /** The route's path naming the entities that exist (so that each handler runs past its lookup). */
  const realPath = (route: ConsoleRoute) =>
    route.path
      .replace(':clientId', encodeURIComponent(clientId))
      .replace(':id', String(targetId))
      .replace(':kid', encodeURIComponent(kid))
      .replace(':name', route.path.startsWith('/admin/states') ? 'Member' : 'Directors');

  /** What the sweep must leave as it was: every entity an admin page writes, and the audit trail. */
  const snapshot = async (): Promise<string> => {
    // The audit events of what came before (the sign-ins) are written by then, not during the sweep.
    await server.app.audit.idle();
    const db = server.app.database.db;
    const counts: Record<string, string> = {};
    for (const table of [
      'app_user',
      'state',
      'auth_group',
      'user_group',
      'application',
      'application_whitelist',
      'signing_key',
      'audit_event',
      'lifecycle_event',
      'bcl_job',
      'bcl_delivery_attempt',
    ]) {
      const { rows } = await sql<{ n: unknown }>`select count(*) as n from ${sql.table(table)}`.execute(db);
      counts[table] = String(rows[0]!.n);
    }
    const users = await db.selectFrom('app_user').selectAll().orderBy('id').execute();
    return JSON.stringify(
      {
        counts,
        users,
        apps: await server.app.applications.list(),
        keys: await server.app.keys.list(),
        states: await server.app.directory.listStates(),
        groups: await server.app.directory.listGroups(),
      },
      (_key, value: unknown) => (typeof value === 'bigint' ? String(value) : value),
    );
  };

  const shown = (answer: RawAnswer) => answer.body.replace(/\s+/g, ' ').slice(-300);

  it('answers a hostile id in every admin path with a 4xx page, the sign-in or a 403, never a 500, changing nothing', async () => {
    const before = await snapshot();
    for (const route of routes.filter((candidate) => candidate.path.includes('/:'))) {
      for (const segment of HOSTILE_SEGMENTS) {
        const path = route.path.replace(/:[A-Za-z]+/g, segment);
        const what = `${route.method} ${path.slice(0, 100)}`;
        const post = route.method === 'POST';
        const form = (csrf: string) => `csrf_token=${encodeURIComponent(csrf)}`;
        const headers: Record<string, string> = post ? { 'content-type': FORM, origin: server.origin } : {};
        // Access is decided before the id is read: the other ids are answered as these are.
        if (ACCESS_SEGMENTS.has(segment)) {
          // A malformed address (`%ff`, a NUL) is refused before anything else: the same 400 for everyone.
          const malformed = segment.startsWith('%');
          const visitor = await send(undefined, route.method, path, headers, post ? '' : undefined);
          assert.equal(visitor.status, malformed ? 400 : 302, `${what} signed out`);
          const asMember = await send(
            member,
            route.method,
            path,
            headers,
            post ? form(memberCsrf) : undefined,
          );
          assert.equal(asMember.status, malformed ? 400 : 403, `${what} as a member`);
        }
        const asAdmin = await send(admin, route.method, path, headers, post ? form(adminCsrf) : undefined);
        assert.ok(
          [400, 404].includes(asAdmin.status),
          `${what} as an admin: ${asAdmin.status} ${shown(asAdmin)}`,
        );
      }
    }
    assert.equal(await snapshot(), before, 'nothing changed');
  });

  it('refuses garbage, repeated and oversized query filters on every admin page with a 4xx at the field, or reads them as nothing, never a 500', async () => {
    const before = await snapshot();
    for (const route of routes.filter((candidate) => candidate.method === 'GET')) {
      const path = realPath(route);
      const names = new Set(
        PAGE_PARAMETERS.filter(([pattern]) => pattern.test(route.path)).flatMap(([, n]) => n),
      );
      for (const name of names) {
        for (const value of HOSTILE_QUERY_VALUES) {
          const answer = await send(admin, 'GET', `${path}?${name}=${value}`);
          assert.ok(
            answer.status < 500,
            `${path}?${name}=${value.slice(0, 40)}: ${answer.status} ${shown(answer)}`,
          );
        }
        const twice = await send(admin, 'GET', `${path}?${name}=a&${name}=b`);
        assert.ok(twice.status < 500, `${path}?${name} given twice: ${twice.status}`);
      }
    }
    assert.equal(await snapshot(), before, 'nothing changed');
  });

  it('refuses garbage dates, bounds and pages on the audit views with 400 naming the filter, listing nothing', async () => {
    for (const view of ['/admin/audit', '/admin/deliveries', '/admin/code-reuse']) {
      for (const query of [
        'since=yesterday',
        'since=2024-13-45',
        'since=2023-02-29',
        'until=1e309',
        `until=${'9'.repeat(41)}`,
        'since=1h&until=2h',
        'since=2024-05-01&since=2024-05-02',
        'client_id=%00',
        `user=${'u'.repeat(400)}`,
      ]) {
        const answer = await consoleGet(admin, `${server.origin}${view}?${query}`);
        assert.equal(answer.status, 400, `${view}?${query}: ${answer.status}`);
        assert.match(answer.body, /class="field-error"/, `${view}?${query}: said at its field`);
        assert.match(pageText(answer.body), /No (event|delivery|reused code) matches\./, `${view}?${query}`);
      }
    }
    for (const [view, query] of [
      ['/admin/audit', 'before=-1'],
      ['/admin/audit', 'before=abc'],
      ['/admin/deliveries', 'before=1.5'],
      ['/admin/code-reuse', 'page=0'],
      ['/admin/code-reuse', 'page=-3'],
    ] as const) {
      const answer = await consoleGet(admin, `${server.origin}${view}?${query}`);
      assert.equal(answer.status, 400, `${view}?${query}: ${answer.status}`);
    }
    // A bound or a page past the last is a well-formed filter: the page, listing what is there (nothing).
    for (const query of [
      '/admin/audit?before=999999999999999',
      '/admin/code-reuse?page=99999999999999999999',
    ]) {
      const answer = await consoleGet(admin, `${server.origin}${query}`);
      assert.equal(answer.status, 200, `${query}: ${answer.status}`);
    }
  });

  it('refuses a form body that is too large, not a form, not UTF-8 or gives a field twice on every admin POST, changing nothing', async () => {
    const before = await snapshot();
    const csrf = `csrf_token=${encodeURIComponent(adminCsrf)}`;
    const bodies: ReadonlyArray<
      readonly [label: string, status: number, headers: Record<string, string>, body: Buffer | string]
    > = [
      ['larger than 64 KiB', 413, {}, `${csrf}&name=${'x'.repeat(70_000)}`],
      ['JSON', 415, { 'content-type': 'application/json' }, JSON.stringify({ csrf_token: adminCsrf })],
      [
        'multipart',
        415,
        { 'content-type': 'multipart/form-data; boundary=b' },
        `--b\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n${adminCsrf}\r\n--b--\r\n`,
      ],
      ['text', 415, { 'content-type': 'text/plain' }, csrf],
      ['compressed', 415, { 'content-encoding': 'gzip' }, csrf],
      ['not UTF-8', 400, {}, Buffer.concat([Buffer.from(`${csrf}&name=`), Buffer.from([0xff, 0xfe, 0xc0])])],
      ['an escape that is not UTF-8', 400, {}, `${csrf}&name=%ff%fe`],
      ['the CSRF token twice', 400, {}, `${csrf}&${csrf}`],
      [
        'a field twice',
        400,
        {},
        `${csrf}&name=a&name=b&to=a&to=b&password=a&password=b&reason=a&reason=b&version=1&version=2`,
      ],
    ];
    for (const route of routes.filter((candidate) => candidate.method === 'POST')) {
      const path = realPath(route);
      for (const [label, status, headers, body] of bodies) {
        // A field given twice refuses only a route that reads it; the others take it as any unknown field.
        if (label === 'a field twice') continue;
        const answer = await postForm(path, body, headers);
        assert.equal(answer.status, status, `${path}, ${label}: ${shown(answer)}`);
      }
    }
    for (const path of [
      '/admin/apps/new',
      `/admin/users/${targetId}/password`,
      '/admin/states/Member/rename',
    ]) {
      const answer = await postForm(path, bodies.at(-1)![3]);
      assert.equal(answer.status, 400, `${path}, a field twice: ${shown(answer)}`);
      assert.match(pageText(answer.body), /more than once/);
    }
    assert.equal(await snapshot(), before, 'nothing changed');
  });

  it('refuses every admin POST with another visitor’s CSRF token, a token only in the query, a forged one, or from another site, changing nothing', async () => {
    const before = await snapshot();
    const token = encodeURIComponent(adminCsrf);
    const attempts: ReadonlyArray<
      readonly [label: string, headers: Record<string, string>, body: string, query?: string]
    > = [
      ['a member’s token', {}, `csrf_token=${encodeURIComponent(memberCsrf)}`],
      ['the token in the query only', {}, 'name=x', `?csrf_token=${token}`],
      ['the token with a character more', {}, `csrf_token=${token}x`],
      ['the token in upper case', {}, `csrf_token=${encodeURIComponent(adminCsrf.toUpperCase())}`],
      ['the token under another name', {}, `CSRF_TOKEN=${token}`],
      ['a token of 50 000 characters', {}, `csrf_token=${'A'.repeat(50_000)}`],
      ['another origin', { origin: 'http://evil.example' }, `csrf_token=${token}`],
      ['an opaque origin', { origin: 'null' }, `csrf_token=${token}`],
      ['a cross-site fetch', { origin: '', 'sec-fetch-site': 'cross-site' }, `csrf_token=${token}`],
    ];
    for (const route of routes.filter((candidate) => candidate.method === 'POST')) {
      for (const [label, headers, body, query] of attempts) {
        const { origin, ...rest } = headers;
        const answer = await send(
          admin,
          'POST',
          `${realPath(route)}${query ?? ''}`,
          { 'content-type': FORM, ...(origin === '' ? {} : { origin: origin ?? server.origin }), ...rest },
          body,
        );
        assert.equal(answer.status, 403, `${route.path}, ${label}: ${shown(answer)}`);
        assert.match(answer.body, /Form refused/, `${route.path}, ${label}`);
      }
    }
    assert.equal(await snapshot(), before, 'nothing changed');
  });

  it('answers 405 to a method no admin route takes, and to a POST on a page that takes none', async () => {
    const posted = new Set(routes.filter((route) => route.method === 'POST').map((route) => route.path));
    for (const route of routes) {
      for (const method of ['PUT', 'DELETE', 'PATCH', 'OPTIONS']) {
        const answer = await send(admin, method, realPath(route));
        assert.equal(answer.status, 405, `${method} ${route.path}`);
      }
      if (route.method === 'GET' && !posted.has(route.path)) {
        const answer = await postForm(realPath(route), `csrf_token=${encodeURIComponent(adminCsrf)}`);
        assert.equal(answer.status, 405, `POST ${route.path}`);
      }
    }
  });

  describe('the application form', () => {
    const HOSTILE_URIS = [
      'javascript:alert(1)',
      'data:text/html,<script>alert(1)</script>',
      'https://rp.example.org/cb\rSet-Cookie: x=1',
      'https://rp.example.org/a b',
      `https://rp.example.org/${'a'.repeat(10_000)}`,
      'https://rp.example.org/\u0000',
      'https://rp.example.org/cb#fragment',
      'https://user:pass@rp.example.org/cb',
      'https://*.example.org/cb',
      '//rp.example.org/cb',
      'https://rp.example.org:99999/cb',
      'https://rp.example.org/%zz',
    ];
    const URI_FIELDS = ['redirect_uris', 'post_logout_redirect_uris', 'backchannel_logout_uri', 'logo_url'];
    const valid = {
      name: 'Hostile sweep',
      redirect_uris: 'https://rp.example.org/callback',
      post_logout_redirect_uris: 'https://rp.example.org/bye',
      grant_types: ['authorization_code', 'refresh_token'],
      access_token_format: 'inherit',
      pkce_required: 'on',
    };

    it('refuses a hostile URI at its field, on a new application and an edit, creating and changing nothing', async () => {
      const before = await snapshot();
      for (const field of URI_FIELDS) {
        for (const uri of HOSTILE_URIS) {
          // A logo URL may hold a fragment or a `*` (nothing matches it); the service takes a `%zz` there too.
          if (field === 'logo_url' && /#|\*|%zz/.test(uri)) continue;
          const what = `${field}=${JSON.stringify(uri.slice(0, 60))}`;
          const form = await consoleGet(admin, `${server.origin}/admin/apps/new`);
          const created = await consolePost(admin, `${server.origin}/admin/apps/new`, form.csrf!, {
            ...valid,
            client_id: formField(form.body, 'client_id'),
            client_type: 'confidential',
            [field]: uri,
          });
          assert.equal(created.status, 400, `new: ${what}`);
          assert.match(created.body, new RegExp(`id="${field}-error"`), `new: ${what} said at its field`);
          const edit = await consoleGet(admin, `${server.origin}/admin/apps/${clientId}/edit`);
          const edited = await consolePost(
            admin,
            `${server.origin}/admin/apps/${clientId}/edit`,
            edit.csrf!,
            {
              ...valid,
              version: formField(edit.body, 'version'),
              [field]: uri,
            },
          );
          assert.equal(edited.status, 400, `edit: ${what}`);
          assert.match(edited.body, new RegExp(`id="${field}-error"`), `edit: ${what} said at its field`);
        }
      }
      assert.equal(await snapshot(), before, 'nothing created or changed');
    });

    it('refuses a whitelist naming no state or group at its field, creating and changing nothing', async () => {
      const before = await snapshot();
      for (const [field, value] of [
        ['states', 'No such state'],
        ['groups', 'No such group'],
        ['states', 'x'.repeat(10_000)],
        ['groups', '\u202e'],
      ] as const) {
        const form = await consoleGet(admin, `${server.origin}/admin/apps/new`);
        const created = await consolePost(admin, `${server.origin}/admin/apps/new`, form.csrf!, {
          ...valid,
          client_id: formField(form.body, 'client_id'),
          [field]: value,
        });
        assert.equal(created.status, 400, `new: ${field}=${value.slice(0, 20)}`);
        assert.match(created.body, new RegExp(`id="${field}-error"`));
        const edit = await consoleGet(admin, `${server.origin}/admin/apps/${clientId}/edit`);
        const edited = await consolePost(admin, `${server.origin}/admin/apps/${clientId}/edit`, edit.csrf!, {
          ...valid,
          version: formField(edit.body, 'version'),
          [field]: value,
        });
        assert.equal(edited.status, 400, `edit: ${field}=${value.slice(0, 20)}`);
        assert.match(edited.body, new RegExp(`id="${field}-error"`));
      }
      assert.equal(await snapshot(), before, 'nothing created or changed');
    });
  });

  it('answers a test back-channel logout that reached no application with a 4xx page saying nothing was sent', async () => {
    const before = await snapshot();
    const unknown = await consolePost(admin, `${server.origin}/admin/apps/test-logout`, adminCsrf, {
      client_id: ['no-such-app', '-1', 'x'.repeat(10_000)],
    });
    assert.equal(unknown.status, 404, shown(unknown));
    assert.match(
      pageText(unknown.body),
      /Nothing was sent: none of the ticked applications can receive a test logout\./,
    );
    assert.match(pageText(unknown.body), /no-such-app .*no such application/);
    assert.doesNotMatch(pageText(unknown.body), /received/);
    // An application that exists but has no back-channel logout URI (its box is disabled): a conflict.
    const unreachable = await consolePost(admin, `${server.origin}/admin/apps/test-logout`, adminCsrf, {
      client_id: clientId,
    });
    assert.equal(unreachable.status, 409, shown(unreachable));
    assert.match(pageText(unreachable.body), /Nothing was sent/);
    assert.match(pageText(unreachable.body), /no back-channel logout URI/);
    assert.equal(await snapshot(), before, 'nothing changed');
  });

  it('refuses a hostile revocation reason at its field, revoking nothing', async () => {
    const before = await snapshot();
    for (const reason of ['r'.repeat(201), 'line\nbreak', '\u0000', ' ']) {
      const answer = await consolePost(
        admin,
        `${server.origin}/admin/users/${targetId}/revoke-tokens`,
        adminCsrf,
        {
          reason,
        },
      );
      assert.equal(answer.status, 400, JSON.stringify(reason.slice(0, 20)));
      assert.match(
        answer.body,
        /<p class="field-error" id="reason-error">The reason must /,
        'said at its field',
      );
    }
    assert.equal(await snapshot(), before, 'nothing revoked');
  });

  it('never echoes a refused password, nor logs a secret or a server error, through the whole sweep', async () => {
    const refused = [`${'p'.repeat(1100)}-too-long`, 'hunter2\u0000hunter2'];
    for (const password of refused) {
      harness.registerSecret(password, 'a password the directory refuses');
      const answer = await consolePost(
        admin,
        `${server.origin}/admin/users/${targetId}/password`,
        adminCsrf,
        {
          password,
        },
      );
      assert.equal(answer.status, 400);
      harness.scanText('the refused password page', answer.body);
    }
    await harness.assertNoLeaks();
    const failures = harness.logLines.filter((line) => /console request failed|"level":(50|60)/.test(line));
    assert.deepEqual(failures, [], 'no server error logged');
  });
});
