import { type EngineName, THREAD_GROUPS, type ThreadGroup } from './engines.ts';
import type { FanoutResult } from './fanout.ts';
import { type LoadResult, percentile } from './load.ts';

/** One measurement of one engine, as kept in the JSON report. */
export interface Measurement {
  rate: number;
  p50Ms: number;
  p99Ms: number;
  /** CPU time of the engine's process per unit (request, flow, login), in milliseconds. */
  cpuMsPerUnit: number;
  /** The engine's CPU time per unit by kind of thread (engines.ts `THREAD_GROUPS`), in milliseconds. */
  threadCpuMsPerUnit?: Partial<Record<ThreadGroup, number>>;
  /** CPU time of its local PostgreSQL backends per unit, in milliseconds (aa-oidc on PostgreSQL). */
  databaseCpuMsPerUnit?: number;
  /** CPU time of the load generator (the bench's own process) per unit, in milliseconds. */
  loadCpuMsPerUnit: number;
  completed: number;
  failed: number;
  seconds: number;
  /** SQL statements the engine ran per unit, in all and by text (with `--count-statements`). */
  statementsPerUnit?: { total: number; byText: Record<string, number> };
  /** Bytes the engine allocated per unit, in all and by place (with `--count-allocation`). */
  allocationPerUnit?: { total: number; byText: Record<string, number> };
  /** Machine instructions the engine's process executed per unit, under callgrind (with `--count-instructions`). */
  instructionsPerUnit?: number;
  firstFailure?: string;
}

export function summarize(result: LoadResult): Measurement {
  return {
    rate: result.seconds > 0 ? result.completed / result.seconds : 0,
    p50Ms: percentile(result.latencies, 50),
    p99Ms: percentile(result.latencies, 99),
    cpuMsPerUnit: result.completed > 0 ? (result.cpuSeconds * 1000) / result.completed : Number.NaN,
    ...(result.threadCpuSeconds && result.completed > 0
      ? {
          threadCpuMsPerUnit: Object.fromEntries(
            Object.entries(result.threadCpuSeconds).map(([group, seconds]) => [
              group,
              (seconds * 1000) / result.completed,
            ]),
          ),
        }
      : {}),
    ...(result.databaseCpuSeconds !== undefined && result.completed > 0
      ? { databaseCpuMsPerUnit: (result.databaseCpuSeconds * 1000) / result.completed }
      : {}),
    loadCpuMsPerUnit: result.completed > 0 ? (result.loadCpuSeconds * 1000) / result.completed : Number.NaN,
    completed: result.completed,
    failed: result.failed,
    seconds: result.seconds,
    ...(result.statements && result.completed > 0
      ? {
          statementsPerUnit: perUnit(result.statements, result.completed),
        }
      : {}),
    ...(result.allocation && result.completed > 0
      ? { allocationPerUnit: perUnit(result.allocation, result.completed) }
      : {}),
    ...(result.instructions !== undefined && result.completed > 0
      ? { instructionsPerUnit: result.instructions / result.completed }
      : {}),
    ...(result.firstFailure ? { firstFailure: result.firstFailure } : {}),
  };
}

function perUnit(counts: { total: number; byText: Record<string, number> }, units: number) {
  return {
    total: counts.total / units,
    byText: Object.fromEntries(
      Object.entries(counts.byText)
        .sort(([, a], [, b]) => b - a)
        .map(([text, n]) => [text, n / units]),
    ),
  };
}

export interface WorkloadReport {
  name: string;
  title: string;
  unit: string;
  target: number | null;
  bareNote: string | null;
  /** Every round of every engine, in the order run. */
  rounds: Partial<Record<EngineName, Measurement[]>>;
  /** The best round (highest rate) of each engine; with `--count-instructions`, the median round by instructions. */
  best: Partial<Record<EngineName, Measurement>>;
  /** aa-oidc's best rate over the bare engine's best rate. */
  ratio: number | null;
  /**
   * With `--count-instructions`: aa-oidc's instructions per unit over the bare engine's (above 1,
   * aa-oidc does more work per unit); its rates are then valgrind's, not the engines'.
   */
  instructionsRatio?: number | null;
  /** Requests that did not answer as expected, over all rounds (must be 0 for a valid figure). */
  failures: number;
  /** Where the machine's CPU went per unit in each engine's best round (not with `--count-instructions`). */
  cpu?: CpuShares | null;
}

/**
 * The machine's CPU per unit on each side of a workload, in milliseconds: the engine's process (every
 * thread), aa-oidc's local PostgreSQL backends, and the load generator, which all share the machine's
 * cores. When the cores are what limits both engines, the ratio of their rates comes to the ratio of
 * these sums (`cpuRatio`); and had aa-oidc's own process cost exactly what the bare engine's does per
 * unit, its ratio would still be held to `ceiling` by the database's CPU and the load generator's.
 */
export interface CpuShares {
  bare: { engine: number; load: number };
  aaOidc: { engine: number; database: number; load: number };
  /** (bare engine + its load generator) / (aa-oidc + its database + its load generator). */
  cpuRatio: number;
  /** (bare engine + its load generator) / (bare engine + aa-oidc's database + aa-oidc's load generator). */
  ceiling: number;
}

/** The CPU shares of two best rounds; null unless both engines were measured with CPU figures. */
export function cpuShares(best: WorkloadReport['best']): CpuShares | null {
  const bare = best.bare;
  const aa = best['aa-oidc'];
  if (!bare || !aa) return null;
  const figures = [bare.cpuMsPerUnit, bare.loadCpuMsPerUnit, aa.cpuMsPerUnit, aa.loadCpuMsPerUnit];
  if (!figures.every((figure) => Number.isFinite(figure) && figure > 0)) return null;
  const database = aa.databaseCpuMsPerUnit ?? 0;
  const bareSide = bare.cpuMsPerUnit + bare.loadCpuMsPerUnit;
  return {
    bare: { engine: bare.cpuMsPerUnit, load: bare.loadCpuMsPerUnit },
    aaOidc: { engine: aa.cpuMsPerUnit, database, load: aa.loadCpuMsPerUnit },
    cpuRatio: bareSide / (aa.cpuMsPerUnit + database + aa.loadCpuMsPerUnit),
    ceiling: bareSide / (bare.cpuMsPerUnit + database + aa.loadCpuMsPerUnit),
  };
}

/** aa-oidc's memory at idle or after a workload, in MB (the heap's figures when /metrics answered). */
export interface MemorySample {
  /** `idle`, or the workload just finished (`fanout` for the fan-out). */
  after: string;
  rssMb: number;
  heapUsedMb?: number;
  heapTotalMb?: number;
  externalMb?: number;
  /** V8's young generation, reserved. */
  newSpaceMb?: number;
  /** V8's old generation, reserved. */
  oldSpaceMb?: number;
}

export interface BenchReport {
  date: string;
  commit: string;
  node: string;
  database: 'sqlite' | 'postgres';
  /**
   * The PostgreSQL server aa-oidc ran on: its version, and whether autovacuum was on. Off, no table
   * of the bench's database is analyzed or vacuumed while it runs: plans are made without statistics.
   */
  postgresServer?: { version: string; autovacuum: boolean };
  machine: { cpus: number; model: string; loadBefore: number[]; loadAfter: number[] };
  options: Record<string, unknown>;
  /**
   * Resident memory at idle, right after the last workload (`afterBench`), and after the bench's
   * settle time with no load (`settled`): what a server holds once a burst is over, after its own
   * memory release (src/cli/memory-release.ts) has had its quiet second.
   */
  rssMb: Record<EngineName, { idle: number; afterBench: number | null; settled: number | null }>;
  /** aa-oidc's memory at idle and after each workload, in the order run. */
  memory: MemorySample[];
  workloads: WorkloadReport[];
  fanout: (FanoutResult & { users: number; applications: number }) | null;
}

/** How long the bench leaves both engines without load before the last memory sample. */
export const SETTLE_SECONDS = 5;

export function bestOf(rounds: readonly Measurement[]): Measurement | undefined {
  return rounds.reduce<Measurement | undefined>(
    (best, round) => (!best || round.rate > best.rate ? round : best),
    undefined,
  );
}

/**
 * With `--count-instructions`: the round of median instructions per unit (the lower middle one of an
 * even number). A round that a garbage collection of the old generation falls into counts it whole;
 * the median neither keeps nor drops such a round by chance.
 */
export function medianByInstructions(rounds: readonly Measurement[]): Measurement | undefined {
  const sorted = rounds
    .filter((round) => round.instructionsPerUnit !== undefined)
    .sort((a, b) => a.instructionsPerUnit! - b.instructionsPerUnit!);
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

const number = (value: number, digits = 0) =>
  Number.isFinite(value)
    ? value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : '—';
const cpu = (m: Measurement | undefined) => (m ? number(m.cpuMsPerUnit, 2) : '—');
const latency = (m: Measurement | undefined) => (m ? `${number(m.p50Ms, 1)} / ${number(m.p99Ms, 1)}` : '—');

/**
 * The machine's CPU per unit of each workload's best rounds (`CpuShares`): what the engines, aa-oidc's
 * PostgreSQL backends and the load generator spent, and the ratios the CPU allows.
 */
function formatCpuShares(report: BenchReport): string[] {
  const measured = report.workloads.filter((workload) => workload.cpu);
  if (measured.length === 0) return [];
  const postgres = report.database === 'postgres';
  const lines = [
    '',
    `Machine CPU per unit in ms (each engine's best round; the engines${postgres ? ', the PostgreSQL server' : ''} and the load generator share the ${report.machine.cpus} cores):`,
    '',
    `| workload | bare engine + load generator | aa-oidc${postgres ? ' + PostgreSQL' : ''} + load generator | CPU ratio | at the bare engine's cost |`,
    '|---|---:|---:|---:|---:|',
  ];
  for (const workload of measured) {
    const cpu = workload.cpu!;
    lines.push(
      `| ${workload.title} | ${number(cpu.bare.engine, 3)} + ${number(cpu.bare.load, 3)} ` +
        `| ${number(cpu.aaOidc.engine, 3)}${postgres ? ` + ${number(cpu.aaOidc.database, 3)}` : ''} + ${number(cpu.aaOidc.load, 3)} ` +
        `| ${number(cpu.cpuRatio, 2)} | ${number(cpu.ceiling, 2)} |`,
    );
  }
  lines.push(
    '',
    "CPU ratio: what the ratio of rates comes to when the cores are the limit. At the bare engine's cost: " +
      `the most the ratio could be if aa-oidc's own process spent exactly the bare engine's CPU per unit${postgres ? ' (PostgreSQL and the load generator unchanged)' : ''}.`,
  );
  return lines;
}

const ENGINE_NAMES: readonly EngineName[] = ['bare', 'aa-oidc'];

/**
 * Each engine's CPU per unit of each workload's best round, by kind of thread: which of the engine's
 * threads spend the difference between the engines.
 */
function formatThreadCpu(report: BenchReport): string[] {
  const measured = report.workloads.filter((workload) =>
    ENGINE_NAMES.some((engine) => workload.best[engine]?.threadCpuMsPerUnit),
  );
  if (measured.length === 0) return [];
  const lines = [
    '',
    "Each engine's CPU per unit by thread, in ms (the best rounds): the event loop's thread, V8's helpers " +
      "(garbage collection, compilation), worker threads (aa-oidc's SQLite write worker), libuv's pool (crypto, argon2), other:",
    '',
    `| workload | engine | ${THREAD_GROUPS.join(' | ')} |`,
    `|---|---|${THREAD_GROUPS.map(() => '---:').join('|')}|`,
  ];
  for (const workload of measured) {
    for (const engine of ENGINE_NAMES) {
      const threads = workload.best[engine]?.threadCpuMsPerUnit;
      if (!threads) continue;
      lines.push(
        `| ${workload.title} | ${engine === 'bare' ? 'bare engine' : engine} | ${THREAD_GROUPS.map((group) => number(threads[group] ?? 0, 3)).join(' | ')} |`,
      );
    }
  }
  return lines;
}

/**
 * With `--count-instructions`: instructions per unit of each engine and their ratio. Times, rates and
 * memory under valgrind are valgrind's (30–60 times slower, its own memory): none is shown.
 */
function formatInstructionsReport(report: BenchReport): string {
  const millions = (m: Measurement | undefined) =>
    m?.instructionsPerUnit === undefined ? '—' : number(m.instructionsPerUnit / 1e6, 2);
  const lines = [
    `${report.date} · commit ${report.commit} · Node ${report.node} · ${report.database}${describeServer(report)} · ` +
      `instructions under callgrind: ${String(report.options.units)} units per round after ${String(report.options.warmupUnits)} unmeasured, ` +
      `${String(report.options.rounds)} rounds (the median), ${String(report.options.connections)} connection(s)`,
    '',
    '| workload | unit | bare engine M instructions/unit | aa-oidc M instructions/unit | aa-oidc / bare |',
    '|---|---|---:|---:|---:|',
  ];
  for (const workload of report.workloads) {
    const ratio = workload.instructionsRatio;
    lines.push(
      `| ${workload.title}${workload.bareNote ? ' ¹' : ''}${workload.failures > 0 ? ` ⚠ ${workload.failures} failed` : ''} | ${workload.unit.replace('/s', '')} ` +
        `| ${millions(workload.best.bare)} | ${millions(workload.best['aa-oidc'])} | ${ratio === null || ratio === undefined ? '—' : number(ratio, 2)} |`,
    );
  }
  const notes = report.workloads.filter((workload) => workload.bareNote);
  if (notes.length > 0)
    lines.push('', ...notes.map((workload) => `¹ ${workload.title}: ${workload.bareNote}.`));
  lines.push(
    '',
    'Instructions of the engine processes only (every thread), in user space: not the kernel, not time waiting, not PostgreSQL. ' +
      "Times, rates and memory under valgrind are not the engines' and are not shown (the JSON report keeps the raw figures).",
  );
  return `${lines.join('\n')}\n`;
}

/** PostgreSQL's version, and autovacuum when it was off (the header of the report). */
function describeServer(report: BenchReport): string {
  const server = report.postgresServer;
  if (!server) return '';
  return ` ${server.version}${server.autovacuum ? '' : ' (autovacuum off)'}`;
}

/** The report as Markdown: the table of docs/performance.md, then the fan-out and memory lines. */
export function formatReport(report: BenchReport): string {
  if (report.options.countInstructions) return formatInstructionsReport(report);
  const lines: string[] = [];
  // CPU ms: the engine process's CPU time per unit, a figure that other load on the machine skews less.
  lines.push(
    `${report.date} · commit ${report.commit} · Node ${report.node} · ${report.database}${describeServer(report)} · ` +
      `${report.machine.cpus} × ${report.machine.model} · load average before ${report.machine.loadBefore.map((l) => l.toFixed(2)).join(' ')}` +
      ` · ${report.options.connections} connections, ${report.options.seconds} s × ${report.options.rounds} rounds (best of)`,
    '',
    '| workload | unit | bare engine | p50 / p99 ms | CPU ms | aa-oidc | p50 / p99 ms | CPU ms | ratio | target |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const workload of report.workloads) {
    const bare = workload.best.bare;
    const aa = workload.best['aa-oidc'];
    lines.push(
      `| ${workload.title}${workload.bareNote ? ' ¹' : ''}${workload.failures > 0 ? ` ⚠ ${workload.failures} failed` : ''} | ${workload.unit} ` +
        `| ${bare ? number(bare.rate) : '—'} | ${latency(bare)} | ${cpu(bare)} | ${aa ? number(aa.rate) : '—'} | ${latency(aa)} | ${cpu(aa)} ` +
        `| ${workload.ratio === null ? '—' : number(workload.ratio, 2)} | ${workload.target === null ? '—' : `≥ ${number(workload.target, 2)}`} |`,
    );
  }
  const notes = report.workloads.filter((workload) => workload.bareNote);
  if (notes.length > 0)
    lines.push('', ...notes.map((workload) => `¹ ${workload.title}: ${workload.bareNote}.`));
  lines.push(...formatCpuShares(report), ...formatThreadCpu(report));
  if (report.fanout) {
    const f = report.fanout;
    lines.push(
      '',
      `Back-channel fan-out (${number(f.users)} users × ${f.applications} applications, one state change): ` +
        `${number(f.distinct)} of ${number(f.expected)} delivered, ${number(f.lost)} lost, ${number(f.duplicates)} sent twice, ` +
        `${number(f.invalid)} invalid; state change ${number(f.commandSeconds, 1)} s, drained in ${number(f.drainSeconds, 1)} s ` +
        `after the command started, ${number(f.deliveriesPerSecond)} deliveries/s; CPU: the command ${number(f.commandCpuSeconds, 1)} s, ` +
        `the server ${number(f.serverCpuSeconds, 1)} s (${number(f.serverCpuMsPerDelivery, 2)} ms per delivery)` +
        `${f.databaseCpuMsPerDelivery === undefined ? '' : `, its PostgreSQL backends ${number(f.databaseCpuMsPerDelivery, 2)} ms per delivery`}` +
        `${f.statementsPerDelivery ? `; ${number(f.statementsPerDelivery.total, 2)} statements per delivery` : ''}.`,
    );
    for (const [text, n] of Object.entries(f.statementsPerDelivery?.byText ?? {}).slice(0, 12))
      lines.push(`    ${number(n, 3)} × ${text}`);
  }
  const mb = (value: number | null) => (value === null ? '—' : `${number(value)} MB`);
  const rss = (engine: EngineName) =>
    `${number(report.rssMb[engine].idle)} MB idle, ${mb(report.rssMb[engine].afterBench)} right after the bench, ` +
    `${mb(report.rssMb[engine].settled)} ${SETTLE_SECONDS} s later`;
  lines.push('', `Resident memory: aa-oidc ${rss('aa-oidc')}; bare engine ${rss('bare')}.`);
  if (report.memory.length > 1)
    lines.push(
      '',
      `aa-oidc's RSS (heap used / reserved) in MB: ${report.memory
        .map(
          (sample) =>
            `${sample.after} ${number(sample.rssMb)} (${sample.heapUsedMb === undefined ? '?' : number(sample.heapUsedMb)} / ${sample.heapTotalMb === undefined ? '?' : number(sample.heapTotalMb)})`,
        )
        .join(', ')}.`,
    );
  return `${lines.join('\n')}\n`;
}
