/**
 * `npm run bench`: aa-oidc side by side with a bare oidc-provider of the same version, on loopback,
 * in alternating rounds; prints a Markdown table and writes the same as JSON under bench/results/.
 * A benchmark, not a test: it never runs in `npm test`. See docs/performance.md.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { numberOption } from './options.ts';
import { type EngineName, ROOT, type RunningEngine, THREAD_GROUPS, type ThreadGroup } from './engines.ts';
import { runFanout } from './fanout.ts';
import {
  type BenchReport,
  bestOf,
  cpuShares,
  formatReport,
  medianByInstructions,
  type Measurement,
  type MemorySample,
  SETTLE_SECONDS,
  summarize,
  type WorkloadReport,
} from './report.ts';
import { checkValgrind } from './instruction-counter.ts';
import { type BenchSetup, startBenchSetup } from './setup.ts';
import { WORKLOADS } from './workloads.ts';

const FANOUT_APPLICATIONS = 5;

/** Workloads `--count-instructions` leaves out, and why. */
const NOT_UNDER_CALLGRIND: Record<string, string> = {
  'password-login':
    'each login hashes a password with argon2 (19 MiB, several passes), minutes of valgrind for a few hundred logins',
  fanout:
    'the fan-out runs a separate state-change command and thousands of deliveries, hours under valgrind',
};

interface Options {
  databaseUrl?: string;
  seconds: number;
  connections: number;
  rounds: number;
  warmup: number;
  only?: string[];
  fanout: boolean;
  fanoutUsers: number;
  cpuProf?: string;
  countStatements: boolean;
  countAllocation: boolean;
  countInstructions: boolean;
  units: number;
  warmupUnits: number;
  out: string;
  keep: boolean;
}

/** A number option of the bench: whole unless `integer` is false, above 0. */
function positive(name: string, integer = true) {
  return numberOption(name, { integer, positive: true });
}

/** A number option of the bench that may be 0 (no warm-up). */
function zeroOrMore(name: string, integer = true) {
  return numberOption(name, { integer, positive: false });
}

function parseOptions(argv: string[]): Options {
  const names = [...WORKLOADS.map((workload) => workload.name), 'fanout'];
  const program = new Command('npm run bench --')
    .description(
      'aa-oidc side by side with a bare oidc-provider of the same version (see docs/performance.md)',
    )
    .option(
      '--database-url <url>',
      'PostgreSQL: a server URL whose user may create databases; the bench creates a fresh database beside it and drops it afterwards (default: SQLite in a temporary folder)',
    )
    .option('--seconds <n>', 'seconds per measurement', positive('--seconds', false), 5)
    .option(
      '--connections <n>',
      'concurrent connections of the load generator',
      positive('--connections'),
      32,
    )
    .option('--rounds <n>', 'alternating rounds per workload (the best counts)', positive('--rounds'), 3)
    .option(
      '--warmup <seconds>',
      'unmeasured load on each engine before the first round',
      zeroOrMore('--warmup', false),
      1,
    )
    .option('--only <names>', `comma-separated workloads to run: ${names.join(', ')}`, (value: string) => {
      const list = value.split(',').map((name) => name.trim());
      const unknown = list.filter((name) => !names.includes(name));
      if (unknown.length > 0)
        throw new InvalidArgumentError(`unknown workload ${unknown.join(', ')}; one of ${names.join(', ')}`);
      return list;
    })
    .option('--no-fanout', 'skip the back-channel fan-out')
    .option(
      '--fanout-users <n>',
      'users deactivated at once in the fan-out (each has tokens at 5 applications)',
      positive('--fanout-users'),
      5000,
    )
    .option(
      '--cpu-prof <dir>',
      'write CPU profiles (node --cpu-prof) of the aa-oidc server and of the fan-out state change command into this folder, and of the bare engine into its bare/ subfolder',
    )
    .option(
      '--count-statements',
      'count the SQL statements aa-oidc runs per unit (bench/statement-counter.ts, loaded into the server); printed with each measurement, and by SQL text in the JSON report',
      false,
    )
    .option(
      '--count-allocation',
      "measure the bytes each engine allocates per unit, by place (bench/allocation-counter.ts, V8's sampling heap profiler, loaded into both servers); printed with each measurement, and in the JSON report",
      false,
    )
    .option(
      '--count-instructions',
      `count the machine instructions each engine executes per unit instead of timing it: both run under valgrind's callgrind (bench/instruction-counter.ts); each round is a fixed number of units (--units) from one connection unless --connections is given, the count switched on just before its first request and off 0.75 s after its last response (the work a response leaves behind, such as batched audit writes, included); the median of --rounds rounds is the figure. Times are then valgrind's and not reported; --seconds and --warmup do not apply; ${Object.keys(NOT_UNDER_CALLGRIND).join(' and ')} are skipped. Needs valgrind`,
      false,
    )
    .option(
      '--units <n>',
      'with --count-instructions: units (requests, flows) counted per round',
      positive('--units'),
      200,
    )
    .option(
      '--warmup-units <n>',
      'with --count-instructions: unmeasured units on each engine before its first round',
      zeroOrMore('--warmup-units'),
      100,
    )
    .option('--out <dir>', 'where the JSON report goes', path.join(ROOT, 'bench/results'))
    .option('--keep', 'keep the working folder (database, logs) under .bench/')
    .showHelpAfterError()
    .parse(argv);
  const options = program.opts<Options>();
  if (options.countInstructions && program.getOptionValueSource('connections') === 'default')
    options.connections = 1;
  if (options.countInstructions && options.units === 0)
    program.error('error: --units must be at least 1 with --count-instructions');
  return options;
}

const progress = (message: string) => process.stderr.write(`[bench] ${message}\n`);

/** The engine with no counter attached: warm-up units are neither counted nor timed. */
function withoutCounters(engine: RunningEngine): RunningEngine {
  const { statements: _statements, allocation: _allocation, instructions: _instructions, ...rest } = engine;
  return rest;
}

function gitCommit(): string {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], {
      cwd: ROOT,
      encoding: 'utf8',
    }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], {
      cwd: ROOT,
      encoding: 'utf8',
    }).trim();
    return dirty ? `${commit}+changes` : commit;
  } catch {
    return 'unknown';
  }
}

/**
 * aa-oidc's memory now: its resident set (from /proc) and its V8 heap, used and reserved, by space
 * where it matters (from its /metrics listener, prom-client's default metrics).
 */
async function memoryOf(engine: RunningEngine, metricsPort: number, after: string): Promise<MemorySample> {
  const rssMb = engine.rssMb();
  const sample: MemorySample = { after, rssMb };
  try {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const mb = (name: string, labels = '') => {
      const value = new RegExp(
        `^${name}${labels ? `\\{[^}]*${labels}[^}]*\\}` : '(?:\\{[^}]*\\})?'} (\\S+)$`,
        'm',
      ).exec(text)?.[1];
      return value === undefined ? undefined : Number(value) / 2 ** 20;
    };
    const heap = {
      heapUsedMb: mb('nodejs_heap_size_used_bytes'),
      heapTotalMb: mb('nodejs_heap_size_total_bytes'),
      externalMb: mb('nodejs_external_memory_bytes'),
      newSpaceMb: mb('nodejs_heap_space_size_total_bytes', 'space="new"'),
      oldSpaceMb: mb('nodejs_heap_space_size_total_bytes', 'space="old"'),
    };
    for (const [key, value] of Object.entries(heap))
      if (value !== undefined) sample[key as keyof typeof heap] = value;
  } catch {
    // the heap is unknown; the resident set is still worth reporting
  }
  return sample;
}

/** CPU ms per unit of the kinds of thread that used any, e.g. `main 0.150, V8 helpers 0.030`. */
const describeThreads = (threads: Partial<Record<ThreadGroup, number>>) =>
  THREAD_GROUPS.filter((group) => (threads[group] ?? 0) >= 0.0005)
    .map((group) => `${group} ${threads[group]!.toFixed(3)}`)
    .join(', ');

const describeMemory = (sample: MemorySample) => {
  const mb = (value: number | undefined) => (value === undefined ? '?' : value.toFixed(0));
  return (
    `RSS ${mb(sample.rssMb)} MB (heap ${mb(sample.heapUsedMb)} MB used of ${mb(sample.heapTotalMb)} MB: ` +
    `new space ${mb(sample.newSpaceMb)}, old space ${mb(sample.oldSpaceMb)}; external ${mb(sample.externalMb)} MB)`
  );
};

async function main(): Promise<void> {
  const options = parseOptions(process.argv);
  const chosen = (name: string) => !options.only || options.only.includes(name);
  const selected = (name: string) =>
    chosen(name) && !(options.countInstructions && NOT_UNDER_CALLGRIND[name]);
  const fanoutEnabled = options.fanout && selected('fanout');
  if (options.countInstructions) {
    await checkValgrind();
    for (const [name, why] of Object.entries(NOT_UNDER_CALLGRIND))
      if (chosen(name) && (name !== 'fanout' || options.fanout))
        progress(`--count-instructions: ${name} skipped (${why})`);
  }
  const loadBefore = os.loadavg();
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const workDir = path.join(ROOT, '.bench', `run-${stamp}`);
  mkdirSync(workDir, { recursive: true });
  progress(
    `working folder ${path.relative(ROOT, workDir)}; load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')}`,
  );

  const nodeArgs = options.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(options.cpuProf)}`] : [];
  const bareNodeArgs = options.cpuProf
    ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(options.cpuProf, 'bare')}`]
    : [];
  let setup: BenchSetup | undefined;
  try {
    setup = await startBenchSetup({
      workDir,
      ...(options.databaseUrl ? { databaseUrl: options.databaseUrl } : {}),
      connections: options.connections,
      fanoutApplications: fanoutEnabled ? FANOUT_APPLICATIONS : 0,
      fanoutUsers: options.fanoutUsers,
      nodeArgs,
      bareNodeArgs,
      ...(options.countStatements ? { statementsFile: path.join(workDir, 'statements.json') } : {}),
      ...(options.countAllocation
        ? {
            allocationFile: path.join(workDir, 'allocation.json'),
            bareAllocationFile: path.join(workDir, 'bare-allocation.json'),
          }
        : {}),
      ...(options.countInstructions
        ? {
            callgrindFile: path.join(workDir, 'aa-oidc.callgrind'),
            bareCallgrindFile: path.join(workDir, 'bare.callgrind'),
          }
        : {}),
      progress,
    });
    const { database, postgresServer, env, metricsPort, seeded, engines, targets, receivers } = setup;
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const rssMb: BenchReport['rssMb'] = {
      'aa-oidc': { idle: engines['aa-oidc'].rssMb(), afterBench: null, settled: null },
      bare: { idle: engines.bare.rssMb(), afterBench: null, settled: null },
    };
    // aa-oidc's memory at idle and after every workload: where the resident set grows, and whether
    // it is V8's heap or native memory.
    const memory: MemorySample[] = [await memoryOf(engines['aa-oidc'], metricsPort, 'idle')];
    progress(`idle: aa-oidc ${describeMemory(memory[0]!)}, bare ${rssMb.bare.idle.toFixed(0)} MB`);

    const workloads: WorkloadReport[] = [];
    for (const workload of WORKLOADS.filter((w) => selected(w.name))) {
      const rounds: Partial<Record<EngineName, Measurement[]>> = {};
      for (const name of workload.engines) {
        if (options.countInstructions) {
          if (options.warmupUnits > 0)
            await workload.measure(
              { ...targets[name], engine: withoutCounters(targets[name].engine) },
              { seconds: 0, connections: options.connections, units: options.warmupUnits },
            );
        } else if (options.warmup > 0)
          await workload.measure(targets[name], {
            seconds: options.warmup,
            connections: options.connections,
          });
      }
      for (let round = 1; round <= options.rounds; round += 1) {
        // Alternate which engine goes first, so that neither always follows the other's load.
        const order = round % 2 === 1 ? workload.engines : [...workload.engines].reverse();
        for (const name of order) {
          const measured = summarize(
            await workload.measure(targets[name], {
              seconds: options.seconds,
              connections: options.connections,
              ...(options.countInstructions ? { units: options.units } : {}),
            }),
          );
          (rounds[name] ??= []).push(measured);
          if (measured.instructionsPerUnit !== undefined) {
            progress(
              `${workload.name} round ${round} ${name}: ${(measured.instructionsPerUnit / 1e6).toFixed(3)} M instructions/unit over ${measured.completed} ${workload.unit.replace('/s', '')}` +
                `${measured.failed ? `, ${measured.failed} FAILED (${measured.firstFailure ?? ''})` : ''}`,
            );
            continue;
          }
          progress(
            `${workload.name} round ${round} ${name}: ${measured.rate.toFixed(0)} ${workload.unit}, p50 ${measured.p50Ms.toFixed(1)} ms, ` +
              `p99 ${measured.p99Ms.toFixed(1)} ms, CPU ${measured.cpuMsPerUnit.toFixed(2)} ms/unit` +
              `${measured.databaseCpuMsPerUnit !== undefined ? ` (+ PostgreSQL ${measured.databaseCpuMsPerUnit.toFixed(2)})` : ''}` +
              `, load generator ${measured.loadCpuMsPerUnit.toFixed(2)}` +
              `${measured.threadCpuMsPerUnit ? ` (threads: ${describeThreads(measured.threadCpuMsPerUnit)})` : ''}` +
              `${measured.statementsPerUnit ? `, ${measured.statementsPerUnit.total.toFixed(2)} statements/unit` : ''}${measured.failed ? `, ${measured.failed} FAILED (${measured.firstFailure ?? ''})` : ''}`,
          );
          for (const [text, n] of Object.entries(measured.statementsPerUnit?.byText ?? {}).slice(0, 12))
            progress(`    ${n.toFixed(2)} × ${text}`);
          if (measured.allocationPerUnit)
            progress(
              `    allocated ${(measured.allocationPerUnit.total / 1024).toFixed(1)} KB/unit: ` +
                Object.entries(measured.allocationPerUnit.byText)
                  .slice(0, 10)
                  .map(([place, bytes]) => `${place} ${(bytes / 1024).toFixed(1)}`)
                  .join(', '),
            );
        }
      }
      const best: WorkloadReport['best'] = {};
      for (const name of workload.engines)
        best[name] = options.countInstructions
          ? medianByInstructions(rounds[name] ?? [])
          : bestOf(rounds[name] ?? []);
      workloads.push({
        name: workload.name,
        title: workload.title,
        unit: workload.unit,
        target: workload.target ?? null,
        bareNote: workload.bareNote ?? null,
        rounds,
        best,
        ratio: best['aa-oidc'] && best.bare ? best['aa-oidc'].rate / best.bare.rate : null,
        ...(options.countInstructions ? {} : { cpu: cpuShares(best) }),
        ...(options.countInstructions
          ? {
              instructionsRatio:
                best['aa-oidc']?.instructionsPerUnit && best.bare?.instructionsPerUnit
                  ? best['aa-oidc'].instructionsPerUnit / best.bare.instructionsPerUnit
                  : null,
            }
          : {}),
        failures: Object.values(rounds)
          .flat()
          .reduce((sum, m) => sum + m.failed, 0),
      });
      memory.push(await memoryOf(engines['aa-oidc'], metricsPort, workload.name));
      progress(`after ${workload.name}: aa-oidc ${describeMemory(memory.at(-1)!)}`);
    }

    let fanout: BenchReport['fanout'] = null;
    if (receivers) {
      progress(
        `back-channel fan-out: ${seeded.fanout.users} users × ${seeded.fanout.clientIds.length} applications`,
      );
      const result = await runFanout({
        receivers,
        clientIds: seeded.fanout.clientIds,
        engine: engines['aa-oidc'],
        env,
        state: seeded.fanout.state,
        expected: seeded.fanout.users * seeded.fanout.clientIds.length,
        logFile: path.join(workDir, 'state-change.log'),
        nodeArgs,
      });
      fanout = { ...result, users: seeded.fanout.users, applications: seeded.fanout.clientIds.length };
    }

    if (fanout) memory.push(await memoryOf(engines['aa-oidc'], metricsPort, 'fanout'));
    rssMb['aa-oidc'].afterBench = engines['aa-oidc'].rssMb();
    progress(`after the bench: aa-oidc ${describeMemory(memory.at(-1)!)}`);
    rssMb.bare.afterBench = engines.bare.rssMb();
    // The same a few seconds later, without load: a burst's memory that the process hands back once
    // quiet is not memory it holds.
    await new Promise((resolve) => setTimeout(resolve, SETTLE_SECONDS * 1000));
    memory.push(await memoryOf(engines['aa-oidc'], metricsPort, `${SETTLE_SECONDS} s later`));
    rssMb['aa-oidc'].settled = engines['aa-oidc'].rssMb();
    rssMb.bare.settled = engines.bare.rssMb();
    progress(`${SETTLE_SECONDS} s later: aa-oidc ${describeMemory(memory.at(-1)!)}`);

    const report: BenchReport = {
      date: new Date().toISOString(),
      commit: gitCommit(),
      node: process.versions.node,
      database,
      ...(postgresServer ? { postgresServer } : {}),
      machine: {
        cpus: os.cpus().length,
        model: os.cpus()[0]?.model.trim() ?? 'unknown',
        loadBefore,
        loadAfter: os.loadavg(),
      },
      options: {
        seconds: options.seconds,
        connections: options.connections,
        rounds: options.rounds,
        warmup: options.warmup,
        fanoutUsers: fanoutEnabled ? options.fanoutUsers : 0,
        only: options.only ?? null,
        countInstructions: options.countInstructions,
        ...(options.countInstructions ? { units: options.units, warmupUnits: options.warmupUnits } : {}),
      },
      rssMb,
      memory,
      workloads,
      fanout,
    };
    mkdirSync(options.out, { recursive: true });
    const file = path.join(options.out, `${stamp}-${database}.json`);
    writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
    process.stdout.write(formatReport(report));
    progress(`JSON report: ${path.relative(ROOT, file)}`);
  } finally {
    await setup?.stop();
    if (!options.keep && !options.cpuProf) rmSync(workDir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${(error as Error).stack ?? String(error)}\n`);
  process.exitCode = 1;
});
