import { performance } from 'node:perf_hooks';
import v8 from 'node:v8';
import vm from 'node:vm';
import type { Logger } from '../logging/logger.ts';

/**
 * Gives memory back to the system once a long-running process (`serve`, `worker`) is quiet after a
 * burst. V8 keeps the pages its heap grew to during a burst of requests or deliveries in a pool for
 * reuse, outside the heap's own size and still resident: after the bench's workloads 40–60 MB more
 * than the heap, which neither its ordinary collections nor, while a little work goes on, its
 * memory reducer hand back. A memory-reducing collection does: so when the resident set has grown
 * well past where the last one left it and the event loop was nearly idle for a whole interval, one
 * is run. It never runs under load (a busy interval waits for a quiet one), and at most once per
 * growth: what it could not release raises the mark for the next.
 *
 * Start-up counts as a burst: compiling every module grows V8's young generation to its maximum
 * (2 × 16 MB under `serve`'s settings, bin/aa-oidc.js) and leaves old-generation pages half empty,
 * all of it resident though the server holds nothing yet. The first quiet interval releases it
 * whatever the growth: an idle `serve` on SQLite went from 148 to 117 MB.
 */

export interface MemoryReleaseOptions {
  log: Logger;
  /** How often the resident set and the event loop's use are looked at (default 1 s). */
  intervalMs?: number;
  /** Growth of the resident set over the mark that makes a quiet interval release (default 32 MiB). */
  growthBytes?: number;
  /** The event loop's use (0–1) over an interval under which the process counts as quiet (default 0.1). */
  quietUtilization?: number;
  /** Release at the first quiet interval whatever the growth: what start-up left (default true). */
  afterStartup?: boolean;
}

export interface MemoryRelease {
  /** The resident set, in bytes, that the next release waits to be exceeded by `growthBytes`. */
  mark(): number;
  stop(): void;
}

const DEFAULT_INTERVAL_MS = 1000;
const DEFAULT_GROWTH_BYTES = 32 * 2 ** 20;
const DEFAULT_QUIET_UTILIZATION = 0.1;

type Collect = (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;
let collect: Collect | undefined;

/**
 * V8's `gc`, taken from a fresh context while the flag is on, and the flag turned off again: the
 * process's own global object never gets a `gc`, so no library sees one.
 */
function memoryReducingCollection(): Collect {
  if (!collect) {
    v8.setFlagsFromString('--expose-gc');
    try {
      collect = vm.runInNewContext('gc') as Collect;
    } finally {
      v8.setFlagsFromString('--no-expose-gc');
    }
  }
  return collect;
}

const mb = (bytes: number) => Math.round(bytes / 2 ** 20);

export function startMemoryRelease(options: MemoryReleaseOptions): MemoryRelease {
  const intervalMs = options.intervalMs ?? DEFAULT_INTERVAL_MS;
  const growthBytes = options.growthBytes ?? DEFAULT_GROWTH_BYTES;
  const quietUtilization = options.quietUtilization ?? DEFAULT_QUIET_UTILIZATION;
  let mark = process.memoryUsage.rss();
  let startupLeft = options.afterStartup ?? true;
  let last = performance.eventLoopUtilization();

  const timer = setInterval(() => {
    const now = performance.eventLoopUtilization();
    const utilization = performance.eventLoopUtilization(now, last).utilization;
    last = now;
    const rss = process.memoryUsage.rss();
    // Shrunk on its own (V8's memory reducer, glibc trimming): the mark follows it down.
    if (rss < mark) mark = rss;
    if (utilization >= quietUtilization || (rss - mark < growthBytes && !startupLeft)) return;
    const what = startupLeft ? 'start-up' : 'burst';
    startupLeft = false;
    const started = performance.now();
    const cpu = process.cpuUsage();
    memoryReducingCollection()({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    const { user, system } = process.cpuUsage(cpu);
    const after = process.memoryUsage.rss();
    mark = after;
    // The collection is this interval's work, not the next one's.
    last = performance.eventLoopUtilization();
    options.log.info(
      {
        after: what,
        rssMb: mb(rss),
        releasedMb: mb(Math.max(0, rss - after)),
        ms: Math.round(performance.now() - started),
        // Of every thread (V8's helpers mark and sweep beside the main one).
        cpuMs: Math.round((user + system) / 1000),
      },
      'memory released after a burst',
    );
  }, intervalMs);
  timer.unref();

  return {
    mark: () => mark,
    stop: () => clearInterval(timer),
  };
}
