/**
 * `npm run soak -- --minutes N`: aa-oidc (`serve`, as an operator runs it) under a mixed load at a
 * fixed rate on loopback for N minutes — SSO flows (authorize with a signed-in session, then the
 * code exchange), refresh-token rotations, introspections and userinfo calls — reporting per minute
 * the requests answered, the errors, the latency percentiles (p50, p99) and the server's resident
 * memory. Without `--rate`, it first measures the maximum rate of the same mix (closed loop) and
 * then runs at half of it. Not a test: it never runs in `npm test`. See docs/performance.md.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { numberOption } from './options.ts';
import pg from 'pg';
import { Agent, request } from 'undici';
import { loadConfig } from '../src/config/load.ts';
import type { BenchClient } from './common.ts';
import { freePort, ROOT, type RunningEngine, startAaOidc } from './engines.ts';
import {
  authorizationUrl,
  basicAuthorization,
  codeExchangeBody,
  codeFromLocation,
  cookieHeader,
  isSessionCookie,
  signIn,
  type TokenSet,
} from './http.ts';
import { percentile } from './load.ts';
import { seedAaOidc } from './seed.ts';

interface Options {
  minutes: number;
  rate?: number;
  probeSeconds: number;
  databaseUrl?: string;
  out: string;
}

function positive(name: string) {
  return numberOption(name, { integer: false, positive: true });
}

function parseOptions(argv: string[]): Options {
  const program = new Command('npm run soak --')
    .description('aa-oidc under a mixed load at a fixed rate for a while (see docs/performance.md)')
    .option('--minutes <n>', 'how long the fixed-rate load runs', positive('--minutes'), 30)
    .option('--rate <n>', 'operations per second (default: half of the measured maximum)', positive('--rate'))
    .option('--probe-seconds <n>', 'how long the maximum is measured', positive('--probe-seconds'), 30)
    .option(
      '--database-url <url>',
      'PostgreSQL: a server URL whose user may create databases; a fresh database is created beside it and dropped afterwards (default: SQLite in a temporary folder)',
    )
    .option('--out <dir>', 'where the JSON result goes', path.join(ROOT, 'bench', 'results'))
    .parse(['node', 'soak', ...argv]);
  return program.opts<Options>();
}

/** The operations of the mix and their shares (of 20). */
const MIX = [
  ['sso', 2],
  ['refresh', 4],
  ['introspect', 7],
  ['userinfo', 7],
] as const;
type Operation = (typeof MIX)[number][0];
const SCHEDULE: Operation[] = MIX.flatMap(([operation, share]) => Array<Operation>(share).fill(operation));

interface Sample {
  operation: Operation;
  /** Milliseconds from the first request of the operation to its last answer. */
  ms: number;
  ok: boolean;
}

/**
 * The load's client: one signed-in browser session for the SSO flows, and a pool of live grants
 * (an access token and the refresh token that rotates) shared by the other operations. A refresh
 * takes its grant out of the pool while in flight, so a rotated refresh token is never replayed.
 */
class SoakClient {
  readonly #dispatcher: Agent;
  readonly #grants: TokenSet[] = [];
  #next = 0;

  readonly engine: RunningEngine;
  readonly client: BenchClient;
  readonly session: string;

  constructor(engine: RunningEngine, client: BenchClient, session: string) {
    this.engine = engine;
    this.client = client;
    this.session = session;
    this.#dispatcher = new Agent({ connections: 64, keepAliveTimeout: 30_000 });
  }

  async #send(
    url: string,
    init: { method?: 'GET' | 'POST'; headers?: Record<string, string>; body?: string },
  ) {
    const response = await request(url, {
      method: init.method ?? 'GET',
      headers: init.headers ?? {},
      ...(init.body === undefined ? {} : { body: init.body }),
      dispatcher: this.#dispatcher,
    });
    const text = await response.body.text();
    return { status: response.statusCode, headers: response.headers, text };
  }

  async sso(): Promise<boolean> {
    const authorized = await this.#send(authorizationUrl(this.engine.endpoints, this.client), {
      headers: { cookie: this.session },
    });
    const code = codeFromLocation(authorized.headers.location, this.client);
    if (!code) return false;
    const exchanged = await this.#send(this.engine.endpoints.token, {
      method: 'POST',
      headers: {
        authorization: basicAuthorization(this.client),
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: codeExchangeBody(this.client, code),
    });
    if (exchanged.status !== 200) return false;
    this.#grants.push(JSON.parse(exchanged.text) as TokenSet);
    // The pool stays bounded: the oldest grants leave it (their tokens simply expire).
    if (this.#grants.length > 200) this.#grants.splice(0, this.#grants.length - 200);
    return true;
  }

  async refresh(): Promise<boolean> {
    const grant = this.#grants.shift();
    if (!grant) return this.sso();
    const refreshed = await this.#send(this.engine.endpoints.token, {
      method: 'POST',
      headers: {
        authorization: basicAuthorization(this.client),
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: grant.refresh_token!,
      }).toString(),
    });
    if (refreshed.status !== 200) return false;
    this.#grants.push(JSON.parse(refreshed.text) as TokenSet);
    return true;
  }

  #someGrant(): TokenSet | undefined {
    if (this.#grants.length === 0) return undefined;
    this.#next = (this.#next + 1) % this.#grants.length;
    return this.#grants[this.#next];
  }

  async introspect(): Promise<boolean> {
    const grant = this.#someGrant();
    if (!grant) return this.sso();
    const answer = await this.#send(this.engine.endpoints.introspection, {
      method: 'POST',
      headers: {
        authorization: basicAuthorization(this.client),
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ token: grant.access_token }).toString(),
    });
    // A grant refreshed meanwhile has a new access token: inactive is a correct answer too.
    return answer.status === 200 && /"active":(true|false)/.test(answer.text);
  }

  async userinfo(): Promise<boolean> {
    const grant = this.#someGrant();
    if (!grant) return this.sso();
    const answer = await this.#send(this.engine.endpoints.userinfo, {
      headers: { authorization: `Bearer ${grant.access_token}` },
    });
    // 401 when that grant's access token was rotated away by a refresh in flight.
    return answer.status === 200 || answer.status === 401;
  }

  async run(operation: Operation): Promise<Sample> {
    const started = performance.now();
    let ok: boolean;
    try {
      ok = await this[operation]();
    } catch {
      ok = false;
    }
    return { operation, ms: performance.now() - started, ok };
  }

  close(): Promise<void> {
    return this.#dispatcher.close();
  }
}

/** The maximum rate of the mix: `lanes` closed loops for `seconds`. */
async function probeMaximum(client: SoakClient, seconds: number, lanes = 16): Promise<number> {
  let done = 0;
  let turn = 0;
  const until = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: lanes }, async () => {
      while (performance.now() < until) {
        const sample = await client.run(SCHEDULE[turn++ % SCHEDULE.length]!);
        if (sample.ok) done += 1;
      }
    }),
  );
  return done / seconds;
}

interface MinuteReport {
  minute: number;
  operations: number;
  errors: number;
  /** Operations still waiting to start when their time came (the server fell behind). */
  late: number;
  p50Ms: number;
  p99Ms: number;
  byOperation: Record<Operation, { count: number; p50Ms: number; p99Ms: number }>;
  rssMb: number;
}

/**
 * Starts operations at `rate` per second (open loop: each at its time, whether or not earlier ones
 * answered, up to 256 in flight) for `minutes`, and reports each minute.
 */
async function runAtRate(
  client: SoakClient,
  engine: RunningEngine,
  rate: number,
  minutes: number,
  onMinute: (report: MinuteReport) => void,
): Promise<MinuteReport[]> {
  const reports: MinuteReport[] = [];
  const started = performance.now();
  let issued = 0;
  let inFlight = 0;
  let samples: Sample[] = [];
  let late = 0;
  const pending = new Set<Promise<void>>();
  for (let minute = 1; minute <= minutes; minute += 1) {
    const minuteEnds = started + minute * 60_000;
    while (performance.now() < minuteEnds) {
      const due = Math.floor(((performance.now() - started) / 1000) * rate);
      while (issued < due) {
        issued += 1;
        if (inFlight >= 256) {
          late += 1;
          continue;
        }
        inFlight += 1;
        const operation = SCHEDULE[issued % SCHEDULE.length]!;
        const task = client.run(operation).then((sample) => {
          inFlight -= 1;
          samples.push(sample);
        });
        pending.add(task);
        void task.finally(() => pending.delete(task));
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const taken = samples;
    samples = [];
    const latencies = taken.map((sample) => sample.ms);
    const byOperation = Object.fromEntries(
      MIX.map(([operation]) => {
        const of = taken.filter((sample) => sample.operation === operation).map((sample) => sample.ms);
        return [operation, { count: of.length, p50Ms: percentile(of, 50), p99Ms: percentile(of, 99) }];
      }),
    ) as MinuteReport['byOperation'];
    const report: MinuteReport = {
      minute,
      operations: taken.length,
      errors: taken.filter((sample) => !sample.ok).length,
      late,
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      byOperation,
      rssMb: engine.rssMb(),
    };
    late = 0;
    reports.push(report);
    onMinute(report);
  }
  await Promise.all(pending);
  return reports;
}

const fixed = (value: number, digits = 1) => (Number.isFinite(value) ? value.toFixed(digits) : '–');

function minuteRow(report: MinuteReport): string {
  return `| ${report.minute} | ${report.operations} | ${report.errors} | ${report.late} | ${fixed(report.p50Ms)} | ${fixed(report.p99Ms)} | ${fixed(report.rssMb, 0)} |`;
}

async function createPostgresDatabase(serverUrl: string): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `aa_oidc_soak_${randomBytes(4).toString('hex')}`;
  const admin = async (text: string) => {
    const client = new pg.Client({ connectionString: serverUrl });
    await client.connect();
    try {
      await client.query(text);
    } finally {
      await client.end();
    }
  };
  await admin(`create database ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => admin(`drop database if exists ${name} with (force)`) };
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const progress = (message: string) => process.stderr.write(`soak: ${message}\n`);
  const workDir = path.join(os.tmpdir(), `aa-oidc-soak-${randomBytes(4).toString('hex')}`);
  mkdirSync(workDir, { recursive: true });
  const cleanups: Array<() => Promise<void> | void> = [
    () => rmSync(workDir, { recursive: true, force: true }),
  ];
  try {
    let databaseUrl = `sqlite:${path.join(workDir, 'aa-oidc.sqlite')}`;
    if (options.databaseUrl) {
      const database = await createPostgresDatabase(options.databaseUrl);
      cleanups.push(() => database.drop());
      databaseUrl = database.url;
    }
    const databaseKind = databaseUrl.startsWith('sqlite:') ? 'sqlite' : 'postgres';
    const [port, metricsPort] = [await freePort(), await freePort()];
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      AA_OIDC_MODE: 'development',
      AA_OIDC_HOST: '127.0.0.1',
      AA_OIDC_PORT: String(port),
      AA_OIDC_ISSUER: `http://127.0.0.1:${port}/o`,
      AA_OIDC_DATABASE_URL: databaseUrl,
      AA_OIDC_DATA_DIR: workDir,
      AA_OIDC_SECRET_KEY: randomBytes(32).toString('base64url'),
      AA_OIDC_METRICS_PORT: String(metricsPort),
      AA_OIDC_LOG_LEVEL: 'warn',
    };
    const config = loadConfig({ env, cwd: workDir });
    progress(`seeding aa-oidc (${databaseKind})`);
    const seeded = await seedAaOidc(config, { fanoutUsers: 0, receiverUris: [], progress });
    const engine = await startAaOidc({ env, port, logFile: path.join(workDir, 'aa-oidc.log'), nodeArgs: [] });
    cleanups.push(() => engine.stop());
    const jar = await signIn(engine.endpoints, seeded.client, seeded.credentials);
    const client = new SoakClient(engine, seeded.client, cookieHeader(jar, isSessionCookie));
    cleanups.push(() => client.close());
    for (let index = 0; index < 20; index += 1) await client.sso();

    const load = os.loadavg();
    let maximum: number | undefined;
    let rate = options.rate;
    if (rate === undefined) {
      progress(`measuring the maximum rate of the mix for ${options.probeSeconds} s`);
      maximum = await probeMaximum(client, options.probeSeconds);
      rate = Math.max(1, Math.round(maximum / 2));
      progress(`maximum ${fixed(maximum)} operations/s; running at ${rate}/s`);
    }
    const rssStart = engine.rssMb();
    progress(`${options.minutes} min at ${rate} operations/s (RSS ${fixed(rssStart, 0)} MB at start)`);
    console.log(
      `aa-oidc soak: ${databaseKind}, ${rate} operations/s for ${options.minutes} min ` +
        `(mix per 20: ${MIX.map(([operation, share]) => `${share} ${operation}`).join(', ')}); ` +
        `${os.cpus().length} CPUs, load average ${load.map((value) => value.toFixed(2)).join(' ')} at start\n`,
    );
    console.log('| minute | operations | errors | late | p50 ms | p99 ms | RSS MB |');
    console.log('|---|---|---|---|---|---|---|');
    const minutes = await runAtRate(client, engine, rate, options.minutes, (report) =>
      console.log(minuteRow(report)),
    );
    const rss = minutes.map((report) => report.rssMb);
    const steady = rss.slice(Math.min(1, rss.length - 1));
    const spread = ((Math.max(...steady) - Math.min(...steady)) / Math.min(...steady)) * 100;
    const worstP99 = Math.max(...minutes.map((report) => report.p99Ms));
    const errors = minutes.reduce((sum, report) => sum + report.errors, 0);
    const summary = {
      database: databaseKind,
      rate,
      maximum,
      minutes: options.minutes,
      loadAverageAtStart: load,
      loadAverageAtEnd: os.loadavg(),
      cpus: os.cpus().length,
      node: process.version,
      rssStartMb: rssStart,
      rssSpreadAfterFirstMinutePercent: spread,
      worstMinuteP99Ms: worstP99,
      errors,
      perMinute: minutes,
    };
    console.log(
      `\nworst minute p99 ${fixed(worstP99)} ms; RSS from minute 2 on within ${fixed(spread)} % ` +
        `(${fixed(Math.min(...steady), 0)}–${fixed(Math.max(...steady), 0)} MB); ${errors} errors; ` +
        `load average ${os
          .loadavg()
          .map((value) => value.toFixed(2))
          .join(' ')} at the end`,
    );
    mkdirSync(options.out, { recursive: true });
    const file = path.join(options.out, `soak-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    writeFileSync(file, `${JSON.stringify(summary, null, 2)}\n`);
    progress(`result written to ${file}`);
  } finally {
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup();
      } catch {
        // best effort
      }
    }
  }
}

await main();
