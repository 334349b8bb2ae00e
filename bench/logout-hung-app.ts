/**
 * `npm run bench:logout-hung-app`: how long back-channel logouts to healthy applications take while
 * one application never answers. `--users` users each hold a token at every application; all are
 * deactivated at once (one transaction each, through the directory service, as `user deactivate`
 * does), which queues one logout per user and application. A worker with `--concurrency` lanes
 * delivers them to receivers on loopback: the first application's receiver reads each request and
 * never answers (a relying party that hangs, or a firewall that drops the answer), the others answer
 * at once. Reported: when every healthy application had all of its logouts, and what arrived at each
 * second. A benchmark, not a test: it never runs in `npm test`. See docs/performance.md.
 *
 *   node bench/logout-hung-app.ts [--users 200] [--apps 3] [--concurrency 32] [--request-timeout-ms 2000]
 *
 * Runs on SQLite in a temporary folder, or on PostgreSQL with `--database-url` (a server URL whose
 * user may create databases; a fresh database is made beside it and dropped afterwards).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import pg from 'pg';
import { loadConfig } from '../src/config/load.ts';
import { createServices } from '../src/services.ts';
import { numberOption } from './options.ts';

const options = new Command('node bench/logout-hung-app.ts')
  .description('back-channel logouts to healthy applications while one application never answers')
  .option('--users <n>', 'users deactivated', numberOption('--users', { integer: true, positive: true }), 200)
  .option(
    '--apps <n>',
    'applications (the first one hangs)',
    numberOption('--apps', { integer: true, positive: true }),
    3,
  )
  .option(
    '--concurrency <n>',
    "the worker's attempts in flight",
    numberOption('--concurrency', { integer: true, positive: true }),
    32,
  )
  .option(
    '--request-timeout-ms <n>',
    'logout.requestTimeoutMs: how long an attempt waits for an answer',
    numberOption('--request-timeout-ms', { integer: true, positive: true }),
    2000,
  )
  .option(
    '--give-up <seconds>',
    'stop waiting after',
    numberOption('--give-up', { integer: false, positive: true }),
    120,
  )
  .option('--database-url <url>', 'PostgreSQL server URL (default: SQLite in a temporary folder)')
  .parse()
  .opts<{
    users: number;
    apps: number;
    concurrency: number;
    requestTimeoutMs: number;
    giveUp: number;
    databaseUrl?: string;
  }>();
if (options.apps < 2) {
  process.stderr.write(
    'error: --apps must be at least 2: one application that hangs, one or more that answer\n',
  );
  process.exit(1);
}

/** A receiver on 127.0.0.1 that counts requests; answers at once unless `hang`. */
async function receiver(hang: boolean): Promise<{ url: string; received: () => number; server: Server }> {
  let received = 0;
  const server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      received += 1;
      if (!hang) response.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}/backchannel-logout`, received: () => received, server };
}

const folder = mkdtempSync(path.join(os.tmpdir(), 'aa-oidc-bench-hung-'));
const databaseName = `aa_oidc_bench_hung_${randomBytes(4).toString('hex')}`;
let admin: pg.Client | undefined;
let databaseUrl = `sqlite:${path.join(folder, 'bench.sqlite')}`;
if (options.databaseUrl) {
  admin = new pg.Client({ connectionString: options.databaseUrl });
  await admin.connect();
  await admin.query(`create database ${databaseName}`);
  const url = new URL(options.databaseUrl);
  url.pathname = `/${databaseName}`;
  databaseUrl = url.href;
}
const receivers = await Promise.all(
  Array.from({ length: options.apps }, (_, index) => receiver(index === 0)),
);
try {
  const config = loadConfig({
    env: {},
    overrides: {
      databaseUrl,
      dataDir: folder,
      secretKey: 'b'.repeat(32),
      logging: { level: 'warn' },
      logout: { allowPrivateTargets: true, requestTimeoutMs: options.requestTimeoutMs },
    },
  });
  const services = await createServices(config, { migrate: true });
  try {
    const clientIds: string[] = [];
    for (const [index, target] of receivers.entries()) {
      const created = await services.applications.create(
        {
          name: index === 0 ? 'Hangs' : `Answers ${index}`,
          redirectUris: ['https://rp.example.org/cb'],
          backchannelLogoutUri: target.url,
        },
        'bench',
      );
      clientIds.push(created.application.clientId);
    }
    const userIds: number[] = [];
    for (let index = 0; index < options.users; index += 1) {
      const profile = await services.directoryAdmin.createUser({
        username: `pilot${index}`,
        oidcAccess: true,
      });
      const userId = profile.user.id;
      userIds.push(userId);
      // A live access token at every application, as the provider's adapter stores one.
      await services.database.db
        .insertInto('oidc_payload')
        .values(
          clientIds.map((clientId, app) => ({
            model: 'AccessToken',
            id: `bench-${userId}-${app}`,
            payload: '{}',
            grant_id: `grant-${userId}-${app}`,
            user_id: String(userId),
            client_id: clientId,
            uid: null,
            user_code: null,
            expires_at: Date.now() + 3_600_000,
            consumed_at: null,
          })),
        )
        .execute();
    }
    for (const id of userIds) await services.directoryAdmin.deactivate({ id }, { actor: 'bench' });

    const healthy = receivers.slice(1);
    const expected = options.users * healthy.length;
    const healthyReceived = () => healthy.reduce((sum, target) => sum + target.received(), 0);
    process.stdout.write(
      `${options.users} users deactivated: ${options.users} logouts queued for each of ${options.apps} applications; ` +
        `the first never answers (request timeout ${options.requestTimeoutMs} ms); worker with ${options.concurrency} lanes\n`,
    );
    const started = performance.now();
    services.logout.startWorker({ concurrency: options.concurrency, pollIntervalMs: 100 });
    let nextReport = 1000;
    while (healthyReceived() < expected && performance.now() - started < options.giveUp * 1000) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      if (performance.now() - started >= nextReport) {
        process.stdout.write(
          `  ${(nextReport / 1000).toFixed(0)} s: the healthy applications got ${healthyReceived()} of ${expected}; ` +
            `the hung one was sent ${receivers[0]!.received()}\n`,
        );
        nextReport += 1000;
      }
    }
    const seconds = (performance.now() - started) / 1000;
    const done = healthyReceived();
    process.stdout.write(
      done >= expected
        ? `every healthy logout (${expected}) arrived in ${seconds.toFixed(1)} s: ${(expected / seconds).toFixed(0)}/s\n`
        : `gave up after ${seconds.toFixed(0)} s: the healthy applications got ${done} of ${expected}\n`,
    );
  } finally {
    await services.close();
  }
} finally {
  for (const target of receivers) {
    target.server.closeAllConnections();
    await new Promise((resolve) => target.server.close(resolve));
  }
  if (admin) {
    await admin.query(`drop database if exists ${databaseName} with (force)`);
    await admin.end();
  }
  rmSync(folder, { recursive: true, force: true });
}
