import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { openAllianceAuthDatabase, type AllianceAuthConnection } from '../../src/alliance-auth/database.ts';
import { selectGroups, selectStates } from '../../src/alliance-auth/catalog-queries.ts';
import { allianceAuthDirectory } from '../../src/alliance-auth/directory.ts';
import { selectCharacterOwnership } from '../../src/alliance-auth/sign-in-queries.ts';
import {
  passesAllianceAuthGate,
  selectUserById,
  selectUserByUsername,
  selectUsers,
} from '../../src/alliance-auth/user-queries.ts';
import {
  createAllianceAuthDatabase,
  describeOnEachAllianceAuth,
  expectedFixture,
  type AllianceAuthTestDatabase,
} from '../helpers/alliance-auth.ts';

const expected = expectedFixture();

await describeOnEachAllianceAuth(
  (database) => `Reading Alliance Auth's tables on ${database}`,
  (kind) => {
    let fixture: AllianceAuthTestDatabase;
    let aa: AllianceAuthConnection;
    before(async () => {
      fixture = await createAllianceAuthDatabase(kind);
      aa = openAllianceAuthDatabase(fixture.readerUrl);
    });
    after(async () => {
      await aa?.close();
      await fixture?.drop();
    });

    it('reads every user as expected.json describes it, through the SELECT-only login', async () => {
      for (const want of expected.users) {
        const user = await selectUserById(aa.db, want.id);
        assert.ok(user, `user ${want.username}`);
        assert.equal(user.username, want.username);
        assert.equal(user.email, want.email);
        assert.equal(user.active, want.is_active);
        assert.equal(user.superuser, want.is_superuser);
        assert.deepEqual({ id: user.state?.id, name: user.state?.name }, want.state);
        assert.deepEqual(
          user.groups.map((group) => group.name),
          [...want.groups].sort(),
        );
        assert.deepEqual(
          user.groups.map((group) => group.id).sort((a, b) => a - b),
          want.group_ids,
        );
        const main = want.main_character;
        assert.deepEqual(
          user.mainCharacter,
          main === null
            ? null
            : {
                characterId: main.character_id,
                characterName: main.character_name,
                corporationId: main.corporation_id,
                corporationName: main.corporation_name,
                corporationTicker: main.corporation_ticker,
                allianceId: main.alliance_id,
                allianceName: main.alliance_name,
                allianceTicker: main.alliance_ticker,
                factionId: main.faction_id,
                factionName: main.faction_name,
              },
        );
        const sources = [...(user.superuser ? ['superuser'] : []), ...user.permissionVia].sort();
        assert.deepEqual(sources, [...want.oidc_permission_sources].sort(), `${want.username}'s permission`);
        assert.equal(passesAllianceAuthGate(user), want.oidc_access, `${want.username}'s gate`);
      }
      assert.equal(await selectUserById(aa.db, 999), undefined);
    });

    it("takes the locale from the profile's language, and none from an empty one", async () => {
      const alice = expected.users.find((user) => user.username === 'alice')!;
      await fixture.run('UPDATE authentication_userprofile SET language = ? WHERE user_id = ?', [
        'de',
        alice.id,
      ]);
      try {
        assert.equal((await selectUserById(aa.db, alice.id))?.locale, 'de');
      } finally {
        await fixture.run('UPDATE authentication_userprofile SET language = ? WHERE user_id = ?', [
          '',
          alice.id,
        ]);
      }
      assert.equal((await selectUserById(aa.db, alice.id))?.locale, null);
    });

    it('tells what each password is worth at sign-in here, from the same read as the rest of the user', async () => {
      const worth = {
        alice: 'verifiable',
        // Django's unusable password (the accounts EVE SSO makes), and none at all.
        bob: 'unusable',
        erin: 'unusable',
        // Django's BCryptSHA256PasswordHasher, which aa-oidc does not verify.
        carol: 'unverifiable',
        // Argon2 with twice the memory aa-oidc computes: not trusted, so not checked.
        dave: 'unverifiable',
      } as const;
      const stored = {
        bob: '!q3ZbO2NGC9eTTcL4kpDW7RhcU1Hjw5zEmA8sVXfy',
        erin: '',
        carol: 'bcrypt_sha256$$2b$12$NF7ZcEKXV8vIXmSEc4yWFOyhVjHJL3zMrUWC4fh4MhAaX2t5ZGpyi',
        dave: 'argon2$argon2id$v=19$m=2097152,t=2,p=8$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA',
      };
      const kept = await fixture.owner.selectFrom('auth_user').select(['username', 'password']).execute();
      try {
        for (const [username, password] of Object.entries(stored))
          await fixture.run('UPDATE auth_user SET password = ? WHERE username = ?', [password, username]);
        const directory = allianceAuthDirectory(aa.db, { emailVerified: false });
        for (const [username, want] of Object.entries(worth)) {
          const byName = await selectUserByUsername(aa.db, username);
          assert.ok(byName, username);
          assert.equal(byName.keptPassword, want, `${username} by name`);
          assert.equal((await selectUserById(aa.db, byName.id))?.keptPassword, want, `${username} by id`);
          assert.equal((await directory.profileById(byName.id))?.keptPassword, want, `${username}'s profile`);
        }
        const listed = await selectUsers(aa.db, {});
        assert.deepEqual(
          Object.fromEntries(
            listed.filter((user) => user.username in worth).map((user) => [user.username, user.keptPassword]),
          ),
          worth,
        );
      } finally {
        for (const { username, password } of kept)
          await fixture.run('UPDATE auth_user SET password = ? WHERE username = ?', [password, username]);
      }
    });

    it('finds users by username and lists them sorted, filtered by state, group and text', async () => {
      assert.equal((await selectUserByUsername(aa.db, 'carol'))?.id, 4);
      const all = await selectUsers(aa.db, {});
      assert.deepEqual(
        all.map((user) => user.username),
        expected.users.map((user) => user.username).sort(),
      );
      const members = await selectUsers(aa.db, { stateId: 2 });
      assert.deepEqual(
        members.map((user) => user.username),
        expected.users
          .filter((user) => user.state.name === 'Member')
          .map((user) => user.username)
          .sort(),
      );
      const directors = await selectUsers(aa.db, { groupId: 1 });
      assert.deepEqual(
        directors.map((user) => user.username),
        ['alice', 'carol'],
      );
      assert.deepEqual(
        (await selectUsers(aa.db, { active: false })).map((user) => user.username),
        ['dave'],
      );
      assert.deepEqual(
        (await selectUsers(aa.db, { search: 'ALI' })).map((user) => user.username),
        ['alice'],
      );
      assert.deepEqual(
        (await selectUsers(aa.db, { limit: 2, offset: 1 })).map((user) => user.username),
        all.slice(1, 3).map((user) => user.username),
      );
    });

    it('counts the users a filter selects as the directory lists them, without reading them', async () => {
      const port = allianceAuthDirectory(aa.db, { emailVerified: true });
      const named = (filter: (user: (typeof expected.users)[number]) => boolean) =>
        expected.users.filter(filter).length;
      const cases = [
        [{}, expected.users.length],
        [{ state: 'member' }, named((user) => user.state.name === 'Member')],
        [{ group: 'DIRECTORS' }, named((user) => user.groups.includes('Directors'))],
        [{ active: false }, named((user) => !user.is_active)],
        [{ state: 'Member', active: true }, named((user) => user.state.name === 'Member' && user.is_active)],
        [{ search: 'ali' }, 1],
        // The fixture's users all have a state; an unknown name and a NUL byte select nobody.
        [{ state: null }, 0],
        [{ state: 'No Such State' }, 0],
        [{ group: 'No Such Group' }, 0],
        [{ search: 'a\0b' }, 0],
      ] as const;
      for (const [filter, count] of cases) {
        assert.equal(await port.countProfiles(filter), count, JSON.stringify(filter));
        assert.equal((await port.listProfiles(filter)).length, count, JSON.stringify(filter));
      }
      assert.equal(await port.countProfiles(), expected.users.length);
    });

    it('lists states by priority and groups by name, with the access permission and member counts', async () => {
      const states = await selectStates(aa.db);
      assert.deepEqual(
        states.map((state) => [state.name, state.priority, state.grantsAccess]),
        expected.states.map((state) => [state.name, state.priority, state.grants_oidc]),
      );
      const groups = await selectGroups(aa.db);
      assert.deepEqual(
        groups.map((group) => [group.name, group.grantsAccess, group.userCount]),
        expected.groups.map((group) => [group.name, group.grants_oidc, group.members.length]),
      );
    });

    it('reads a character ownership with the owner hash and the owner main character', async () => {
      const alice = expected.users.find((user) => user.username === 'alice')!;
      const main = alice.characters.find((character) => character.is_main)!;
      const alt = alice.characters.find((character) => !character.is_main)!;
      assert.deepEqual(await selectCharacterOwnership(aa.db, main.character_id), {
        characterKnown: true,
        ownership: {
          userId: alice.id,
          ownerHash: main.owner_hash,
          userActive: true,
          mainCharacterId: main.character_id,
        },
      });
      assert.equal(
        (await selectCharacterOwnership(aa.db, alt.character_id)).ownership?.mainCharacterId,
        main.character_id,
      );
      // Erin Echo exists as a character but nobody owns it.
      assert.deepEqual(await selectCharacterOwnership(aa.db, 2112000006), {
        characterKnown: true,
        ownership: null,
      });
      assert.deepEqual(await selectCharacterOwnership(aa.db, 90000001), {
        characterKnown: false,
        ownership: null,
      });
    });

    it('finds no owner for a character id beyond the 32-bit column, rather than failing the sign-in', async () => {
      // PostgreSQL's `character_id` is a signed 32-bit integer (it would refuse the comparison),
      // MariaDB's an unsigned one: an id neither holds is nobody's character.
      for (const characterId of [2_147_483_648, 4_294_967_296, Number.MAX_SAFE_INTEGER + 2]) {
        assert.deepEqual(
          await selectCharacterOwnership(aa.db, characterId),
          { characterKnown: false, ownership: null },
          String(characterId),
        );
      }
      if (kind === 'mysql') {
        // MariaDB's unsigned column holds ids beyond 2^31: such a character is still found.
        const frank = await fixture.owner
          .selectFrom('eveonline_evecharacter')
          .selectAll()
          .where('character_id', '=', 2112000007)
          .executeTakeFirstOrThrow();
        const { id: _id, ...columns } = frank;
        await fixture.owner
          .insertInto('eveonline_evecharacter')
          .values({ ...columns, id: 100, character_id: 3_000_000_000, character_name: 'Far Pilot' })
          .execute();
        assert.deepEqual(await selectCharacterOwnership(aa.db, 3_000_000_000), {
          characterKnown: true,
          ownership: null,
        });
      }
    });

    it('opens every session read-only: even a login that may write cannot write through aa-oidc', async () => {
      const privileged = openAllianceAuthDatabase(fixture.ownerUrl);
      try {
        assert.equal((await selectUserById(privileged.db, 1))?.id, 1, 'it reads');
        await assert.rejects(
          privileged.db
            .updateTable('auth_user')
            .set({ email: 'x@example.org' })
            .where('id', '=', 1)
            .execute(),
          /read[ -]only/i,
        );
      } finally {
        await privileged.close();
      }
      const row = await fixture.owner
        .selectFrom('auth_user')
        .select('email')
        .where('id', '=', 1)
        .executeTakeFirstOrThrow();
      assert.notEqual(row.email, 'x@example.org', 'nothing was written');
    });

    it('cannot write through the SELECT-only login', async () => {
      await assert.rejects(
        fixture.owner
          .transaction()
          .execute(async () => undefined)
          .then(() =>
            aa.db.updateTable('auth_user').set({ email: 'x@example.org' }).where('id', '=', 1).execute(),
          ),
      );
    });
  },
);
