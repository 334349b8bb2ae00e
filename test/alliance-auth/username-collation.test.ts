import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { openAllianceAuthDatabase } from '../../src/alliance-auth/database.ts';
import { checkAllianceAuthSchema } from '../../src/alliance-auth/schema-check.ts';
import { allianceAuthThrottleKey, readUsernameCollation } from '../../src/alliance-auth/throttle-key.ts';
import { DatabaseFaultError } from '../../src/db/errors.ts';
import {
  allianceAuthEnv,
  allianceAuthUnavailable,
  createAllianceAuthDatabase,
  FIXTURE_PASSWORD,
  type AllianceAuthTestDatabase,
} from '../helpers/alliance-auth.ts';
import { insertAllianceAuthUser } from '../helpers/alliance-auth-changes.ts';
import { serveAllianceAuth } from '../helpers/alliance-auth-server.ts';
import { cli } from '../helpers/cli.ts';
import { testEnv } from '../helpers/config.ts';
import { createTestDatabase } from '../helpers/database.ts';
import { authorize } from '../helpers/flows.ts';
import { Browser, seedApp } from '../helpers/server.ts';

/**
 * On MySQL and MariaDB, Alliance Auth password sign-in counts an attempt in the login throttle by how
 * `auth_user.username`'s collation compares the typed name, read from information_schema.columns.
 * When that read gives nothing usable (the login may not see the column, or the column has no
 * collation), the attempt is answered 503 "try again", never 500, the read is tried again by the next
 * attempt, and `serve` and `aa-oidc check` refuse the database naming the fix.
 */

const skip = await allianceAuthUnavailable('mysql');
const UNREADABLE = /auth_user\.username has no character set and collation aa-oidc can read/;
const FIX = /grant the login SELECT on auth_user/;
/** The fixture's own definition of the column (aa-mariadb.schema.sql). */
const CHARACTER_COLUMN =
  'ALTER TABLE auth_user MODIFY username varchar(150) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL';
const BINARY_COLUMN = 'ALTER TABLE auth_user MODIFY username varbinary(150) NOT NULL';

describe(
  "Alliance Auth password sign-in whose auth_user.username's collation cannot be read (MariaDB)",
  { skip },
  () => {
    const suite = serveAllianceAuth('mysql', {
      directory: { passwordLogin: true, pollSeconds: 3600 },
      harness: true,
      async prepare(fixture) {
        await insertAllianceAuthUser(fixture, 48, 'mira', FIXTURE_PASSWORD);
      },
    });
    let client: { clientId: string; clientSecret: string };
    before(async () => {
      const created = await seedApp(suite.server, { name: 'Wiki', skipAuthorization: true });
      client = { clientId: created.clientId, clientSecret: created.clientSecret! };
    });
    const signIn = async (username: string, password: string) =>
      (await authorize(suite.server, new Browser(), client, username, {}, { password })).response;

    it('answers the try-again page (503), not a 500, reads it again at the next attempt, and signs in once it can', async () => {
      suite.harness.registerSecret(FIXTURE_PASSWORD, 'the password');
      // The server started with the column as Django makes it; a column altered since has no collation.
      await suite.fixture.run(BINARY_COLUMN);
      for (const attempt of [1, 2]) {
        const response = await signIn('mira', FIXTURE_PASSWORD);
        assert.equal(response.status, 503, `attempt ${attempt}`);
        assert.equal(response.headers.get('retry-after'), '5');
        assert.match(await response.text(), /could not complete the request/);
      }
      const logged = suite.harness.logLines.filter((line) => UNREADABLE.test(line));
      assert.equal(logged.length, 2, 'each attempt read the column again, and its failure was logged');
      assert.match(logged[0]!, FIX);
      assert.match(logged[0]!, /"level":50/);

      await suite.fixture.run(CHARACTER_COLUMN);
      assert.equal((await signIn('mira', FIXTURE_PASSWORD)).status, 303, 'the next attempt read it again');
      assert.equal((await signIn('mira', 'wrong-password')).status, 401);
      await suite.harness.assertNoLeaks();
    });
  },
);

describe(
  "reading auth_user.username's collation as a login that may not see the column (MariaDB)",
  { skip },
  () => {
    let fixture: AllianceAuthTestDatabase;
    before(async () => {
      fixture = await createAllianceAuthDatabase('mysql');
    });
    after(async () => {
      await fixture?.drop();
    });

    it('fails the throttle key as a fault, then reads it once the login may', async () => {
      const aa = openAllianceAuthDatabase(fixture.readerUrl);
      const reader = `'${new URL(fixture.readerUrl).username}'@'%'`;
      try {
        const key = allianceAuthThrottleKey(aa.db, 'mysql');
        // Only auth_user.id (before the first connection opens): information_schema.columns shows the
        // reader no auth_user.username.
        await fixture.run(`REVOKE SELECT, SHOW VIEW ON \`${fixture.name}\`.* FROM ${reader}`);
        await fixture.run(`GRANT SELECT (id) ON \`${fixture.name}\`.auth_user TO ${reader}`);
        const read = await readUsernameCollation(aa.db);
        assert.ok(
          'problem' in read && UNREADABLE.test(read.problem) && FIX.test(read.problem),
          JSON.stringify(read),
        );
        await assert.rejects(
          key('zoe'),
          (error) => error instanceof DatabaseFaultError && UNREADABLE.test(error.message),
        );
        // A table's grant takes effect at the connection's next statement (a database's, at its next USE).
        await fixture.run(`GRANT SELECT ON \`${fixture.name}\`.auth_user TO ${reader}`);
        assert.deepEqual(await readUsernameCollation(aa.db), {
          charset: 'utf8mb4',
          name: 'utf8mb4_general_ci',
        });
        assert.equal(await key('zoe'), await key('ZOE'), 'read again, and the collation folds case');
      } finally {
        await aa.close();
      }
    });
  },
);

describe(
  'aa-oidc check on an Alliance Auth database whose auth_user.username has no collation (MariaDB)',
  { skip },
  () => {
    let fixture: AllianceAuthTestDatabase;
    before(async () => {
      fixture = await createAllianceAuthDatabase('mysql');
      await fixture.run(BINARY_COLUMN);
    });
    after(async () => {
      await fixture?.drop();
    });

    it('reports the error with password sign-in on, naming the fix, and says nothing of it without', async () => {
      const database = await createTestDatabase({ migrated: true });
      try {
        const withPasswords = await cli(
          ['check'],
          testEnv(database, allianceAuthEnv(fixture.readerUrl, { passwordLogin: true })),
        );
        assert.notEqual(withPasswords.code, 0);
        assert.match(withPasswords.stderr, /system check found 1 error\(s\): E009/);
        const e009 = withPasswords.stdout.split('\n').find((line) => line.startsWith('E009 error: ')) ?? '';
        assert.match(e009, /is not supported/);
        assert.match(e009, UNREADABLE);
        assert.match(e009, FIX);
        const without = await cli(['check'], testEnv(database, allianceAuthEnv(fixture.readerUrl)));
        assert.doesNotMatch(without.stderr, UNREADABLE);
        assert.equal(without.code, 0, without.stderr);
      } finally {
        await database.drop();
      }
    });

    it('is one of the schema check’s errors only with password sign-in, which the poller runs without', async () => {
      const aa = openAllianceAuthDatabase(fixture.readerUrl);
      try {
        const withPasswords = await checkAllianceAuthSchema(aa.db, 'mysql', { passwordLogin: true });
        assert.equal(withPasswords.errors.length, 1);
        assert.match(withPasswords.errors[0]!, UNREADABLE);
        assert.deepEqual((await checkAllianceAuthSchema(aa.db, 'mysql')).errors, []);
      } finally {
        await aa.close();
      }
    });
  },
);
