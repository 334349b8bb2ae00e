import { sql } from 'kysely';
import { makeDjangoPbkdf2 } from '../../src/util/django-pbkdf2.ts';
import type { AllianceAuthTestDatabase } from './alliance-auth.ts';

/**
 * The statements Alliance Auth's own code runs for each kind of change (Django ORM saves and the
 * signal handlers of AA 4.1: `authentication/signals.py`, `groupmanagement/signals.py`, Django's
 * deletion collector), run in one transaction as AA's request would. See the fixture's
 * SCHEMA-NOTES.md, sections 1, 2, 3, 5 and 7.
 */
export interface AllianceAuthActions {
  /** An administrator unticks "active": the user, then `assign_state_on_active_change` → Guest. */
  deactivate(userId: number): Promise<void>;
  /** Ticked again: the user, then `assign_state()` recomputes the state from the main character. */
  reactivate(userId: number, state: string): Promise<void>;
  /** `user.groups.remove(group)` (admin, group leader, or the user leaving). */
  removeGroup(userId: number, group: string): Promise<void>;
  /** `user.groups.add(group)`. */
  addGroup(userId: number, group: string): Promise<void>;
  /**
   * The main character's alliance changes (`run_model_update`), the state is recomputed
   * (`assign_state`, with its notification), and `check_groups_on_state_change` removes the groups
   * restricted to other states.
   */
  moveMainToAlliance(
    userId: number,
    alliance: { id: number | null; name: string | null; ticker: string | null },
    newState: string,
  ): Promise<void>;
  /** The main character's ownership is revoked (owner hash changed): `validate_main_character` clears the main, the state falls to Guest. */
  loseMainCharacter(userId: number): Promise<void>;
  /** `user.delete()`: Django's collector deletes what cascades, then the user. */
  deleteUser(userId: number): Promise<void>;
  /**
   * `group.delete()` in the admin: Django's collector deletes the group's request logs and requests,
   * its groupmanagement row with its leaders and states, its permissions and memberships, then the
   * group.
   */
  deleteGroup(group: string): Promise<void>;
  /** `group.permissions.remove(access_oidc)` in the admin. */
  removeGroupPermission(group: string): Promise<void>;
  /**
   * The group's name edited in the admin (`group.save()`: `auth_group.name`, its id unchanged), or
   * a state's (`state.save()`: `authentication_state.name`); `names` are renamed in one transaction,
   * in the order given (a swap goes through a third name, as the admin's unique names require).
   */
  rename(entity: 'state' | 'group', names: ReadonlyArray<readonly [from: string, to: string]>): Promise<void>;
  /**
   * `manage.py createsuperuser`: the user row (active, staff, superuser, with the password's PBKDF2
   * hash), then `create_required_models`' profile in the Guest state, without a main character.
   * Returns the new user's id.
   */
  createSuperuser(username: string, password: string): Promise<number>;
  /**
   * `user.set_password(raw); user.save()` (the admin's password form, or `changepassword`): Django
   * writes the new PBKDF2 hash; the other columns it saves keep their values.
   */
  setPassword(userId: number, password: string): Promise<void>;
  /**
   * The user adds an alt through AA's EVE SSO: `EveCharacter.objects.create_character`, the
   * `CharacterOwnership`, and `ownership_record_creation`'s `OwnershipRecord`. The main stays.
   */
  addAlt(
    userId: number,
    character: { characterId: number; characterName: string; ownerHash: string },
  ): Promise<void>;
}

export function allianceAuthActions(fixture: AllianceAuthTestDatabase): AllianceAuthActions {
  const { owner } = fixture;
  const b = (value: boolean) => fixture.bool(value);
  const now = () => new Date().toISOString().replace('T', ' ').replace('Z', '');
  const stateId = async (name: string): Promise<number> => {
    const row = await owner
      .selectFrom('authentication_state')
      .select('id')
      .where('name', '=', name)
      .executeTakeFirstOrThrow();
    return Number(row.id);
  };
  const groupId = async (name: string): Promise<number> => {
    const row = await owner
      .selectFrom('auth_group')
      .select('id')
      .where('name', '=', name)
      .executeTakeFirstOrThrow();
    return Number(row.id);
  };
  const notify = (trx: typeof owner, userId: number, title: string) =>
    sql`INSERT INTO notifications_notification (level, title, message, timestamp, viewed, user_id)
        VALUES ('info', ${title}, ${title}, ${now()}, ${b(false)}, ${userId})`.execute(trx);

  return {
    async deactivate(userId) {
      const guest = await stateId('Guest');
      await owner.transaction().execute(async (trx) => {
        await sql`UPDATE authentication_userprofile SET state_id = ${guest} WHERE user_id = ${userId}`.execute(
          trx,
        );
        await sql`UPDATE auth_user SET is_active = ${b(false)} WHERE id = ${userId}`.execute(trx);
      });
    },
    async reactivate(userId, state) {
      const id = await stateId(state);
      await owner.transaction().execute(async (trx) => {
        await sql`UPDATE auth_user SET is_active = ${b(true)} WHERE id = ${userId}`.execute(trx);
        await sql`UPDATE authentication_userprofile SET state_id = ${id} WHERE user_id = ${userId}`.execute(
          trx,
        );
        await notify(trx, userId, `State changed to: ${state}`);
      });
    },
    async rename(entity, names) {
      const table = entity === 'state' ? 'authentication_state' : 'auth_group';
      await owner.transaction().execute(async (trx) => {
        for (const [from, to] of names) {
          await trx.updateTable(table).set({ name: to }).where('name', '=', from).execute();
        }
      });
    },
    async removeGroup(userId, group) {
      const id = await groupId(group);
      await sql`DELETE FROM auth_user_groups WHERE user_id = ${userId} AND group_id IN (${id})`.execute(
        owner,
      );
    },
    async addGroup(userId, group) {
      const id = await groupId(group);
      await sql`INSERT INTO auth_user_groups (user_id, group_id) VALUES (${userId}, ${id})`.execute(owner);
    },
    async moveMainToAlliance(userId, alliance, newState) {
      const id = await stateId(newState);
      await owner.transaction().execute(async (trx) => {
        await sql`UPDATE eveonline_evecharacter SET alliance_id = ${alliance.id}, alliance_name = ${alliance.name}, alliance_ticker = ${alliance.ticker}
                  WHERE id = (SELECT main_character_id FROM authentication_userprofile WHERE user_id = ${userId})`.execute(
          trx,
        );
        await sql`UPDATE authentication_userprofile SET state_id = ${id} WHERE user_id = ${userId}`.execute(
          trx,
        );
        await notify(trx, userId, `State changed to: ${newState}`);
        await sql`DELETE FROM auth_user_groups WHERE user_id = ${userId} AND group_id IN (
                    SELECT authgroup_id FROM groupmanagement_authgroup_states
                    WHERE authgroup_id NOT IN (SELECT authgroup_id FROM groupmanagement_authgroup_states WHERE state_id = ${id}))`.execute(
          trx,
        );
      });
    },
    async loseMainCharacter(userId) {
      const guest = await stateId('Guest');
      await owner.transaction().execute(async (trx) => {
        await sql`DELETE FROM authentication_characterownership
                  WHERE character_id = (SELECT main_character_id FROM authentication_userprofile WHERE user_id = ${userId})`.execute(
          trx,
        );
        await sql`UPDATE authentication_userprofile SET main_character_id = NULL WHERE user_id = ${userId}`.execute(
          trx,
        );
        await sql`UPDATE authentication_userprofile SET state_id = ${guest} WHERE user_id = ${userId}`.execute(
          trx,
        );
        await notify(trx, userId, 'State changed to: Guest');
      });
    },
    async deleteUser(userId) {
      await owner.transaction().execute(async (trx) => {
        for (const statement of [
          sql`DELETE FROM notifications_notification WHERE user_id = ${userId}`,
          sql`DELETE FROM groupmanagement_grouprequest WHERE user_id = ${userId}`,
          sql`DELETE FROM groupmanagement_requestlog WHERE request_actor_id = ${userId}`,
          sql`DELETE FROM groupmanagement_authgroup_group_leaders WHERE user_id = ${userId}`,
          sql`DELETE FROM esi_token_scopes WHERE token_id IN (SELECT id FROM esi_token WHERE user_id = ${userId})`,
          sql`DELETE FROM esi_callbackredirect WHERE token_id IN (SELECT id FROM esi_token WHERE user_id = ${userId})`,
          sql`DELETE FROM esi_token WHERE user_id = ${userId}`,
          sql`DELETE FROM authentication_ownershiprecord WHERE user_id = ${userId}`,
          sql`DELETE FROM authentication_characterownership WHERE user_id = ${userId}`,
          sql`DELETE FROM authentication_userprofile WHERE user_id = ${userId}`,
          sql`DELETE FROM auth_user_user_permissions WHERE user_id = ${userId}`,
          sql`DELETE FROM auth_user_groups WHERE user_id = ${userId}`,
          sql`DELETE FROM django_admin_log WHERE user_id = ${userId}`,
          sql`DELETE FROM auth_user WHERE id = ${userId}`,
        ]) {
          await statement.execute(trx);
        }
      });
    },
    async removeGroupPermission(group) {
      const id = await groupId(group);
      await sql`DELETE FROM auth_group_permissions WHERE group_id = ${id} AND permission_id IN (
                  SELECT p.id FROM auth_permission p JOIN django_content_type ct ON ct.id = p.content_type_id
                  WHERE ct.app_label = 'allianceauth_oidc' AND p.codename = 'access_oidc')`.execute(owner);
    },
    async createSuperuser(username, password) {
      const hash = await makeDjangoPbkdf2(password, 20_000);
      const guest = await stateId('Guest');
      return owner.transaction().execute(async (trx) => {
        await sql`INSERT INTO auth_user (password, last_login, is_superuser, username, first_name, last_name, email,
                    is_staff, is_active, date_joined)
                  VALUES (${hash}, NULL, ${b(true)}, ${username}, '', '', ${`${username}@example.org`},
                    ${b(true)}, ${b(true)}, ${now()})`.execute(trx);
        const row = await trx
          .selectFrom('auth_user')
          .select('id')
          .where('username', '=', username)
          .executeTakeFirstOrThrow();
        await sql`INSERT INTO authentication_userprofile (main_character_id, state_id, user_id, language, night_mode, theme)
                  VALUES (NULL, ${guest}, ${row.id}, '', NULL, NULL)`.execute(trx);
        return Number(row.id);
      });
    },
    async deleteGroup(group) {
      const id = await groupId(group);
      await owner.transaction().execute(async (trx) => {
        for (const statement of [
          sql`DELETE FROM groupmanagement_requestlog WHERE group_id = ${id}`,
          sql`DELETE FROM groupmanagement_grouprequest WHERE group_id = ${id}`,
          sql`DELETE FROM groupmanagement_authgroup_group_leader_groups WHERE authgroup_id = ${id} OR group_id = ${id}`,
          sql`DELETE FROM groupmanagement_authgroup_group_leaders WHERE authgroup_id = ${id}`,
          sql`DELETE FROM groupmanagement_authgroup_states WHERE authgroup_id = ${id}`,
          sql`DELETE FROM groupmanagement_authgroup WHERE group_id = ${id}`,
          sql`DELETE FROM auth_group_permissions WHERE group_id = ${id}`,
          sql`DELETE FROM auth_user_groups WHERE group_id = ${id}`,
          sql`DELETE FROM auth_group WHERE id = ${id}`,
        ])
          await statement.execute(trx);
      });
    },
    async setPassword(userId, password) {
      const hash = await makeDjangoPbkdf2(password, 20_000);
      await sql`UPDATE auth_user SET password = ${hash} WHERE id = ${userId}`.execute(owner);
    },
    async addAlt(userId, character) {
      await owner.transaction().execute(async (trx) => {
        await sql`INSERT INTO eveonline_evecharacter (character_id, character_name, corporation_id, corporation_name,
                    corporation_ticker, alliance_id, alliance_name, alliance_ticker, faction_id, faction_name)
                  VALUES (${character.characterId}, ${character.characterName}, 98000001, 'Alt Storage Inc', 'ALTS',
                    NULL, NULL, NULL, NULL, NULL)`.execute(trx);
        const row = await trx
          .selectFrom('eveonline_evecharacter')
          .select('id')
          .where('character_id', '=', character.characterId)
          .executeTakeFirstOrThrow();
        await sql`INSERT INTO authentication_characterownership (owner_hash, character_id, user_id)
                  VALUES (${character.ownerHash}, ${row.id}, ${userId})`.execute(trx);
        await sql`INSERT INTO authentication_ownershiprecord (owner_hash, created, character_id, user_id)
                  VALUES (${character.ownerHash}, ${now()}, ${row.id}, ${userId})`.execute(trx);
      });
    },
  };
}

/**
 * A user row written by hand, as given (the id, and a username Django's `create_user` would have
 * normalised), with the access permission and a profile in the Guest state: for users the fixture
 * cannot hold. The password is hashed with few iterations, to keep the tests quick.
 */
export async function insertAllianceAuthUser(
  fixture: AllianceAuthTestDatabase,
  id: number,
  username: string,
  password: string,
): Promise<void> {
  const hash = await makeDjangoPbkdf2(password, 1000);
  await fixture.run(
    `INSERT INTO auth_user (id, password, last_login, is_superuser, username, first_name, last_name, email, is_staff, is_active, date_joined)
     VALUES (?, ?, NULL, ?, ?, '', '', ?, ?, ?, '2024-01-01 00:00:00')`,
    [
      id,
      hash,
      fixture.bool(false),
      username,
      `user-${id}@example.org`,
      fixture.bool(false),
      fixture.bool(true),
    ],
  );
  await fixture.run(
    `INSERT INTO auth_user_user_permissions (user_id, permission_id)
     SELECT ?, p.id FROM auth_permission p JOIN django_content_type ct ON ct.id = p.content_type_id
     WHERE ct.app_label = 'allianceauth_oidc' AND p.codename = 'access_oidc'`,
    [id],
  );
  await fixture.run(
    `INSERT INTO authentication_userprofile (user_id, state_id, language, main_character_id) VALUES (?, 1, '', NULL)`,
    [id],
  );
}

/**
 * Points user `userId`'s profile at a state that does not exist (id 999), as SQL typed by hand with
 * the foreign key's checks off leaves it: AA itself would have moved the user to Guest.
 */
export async function giveGoneState(fixture: AllianceAuthTestDatabase, userId: number): Promise<void> {
  const mysql = fixture.kind === 'mysql';
  await fixture.owner.connection().execute(async (connection) => {
    await sql
      .raw(mysql ? 'SET FOREIGN_KEY_CHECKS = 0' : 'SET session_replication_role = replica')
      .execute(connection);
    await sql`UPDATE authentication_userprofile SET state_id = 999 WHERE user_id = ${userId}`.execute(
      connection,
    );
    await sql
      .raw(mysql ? 'SET FOREIGN_KEY_CHECKS = 1' : 'SET session_replication_role = DEFAULT')
      .execute(connection);
  });
}

/**
 * Runs `body` while `table.column` goes by another name (`<column>_renamed`), as an Alliance Auth
 * upgrade or a migration applied halfway leaves it, and names it back afterwards, whatever `body` did.
 */
export async function withColumnRenamed<T>(
  fixture: AllianceAuthTestDatabase,
  table: string,
  column: string,
  body: () => Promise<T>,
): Promise<T> {
  const renamed = `${column}_renamed`;
  await fixture.run(`ALTER TABLE ${table} RENAME COLUMN ${column} TO ${renamed}`);
  try {
    return await body();
  } finally {
    await fixture.run(`ALTER TABLE ${table} RENAME COLUMN ${renamed} TO ${column}`);
  }
}
