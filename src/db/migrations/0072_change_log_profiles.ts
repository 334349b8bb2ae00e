import { type Kysely, sql } from 'kysely';
import type { MigrationContext } from './helpers.ts';

/**
 * The change log (`src/db/change-log.ts`, migration 0071) names the built-in directory's changes too,
 * so that users' profiles can be kept in memory like stored tokens (src/oidc/kept-profiles.ts), and a
 * change made by any writer (another instance, a CLI command, SQL typed by hand) is seen by the next
 * request.
 *
 * - `User <id>`: a user's row changed in a column the profile is built from, or was deleted, or one of
 *   its group memberships was added, removed or changed. The columns that are not part of the profile
 *   (the password, the sign-in time, the row's own timestamps) are left out, so that a sign-in, a
 *   password change and the row lock every directory change takes (`updated_at = updated_at`) log
 *   nothing.
 * - `State <id>`, `Group <id>`: a state's or a group's row changed or was deleted. Any number of
 *   profiles embed it: a reader drops every profile it keeps.
 *
 * New users, states and groups are not logged: a profile that was never found was never kept, and
 * nobody holds a state or a group before a later, logged change gives it to them.
 */

/**
 * `app_user` columns whose change is logged: every column as of this migration but the password
 * (`password_hash`, `must_change_password`), `last_login_at`, `created_at` and `updated_at`, which
 * the profile (src/directory/builtin/profile.ts) does not show, and `username_key`, which changes
 * with `username` (likewise a state's and a group's `name_key` with their `name`).
 */
const USER_PROFILE_COLUMNS = [
  'id',
  'username',
  'email',
  'email_verified',
  'active',
  'superuser',
  'oidc_access',
  'state_id',
  'character_id',
  'character_name',
  'corporation_id',
  'corporation_name',
  'corporation_ticker',
  'alliance_id',
  'alliance_name',
  'alliance_ticker',
  'faction_id',
  'faction_name',
  'locale',
];
const STATE_COLUMNS = ['name', 'priority', 'oidc_access'];
const GROUP_COLUMNS = ['name', 'oidc_access'];

/** `update of a, b` and the condition that one of them changed value (`is not`: nulls compare). */
function updateOf(
  columns: readonly string[],
  distinct: 'is not' | 'is distinct from',
): { of: string; changed: string } {
  return {
    of: columns.join(', '),
    changed: columns.map((column) => `old.${column} ${distinct} new.${column}`).join(' or '),
  };
}

export async function up(db: Kysely<unknown>, { kind }: MigrationContext): Promise<void> {
  const run = (text: string) => sql.raw(text).execute(db);
  if (kind === 'sqlite') {
    const user = updateOf(USER_PROFILE_COLUMNS, 'is not');
    const state = updateOf(STATE_COLUMNS, 'is not');
    const group = updateOf(GROUP_COLUMNS, 'is not');
    await run(`create trigger change_log_user_update after update of ${user.of} on app_user
      when ${user.changed}
      begin insert into change_log (key) values ('User ' || old.id); end`);
    await run(`create trigger change_log_user_delete after delete on app_user
      begin insert into change_log (key) values ('User ' || old.id); end`);
    await run(`create trigger change_log_membership_insert after insert on user_group
      begin insert into change_log (key) values ('User ' || new.user_id); end`);
    await run(`create trigger change_log_membership_update after update on user_group
      begin
        insert into change_log (key) values ('User ' || old.user_id);
        insert into change_log (key) select 'User ' || new.user_id where new.user_id is not old.user_id;
      end`);
    await run(`create trigger change_log_membership_delete after delete on user_group
      begin insert into change_log (key) values ('User ' || old.user_id); end`);
    await run(`create trigger change_log_state_update after update of ${state.of} on state
      when ${state.changed}
      begin insert into change_log (key) values ('State ' || old.id); end`);
    await run(`create trigger change_log_state_delete after delete on state
      begin insert into change_log (key) values ('State ' || old.id); end`);
    await run(`create trigger change_log_group_update after update of ${group.of} on auth_group
      when ${group.changed}
      begin insert into change_log (key) values ('Group ' || old.id); end`);
    await run(`create trigger change_log_group_delete after delete on auth_group
      begin insert into change_log (key) values ('Group ' || old.id); end`);
    return;
  }
  // One function per table: the key names the row's own id (a membership: its user, on both sides).
  await run(`create function change_log_user() returns trigger language plpgsql as $$
    begin
      insert into change_log (key) values ('User ' || old.id);
      return null;
    end $$`);
  await run(`create function change_log_membership() returns trigger language plpgsql as $$
    begin
      if tg_op <> 'INSERT' then
        insert into change_log (key) values ('User ' || old.user_id);
      end if;
      if tg_op = 'INSERT' or (tg_op = 'UPDATE' and new.user_id is distinct from old.user_id) then
        insert into change_log (key) values ('User ' || new.user_id);
      end if;
      return null;
    end $$`);
  await run(`create function change_log_state() returns trigger language plpgsql as $$
    begin
      insert into change_log (key) values ('State ' || old.id);
      return null;
    end $$`);
  await run(`create function change_log_group() returns trigger language plpgsql as $$
    begin
      insert into change_log (key) values ('Group ' || old.id);
      return null;
    end $$`);
  const user = updateOf(USER_PROFILE_COLUMNS, 'is distinct from');
  const state = updateOf(STATE_COLUMNS, 'is distinct from');
  const group = updateOf(GROUP_COLUMNS, 'is distinct from');
  await run(`create trigger change_log_user_update after update of ${user.of} on app_user for each row
    when (${user.changed}) execute function change_log_user()`);
  await run(`create trigger change_log_user_delete after delete on app_user for each row
    execute function change_log_user()`);
  await run(`create trigger change_log_membership after insert or update or delete on user_group for each row
    execute function change_log_membership()`);
  await run(`create trigger change_log_state_update after update of ${state.of} on state for each row
    when (${state.changed}) execute function change_log_state()`);
  await run(`create trigger change_log_state_delete after delete on state for each row
    execute function change_log_state()`);
  await run(`create trigger change_log_group_update after update of ${group.of} on auth_group for each row
    when (${group.changed}) execute function change_log_group()`);
  await run(`create trigger change_log_group_delete after delete on auth_group for each row
    execute function change_log_group()`);
}
