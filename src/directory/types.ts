import type { Transaction } from 'kysely';
import type { Database, GroupRow, StateRow, UserRow } from '../db/schema.ts';

/**
 * A user with what the policy and the claims need: the state and the groups. Loaded in one place
 * (the directory) and passed as a plain value to `decide()` and to the claims function.
 */
export interface UserProfile {
  user: UserRow;
  state: StateRow | null;
  /** Sorted by name. */
  groups: GroupRow[];
}

/**
 * Typed lifecycle events of the built-in directory. Each is emitted inside the transaction of the
 * change that causes it (section N); back-channel logout (section G) and the audit log consume them.
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
  | { kind: 'group_created'; groupId: number; name: string; oidcAccess: boolean }
  | { kind: 'group_access_changed'; groupId: number; name: string; oidcAccess: boolean };

export type LifecycleKind = LifecycleEvent['kind'];

/**
 * Runs inside the transaction of the change; throwing rolls the change back. Section G inserts its
 * delivery jobs here, so that a change and the jobs it causes commit together.
 */
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
  profile: UserProfile;
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

/** The first-run login, returned once so that `serve` can print it (never logged). */
export interface BootstrapLogin {
  username: string;
  password: string;
}

export type DirectoryErrorCode = 'not_found' | 'invalid' | 'conflict';

/**
 * The one write path for users, states, groups and memberships (section N). Every change runs in
 * one transaction that also writes its `lifecycle_event` row and calls every subscriber; a change
 * that changes nothing emits nothing. Errors are `DirectoryError`.
 */
export interface DirectoryService {
  /** Registers a subscriber run inside each change's transaction; returns an unsubscribe function. */
  subscribe(subscriber: LifecycleSubscriber): () => void;
  /** Registers a listener run after each commit; returns an unsubscribe function. */
  afterCommit(listener: CommittedListener): () => void;

  createUser(input: NewUser, options?: ChangeOptions): Promise<UserProfile>;
  updateUser(user: UserRef, changes: UserChanges, options?: ChangeOptions): Promise<UserChange>;
  setPassword(user: UserRef, password: string, options?: ChangeOptions): Promise<UserChange>;
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
  createGroup(name: string, oidcAccess?: boolean, options?: ChangeOptions): Promise<GroupRow>;
  grantGroupAccess(name: string, oidcAccess: boolean, options?: ChangeOptions): Promise<GroupChange>;

  findUserByUsername(username: string): Promise<UserRow | undefined>;
  findUserById(id: number): Promise<UserRow | undefined>;
  /** User, state and groups (sorted by name) in two queries; undefined for an unknown id. */
  loadUserProfile(userId: number): Promise<UserProfile | undefined>;
  /** Like `loadUserProfile`, by username; throws `not_found` for an unknown one. */
  getUserProfile(user: UserRef): Promise<UserProfile>;
  /** Sorted by username. Unknown state or group names in the filter are `not_found` errors. */
  listUsers(filter?: UserFilter): Promise<UserProfile[]>;
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
   * a random password and returns the login; otherwise returns null.
   */
  ensureBootstrapSuperuser(options?: ChangeOptions): Promise<BootstrapLogin | null>;
}
