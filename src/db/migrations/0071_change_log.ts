import { type Kysely, sql } from 'kysely';
import type { MigrationContext } from './helpers.ts';

/**
 * The change log (`src/db/change-log.ts`): a row naming each stored session, grant, access token and
 * client-credentials token that was changed or deleted, written by triggers so that every writer is
 * covered (this process, another instance, a CLI command, a change made by hand in SQL). A process
 * keeps those rows in memory and drops what the log names, reading the log once per turn of the event
 * loop. New rows are not logged (an id never found was never kept), nor deletions of rows already
 * expired a minute ago (the purge's: a kept row is refused once expired anyway).
 *
 * SQLite has one writer at a time, so `seq` (AUTOINCREMENT: never reused) grows in commit order and a
 * reader's cursor is the last `seq` it read. PostgreSQL hands out identity values before commit, so a
 * smaller value may commit after a larger one was read: there a reader's cursor is the snapshot of its
 * last read, and it reads the rows whose transaction (`xid`) that snapshot did not see.
 *
 * `change_epoch` rows 2 and 3 hold the pruning horizon: the log position up to which rows were deleted
 * (a reader behind it drops everything it keeps), and the position the next prune deletes up to.
 */

/** The models whose rows a process keeps (src/oidc/kept-rows.ts). */
const KEPT_MODELS = `('AccessToken', 'ClientCredentials', 'Session', 'Grant')`;

export async function up(db: Kysely<unknown>, { kind }: MigrationContext): Promise<void> {
  await sql`insert into change_epoch (id, value) values (2, 0), (3, 0)`.execute(db);
  if (kind === 'sqlite') {
    await sql`create table change_log (seq integer primary key autoincrement, key text not null)`.execute(db);
    const now = `cast((julianday('now') - 2440587.5) * 86400000 as integer)`;
    const body = `begin
      insert into change_log (key) values (old.model || ' ' || old.id);
      insert into change_log (key) select 'Session uid ' || old.uid where old.model = 'Session' and old.uid is not null;
    end`;
    await sql
      .raw(
        `create trigger change_log_payload_update after update on oidc_payload
        when old.model in ${KEPT_MODELS} ${body}`,
      )
      .execute(db);
    await sql
      .raw(
        `create trigger change_log_payload_delete after delete on oidc_payload
        when old.model in ${KEPT_MODELS} and (old.expires_at is null or old.expires_at > ${now} - 60000) ${body}`,
      )
      .execute(db);
    return;
  }
  await sql`create table change_log (
    seq bigint generated always as identity primary key,
    key text not null,
    xid xid8 not null default pg_current_xact_id()
  )`.execute(db);
  await sql`create index change_log_xid_idx on change_log (xid)`.execute(db);
  await sql
    .raw(
      `create function change_log_payload() returns trigger language plpgsql as $$
    begin
      insert into change_log (key) values (old.model || ' ' || old.id);
      if old.model = 'Session' and old.uid is not null then
        insert into change_log (key) values ('Session uid ' || old.uid);
      end if;
      return null;
    end $$`,
    )
    .execute(db);
  await sql
    .raw(
      `create trigger change_log_payload_update after update on oidc_payload for each row
      when (old.model in ${KEPT_MODELS}) execute function change_log_payload()`,
    )
    .execute(db);
  await sql
    .raw(
      `create trigger change_log_payload_delete after delete on oidc_payload for each row
      when (old.model in ${KEPT_MODELS} and (old.expires_at is null
        or old.expires_at > extract(epoch from clock_timestamp()) * 1000 - 60000))
      execute function change_log_payload()`,
    )
    .execute(db);
}
