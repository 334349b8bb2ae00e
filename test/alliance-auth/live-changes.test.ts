import assert from 'node:assert/strict';
import { it } from 'node:test';
import { describeOnEachAllianceAuth } from '../helpers/alliance-auth.ts';
import { followAllianceAuth, type Tokens } from '../helpers/alliance-auth-server.ts';
import { introspect, tokenRequest, userinfo } from '../helpers/flows.ts';
import { verifyLogoutToken } from '../logout/rp-receiver.ts';

/**
 * Changes made in Alliance Auth's database while users are signed in to applications, as AA's own
 * code makes them (SCHEMA-NOTES.md), followed end to end: the next poll cycle, the back-channel
 * logout it queues, and what the user's tokens do afterwards. Claims are read from AA at each
 * request, so what changes them without changing access (the main character, its corporation)
 * shows at once and tells nobody. Each test drives the cycle itself (`pollOnce`).
 */
await describeOnEachAllianceAuth(
  (database) => `Alliance Auth changed while users are signed in, on ${database}`,
  (kind) => {
    const suite = followAllianceAuth(kind);
    const { poll, receiverApp, nextCycle } = suite;

    type App = Awaited<ReturnType<typeof receiverApp>>;

    const signedIn = (client: App, username: string) =>
      suite.signedIn(client, username, { scope: 'openid profile offline_access', prompt: 'consent' });

    const setState = (userId: number, state: string) =>
      suite.fixture.run(
        'UPDATE authentication_userprofile SET state_id = (SELECT id FROM authentication_state WHERE name = ?) WHERE user_id = ?',
        [state, userId],
      );

    async function claims(tokens: Tokens) {
      const response = await userinfo(suite.server, tokens.access_token);
      assert.equal(response.status, 200, response.body);
      return JSON.parse(response.body) as Record<string, unknown>;
    }

    async function assertRefused(client: App, tokens: Tokens) {
      assert.equal(
        (await userinfo(suite.server, tokens.access_token)).status,
        401,
        'userinfo refuses the token',
      );
      assert.equal(
        (await introspect(suite.server, client, tokens.access_token)).body.active,
        false,
        'inactive',
      );
      const refreshed = await tokenRequest(suite.server, client, {
        grant_type: 'refresh_token',
        refresh_token: tokens.refresh_token,
      });
      assert.equal(refreshed.status, 400, 'the refresh token is refused');
    }

    async function assertLoggedOut(app: App, userId: number) {
      assert.equal(app.receiver.requests.length, 1, 'one back-channel logout');
      await verifyLogoutToken(suite.server, app.receiver.tokens()[0]!, {
        clientId: app.clientId,
        sub: String(userId),
      });
    }

    it('AA makes alice Guest: the Member-only application is told and refuses her, the one that admits her sees the new state', async () => {
      const hall = await receiverApp({ name: 'Members hall', states: ['Member'] });
      const wiki = await receiverApp({ name: 'Wiki', groups: ['Wiki Editors'] });
      const hallTokens = await signedIn(hall, 'alice');
      const wikiTokens = await signedIn(wiki, 'alice');
      assert.deepEqual((await claims(wikiTokens)).groups, ['Directors', 'Wiki Editors', 'Member']);
      await setState(2, 'Guest');
      assert.deepEqual(await nextCycle(), ['user_state_changed']);
      await assertLoggedOut(hall, 2);
      await assertRefused(hall, hallTokens);
      assert.equal(wiki.receiver.requests.length, 0, 'the application that still admits her is not told');
      assert.deepEqual((await claims(wikiTokens)).groups, ['Directors', 'Wiki Editors', 'Guest']);
      const refreshed = await tokenRequest(suite.server, wiki, {
        grant_type: 'refresh_token',
        refresh_token: wikiTokens.refresh_token,
      });
      assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
      // The refreshed access token carries the claims AA has now too.
      assert.deepEqual((await claims(refreshed.body as Tokens)).groups, [
        'Directors',
        'Wiki Editors',
        'Guest',
      ]);
      assert.deepEqual(await nextCycle(), [], 'nothing is emitted twice');
      await setState(2, 'Member');
      assert.deepEqual(await nextCycle(), ['user_state_changed']);
    });

    it("alice's main becomes her alt, whose corporation AA's update task then changes: the claims follow, nobody is told, the state stays AA's", async () => {
      const wiki = await receiverApp({ name: 'Wiki 2', groups: ['Wiki Editors'] });
      const tokens = await signedIn(wiki, 'alice');
      assert.equal((await claims(tokens)).name, 'Alice Alpha');
      await suite.fixture.run(
        'UPDATE authentication_userprofile SET main_character_id = (SELECT id FROM eveonline_evecharacter WHERE character_id = ?) WHERE user_id = ?',
        [2112000002, 2],
      );
      assert.deepEqual(await nextCycle(), ['user_main_character_changed']);
      const afterMain = await claims(tokens);
      assert.equal(afterMain.name, 'Alice Alt');
      assert.match(String(afterMain.picture), /\/characters\/2112000002\//);
      assert.equal(afterMain.eve_corporation_name, 'GoonWaffe');
      // `run_model_update` writes the character's new corporation; no user row changes.
      await suite.fixture.run(
        'UPDATE eveonline_evecharacter SET corporation_id = ?, corporation_name = ?, corporation_ticker = ? WHERE character_id = ?',
        [98000009, 'New Corp', 'NEWC', 2112000002],
      );
      assert.deepEqual(await nextCycle(), []);
      const afterCorp = await claims(tokens);
      assert.equal(afterCorp.eve_corporation_id, 98000009);
      assert.equal(afterCorp.eve_corporation_name, 'New Corp');
      // aa-oidc reads the state AA stored; it does not recompute it from the main character.
      assert.equal((afterCorp.eve_affiliation as { state: string }).state, 'Member');
      assert.equal(wiki.receiver.requests.length, 0);
    });

    it('AA deactivates carol, a cycle reads it, then reactivates her: her old tokens stay revoked, a new sign-in works, she is told once', async () => {
      const app = await receiverApp({ name: 'Open' });
      const tokens = await signedIn(app, 'carol');
      await suite.aa.deactivate(4);
      assert.deepEqual(await nextCycle(), ['user_deactivated']);
      await assertLoggedOut(app, 4);
      await assertRefused(app, tokens);
      await suite.aa.reactivate(4, 'Guest');
      assert.deepEqual(await nextCycle(), ['user_activated']);
      await assertRefused(app, tokens);
      await claims(await signedIn(app, 'carol'));
      assert.equal(app.receiver.requests.length, 1, 'told once');
    });

    it('AA deletes Blue while carol holds it (State.delete moves its users first): the Blue application is told and refuses her', async () => {
      await setState(4, 'Blue');
      assert.deepEqual(await nextCycle(), ['user_state_changed']);
      const lounge = await receiverApp({ name: 'Blue lounge', states: ['Blue'] });
      const open = await receiverApp({ name: 'Open 2' });
      const tokens = await signedIn(lounge, 'carol');
      const kept = await signedIn(open, 'carol');
      const blue = '(SELECT id FROM authentication_state WHERE name = ?)';
      await suite.fixture.run(
        `UPDATE authentication_userprofile SET state_id = (SELECT id FROM authentication_state WHERE name = ?) WHERE state_id = ${blue}`,
        ['Guest', 'Blue'],
      );
      for (const table of [
        'authentication_state_permissions',
        'authentication_state_member_characters',
        'authentication_state_member_corporations',
        'authentication_state_member_alliances',
        'authentication_state_member_factions',
        'groupmanagement_authgroup_states',
      ])
        await suite.fixture.run(`DELETE FROM ${table} WHERE state_id = ${blue}`, ['Blue']);
      await suite.fixture.run('DELETE FROM authentication_state WHERE name = ?', ['Blue']);
      assert.deepEqual(await nextCycle(), ['user_state_changed', 'user_state_changed'], 'bob and carol');
      await assertLoggedOut(lounge, 4);
      await assertRefused(lounge, tokens);
      assert.equal(open.receiver.requests.length, 0);
      await claims(kept);
      assert.deepEqual((await suite.server.app.applications.findByClientId(lounge.clientId))?.states, [
        'Blue',
      ]);
    });

    // A backup restored into AA's database table by table (pg_dump's COPYs, mysqldump's DROP, CREATE
    // and INSERT per table) shows `auth_user` loaded while `authentication_userprofile` is still empty:
    // every user without a state, which must not be read as every user losing it.
    it("AA's profiles read empty while its users are there: refused, nobody is told or refused, and the next full read changes nothing", async () => {
      const hall = await receiverApp({ name: 'Members hall 2', states: ['Member'] });
      const tokens = await signedIn(hall, 'alice');
      const reader = decodeURIComponent(new URL(suite.fixture.readerUrl).username);
      if (kind === 'mysql') {
        await suite.fixture.run('RENAME TABLE authentication_userprofile TO authentication_userprofile_kept');
        await suite.fixture.run(
          'CREATE TABLE authentication_userprofile LIKE authentication_userprofile_kept',
        );
      } else {
        await suite.fixture.run(
          'ALTER TABLE authentication_userprofile RENAME TO authentication_userprofile_kept',
        );
        await suite.fixture.run(
          'CREATE TABLE authentication_userprofile (LIKE authentication_userprofile_kept INCLUDING ALL)',
        );
        await suite.fixture.run(`GRANT SELECT ON authentication_userprofile TO "${reader}"`);
      }
      const logged = suite.harness.logLines.length;
      try {
        for (let cycle = 0; cycle < 2; cycle += 1) {
          const outcome = await poll();
          assert.equal(outcome.outcome, 'refused_empty', JSON.stringify(outcome));
        }
        await suite.server.app.logout.deliverDue();
      } finally {
        await suite.fixture.run('DROP TABLE authentication_userprofile');
        await suite.fixture.run(
          kind === 'mysql'
            ? 'RENAME TABLE authentication_userprofile_kept TO authentication_userprofile'
            : 'ALTER TABLE authentication_userprofile_kept RENAME TO authentication_userprofile',
        );
      }
      assert.equal(hall.receiver.requests.length, 0, 'nobody is told');
      const errors = suite.harness.logLines
        .slice(logged)
        .filter((line) => line.includes('none in any state'));
      assert.equal(errors.length, 1, 'logged once while it lasts');
      assert.deepEqual(await nextCycle(), [], 'the full read is what the last applied cycle saw');
      assert.equal(
        suite.harness.logLines.slice(logged).filter((line) => line.includes("users' states again")).length,
        1,
      );
      assert.equal(hall.receiver.requests.length, 0);
      assert.equal((await claims(tokens)).sub, '2');
      assert.equal((await introspect(suite.server, hall, tokens.access_token)).body.active, true);
    });
  },
);
