import type { Transaction } from 'kysely';
import type { LogoutReason } from '../audit/events.ts';
import { listApplications } from '../applications/store.ts';
import type { Application } from '../applications/types.ts';
import type { DatabaseKind } from '../db/connect.ts';
import type { Database } from '../db/schema.ts';
import type { DirectoryChange, UserProfile } from '../directory/port.ts';
import { decide } from '../policy/decide.ts';
import { assertNever } from '../util/assert-never.ts';

/**
 * Who must hear of a back-channel logout: active applications with a back-channel URI for which the
 * user holds unexpired, unrevoked tokens. Applications with `backchannel_logout_on_revoke_only`
 * receive only `user_revoked`. Pure rules here; the queries take the change's transaction.
 */

/** Whether an application receives a logout for this trigger at all. */
export function receivesLogout(app: Application, reason: LogoutReason): boolean {
  if (!app.active || app.backchannelLogoutUri === null) return false;
  if (app.backchannelLogoutOnRevokeOnly) return reason === 'user_revoked';
  return true;
}

/**
 * Why a queued logout is no longer sent to its application: changed since it was queued (gone
 * from the database, deactivated, its back-channel URI removed, or switched to revoke-only).
 */
export type CancellationReason =
  'unknown_application' | 'application_deactivated' | 'no_backchannel_uri' | 'revoke_only';

/**
 * Why the application no longer receives a logout queued for `trigger`, or undefined when it still
 * does. The admin test goes to any application with a back-channel URI.
 */
export function cancellationReason(app: Application, trigger: LogoutReason): CancellationReason | undefined {
  if (trigger === 'admin_test') return app.backchannelLogoutUri ? undefined : 'no_backchannel_uri';
  if (!app.active) return 'application_deactivated';
  if (app.backchannelLogoutUri === null) return 'no_backchannel_uri';
  return receivesLogout(app, trigger) ? undefined : 'revoke_only';
}

/** A cancellation as `bcl_delivery_attempt` details it: its reason, then what it means, in one line. */
export function describeCancellation(reason: CancellationReason): string {
  switch (reason) {
    case 'unknown_application':
      return 'unknown_application: the application is no longer in the database; nothing was sent';
    case 'application_deactivated':
      return 'application_deactivated: the application was deactivated after the logout was queued; nothing was sent';
    case 'no_backchannel_uri':
      return 'no_backchannel_uri: the application’s back-channel logout URI was removed after the logout was queued; nothing was sent';
    case 'revoke_only':
      return 'revoke_only: the application was switched to receive only user_revoked after the logout was queued; nothing was sent';
    default:
      return assertNever(reason);
  }
}

/**
 * The applications among `clientIds` that receive a logout for `reason`. A change that fans out to
 * many users passes `activeApplications`, read once for all of them in its transaction.
 */
export async function logoutTargets(
  trx: Transaction<Database>,
  kind: DatabaseKind,
  clientIds: ReadonlySet<string>,
  reason: LogoutReason,
  activeApplications?: () => Promise<readonly Application[]>,
): Promise<Application[]> {
  if (clientIds.size === 0) return [];
  const apps = activeApplications
    ? await activeApplications()
    : await listApplications(trx, kind, { active: true });
  return apps.filter((app) => clientIds.has(app.clientId) && receivesLogout(app, reason));
}

/**
 * The directory changes that can take an application away from a user, and the trigger each
 * counts as; undefined for the others.
 */
export function accessTrigger(change: DirectoryChange): LogoutReason | undefined {
  switch (change.kind) {
    case 'user_state_changed':
      return 'state_changed';
    case 'user_groups_changed':
      return 'groups_changed';
    case 'user_deactivated':
    case 'user_reactivated':
    case 'user_main_character_changed':
    case 'user_deleted':
    case 'user_password_changed':
    case 'catalog_renamed':
    case 'catalog_deleted':
      return undefined;
    default:
      return assertNever(change);
  }
}

/**
 * Applications the user could use before and cannot after (evaluated per application); `judge` is
 * `decideForMany()` where many users are judged against the same applications.
 */
export function newlyDenied(
  before: UserProfile,
  after: UserProfile,
  apps: readonly Application[],
  judge: typeof decide = decide,
): Application[] {
  return apps.filter((app) => judge(before, app).outcome === 'allow' && judge(after, app).outcome === 'deny');
}
