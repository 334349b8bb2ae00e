import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createServices } from '../../src/services.ts';
import {
  allianceAuthEnv,
  createAllianceAuthDatabase,
  describeOnEachAllianceAuth,
  FIXTURE_PASSWORD,
  grantedTable,
  grantReaderPerTable,
  readerGrantee,
  revokeReaderSelectKeepingSchema,
} from '../helpers/alliance-auth.ts';
import { insertAllianceAuthUser } from '../helpers/alliance-auth-changes.ts';
import { cli } from '../helpers/cli.ts';
import { testConfig, testEnv } from '../helpers/config.ts';
import { createTestDatabase, testDatabaseKind } from '../helpers/database.ts';
import { refusedPort } from '../helpers/refused-port.ts';

/**
 * `aa-oidc check` when a part of what the system checks read cannot be read: it reports every finding
 * it could make, one error naming the part and why (E009), and exits non-zero.
 */
await describeOnEachAllianceAuth(
  (database) =>
    `aa-oidc check when the directory's groups cannot be read, on ${database} (aa-oidc on ${testDatabaseKind})`,
  (kind) => {
    it("names the part it could not read and why, without the login's password, and still reports what needs only the rest", async () => {
      const fixture = await createAllianceAuthDatabase(kind);
      const database = await createTestDatabase({ migrated: true });
      try {
        // An application whitelisting a state and a group Alliance Auth does not have (as a move
        // from another directory leaves it), and no signing key (W011).
        const services = await createServices(testConfig(database), { ensureSigningKey: false });
        try {
          const { application } = await services.applications.create(
            { name: 'Wiki', redirectUris: ['https://wiki.example.org/cb'] },
            'test',
          );
          await services.database.db
            .insertInto('application_whitelist')
            .values([
              { client_id: application.clientId, kind: 'state', name: 'Vanished State' },
              { client_id: application.clientId, kind: 'group', name: 'Vanished Group' },
            ])
            .execute();
        } finally {
          await services.close();
        }
        await insertAllianceAuthUser(fixture, 40, 'ghost', FIXTURE_PASSWORD);
        await fixture.run('DELETE FROM authentication_userprofile WHERE user_id = 40');
        // SELECT revoked on the groups' table, as when the grant goes after start-up.
        await grantReaderPerTable(fixture);
        await revokeReaderSelectKeepingSchema(fixture, 'auth_group');

        const result = await cli(['check'], testEnv(database, allianceAuthEnv(fixture.readerUrl)));
        assert.equal(result.code, 1, result.stderr);
        assert.match(result.stderr, /system check found 1 error\(s\): E009/);
        assert.match(
          result.stdout,
          /^E009 error: could not read the directory's groups, so the checks that need them report nothing \(W006 of the whitelists naming them\): Alliance Auth's database \((mysql|postgres):\/\/aa_reader_\w+:\*\*\*@[^\s,]+, AA_OIDC_AA_DATABASE_URL\) refused a read: .*auth_group.*\n {2}hint: mend what stopped the read, as the message says \(.*\), then run aa-oidc check again$/m,
        );
        // The URL is named once, by what the database answered, as every message shows it.
        const e009 = result.stdout.split('\n').find((line) => line.startsWith('E009 '))!;
        assert.equal(e009.split('://').length, 2, e009);
        // The states were read: the whitelisted state is judged; the group, unread, is not.
        assert.match(result.stdout, /^W006 warning: application \S+ whitelists the state "Vanished State"/m);
        assert.doesNotMatch(result.stdout, /Vanished Group/);
        // The checks of the keys, and Alliance Auth's data checks, still ran.
        assert.match(result.stdout, /^W011 warning: there is no active signing key/m);
        assert.match(
          result.stdout,
          /^W016 warning: 1 Alliance Auth user has no profile or no state .*"ghost"/m,
        );
        const password = decodeURIComponent(new URL(fixture.readerUrl).password);
        assert.ok(password.length > 0 && !result.stdout.includes(password), 'no password');
        assert.ok(!result.stderr.includes(password), 'no password');
      } finally {
        await database.drop();
        await fixture.drop();
      }
    });
  },
);

/**
 * `aa-oidc check` when the login may read every table of Alliance Auth's but one: the schema check
 * that `serve` and `worker` refuse to start on is E009 too, in JSON as every other finding, and
 * `serve` and `worker` stop, saying the same.
 */
await describeOnEachAllianceAuth(
  (database) =>
    `aa-oidc check when the login cannot SELECT one table aa-oidc reads, on ${database} (aa-oidc on ${testDatabaseKind})`,
  (kind) => {
    it('reports E009 with a hint, as JSON with --format json; serve and worker refuse to start, saying the same', async () => {
      const fixture = await createAllianceAuthDatabase(kind);
      const database = await createTestDatabase({ migrated: true });
      try {
        await grantReaderPerTable(fixture);
        await fixture.run(
          `REVOKE SELECT ON ${grantedTable(fixture, 'auth_user_user_permissions')} FROM ${readerGrantee(fixture)}`,
        );
        const env = testEnv(database, allianceAuthEnv(fixture.readerUrl));
        const refusal =
          /^Alliance Auth's database at (mysql|postgres):\/\/aa_reader_\w+:\*\*\*@\S+ \(AA_OIDC_AA_DATABASE_URL\) is not supported: Alliance Auth's database lacks columns aa-oidc reads \(or the login cannot SELECT them\): auth_user_user_permissions\.id, auth_user_user_permissions\.user_id, auth_user_user_permissions\.permission_id$/;
        const result = await cli(['check', '--format', 'json'], env);
        assert.equal(result.code, 1, result.stderr);
        assert.equal(result.stderr, 'aa-oidc: system check found 1 error(s): E009\n');
        const findings = JSON.parse(result.stdout) as Array<Record<string, string>>;
        const e009 = findings.find((finding) => finding.id === 'E009');
        assert.ok(e009, result.stdout);
        assert.deepEqual(Object.keys(e009).sort(), ['hint', 'id', 'level', 'message']);
        assert.equal(e009.level, 'error');
        const [prefix, answer] = e009.message!.split(/(?<=Alliance Auth's rows\)): /);
        assert.equal(
          prefix,
          "could not read the directory's states and groups, so the checks that need them report nothing (W006 of the whitelists naming them, and W016 to W019 of Alliance Auth's rows)",
        );
        assert.match(answer!, refusal);
        assert.match(e009.hint!, /a grant the login lacks, a table or column the database lacks/);
        // The checks that need no directory still ran (no signing key: W011).
        assert.ok(findings.some((finding) => finding.id === 'W011'));
        for (const command of ['serve', 'worker']) {
          const start = await cli([command], env);
          assert.equal(start.code, 1, command);
          assert.equal(start.stdout, '', command);
          assert.equal(start.stderr, `aa-oidc: ${answer}\n`, command);
        }
        const password = decodeURIComponent(new URL(fixture.readerUrl).password);
        assert.ok(!result.stdout.includes(password) && !result.stderr.includes(password), 'no password');
      } finally {
        await database.drop();
        await fixture.drop();
      }
    });
  },
);

/**
 * `aa-oidc check` when Alliance Auth's database does not answer at start (`serve` and `worker` stop
 * there): the directory's part is E009, named once with what the connection answered, and every check
 * that needs no directory still reports.
 */
describe(`aa-oidc check when Alliance Auth's database refuses the connection at start (aa-oidc on ${testDatabaseKind})`, () => {
  const forms = {
    user: (scheme: string, port: number) =>
      `${scheme}://aa_reader:hunter2-secret@127.0.0.1:${port}/alliance_auth`,
    query: (scheme: string, port: number) =>
      `${scheme}://aa_reader@127.0.0.1:${port}/alliance_auth?password=hunter2-secret`,
  };
  for (const [scheme, server] of [
    ['mysql', 'MariaDB'],
    ['postgres', 'PostgreSQL'],
  ] as const) {
    for (const [form, urlOf] of Object.entries(forms)) {
      it(`reports E009 for the directory and the other checks' findings, for ${scheme}:// with the password in the ${form}`, async () => {
        const database = await createTestDatabase({ migrated: true });
        const refused = await refusedPort();
        try {
          const url = urlOf(scheme, refused.port);
          const shown = url.replace('hunter2-secret', '***');
          const result = await cli(['check'], testEnv(database, allianceAuthEnv(url)));
          assert.equal(result.code, 1, result.stderr);
          assert.match(result.stderr, /system check found 1 error\(s\): E009/);
          const e009 = result.stdout.split('\n').find((line) => line.startsWith('E009 '));
          assert.equal(
            e009,
            "E009 error: could not read the directory's states and groups, so the checks that need them report " +
              "nothing (W006 of the whitelists naming them, and W016 to W019 of Alliance Auth's rows): " +
              `cannot connect to Alliance Auth's database at ${shown} (AA_OIDC_AA_DATABASE_URL): connection refused; ` +
              `is ${server} running and listening on that address?`,
          );
          // The checks of the keys still ran (no signing key: W011).
          assert.match(result.stdout, /^W011 warning: there is no active signing key/m);
          assert.doesNotMatch(result.stdout + result.stderr, /hunter2|\[redacted\]/);
        } finally {
          refused.close();
          await database.drop();
        }
      });
    }
  }
});
