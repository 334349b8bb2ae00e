import autocannon from 'autocannon';
import { type StatementCounts, type ThreadCpu, type ThreadGroup, threadCpuBetween } from './engines.ts';
import type { InstructionCounter } from './instruction-counter.ts';

/**
 * One HTTP request of a workload. A workload is a sequence of steps that each connection runs in a
 * loop (one step for most; two for the code flow, five for the password login); `context` carries
 * values from one step to the next within one pass (a code, cookies) and is fresh for each pass.
 */
export interface Step {
  method: 'GET' | 'POST';
  /** Path and query on the engine's origin. */
  path: string | ((context: FlowContext) => string);
  headers?: Record<string, string> | ((context: FlowContext) => Record<string, string>);
  body?: string | ((context: FlowContext) => string);
  /**
   * True when the response is the one expected (status, and whatever the body must say); may store
   * values for later steps in `context`. A false marks the pass failed: its remaining steps are
   * skipped and the connection starts a new pass.
   */
  check(
    response: { status: number; body: string; headers: Record<string, string | string[]> },
    context: FlowContext,
  ): boolean;
}

export type FlowContext = Record<string, unknown> & { startedAt?: number; failed?: boolean };

export interface LoadOptions {
  origin: string;
  connections: number;
  /** Run for this many seconds… */
  seconds?: number;
  /** …or until this many passes were started (each step once per pass). */
  passes?: number;
  /** Seconds to wait for one response before giving the request up (default 30). */
  timeoutSeconds?: number;
  /** CPU seconds the engine's process has used so far (to report CPU time per pass). */
  cpuSeconds?: () => number;
  /** CPU seconds of each of the engine's threads so far (to report CPU time per pass by thread). */
  threadCpu?: () => ThreadCpu;
  /** CPU seconds the engine's local PostgreSQL backends have used so far. */
  databaseCpuSeconds?: () => number;
  /** The SQL statements the engine's process has run so far (to report statements per pass). */
  statements?: () => Promise<StatementCounts>;
  /** The bytes the engine's process has allocated so far (to report allocation per pass). */
  allocation?: () => Promise<StatementCounts>;
  /** The engine's instruction count, switched on for the run only (to report instructions per pass). */
  instructions?: InstructionCounter;
}

/** What one run measured: passes (requests, or whole flows) that succeeded, and their latencies. */
export interface LoadResult {
  /** Passes that completed with every step as expected. */
  completed: number;
  /** Passes that failed a check, plus requests that errored or timed out. */
  failed: number;
  /** Wall-clock seconds of the run. */
  seconds: number;
  /** CPU seconds the engine's process used during the run (0 when unknown). */
  cpuSeconds: number;
  /** The engine's CPU seconds during the run by kind of thread (when measured). */
  threadCpuSeconds?: Partial<Record<ThreadGroup, number>>;
  /** CPU seconds the engine's local PostgreSQL backends used during the run (when measured). */
  databaseCpuSeconds?: number;
  /**
   * CPU seconds the load generator used during the run: this process (autocannon, building each
   * request and checking each response), every thread. It shares the machine with the engine.
   */
  loadCpuSeconds: number;
  /** The statements the engine ran during the run, by SQL text (when counted). */
  statements?: StatementCounts;
  /** The bytes the engine allocated during the run, by place (when counted). */
  allocation?: StatementCounts;
  /** The instructions the engine executed during the run (when counted). */
  instructions?: number;
  /** Milliseconds per completed pass (a whole flow for multi-step workloads). */
  latencies: number[];
  /** The first unexpected response, for the report (status and the start of the body). */
  firstFailure?: string;
}

/**
 * autocannon ends a run at its next sample tick (1 s by default), also when a fixed amount of requests
 * was answered long before: a run of `passes` would idle until then, its `seconds` with it (a batch
 * of 250 code exchanges measured 249/s whatever the engine). Ticks this often end it promptly.
 */
const PASSES_SAMPLE_MS = 10;

/** A response excerpt with codes and tokens cut out: a failure is printed and kept in the report. */
const withoutSecrets = (excerpt: string) =>
  excerpt.replace(/((?:code|token)["']?\s*[=:]\s*["']?)[\w.~-]+/gi, '$1…');

/**
 * Runs `steps` from `connections` keep-alive connections with autocannon and checks every response.
 * The latency of a pass runs from the moment its first request is built to its last response.
 */
export async function runLoad(steps: readonly Step[], options: LoadOptions): Promise<LoadResult> {
  const url = new URL(options.origin);
  const latencies: number[] = [];
  let completed = 0;
  let failed = 0;
  let firstFailure: string | undefined;
  const last = steps.length - 1;

  const requests = steps.map((step, index) => ({
    method: step.method,
    setupRequest(request: Record<string, unknown>, context: FlowContext) {
      if (index > 0 && context.failed) return null;
      if (index === 0) context.startedAt = performance.now();
      const headers = typeof step.headers === 'function' ? step.headers(context) : (step.headers ?? {});
      const body = typeof step.body === 'function' ? step.body(context) : step.body;
      return {
        ...request,
        method: step.method,
        path: typeof step.path === 'function' ? step.path(context) : step.path,
        headers: {
          ...headers,
          // autocannon adds Content-Length itself.
          ...(body === undefined ? {} : { 'content-type': 'application/x-www-form-urlencoded' }),
        },
        ...(body === undefined ? {} : { body }),
      };
    },
    onResponse(
      status: number,
      body: string,
      context: FlowContext,
      headers: Record<string, string | string[]>,
    ) {
      if (context.failed) return;
      let ok: boolean;
      try {
        ok = step.check({ status, body: body ?? '', headers: lowerCased(headers) }, context);
      } catch {
        ok = false;
      }
      if (!ok) {
        context.failed = true;
        failed += 1;
        firstFailure ??= `step ${index + 1} (${step.method}): HTTP ${status} ${withoutSecrets(String(body ?? '').slice(0, 200))}`;
        return;
      }
      if (index === last) {
        completed += 1;
        latencies.push(performance.now() - (context.startedAt ?? performance.now()));
      }
    },
  }));

  const statementsBefore = await options.statements?.();
  const allocationBefore = await options.allocation?.();
  const cpuBefore = options.cpuSeconds?.() ?? 0;
  const threadsBefore = options.threadCpu?.();
  const databaseCpuBefore = options.databaseCpuSeconds?.();
  await options.instructions?.start();
  const loadCpuBefore = process.cpuUsage();
  const started = performance.now();
  await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: url.origin,
        connections: options.connections,
        ...(options.passes !== undefined
          ? { amount: options.passes * steps.length, sampleInt: PASSES_SAMPLE_MS }
          : { duration: options.seconds ?? 5 }),
        timeout: options.timeoutSeconds ?? 30,
        requests: requests as unknown as autocannon.Request[],
      },
      (error, finished) => (error ? reject(error) : resolve(finished)),
    );
    instance.on('reqError', () => {
      failed += 1;
    });
  });
  const seconds = (performance.now() - started) / 1000;
  const loadCpu = process.cpuUsage(loadCpuBefore);
  const instructions = await options.instructions?.stop();
  const cpuSeconds = (options.cpuSeconds?.() ?? 0) - cpuBefore;
  const threadsAfter = options.threadCpu?.();
  const databaseCpuAfter = options.databaseCpuSeconds?.();
  const statementsAfter = await options.statements?.();
  const allocationAfter = await options.allocation?.();
  const statements =
    statementsBefore && statementsAfter ? subtractCounts(statementsAfter, statementsBefore) : undefined;
  return {
    completed,
    failed,
    seconds,
    cpuSeconds,
    loadCpuSeconds: (loadCpu.user + loadCpu.system) / 1e6,
    ...(threadsBefore && threadsAfter
      ? { threadCpuSeconds: threadCpuBetween(threadsBefore, threadsAfter) }
      : {}),
    ...(databaseCpuBefore !== undefined && databaseCpuAfter !== undefined
      ? { databaseCpuSeconds: databaseCpuAfter - databaseCpuBefore }
      : {}),
    latencies,
    ...(statements ? { statements } : {}),
    ...(allocationBefore && allocationAfter
      ? { allocation: subtractCounts(allocationAfter, allocationBefore) }
      : {}),
    ...(instructions !== undefined ? { instructions } : {}),
    ...(firstFailure ? { firstFailure } : {}),
  };
}

export function addCounts(a: StatementCounts, b: StatementCounts): StatementCounts {
  const byText = { ...a.byText };
  for (const [text, n] of Object.entries(b.byText)) byText[text] = (byText[text] ?? 0) + n;
  return { total: a.total + b.total, byText };
}

/** CPU seconds by kind of thread, summed (the code exchange's batches). */
export function addGroups(
  a: Partial<Record<ThreadGroup, number>> | undefined,
  b: Partial<Record<ThreadGroup, number>>,
): Partial<Record<ThreadGroup, number>> {
  const sum = { ...a };
  for (const [group, seconds] of Object.entries(b) as Array<[ThreadGroup, number]>)
    sum[group] = (sum[group] ?? 0) + seconds;
  return sum;
}

export function subtractCounts(after: StatementCounts, before: StatementCounts): StatementCounts {
  const byText: Record<string, number> = {};
  for (const [text, n] of Object.entries(after.byText)) {
    const delta = n - (before.byText[text] ?? 0);
    if (delta > 0) byText[text] = delta;
  }
  return { total: after.total - before.total, byText };
}

function lowerCased(headers: Record<string, string | string[]>): Record<string, string | string[]> {
  const result: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers ?? {})) result[name.toLowerCase()] = value;
  return result;
}

/** The p-th percentile (0–100) of `values`, in their unit; NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}
