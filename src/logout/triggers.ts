import type { Transaction } from 'kysely';
import type { AuditBus } from '../audit/bus.ts';
import type { LogoutReason } from '../audit/events.ts';
import { listApplications } from '../applications/store.ts';
import type { Application } from '../applications/types.ts';
import type { DatabaseHandle } from '../db/connect.ts';
import type { Database } from '../db/schema.ts';
import { lockSignInGeneration } from '../db/sign-in-generation.ts';
import type { UnitOfWork } from '../db/unit-of-work.ts';
import type { ChangeConsumer, DirectoryChange } from '../directory/port.ts';
import { decideForMany } from '../policy/decide.ts';
import type { ThisChange } from '../tokens/payload-rows.ts';
import { clientsWithLiveTokens, selectUserSessions, type UserSession } from '../tokens/store.ts';
import { clientsWithLiveTokensOfUsers, selectSessionsOfUsers } from '../tokens/store-users.ts';
import { accessTrigger, logoutTargets, newlyDenied, receivesLogout } from './fanout.ts';
import type { LogoutJobTransport } from './job-transport.ts';
import { type NewJobs, queuedLogouts as queued } from './jobs.ts';
import type { LogoutService, QueuedLogout } from './types.ts';

/**
 * The triggers of back-channel logout: each queues its jobs in the transaction of the change that
 * causes it (a directory change, a token revocation, a session's end), and publishes
 * `logout_required` only once that transaction committed.
 */
export type LogoutTriggers = Pick<
  LogoutService,
  'enqueueLogoutForUser' | 'enqueueSessionLogout' | 'published' | 'onDirectoryChange' | 'onWhitelistLoss'
>;

export function createLogoutTriggers(deps: {
  database: DatabaseHandle;
  audit: Pick<AuditBus, 'publish'>;
  transport: LogoutJobTransport;
  newJobs: NewJobs;
  now: () => number;
  /** Wakes this process's worker, if it runs one. */
  wake: () => void;
}): LogoutTriggers {
  const { database, transport, newJobs, now } = deps;

  /**
   * One logout per session of the user at each target, carrying that session's `sid` (a relying
   * party such as mod_auth_openidc keys its sessions by the ID token's `sid` and finds none by `sub`
   * alone); `sub` alone only where the provider knows no session of the user at the application.
   * The user's sessions come from one indexed query; sessions this change ended still count.
   */
  const perSession = async (
    trx: Transaction<Database>,
    userId: number,
    targets: readonly Application[],
    at: number,
    endedByThisChange?: ThisChange,
  ): Promise<Array<{ clientId: string; sid: string | null }>> => {
    if (targets.length === 0) return [];
    return sessionTargets(await selectUserSessions(trx, userId, at, endedByThisChange), targets);
  };

  const enqueueLogoutForUser: LogoutService['enqueueLogoutForUser'] = async (trx, request) => {
    const at = now();
    // Given client ids come from a revocation that just revoked the user's live tokens there.
    const candidates = request.clientIds
      ? new Set(request.clientIds)
      : await clientsWithLiveTokens(trx, request.userId, at, request.revokedByThisChange);
    const targets = await logoutTargets(trx, database.kind, candidates, request.reason);
    const jobs = newJobs(
      request.userId,
      String(request.userId),
      request.reason,
      await perSession(trx, request.userId, targets, at, request.revokedByThisChange),
    );
    await transport.enqueue(trx, jobs, at);
    return queued(jobs);
  };

  const published: LogoutService['published'] = (list) => {
    for (const job of list) {
      deps.audit.publish({
        kind: 'logout_required',
        user_id: job.userId,
        client_id: job.clientId,
        reason: job.reason,
        jti: job.jti,
        with_sid: job.withSid,
      });
    }
    if (list.length > 0) deps.wake();
  };

  const onOneChange = async (change: DirectoryChange, unit: UnitOfWork): Promise<void> => {
    let list: QueuedLogout[];
    switch (change.kind) {
      case 'user_deactivated':
      case 'user_deleted':
        list = await enqueueLogoutForUser(unit.trx, {
          userId: change.userId,
          reason: change.kind,
          // The token revocation of the same change stamps its tokens with the unit's time.
          revokedByThisChange: { at: unit.at, reason: change.kind },
        });
        break;
      case 'user_password_changed':
        list = await enqueuePasswordChanged(unit.trx, change.userId, change.keepSession);
        for (const job of list)
          unit.report({
            kind: 'logout_queued',
            userId: job.userId,
            clientId: job.clientId,
            reason: job.reason,
          });
        if (list.length > 0) unit.afterCommit(() => published(list));
        return;
      default: {
        const reason = accessTrigger(change);
        if (!reason || !('after' in change)) return;
        list = await enqueueNewlyDenied(unit.trx, change, reason);
      }
    }
    await report(change, unit, list);
    if (list.length > 0) unit.afterCommit(() => published(list));
  };

  /** What the change takes from the user, for whoever collects the unit's consequences. */
  const report = async (
    change: Extract<DirectoryChange, { before: unknown }>,
    unit: UnitOfWork,
    list: readonly QueuedLogout[],
  ) => {
    if (!unit.reporting) return;
    // Every active application the change takes from the user, whether or not it holds a token.
    const apps = await activeApplicationsIn(unit.trx);
    const lost =
      'after' in change
        ? newlyDenied(change.before, change.after, apps, judge)
        : apps.filter((app) => judge(change.before, app).outcome === 'allow');
    for (const app of lost)
      unit.report({ kind: 'access_lost', userId: change.userId, clientId: app.clientId });
    for (const job of list)
      unit.report({ kind: 'logout_queued', userId: job.userId, clientId: job.clientId, reason: job.reason });
  };

  const onDirectoryChange: ChangeConsumer = Object.assign(onOneChange, {
    /** State and group changes together (a few queries for all the users), the others one by one. */
    async batch(changes: readonly DirectoryChange[], unit: UnitOfWork): Promise<void> {
      const access: Array<{ change: Extract<DirectoryChange, { after: unknown }>; reason: LogoutReason }> =
        [];
      for (const change of changes) {
        const reason = accessTrigger(change);
        if (reason && 'after' in change) access.push({ change, reason });
        else await onOneChange(change, unit);
      }
      if (access.length === 0) return;
      const lists = await enqueueNewlyDeniedMany(unit.trx, access);
      for (const [index, { change }] of access.entries()) await report(change, unit, lists[index]!);
      const all = lists.flat();
      if (all.length > 0) unit.afterCommit(() => published(all));
    },
  });

  /**
   * A new password ends the user's sessions (all but `keepSession`, the one the person changed it
   * in; `endAccessOnUserChange`, subscribed after this, ends them): the applications signed in
   * through an ending session are told, one logout per such session carrying its `sid`, so that one
   * signed in with a leaked password is signed out there too, while the session kept stays signed in
   * everywhere. Read before the sessions end, in the same unit of work.
   */
  const enqueuePasswordChanged = async (
    trx: Transaction<Database>,
    userId: number,
    keepSession: string | undefined,
  ): Promise<QueuedLogout[]> => {
    // The generation row first, as a sign-out takes it before it reads the sessions (`cleanUser`):
    // a sign-out of the user under way commits before these are read, and the sessions it ended
    // are not announced a second time.
    await lockSignInGeneration(trx, userId);
    const at = now();
    const ending = (await selectUserSessions(trx, userId, at)).filter(
      (session) => keepSession === undefined || session.uid !== keepSession,
    );
    const clients = ending.flatMap((session) => session.clients);
    const targets = await logoutTargets(
      trx,
      database.kind,
      new Set(clients.map((client) => client.clientId)),
      'password_changed',
    );
    const jobs = newJobs(userId, String(userId), 'password_changed', sessionTargets(ending, targets));
    await transport.enqueue(trx, jobs, at);
    return queued(jobs);
  };

  /**
   * The active applications, read once per unit of work: one state or group change affects every
   * user of the state or group (thousands), each a change of the same unit.
   */
  const activeApplicationsByUnit = new WeakMap<Transaction<Database>, Promise<Application[]>>();
  const activeApplicationsIn = (trx: Transaction<Database>): Promise<Application[]> => {
    let applications = activeApplicationsByUnit.get(trx);
    if (!applications) {
      applications = listApplications(trx, database.kind, { active: true });
      activeApplicationsByUnit.set(trx, applications);
    }
    return applications;
  };
  /** Judges the users of a unit's changes against its active applications (`decideForMany`). */
  const judge = decideForMany();

  /** State and group changes: only the applications the change newly denies the user. */
  const enqueueNewlyDenied = async (
    trx: Transaction<Database>,
    change: Extract<DirectoryChange, { after: unknown }>,
    reason: LogoutReason,
  ): Promise<QueuedLogout[]> => {
    const at = now();
    const held = await clientsWithLiveTokens(trx, change.userId, at);
    const targets = newlyDenied(
      change.before,
      change.after,
      await logoutTargets(trx, database.kind, held, reason, () => activeApplicationsIn(trx)),
      judge,
    );
    const jobs = newJobs(
      change.userId,
      String(change.userId),
      reason,
      await perSession(trx, change.userId, targets, at),
    );
    await transport.enqueue(trx, jobs, at);
    return queued(jobs);
  };

  /**
   * Many state and group changes of one unit (a state or group changed for every member): the same
   * jobs as one `enqueueNewlyDenied` a change, from a few queries for all the users together.
   */
  const enqueueNewlyDeniedMany = async (
    trx: Transaction<Database>,
    changes: ReadonlyArray<{ change: Extract<DirectoryChange, { after: unknown }>; reason: LogoutReason }>,
  ): Promise<QueuedLogout[][]> => {
    const at = now();
    const held = await clientsWithLiveTokensOfUsers(
      trx,
      changes.map(({ change }) => change.userId),
      at,
    );
    const apps = await activeApplicationsIn(trx);
    const targets = changes.map(({ change, reason }) => {
      const holds = held.get(change.userId);
      return holds
        ? newlyDenied(
            change.before,
            change.after,
            apps.filter((app) => holds.has(app.clientId) && receivesLogout(app, reason)),
            judge,
          )
        : [];
    });
    const sessions = await selectSessionsOfUsers(
      trx,
      changes.filter((_, index) => targets[index]!.length > 0).map(({ change }) => change.userId),
      at,
    );
    const jobs = changes.map(({ change, reason }, index) =>
      newJobs(
        change.userId,
        String(change.userId),
        reason,
        sessionTargets(sessions.get(change.userId) ?? [], targets[index]!),
      ),
    );
    await transport.enqueue(trx, jobs.flat(), at);
    return jobs.map(queued);
  };

  const enqueueSessionLogout: LogoutService['enqueueSessionLogout'] = async (trx, request) => {
    const targets = await logoutTargets(
      trx,
      database.kind,
      new Set(request.clients.map((client) => client.clientId)),
      'rp_initiated',
    );
    const sids = new Map(request.clients.map((client) => [client.clientId, client.sid]));
    const jobs = newJobs(
      request.userId,
      String(request.userId),
      'rp_initiated',
      targets.map((app) => ({ clientId: app.clientId, sid: sids.get(app.clientId) ?? null })),
    );
    await transport.enqueue(trx, jobs, now());
    return queued(jobs);
  };

  /**
   * An application no longer admits these users (its whitelists narrowed, `whitelist_changed`, or it
   * was activated after they lost it, `application_activated`): one logout per session of each user
   * who holds tokens there, from two queries for all of them (their sessions, then the jobs),
   * reported and published once the change committed.
   */
  const onWhitelistLoss: LogoutService['onWhitelistLoss'] = async (loss, unit) => {
    const { reason, application: app } = loss;
    if (loss.holdingTokens.length === 0 || !receivesLogout(app, reason)) return;
    const sessions = await selectSessionsOfUsers(unit.trx, loss.holdingTokens, unit.at);
    const jobs = loss.holdingTokens.flatMap((userId) =>
      newJobs(userId, String(userId), reason, sessionTargets(sessions.get(userId) ?? [], [app])),
    );
    await transport.enqueue(unit.trx, jobs, unit.at);
    const list = queued(jobs);
    for (const job of list)
      unit.report({ kind: 'logout_queued', userId: job.userId, clientId: job.clientId, reason: job.reason });
    if (list.length > 0) unit.afterCommit(() => published(list));
  };

  return { enqueueLogoutForUser, enqueueSessionLogout, published, onDirectoryChange, onWhitelistLoss };
}

/**
 * The logouts of one user at `targets`: one per session of theirs at each (with its `sid`), or
 * `sub` alone where none is known. Sessions in `sessions` order (newest first), sids sorted.
 */
function sessionTargets(
  sessions: readonly UserSession[],
  targets: readonly Application[],
): Array<{ clientId: string; sid: string | null }> {
  if (targets.length === 0) return [];
  const sids = new Map<string, Set<string>>();
  for (const session of sessions) {
    for (const { clientId, sid } of session.clients) {
      if (sid === null) continue;
      let known = sids.get(clientId);
      if (!known) sids.set(clientId, (known = new Set()));
      known.add(sid);
    }
  }
  return targets.flatMap((app): Array<{ clientId: string; sid: string | null }> => {
    const known = sids.get(app.clientId);
    return known && known.size > 0
      ? [...known].sort().map((sid) => ({ clientId: app.clientId, sid }))
      : [{ clientId: app.clientId, sid: null }];
  });
}

/**
 * The `user_revoked` trigger, for the hook of `tokens revoke-user` (src/tokens/revocation.ts): runs
 * inside the revocation's transaction, for the applications whose tokens it just revoked.
 */
export function userRevokedHook(logout: Pick<LogoutService, 'enqueueLogoutForUser' | 'published'>) {
  return async (
    trx: Transaction<Database>,
    revocation: { userId: number; clientIds: string[]; dryRun: boolean },
  ): Promise<(() => void) | undefined> => {
    if (revocation.clientIds.length === 0) return undefined;
    const list = await logout.enqueueLogoutForUser(trx, {
      userId: revocation.userId,
      reason: 'user_revoked',
      clientIds: revocation.clientIds,
    });
    // `logout_required` (and waking the worker) only once the revocation and its jobs committed.
    return () => logout.published(list);
  };
}
