import type { Transaction } from 'kysely';
import type { LogoutReason } from '../audit/events.ts';
import { listApplications } from '../applications/store.ts';
import type { Application } from '../applications/types.ts';
import type { DatabaseKind } from '../db/connect.ts';
import type { Database, GroupRow, StateRow } from '../db/schema.ts';
import { selectProfileById } from '../directory/queries.ts';
import type { LifecycleEvent, UserProfile } from '../directory/types.ts';
import { decide } from '../policy/decide.ts';

/**
 * Who must hear of a logout (section G): active applications with a back-channel URI for which the
 * user holds unexpired, unrevoked tokens. Applications with `backchannel_logout_on_revoke_only`
 * receive only `user_revoked`. Pure rules here; the queries take the change's transaction.
 */

/** The provider models that are a user's tokens at an application. */
const USER_TOKEN_MODELS = ['AccessToken', 'RefreshToken'] as const;

/** Whether an application receives a logout for this trigger at all. */
export function receivesLogout(app: Application, reason: LogoutReason): boolean {
  if (!app.active || app.backchannelLogoutUri === null) return false;
  if (app.backchannelLogoutOnRevokeOnly) return reason === 'user_revoked';
  return true;
}

/**
 * The client ids at which the user holds live tokens. Tokens that this very change revoked (same
 * time and reason, e.g. the token revocation that runs with a deactivation) still count: the
 * applications holding them must hear of it.
 */
export async function clientsWithLiveTokens(
  trx: Transaction<Database>,
  userId: number,
  now: number,
  revokedByThisChange?: { at: number; reason: string },
): Promise<Set<string>> {
  const rows = await trx
    .selectFrom('oidc_payload')
    .select('client_id')
    .distinct()
    .where('user_id', '=', String(userId))
    .where('model', 'in', [...USER_TOKEN_MODELS])
    .where('client_id', 'is not', null)
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
    .where((eb) =>
      revokedByThisChange
        ? eb.or([
            eb('revoked_at', 'is', null),
            eb.and([
              eb('revoked_at', '=', revokedByThisChange.at),
              eb('revoked_reason', '=', revokedByThisChange.reason),
            ]),
          ])
        : eb('revoked_at', 'is', null),
    )
    .execute();
  return new Set(rows.map((row) => row.client_id!));
}

/** The applications among `clientIds` that receive a logout for `reason`. */
export async function logoutTargets(
  trx: Transaction<Database>,
  kind: DatabaseKind,
  clientIds: ReadonlySet<string>,
  reason: LogoutReason,
): Promise<Application[]> {
  if (clientIds.size === 0) return [];
  const apps = await listApplications(trx, kind, { active: true });
  return apps.filter((app) => clientIds.has(app.clientId) && receivesLogout(app, reason));
}

/** A user's profile as it was before a directory change, rebuilt from the event; undefined if unknowable. */
export async function profileBefore(
  trx: Transaction<Database>,
  event: LifecycleEvent,
  after: UserProfile,
): Promise<UserProfile | undefined> {
  switch (event.kind) {
    case 'user_state_changed': {
      const state =
        event.fromState === null
          ? null
          : ((await trx
              .selectFrom('state')
              .selectAll()
              .where('name', '=', event.fromState)
              .executeTakeFirst()) as StateRow | undefined);
      if (event.fromState !== null && !state) return undefined;
      return { ...after, state: state ?? null };
    }
    case 'user_group_added':
      return { ...after, groups: after.groups.filter((group) => group.name !== event.group) };
    case 'user_group_removed': {
      const group = (await trx
        .selectFrom('auth_group')
        .selectAll()
        .where('name', '=', event.group)
        .executeTakeFirst()) as GroupRow | undefined;
      if (!group) return undefined;
      return { ...after, groups: [...after.groups, group] };
    }
    case 'user_updated': {
      // Only the two permission flags change access; a changed boolean was the opposite before.
      const user = { ...after.user };
      if (event.fields.includes('superuser')) user.superuser = user.superuser === 1 ? 0 : 1;
      if (event.fields.includes('oidcAccess')) user.oidc_access = user.oidc_access === 1 ? 0 : 1;
      return { ...after, user };
    }
    default:
      return undefined;
  }
}

/** The access-changing events and the trigger they count as. */
export function accessTrigger(event: LifecycleEvent): LogoutReason | undefined {
  switch (event.kind) {
    case 'user_state_changed':
    case 'state_access_changed':
      return 'state_changed';
    case 'user_group_added':
    case 'user_group_removed':
    case 'group_access_changed':
      return 'groups_changed';
    case 'user_updated':
      // `superuser` and the direct `oidc_access` permission: Alliance Auth grants permissions
      // through groups, so losing one counts as a group change.
      return event.fields.includes('superuser') || event.fields.includes('oidcAccess')
        ? 'groups_changed'
        : undefined;
    default:
      return undefined;
  }
}

/** Applications the user could use before and cannot after (evaluated per application). */
export function newlyDenied(
  before: UserProfile,
  after: UserProfile,
  apps: readonly Application[],
): Application[] {
  return apps.filter(
    (app) => decide(before, app).outcome === 'allow' && decide(after, app).outcome === 'deny',
  );
}

/** The users a state's or group's access flag change affects, with their profile before and after. */
export async function profilesAffectedByAccessFlag(
  trx: Transaction<Database>,
  event: Extract<LifecycleEvent, { kind: 'state_access_changed' | 'group_access_changed' }>,
): Promise<Array<{ before: UserProfile; after: UserProfile }>> {
  const userIds =
    event.kind === 'state_access_changed'
      ? (await trx.selectFrom('app_user').select('id').where('state_id', '=', event.stateId).execute()).map(
          (row) => row.id,
        )
      : (
          await trx.selectFrom('user_group').select('user_id').where('group_id', '=', event.groupId).execute()
        ).map((row) => row.user_id);
  const flipped = event.oidcAccess ? 0 : 1;
  const result: Array<{ before: UserProfile; after: UserProfile }> = [];
  for (const userId of userIds) {
    const after = await selectProfileById(trx, userId);
    if (!after) continue;
    const before: UserProfile =
      event.kind === 'state_access_changed'
        ? { ...after, state: after.state ? { ...after.state, oidc_access: flipped } : null }
        : {
            ...after,
            groups: after.groups.map((group) =>
              group.id === event.groupId ? { ...group, oidc_access: flipped } : group,
            ),
          };
    result.push({ before, after });
  }
  return result;
}
