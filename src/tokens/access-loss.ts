import type { Kysely, Transaction } from 'kysely';
import type { AuditBus } from '../audit/bus.ts';
import { listApplications } from '../applications/store.ts';
import type { Application, WhitelistChange, WhitelistChangeConsumer } from '../applications/types.ts';
import type { DatabaseKind } from '../db/connect.ts';
import type { Database } from '../db/schema.ts';
import type { UnitOfWork } from '../db/unit-of-work.ts';
import type { ChangeConsumer, Directory, DirectoryChange, UserProfile } from '../directory/port.ts';
import type { Logger } from '../logging/logger.ts';
import { decideForMany } from '../policy/decide.ts';
import { assertNever } from '../util/assert-never.ts';
import { countByClient, publishRevocations, revokeTokens, revokeTokensOfUsers } from './revocation.ts';
import { deleteGrantsOfUsers, type UsersLosing, usersSignedInAt } from './store-users.ts';
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
  const decide = decideForMany();

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
        const lost = await applicationsLost(change, await activeApplicationsIn(unit.trx), decide);
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
   * are grouped by the applications they lose, and every group's codes, tokens and grants there are
   * revoked and deleted together (`revokeLostApplications`: one statement for all groups on
   * PostgreSQL, locking in key order); the other changes one by one, before, outside that order: the
   * sessions a deactivation, deletion or new password ends, and the grants a deletion deletes (every
   * application's, inactive ones' too, user by user with `deleteGrantsOfUser`).
   */
  const batch = async (changes: readonly DirectoryChange[], unit: UnitOfWork): Promise<void> => {
    const applications = await activeApplicationsIn(unit.trx);
    const byLoss = new Map<string, { clientIds: string[]; userIds: number[] }>();
    for (const change of changes) {
      if (change.kind !== 'user_state_changed' && change.kind !== 'user_groups_changed') {
        await onOneChange(change, unit);
        continue;
      }
      const lost = applicationsLost(change, applications, decide);
      if (lost.length === 0) continue;
      const key = lost.join(' ');
      const group = byLoss.get(key);
      if (group) group.userIds.push(change.userId);
      else byLoss.set(key, { clientIds: lost, userIds: [change.userId] });
    }
    await revokeLostApplications(unit, deps.audit, [...byLoss.values()]);
  };

  return Object.assign(onOneChange, { batch });
}

/**
 * Users who lose applications, in groups of those who lose the same ones: their codes and tokens
 * there revoked (`policy_lost`) and their grants there deleted, reported per user and application
 * and published once the unit committed. Returns how many codes and tokens went. On PostgreSQL the
 * revocation is one statement for every group, and so is the deletion of the grants, each locking
 * its rows in key order (a statement per group would lock one group's rows before the next's, out of
 * key order, and could deadlock with a merged consume); on SQLite a statement per group and few
 * hundred users.
 */
async function revokeLostApplications(
  unit: UnitOfWork,
  audit: Pick<AuditBus, 'publish'>,
  losses: readonly UsersLosing[],
): Promise<number> {
  const revoked = await revokeTokensOfUsers(unit.trx, losses, 'policy_lost', unit.at);
  await deleteGrantsOfUsers(unit.trx, losses);
  const counts = new Map<string, { userId: number; clientId: string | null; count: number }>();
  for (const token of revoked) {
    const key = `${token.userId} ${token.clientId}`;
    const counted = counts.get(key);
    if (counted) counted.count += 1;
    else counts.set(key, { userId: Number(token.userId), clientId: token.clientId, count: 1 });
  }
  for (const { userId, clientId, count } of counts.values())
    unit.report({ kind: 'tokens_revoked', userId, clientId, count });
  if (revoked.length > 0) unit.afterCommit(() => publishRevocations(audit, revoked, 'policy_lost'));
  return revoked.length;
}

/**
 * The users an application no longer admits (its whitelists narrowed, or it was activated after
 * they lost it): who must hear of it and what they lose. `application` is the application as the
 * change leaves it; `holdingTokens` are those of the users who hold live access or refresh tokens
 * there (whom a back-channel logout goes to); `reason` is the logout's.
 */
export interface WhitelistLoss {
  application: Application;
  userIds: readonly number[];
  holdingTokens: readonly number[];
  reason: 'whitelist_changed' | 'application_activated';
}

/**
 * An application that may admit fewer users than before: its whitelists narrowed (`aa-oidc app
 * update`, the admin UI's edit), or it was activated (a deactivated application hears of no state or
 * group change, so whoever lost it meanwhile still holds what they had there). Each user who holds a
 * live code, token or grant there and whom it does not admit now loses it as a state or group change
 * would take it: `announce` first (back-channel logout, which still reads their tokens and sessions),
 * then their codes and tokens there revoked (`policy_lost`) and their grant deleted, all in the
 * change's unit of work. Whoever never signed in there has nothing to lose; the policy refuses them
 * at their next request anyway. Judged by the application as it is now only, not by what it admitted
 * before: a user of a remote directory (Alliance Auth) whose state changed but was not yet read is
 * judged by the new state, which the old whitelists may not have admitted either.
 *
 * A few statements whatever the number of users: one for who holds what at the application, one
 * directory read of their profiles, and the revocation (one statement on PostgreSQL, a few hundred
 * users at a time on SQLite). Nothing while the application stays deactivated (it can do nothing and
 * receives no logout: it is judged when activated), nor for whitelists only widened (nobody is then
 * read).
 */
export function endAccessOnWhitelistChange(deps: {
  db: Kysely<Database>;
  directory: Pick<Directory, 'profilesByIds'>;
  audit: Pick<AuditBus, 'publish'>;
  logger?: Pick<Logger, 'info'>;
  announce?: (loss: WhitelistLoss, unit: UnitOfWork) => Promise<void>;
}): WhitelistChangeConsumer<Map<number, UserProfile>> {
  /** Whether the change can end anyone's access (else nobody is read). */
  const concerns = ({ before, after }: WhitelistChange) =>
    after.active && (!before.active || mayDenyAnyone(before, after));
  return {
    // The users signed in at the application and their profiles, read before the update's write
    // lock: a directory in another database (Alliance Auth) is not read while aa-oidc's is locked.
    async prepare(change) {
      if (!concerns(change)) return new Map<number, UserProfile>();
      const { signedIn } = await usersSignedInAt(deps.db, change.after.clientId, Date.now());
      const profiles = signedIn.size > 0 ? await deps.directory.profilesByIds([...signedIn]) : [];
      return new Map(profiles.map((profile) => [profile.id, profile]));
    },
    async inUnit(change, unit, prepared) {
      if (!concerns(change)) return;
      const { signedIn, holdingTokens } = await usersSignedInAt(unit.trx, change.after.clientId, unit.at);
      if (signedIn.size === 0) return;
      // Only those who signed in since `prepare` are read now (none, but for a sign-in in between).
      const unread = [...signedIn].filter((userId) => !prepared.has(userId));
      const profiles = [
        ...[...signedIn].flatMap((userId) => prepared.get(userId) ?? []),
        ...(unread.length > 0 ? await deps.directory.profilesByIds(unread, unit) : []),
      ];
      await endAccess(change, unit, profiles, holdingTokens);
    },
  };

  async function endAccess(
    { before, after }: WhitelistChange,
    unit: UnitOfWork,
    profiles: readonly UserProfile[],
    holdingTokens: ReadonlySet<number>,
  ): Promise<void> {
    // A deactivated user's loss is their deactivation's (it revoked their tokens and told the
    // applications): not counted again here.
    const decide = decideForMany();
    const userIds = profiles
      .filter((profile) => profile.active && decide(profile, after).outcome === 'deny')
      .map((profile) => profile.id)
      .sort((a, b) => a - b);
    if (userIds.length === 0) return;
    for (const userId of userIds) unit.report({ kind: 'access_lost', userId, clientId: after.clientId });
    const reason = before.active ? 'whitelist_changed' : 'application_activated';
    await deps.announce?.(
      {
        application: after,
        userIds,
        holdingTokens: userIds.filter((userId) => holdingTokens.has(userId)),
        reason,
      },
      unit,
    );
    const revoked = await revokeLostApplications(unit, deps.audit, [
      { clientIds: [after.clientId], userIds },
    ]);
    unit.afterCommit(() =>
      deps.logger?.info(
        { client_id: after.clientId, users: userIds.length, revoked, reason, actor: unit.actor },
        before.active
          ? 'the whitelists of an application no longer admit users who signed in there: their access ended'
          : 'an application activated no longer admits users who signed in there before: their access ended',
      ),
    );
  }
}

/**
 * Whether new whitelists can refuse anyone the old ones admitted: not when they are open (both
 * empty), nor when they keep every state and group the old ones named (only widened). Then nobody
 * is read, and the update's unit holds its write lock no longer than before.
 */
function mayDenyAnyone(before: Application, after: Application): boolean {
  if (after.states.length === 0 && after.groups.length === 0) return false;
  if (before.states.length === 0 && before.groups.length === 0) return true;
  const states = new Set(after.states);
  const groups = new Set(after.groups);
  return before.states.some((name) => !states.has(name)) || before.groups.some((name) => !groups.has(name));
}

/** The client ids of the applications the user could use before the change and cannot after. */
function applicationsLost(
  change: Extract<DirectoryChange, { kind: 'user_state_changed' | 'user_groups_changed' }>,
  applications: readonly Application[],
  decide: ReturnType<typeof decideForMany>,
): string[] {
  return applications
    .filter(
      (app) => decide(change.before, app).outcome === 'allow' && decide(change.after, app).outcome === 'deny',
    )
    .map((app) => app.clientId);
}
