import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';

/**
 * The whole database schema, one interface every query is checked against.
 *
 * Portable conventions (SQLite and PostgreSQL share one migration set):
 * - booleans are integers 0/1 (`Flag`);
 * - times are epoch milliseconds in a 64-bit integer (`EpochMs`);
 * - lists and provider payloads are JSON text.
 */
export type Flag = 0 | 1;
export type EpochMs = number;

export interface StateTable {
  id: Generated<number>;
  name: string;
  priority: number;
  oidc_access: Flag;
  created_at: EpochMs;
}

export interface GroupTable {
  id: Generated<number>;
  name: string;
  oidc_access: Flag;
  created_at: EpochMs;
}

export interface UserTable {
  id: Generated<number>;
  username: string;
  email: string;
  email_verified: Flag;
  password_hash: string | null;
  active: Flag;
  superuser: Flag;
  /** The `oidc_access` permission granted to the user directly. */
  oidc_access: Flag;
  state_id: number | null;
  character_id: number | null;
  character_name: string | null;
  corporation_id: number | null;
  corporation_name: string | null;
  corporation_ticker: string | null;
  alliance_id: number | null;
  alliance_name: string | null;
  alliance_ticker: string | null;
  faction_id: number | null;
  faction_name: string | null;
  locale: string | null;
  last_login_at: EpochMs | null;
  created_at: EpochMs;
  updated_at: EpochMs;
}

export interface UserGroupTable {
  user_id: number;
  group_id: number;
}

/** Outbox of directory lifecycle events, written in the transaction of the change. */
export interface LifecycleEventTable {
  id: Generated<number>;
  kind: string;
  user_id: number | null;
  payload: string;
  created_at: EpochMs;
}

export interface Database {
  state: StateTable;
  auth_group: GroupTable;
  app_user: UserTable;
  user_group: UserGroupTable;
  lifecycle_event: LifecycleEventTable;
}

export type StateRow = Selectable<StateTable>;
export type GroupRow = Selectable<GroupTable>;
export type UserRow = Selectable<UserTable>;
export type NewUserRow = Insertable<UserTable>;
export type UserUpdate = Updateable<UserTable>;
export type LifecycleEventRow = Selectable<LifecycleEventTable>;

// Re-exported so that table modules added by later sections use the same helpers.
export type { ColumnType, Generated };
