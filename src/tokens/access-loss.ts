import type { Transaction } from 'kysely';
import type { AuditBus } from '../audit/bus.ts';
import { listApplications } from '../applications/store.ts';
import type { Application } from '../applications/types.ts';
import type { DatabaseKind } from '../db/connect.ts';
import type { Database } from '../db/schema.ts';
import type { UnitOfWork } from '../db/unit-of-work.ts';
import type { ChangeConsumer, DirectoryChange } from '../directory/port.ts';
import type { Logger } from '../logging/logger.ts';
import { decide } from '../policy/decide.ts';
import { assertNever } from '../util/assert-never.ts';
import {
  countByClient,
  publishRevocations,
  type RevokedToken,
  revokeTokens,
  revokeTokensOfUsers,
} from './revocation.ts';
import { deleteGrantsOfUsers } from './store-users.ts';
import { deleteGrantsOfUser, endUserSessions } from './store.ts';

/**
 * What a user keeps when access is cleaned, as a consumer of the directory's change feed: its writes
 * commit in the change's own unit of work, so no instance can hand out a code in between.
 *
 * - Deactivation, deletion and a new password end every provider session of the user: a kept
 *   session cookie meets the login page (or `login_required` with `prompt=none`), never a code.
 *   Deletion also removes the user's grants.
 * - A state or group change that takes an application away revokes the user's codes and tokens
 *   there and removes the user's grant to it, so that they do not come back to life when the access
 *   does (the user is asked for consent again).
 *
 * Subscribed after back-channel logout, which still reads the sessions and tokens it must announce.
 */
export function endAccessOnUserChange(deps: {
  kind: DatabaseKind;
  audit: Pick<AuditBus, 'publish'>;
  logger?: Pick<Logger, 'info'>;
}): ChangeConsumer {
  // One state or group change is a change of every member (thousands) in one unit of work: the
  // active applications are read once for all of them.
  const activeByUnit = new WeakMap<Transaction<Database>, Promise<Application[]>>();
  const activeApplicationsIn = (trx: Transaction<Database>): Promise<Application[]> => {
    let applications = activeByUnit.get(trx);
    if (!applications) {
      applications = listApplications(trx, deps.kind, { active: true });
      activeByUnit.set(trx, applications);
    }
    return applications;
  };

  const onOneChange = async (change: DirectoryChange, unit: UnitOfWork): Promise<void> => {
    switch (change.kind) {
      case 'user_deactivated':
      case 'user_deleted':
      case 'user_password_changed': {
        const ended = await endUserSessions(unit.trx, change.userId, unit.at, change.kind, {
          ...(change.kind === 'user_password_changed' && change.keepSession !== undefined
            ? { exceptUid: change.keepSession }
            : {}),
        });
        const grants = change.kind === 'user_deleted' ? await deleteGrantsOfUser(unit.trx, change.userId) : 0;
        if (ended.length > 0) {
          unit.report({ kind: 'sessions_ended', userId: change.userId, count: ended.length });
          const reason = change.kind === 'user_password_changed' ? 'password_changed' : change.kind;
          unit.afterCommit(() =>
            deps.audit.publish({
              kind: 'sessions_ended',
              user_id: change.userId,
              actor: unit.actor,
              count: ended.length,
              reason,
            }),
          );
        }
        if (ended.length > 0 || grants > 0)
          unit.afterCommit(() =>
            deps.logger?.info(
              { user_id: change.userId, sessions: ended.length, grants, reason: change.kind },
              'ended the sessions of a user whose access was cleaned',
            ),
          );
        return;
      }
      case 'user_state_changed':
      case 'user_groups_changed': {
        const lost = await applicationsLost(change, await activeApplicationsIn(unit.trx));
        if (lost.length === 0) return;
        const revoked = await revokeTokens(
          unit.trx,
          { userId: change.userId, clientIds: lost },
          'policy_lost',
          unit.at,
        );
        for (const clientId of lost) await deleteGrantsOfUser(unit.trx, change.userId, { clientId });
        for (const [clientId, count] of countByClient(revoked))
          unit.report({ kind: 'tokens_revoked', userId: change.userId, clientId, count });
        if (revoked.length > 0)
          unit.afterCommit(() => publishRevocations(deps.audit, revoked, 'policy_lost'));
        return;
      }
      case 'user_reactivated':
      case 'user_main_character_changed':
      case 'catalog_renamed':
      case 'catalog_deleted':
        return;
      default:
        return assertNever(change);
    }
  };

  /**
   * Many state and group changes of one unit (a state or group changed for every member): users
   * who lose the same applications have their codes, tokens and grants there revoked and deleted
   * together, a statement per few hundred users; the others one by one.
   */
  const batch = async (changes: readonly DirectoryChange[], unit: UnitOfWork): Promise<void> => {
    const applications = await activeApplicationsIn(unit.trx);
    const byLoss = new Map<string, { clientIds: string[]; userIds: number[] }>();
    for (const change of changes) {
      if (change.kind !== 'user_state_changed' && change.kind !== 'user_groups_changed') {
        await onOneChange(change, unit);
        continue;
      }
      const lost = applicationsLost(change, applications);
      if (lost.length === 0) continue;
      const key = lost.join(' ');
      const group = byLoss.get(key);
      if (group) group.userIds.push(change.userId);
      else byLoss.set(key, { clientIds: lost, userIds: [change.userId] });
    }
    const revoked: RevokedToken[] = [];
    for (const { clientIds, userIds } of byLoss.values()) {
      revoked.push(...(await revokeTokensOfUsers(unit.trx, userIds, clientIds, 'policy_lost', unit.at)));
      await deleteGrantsOfUsers(unit.trx, userIds, clientIds);
    }
    const counts = new Map<string, { userId: number; clientId: string | null; count: number }>();
    for (const token of revoked) {
      const key = `${token.userId} ${token.clientId}`;
      const counted = counts.get(key);
      if (counted) counted.count += 1;
      else counts.set(key, { userId: Number(token.userId), clientId: token.clientId, count: 1 });
    }
    for (const { userId, clientId, count } of counts.values())
      unit.report({ kind: 'tokens_revoked', userId, clientId, count });
    if (revoked.length > 0) unit.afterCommit(() => publishRevocations(deps.audit, revoked, 'policy_lost'));
  };

  return Object.assign(onOneChange, { batch });
}

/** The client ids of the applications the user could use before the change and cannot after. */
function applicationsLost(
  change: Extract<DirectoryChange, { kind: 'user_state_changed' | 'user_groups_changed' }>,
  applications: readonly Application[],
): string[] {
  return applications
    .filter(
      (app) => decide(change.before, app).outcome === 'allow' && decide(change.after, app).outcome === 'deny',
    )
    .map((app) => app.clientId);
}
