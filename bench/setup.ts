/**
 * What `npm run bench` measures against: a seeded aa-oidc and the bare engine, both running, and the
 * fan-out's receivers when asked for. Shared by bench/run.ts and the workloads' smoke test
 * (test/bench/workloads.test.ts), so that the test runs the workloads against engines started the
 * way the bench starts them.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import pg from 'pg';
import { type Config, loadConfig } from '../src/config/load.ts';
import {
  connectionCapsFor,
  type EngineName,
  freePort,
  type RunningEngine,
  startAaOidc,
  startBare,
} from './engines.ts';
import { type Receivers, startReceivers } from './fanout.ts';
import { type SeededAaOidc, seedAaOidc } from './seed.ts';
import type { Target } from './workloads.ts';

export interface BenchSetupOptions {
  /** Where the SQLite file, the data folder and the engines' logs go. */
  workDir: string;
  /** PostgreSQL: a server URL whose user may create databases (a fresh one is created beside it); else SQLite. */
  databaseUrl?: string;
  /** The load generator's connections (aa-oidc's connection caps leave room for them). */
  connections: number;
  /** Back-channel fan-out applications (one receiver each); 0 for none. */
  fanoutApplications: number;
  /** Users deactivated at once in the fan-out (each holding tokens at every fan-out application). */
  fanoutUsers: number;
  /** Extra node flags of aa-oidc serve, and of the bare engine. */
  nodeArgs?: readonly string[];
  bareNodeArgs?: readonly string[];
  /** The counters of bench/engines.ts (`--count-statements`, `--count-allocation`, `--count-instructions`). */
  statementsFile?: string;
  allocationFile?: string;
  bareAllocationFile?: string;
  callgrindFile?: string;
  bareCallgrindFile?: string;
  progress(message: string): void;
}

export interface BenchSetup {
  database: 'sqlite' | 'postgres';
  /** The server's version, and whether autovacuum is on (PostgreSQL only; the report names both). */
  postgresServer?: PostgresDatabase['server'];
  /** aa-oidc's environment (the fan-out's state change command runs with it too). */
  env: NodeJS.ProcessEnv;
  config: Config;
  metricsPort: number;
  seeded: SeededAaOidc;
  engines: Record<EngineName, RunningEngine>;
  /** Each engine as the workloads use it. */
  targets: Record<EngineName, Target>;
  receivers?: Receivers;
  /** Stops the engines and receivers and drops the PostgreSQL database (not the work folder). */
  stop(): Promise<void>;
}

interface PostgresDatabase {
  url: string;
  server: { version: string; autovacuum: boolean };
  drop(): Promise<void>;
}

async function createPostgresDatabase(baseUrl: string): Promise<PostgresDatabase> {
  const name = `aa_oidc_bench_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: baseUrl });
  await admin.connect();
  let server: PostgresDatabase['server'];
  try {
    await admin.query(`create database ${name}`);
    const settings = await admin.query<{ version: string; autovacuum: string }>(
      "select current_setting('server_version') as version, current_setting('autovacuum') as autovacuum",
    );
    // `15.20 (Debian 15.20-0+deb12u1)`: the number is enough.
    server = {
      version: settings.rows[0]!.version.split(' ')[0]!,
      autovacuum: settings.rows[0]!.autovacuum === 'on',
    };
  } finally {
    await admin.end();
  }
  const url = new URL(baseUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    server,
    async drop() {
      const dropper = new pg.Client({ connectionString: baseUrl });
      await dropper.connect();
      try {
        await dropper.query(`drop database if exists ${name} with (force)`);
      } finally {
        await dropper.end();
      }
    },
  };
}

/** The database a PostgreSQL URL names when its server runs on this machine (its backends' CPU is readable). */
function localPostgresDatabase(databaseUrl: string): string | undefined {
  if (databaseUrl.startsWith('sqlite:')) return undefined;
  const url = new URL(databaseUrl);
  if (!['127.0.0.1', 'localhost', '[::1]', ''].includes(url.hostname)) return undefined;
  return decodeURIComponent(url.pathname.slice(1)) || undefined;
}

/** Seeds aa-oidc's database and starts both engines; on a failure, stops what it had started. */
export async function startBenchSetup(options: BenchSetupOptions): Promise<BenchSetup> {
  const { workDir, progress } = options;
  const cleanups: Array<() => Promise<void> | void> = [];
  const stop = async () => {
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup();
      } catch (error) {
        progress(`cleanup failed: ${(error as Error).message}`);
      }
    }
    cleanups.length = 0;
  };
  try {
    const receivers =
      options.fanoutApplications > 0 ? await startReceivers(options.fanoutApplications) : undefined;
    if (receivers) cleanups.push(() => receivers.close());

    let databaseUrl = `sqlite:${path.join(workDir, 'aa-oidc.sqlite')}`;
    let postgresServer: PostgresDatabase['server'] | undefined;
    if (options.databaseUrl) {
      const database = await createPostgresDatabase(options.databaseUrl);
      cleanups.push(() => database.drop());
      databaseUrl = database.url;
      postgresServer = database.server;
      if (!postgresServer.autovacuum)
        progress('PostgreSQL runs without autovacuum: no table is analyzed or vacuumed during the bench');
    }
    const database = databaseUrl.startsWith('sqlite:') ? 'sqlite' : 'postgres';
    const [aaPort, metricsPort, barePort] = [await freePort(), await freePort(), await freePort()];
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      AA_OIDC_MODE: 'development',
      AA_OIDC_HOST: '127.0.0.1',
      AA_OIDC_PORT: String(aaPort),
      AA_OIDC_ISSUER: `http://127.0.0.1:${aaPort}/o`,
      AA_OIDC_DATABASE_URL: databaseUrl,
      AA_OIDC_DATA_DIR: workDir,
      AA_OIDC_SECRET_KEY: randomBytes(32).toString('base64url'),
      AA_OIDC_METRICS_PORT: String(metricsPort),
      AA_OIDC_LOG_LEVEL: 'info',
      // The fan-out receivers listen on loopback: the SSRF gate's development escape hatch.
      AA_OIDC_LOGOUT_ALLOW_PRIVATE_TARGETS: 'true',
      ...connectionCapsFor(options.connections),
    };
    const config = loadConfig({ env, cwd: workDir });

    progress(`seeding aa-oidc (${database})`);
    const seeded = await seedAaOidc(config, {
      fanoutUsers: receivers ? options.fanoutUsers : 0,
      receiverUris: receivers?.uris ?? [],
      progress,
    });

    progress(
      `starting aa-oidc and the bare engine${options.callgrindFile ? ' under valgrind (callgrind; a minute or more)' : ''}`,
    );
    const postgresDatabase = localPostgresDatabase(databaseUrl);
    const aaOidc = await startAaOidc({
      env,
      port: aaPort,
      logFile: path.join(workDir, 'aa-oidc.log'),
      nodeArgs: options.nodeArgs ?? [],
      ...(options.statementsFile ? { statementsFile: options.statementsFile } : {}),
      ...(options.allocationFile ? { allocationFile: options.allocationFile } : {}),
      ...(options.callgrindFile ? { callgrindFile: options.callgrindFile } : {}),
      ...(postgresDatabase ? { postgresDatabase } : {}),
    });
    cleanups.push(() => aaOidc.stop());
    const t = config.tokens;
    const bare = await startBare({
      port: barePort,
      client: seeded.client,
      ttl: {
        AccessToken: t.accessTokenTtl,
        ClientCredentials: t.accessTokenTtl,
        AuthorizationCode: t.codeTtl,
        IdToken: t.idTokenTtl,
        RefreshToken: t.refreshTokenTtl,
        Grant: 365 * 24 * 3600,
        Session: 14 * 24 * 3600,
        Interaction: 30 * 60,
      },
      logFile: path.join(workDir, 'bare.log'),
      nodeArgs: options.bareNodeArgs ?? [],
      ...(options.bareAllocationFile ? { allocationFile: options.bareAllocationFile } : {}),
      ...(options.bareCallgrindFile ? { callgrindFile: options.bareCallgrindFile } : {}),
    });
    cleanups.push(() => bare.stop());

    return {
      database,
      ...(postgresServer ? { postgresServer } : {}),
      env,
      config,
      metricsPort,
      seeded,
      engines: { 'aa-oidc': aaOidc, bare },
      targets: {
        'aa-oidc': {
          engine: aaOidc,
          client: seeded.client,
          jwtClient: seeded.jwtClient,
          credentials: seeded.credentials,
          loginUsers: seeded.loginUsers,
        },
        bare: { engine: bare, client: seeded.client },
      },
      ...(receivers ? { receivers } : {}),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
