import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { threadCpuBetween, threadCpuOf, threadGroupOf } from '../../bench/engines.ts';
import { type BenchReport, cpuShares, formatReport, type Measurement } from '../../bench/report.ts';

const measurement = (figures: Partial<Measurement>): Measurement => ({
  rate: 1000,
  p50Ms: 3,
  p99Ms: 12,
  cpuMsPerUnit: 0.1,
  loadCpuMsPerUnit: 0.05,
  completed: 5000,
  failed: 0,
  seconds: 5,
  ...figures,
});

const report = (database: BenchReport['database'], best: ReturnType<typeof bestPair>): BenchReport => ({
  date: '2026-12-03T15:00:00.000Z',
  commit: 'abcdef123456',
  node: '24.21.0',
  database,
  machine: { cpus: 2, model: 'AMD EPYC', loadBefore: [0.5, 0.4, 0.3], loadAfter: [1, 1, 1] },
  options: { connections: 32, seconds: 5, rounds: 3 },
  rssMb: {
    'aa-oidc': { idle: 105, afterBench: 230, settled: 160 },
    bare: { idle: 101, afterBench: 300, settled: 300 },
  },
  memory: [],
  workloads: [
    {
      name: 'client-credentials',
      title: 'client_credentials',
      unit: 'requests/s',
      target: 0.75,
      bareNote: null,
      rounds: { 'aa-oidc': [best['aa-oidc']], bare: [best.bare] },
      best,
      ratio: best['aa-oidc'].rate / best.bare.rate,
      failures: 0,
      cpu: cpuShares(best),
    },
  ],
  fanout: null,
});

const bestPair = (aa: Partial<Measurement>, bare: Partial<Measurement>) => ({
  'aa-oidc': measurement(aa),
  bare: measurement(bare),
});

describe("the bench's machine CPU per unit", () => {
  it('sums each side and gives the ratio the cores allow, and the ceiling at the bare engine’s cost', () => {
    const shares = cpuShares(
      bestPair(
        { cpuMsPerUnit: 0.24, databaseCpuMsPerUnit: 0.09, loadCpuMsPerUnit: 0.05 },
        { cpuMsPerUnit: 0.13, loadCpuMsPerUnit: 0.05 },
      ),
    );
    assert.ok(shares);
    assert.deepEqual(shares.bare, { engine: 0.13, load: 0.05 });
    assert.deepEqual(shares.aaOidc, { engine: 0.24, database: 0.09, load: 0.05 });
    // (0.13 + 0.05) / (0.24 + 0.09 + 0.05) and (0.13 + 0.05) / (0.13 + 0.09 + 0.05).
    assert.ok(Math.abs(shares.cpuRatio - 0.18 / 0.38) < 1e-12);
    assert.ok(Math.abs(shares.ceiling - 0.18 / 0.27) < 1e-12);
  });

  it('counts no database on SQLite (its write worker is a thread of the engine’s process)', () => {
    const shares = cpuShares(
      bestPair({ cpuMsPerUnit: 0.2, loadCpuMsPerUnit: 0.04 }, { cpuMsPerUnit: 0.16, loadCpuMsPerUnit: 0.04 }),
    );
    assert.ok(shares);
    assert.equal(shares.aaOidc.database, 0);
    assert.ok(Math.abs(shares.cpuRatio - 0.2 / 0.24) < 1e-12);
    assert.equal(shares.ceiling, 1);
  });

  it('gives nothing when a side has no CPU figure (an engine that completed nothing)', () => {
    assert.equal(cpuShares(bestPair({ cpuMsPerUnit: Number.NaN }, {})), null);
    assert.equal(cpuShares(bestPair({}, { loadCpuMsPerUnit: 0 })), null);
    assert.equal(cpuShares({ bare: measurement({}) }), null);
  });

  it('prints the shares under the table, with PostgreSQL’s part on PostgreSQL only', () => {
    const pair = bestPair(
      { cpuMsPerUnit: 0.241, databaseCpuMsPerUnit: 0.094, loadCpuMsPerUnit: 0.054 },
      { cpuMsPerUnit: 0.131, loadCpuMsPerUnit: 0.046 },
    );
    const onPostgres = formatReport(report('postgres', pair));
    assert.match(
      onPostgres,
      /\| client_credentials \| 0\.131 \+ 0\.046 \| 0\.241 \+ 0\.094 \+ 0\.054 \| 0\.46 \| 0\.63 \|/,
    );
    assert.match(onPostgres, /aa-oidc \+ PostgreSQL \+ load generator/);
    const withoutDatabase = bestPair(
      { cpuMsPerUnit: 0.241, loadCpuMsPerUnit: 0.054 },
      { cpuMsPerUnit: 0.131, loadCpuMsPerUnit: 0.046 },
    );
    const onSqlite = formatReport(report('sqlite', withoutDatabase));
    assert.match(
      onSqlite,
      /\| client_credentials \| 0\.131 \+ 0\.046 \| 0\.241 \+ 0\.054 \| 0\.60 \| 0\.96 \|/,
    );
    assert.doesNotMatch(onSqlite, /PostgreSQL/);
  });

  it('names the PostgreSQL server’s version in the header, and autovacuum when it was off', () => {
    const pair = bestPair({ cpuMsPerUnit: 0.241, loadCpuMsPerUnit: 0.054 }, { cpuMsPerUnit: 0.131 });
    const header = (server: { version: string; autovacuum: boolean }) =>
      formatReport({ ...report('postgres', pair), postgresServer: server }).split('\n')[0]!;
    assert.match(header({ version: '15.19', autovacuum: false }), / · postgres 15\.19 \(autovacuum off\) · /);
    assert.match(header({ version: '15.19', autovacuum: true }), / · postgres 15\.19 · /);
    assert.match(formatReport(report('sqlite', pair)).split('\n')[0]!, / · sqlite · /);
  });
});

describe("the bench's CPU per unit by thread", () => {
  it('names each thread by what it does, the process’s own id being its main thread', () => {
    assert.equal(threadGroupOf(100, 100, 'MainThread'), 'main');
    assert.equal(threadGroupOf(100, 100, 'node'), 'main');
    assert.equal(threadGroupOf(100, 101, 'V8Worker'), 'V8 helpers');
    assert.equal(threadGroupOf(100, 102, 'WorkerThread'), 'worker threads');
    assert.equal(threadGroupOf(100, 103, 'libuv-worker'), 'libuv pool');
    assert.equal(threadGroupOf(100, 104, 'SignalInspector'), 'other');
  });

  it('sums each thread’s growth by group, a thread started since counting from zero', () => {
    const before = new Map([
      [1, { group: 'main' as const, seconds: 2 }],
      [2, { group: 'V8 helpers' as const, seconds: 0.5 }],
      [3, { group: 'V8 helpers' as const, seconds: 0.25 }],
      [9, { group: 'other' as const, seconds: 4 }],
    ]);
    const after = new Map([
      [1, { group: 'main' as const, seconds: 3 }],
      [2, { group: 'V8 helpers' as const, seconds: 0.75 }],
      [3, { group: 'V8 helpers' as const, seconds: 0.5 }],
      [4, { group: 'worker threads' as const, seconds: 0.125 }],
    ]);
    assert.deepEqual(threadCpuBetween(before, after), {
      main: 1,
      'V8 helpers': 0.5,
      'worker threads': 0.125,
    });
  });

  it('reads a live process’s threads: the CPU a worker thread spends lands in its group', async () => {
    const before = threadCpuOf(process.pid);
    assert.equal(before.get(process.pid)?.group, 'main');
    // The worker spins until told to stop; the test reads the threads until the worker's group shows
    // 0.1 s (ten clock ticks), however the machine's other load shares the cores out. Only a worker's
    // CPU counted elsewhere, or not at all, keeps it from ever showing.
    const stop = new Int32Array(new SharedArrayBuffer(4));
    const worker = new Worker(
      'const { workerData } = require("node:worker_threads"); let x = 0; while (Atomics.load(workerData, 0) === 0) x += Math.sqrt(x + 1);',
      { eval: true, workerData: stop },
    );
    try {
      await new Promise<void>((resolve, reject) => {
        worker.once('error', reject);
        worker.once('online', () => resolve());
      });
      let spent = threadCpuBetween(before, threadCpuOf(process.pid));
      for (let tries = 0; tries < 600 && (spent['worker threads'] ?? 0) < 0.1; tries += 1) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        spent = threadCpuBetween(before, threadCpuOf(process.pid));
      }
      assert.ok((spent['worker threads'] ?? 0) >= 0.1, JSON.stringify(spent));
    } finally {
      Atomics.store(stop, 0, 1);
      await new Promise((resolve) => worker.once('exit', resolve));
    }
  });

  it('prints both engines’ threads under the CPU shares', () => {
    const pair = bestPair(
      {
        cpuMsPerUnit: 0.24,
        threadCpuMsPerUnit: {
          main: 0.149,
          'V8 helpers': 0.055,
          'worker threads': 0.035,
          'libuv pool': 0.001,
        },
      },
      { cpuMsPerUnit: 0.13, threadCpuMsPerUnit: { main: 0.107, 'V8 helpers': 0.02 } },
    );
    const printed = formatReport(report('sqlite', pair));
    assert.match(
      printed,
      /\| workload \| engine \| main \| V8 helpers \| worker threads \| libuv pool \| other \|/,
    );
    assert.match(
      printed,
      /\| client_credentials \| bare engine \| 0\.107 \| 0\.020 \| 0\.000 \| 0\.000 \| 0\.000 \|/,
    );
    assert.match(
      printed,
      /\| client_credentials \| aa-oidc \| 0\.149 \| 0\.055 \| 0\.035 \| 0\.001 \| 0\.000 \|/,
    );
    assert.ok(printed.indexOf('Machine CPU per unit') < printed.indexOf('CPU per unit by thread'));
    assert.doesNotMatch(formatReport(report('sqlite', bestPair({}, {}))), /by thread/);
  });
});
