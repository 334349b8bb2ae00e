import assert from 'node:assert/strict';
import { it } from 'node:test';
import { decodeJwt } from 'jose';
import type { DirectoryChange } from '../../src/directory/port.ts';
import { describeOnEachAllianceAuth, FIXTURE_PASSWORD } from '../helpers/alliance-auth.ts';
import { followAllianceAuth } from '../helpers/alliance-auth-server.ts';
import { authorizeParams, codeFrom, introspect, tokenRequest, userinfo } from '../helpers/flows.ts';
import { authorizeUrl, Browser, signIn } from '../helpers/server.ts';
import { verifyLogoutToken } from '../logout/rp-receiver.ts';

/**
 * Alliance Auth's own changes (the SQL its code runs, test/helpers/alliance-auth-changes.ts) reach the
 * relying parties: the next poll cycle turns them into the directory's lifecycle changes, whose
 * consequences are those of the built-in directory's changes: tokens refused, revoked, back-channel
 * logout. Each test drives the cycle itself (`pollOnce`), so that nothing depends on timing.
 */
await describeOnEachAllianceAuth(
  (database) => `Alliance Auth's changes reach the applications, on ${database}`,
  (kind) => {
    const suite = followAllianceAuth(kind);
    const { poll, receiverApp, nextCycle } = suite;

    const signedIn = (client: { clientId: string; clientSecret: string }, username: string) =>
      suite.signedIn(client, username, { scope: 'openid' });

    /** The authorization request with `prompt=none`, answered from the browser's kept cookie. */
    async function silently(browser: Browser, client: { clientId: string }) {
      const { params } = authorizeParams(
        { clientId: client.clientId, clientSecret: '' },
        {
          scope: 'openid',
          prompt: 'none',
        },
      );
      const response = await browser.follow(authorizeUrl(suite.server, params), suite.server.origin);
      assert.equal(response.status, 303, 'the request leaves the server');
      return response;
    }

    async function assertRefused(
      client: { clientId: string; clientSecret: string },
      tokens: { access_token: string; refresh_token: string },
    ) {
      assert.equal(
        (await userinfo(suite.server, tokens.access_token)).status,
        401,
        'userinfo refuses the token',
      );
      const inspected = await introspect(suite.server, client, tokens.access_token);
      assert.equal(inspected.body.active, false, 'introspection says inactive');
      const refreshed = await tokenRequest(suite.server, client, {
        grant_type: 'refresh_token',
        refresh_token: tokens.refresh_token,
      });
      assert.equal(refreshed.status, 400, 'the refresh token is refused');
    }

    async function assertLoggedOut(app: Awaited<ReturnType<typeof receiverApp>>, userId: number) {
      assert.equal(app.receiver.requests.length, 1, 'one back-channel logout');
      await verifyLogoutToken(suite.server, app.receiver.tokens()[0]!, {
        clientId: app.clientId,
        sub: String(userId),
      });
    }

    it('AA renames a group and a state, and swaps two group names: the whitelists follow, nobody is told or refused', async () => {
      const board = await receiverApp({ name: 'Board', groups: ['Directors'] });
      const hall = await receiverApp({ name: 'Members hall', states: ['Member'] });
      const fleet = await receiverApp({ name: 'Fleet tools', groups: ['Fleet Commanders'] });
      const wiki = await receiverApp({ name: 'Wiki tools', groups: ['Wiki Editors'] });
      const signedInBefore = [
        { app: board, tokens: await signedIn(board, 'carol') },
        { app: hall, tokens: await signedIn(hall, 'alice') },
        { app: wiki, tokens: await signedIn(wiki, 'alice') },
      ];
      const whitelist = async (clientId: string) => {
        const application = (await suite.server.app.applications.findByClientId(clientId))!;
        return { states: application.states, groups: application.groups };
      };
      try {
        await suite.aa.rename('group', [['Directors', 'Leadership']]);
        await suite.aa.rename('state', [['Member', 'Alliance Member']]);
        // Fleet Commanders (id 2) and Wiki Editors (id 3) swap names, through a third one.
        await suite.aa.rename('group', [
          ['Fleet Commanders', 'Swapping'],
          ['Wiki Editors', 'Fleet Commanders'],
          ['Swapping', 'Wiki Editors'],
        ]);
        const outcome = await poll();
        assert.equal(outcome.outcome, 'applied', JSON.stringify(outcome));
        assert.ok(outcome.outcome === 'applied');
        assert.deepEqual(outcome.changes, [], 'a rename alone changes no user');
        assert.deepEqual(
          outcome.renames
            .map((rename) => `${rename.entity} ${rename.id}: ${rename.from} → ${rename.to}`)
            .sort(),
          [
            'group 1: Directors → Leadership',
            'group 2: Fleet Commanders → Wiki Editors',
            'group 3: Wiki Editors → Fleet Commanders',
            'state 2: Member → Alliance Member',
          ],
        );
        assert.deepEqual(await whitelist(board.clientId), { states: [], groups: ['Leadership'] });
        assert.deepEqual(await whitelist(hall.clientId), { states: ['Alliance Member'], groups: [] });
        // Each application still admits the same group (by id) under its new name.
        assert.deepEqual(await whitelist(fleet.clientId), { states: [], groups: ['Wiki Editors'] });
        assert.deepEqual(await whitelist(wiki.clientId), { states: [], groups: ['Fleet Commanders'] });
        await suite.server.app.logout.deliverDue();
        for (const app of [board, hall, fleet, wiki])
          assert.equal(app.receiver.requests.length, 0, 'nobody is logged out');
        for (const { app, tokens } of signedInBefore) {
          assert.equal(
            (await userinfo(suite.server, tokens.access_token)).status,
            200,
            'the token still works',
          );
          const refreshed = await tokenRequest(suite.server, app, {
            grant_type: 'refresh_token',
            refresh_token: tokens.refresh_token,
          });
          assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
        }
        await signedIn(board, 'carol');
        await signedIn(wiki, 'alice');
        const quiet = await poll();
        assert.deepEqual(quiet, { outcome: 'applied', users: 6, changes: [], renames: [], deletions: [] });
      } finally {
        await suite.aa.rename('group', [
          ['Leadership', 'Directors'],
          ['Wiki Editors', 'Swapping'],
          ['Fleet Commanders', 'Wiki Editors'],
          ['Swapping', 'Fleet Commanders'],
        ]);
        await suite.aa.rename('state', [['Alliance Member', 'Member']]);
        await poll();
      }
    });

    it('two members leave Directors in one cycle: the consumers take both changes at once, and each application is told', async () => {
      const app = await receiverApp({ name: 'Directors board', groups: ['Directors'] });
      const alice = await signedIn(app, 'alice');
      const carol = await signedIn(app, 'carol');
      // What the consumers are given: the batch form with every change of the cycle, or one change.
      const deliveries: number[][] = [];
      const spy = Object.assign(
        async (change: DirectoryChange) => {
          deliveries.push(['userId' in change ? change.userId : -1]);
        },
        {
          batch: async (changes: readonly DirectoryChange[]) => {
            deliveries.push(changes.map((change) => ('userId' in change ? change.userId : -1)));
          },
        },
      );
      const unsubscribe = suite.server.app.directoryChanges.subscribe(spy);
      try {
        await suite.aa.removeGroup(2, 'Directors');
        await suite.aa.removeGroup(4, 'Directors');
        await nextCycle();
        unsubscribe();
        assert.equal(deliveries.length, 1, JSON.stringify(deliveries));
        assert.deepEqual([...new Set(deliveries[0])].sort(), [2, 4]);
        assert.equal(app.receiver.requests.length, 2, 'one back-channel logout each');
        const told = await Promise.all(
          app.receiver.tokens().map(async (token) => {
            const claims = decodeJwt(token);
            await verifyLogoutToken(suite.server, token, { clientId: app.clientId, sub: String(claims.sub) });
            return claims.sub;
          }),
        );
        assert.deepEqual(told.sort(), ['2', '4']);
        await assertRefused(app, alice);
        await assertRefused(app, carol);
      } finally {
        unsubscribe();
        // Both back in Directors for what follows.
        await suite.aa.addGroup(2, 'Directors');
        await suite.aa.addGroup(4, 'Directors');
        await nextCycle();
      }
    });

    it('an administrator deactivates frank in AA: his tokens are revoked and the application is told', async () => {
      const app = await receiverApp({ name: 'Wiki' });
      const tokens = await signedIn(app, 'frank');
      assert.equal((await userinfo(suite.server, tokens.access_token)).status, 200);
      await suite.aa.deactivate(1);
      assert.deepEqual(await nextCycle(), ['user_updated', 'user_deactivated', 'user_state_changed']);
      await assertLoggedOut(app, 1);
      await assertRefused(app, tokens);
      // The next cycle finds nothing new: nothing is emitted twice.
      assert.deepEqual(await nextCycle(), []);
      assert.equal(app.receiver.requests.length, 1);
    });

    it('a user AA made after the last cycle signs in and is deactivated before the next: the next cycle revokes and tells', async () => {
      const app = await receiverApp({ name: 'Killboard' });
      const gina = await suite.aa.createSuperuser('gina', FIXTURE_PASSWORD);
      const tokens = await signedIn(app, 'gina');
      assert.equal((await userinfo(suite.server, tokens.access_token)).status, 200);
      await suite.aa.deactivate(gina);
      // The cycle sees gina for the first time, already inactive: she signed in meanwhile, so her
      // deactivation is one (a user who never signed in here has nothing to take away).
      assert.deepEqual(await nextCycle(), ['user_created']);
      await assertLoggedOut(app, gina);
      await assertRefused(app, tokens);
      await suite.aa.reactivate(gina, 'Guest');
      assert.deepEqual(await nextCycle(), ['user_activated']);
      await assertRefused(app, tokens);
      assert.equal(app.receiver.requests.length, 1, 'told once');
      // Registered and still inactive (AA's pending registration), never signed in here: nothing.
      const pending = await suite.aa.createSuperuser('hana', FIXTURE_PASSWORD);
      await suite.aa.deactivate(pending);
      assert.deepEqual(await nextCycle(), ['user_created']);
      assert.equal(app.receiver.requests.length, 1);
    });

    it('AA deletes Fleet Commanders: alice loses the application that whitelisted it, which keeps the name, and the log says so', async () => {
      const fleet = await receiverApp({ name: 'Fleet ops', groups: ['Fleet Commanders'] });
      await suite.aa.addGroup(2, 'Fleet Commanders');
      assert.deepEqual(await nextCycle(), ['user_group_added']);
      const tokens = await signedIn(fleet, 'alice');
      const logged = suite.harness.logLines.length;
      await suite.aa.deleteGroup('Fleet Commanders');
      assert.deepEqual(await nextCycle(), ['user_group_removed', 'user_group_removed'], 'alice and bob');
      await assertLoggedOut(fleet, 2);
      await assertRefused(fleet, tokens);
      // Kept: an emptied whitelist would admit everyone. The warning names the application.
      assert.deepEqual((await suite.server.app.applications.findByClientId(fleet.clientId))?.groups, [
        'Fleet Commanders',
      ]);
      const warnings = suite.harness.logLines
        .slice(logged)
        .filter((line) => line.includes('still whitelist') && line.includes(fleet.clientId));
      assert.equal(warnings.length, 1, suite.harness.logLines.slice(logged).join('\n'));
      assert.match(warnings[0]!, /"level":40/);
      assert.match(warnings[0]!, /--remove-group 'Fleet Commanders'/);
      assert.deepEqual(await nextCycle(), [], 'the next cycle is quiet');
    });

    it('carol leaves Directors in AA: the application that whitelists Directors is told and refuses her', async () => {
      const app = await receiverApp({ name: 'Directors only', groups: ['Directors'] });
      const tokens = await signedIn(app, 'carol');
      await suite.aa.removeGroup(4, 'Directors');
      assert.deepEqual(await nextCycle(), ['user_updated', 'user_group_removed']);
      await assertLoggedOut(app, 4);
      await assertRefused(app, tokens);
    });

    it("alice's main moves to another alliance and AA makes her Blue: the Member-only application is told", async () => {
      const memberOnly = await receiverApp({ name: 'Members only', states: ['Member'] });
      const open = await receiverApp({ name: 'Open' });
      const tokens = await signedIn(memberOnly, 'alice');
      const kept = await signedIn(open, 'alice');
      await suite.aa.moveMainToAlliance(
        2,
        { id: 1354830081, name: 'Goonswarm Federation', ticker: 'CONDI' },
        'Blue',
      );
      const kinds = await nextCycle();
      assert.ok(kinds.includes('user_state_changed'), kinds.join(', '));
      await assertLoggedOut(memberOnly, 2);
      await assertRefused(memberOnly, tokens);
      // Alice keeps what she still may use (Directors grants her the permission).
      assert.equal(open.receiver.requests.length, 0, 'the open application is not told');
      assert.equal((await userinfo(suite.server, kept.access_token)).status, 200);
    });

    it('AA deletes erin, who refreshed once: her tokens are revoked and the application is told, once', async () => {
      const app = await receiverApp({ name: 'Forum' });
      // A refresh leaves the refresh token it rotated behind, used up: held no more.
      const refreshed = await tokenRequest(suite.server, app, {
        grant_type: 'refresh_token',
        refresh_token: (await signedIn(app, 'erin')).refresh_token,
      });
      assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
      const tokens = refreshed.body as { access_token: string; refresh_token: string };
      await suite.aa.deleteUser(6);
      assert.deepEqual(await nextCycle(), ['user_deleted']);
      await assertLoggedOut(app, 6);
      await assertRefused(app, tokens);
      // erin signed in within the margin of the cycles that follow, but holds nothing any more.
      assert.deepEqual(await nextCycle(), []);
      assert.equal(app.receiver.requests.length, 1);
    });

    it("AA gives alice a new password: her browser sessions end, as with the built-in directory's set-password", async () => {
      const app = await receiverApp({ name: 'Notes' });
      const browser = new Browser();
      const signedInHere = await signIn(
        browser,
        suite.server,
        authorizeUrl(suite.server, authorizeParams(app, { scope: 'openid' }).params),
        { username: 'alice', password: FIXTURE_PASSWORD },
      );
      codeFrom(signedInHere);
      // The kept cookie gets a code silently while the session lasts.
      codeFrom(await silently(browser, app));
      await suite.aa.setPassword(2, 'a new AA passphrase 7');
      assert.deepEqual(await nextCycle(), ['user_password_changed']);
      const silent = await silently(browser, app);
      assert.equal(new URL(silent.headers.get('location')!).searchParams.get('error'), 'login_required');
      // Like the built-in directory's new password: sessions end, and the applications signed in
      // through them are told, one logout per session (its sid).
      assert.equal(app.receiver.requests.length, 1, 'one back-channel logout');
      await verifyLogoutToken(suite.server, app.receiver.tokens()[0]!, {
        clientId: app.clientId,
        sub: '2',
        sid: 'present',
      });
      // The new password signs her in; the old one no longer does.
      const old = await signIn(
        new Browser(),
        suite.server,
        authorizeUrl(suite.server, authorizeParams(app, { scope: 'openid' }).params),
        { username: 'alice', password: FIXTURE_PASSWORD },
      );
      assert.equal(old.status, 401, 'the old password is refused');
      codeFrom(
        await signIn(
          new Browser(),
          suite.server,
          authorizeUrl(suite.server, authorizeParams(app, { scope: 'openid' }).params),
          {
            username: 'alice',
            password: 'a new AA passphrase 7',
          },
        ),
      );
      // Nothing is emitted twice.
      assert.deepEqual(await nextCycle(), []);
    });

    // Sign-ins read AA live, so a user can sign in on access that AA gives and takes back between two
    // cycles: neither cycle's fingerprint shows it, yet the applications they signed in to must hear.
    it('bob (no access) joins Directors, signs in, and leaves again between two cycles: the next cycle revokes and tells', async () => {
      const app = await receiverApp({ name: 'Directors notes', groups: ['Directors'] });
      await suite.aa.addGroup(3, 'Directors');
      const tokens = await signedIn(app, 'bob');
      await suite.aa.removeGroup(3, 'Directors');
      assert.deepEqual(await nextCycle(), [], 'the cycle sees bob as he was');
      await assertLoggedOut(app, 3);
      await assertRefused(app, tokens);
      assert.deepEqual(await nextCycle(), []);
      assert.equal(app.receiver.requests.length, 1, 'told once');
    });

    it('a user AA made after the last cycle signs in and loses Directors before the next: the next cycle revokes and tells', async () => {
      const app = await receiverApp({ name: 'Directors wiki', groups: ['Directors'] });
      const open = await receiverApp({ name: 'Open board' });
      const ivy = await suite.aa.createSuperuser('ivy', FIXTURE_PASSWORD);
      await suite.fixture.run('UPDATE auth_user SET is_superuser = ? WHERE id = ?', [false, ivy]);
      await suite.aa.addGroup(ivy, 'Directors');
      const tokens = await signedIn(app, 'ivy');
      const kept = await signedIn(open, 'ivy');
      // Still active, with no permission left: every application she signed in to is lost.
      await suite.aa.removeGroup(ivy, 'Directors');
      assert.deepEqual(await nextCycle(), ['user_created']);
      await assertLoggedOut(app, ivy);
      await assertLoggedOut(open, ivy);
      await assertRefused(app, tokens);
      await assertRefused(open, kept);
    });

    it('a user AA made after the last cycle signs in and is deleted before the next: the next cycle revokes and tells', async () => {
      const app = await receiverApp({ name: 'Market' });
      const jo = await suite.aa.createSuperuser('jo', FIXTURE_PASSWORD);
      const tokens = await signedIn(app, 'jo');
      await suite.aa.deleteUser(jo);
      assert.deepEqual(await nextCycle(), [], 'no cycle ever saw jo');
      await assertLoggedOut(app, jo);
      await assertRefused(app, tokens);
      assert.deepEqual(await nextCycle(), []);
      assert.equal(app.receiver.requests.length, 1, 'told once');
    });
  },
);
