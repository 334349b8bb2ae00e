import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { UNFIT_IN_ANY_PLACE } from '../../src/util/hidden-characters.ts';
import { unfitNameCharacters } from '../../src/util/hidden-characters.ts';
import {
  allianceAuthEnv,
  createAllianceAuthDatabase,
  describeOnEachAllianceAuth,
  FIXTURE_PASSWORD,
  grantReaderPerTable,
  type AllianceAuthTestDatabase,
  revokeReaderSelectKeepingSchema,
} from '../helpers/alliance-auth.ts';
import { giveGoneState, insertAllianceAuthUser } from '../helpers/alliance-auth-changes.ts';
import { cli } from '../helpers/cli.ts';
import { testEnv } from '../helpers/config.ts';
import { createTestDatabase, testDatabaseKind, type TestDatabase } from '../helpers/database.ts';

/**
 * Rows of Alliance Auth's database that AA's own code would not leave but SQL typed by hand or a
 * failed task does: `aa-oidc check` names them (W016 to W019), a count and the first few; a check
 * whose query fails is reported (W020), the others still made.
 */
it("judges in SQL (W017) every character aa-oidc's own names refuse, but those hidden only where they stand", () => {
  // A tag character is hidden but in a flag, a supplement's variation selector but after an ideograph.
  const hiddenByPlace = (code: number) =>
    (code >= 0xe0000 && code <= 0xe007f) || (code >= 0xe0100 && code <= 0xe01ef);
  const differing: string[] = [];
  for (let code = 0; code <= 0x10ffff; code += 1) {
    if (code >= 0xd800 && code <= 0xdfff) continue;
    const inSql = UNFIT_IN_ANY_PLACE.some(([first, last]) => code >= first && code <= last);
    const refused = unfitNameCharacters(String.fromCodePoint(code)).length > 0 && !hiddenByPlace(code);
    if (inSql !== refused) differing.push(`U+${code.toString(16).toUpperCase()}`);
  }
  assert.deepEqual(differing, []);
});

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
      await giveGoneState(fixture, 46);
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
        /^W017 warning: 1 Alliance Auth username holds a control, bidirectional control or invisible character, .*: "bell\\u0007" \(id 50: U\+0007, a control character, at character 5\)\n {2}hint: rename each user in Alliance Auth's admin/m,
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

    it('names AA names with a bidirectional control or an invisible character as it names a control character', async () => {
      await insertAllianceAuthUser(fixture, 51, 'zero', FIXTURE_PASSWORD);
      await fixture.run(
        `UPDATE auth_user SET username = concat(${withCharacter('ze', 0x200b)}, 'ro') WHERE id = 51`,
      );
      await fixture.run(
        `UPDATE authentication_state SET name = ${withCharacter('Member', 0xfeff)} WHERE name = 'Member'`,
      );
      await fixture.run(`INSERT INTO auth_group (id, name) VALUES (21, ${withCharacter('Admins', 0x202e)})`);
      // A zero-width joiner is part of an emoji sequence (and of several scripts): not judged.
      await fixture.run(`INSERT INTO auth_group (id, name) VALUES (22, 'Crew \u{1f468}\u200d\u{1f469}')`);
      await fixture.run(
        `UPDATE eveonline_evecharacter SET character_name = concat(${withCharacter('Bob', 0x2066)}, ' Bravo') WHERE id = 4`,
      );
      const output = await check();
      assert.match(
        output,
        /^W017 warning: 2 Alliance Auth usernames hold a control, bidirectional control or invisible character, .*: "bell\\u0007" \(id 50: .*\), "ze\\u200bro" \(id 51: U\+200B, an invisible character, at character 3\)\n {2}hint: rename each user/m,
      );
      assert.match(
        output,
        /^W017 warning: 2 Alliance Auth state names hold .*: .*"Member\\ufeff" \(id 2: U\+FEFF, an invisible character, at character 7\)/m,
      );
      assert.match(
        output,
        /^W017 warning: 2 Alliance Auth group names hold .*: .*"Admins\\u202e" \(id 21: U\+202E, a bidirectional control character, at character 7\)/m,
      );
      assert.match(
        output,
        /^W017 warning: 2 Alliance Auth character names hold .*: "Bob\\u2066 Bravo" \(id 4: U\+2066, a bidirectional control character, at character 4\), "Carol Charlie\\u2028"/m,
      );
      assert.doesNotMatch(output, /Crew/);
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

await describeOnEachAllianceAuth(
  (database) =>
    `aa-oidc check on Alliance Auth's rows when one check's query fails, on ${database} (aa-oidc on ${testDatabaseKind})`,
  (kind) => {
    it("reports the check that could not run and why, without the login's password, and still reports the others", async () => {
      const fixture = await createAllianceAuthDatabase(kind);
      const database = await createTestDatabase({ migrated: true });
      try {
        await insertAllianceAuthUser(fixture, 40, 'ghost', FIXTURE_PASSWORD);
        await fixture.run('DELETE FROM authentication_userprofile WHERE user_id = 40');
        // SELECT revoked on the table W019 alone reads, as when the grant goes after start-up.
        await grantReaderPerTable(fixture);
        await revokeReaderSelectKeepingSchema(fixture, 'authentication_characterownership');
        const result = await cli(['check'], testEnv(database, allianceAuthEnv(fixture.readerUrl)));
        assert.equal(result.code, 0, result.stderr);
        assert.match(
          result.stdout,
          /^W020 warning: the check for main characters their user does not own in Alliance Auth's database \(W019\) could not run, so it reports nothing: (mysql|postgres):\/\/aa_reader_\w+:\*+@.*answered ".*authentication_characterownership.*"\n {2}hint: grant the login SELECT on Alliance Auth's tables/m,
        );
        assert.match(
          result.stdout,
          /^W016 warning: 1 Alliance Auth user has no profile or no state .*"ghost"/m,
        );
        assert.ok(!result.stdout.includes(new URL(fixture.readerUrl).password), 'no password');
        assert.ok(!result.stderr.includes(new URL(fixture.readerUrl).password), 'no password');
      } finally {
        await database.drop();
        await fixture.drop();
      }
    });
  },
);
