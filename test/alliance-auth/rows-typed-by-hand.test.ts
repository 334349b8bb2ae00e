import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import {
  allianceAuthEnv,
  allianceAuthUnavailable,
  describeOnEachAllianceAuth,
  FIXTURE_PASSWORD,
} from '../helpers/alliance-auth.ts';
import { insertAllianceAuthUser } from '../helpers/alliance-auth-changes.ts';
import { serveAllianceAuth } from '../helpers/alliance-auth-server.ts';
import { cli } from '../helpers/cli.ts';
import { testEnv } from '../helpers/config.ts';
import { consoleGet, consoleSignIn, pageText } from '../helpers/console.ts';
import { login, userinfo } from '../helpers/flows.ts';
import { seedApp } from '../helpers/server.ts';

/**
 * Rows Alliance Auth's own code never writes but SQL typed by hand can: a date no clock reaches
 * (PostgreSQL's `infinity`, MariaDB's zero date) and a NUL byte in a name or an address (Django's
 * forms refuse one; MariaDB stores it, aa-oidc's PostgreSQL refuses it in any text). Sign-in, the
 * claims, the admin's pages, the CLI and the poller answer as for any other user.
 */
await describeOnEachAllianceAuth(
  (database) => `Alliance Auth dates no clock reaches, on ${database}`,
  (kind) => {
    const suite = serveAllianceAuth(kind, { directory: { passwordLogin: true, pollSeconds: 3600 } });

    before(async () => {
      await suite.poll();
      // PostgreSQL's `infinity` and `-infinity`; MariaDB's far end and its zero date (which its
      // default sql_mode accepts).
      await suite.fixture.run(
        'UPDATE auth_user SET date_joined = ?, last_login = ? WHERE id = 1',
        kind === 'postgres'
          ? ['infinity', '-infinity']
          : ['9999-12-31 23:59:59.999999', '0000-00-00 00:00:00'],
      );
    });

    it('signs the user in, and the admin pages, the CLI and the poller answer: not a server error', async () => {
      const created = await seedApp(suite.server, { name: 'Wiki', skipAuthorization: true });
      const client = { clientId: created.clientId, clientSecret: created.clientSecret! };
      const { accessToken } = await login(suite.server, client, 'frank', {
        scope: 'openid profile',
        password: FIXTURE_PASSWORD,
      });
      const claims = await userinfo(suite.server, accessToken);
      assert.equal(claims.status, 200);
      assert.equal((JSON.parse(claims.body) as { preferred_username: string }).preferred_username, 'frank');

      const admin = await consoleSignIn(suite.server, 'frank', {
        password: FIXTURE_PASSWORD,
        returnTo: '/admin',
      });
      const list = await consoleGet(admin, `${suite.server.origin}/admin/users`);
      assert.equal(list.status, 200, 'the user list');
      assert.match(pageText(list.body), /frank/);
      const detail = await consoleGet(admin, `${suite.server.origin}/admin/users/1`);
      assert.equal(detail.status, 200, 'the user page');
      assert.match(pageText(detail.body), /Main character Frank Foxtrot/);

      const show = await cli(
        ['user', 'show', 'frank', '--format', 'json'],
        testEnv(suite.server.database, allianceAuthEnv(suite.fixture.readerUrl)),
      );
      assert.equal(show.code, 0, show.stderr);
      assert.equal((JSON.parse(show.stdout) as { id: number }).id, 1);
      assert.equal((await suite.poll()).outcome, 'applied');
    });
  },
);

describe(
  'Alliance Auth names and addresses holding a NUL byte, on MariaDB',
  { skip: await allianceAuthUnavailable('mysql') },
  () => {
    const suite = serveAllianceAuth('mysql', { directory: { passwordLogin: true, pollSeconds: 3600 } });
    let board: { clientId: string; clientSecret: string };

    before(async () => {
      const created = await seedApp(suite.server, {
        name: 'Board',
        skipAuthorization: true,
        groups: ['Directors'],
      });
      board = { clientId: created.clientId, clientSecret: created.clientSecret! };
      await suite.poll();
      // carol: Guest, in Directors, with her main character.
      await suite.fixture.run("UPDATE auth_group SET name = ? WHERE name = 'Directors'", ['Dir\0ectors']);
      await suite.fixture.run('UPDATE auth_user SET email = ? WHERE id = 4', ['carol\0@example.org']);
      await suite.fixture.run(
        `UPDATE eveonline_evecharacter SET character_name = ?
         WHERE id = (SELECT main_character_id FROM authentication_userprofile WHERE user_id = 4)`,
        ['Carol\0 Charlie'],
      );
      await insertAllianceAuthUser(suite.fixture, 40, 'pilot\0two', FIXTURE_PASSWORD);
    });

    it('goes on polling: the whitelist follows the rename, the NUL shown as U+FFFD', async () => {
      const cycle = await suite.poll();
      assert.equal(cycle.outcome, 'applied', JSON.stringify(cycle));
      assert.ok(cycle.outcome === 'applied');
      assert.deepEqual(cycle.renames, [{ entity: 'group', id: 1, from: 'Directors', to: 'Dir\uFFFDectors' }]);
      assert.deepEqual(
        cycle.changes.map((change) => [change.kind, change.userId, change.username]),
        [['user_created', 40, 'pilot\uFFFDtwo']],
      );
      // And the next cycle sees nothing new.
      const next = await suite.poll();
      assert.ok(next.outcome === 'applied', JSON.stringify(next));
      assert.deepEqual(next.changes, []);
      assert.deepEqual(next.renames, []);
    });

    it('releases claims without a NUL, and the member of the renamed group still gets in', async () => {
      const { accessToken } = await login(suite.server, board, 'carol', {
        scope: 'openid profile email',
        password: FIXTURE_PASSWORD,
      });
      const claims = await userinfo(suite.server, accessToken);
      assert.equal(claims.status, 200);
      assert.doesNotMatch(claims.body, /\\u0000/);
      const body = JSON.parse(claims.body) as { name: string; email: string; groups: string[] };
      assert.equal(body.name, 'Carol\uFFFD Charlie');
      assert.equal(body.email, 'carol\uFFFD@example.org');
      assert.deepEqual(body.groups, ['Dir\uFFFDectors', 'Guest']);

      const admin = await consoleSignIn(suite.server, 'frank', {
        password: FIXTURE_PASSWORD,
        returnTo: '/admin',
      });
      for (const path of ['/admin/users', '/admin/users/4', '/admin/users/40', '/admin/groups']) {
        const page = await consoleGet(admin, `${suite.server.origin}${path}`);
        assert.equal(page.status, 200, path);
      }
    });
  },
);
