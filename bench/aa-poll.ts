/**
 * `npm run bench:aa-poll`: how long one Alliance Auth poll cycle takes with many users. A copy of
 * the Alliance Auth fixture (../shared/fixtures/alliance-auth, AA 4.1's own schema) is loaded into
 * a fresh MariaDB database and grown to `--users` users (each with a profile and a state, a main
 * character owned with an owner hash, one or two groups); aa-oidc's poller then runs against it
 * through a SELECT-only login with its own SQLite database, as `serve` would. Reported: the first
 * cycle (baseline: every fingerprint stored), quiet cycles (nothing changed) and cycles after
 * `--changes` users changed group. A benchmark, not a test: it never runs in `npm test`.
 * See docs/performance.md.
 *
 *   node bench/aa-poll.ts [--users 20000] [--cycles 5] [--changes 100]
 *   AA_OIDC_BENCH_MARIADB_URL=mysql://USER:PASSWORD@127.0.0.1:3306/ (a login that may create databases and users)
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Command } from 'commander';
import { createConnection } from 'mysql2/promise';
import { openAllianceAuthDatabase } from '../src/alliance-auth/database.ts';
import { readFingerprints } from '../src/alliance-auth/fingerprint.ts';
import { createAllianceAuthPoller } from '../src/alliance-auth/poller.ts';
import { loadConfig } from '../src/config/load.ts';
import { connectDatabase } from '../src/db/connect.ts';
import { migrateToLatest } from '../src/db/migrate.ts';

const program = new Command()
  .option('--users <n>', 'users in Alliance Auth', (value) => Number(value), 20_000)
  .option('--cycles <n>', 'quiet cycles and change cycles measured', (value) => Number(value), 5)
  .option(
    '--changes <n>',
    'users whose groups change before each change cycle',
    (value) => Number(value),
    100,
  )
  .parse();
const options = program.opts<{ users: number; cycles: number; changes: number }>();

const SERVER = process.env.AA_OIDC_BENCH_MARIADB_URL ?? 'mysql://aa_oidc_ci:aa-oidc-ci@127.0.0.1:3306/';
// As the tests find it: `shared/` beside the repository, or one level further up (a worktree).
const FIXTURES =
  process.env.AA_OIDC_TEST_AA_FIXTURES ??
  [
    path.resolve(import.meta.dirname, '../../shared/fixtures/alliance-auth'),
    path.resolve(import.meta.dirname, '../../../shared/fixtures/alliance-auth'),
  ].find((candidate) => existsSync(path.join(candidate, 'aa-mariadb.sql'))) ??
  path.resolve(import.meta.dirname, '../../shared/fixtures/alliance-auth');

const suffix = randomBytes(4).toString('hex');
const name = `aa_bench_${suffix}`;
const reader = `aa_bench_reader_${suffix}`;
const readerPassword = randomBytes(12).toString('hex');
const admin = await createConnection({ uri: SERVER, multipleStatements: true });
const dataDir = mkdtempSync(path.join(os.tmpdir(), 'aa-oidc-bench-'));

/** CPU milliseconds the MariaDB server has used (user + system), or undefined when it cannot be read. */
function serverCpuMs(): number | undefined {
  try {
    const pid = execFileSync('pidof', ['mariadbd'], { encoding: 'utf8' }).trim().split(/\s+/)[0];
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return undefined;
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

try {
  process.stdout.write(`loading the fixture and ${options.users} users into MariaDB ${name}…\n`);
  await admin.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4`);
  await admin.query(`USE \`${name}\``);
  await admin.query(readFileSync(path.join(FIXTURES, 'aa-mariadb.sql'), 'utf8'));
  const BATCH = 1000;
  const firstUser = 1000;
  for (let start = 0; start < options.users; start += BATCH) {
    const ids = Array.from(
      { length: Math.min(BATCH, options.users - start) },
      (_, i) => firstUser + start + i,
    );
    await admin.query(
      `INSERT INTO auth_user (id, password, last_login, is_superuser, username, first_name, last_name, email, is_staff, is_active, date_joined) VALUES ${ids
        .map(
          (id) =>
            `(${id}, '!', NULL, 0, 'pilot_${id}', '', '', 'pilot${id}@example.org', 0, ${id % 50 === 0 ? 0 : 1}, '2024-01-01 00:00:00')`,
        )
        .join(',')}`,
    );
    await admin.query(
      `INSERT INTO eveonline_evecharacter (id, character_id, character_name, corporation_id, corporation_name, corporation_ticker, alliance_id, alliance_name, alliance_ticker, faction_id, faction_name) VALUES ${ids
        .map(
          (id) =>
            `(${id}, ${2120000000 + id}, 'Pilot ${id}', 1018389948, 'Dreddit', 'B0RT', 498125261, 'Test Alliance Please Ignore', 'TEST', NULL, NULL)`,
        )
        .join(',')}`,
    );
    await admin.query(
      `INSERT INTO authentication_characterownership (id, character_id, owner_hash, user_id) VALUES ${ids
        .map((id) => `(${id}, ${id}, 'owner-hash-${id}', ${id})`)
        .join(',')}`,
    );
    await admin.query(
      `INSERT INTO authentication_userprofile (id, user_id, main_character_id, state_id, language, night_mode, theme) VALUES ${ids
        .map((id) => `(${id}, ${id}, ${id}, ${id % 3 === 0 ? 3 : 2}, '', NULL, NULL)`)
        .join(',')}`,
    );
    await admin.query(
      `INSERT INTO auth_user_groups (user_id, group_id) VALUES ${ids
        .flatMap((id) => (id % 2 === 0 ? [`(${id}, 1)`, `(${id}, 3)`] : [`(${id}, 2)`]))
        .join(',')}`,
    );
  }
  await admin.query(`CREATE USER '${reader}'@'%' IDENTIFIED BY '${readerPassword}'`);
  await admin.query(`GRANT SELECT, SHOW VIEW ON \`${name}\`.* TO '${reader}'@'%'`);

  const server = new URL(SERVER);
  const aa = openAllianceAuthDatabase(`mysql://${reader}:${readerPassword}@${server.host}/${name}`);
  const config = loadConfig({
    env: {},
    overrides: {
      databaseUrl: `sqlite:${path.join(dataDir, 'bench.sqlite')}`,
      dataDir,
      secretKey: 'b'.repeat(32),
    },
  });
  const ours = await connectDatabase(config.database);
  await migrateToLatest(ours.db, ours.kind);
  let delivered = 0;
  const poller = createAllianceAuthPoller({
    aa,
    db: ours.db,
    intervalMs: 30_000,
    logger: { info() {}, warn() {}, error() {}, debug() {} },
    async apply(_unit, changes) {
      delivered += changes.length;
    },
  });

  /** Wall time, aa-oidc's CPU time and the MariaDB server's CPU time of one piece of work. */
  interface Timing {
    wallMs: number;
    cpuMs: number;
    serverCpuMs: number | undefined;
  }
  const time = async <T>(work: () => Promise<T>): Promise<[Timing, T]> => {
    const serverBefore = serverCpuMs();
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    const result = await work();
    const wallMs = performance.now() - started;
    const cpu = process.cpuUsage(cpuBefore);
    const serverAfter = serverCpuMs();
    return [
      {
        wallMs,
        cpuMs: (cpu.user + cpu.system) / 1000,
        serverCpuMs:
          serverBefore !== undefined && serverAfter !== undefined ? serverAfter - serverBefore : undefined,
      },
      result,
    ];
  };
  await readFingerprints(aa.db); // connections opened, caches warm
  const [query, fingerprints] = await time(() => readFingerprints(aa.db));
  const [baselineTiming, baseline] = await time(() => poller.pollOnce());
  const quiet: Timing[] = [];
  for (let cycle = 0; cycle < options.cycles; cycle += 1)
    quiet.push((await time(() => poller.pollOnce()))[0]);
  const changed: Timing[] = [];
  for (let cycle = 0; cycle < options.cycles; cycle += 1) {
    const users = Array.from(
      { length: options.changes },
      (_, i) => firstUser + (((cycle * options.changes + i) * 7) % options.users),
    );
    // Alternately removed from and given back "Fleet Commanders" (group 2), as a leader would.
    await admin.query(
      cycle % 2 === 0
        ? `DELETE FROM auth_user_groups WHERE group_id = 2 AND user_id IN (${users.join(',')})`
        : `INSERT IGNORE INTO auth_user_groups (user_id, group_id) VALUES ${users.map((id) => `(${id}, 2)`).join(',')}`,
    );
    changed.push((await time(() => poller.pollOnce()))[0]);
  }
  await poller.stop();
  await aa.close();
  await ours.close();

  const [versionRows] = await admin.query('SELECT VERSION() AS v');
  const version = (versionRows as Array<{ v: string }>)[0]?.v ?? '?';
  const round = (ms: number) => `${Math.round(ms)} ms`;
  const cpu = (timing: Timing) =>
    `${round(timing.cpuMs)} CPU in aa-oidc${timing.serverCpuMs === undefined ? '' : `, ${round(timing.serverCpuMs)} CPU in MariaDB (all its clients)`}`;
  /** The median of each measure taken apart. */
  const medianOf = (timings: Timing[]): Timing => ({
    wallMs: median(timings.map((timing) => timing.wallMs)),
    cpuMs: median(timings.map((timing) => timing.cpuMs)),
    serverCpuMs: timings.every((timing) => timing.serverCpuMs !== undefined)
      ? median(timings.map((timing) => timing.serverCpuMs!))
      : undefined,
  });
  const row = (label: string, timings: Timing[]) => {
    const middle = medianOf(timings);
    return `| ${label}, median of ${timings.length} | ${round(middle.wallMs)} (max ${round(Math.max(...timings.map((timing) => timing.wallMs)))}) | ${cpu(middle)} |`;
  };
  process.stdout.write(
    [
      '',
      `| ${fingerprints.size} users (MariaDB ${version}) | wall time | CPU time |`,
      '|---|---|---|',
      `| the fingerprint query alone | ${round(query.wallMs)} | ${cpu(query)} |`,
      `| first cycle (baseline, every fingerprint stored) | ${round(baselineTiming.wallMs)} (${baseline.outcome}) | ${cpu(baselineTiming)} |`,
      row('quiet cycle', quiet),
      row(`cycle after ${options.changes} users changed group`, changed),
      '',
      `${delivered} changes delivered in the change cycles; load average ${os
        .loadavg()
        .map((n) => n.toFixed(1))
        .join(' ')} on ${os.cpus().length} CPUs.`,
      '',
    ].join('\n'),
  );
} finally {
  await admin.query(`DROP DATABASE IF EXISTS \`${name}\``).catch(() => undefined);
  await admin.query(`DROP USER IF EXISTS '${reader}'@'%'`).catch(() => undefined);
  await admin.end();
  rmSync(dataDir, { recursive: true, force: true });
}
