import type { LogPosition } from '../db/change-log.ts';
import type { UnitOfWork } from '../db/unit-of-work.ts';

/**
 * The directory port: what the rest of aa-oidc may know about users, states and groups, whichever
 * directory holds them (the built-in one in src/directory/builtin/, or Alliance Auth's database).
 * Plain values only: booleans, camelCase, no database rows. Login, claims, the access policy, the
 * logout fan-out and token listings read through `Directory`; the consequences of a change (token
 * revocation, back-channel logout, ended sessions) follow the `ChangeFeed`.
 */

/** A state as the policy and the claims see it. */
export interface DirectoryState {
  name: string;
  /** Higher ranks first; unique within a directory. */
  priority: number;
  /** Holding this state grants the `oidc_access` permission. */
  oidcAccess: boolean;
}

/** A group as the policy and the claims see it. */
export interface DirectoryGroup {
  name: string;
  /** Membership grants the `oidc_access` permission. */
  oidcAccess: boolean;
}

/** The user's main character and its corporation, alliance and faction; null where unknown. */
export interface MainCharacter {
  characterId: number | null;
  characterName: string | null;
  corporationId: number | null;
  corporationName: string | null;
  corporationTicker: string | null;
  allianceId: number | null;
  allianceName: string | null;
  allianceTicker: string | null;
  factionId: number | null;
  factionName: string | null;
}

/**
 * A user with everything the policy and the claims read: one value, loaded in one place and passed
 * as it is to `decide()` and to `claimsFor()`.
 */
export interface UserProfile {
  /** The stable user id; `sub` is its decimal string. */
  id: number;
  username: string;
  /** Empty when the user has none. */
  email: string;
  emailVerified: boolean;
  active: boolean;
  superuser: boolean;
  /** The `oidc_access` permission granted to the user directly (not through a state or group). */
  oidcAccess: boolean;
  /** A language tag (`en`, `pt-BR`), or null. */
  locale: string | null;
  mainCharacter: MainCharacter;
  state: DirectoryState | null;
  /** Sorted by name (code-unit order). */
  groups: DirectoryGroup[];
  /**
   * Set by a directory that keeps its users' passwords itself (Alliance Auth), from the same read as
   * the rest of the profile: what the user's password there is worth at password sign-in here, so
   * that the console tells them truly how they sign in. Absent for the built-in directory, whose
   * passwords aa-oidc holds and checks.
   */
  keptPassword?: KeptPassword;
}

/**
 * A password another directory keeps, as password sign-in here sees it: `verifiable`, one aa-oidc
 * checks; `unverifiable`, one that directory takes but aa-oidc cannot check (a hasher it does not
 * verify, costs beyond any default, a value it cannot read); `unusable`, none at all (Django's
 * unusable `!…`, which Alliance Auth gives the accounts EVE SSO makes).
 */
export type KeptPassword = 'verifiable' | 'unverifiable' | 'unusable';

/** State and group names, as an application whitelists them (in the directory's spelling, matched exactly). */
export interface Whitelist {
  states: readonly string[];
  groups: readonly string[];
}

/** Selects users for a listing; every member narrows the result. */
export interface ProfileFilter {
  /** A state name (regardless of case); null selects users without a state. */
  state?: string | null;
  /** A group name (regardless of case): its members. */
  group?: string;
  active?: boolean;
  /** Substring of the username or email, regardless of case. */
  search?: string;
  limit?: number;
  offset?: number;
}

/** A `ProfileFilter` for counting: every match counts, so no page. */
export type ProfileCountFilter = Omit<ProfileFilter, 'limit' | 'offset'>;

/** The read side of a directory. Every method reads now: nothing is cached across calls. */
export interface Directory {
  /** The user with this id, or undefined for an unknown one. */
  profileById(id: number): Promise<UserProfile | undefined>;
  /**
   * Present when aa-oidc's change log (src/db/change-log.ts) names every change to the profiles this
   * directory returns, whoever makes it: the built-in directory, whose tables are in aa-oidc's
   * database and have triggers. Its profiles may then be kept in memory (src/oidc/kept-profiles.ts).
   * Absent for a directory whose database is not aa-oidc's (Alliance Auth): nothing tells a process
   * of a change there before the next read, so every profile is read afresh.
   */
  readonly keepable?: KeepableProfiles;
  /** The user with this username (regardless of case), or undefined for an unknown one. */
  profileByUsername(username: string): Promise<UserProfile | undefined>;
  /**
   * The known users among `ids` (unknown ids are left out), in no particular order. A caller inside
   * a unit of work of aa-oidc's database passes it as `within`: a directory whose tables are in that
   * database reads through the unit's transaction (SQLite has one connection, which the unit holds
   * until it ends); another directory reads its own database as always.
   */
  profilesByIds(ids: readonly number[], within?: UnitOfWork): Promise<UserProfile[]>;
  /** Users matching `filter`, sorted by username; unknown state or group names select nobody. */
  listProfiles(filter?: ProfileFilter): Promise<UserProfile[]>;
  /** How many users `listProfiles(filter)` would list, counted by the database without reading them. */
  countProfiles(filter?: ProfileCountFilter): Promise<number>;
  /** Every state, highest priority first. */
  listStates(): Promise<DirectoryState[]>;
  /** Every group, sorted by name. */
  listGroups(): Promise<DirectoryGroup[]>;
  /**
   * The one of `names` (states' or groups', as `listStates` and `listGroups` give them) that a
   * `ProfileFilter` naming `given` selects, matched as this directory matches it; undefined for
   * none: a page that already holds the list tells an unknown name from one whose users it lists.
   */
  nameAmong(names: readonly string[], given: string): string | undefined;
  /**
   * The ids of the users an application's whitelist covers: their state is one of `states`, or they
   * belong to one of `groups` (names matched exactly, as the policy matches them). Says nothing about the global
   * gate; an empty whitelist covers nobody here (an open application is the policy's business).
   */
  usersCoveredBy(whitelist: Whitelist): Promise<number[]>;
}

/** What keeping a directory's profiles in memory needs of it (`Directory.keepable`). */
export interface KeepableProfiles {
  /**
   * `profileById`, with the change log's position as the statement that read it saw it (undefined
   * for an unknown user): the profile may be kept if that position covers the reader's.
   */
  profileWithPositionById(
    id: number,
  ): Promise<{ profile: UserProfile | undefined; position: LogPosition | undefined }>;
  /**
   * Calls `listener` once each change this process makes to the directory has committed, with the id
   * of the user it changed, or undefined for a change of a state or a group (which any number of
   * profiles embed); returns the function that removes it.
   */
  afterOwnChange(listener: (userId: number | undefined) => void): () => void;
}

/**
 * A lifecycle change of one user, as every consumer sees it whoever produced it: the built-in
 * directory when an operator changes a user, or a polling directory that noticed a change made
 * elsewhere. `before` and `after` are the user's profile on each side of the change, so a consumer
 * needs no query of the directory to judge what it lost (the policy's `decide(before, app)` and
 * `decide(after, app)`).
 *
 * - `user_state_changed`: the user's state changed, or what the state grants did (its `oidc_access`).
 * - `user_groups_changed`: memberships changed, what a group grants did, or the user's own
 *   permissions (superuser, direct `oidc_access`: Alliance Auth grants permissions through groups).
 */
export type DirectoryChange =
  | { kind: 'user_deactivated'; userId: number; before: UserProfile; after: UserProfile }
  | { kind: 'user_reactivated'; userId: number; before: UserProfile; after: UserProfile }
  | { kind: 'user_state_changed'; userId: number; before: UserProfile; after: UserProfile }
  | { kind: 'user_groups_changed'; userId: number; before: UserProfile; after: UserProfile }
  | { kind: 'user_main_character_changed'; userId: number; before: UserProfile; after: UserProfile }
  | { kind: 'user_deleted'; userId: number; before: UserProfile }
  /**
   * The user's password was replaced: whoever held a session with the old one must sign in again,
   * except the person who changed their own password, in the sign-in session named by
   * `keepSession` (an opaque reference the caller got from its sign-in; the directory never reads it).
   */
  | { kind: 'user_password_changed'; userId: number; keepSession?: string }
  /**
   * A state or group was renamed or deleted (the built-in directory; a polling directory that sees
   * one). Application whitelists name states and groups, so they follow a rename in the same unit.
   */
  | { kind: 'catalog_renamed'; entity: 'state' | 'group'; from: string; to: string }
  | {
      kind: 'catalog_deleted';
      entity: 'state' | 'group';
      name: string;
      /**
       * Deleted at the source already (a polling directory that saw it gone): a consumer cannot
       * refuse it, only act on it. Without it (the built-in directory) a consumer's throw refuses it.
       */
      alreadyDeleted?: true;
    };

export type DirectoryChangeKind = DirectoryChange['kind'];

/**
 * A consumer of the change feed. It runs inside `unit`, a unit of work of aa-oidc's own database:
 * its writes commit or roll back with everything else the change causes, and a throw rolls the
 * whole unit back (for the built-in directory: the change itself is refused). Notifications belong
 * in `unit.afterCommit`.
 */
export type ChangeConsumer = ((change: DirectoryChange, unit: UnitOfWork) => Promise<void>) & {
  /**
   * Optional: the same for several changes of one unit at once (a state or group changed for
   * thousands of members), with the same writes from fewer queries. The feed calls it when it has
   * more than one change to deliver.
   */
  readonly batch?: (changes: readonly DirectoryChange[], unit: UnitOfWork) => Promise<void>;
};

/** Where consumers subscribe; they never learn who produced a change. */
export interface ChangeFeed {
  /** Adds a consumer; returns the function that removes it. */
  subscribe(consumer: ChangeConsumer): () => void;
}

/** The producer's side of the feed. */
export interface ChangePublisher {
  /**
   * Delivers `changes` to every consumer, in subscription order, inside a unit of work the producer
   * already runs: each consumer receives all of them (through its `batch`, when it has one) before
   * the next consumer runs. The built-in directory calls this from its change's own transaction
   * (its tables live in aa-oidc's database), so the change and its consequences commit together; the
   * Alliance Auth poller from its cycle's, with the fingerprints it stores, so that a crash neither
   * loses a change nor delivers it twice.
   */
  deliverWithin(unit: UnitOfWork, ...changes: DirectoryChange[]): Promise<void>;
}
