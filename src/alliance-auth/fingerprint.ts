import { sql } from 'kysely';
import { isRowId } from '../db/row-id.ts';
import { accessHolders } from './access-permission.ts';
import { type AaDb, truthy } from './schema.ts';

/**
 * Alliance Auth has no events to subscribe to and no `updated_at` columns, so aa-oidc follows it by
 * polling: one query per cycle computes, for every user, what access and logout depend on, and the
 * difference from the previous cycle becomes the directory's lifecycle changes.
 */
export interface UserFingerprint {
  username: string;
  active: boolean;
  superuser: boolean;
  state: { id: number; name: string } | null;
  /** Sorted by id. */
  groups: Array<{ id: number; name: string }>;
  /** The main character (EVE id), whether the user still owns it, and the ownership's owner hash. */
  main: { characterId: number; ownerHash: string | null } | null;
  /** `allianceauth_oidc.access_oidc` through the user, one of the groups or the state. */
  permission: boolean;
  /**
   * A digest of `auth_user.password` computed by the database, so that AA's password hash itself is
   * neither sent to aa-oidc nor stored here; absent from a fingerprint stored before it was recorded
   * (nothing to compare with, so no change is read from it).
   */
  passwordDigest?: string;
}

export type Fingerprints = Map<number, UserFingerprint>;

/** One lifecycle change read from the difference of two cycles. */
export type AllianceAuthChange =
  | { kind: 'user_created'; userId: number; username: string }
  | { kind: 'user_deleted'; userId: number; username: string }
  | { kind: 'user_deactivated'; userId: number; username: string }
  | { kind: 'user_activated'; userId: number; username: string }
  /** `auth_user.password` changed: a new password, or AA made the password unusable. */
  | { kind: 'user_password_changed'; userId: number; username: string }
  | {
      kind: 'user_state_changed';
      userId: number;
      username: string;
      fromState: string | null;
      toState: string | null;
    }
  | { kind: 'user_group_added'; userId: number; username: string; group: string }
  | { kind: 'user_group_removed'; userId: number; username: string; group: string }
  | {
      kind: 'user_main_character_changed';
      userId: number;
      username: string;
      /** EVE character ids; `to` null when the main character was lost. */
      from: number | null;
      to: number | null;
      /** The user no longer owns the main character, or its owner hash changed. */
      ownershipChanged: boolean;
    }
  | {
      kind: 'user_updated';
      userId: number;
      username: string;
      fields: Array<'superuser' | 'oidcAccess' | 'username'>;
    };

export type AllianceAuthChangeKind = AllianceAuthChange['kind'];

/** The stored form: compact and stable (equal fingerprints serialise equally). */
export function serializeFingerprint(fingerprint: UserFingerprint): string {
  return JSON.stringify([
    fingerprint.username,
    fingerprint.active ? 1 : 0,
    fingerprint.superuser ? 1 : 0,
    fingerprint.state ? [fingerprint.state.id, fingerprint.state.name] : null,
    fingerprint.groups.map((group) => [group.id, group.name]),
    fingerprint.main ? [fingerprint.main.characterId, fingerprint.main.ownerHash] : null,
    fingerprint.permission ? 1 : 0,
    ...(fingerprint.passwordDigest === undefined ? [] : [fingerprint.passwordDigest]),
  ]);
}

export function parseFingerprint(text: string): UserFingerprint {
  const [username, active, superuser, state, groups, main, permission, passwordDigest] = JSON.parse(text) as [
    string,
    0 | 1,
    0 | 1,
    [number, string] | null,
    Array<[number, string]>,
    [number, string | null] | null,
    0 | 1,
    string | undefined,
  ];
  return {
    username,
    active: active === 1,
    superuser: superuser === 1,
    state: state ? { id: state[0], name: state[1] } : null,
    groups: groups.map(([id, name]) => ({ id, name })),
    main: main ? { characterId: main[0], ownerHash: main[1] } : null,
    permission: permission === 1,
    ...(passwordDigest !== undefined && { passwordDigest }),
  };
}

/**
 * The one query of a cycle: every user with what the fingerprint holds, one row per group
 * membership (a user without groups has one row with a null group). The rows are folded per user
 * here rather than aggregated in the database: a JSON or string aggregate per user makes MariaDB
 * build an on-disk temporary table and look every user up in it, which cost about three quarters
 * of the query's time with 20,000 users (docs/performance.md). Every join is by primary or unique
 * key; the three permission tables are reduced once to the few ids that hold the access permission.
 */
export async function readFingerprints(db: AaDb): Promise<Fingerprints> {
  const result = await sql<{
    id: number;
    username: string;
    is_active: boolean | number;
    is_superuser: boolean | number;
    state_id: number | null;
    state_name: string | null;
    main_character_id: number | null;
    owner_hash: string | null;
    group_id: number | null;
    group_name: string | null;
    permission: boolean | number | string;
    password_digest: string;
  }>`
    select u.id, u.username, u.is_active, u.is_superuser, s.id as state_id, s.name as state_name,
      c.character_id as main_character_id, co.owner_hash, g.id as group_id, g.name as group_name,
      (up.holder_id is not null or sp.holder_id is not null or gp.holder_id is not null) as permission,
      md5(u.password) as password_digest
    from auth_user u
    left join authentication_userprofile p on p.user_id = u.id
    left join authentication_state s on s.id = p.state_id
    left join eveonline_evecharacter c on c.id = p.main_character_id
    left join authentication_characterownership co on co.character_id = p.main_character_id and co.user_id = u.id
    left join auth_user_groups m on m.user_id = u.id
    left join auth_group g on g.id = m.group_id
    left join ${accessHolders('user')} up on up.holder_id = u.id
    left join ${accessHolders('state')} sp on sp.holder_id = p.state_id
    left join ${accessHolders('group')} gp on gp.holder_id = m.group_id
  `.execute(db);
  const fingerprints: Fingerprints = new Map();
  for (const row of result.rows) {
    const userId = Number(row.id);
    // An id beyond 32 bits (an `auth_user.id` widened to bigint) is no user aa-oidc can sign in, and
    // aa-oidc's own tables could not store its fingerprint: every cycle would fail on it.
    if (!isRowId(userId)) continue;
    let fingerprint = fingerprints.get(userId);
    if (!fingerprint) {
      fingerprint = {
        username: row.username,
        active: truthy(row.is_active),
        superuser: truthy(row.is_superuser),
        state:
          row.state_id === null || row.state_name === null
            ? null
            : { id: Number(row.state_id), name: row.state_name },
        groups: [],
        main:
          row.main_character_id === null
            ? null
            : { characterId: Number(row.main_character_id), ownerHash: row.owner_hash },
        permission: false,
        passwordDigest: row.password_digest,
      };
      fingerprints.set(userId, fingerprint);
    }
    if (row.group_id !== null && row.group_name !== null)
      fingerprint.groups.push({ id: Number(row.group_id), name: row.group_name });
    // The user's own or the state's permission is on every row; a group's only on its own row.
    if (truthy(row.permission as never)) fingerprint.permission = true;
  }
  for (const fingerprint of fingerprints.values()) {
    if (fingerprint.groups.length > 1) fingerprint.groups.sort((a, b) => a.id - b.id);
  }
  return fingerprints;
}

/** Pure: the lifecycle changes from `before` to `after`, per user in id order. */
export function diffFingerprints(before: Fingerprints, after: Fingerprints): AllianceAuthChange[] {
  const changes: AllianceAuthChange[] = [];
  const ids = [...new Set([...before.keys(), ...after.keys()])].sort((a, b) => a - b);
  for (const userId of ids) {
    const was = before.get(userId);
    const now = after.get(userId);
    if (!was && now) {
      changes.push({ kind: 'user_created', userId, username: now.username });
      continue;
    }
    if (was && !now) {
      changes.push({ kind: 'user_deleted', userId, username: was.username });
      continue;
    }
    if (!was || !now) continue;
    changes.push(...diffUser(userId, was, now));
  }
  return changes;
}

function diffUser(userId: number, was: UserFingerprint, now: UserFingerprint): AllianceAuthChange[] {
  const username = now.username;
  const changes: AllianceAuthChange[] = [];
  const fields: Array<'superuser' | 'oidcAccess' | 'username'> = [];
  if (was.username !== now.username) fields.push('username');
  if (was.superuser !== now.superuser) fields.push('superuser');
  if (was.permission !== now.permission) fields.push('oidcAccess');
  if (fields.length > 0) changes.push({ kind: 'user_updated', userId, username, fields: fields.sort() });
  // Deactivation first: what follows is moot for a user who can no longer sign in.
  if (was.active && !now.active) changes.push({ kind: 'user_deactivated', userId, username });
  if ((was.state?.id ?? null) !== (now.state?.id ?? null) || was.state?.name !== now.state?.name) {
    changes.push({
      kind: 'user_state_changed',
      userId,
      username,
      fromState: was.state?.name ?? null,
      toState: now.state?.name ?? null,
    });
  }
  const wasGroups = new Map(was.groups.map((group) => [group.id, group.name]));
  const nowGroups = new Map(now.groups.map((group) => [group.id, group.name]));
  for (const [id, name] of wasGroups) {
    if (nowGroups.get(id) !== name)
      changes.push({ kind: 'user_group_removed', userId, username, group: name });
  }
  for (const [id, name] of nowGroups) {
    if (wasGroups.get(id) !== name) changes.push({ kind: 'user_group_added', userId, username, group: name });
  }
  const wasMain = was.main?.characterId ?? null;
  const nowMain = now.main?.characterId ?? null;
  const ownershipChanged =
    was.main !== null &&
    now.main !== null &&
    wasMain === nowMain &&
    was.main.ownerHash !== now.main.ownerHash;
  if (wasMain !== nowMain || ownershipChanged) {
    changes.push({
      kind: 'user_main_character_changed',
      userId,
      username,
      from: wasMain,
      to: nowMain,
      ownershipChanged: ownershipChanged || (wasMain !== null && nowMain === null),
    });
  }
  if (!was.active && now.active) changes.push({ kind: 'user_activated', userId, username });
  if (was.passwordDigest !== undefined && was.passwordDigest !== now.passwordDigest)
    changes.push({ kind: 'user_password_changed', userId, username });
  return changes;
}
