import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
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
