import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { sql } from 'kysely';
import {
  allianceAuthDirectory,
  type AllianceAuthTestDatabase,
  createAllianceAuthDatabase,
  describeOnEachAllianceAuth,
  expectedFixture,
  FIXTURE_PASSWORD,
} from '../helpers/alliance-auth.ts';
import {
  eveLogin,
  type EveSsoStandIn,
  followEveCallback,
  startEveSignIn,
  startEveSsoStandIn,
} from '../helpers/eve-sso-stand-in.ts';
import { Browser, formField, seedApp, startServer, type TestServer } from '../helpers/server.ts';
import { type RawResponse, rawRequest } from './raw-request.ts';

/**
 * The hostile-input sweep (hostile-input.test.ts) over what Alliance Auth mode serves besides: the
 * read-only admin and account pages, every change refused as read-only (409) whatever it is sent
 * with, and the EVE SSO callback's query (its state and code missing, doubled, nested, huge, NUL, not
 * UTF-8). Never a 500, a stack trace or a secret; nothing written to Alliance Auth's database, no code
 * redeemed at EVE SSO for a callback that is not the flow's.
 */
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const STACK_OR_DRIVER_TEXT =
  /\bat [^\n<]*\.[cm]?[jt]s:\d+|TypeError|ReferenceError|invalid byte sequence|SQLITE_|syntax error at|ER_[A-Z_]+/;

function assertHeld(label: string, response: RawResponse, secrets: readonly string[] = []): void {
  assert.ok(
    response.status >= 200 && response.status < 500,
    `${label}: ${response.status} ${response.body.slice(0, 200)}`,
  );
  assert.doesNotMatch(response.body, STACK_OR_DRIVER_TEXT, `${label}: no stack trace or driver text`);
  assert.ok(!response.body.includes(FIXTURE_PASSWORD), `${label}: no password echoed`);
  for (const secret of secrets) assert.ok(!response.body.includes(secret), `${label}: no secret echoed`);
}

/** The changes a console POST could make in Alliance Auth's database: its users, groups, states, memberships. */
async function allianceAuthRows(fixture: AllianceAuthTestDatabase): Promise<string> {
  const tables = [
    'auth_user',
    'auth_group',
    'auth_user_groups',
    'authentication_state',
    'authentication_userprofile',
    'authentication_state_permissions',
  ];
  const counts = await Promise.all(
    tables.map(async (table) => {
      const row = await sql<{ n: number | string }>`select count(*) as n from ${sql.table(table)}`.execute(
        fixture.owner,
      );
      return `${table}=${row.rows[0]!.n}`;
    }),
  );
  const users = await sql<
    Record<string, unknown>
  >`select id, username, password, is_active, is_superuser, last_login from auth_user order by id`.execute(
    fixture.owner,
  );
  return `${counts.join(' ')} ${JSON.stringify(users.rows)}`;
}

const HOSTILE_SEGMENTS = ['%00', 'a%00b', '%FF', '%C3%28', '9007199254740993', '-1', 'x'.repeat(6000)];

await describeOnEachAllianceAuth(
  (database) => `hostile input in Alliance Auth mode, on ${database}`,
  (kind) => {
    const expected = expectedFixture();
    const alice = expected.users.find((user) => user.username === 'alice')!;
    const superuser = expected.users.find((user) => user.is_superuser && user.is_active)!;
    const aliceMain = eveLogin(alice.characters.find((character) => character.is_main)!);
    let fixture: AllianceAuthTestDatabase;
    let eve: EveSsoStandIn;
    let server: TestServer;
    let client: { clientId: string; clientSecret: string };
    let admin: Browser;
    let csrf: string;
    const values: Record<string, string> = {};

    before(async () => {
      fixture = await createAllianceAuthDatabase(kind);
      eve = await startEveSsoStandIn();
      server = await startServer({
        directory: allianceAuthDirectory(fixture.readerUrl, { passwordLogin: true }),
        eveSso: eve.settings,
      });
      const created = await seedApp(server, { name: 'Wiki', skipAuthorization: true });
      client = { clientId: created.clientId, clientSecret: created.clientSecret! };
      values.clientId = created.clientId;
      values.id = String(alice.id);
      values.name = alice.groups[0]!;
      values.kid = (
        await server.app.database.db.selectFrom('signing_key').select('kid').executeTakeFirstOrThrow()
      ).kid;
      // The login page offers EVE first: its password form is the one that posts to `…/login`.
      admin = new Browser();
      const page = await (
        await admin.follow(`${server.origin}/account/sign-in?return=%2Fadmin`, server.origin)
      ).text();
      const action = /<form[^>]*action="([^"]*\/login)"/.exec(page)![1]!;
      const signedIn = await admin.follow(new URL(action, server.origin).href, server.origin, {
        method: 'POST',
        headers: FORM,
        body: new URLSearchParams({
          csrf_token: formField(page, 'csrf_token'),
          username: superuser.username,
          password: FIXTURE_PASSWORD,
        }).toString(),
      });
      assert.equal(signedIn.status, 200, 'the console callback page');
      csrf = (await rawRequest(`${server.origin}/account`, { browser: admin })).body.match(
        /name="csrf_token" value="([^"]*)"/,
      )![1]!;
    });
    after(async () => {
      await server?.close();
      await eve?.close();
      await fixture?.drop();
    });

    const routes = () => server.app.consoleRoutes.filter((route) => !route.path.includes('sign-out'));
    const filled = (path: string, segment?: string) =>
      path.replace(
        /:(\w+)/g,
        (_, name: string) =>
          segment ??
          encodeURIComponent(
            name === 'name' && path.startsWith('/admin/states/') ? expected.states[0]!.name : values[name]!,
          ),
      );
    const send = (target: string, options: Parameters<typeof rawRequest>[1] = {}) =>
      rawRequest(`${server.origin}${target}`, { browser: admin, ...options });
    /** A change to the directory: a user's, a group's, a state's, the account's own password. */
    const changesDirectory = (path: string) =>
      /^\/admin\/(?:groups|states)\b|^\/account\/password$/.test(path) ||
      /^\/admin\/users\/:id\/(?:deactivate|activate|state|add-group|remove-group|password|delete|access)$/.test(
        path,
      );

    it('never fails on a hostile query or path parameter of the read-only pages, and refuses every change to the directory with 409, writing nothing to Alliance Auth', async () => {
      const before = await allianceAuthRows(fixture);
      const queries = [
        'q=%00&state=%00&group=%00&page=9007199254740993',
        'q[]=1&state[x]=2&group=a&group=b&page=-1',
        `q=${'x'.repeat(4000)}&group=${'g'.repeat(4000)}`,
        'state=%E2%80%AE&group=%E2%80%AE',
      ];
      for (const route of routes().filter((route) => route.method === 'GET')) {
        for (const query of queries)
          assertHeld(`GET ${route.path}?${query.slice(0, 30)}`, await send(`${filled(route.path)}?${query}`));
        for (const segment of route.path.includes(':') ? HOSTILE_SEGMENTS : []) {
          const response = await send(filled(route.path, segment));
          assertHeld(`GET ${route.path} with ${segment.slice(0, 20)}`, response);
          if (/%(?:00|FF|C3%28)/.test(segment))
            assert.equal(response.status, 400, `GET ${route.path} ${segment}`);
        }
      }
      const fields = new URLSearchParams({
        csrf_token: csrf,
        name: 'Hostile',
        to: 'Renamed',
        priority: '5',
        oidc_access: 'yes',
        state: expected.states[0]!.name,
        group: alice.groups[0]!,
        password: 'a new password 123',
        new_password: 'a new password 123',
        confirm_password: 'a new password 123',
        current_password: FIXTURE_PASSWORD,
        reason: 'test',
      }).toString();
      const changes = routes().filter((route) => route.method === 'POST' && changesDirectory(route.path));
      assert.ok(changes.length >= 10, changes.map((route) => route.path).join(' '));
      for (const route of changes) {
        const bodies: Array<[string, string]> = [
          ['its fields', fields],
          [
            'a NUL in each field',
            new URLSearchParams(
              [...new URLSearchParams(fields)].map(([name, value]): [string, string] => [
                name,
                name === 'csrf_token' ? value : '\0',
              ]),
            ).toString(),
          ],
          ['its fields as arrays', fields.replace(/&(\w+)=/g, '&$1[]=')],
          ['its fields twice', `${fields}&name=Other&group=Other`],
        ];
        for (const [what, body] of bodies) {
          const response = await send(filled(route.path), {
            method: 'POST',
            headers: { ...FORM, origin: server.origin },
            body,
          });
          assertHeld(`POST ${route.path} with ${what}`, response);
          assert.ok(
            response.status === 409 || (what !== 'its fields' && response.status >= 400),
            `POST ${route.path} with ${what}: ${response.status} ${response.body.slice(0, 200)}`,
          );
        }
        for (const segment of route.path.includes(':') ? HOSTILE_SEGMENTS : []) {
          const response = await send(filled(route.path, segment), {
            method: 'POST',
            headers: { ...FORM, origin: server.origin },
            body: fields,
          });
          assertHeld(`POST ${route.path} with ${segment.slice(0, 20)}`, response);
          assert.ok(
            response.status >= 400,
            `POST ${route.path} with ${segment.slice(0, 20)}: ${response.status}`,
          );
        }
      }
      assert.equal(await allianceAuthRows(fixture), before, "nothing written to Alliance Auth's database");
    });

    it('refuses an EVE SSO callback whose state or code is missing, doubled, nested, huge, NUL or not UTF-8, redeeming nothing, and the sign-in under way still finishes', async () => {
      const started = await startEveSignIn(server, eve, client, aliceMain);
      const genuine = new URL(started.callbackUrl);
      const state = genuine.searchParams.get('state')!;
      const code = genuine.searchParams.get('code')!;
      const redeemed = eve.redeemed();
      const junk = [
        '',
        `?code=${code}`,
        `?state=${state}`,
        `?code=${code}&state=`,
        `?code=${code}&state[]=${state}`,
        `?code=${code}&state[x]=${state}`,
        `?code=${code}&state=${state}x`,
        `?code=${code}&state=${state.slice(0, -1)}`,
        `?code=${code}&state=x&state=${state}`,
        `?code=${code}&state=${'s'.repeat(8000)}`,
        `?code=${code}&state=${state}%00`,
        `?code=${code}&state=%00${state.slice(1)}`,
        `?code=${code}&state=%FF`,
        `?code=${code}&state=%C3%28`,
        `?code=%00&state=%FF`,
        `?code=${'c'.repeat(8000)}&state=forged`,
        '?error=%00&error_description=%FF',
      ];
      for (const query of junk) {
        const response = await rawRequest(`${server.origin}/o/eve-sso/callback${query}`, {
          browser: started.browser,
        });
        assertHeld(`the callback with ${query.slice(0, 60)}`, response, [state, code]);
        assert.equal(
          response.status,
          400,
          `the callback with ${query.slice(0, 60)}: ${response.body.slice(0, 200)}`,
        );
      }
      assert.equal(eve.redeemed(), redeemed, 'no code was redeemed at EVE SSO');
      const { callback } = await followEveCallback(server, started);
      assert.equal(callback.status, 303, 'the genuine callback still signs alice in');

      // The flow's state with a code doubled or nested is the provider's answer without a code: the
      // flow ends, nothing is redeemed.
      for (const query of [`?code=${code}&code=${code}`, `?code[]=${code}`, `?code[x]=${code}`]) {
        const again = await startEveSignIn(server, eve, client, aliceMain);
        const own = new URL(again.callbackUrl);
        const before = eve.redeemed();
        const response = await rawRequest(
          `${server.origin}/o/eve-sso/callback${query.replaceAll(code, own.searchParams.get('code')!)}&state=${own.searchParams.get('state')}`,
          { browser: again.browser },
        );
        assertHeld(`the callback with ${query}`, response, [own.searchParams.get('state')!]);
        assert.equal(response.status, 400, `the callback with ${query}`);
        assert.equal(eve.redeemed(), before, `the callback with ${query}: nothing redeemed`);
      }
    });

    it('takes no flow cookie of another shape than it wrote: one with a part added is no sign-in under way', async () => {
      const started = await startEveSignIn(server, eve, client, aliceMain);
      const key = [...started.browser.cookies.keys()].find((name) => name.endsWith('|_aa_oidc_external'))!;
      assert.ok(key, 'the flow cookie');
      started.browser.cookies.set(key, `${started.browser.cookies.get(key)!}.x`);
      const redeemed = eve.redeemed();
      const callback = await started.browser.fetch(started.callbackUrl);
      assert.equal(callback.status, 400);
      assert.match(await callback.text(), /This sign-in has expired/);
      assert.equal(eve.redeemed(), redeemed, 'nothing redeemed');
    });

    it('takes no value sealed for the flow cookie as the result cookie, which says who signed in', async () => {
      const started = await startEveSignIn(server, eve, client, aliceMain);
      const cookieKey = (name: string) =>
        [...started.browser.cookies.keys()].find((key) => key.endsWith(`|${name}`));
      // The flow's value: this browser's own sign-in under way, sealed by aa-oidc for the flow cookie.
      const flow = started.browser.cookies.get(cookieKey('_aa_oidc_external')!)!;
      const callback = await started.browser.fetch(started.callbackUrl);
      assert.equal(callback.status, 303, 'EVE SSO proved the character');
      const result = cookieKey('_aa_oidc_external_result');
      assert.ok(result, 'the result cookie');
      started.browser.cookies.set(result, flow);
      const back = await started.browser.fetch(
        new URL(callback.headers.get('location')!, server.origin).href,
      );
      assert.equal(back.status, 400);
      assert.match(await back.text(), /This sign-in has expired/);
    });
  },
);
