import type { Config } from '../config/load.ts';
import type { Logger } from '../logging/logger.ts';
import type { ClaimedJob, LogoutJobTransport } from './job-transport.ts';
import { leaseMs } from './jobs.ts';
import type { LogoutService, LogoutWorker } from './types.ts';

/**
 * The worker of back-channel logout: claims due jobs from the transport, a few lanes at a time, and
 * hands each to the delivery; polls when idle, wakes at once when this process queued jobs, and
 * purges finished jobs now and then. `deliverDue` is the same loop run once, to the end.
 */

/** How often a worker deletes finished jobs past their retention. */
const PURGE_INTERVAL_MS = 10 * 60 * 1000;

export function createWorkerLoop(deps: {
  config: Config;
  log: Logger;
  now: () => number;
  transport: LogoutJobTransport;
  owner: string;
  processJob: (job: ClaimedJob) => Promise<void>;
}): Pick<LogoutService, 'deliverDue' | 'startWorker'> & {
  /** Wakes the worker of this process, if it runs one. */
  wake(): void;
  /** Stops the worker, if started; a later `startWorker` starts a new one. */
  stopWorker(): Promise<void>;
} {
  const { config, log, now, transport, owner, processJob } = deps;
  let worker: LogoutWorker | undefined;

  const claimNext = () => transport.claim(owner, now(), now() + leaseMs(config));

  const deliverDue: LogoutService['deliverDue'] = async () => {
    let count = 0;
    for (;;) {
      const job = await claimNext();
      if (!job) return count;
      count += 1;
      await processJob(job);
    }
  };

  const startWorker: LogoutService['startWorker'] = (options = {}) => {
    if (worker) return worker;
    const pollIntervalMs = options.pollIntervalMs ?? 1000;
    const concurrency = options.concurrency ?? 4;
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    let running: Promise<void> | undefined;
    let again = false;
    let purgedAt = 0;

    const lane = async () => {
      while (!stopped) {
        const job = await claimNext();
        if (!job) return;
        await processJob(job);
      }
    };
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
          await Promise.all(Array.from({ length: concurrency }, lane));
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
