import type { Config } from '../config/load.ts';
import type { ApplicationLookups } from './delivery.ts';
import type { Logger } from '../logging/logger.ts';
import type { ClaimedJob, LogoutJobTransport } from './job-transport.ts';
import { leaseMs } from './jobs.ts';
import type { LogoutService, LogoutWorker } from './types.ts';

/**
 * The worker of back-channel logout: claims due jobs from the transport in batches and keeps up to
 * `concurrency` attempts in flight (each application's share bounded by its connection pool);
 * polls when idle, wakes at once when this process queued jobs, and purges finished jobs now and
 * then. `deliverDue` is the same loop run once, to the end.
 */

/** How often a worker deletes finished jobs past their retention. */
const PURGE_INTERVAL_MS = 10 * 60 * 1000;

/** Attempts in flight at once, by default. */
export const DEFAULT_WORKER_CONCURRENCY = 32;

export function createWorkerLoop(deps: {
  config: Config;
  log: Logger;
  now: () => number;
  transport: LogoutJobTransport;
  owner: string;
  /** The change epoch now (src/db/change-epoch.ts): every write to applications raises it. */
  changeEpoch: () => Promise<number>;
  /**
   * One attempt of one claimed job, settled once its outcome is recorded; the jobs of one claimed
   * batch share `applications`, and `attempted` frees the job's lane before its record commits.
   */
  processJob: (job: ClaimedJob, applications: ApplicationLookups, attempted: () => void) => Promise<void>;
}): Pick<LogoutService, 'deliverDue' | 'startWorker'> & {
  /** Wakes the worker of this process, if it runs one. */
  wake(): void;
  /** Stops the worker, if started; a later `startWorker` starts a new one. */
  stopWorker(): Promise<void>;
} {
  const { config, log, now, transport, owner, processJob } = deps;
  let worker: LogoutWorker | undefined;
  // The applications read for earlier batches, kept while the change epoch stands: a batch reads
  // the epoch after its claim, so a deactivation, a removed URI or a switch to revoke-only committed
  // before the claim still cancels its deliveries, and a fan-out reads each application once rather
  // than once per batch.
  let kept: { epoch: number; applications: ApplicationLookups } | undefined;
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
   */
  const drain = async (concurrency: number, stopped: () => boolean): Promise<number> => {
    // The lanes: attempts being made.
    const attempting = new Set<object>();
    // Every claimed job not yet at its next state (recorded, rescheduled, or left to its lease).
    const unrecorded = new Set<Promise<void>>();
    // Wakes the loop when it waits (a lane freed, a record done): one callback, not a race of every
    // promise in flight, whose reactions would pile up on the ones that stay pending.
    let waiting: (() => void) | undefined;
    const wake = () => {
      const resolve = waiting;
      waiting = undefined;
      resolve?.();
    };
    const refill = Math.max(1, Math.floor(concurrency / 2));
    let attempts = 0;
    let due = true;
    try {
      while (!stopped()) {
        const free = Math.min(concurrency - attempting.size, 2 * concurrency - unrecorded.size);
        if (due && free >= refill) {
          const at = now();
          const claimed = await transport.claim(owner, at, at + leaseMs(config), free);
          const startBy = at + config.logout.requestTimeoutMs;
          const jobs = claimed.map((job) => ({ ...job, startBy }));
          due = jobs.length === free;
          // Each application is read once for the batch, or not at all when kept (see `kept`).
          const applications = jobs.length > 0 ? await applicationsAt() : new Map();
          for (const job of jobs) {
            attempts += 1;
            const lane = {};
            attempting.add(lane);
            const attempted = () => {
              if (attempting.delete(lane)) wake();
            };
            const running: Promise<void> = processJob(job, applications, attempted)
              .catch((error: unknown) =>
                log.error(
                  { err: { name: (error as Error).name, message: (error as Error).message } },
                  'logout worker',
                ),
              )
              .finally(() => {
                attempting.delete(lane);
                unrecorded.delete(running);
                wake();
              });
            unrecorded.add(running);
          }
          if (jobs.length > 0) continue;
        }
        if (unrecorded.size === 0) break;
        await new Promise<void>((resolve) => {
          waiting = resolve;
        });
        // An attempt was made or recorded: a job may have been rescheduled, and more may be due now.
        due = true;
      }
    } finally {
      await Promise.all(unrecorded);
    }
    return attempts;
  };

  const deliverDue: LogoutService['deliverDue'] = () => drain(1, () => false);

  const startWorker: LogoutService['startWorker'] = (options = {}) => {
    if (worker) return worker;
    const pollIntervalMs = options.pollIntervalMs ?? 1000;
    const concurrency = Math.max(1, options.concurrency ?? DEFAULT_WORKER_CONCURRENCY);
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    let running: Promise<void> | undefined;
    let again = false;
    let purgedAt = 0;

    const schedule = (delayMs: number) => {
      if (stopped) return;
      clearTimeout(timer);
      timer = setTimeout(tick, Math.max(0, delayMs));
      timer.unref();
    };
    const tick = () => {
      if (running) {
        again = true;
        return;
      }
      running = (async () => {
        try {
          await drain(concurrency, () => stopped);
          if (now() - purgedAt > PURGE_INTERVAL_MS) {
            purgedAt = now();
            await transport.purge(purgedAt);
          }
        } catch (error) {
          log.error(
            { err: { name: (error as Error).name, message: (error as Error).message } },
            'logout worker',
          );
        }
        let delay = pollIntervalMs;
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
    transport.startWorker().then(
      () => schedule(0),
      (error: Error) => {
        log.error({ err: { name: error.name, message: error.message } }, 'logout worker');
        schedule(pollIntervalMs);
      },
    );
    worker = {
      wake: () => schedule(0),
      async stop() {
        stopped = true;
        clearTimeout(timer);
        await running;
      },
    };
    return worker;
  };

  return {
    deliverDue,
    startWorker,
    wake: () => worker?.wake(),
    async stopWorker() {
      await worker?.stop();
      worker = undefined;
    },
  };
}
