import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import {
  AA_LOGIN_URL,
  describeOnEachAllianceAuth,
  expectedFixture,
  FIXTURE_PASSWORD,
} from '../helpers/alliance-auth.ts';
import { giveGoneState, insertAllianceAuthUser } from '../helpers/alliance-auth-changes.ts';
import { serveAllianceAuth } from '../helpers/alliance-auth-server.ts';
import { consoleGet, consolePost, consoleSignIn, pageText, tableRowLinkingTo } from '../helpers/console.ts';
import { authorizeParams, introspect, login } from '../helpers/flows.ts';
import type { Browser, TestServer } from '../helpers/server.ts';
import { authorizeUrl, seedApp, signIn } from '../helpers/server.ts';

/** Every form of a page but the header's sign-out: what the page offers to change. */
function offeredForms(body: string): string[] {
  return [...body.matchAll(/<form\b[^>]*>/g)]
    .map((match) => match[0])
    .filter((form) => !form.includes('action="/account/sign-out"'))
    .filter((form) => !/method="get"[^>]*action="\/admin\/users"/.test(form));
}

/** Links to the confirmation pages of the directory's changes. */
function changeLinks(body: string): string[] {
  return [
    ...body.matchAll(
      /href="(\/admin\/(?:users|states|groups)\/[^"]+\/(?:deactivate|activate|state|add-group|remove-group|password|delete|rename|priority|access)[^"]*)"/g,
    ),
  ].map((match) => match[1]!);
}

/** Links to the actions on aa-oidc's own tokens and sessions of a user (offered with either directory). */
function tokenLinks(body: string): string[] {
  return [...body.matchAll(/href="(\/admin\/users\/\d+\/(?:revoke-tokens|sign-out))"/g)].map(
    (match) => match[1]!,
  );
}

await describeOnEachAllianceAuth(
  (database) => `the admin UI over the Alliance Auth directory, on ${database}`,
  (kind) => {
    const suite = serveAllianceAuth(kind, { directory: { passwordLogin: true } });
    let server: TestServer;
    let admin: Browser;
    let csrf: string;
    const expected = expectedFixture();
    const alice = expected.users.find((user) => user.username === 'alice')!;
    const superuser = expected.users.find((user) => user.is_superuser && user.is_active)!;
    const group = alice.groups[0]!;
    const state = expected.states[0]!.name;

    before(async () => {
      server = suite.server;
      admin = await consoleSignIn(server, superuser.username, {
        password: FIXTURE_PASSWORD,
        returnTo: '/admin',
      });
      csrf = (await consoleGet(admin, `${server.origin}/admin`)).csrf!;
      assert.ok(csrf, 'the admin pages carry a CSRF token (the header sign-out)');
    });

    it("shows Alliance Auth's users, states and groups with no form to change them, and links to Alliance Auth", async () => {
      const pages = [
        '/admin',
        '/admin/users',
        `/admin/users/${alice.id}`,
        '/admin/states',
        `/admin/states/${encodeURIComponent(state)}`,
        '/admin/groups',
        `/admin/groups/${encodeURIComponent(group)}`,
      ];
      for (const path of pages) {
        const page = await consoleGet(admin, `${server.origin}${path}`);
        assert.equal(page.status, 200, `${path}: ${page.body.slice(0, 300)}`);
        assert.deepEqual(offeredForms(page.body), [], `${path} offers no form`);
        assert.deepEqual(changeLinks(page.body), [], `${path} links to no change`);
        assert.deepEqual(
          tokenLinks(page.body),
          path === `/admin/users/${alice.id}`
            ? [`/admin/users/${alice.id}/sign-out`, `/admin/users/${alice.id}/revoke-tokens`]
            : [],
          `${path}: only the user's page links to signing out and revoking`,
        );
        if (path !== '/admin') {
          assert.match(pageText(page.body), /come from Alliance Auth and are read-only here/, path);
          assert.ok(page.body.includes('href="https://auth.example.org/admin/"'), `${path} links to AA`);
        }
      }
      const list = (await consoleGet(admin, `${server.origin}/admin/users`)).body;
      for (const user of expected.users) {
        // AA's permission held by the user directly, as the user's page says it (below).
        assert.equal(
          tableRowLinkingTo(list, `/admin/users/${user.id}`)?.['OIDC access held directly'],
          user.oidc_permission_sources.includes('user') ? 'yes' : 'no',
          user.username,
        );
      }
      const detail = pageText((await consoleGet(admin, `${server.origin}/admin/users/${alice.id}`)).body);
      assert.ok(detail.includes(group), 'the groups of the user');
      // AA's own per-user permission, as read (erin holds it directly, alice through a group and her
      // state), with no control to change it here.
      assert.match(detail, /OIDC access held directly no/);
      const erin = expected.users.find((user) => user.oidc_permission_sources.includes('user'))!;
      const direct = await consoleGet(admin, `${server.origin}/admin/users/${erin.id}`);
      assert.match(pageText(direct.body), /OIDC access held directly yes/);
      assert.deepEqual(changeLinks(direct.body), []);
      const groups = pageText((await consoleGet(admin, `${server.origin}/admin/groups`)).body);
      for (const item of expected.groups) assert.ok(groups.includes(item.name), item.name);
    });

    it('filters users by a state or group as Alliance Auth names it, regardless of case, and says at the field that an unknown one names none', async () => {
      const aliceState = alice.state.name;
      const folded = await consoleGet(
        admin,
        `${server.origin}/admin/users?state=${encodeURIComponent(aliceState.toUpperCase())}&group=${encodeURIComponent(group.toLowerCase())}`,
      );
      assert.equal(folded.status, 200, pageText(folded.body).slice(0, 600));
      assert.ok(folded.body.includes(`href="/admin/users/${alice.id}"`), 'alice is listed');
      assert.match(folded.body, new RegExp(`<option value="${aliceState}"\\s+selected\\s*>`));
      for (const [query, field] of [
        ['state=No%20such%20state', 'state'],
        ['group=No%20such%20group', 'group'],
      ] as const) {
        const page = await consoleGet(admin, `${server.origin}/admin/users?${query}`);
        assert.equal(page.status, 400, query);
        assert.match(
          page.body,
          new RegExp(
            `<p class="field-error" id="${field}-error">No ${field} is named &quot;No such ${field}&quot;`,
          ),
          query,
        );
        assert.equal(/<a href="\/admin\/users\/\d+">/.test(page.body), false, `${query}: nobody listed`);
      }
    });

    it('finds nobody, never a server error, for a NUL byte in a username or search, or an id past 32 bits', async () => {
      const pages: Array<[string, number, RegExp]> = [
        ['/admin/users?q=a%00b', 200, /No user matches/],
        ['/admin/audit?user=a%00b', 400, /Not a username: it holds a control character/],
        ['/admin/deliveries?user=a%00b', 400, /No delivery matches/],
        ['/admin/code-reuse?user=a%00b', 400, /No reused code matches/],
        ['/admin/users/2147483648', 404, /No user has this id/],
        ['/admin/users/999999999999999/sign-out', 404, /No user has this id/],
      ];
      for (const [path, status, text] of pages) {
        const page = await consoleGet(admin, `${server.origin}${path}`);
        assert.equal(page.status, status, `${path}: ${page.body.slice(0, 300)}`);
        assert.match(pageText(page.body), text, path);
      }
      const revoked = await consolePost(
        admin,
        `${server.origin}/admin/users/2147483648/revoke-tokens`,
        csrf,
        {
          reason: 'no such user',
        },
      );
      assert.equal(revoked.status, 404);
    });

    it('refuses a forged change with the CSRF token: 409, nothing changed, and says where to change it', async () => {
      const forged: Array<[string, Record<string, string>]> = [
        [`/admin/users/${alice.id}/deactivate`, {}],
        [`/admin/users/${alice.id}/remove-group`, { group }],
        [`/admin/users/${alice.id}/password`, { password: 'a new password 123' }],
        [`/admin/users/${alice.id}/access`, { oidc_access: 'yes' }],
        [`/admin/users/${alice.id}/delete`, {}],
        ['/admin/groups', { name: 'Forged group' }],
        ['/admin/states', { name: 'Forged state', priority: '7' }],
        [`/admin/groups/${encodeURIComponent(group)}/delete`, {}],
        [`/admin/states/${encodeURIComponent(state)}/rename`, { to: 'Renamed' }],
      ];
      for (const [path, fields] of forged) {
        const response = await consolePost(admin, `${server.origin}${path}`, csrf, fields);
        assert.equal(response.status, 409, `${path}: ${response.body.slice(0, 300)}`);
        const text = pageText(response.body);
        assert.match(text, /Nothing was changed: this directory is read-only in aa-oidc/, path);
        assert.match(text, /Change them in Alliance Auth’s administration/, path);
      }
      const after = await server.app.directory.profileById(alice.id);
      assert.equal(after?.active, true);
      assert.ok(after?.groups.some((item) => item.name === group));
      const groups = await server.app.directory.listGroups();
      assert.equal(
        groups.some((item) => item.name === 'Forged group'),
        false,
      );
      // Asking for a change's confirmation page is refused the same way.
      const preview = await consoleGet(admin, `${server.origin}/admin/users/${alice.id}/deactivate`);
      assert.equal(preview.status, 409);
      assert.deepEqual(offeredForms(preview.body), []);
    });

    it('says on the account page that the password is changed in Alliance Auth, linking there, with no form to change it', async () => {
      const page = await consoleGet(admin, `${server.origin}/account`);
      assert.equal(page.status, 200);
      assert.equal(page.body.includes('action="/account/password"'), false, 'no password form');
      assert.match(
        pageText(page.body),
        /Password Your password is your Alliance Auth one: change it in Alliance Auth, not here\./,
      );
      assert.ok(page.body.includes(`<a href="${AA_LOGIN_URL}">Alliance Auth</a>`), 'a link to AA');
      // A forged change is refused there, the line still said.
      const refused = await consolePost(admin, `${server.origin}/account/password`, page.csrf!, {
        current_password: FIXTURE_PASSWORD,
        new_password: 'a new password 123',
        new_password_again: 'a new password 123',
      });
      assert.equal(refused.status, 409);
      assert.match(
        pageText(refused.body),
        /Password Passwords are managed by Alliance Auth, not here\. Your password is your Alliance Auth one/,
      );
    });

    it("tells on a member's page what their Alliance Auth password is worth here, never the hash", async () => {
      // Django's BCryptSHA256PasswordHasher: AA takes it, aa-oidc cannot check it.
      const bcrypt = 'bcrypt_sha256$$2b$12$NF7ZcEKXV8vIXmSEc4yWFOyhVjHJL3zMrUWC4fh4MhAaX2t5ZGpyi';
      const unusable = '!q3ZbO2NGC9eTTcL4kpDW7RhcU1Hjw5zEmA8sVXfy';
      const bob = expected.users.find((user) => user.username === 'bob')!;
      const carol = expected.users.find((user) => user.username === 'carol')!;
      const kept = await suite.fixture.owner
        .selectFrom('auth_user')
        .select(['username', 'password'])
        .where('username', 'in', ['bob', 'carol'])
        .execute();
      const setPassword = (username: string, password: string) =>
        suite.fixture.run('UPDATE auth_user SET password = ? WHERE username = ?', [password, username]);
      await setPassword('bob', bcrypt);
      await setPassword('carol', unusable);
      try {
        const passwordLine = async (id: number) => {
          const page = await consoleGet(admin, `${server.origin}/admin/users/${id}`);
          assert.equal(page.status, 200, page.body.slice(0, 300));
          for (const hash of [bcrypt, unusable, 'NF7ZcEKXV8vIXmSEc4yWFO', 'pbkdf2_sha256$'])
            assert.ok(!page.body.includes(hash), 'no hash shown');
          return /Password (.*?) Two-factor sign-in/.exec(pageText(page.body))?.[1];
        };
        assert.equal(await passwordLine(alice.id), 'kept by Alliance Auth; signs in here');
        assert.equal(
          await passwordLine(bob.id),
          'kept by Alliance Auth in a form aa-oidc cannot check (a hasher other than PBKDF2, Argon2 or scrypt, such as bcrypt, or costs beyond its limits): the member signs in with EVE Online until it is changed in Alliance Auth',
        );
        assert.equal(
          await passwordLine(carol.id),
          'none at Alliance Auth: the member signs in with EVE Online',
        );
      } finally {
        for (const { username, password } of kept) await setPassword(username, password);
      }
    });

    it("revokes a user's tokens and signs them out everywhere: aa-oidc's own, not the directory's", async () => {
      const created = await seedApp(server, { name: 'Wiki' });
      const client = { clientId: created.clientId, clientSecret: created.clientSecret! };
      const signInAlice = () => login(server, client, alice.username, { password: FIXTURE_PASSWORD });
      const active = async (token: string) => (await introspect(server, client, token)).body.active;

      const first = await signInAlice();
      assert.equal(await active(first.accessToken), true);
      const revokePage = `${server.origin}/admin/users/${alice.id}/revoke-tokens`;
      const preview = await consoleGet(admin, revokePage);
      assert.equal(preview.status, 200, preview.body.slice(0, 300));
      assert.match(pageText(preview.body), /code\(s\) and token\(s\) are revoked/);
      const revoked = await consolePost(admin, revokePage, preview.csrf!, { reason: 'laptop stolen' });
      assert.equal(revoked.status, 303, revoked.body.slice(0, 300));
      assert.equal(revoked.location, `/admin/users/${alice.id}?done=revoke-tokens`);
      assert.equal(await active(first.accessToken), false, 'the access token is revoked');

      const second = await signInAlice();
      const signOutPage = `${server.origin}/admin/users/${alice.id}/sign-out`;
      const confirm = await consoleGet(admin, signOutPage);
      assert.equal(confirm.status, 200, confirm.body.slice(0, 300));
      assert.match(pageText(confirm.body), /browser session\(s\) end/);
      const signedOut = await consolePost(admin, signOutPage, confirm.csrf!);
      assert.equal(signedOut.status, 303, signedOut.body.slice(0, 300));
      assert.equal(await active(second.accessToken), false, 'the access token is revoked');
      assert.match(
        pageText((await consoleGet(admin, `${server.origin}/admin/users/${alice.id}`)).body),
        /No live session/,
      );
      // The browser's session ended: authorize asks for the password again.
      const again = await signIn(
        second.browser,
        server,
        authorizeUrl(server, authorizeParams(client).params),
      );
      assert.equal(again.status, 200);
      assert.match(await again.text(), /name="password"/);
      // The directory is untouched: Alliance Auth still says alice is active, with her groups.
      const profile = await server.app.directory.profileById(alice.id);
      assert.equal(profile?.active, true);
      assert.ok(profile?.groups.some((item) => item.name === group));
    });

    it('lists under "No state" the users without a profile or whose state is gone, and counts them on the dashboard', async () => {
      const fixture = suite.fixture;
      await insertAllianceAuthUser(fixture, 40, 'ghost', FIXTURE_PASSWORD);
      await fixture.run('DELETE FROM authentication_userprofile WHERE user_id = 40');
      await insertAllianceAuthUser(fixture, 41, 'adrift', FIXTURE_PASSWORD);
      // A state deleted with the foreign key's checks off (AA would have moved its users to Guest).
      await giveGoneState(fixture, 41);
      const form = await consoleGet(admin, `${server.origin}/admin/users`);
      const noState = /<option value="([^"]*)"\s*>No state<\/option>/.exec(form.body)![1]!;
      const listed = async (query: Record<string, string>) => {
        const page = await consoleGet(
          admin,
          `${server.origin}/admin/users?${new URLSearchParams(query).toString()}`,
        );
        assert.equal(page.status, 200, page.body.slice(0, 300));
        return [...page.body.matchAll(/<a href="\/admin\/users\/(\d+)">/g)].map((match) => Number(match[1]));
      };
      assert.deepEqual(await listed({ state: noState }), [41, 40], 'by username: adrift, ghost');
      assert.deepEqual(await listed({ state: noState, q: 'gho' }), [40], 'with the other filters');
      assert.deepEqual(await listed({ state: noState, active: 'no' }), []);
      const states = await listed({ state });
      assert.ok(!states.includes(40) && !states.includes(41), 'a state lists neither');
      assert.match((await consoleGet(admin, `${server.origin}/admin`)).body, /No state: <strong>2<\/strong>/);
      // The admin records (`user list`'s) select the same users for no state.
      const records = await server.app.directoryAdmin.listUsers({ state: null });
      assert.deepEqual(
        records.map((record) => [record.user.username, record.state]),
        [
          ['adrift', null],
          ['ghost', null],
        ],
      );
    });
  },
);
