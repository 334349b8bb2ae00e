import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  allianceAuthDirectory,
  allianceAuthEnv,
  allianceAuthUnavailable,
  expectedFixture,
  FIXTURE_PASSWORD,
} from '../helpers/alliance-auth.ts';
import { insertAllianceAuthUser } from '../helpers/alliance-auth-changes.ts';
import { serveAllianceAuth } from '../helpers/alliance-auth-server.ts';
import { cli } from '../helpers/cli.ts';
import { consoleGet, consoleSignIn, pageText } from '../helpers/console.ts';
import { type EveSsoStandIn, signInWithEve, startEveSsoStandIn } from '../helpers/eve-sso-stand-in.ts';
import { testEnv } from '../helpers/config.ts';
import { authorize, codeFrom } from '../helpers/flows.ts';
import { Browser, seedApp, startServer, type TestServer } from '../helpers/server.ts';

/**
 * Users a long-lived Alliance Auth on PostgreSQL can hold that the fixture does not: two usernames
 * that differ in case only (PostgreSQL keeps them apart where MariaDB's collation would not), and a
 * user whose id is beyond 32 bits (an `auth_user.id` column someone widened to bigint; Django's is
 * a 32-bit AutoField). A spelling that could mean either of two users finds neither, and a user
 * aa-oidc cannot keep is refused at sign-in and left out by the poller, which goes on following
 * everyone else.
 */
describe(
  'Alliance Auth users with names differing in case, or ids beyond 32 bits, on PostgreSQL',
  { skip: await allianceAuthUnavailable('postgres') },
  () => {
    const suite = serveAllianceAuth('postgres', {
      directory: { passwordLogin: true, pollSeconds: 3600 },
      harness: true,
      async prepare(fixture) {
        // The columns holding a user's id, widened as `ALTER … TYPE bigint` would leave them.
        for (const [table, column] of [
          ['auth_user', 'id'],
          ['auth_user_groups', 'user_id'],
          ['auth_user_user_permissions', 'user_id'],
          ['authentication_userprofile', 'user_id'],
          ['authentication_characterownership', 'user_id'],
        ] as const) {
          await fixture.run(`ALTER TABLE ${table} ALTER COLUMN ${column} TYPE bigint`);
        }
      },
    });
    let client: { clientId: string; clientSecret: string };
    let eve: EveSsoStandIn | undefined;
    let eveServer: TestServer | undefined;

    /** A user as AA's admin makes one, with the access permission and a profile in the Guest state. */
    const addUser = (id: number, username: string) =>
      insertAllianceAuthUser(suite.fixture, id, username, FIXTURE_PASSWORD);

    before(async () => {
      const created = await seedApp(suite.server, { name: 'Wiki', skipAuthorization: true });
      client = { clientId: created.clientId, clientSecret: created.clientSecret! };
      await suite.server.app.allianceAuth!.poller.pollOnce();
    });
    after(async () => {
      await eveServer?.close();
      await eve?.close();
    });

    const signInAs = async (username: string) =>
      (
        await authorize(
          suite.server,
          new Browser(),
          client,
          username,
          { scope: 'openid' },
          {
            password: FIXTURE_PASSWORD,
          },
        )
      ).response;

    it('finds a user by a spelling in another case only when it can mean one user', async () => {
      await addUser(30, 'ALICE');
      const env = testEnv(suite.server.database, allianceAuthEnv(suite.fixture.readerUrl));
      const show = async (username: string) => {
        const result = await cli(['user', 'show', username, '--format', 'json'], env);
        return {
          ...result,
          shown: result.code === 0 ? (JSON.parse(result.stdout) as { id: number }).id : null,
        };
      };
      assert.equal((await show('alice')).shown, 2);
      assert.equal((await show('ALICE')).shown, 30);
      assert.equal((await show('Carol')).shown, 4, 'carol is the only user by that name');
      const ambiguous = await show('Alice');
      assert.notEqual(ambiguous.code, 0, 'alice or ALICE: neither is picked at random');
      assert.match(ambiguous.stderr, /no user named "Alice" in Alliance Auth/);
      assert.equal(await suite.server.app.directory.profileByUsername('Alice'), undefined);
      // Revoking "Alice"'s tokens ends neither user's.
      const revoke = await cli(['tokens', 'revoke-user', '--username', 'Alice', '--dry-run'], env);
      assert.notEqual(revoke.code, 0);
      assert.doesNotMatch(revoke.stdout, /would revoke/);
    });

    it('refuses at sign-in a user whose id is beyond 32 bits, and the poller follows everyone else', async () => {
      await addUser(5_000_000_000, 'widened');
      suite.harness.registerSecret(FIXTURE_PASSWORD, 'the password');
      const refused = await signInAs('widened');
      assert.equal(refused.status, 401, 'refused as a sign-in, not a server error');
      const warning = suite.harness.logLines
        .map((line) => JSON.parse(line) as { msg: string; username?: string })
        .find((line) => line.username === 'widened');
      assert.match(warning?.msg ?? '', /id 5000000000 is beyond the 32-bit ids aa-oidc keeps/);

      const cycle = await suite.server.app.allianceAuth!.poller.pollOnce();
      assert.equal(cycle.outcome, 'applied', JSON.stringify(cycle));
      assert.ok(cycle.outcome === 'applied');
      assert.deepEqual(
        cycle.changes.map((change) => [change.kind, change.userId]),
        [['user_created', 30]],
        'ALICE is new; the widened user is left out',
      );
      // And it goes on following AA's changes: erin leaves, her access with her.
      await suite.fixture.run('DELETE FROM auth_user_user_permissions WHERE user_id = ?', [6]);
      const next = await suite.server.app.allianceAuth!.poller.pollOnce();
      assert.ok(next.outcome === 'applied', JSON.stringify(next));
      assert.deepEqual(
        next.changes.map((change) => [change.kind, change.userId]),
        [['user_updated', 6]],
      );
      codeFrom(await signInAs('frank'));
      await suite.harness.assertNoLeaks();
    });

    it('finds no user by the name of one whose id is beyond 32 bits, where the audit filters would compare its id', async () => {
      await addUser(6_000_000_000, 'widest');
      const env = testEnv(suite.server.database, allianceAuthEnv(suite.fixture.readerUrl));
      // Not PostgreSQL's "value out of range for type integer" on the audit log's filter.
      const audit = await cli(['audit', 'list', '--username', 'widest'], env);
      assert.notEqual(audit.code, 0);
      assert.match(audit.stderr, /no user named "widest"/);
      assert.doesNotMatch(audit.stderr, /out of range/);
      const superuser = expectedFixture().users.find((user) => user.is_superuser && user.is_active)!;
      const admin = await consoleSignIn(suite.server, superuser.username, {
        password: FIXTURE_PASSWORD,
        returnTo: '/admin',
      });
      for (const path of ['/admin/audit?user=widest', '/admin/deliveries?user=widest']) {
        const page = await consoleGet(admin, `${suite.server.origin}${path}`);
        assert.equal(page.status, 200, `${path}: not a server error`);
        assert.match(pageText(page.body), /No user is named widest\./, path);
      }
      assert.equal(await suite.server.app.directory.profileByUsername('widest'), undefined);
    });

    it('sends a user whose id is beyond 32 bits back from EVE SSO with a refusal, not a server error', async () => {
      // The widened user's main character, as AA records it after an EVE SSO registration.
      const character = {
        characterId: 2119000001,
        characterName: 'Wide Pilot',
        ownerHash: 'd2lkZS1waWxvdC1vd25lci1oYXNo',
      };
      await suite.fixture.run(
        `INSERT INTO eveonline_evecharacter (character_id, character_name, corporation_id, corporation_name,
           corporation_ticker, alliance_id, alliance_name, alliance_ticker, faction_id, faction_name)
         VALUES (?, ?, 98000001, 'Alt Storage Inc', 'ALTS', NULL, NULL, NULL, NULL, NULL)`,
        [character.characterId, character.characterName],
      );
      await suite.fixture.run(
        `INSERT INTO authentication_characterownership (character_id, owner_hash, user_id)
         SELECT id, ?, ? FROM eveonline_evecharacter WHERE character_id = ?`,
        [character.ownerHash, 5_000_000_000, character.characterId],
      );
      await suite.fixture.run(
        `UPDATE authentication_userprofile SET main_character_id =
           (SELECT id FROM eveonline_evecharacter WHERE character_id = ?) WHERE user_id = ?`,
        [character.characterId, 5_000_000_000],
      );
      eve = await startEveSsoStandIn();
      eveServer = await startServer({
        directory: allianceAuthDirectory(suite.fixture.readerUrl, { pollSeconds: 3600 }),
        eveSso: eve.settings,
      });
      const seeded = await seedApp(eveServer, { name: 'Wiki', skipAuthorization: true });
      const eveClient = { clientId: seeded.clientId, clientSecret: seeded.clientSecret! };
      const { response } = await signInWithEve(eveServer, eve, eveClient, character, { scope: 'openid' });
      assert.equal(response.status, 400, 'a refusal, not a server error');
      assert.match(await response.text(), /did not succeed/);
    });
  },
);
