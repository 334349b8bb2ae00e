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
export type LifecycleSubscriber = (event: LifecycleEvent, trx: Transaction<Database>) => Promise<void>;

/** Runs after the transaction committed (audit log, caches). Never affects the change. */
export type CommittedListener = (event: LifecycleEvent) => void;
