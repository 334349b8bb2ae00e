import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sql } from 'kysely';
import { allianceAuthUnavailable, FIXTURE_PASSWORD } from '../helpers/alliance-auth.ts';
import { allianceAuthActions } from '../helpers/alliance-auth-changes.ts';
import { serveAllianceAuth } from '../helpers/alliance-auth-server.ts';
import { authorizeParams, codeFrom } from '../helpers/flows.ts';
import { authorizeUrl, Browser, seedApp, signIn } from '../helpers/server.ts';

/**
 * Alliance Auth on PostgreSQL keeps group names unique only as spelt: `Directors` (the fixture's
 * directorate, alice and carol) and an open `directors` (erin, anyone may join) can both exist, where
 * MariaDB's collation holds them for one name. An application whitelisting `Directors` admits the
 * directorate only: whitelists are matched exactly, a name typed in another case finds the one
 * group it can only mean, and one it could mean two of is refused, naming both.
 */
describe(
  'Alliance Auth group names that differ only in case, on PostgreSQL',
  {
    skip: await allianceAuthUnavailable('postgres'),
  },
  () => {
    const suite = serveAllianceAuth('postgres', {
      directory: { passwordLogin: true, pollSeconds: 3600 },
      async prepare({ owner }) {
        // As AA's admin makes a group (and its groupmanagement row: open and public), and erin joins it.
        const { id } = await sql<{
          id: number;
        }>`INSERT INTO auth_group (name) VALUES ('directors') RETURNING id`
          .execute(owner)
          .then((result) => result.rows[0]!);
        await sql`INSERT INTO groupmanagement_authgroup (group_id, internal, hidden, open, public, restricted, description)
      VALUES (${id}, false, false, true, true, false, 'Anyone may join')`.execute(owner);
        await sql`INSERT INTO auth_user_groups (user_id, group_id) VALUES (6, ${id})`.execute(owner);
      },
    });

    async function signInTo(client: { clientId: string; clientSecret: string | null }, username: string) {
      const { params } = authorizeParams(
        { clientId: client.clientId, clientSecret: client.clientSecret ?? '' },
        {
          scope: 'openid',
        },
      );
      return signIn(new Browser(), suite.server, authorizeUrl(suite.server, params), {
        username,
        password: FIXTURE_PASSWORD,
      });
    }

    it('binds a whitelist to the group named exactly, admits its members only, and refuses an ambiguous name', async () => {
      const board = await seedApp(suite.server, {
        name: 'Board',
        groups: ['Directors'],
        skipAuthorization: true,
      });
      assert.deepEqual((await suite.server.app.applications.findByClientId(board.clientId))?.groups, [
        'Directors',
      ]);
      const social = await seedApp(suite.server, {
        name: 'Social',
        groups: ['directors'],
        skipAuthorization: true,
      });
      assert.deepEqual((await suite.server.app.applications.findByClientId(social.clientId))?.groups, [
        'directors',
      ]);
      await assert.rejects(
        suite.server.app.applications.create(
          { name: 'Typo', redirectUris: ['https://rp.example.org/cb'], groups: ['DIRECTORS'] },
          'test',
        ),
        /"DIRECTORS" could be the group "Directors" or "directors", which differ only in case or Unicode form: give the exact name/,
      );
      const impact = await suite.server.app.directory.usersCoveredBy({ states: [], groups: ['Directors'] });
      assert.deepEqual([...impact].sort(), [2, 4], 'alice and carol, not erin');
      // The operator's listings (`aa-oidc user list --group …`, the admin UI) take the exact name too.
      const members = async (group: string) =>
        (await suite.server.app.directoryAdmin.listUsers({ group }))
          .map((record) => record.user.username)
          .sort();
      assert.deepEqual(await members('Directors'), ['alice', 'carol']);
      assert.deepEqual(await members('directors'), ['erin']);
      await assert.rejects(members('DIRECTORS'), /no group named "DIRECTORS" in Alliance Auth/);

      // carol is a director; erin only joined the open group of the same name in another case.
      codeFrom(await signInTo(board, 'carol'));
      const refused = await signInTo(board, 'erin');
      assert.equal(refused.status, 403, 'erin is not a director');
      codeFrom(await signInTo(social, 'erin'));
      assert.equal((await signInTo(social, 'carol')).status, 403, 'and carol is not in the open group');

      // An application may whitelist both.
      const both = await seedApp(suite.server, { name: 'Both', groups: ['Directors', 'directors'] });
      const groupsOf = async (client: { clientId: string }) =>
        (await suite.server.app.applications.findByClientId(client.clientId))?.groups;
      assert.deepEqual(await groupsOf(both), ['Directors', 'directors']);

      // AA renames the open group, first to a name that is the directorate's but for case: the
      // whitelists that named it follow, and those naming the directorate keep it.
      const poll = async () => {
        const cycle = await suite.server.app.allianceAuth!.poller.pollOnce();
        assert.equal(cycle.outcome, 'applied', JSON.stringify(cycle));
      };
      await allianceAuthActions(suite.fixture).rename('group', [['directors', 'DIRECTORS']]);
      await poll();
      assert.deepEqual(await groupsOf(board), ['Directors']);
      assert.deepEqual(await groupsOf(social), ['DIRECTORS']);
      assert.deepEqual(await groupsOf(both), ['DIRECTORS', 'Directors']);
      await allianceAuthActions(suite.fixture).rename('group', [['DIRECTORS', 'Social Club']]);
      await poll();
      assert.deepEqual(await groupsOf(board), ['Directors']);
      assert.deepEqual(await groupsOf(social), ['Social Club']);
      assert.deepEqual(await groupsOf(both), ['Directors', 'Social Club']);
      codeFrom(await signInTo(board, 'carol'));
      assert.equal((await signInTo(board, 'erin')).status, 403);
      codeFrom(await signInTo(social, 'erin'));
    });
  },
);
