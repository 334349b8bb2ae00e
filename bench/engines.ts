import { type ChildProcess, spawn } from 'node:child_process';
import { openSync, readFileSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_HTTP_CONNECTION_CAPS } from '../src/config/schema.ts';
import type { BenchClient } from './common.ts';
import { type Endpoints, discover } from './http.ts';
import {
  callgrindCounter,
  type InstructionCounter,
  START_TIMEOUT_UNDER_CALLGRIND_MS,
  V8_ARGS_UNDER_CALLGRIND,
  VALGRIND_ARGS,
} from './instruction-counter.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export type EngineName = 'aa-oidc' | 'bare';

/** An engine under test, running in its own process. */
export interface RunningEngine {
  name: EngineName;
  issuer: string;
  origin: string;
  endpoints: Endpoints;
  pid: number;
  /**
   * Seconds the load generator waits for one response before it gives the request up (and its
   * connection with it): a refresh token sent in a request given up is rotated, its successor lost.
   */
  requestTimeoutSeconds: number;
  /** Resident set size of the engine's process now, in MB. */
  rssMb(): number;
  /** CPU time (user + system) the engine's process has used so far, in seconds. */
  cpuSeconds(): number;
  /** CPU time of each of the process's threads so far (`threadCpuBetween` groups the difference). */
  threadCpu(): ThreadCpu;
  /**
   * PostgreSQL on this machine: CPU time (user + system) the server's backends serving the engine's
   * database have used so far, in seconds (they compete with the engine for the same cores).
   */
  databaseCpuSeconds?(): number;
  /** The SQL statements the process has run so far, by text (with `--count-statements` only). */
  statements?(): Promise<StatementCounts>;
  /** The bytes the process has allocated so far, by place (with `--count-allocation` only). */
  allocation?(): Promise<StatementCounts>;
  /** The instructions the process executes, switched on and off (with `--count-instructions` only). */
  instructions?: InstructionCounter;
  stop(): Promise<void>;
}

/**
 * What bench/statement-counter.ts reports: statements run so far, in all and by SQL text; and what
 * bench/allocation-counter.ts reports: bytes allocated so far, in all and by place.
 */
export interface StatementCounts {
  total: number;
  byText: Record<string, number>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kilobytes = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? Number.NaN);
  return kilobytes / 1024;
}

const CLOCK_TICKS_PER_SECOND = 100;

/** The CPU time (user + system) of a `/proc/…/stat` line, in seconds. */
function cpuOfStat(stat: string): number {
  // The command may hold spaces, so count fields after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
}

/** CPU time (user + system, every thread) a process has used so far, in seconds. */
export function cpuOf(pid: number): number {
  return cpuOfStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
}

/**
 * The threads of a Node.js process, by what they do (their names, `/proc/PID/task/TID/comm`): the
 * event loop's thread; V8's helpers (garbage collection, compilation); worker threads (aa-oidc's
 * SQLite write worker, src/db/write-worker.ts); libuv's pool (crypto, argon2, file system); any other.
 */
export const THREAD_GROUPS = ['main', 'V8 helpers', 'worker threads', 'libuv pool', 'other'] as const;
export type ThreadGroup = (typeof THREAD_GROUPS)[number];

/** A thread's group: the process's own id is its main thread's. */
export function threadGroupOf(pid: number, tid: number, name: string): ThreadGroup {
  if (tid === pid) return 'main';
  if (name.startsWith('V8')) return 'V8 helpers';
  if (name === 'WorkerThread') return 'worker threads';
  if (name.startsWith('libuv')) return 'libuv pool';
  return 'other';
}

/** CPU seconds of each live thread of a process so far, by thread id, with the thread's group. */
export type ThreadCpu = ReadonlyMap<number, { group: ThreadGroup; seconds: number }>;

export function threadCpuOf(pid: number): ThreadCpu {
  const threads = new Map<number, { group: ThreadGroup; seconds: number }>();
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return threads;
  }
  for (const entry of tids) {
    const tid = Number(entry);
    try {
      const seconds = cpuOfStat(readFileSync(`/proc/${pid}/task/${entry}/stat`, 'utf8'));
      const name = readFileSync(`/proc/${pid}/task/${entry}/comm`, 'utf8').trim();
      threads.set(tid, { group: threadGroupOf(pid, tid, name), seconds });
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return threads;
}

/**
 * CPU seconds by group between two readings: each thread's growth (a thread started since counts from
 * zero; one that ended since is not counted, its last stretch unknown).
 */
export function threadCpuBetween(before: ThreadCpu, after: ThreadCpu): Partial<Record<ThreadGroup, number>> {
  const byGroup: Partial<Record<ThreadGroup, number>> = {};
  for (const [tid, { group, seconds }] of after) {
    byGroup[group] = (byGroup[group] ?? 0) + seconds - (before.get(tid)?.seconds ?? 0);
  }
  return byGroup;
}

function stopper(child: ChildProcess): () => Promise<void> {
  return () =>
    new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      child.kill('SIGTERM');
    });
}

const START_TIMEOUT_MS = 120_000;

async function waitUntilServing(
  url: string,
  child: ChildProcess,
  logFile: string,
  timeoutMs = START_TIMEOUT_MS,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new Error(`the engine exited (code ${child.exitCode}); its output:\n${tail(logFile)}`);
    }
    try {
      const response = await fetch(url);
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(
    `the engine did not answer ${url} within ${timeoutMs / 1000} s; its output:\n${tail(logFile)}`,
  );
}

/**
 * The command that runs `node ARGS`: node itself, or node under callgrind writing its dumps to
 * `callgrindFile` (then valgrind's process is node's: the same process id).
 */
function nodeCommand(args: readonly string[], callgrindFile?: string): [string, string[]] {
  if (!callgrindFile) return [process.execPath, [...args]];
  return [
    'valgrind',
    [
      ...VALGRIND_ARGS,
      `--callgrind-out-file=${callgrindFile}`,
      process.execPath,
      ...V8_ARGS_UNDER_CALLGRIND,
      ...args,
    ],
  ];
}

/**
 * The environment bin/aa-oidc.js would restart `serve` with (its comments say why), its flags being
 * among V8_ARGS_UNDER_CALLGRIND. Under callgrind it must not restart: valgrind would not follow the
 * new program, and the process counted would be a bare node. `--max-semi-space-size` and this
 * environment, given, leave it nothing to set: it does not restart, and runs as it would have after it.
 */
/**
 * A request's time limit: 30 s, or under callgrind 15 minutes. Valgrind runs the engine 20–60 times
 * slower, and switching its count on (`callgrind_control --instr=on`) makes it translate the code
 * again as it runs, so a round's first requests have taken 35–55 s on a busy machine.
 */
const requestTimeoutSeconds = (callgrindFile?: string) => (callgrindFile ? 15 * 60 : 30);

const SERVE_TUNING_ENV = {
  MALLOC_ARENA_MAX: '2',
  MALLOC_MMAP_THRESHOLD_: String(128 * 1024),
  MALLOC_TRIM_THRESHOLD_: String(128 * 1024),
};

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-30).join('\n');
  } catch {
    return '(no output)';
  }
}

/**
 * serve's connection caps (`http.*`) for a load of `connections` from one address (127.0.0.1): never
 * below the defaults, and twice the load, as a round's connections may still be closing on the
 * server's side while the next round opens its own. Over the cap, connections would be closed
 * unanswered and counted as failures.
 */
export function connectionCapsFor(connections: number): NodeJS.ProcessEnv {
  const room = 2 * connections;
  return {
    AA_OIDC_HTTP_MAX_CONNECTIONS: String(Math.max(DEFAULT_HTTP_CONNECTION_CAPS.maxConnections, room)),
    AA_OIDC_HTTP_MAX_CONNECTIONS_PER_ADDRESS: String(
      Math.max(DEFAULT_HTTP_CONNECTION_CAPS.maxConnectionsPerAddress, room),
    ),
  };
}

export interface AaOidcOptions {
  env: NodeJS.ProcessEnv;
  port: number;
  logFile: string;
  /** Extra node flags (`--cpu-prof`, …). */
  nodeArgs: readonly string[];
  /** Count the statements the server runs (bench/statement-counter.ts), through this file. */
  statementsFile?: string;
  /** Count the bytes the server allocates (bench/allocation-counter.ts), through this file. */
  allocationFile?: string;
  /** The PostgreSQL database aa-oidc uses, when its server runs on this machine (for its CPU time). */
  postgresDatabase?: string;
  /** Run under callgrind (bench/instruction-counter.ts), its dumps going to this file (`.1`, `.2`, …). */
  callgrindFile?: string;
}

/**
 * The CPU time of the local PostgreSQL backends serving `database` (their process title is
 * `postgres: USER DATABASE HOST(PORT) STATE`), summed over every backend seen so far: a backend that
 * exits keeps the time counted up to the last call, so the total only grows.
 */
export function postgresBackendCpu(database: string): () => number {
  const seen = new Map<number, number>();
  let total = 0;
  return () => {
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      const pid = Number(entry);
      let title: string;
      try {
        title = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      } catch {
        continue;
      }
      if (!title.startsWith('postgres: ') || !title.split(' ').includes(database)) continue;
      let now: number;
      try {
        now = cpuOf(pid);
      } catch {
        continue;
      }
      total += now - (seen.get(pid) ?? 0);
      seen.set(pid, now);
    }
    return total;
  };
}

/** The `seq` of the counts in `file`, or 0 when there are none yet (or it is being written). */
function seqOf(file: string): number {
  try {
    return (JSON.parse(readFileSync(file, 'utf8')) as { seq: number }).seq;
  } catch {
    return 0;
  }
}

/**
 * Asks the counters in `pid` for their counts (SIGUSR2, which every counter loaded answers) and waits
 * for the file one of them rewrites. Every counter answers every signal: with both counters loaded,
 * the other reader's signal has rewritten this file meanwhile (counts as of that earlier moment), so
 * only a rewrite newer than what the file holds when this signal is sent counts.
 */
function countsReader(pid: number, file: string): () => Promise<StatementCounts> {
  let seq = 0;
  return async () => {
    seq = Math.max(seq, seqOf(file));
    process.kill(pid, 'SIGUSR2');
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      try {
        const read = JSON.parse(readFileSync(file, 'utf8')) as StatementCounts & { seq: number };
        if (read.seq > seq) {
          seq = read.seq;
          return { total: read.total, byText: read.byText };
        }
      } catch {
        // not written yet, or being written
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    throw new Error(`the counter writing ${file} did not answer`);
  };
}

/** `aa-oidc serve` as an operator runs it (`bin/aa-oidc.js`), its log lines going to `logFile`. */
export async function startAaOidc(options: AaOidcOptions): Promise<RunningEngine> {
  const out = openSync(options.logFile, 'a');
  const counters = [
    ...(options.statementsFile ? ['--import', path.join(ROOT, 'bench/statement-counter.ts')] : []),
    ...(options.allocationFile ? ['--import', path.join(ROOT, 'bench/allocation-counter.ts')] : []),
  ];
  const [command, args] = nodeCommand(
    [...options.nodeArgs, ...counters, path.join(ROOT, 'bin/aa-oidc.js'), 'serve'],
    options.callgrindFile,
  );
  const child = spawn(command, args, {
    cwd: ROOT,
    env: {
      ...(options.callgrindFile ? SERVE_TUNING_ENV : {}),
      ...options.env,
      ...(options.statementsFile ? { BENCH_STATEMENT_COUNTS_FILE: options.statementsFile } : {}),
      ...(options.allocationFile ? { BENCH_ALLOCATION_COUNTS_FILE: options.allocationFile } : {}),
    },
    stdio: ['ignore', out, out],
  });
  const origin = `http://127.0.0.1:${options.port}`;
  const stop = stopper(child);
  try {
    await waitUntilServing(
      `${origin}/readyz`,
      child,
      options.logFile,
      options.callgrindFile ? START_TIMEOUT_UNDER_CALLGRIND_MS : START_TIMEOUT_MS,
    );
    const issuer = `${origin}/o`;
    return {
      name: 'aa-oidc',
      issuer,
      origin,
      endpoints: await discover(issuer),
      pid: child.pid!,
      requestTimeoutSeconds: requestTimeoutSeconds(options.callgrindFile),
      rssMb: () => rssOf(child.pid!),
      cpuSeconds: () => cpuOf(child.pid!),
      threadCpu: () => threadCpuOf(child.pid!),
      ...(options.postgresDatabase
        ? { databaseCpuSeconds: postgresBackendCpu(options.postgresDatabase) }
        : {}),
      ...(options.statementsFile ? { statements: countsReader(child.pid!, options.statementsFile) } : {}),
      ...(options.allocationFile ? { allocation: countsReader(child.pid!, options.allocationFile) } : {}),
      ...(options.callgrindFile
        ? { instructions: callgrindCounter(child.pid!, options.callgrindFile, /aa-oidc\.js serve$/) }
        : {}),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

export interface BareOptions {
  port: number;
  client: BenchClient;
  ttl: Record<string, number>;
  logFile: string;
  nodeArgs: readonly string[];
  /** Count the bytes the engine allocates (bench/allocation-counter.ts), through this file. */
  allocationFile?: string;
  /** Run under callgrind (bench/instruction-counter.ts), its dumps going to this file (`.1`, `.2`, …). */
  callgrindFile?: string;
}

/** The bare oidc-provider of bench/bare-provider.ts. */
export async function startBare(options: BareOptions): Promise<RunningEngine> {
  const out = openSync(options.logFile, 'a');
  const counter = options.allocationFile ? ['--import', path.join(ROOT, 'bench/allocation-counter.ts')] : [];
  const [command, args] = nodeCommand(
    [...options.nodeArgs, ...counter, path.join(ROOT, 'bench/bare-provider.ts')],
    options.callgrindFile,
  );
  const child = spawn(command, args, {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      ...(options.allocationFile ? { BENCH_ALLOCATION_COUNTS_FILE: options.allocationFile } : {}),
      BENCH_BARE_PORT: String(options.port),
      BENCH_BARE_CLIENT: JSON.stringify(options.client),
      BENCH_BARE_TTL: JSON.stringify(options.ttl),
    },
    stdio: ['ignore', out, out],
  });
  const origin = `http://127.0.0.1:${options.port}`;
  const stop = stopper(child);
  try {
    await waitUntilServing(
      `${origin}/.well-known/openid-configuration`,
      child,
      options.logFile,
      options.callgrindFile ? START_TIMEOUT_UNDER_CALLGRIND_MS : START_TIMEOUT_MS,
    );
    return {
      name: 'bare',
      issuer: origin,
      origin,
      endpoints: await discover(origin),
      pid: child.pid!,
      requestTimeoutSeconds: requestTimeoutSeconds(options.callgrindFile),
      rssMb: () => rssOf(child.pid!),
      cpuSeconds: () => cpuOf(child.pid!),
      threadCpu: () => threadCpuOf(child.pid!),
      ...(options.allocationFile ? { allocation: countsReader(child.pid!, options.allocationFile) } : {}),
      ...(options.callgrindFile
        ? { instructions: callgrindCounter(child.pid!, options.callgrindFile, /bare-provider\.ts$/) }
        : {}),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
