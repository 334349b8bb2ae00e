import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { sql } from 'kysely';
import {
  allianceAuthEnv,
  createAllianceAuthDatabase,
  describeOnEachAllianceAuth,
  FIXTURE_PASSWORD,
  type AllianceAuthTestDatabase,
} from '../helpers/alliance-auth.ts';
import { insertAllianceAuthUser } from '../helpers/alliance-auth-changes.ts';
import { cli } from '../helpers/cli.ts';
import { testEnv } from '../helpers/config.ts';
import { createTestDatabase, testDatabaseKind, type TestDatabase } from '../helpers/database.ts';

/**
 * Rows of Alliance Auth's database that AA's own code would not leave but SQL typed by hand or a
 * failed task does: `aa-oidc check` names them (W016 to W019), a count and the first few.
 */
await describeOnEachAllianceAuth(
  (database) => `aa-oidc check on Alliance Auth's rows, on ${database} (aa-oidc on ${testDatabaseKind})`,
  (kind) => {
    let fixture: AllianceAuthTestDatabase;
    let database: TestDatabase;
    const check = async () => {
      const result = await cli(['check'], testEnv(database, allianceAuthEnv(fixture.readerUrl)));
      assert.equal(result.code, 0, result.stderr);
      return result.stdout;
    };
    /** `text` followed by the character with this code, in the SQL of the fixture's server. */
    const withCharacter = (text: string, code: number) =>
      kind === 'mysql'
        ? `concat('${text}', char(0x${Buffer.from(String.fromCodePoint(code)).toString('hex')} using utf8mb4))`
        : `'${text}' || chr(${code})`;

    before(async () => {
      fixture = await createAllianceAuthDatabase(kind);
      database = await createTestDatabase({ migrated: true });
    });
    after(async () => {
      await database?.drop();
      await fixture?.drop();
    });

    it('says nothing of the fixture, whose rows are as AA leaves them', async () => {
      assert.doesNotMatch(await check(), /W01[6-9]/);
    });

    it('counts the users without a profile or a state, naming the first five by username', async () => {
      for (let id = 40; id < 46; id += 1) {
        await insertAllianceAuthUser(fixture, id, `ghost${id}`, FIXTURE_PASSWORD);
        await fixture.run('DELETE FROM authentication_userprofile WHERE user_id = ?', [id]);
      }
      await insertAllianceAuthUser(fixture, 46, 'adrift', FIXTURE_PASSWORD);
      // A state deleted with the foreign key's checks off (AA would have moved its users to Guest).
      await fixture.owner.connection().execute(async (connection) => {
        await sql
          .raw(kind === 'mysql' ? 'SET FOREIGN_KEY_CHECKS = 0' : 'SET session_replication_role = replica')
          .execute(connection);
        await sql`UPDATE authentication_userprofile SET state_id = 999 WHERE user_id = 46`.execute(
          connection,
        );
        await sql
          .raw(kind === 'mysql' ? 'SET FOREIGN_KEY_CHECKS = 1' : 'SET session_replication_role = DEFAULT')
          .execute(connection);
      });
      const output = await check();
      assert.match(
        output,
        /^W016 warning: 7 Alliance Auth users have no profile or no state .*: "adrift" \(id 46: its state, id 999, does not exist\), "ghost40" \(id 40: no profile\), "ghost41" \(id 41: no profile\), "ghost42" \(id 42: no profile\), "ghost43" \(id 43: no profile\), and 2 more\n {2}hint: .*UserProfile\.objects\.get_or_create/m,
      );
      assert.doesNotMatch(output, /ghost44/);
    });

    it('names a main character owned by another user, or by nobody, with its owner', async () => {
      // erin (6) takes Alice Alt (3), alice's; dave (5) takes Erin Echo (7), which nobody owns.
      await fixture.run('UPDATE authentication_userprofile SET main_character_id = 3 WHERE user_id = 6');
      await fixture.run('UPDATE authentication_userprofile SET main_character_id = 7 WHERE user_id = 5');
      assert.match(
        await check(),
        /^W019 warning: 2 Alliance Auth users have a main character another user owns, or nobody does .*: "dave" \(id 5\): "Erin Echo" \(EVE id 2112000006\), owned by nobody; "erin" \(id 6\): "Alice Alt" \(EVE id 2112000002\), owned by "alice" \(id 2\)\n {2}hint: in Alliance Auth's admin, set each user's main character/m,
      );
    });

    it('names usernames, state, group and character names with a control character, each with where it is', async () => {
      await insertAllianceAuthUser(fixture, 50, 'bell', FIXTURE_PASSWORD);
      await fixture.run(`UPDATE auth_user SET username = ${withCharacter('bell', 7)} WHERE id = 50`);
      await fixture.run(
        `UPDATE authentication_state SET name = ${withCharacter('Blue', 0x1b)} WHERE name = 'Blue'`,
      );
      await fixture.run(`INSERT INTO auth_group (id, name) VALUES (20, ${withCharacter('Scouts', 0x85)})`);
      await fixture.run(
        `UPDATE eveonline_evecharacter SET character_name = ${withCharacter('Carol Charlie', 0x2028)} WHERE id = 5`,
      );
      const output = await check();
      assert.match(
        output,
        /^W017 warning: 1 Alliance Auth username holds a control character, .*: "bell\\u0007" \(id 50: U\+0007, a control character, at character 5\)\n {2}hint: rename each user in Alliance Auth's admin/m,
      );
      assert.match(
        output,
        /^W017 warning: 1 Alliance Auth state name holds .*: "Blue\\u001b" \(id 3: U\+001B, a control character, at character 5\)/m,
      );
      assert.match(
        output,
        /^W017 warning: 1 Alliance Auth group name holds .*: "Scouts\\u0085" \(id 20: U\+0085, a control character, at character 7\)/m,
      );
      assert.match(
        output,
        /^W017 warning: 1 Alliance Auth character name holds .*: "Carol Charlie\\u2028" \(id 5: U\+2028, a line separator, at character 14\)/m,
      );
    });
  },
);

await describeOnEachAllianceAuth(
  (database) =>
    `aa-oidc check on Alliance Auth's names holding a NUL, on ${database} (aa-oidc on ${testDatabaseKind})`,
  (kind) => {
    it(
      kind === 'mysql'
        ? 'names a group whose NUL makes it read as another group, and the NUL itself'
        : 'has no NUL to name: PostgreSQL refuses one in any text',
      async () => {
        const fixture = await createAllianceAuthDatabase(kind);
        const database = await createTestDatabase({ migrated: true });
        try {
          if (kind === 'mysql') {
            await fixture.run(
              "INSERT INTO auth_group (id, name) VALUES (20, concat('Fleet', char(0 using utf8mb4)))",
            );
            await fixture.run("INSERT INTO auth_group (id, name) VALUES (21, 'Fleet\uFFFD')");
          } else {
            await assert.rejects(
              fixture.run("INSERT INTO auth_group (id, name) VALUES (20, 'Fleet' || chr(0))"),
            );
          }
          const result = await cli(['check'], testEnv(database, allianceAuthEnv(fixture.readerUrl)));
          assert.equal(result.code, 0, result.stderr);
          if (kind !== 'mysql') return assert.doesNotMatch(result.stdout, /W01[6-9]/);
          assert.match(
            result.stdout,
            /^W018 warning: 1 pair of Alliance Auth groups reads as one name, .*: "Fleet\uFFFD" \(id 20 with a NUL, id 21\)\n {2}hint: rename the group with the NUL/m,
          );
          assert.match(
            result.stdout,
            /^W017 warning: 1 Alliance Auth group name holds .*: "Fleet\uFFFD" \(id 20: a NUL, which aa-oidc reads as U\+FFFD\)/m,
          );
        } finally {
          await database.drop();
          await fixture.drop();
        }
      },
    );
  },
);
