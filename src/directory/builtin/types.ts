import type { Transaction } from 'kysely';
import type { Database, GroupRow, StateRow, UserRow } from '../../db/schema.ts';
import type { Consequence } from '../../db/unit-of-work.ts';
import type { KeptPassword } from '../port.ts';

/**
 * The built-in directory's own records of a user: the stored user, state and groups, as its admin
 * interface (the CLI's `user`, `state` and `group` commands, the admin UI) shows and changes them.
 * Nothing outside the built-in directory and its admin tooling reads these: everyone else reads the
 * port's plain `UserProfile` (src/directory/port.ts).
 */
export interface UserRecord {
  user: UserRow;
  state: StateRow | null;
  /** Sorted by name. */
  groups: GroupRow[];
  /**
   * Set for a user another directory keeps (Alliance Auth): what the password it holds for them is
   * worth at password sign-in here (`user.password_hash` is null: none is held here), and that it
   * keeps no time of the record's last change (`user.updated_at` means nothing). Absent for the
   * built-in directory's users.
   */
  keptElsewhere?: { password: KeptPassword };
}

/**
 * The built-in directory's record of each change it made: one `lifecycle_event` row, written inside
 * the change's transaction, and what the admin audit (`admin_change`) reports. The consequences of a
 * change (token revocation, back-channel logout) follow the port's change feed instead.
 */
export type LifecycleEvent =
  | { kind: 'user_created'; userId: number; username: string }
  | { kind: 'user_deactivated'; userId: number; username: string }
  | { kind: 'user_activated'; userId: number; username: string }
  | {
      kind: 'user_state_changed';
      userId: number;
      username: string;
      fromState: string | null;
      toState: string | null;
    }
  | { kind: 'user_group_added'; userId: number; username: string; group: string }
  | { kind: 'user_group_removed'; userId: number; username: string; group: string }
  | { kind: 'user_deleted'; userId: number; username: string }
  | { kind: 'user_password_changed'; userId: number; username: string }
  | { kind: 'user_updated'; userId: number; username: string; fields: string[] }
  | { kind: 'state_created'; stateId: number; name: string; priority: number; oidcAccess: boolean }
  | { kind: 'state_access_changed'; stateId: number; name: string; oidcAccess: boolean }
  | { kind: 'state_renamed'; stateId: number; from: string; to: string }
  | { kind: 'state_priority_changed'; stateId: number; name: string; from: number; to: number }
  | { kind: 'state_deleted'; stateId: number; name: string }
  | { kind: 'group_created'; groupId: number; name: string; oidcAccess: boolean }
  | { kind: 'group_access_changed'; groupId: number; name: string; oidcAccess: boolean }
  | { kind: 'group_renamed'; groupId: number; from: string; to: string }
  | { kind: 'group_deleted'; groupId: number; name: string; members: number };

export type LifecycleKind = LifecycleEvent['kind'];

/** Runs inside the transaction of the change; throwing rolls the change back. */
export type LifecycleSubscriber = (
  event: LifecycleEvent,
  trx: Transaction<Database>,
  meta: LifecycleEventMeta,
) => Promise<void>;

/** Runs after the transaction committed (audit log, caches). Never affects the change. */
export type CommittedListener = (event: LifecycleEvent, meta: LifecycleEventMeta) => void | Promise<void>;

/** What the `lifecycle_event` row adds to the event. */
export interface LifecycleEventMeta {
  /** `lifecycle_event.id` of the row written for this event. */
  eventId: number;
  /** Epoch milliseconds. */
  at: number;
  actor: string | null;
  /** True when the change will be rolled back (`ChangeOptions.dryRun`). */
  dryRun: boolean;
}

/** Names one user: by username (matched regardless of case) or by id. */
export type UserRef = { username: string } | { id: number };

/** Passed to every change. */
export interface ChangeOptions {
  /** Recorded with the lifecycle event: `cli:root`, `admin:alice`, … */
  actor?: string;
  /**
   * Runs the whole change, validation, guards and subscribers included, then rolls it back:
   * the result tells what would happen; nothing is committed and no committed listener runs.
   */
  dryRun?: boolean;
  /**
   * Collects what the change caused (applications lost, back-channel logouts queued, tokens revoked,
   * sessions ended), as the consumers of the change feed report it; with `dryRun`, what it would.
   */
  consequences?: Consequence[];
}

/** The main character and corporation/alliance/faction of a user (all optional, null clears). */
export interface MainCharacterFields {
  characterId?: number | null;
  characterName?: string | null;
  corporationId?: number | null;
  corporationName?: string | null;
  corporationTicker?: string | null;
  allianceId?: number | null;
  allianceName?: string | null;
  allianceTicker?: string | null;
  factionId?: number | null;
  factionName?: string | null;
}

export interface NewUser extends MainCharacterFields {
  username: string;
  email?: string;
  emailVerified?: boolean;
  /** Plain text, at least 8 characters; hashed with argon2id before it reaches the database. */
  password?: string;
  superuser?: boolean;
  /** The `oidc_access` permission granted directly. */
  oidcAccess?: boolean;
  active?: boolean;
  /** A state name; absent or null leaves the user without a state. */
  state?: string | null;
  /** Group names. */
  groups?: readonly string[];
  locale?: string | null;
}

export interface UserChanges extends MainCharacterFields {
  /** Changing the email resets `email_verified` unless `emailVerified` is given too. */
  email?: string;
  emailVerified?: boolean;
  superuser?: boolean;
  oidcAccess?: boolean;
  locale?: string | null;
}

/** The names `user_updated.fields` uses: the keys of `UserChanges`. */
export type UserField = keyof UserChanges;

export interface UserFilter {
  /** State name; `null` selects users without a state. */
  state?: string | null;
  /** Group name. */
  group?: string;
  active?: boolean;
  /** Substring of the username or email, regardless of case. */
  search?: string;
  limit?: number;
  offset?: number;
}

/** The result of a change to a user: `changed` is false when there was nothing to do. */
export interface UserChange {
  changed: boolean;
  /** The user after the change (for a deletion: as it was just before). */
  profile: UserRecord;
}

export interface StateChange {
  changed: boolean;
  state: StateRow;
}

export interface GroupChange {
  changed: boolean;
  group: GroupRow;
}

export interface StateSummary extends StateRow {
  userCount: number;
}

export interface GroupSummary extends GroupRow {
  userCount: number;
}

/** Outcome of a password check; `inactive` only once the password was right. */
export type PasswordCheck =
  { outcome: 'valid'; user: UserRow } | { outcome: 'invalid' } | { outcome: 'inactive'; user: UserRow };

/** The first-run login, returned once so that `serve` can write it to its file (never logged). */
export interface BootstrapLogin {
  username: string;
  password: string;
}

/** How the first-run superuser is created. */
export interface BootstrapOptions extends ChangeOptions {
  /**
   * Hands the new login to the operator (`serve` writes the bootstrap password file), before the
   * superuser is committed; a failure rolls the superuser back.
   */
  handOver?(login: BootstrapLogin): void | Promise<void>;
}

/**
 * The built-in directory's admin interface: the one write path for users, states, groups and
 * memberships, password checks, first-run setup, and the records behind them. Every change runs in
 * one unit of work that also writes its `lifecycle_event` row, calls every subscriber, and hands the
 * port's `DirectoryChange`s to the change feed; a change that changes nothing emits nothing. Errors
 * are `DirectoryError`. A read-only directory (Alliance Auth) has no admin interface.
 */
export interface DirectoryAdmin {
  /** Registers a subscriber run inside each change's transaction; returns an unsubscribe function. */
  subscribe(subscriber: LifecycleSubscriber): () => void;
  /** Registers a listener run after each commit; returns an unsubscribe function. */
  afterCommit(listener: CommittedListener): () => void;

  createUser(input: NewUser, options?: ChangeOptions): Promise<UserRecord>;
  updateUser(user: UserRef, changes: UserChanges, options?: ChangeOptions): Promise<UserChange>;
  /**
   * Sets a new password (and clears `must_change_password`); every sign-in session of the user ends
   * in the same unit of work, but `keepSession`.
   */
  setPassword(
    user: UserRef,
    password: string,
    options?: ChangeOptions & {
      /** The sign-in session of a person changing their own password: it stays (see the change). */
      keepSession?: string;
    },
  ): Promise<UserChange>;
  deactivate(user: UserRef, options?: ChangeOptions): Promise<UserChange>;
  activate(user: UserRef, options?: ChangeOptions): Promise<UserChange>;
  /** `state` null removes the user's state. */
  setState(user: UserRef, state: string | null, options?: ChangeOptions): Promise<UserChange>;
  addGroup(user: UserRef, group: string, options?: ChangeOptions): Promise<UserChange>;
  removeGroup(user: UserRef, group: string, options?: ChangeOptions): Promise<UserChange>;
  /** Subscribers of `user_deleted` run before the row goes, so they can still read what it owns. */
  deleteUser(user: UserRef, options?: ChangeOptions): Promise<UserChange>;
  /** Sets `last_login_at`; not a lifecycle change. */
  recordLogin(userId: number, at?: number): Promise<void>;

  createState(
    name: string,
    priority: number,
    oidcAccess?: boolean,
    options?: ChangeOptions,
  ): Promise<StateRow>;
  grantStateAccess(name: string, oidcAccess: boolean, options?: ChangeOptions): Promise<StateChange>;
  /** Gives a state another priority, unused by any other state (`conflict` otherwise). */
  setStatePriority(name: string, priority: number, options?: ChangeOptions): Promise<StateChange>;
  /**
   * Renames a state; application whitelists follow in the same unit of work. Names stay unique
   * regardless of case (a change of case alone is a rename).
   */
  renameState(name: string, newName: string, options?: ChangeOptions): Promise<StateChange>;
  /**
   * Deletes a state that nobody holds and no application whitelists (`conflict` otherwise, naming
   * what holds it).
   */
  deleteState(name: string, options?: ChangeOptions): Promise<StateRow>;
  createGroup(name: string, oidcAccess?: boolean, options?: ChangeOptions): Promise<GroupRow>;
  grantGroupAccess(name: string, oidcAccess: boolean, options?: ChangeOptions): Promise<GroupChange>;
  /** Renames a group; application whitelists follow in the same unit of work. */
  renameGroup(name: string, newName: string, options?: ChangeOptions): Promise<GroupChange>;
  /**
   * Deletes a group that no application whitelists (`conflict` otherwise); its members lose it,
   * with the consequences of any group change (back-channel logout of what they newly lose).
   */
  deleteGroup(name: string, options?: ChangeOptions): Promise<GroupRow>;

  findUserByUsername(username: string): Promise<UserRow | undefined>;
  findUserById(id: number): Promise<UserRow | undefined>;
  /** User, state and groups (sorted by name) in two queries; undefined for an unknown id. */
  loadUserProfile(userId: number): Promise<UserRecord | undefined>;
  /** Like `loadUserProfile`, by username; throws `not_found` for an unknown one. */
  getUserProfile(user: UserRef): Promise<UserRecord>;
  /** Sorted by username. Unknown state or group names in the filter are `not_found` errors. */
  listUsers(filter?: UserFilter): Promise<UserRecord[]>;
  /** Highest priority first. */
  listStates(): Promise<StateSummary[]>;
  /** Sorted by name. */
  listGroups(): Promise<GroupSummary[]>;
  findStateByName(name: string): Promise<StateRow | undefined>;
  findGroupByName(name: string): Promise<GroupRow | undefined>;
  /**
   * Checks a password. Always runs one argon2 verification (against a dummy hash for unknown
   * users or users without a password), so the time taken does not reveal which usernames exist.
   */
  verifyPassword(username: string, password: string): Promise<PasswordCheck>;
  /**
   * When no active superuser exists, creates `admin` (or `admin-N` when taken) as a superuser with
   * a random password that must be changed at its first sign-in, and returns the login; otherwise
   * returns null. `options.handOver` receives the login inside the transaction, before the commit:
   * when it throws, nobody is created, so that no superuser exists whose password nobody saw.
   */
  ensureBootstrapSuperuser(options?: BootstrapOptions): Promise<BootstrapLogin | null>;
}

/** A user's stored texts that `aa-oidc check` judges for their characters (W015). */
export interface StoredUserText {
  id: number;
  username: string;
  email: string;
  characterName: string | null;
}
