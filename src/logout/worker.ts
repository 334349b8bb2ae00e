import type { Config } from '../config/load.ts';
import { isDatabaseUnavailable } from '../db/errors.ts';
import type { ApplicationLookups } from './delivery.ts';
import { logFailure } from '../logging/after-stop.ts';
import type { Logger } from '../logging/logger.ts';
import { within } from '../util/within.ts';
import type { ClaimedJob, LogoutJobTransport } from './job-transport.ts';
import { leaseMs } from './jobs.ts';
import type { LogoutService, LogoutWorker } from './types.ts';

/**
 * The worker of back-channel logout: claims due jobs from the transport in batches and keeps up to
 * `concurrency` attempts in flight (at most `LANES_PER_APPLICATION` at one application, and none more
 * at one that stalled: see `drain`);
 * polls when idle, wakes at once when this process queued jobs, and purges finished jobs and the
 * outcomes recorded before `logout.recordRetentionDays` now and then. `deliverDue` is the same loop
 * run once, to the end.
 */

/**
 * The log line of a failure of the worker's own work (a claim, a record, a round): `what`, and when
 * the database could not be used (down, restarting, its connections cut), that it was the database,
 * so that it is not taken for a relying party's connection. The error's name, message and code only.
 */
function failureLine(
  error: unknown,
  what: string,
): [{ err: { name: string; message: string; code?: string } }, string] {
  const { name, message, code } = Object(error) as { name?: unknown; message?: unknown; code?: unknown };
  const err = { name: String(name), message: String(message), ...(typeof code === 'string' ? { code } : {}) };
  return [{ err }, isDatabaseUnavailable(error) ? `${what}: the database is unavailable` : what];
}

/**
 * Logs a failure of the worker's work at `error`, or at `debug` when the worker had been stopped
 * by then: the stop gives up on the work still in flight (and says so, `waitForRound`), and closing
 * the database's connections then cuts it, which is the stop's doing, not a fault. Its jobs are
 * claimed again once their claim lapses.
 */
function logWorkerFailure(
  log: Logger,
  stopped: boolean,
  error: unknown,
  what: string,
  more: object = {},
): void {
  const [fields, message] = failureLine(error, what);
  logFailure(log, { level: 'error', stopped }, { ...fields, ...more }, message);
}

/** How often a worker deletes finished jobs and recorded outcomes past their retention. */
const PURGE_INTERVAL_MS = 10 * 60 * 1000;
const DAY_MS = 86_400_000;
/** The longest wait between rounds of a worker whose rounds keep failing. */
const MAX_FAILURE_BACKOFF_MS = 60_000;

/**
 * How long a stop waits for the worker's round in flight: its attempts end within the request
 * timeout, and their records commit within the database's connect timeout more. A round still running
 * then waits on a database that does not answer (a dead route: a statement waits up to the query
 * timeout, 60 s, and a round makes several); it is left, and the jobs it claimed and did not record
 * are claimed again once their claim lapses (`leaseMs`).
 */
export function workerStopWaitMs(config: Pick<Config, 'logout' | 'databaseConnectTimeoutMs'>): number {
  return config.logout.requestTimeoutMs + config.databaseConnectTimeoutMs;
}

/** Attempts in flight at once, by default. */
export const DEFAULT_WORKER_CONCURRENCY = 32;

/**
 * Attempts in flight at one application at most: the connections it sees from one worker. Its
 * delivery pool has no cap of its own (connection-pools.ts): applications that share a host share
 * a pool, which opens a connection for every attempt in flight to it, so that one that hangs
 * holds these lanes' connections and no more.
 */
export const LANES_PER_APPLICATION = 8;

/**
 * An application whose every lane holds an attempt this old has stalled (half the request timeout,
 * at most a second: a relying party that answers at all answers in milliseconds).
 */
function stallAfterMs(config: Config): number {
  return Math.min(1000, config.logout.requestTimeoutMs / 2);
}

/** How long a stalled application's jobs are put back for: until its attempts have timed out. */
function deferSeconds(config: Config): number {
  return Math.max(1, Math.ceil(config.logout.requestTimeoutMs / 1000));
}

export function createWorkerLoop(deps: {
  config: Config;
  log: Logger;
  now: () => number;
  transport: LogoutJobTransport;
  owner: string;
  /** The change epoch now (src/db/change-epoch.ts): every write to applications raises it. */
  changeEpoch: () => Promise<number>;
  /**
   * Deletes some of the delivery outcomes recorded before `before` (a bounded share: attempts.ts
   * `purgeDeliveryAttempts`); true when more may remain.
   */
  purgeRecordedOutcomes: (before: number) => Promise<boolean>;
  /**
   * One attempt of one claimed job, settled once its outcome is recorded; the jobs of one claimed
   * batch share `applications`, and `attempted` frees the job's lane before its record commits.
   */
  processJob: (
    job: ClaimedJob,
    applications: ApplicationLookups,
    attempted: (answered: boolean) => void,
  ) => Promise<void>;
}): Pick<LogoutService, 'deliverDue' | 'startWorker'> & {
  /** Wakes the worker of this process, if it runs one. */
  wake(): void;
  /**
   * Stops the worker, if started (as its `stop()`), and resolves once every worker stopped so far has
   * finished its attempts, or was left running past `workerStopWaitMs` (logged at `warn`); a later
   * `startWorker` starts a new one.
   */
  stopWorker(): Promise<void>;
} {
  const { config, log, now, transport, owner, processJob } = deps;
  let worker: LogoutWorker | undefined;
  // Settles once every worker stopped so far has ended its round: a worker started after a stop
  // claims only then, so that this process never runs two (each holds up to `concurrency` attempts).
  let lastStopped: Promise<void> = Promise.resolve();
  // The same, each stopped worker's round waited for at most `workerStopWaitMs` from its stop.
  let lastStopWaited: Promise<void> = Promise.resolve();
  // Claimed jobs not yet at their next state (recorded, rescheduled, put back): what a round left
  // running at a stop still holds.
  let claimedOpen = 0;
  // The applications read for earlier batches, kept while the change epoch stands: a batch reads
  // the epoch after its claim, so a deactivation, a removed URI or a switch to revoke-only committed
  // before the claim still cancels its deliveries, and a fan-out reads each application once rather
  // than once per batch.
  let kept: { epoch: number; applications: ApplicationLookups } | undefined;
  // By application: how long its last answered attempt took (any HTTP status). One that answers,
  // however slowly, has not stalled; one that answers slowly holds no more jobs than it has lanes.
  const answeredMs = new Map<string, number>();
  // By slow application: until when its lanes are spoken for by the jobs put back for them.
  const bookedUntil = new Map<string, number>();
  // Wakes the running worker's round to claim again (`drain`), while it waits for attempts in flight.
  let wakeDrain: (() => void) | undefined;
  const applicationsAt = async (): Promise<ApplicationLookups> => {
    const epoch = await deps.changeEpoch();
    if (kept?.epoch !== epoch) kept = { epoch, applications: new Map() };
    return kept.applications;
  };

  /**
   * Delivers due jobs until none is due, `concurrency` attempts at a time: claims only as many as it
   * can start at once (a claimed job's lease runs from its claim), and claims again once half of the
   * lanes are free, so that a busy queue costs a claim per batch rather than per job. A lane is
   * free again once its attempt was made: the attempt's record then commits with the others that
   * came meanwhile (delivery.ts records one group at a time) while the lane makes the next attempt,
   * instead of standing idle through that commit. At most `concurrency` attempts wait for their
   * record beside those in the lanes.
   *
   * One application has at most `LANES_PER_APPLICATION` lanes (the connections it sees from this
   * worker; the pool of a host that several applications share has a connection for each attempt
   * in flight, so one application's hung attempts never hold up another's); its other claimed jobs
   * are held, in order, until one of its lanes is free. An application whose lanes are all taken by attempts
   * older than `stallMs` (one that does not answer), or than twice its last answer's time (one that
   * answers slowly, up to half the request timeout), gets no more: its held jobs, and those claimed
   * for it later, are put back for one request timeout without counting an attempt, so that the
   * other applications' jobs behind them in the queue go out meanwhile instead of waiting for its
   * attempts to time out. An application that answers slowly (a quarter of `stallMs` or more) holds
   * at most a lane's worth of jobs: held beyond that, they would keep the worker from claiming the
   * other applications' jobs while it works through them. Its other jobs are put back, each until
   * about when a lane will be free for it (`deferUntilLanesFree`), so that each is put back once.
   */
  const drain = async (
    concurrency: number,
    stopped: () => boolean,
    /**
     * A worker's poll interval: while attempts are in flight, the loop claims again at least this
     * often, and whenever `wakeDrain` is called (this process queued jobs). Otherwise a retry that
     * came due, or a logout queued meanwhile, would wait for an attempt in flight to end: up to a
     * request timeout behind an application that never answers. `deliverDue` passes none.
     */
    pollIntervalMs?: number,
  ): Promise<number> => {
    // The lanes: attempts being made.
    const attempting = new Set<object>();
    // Every claimed job not yet at its next state (recorded, rescheduled, deferred, or left to its
    // lease), held ones apart.
    const unrecorded = new Set<Promise<void>>();
    // By application: when each of its attempts in the lanes started, and its jobs held for a lane.
    const lanesOf = new Map<string, Map<object, number>>();
    const heldOf = new Map<string, Array<{ job: ClaimedJob; applications: ApplicationLookups }>>();
    let held = 0;
    const perApplication = Math.max(1, Math.min(LANES_PER_APPLICATION, concurrency));
    const stallMs = stallAfterMs(config);
    // Wakes the loop when it waits (a lane freed, a record done): one callback, not a race of every
    // promise in flight, whose reactions would pile up on the ones that stay pending.
    let waiting: (() => void) | undefined;
    const wake = () => {
      const resolve = waiting;
      waiting = undefined;
      resolve?.();
    };
    if (pollIntervalMs !== undefined) wakeDrain = wake;
    const refill = Math.max(1, Math.floor(concurrency / 2));
    let attempts = 0;
    let due = true;
    // This round's share of `claimedOpen`.
    let claimedHere = 0;
    const settled = (jobs: number) => {
      claimedHere -= jobs;
      claimedOpen -= jobs;
    };

    /** True when every lane of the application is taken by an attempt older than it should take. */
    const stalled = (clientId: string): boolean => {
      const lanes = lanesOf.get(clientId);
      if (!lanes || lanes.size < perApplication) return false;
      const limit = Math.min(
        config.logout.requestTimeoutMs / 2,
        Math.max(stallMs, 2 * (answeredMs.get(clientId) ?? 0)),
      );
      const since = now() - limit;
      for (const startedAt of lanes.values()) if (startedAt > since) return false;
      return true;
    };

    const defer = (jobs: readonly ClaimedJob[], delaySeconds: number) => {
      if (jobs.length === 0) return;
      const deferring: Promise<void> = transport
        .defer(jobs, owner, now(), delaySeconds)
        .then(
          () => undefined,
          (error: unknown) => logWorkerFailure(log, stopped(), error, 'logout worker: putting jobs back'),
        )
        .finally(() => {
          settled(jobs.length);
          unrecorded.delete(deferring);
          // Not a reason to claim again (that would put back a stalled application's whole queue, a
          // claim at a time); only the end of the last work in flight wakes the loop, to end it.
          if (unrecorded.size === 0) wake();
        });
      unrecorded.add(deferring);
    };

    /** True when the application's last answer took a quarter of `stallMs` or more. */
    const answersSlowly = (clientId: string): boolean => (answeredMs.get(clientId) ?? 0) >= stallMs / 4;

    /**
     * Puts back jobs of slow applications whose held jobs fill a lane's worth, each until about when
     * a lane will be free for it: one answer's time per lane for each job put back before it (in
     * whole seconds, one at least). A job due a little early waits among the held ones.
     */
    const deferUntilLanesFree = (jobs: readonly ClaimedJob[]) => {
      const at = now();
      const byDelay = new Map<number, ClaimedJob[]>();
      for (const job of jobs) {
        const took = answeredMs.get(job.clientId) ?? stallMs;
        const slot = Math.max(bookedUntil.get(job.clientId) ?? 0, at);
        bookedUntil.set(job.clientId, slot + took / perApplication);
        const delaySeconds = Math.max(1, Math.round((slot - at) / 1000));
        let group = byDelay.get(delaySeconds);
        if (!group) byDelay.set(delaySeconds, (group = []));
        group.push(job);
      }
      for (const [delaySeconds, group] of byDelay) defer(group, delaySeconds);
    };

    const start = (job: ClaimedJob, applications: ApplicationLookups) => {
      attempts += 1;
      const lane = {};
      attempting.add(lane);
      let lanes = lanesOf.get(job.clientId);
      if (!lanes) lanesOf.set(job.clientId, (lanes = new Map()));
      const startedAt = now();
      lanes.set(lane, startedAt);
      const attempted = (answered = false) => {
        if (!attempting.delete(lane)) return;
        if (answered) answeredMs.set(job.clientId, now() - startedAt);
        lanes.delete(lane);
        if (lanes.size === 0 && lanesOf.get(job.clientId) === lanes) lanesOf.delete(job.clientId);
        startHeld(job.clientId);
        wake();
      };
      const running: Promise<void> = processJob(job, applications, attempted)
        .catch((error: unknown) => logWorkerFailure(log, stopped(), error, 'logout worker'))
        .finally(() => {
          settled(1);
          attempted();
          unrecorded.delete(running);
          wake();
        });
      unrecorded.add(running);
    };

    /** Starts the application's held jobs, in order, while it and the worker have free lanes. */
    const startHeld = (clientId: string) => {
      const queue = heldOf.get(clientId);
      while (
        queue &&
        queue.length > 0 &&
        attempting.size < concurrency &&
        (lanesOf.get(clientId)?.size ?? 0) < perApplication
      ) {
        const next = queue.shift()!;
        held -= 1;
        start(next.job, next.applications);
      }
      if (queue?.length === 0) heldOf.delete(clientId);
    };

    /** Puts back the held jobs of `clientIds` (all applications by default). */
    const deferHeld = (
      clientIds: Iterable<string> = [...heldOf.keys()],
      delaySeconds = deferSeconds(config),
    ) => {
      for (const clientId of [...clientIds]) {
        const queue = heldOf.get(clientId);
        if (!queue) continue;
        heldOf.delete(clientId);
        held -= queue.length;
        defer(
          queue.map((item) => item.job),
          delaySeconds,
        );
      }
    };

    try {
      while (!stopped()) {
        // Held jobs of applications that stalled meanwhile go back; the others may start now.
        deferHeld([...heldOf.keys()].filter(stalled));
        for (const clientId of [...heldOf.keys()]) startHeld(clientId);
        const free = Math.min(concurrency - attempting.size - held, 2 * concurrency - unrecorded.size - held);
        if (due && free >= refill) {
          const at = now();
          const claimed = await transport.claim(owner, at, at + leaseMs(config), free);
          claimedHere += claimed.length;
          claimedOpen += claimed.length;
          const startBy = at + config.logout.requestTimeoutMs;
          const jobs = claimed.map((job) => ({ ...job, startBy }));
          due = jobs.length === free;
          // Each application is read once for the batch, or not at all when kept (see `kept`).
          const applications = jobs.length > 0 ? await applicationsAt() : new Map();
          const stalling: ClaimedJob[] = [];
          const waitingForLanes: ClaimedJob[] = [];
          for (const job of jobs) {
            if (stalled(job.clientId)) {
              stalling.push(job);
              continue;
            }
            if (answersSlowly(job.clientId) && (heldOf.get(job.clientId)?.length ?? 0) >= perApplication) {
              waitingForLanes.push(job);
              continue;
            }
            let queue = heldOf.get(job.clientId);
            if (!queue) heldOf.set(job.clientId, (queue = []));
            queue.push({ job, applications });
            held += 1;
            startHeld(job.clientId);
          }
          defer(stalling, deferSeconds(config));
          deferUntilLanesFree(waitingForLanes);
          // Only jobs put back were due: claim again once a lane is free or at the next poll, rather
          // than claiming and putting back a stalled application's whole queue at once.
          const putBack = stalling.length + waitingForLanes.length;
          if (putBack > 0 && putBack === jobs.length) due = false;
          if (jobs.length > 0) continue;
        }
        if (unrecorded.size === 0 && held === 0) break;
        let timer: NodeJS.Timeout | undefined;
        await new Promise<void>((resolve) => {
          waiting = resolve;
          // Held jobs wait for a lane of their application, or for it to be found stalled; jobs that
          // come due meanwhile, for the next poll.
          const waits = [
            ...(held > 0 ? [Math.max(10, stallMs / 2)] : []),
            ...(pollIntervalMs === undefined ? [] : [pollIntervalMs]),
          ];
          if (waits.length > 0) timer = setTimeout(wake, Math.min(...waits));
        });
        clearTimeout(timer);
        // An attempt was made or recorded: a job may have been rescheduled, and more may be due now.
        due = true;
      }
    } finally {
      if (wakeDrain === wake) wakeDrain = undefined;
      // Stopping: what is held goes back at once, for whichever worker claims next.
      deferHeld(undefined, 0);
      await Promise.all(unrecorded);
      // Claimed jobs neither started nor put back (the round failed in between) wait for their claim
      // to lapse.
      settled(claimedHere);
    }
    return attempts;
  };

  const deliverDue: LogoutService['deliverDue'] = () => drain(1, () => false);

  /** Waits for a stopped worker's round, at most `workerStopWaitMs`; says so when it leaves it running. */
  const waitForRound = async (ended: Promise<void>): Promise<void> => {
    const waitMs = workerStopWaitMs(config);
    const finished = ended.then(() => true);
    if (await within(finished, waitMs, false)) return;
    log.warn(
      { claimed: claimedOpen, wait_seconds: waitMs / 1000 },
      `stopping without waiting longer for the logout worker's round in flight (${claimedOpen} claimed logout(s) not recorded yet; the database unreachable?): ` +
        'what it did not record is claimed and delivered again once its claim lapses',
    );
  };

  const startWorker: LogoutService['startWorker'] = (options = {}) => {
    if (worker) return worker;
    const pollIntervalMs = options.pollIntervalMs ?? 1000;
    const concurrency = Math.max(1, options.concurrency ?? DEFAULT_WORKER_CONCURRENCY);
    let stopped = false;
    // Settles once the round in flight when it stopped has ended.
    let ended: Promise<void> | undefined;
    // Settles once it has ended, or at most `workerStopWaitMs` after the stop.
    let stopWaited: Promise<void> | undefined;
    let timer: NodeJS.Timeout | undefined;
    let running: Promise<void> | undefined;
    let again = false;
    let purgedAt = 0;
    // Finished jobs and recorded outcomes past their retention may remain: each round deletes a share
    // of them, until none does, rather than one purge deleting a backlog of years while no logout is
    // delivered.
    let jobsToPurge = false;
    let recordsToPurge = false;
    // Consecutive rounds that failed (a read-only or full disk, a database gone): each waits twice as
    // long as the last, up to a minute, instead of trying again at once on jobs already due.
    let failures = 0;

    // False until the workers stopped before it have ended (`lastStopped`): a wake-up waits as well.
    let ready = false;
    const schedule = (delayMs: number) => {
      if (stopped || !ready) return;
      clearTimeout(timer);
      timer = setTimeout(tick, Math.max(0, delayMs));
      timer.unref();
    };
    const tick = () => {
      if (running) {
        again = true;
        // Its round claims the jobs just queued now, not once an attempt in flight has ended.
        wakeDrain?.();
        return;
      }
      running = (async () => {
        try {
          await drain(concurrency, () => stopped, pollIntervalMs);
          if (!stopped && now() - purgedAt > PURGE_INTERVAL_MS) {
            purgedAt = now();
            jobsToPurge = true;
            recordsToPurge = true;
          }
          if (jobsToPurge && !stopped) {
            // A purge that fails fails the round, and is tried again at the next purge, not every round.
            jobsToPurge = false;
            jobsToPurge = await transport.purge(now());
          }
          if (recordsToPurge && !stopped) {
            // Apart from the round's own work: a purge that fails (a lock wait, a deadlock with another
            // worker's purge) neither slows deliveries down nor is tried again before the next purge.
            recordsToPurge = await deps
              .purgeRecordedOutcomes(now() - config.logout.recordRetentionDays * DAY_MS)
              .catch((error: unknown) => {
                const [fields] = failureLine(error, 'logout worker');
                log.warn(
                  fields,
                  'deleting recorded logout outcomes past their retention failed; the next purge tries again',
                );
                return false;
              });
          }
          failures = 0;
        } catch (error) {
          failures += 1;
          logWorkerFailure(log, stopped, error, 'logout worker', { failures });
          return Math.min(pollIntervalMs * 2 ** (failures - 1), MAX_FAILURE_BACKOFF_MS);
        }
        let delay = pollIntervalMs;
        // Stopped: no next round to schedule.
        if (stopped) return delay;
        const due = await transport.nextDueAt().catch(() => undefined);
        if (due !== undefined) delay = Math.min(delay, due - now());
        return delay;
      })().then((delay) => {
        running = undefined;
        schedule(again ? 0 : delay);
        again = false;
      });
    };
    // pg-boss: this process's supervisor puts back the jobs of workers that died mid-attempt.
    const transportStarted = transport.startWorker().then(
      () => undefined,
      (error: Error) => error,
    );
    void Promise.all([lastStopped, transportStarted]).then(([, error]) => {
      if (error) logWorkerFailure(log, stopped, error, 'logout worker');
      ready = true;
      schedule(error ? pollIntervalMs : 0);
    });
    const started: LogoutWorker = {
      wake: () => schedule(0),
      stop() {
        if (!ended) {
          stopped = true;
          clearTimeout(timer);
          // A later `startWorker` starts a new worker instead of handing back this one, which would
          // deliver nothing; that one claims once this one's round has ended (see `lastStopped`).
          if (worker === started) worker = undefined;
          ended = (running ?? Promise.resolve()).then(() => undefined);
          lastStopped = Promise.all([lastStopped, ended]).then(() => undefined);
          stopWaited = waitForRound(ended);
          lastStopWaited = Promise.all([lastStopWaited, stopWaited]).then(() => undefined);
        }
        return stopWaited!;
      },
    };
    worker = started;
    return started;
  };

  return {
    deliverDue,
    startWorker,
    wake: () => worker?.wake(),
    async stopWorker() {
      await worker?.stop();
      // And every worker stopped before (its `stop()` not awaited, say): the service closes after them,
      // or after their wait at a stop.
      await lastStopWaited;
    },
  };
}
