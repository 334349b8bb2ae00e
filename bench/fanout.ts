import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import path from 'node:path';
import { createLocalJWKSet, type JSONWebKeySet, jwtVerify } from 'jose';
import { cpuOf, ROOT, type RunningEngine, type StatementCounts } from './engines.ts';

/** Relying parties on loopback that receive back-channel logout tokens and check each one. */
export interface Receivers {
  uris: string[];
  /**
   * From now on, verifies tokens against this engine's keys and issuer; the receiver at `uris[i]`
   * is the application `clientIds[i]` (the tokens' audience).
   */
  trust(engine: RunningEngine, clientIds: readonly string[]): Promise<void>;
  readonly stats: ReceiverStats;
  close(): Promise<void>;
}

export interface ReceiverStats {
  /** Deliveries received (valid or not). */
  received: number;
  /** Distinct (application, user) pairs with a valid logout token. */
  distinct: number;
  /** Valid tokens for a pair that had one already. */
  duplicates: number;
  /** Tokens that failed verification (signature, issuer, audience, events). */
  invalid: number;
  firstAt?: number;
  lastAt?: number;
}

export async function startReceivers(count: number): Promise<Receivers> {
  const seen = new Set<string>();
  const stats: ReceiverStats = { received: 0, distinct: 0, duplicates: 0, invalid: 0 };
  let verifier: ((token: string, audience: string) => Promise<string>) | undefined;
  const servers: Server[] = [];
  const uris: string[] = [];
  let audiences: readonly string[] = [];

  for (let index = 0; index < count; index += 1) {
    const server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const at = performance.now();
        stats.received += 1;
        stats.firstAt ??= at;
        stats.lastAt = at;
        response.writeHead(200).end();
        const token = new URLSearchParams(Buffer.concat(chunks).toString('utf8')).get('logout_token') ?? '';
        const audience = audiences[index];
        if (!verifier || !audience) {
          stats.invalid += 1;
          return;
        }
        verifier(token, audience).then(
          (sub) => {
            const key = `${audience} ${sub}`;
            if (seen.has(key)) stats.duplicates += 1;
            else {
              seen.add(key);
              stats.distinct += 1;
            }
          },
          () => {
            stats.invalid += 1;
          },
        );
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    servers.push(server);
    uris.push(`http://127.0.0.1:${(server.address() as { port: number }).port}/backchannel-logout`);
  }

  return {
    uris,
    stats,
    async trust(engine, clientIds) {
      audiences = [...clientIds];
      const jwks = (await (await fetch(engine.endpoints.jwks)).json()) as JSONWebKeySet;
      const keys = createLocalJWKSet(jwks);
      verifier = async (token, audience) => {
        const { payload } = await jwtVerify(token, keys, {
          issuer: engine.issuer,
          audience,
          typ: 'logout+jwt',
          algorithms: ['RS256'],
        });
        const events = payload.events as Record<string, unknown> | undefined;
        if (
          !events?.['http://schemas.openid.net/event/backchannel-logout'] ||
          typeof payload.sub !== 'string'
        )
          throw new Error('not a logout token');
        return payload.sub;
      };
    },
    async close() {
      await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
    },
  };
}

export interface FanoutResult {
  expected: number;
  delivered: number;
  distinct: number;
  duplicates: number;
  lost: number;
  invalid: number;
  /** Seconds the state change took (the CLI command, its transaction queuing every job). */
  commandSeconds: number;
  /** Seconds from the command's start to the last delivery. */
  drainSeconds: number;
  /** Distinct deliveries per second between the first and the last one. */
  deliveriesPerSecond: number;
  /** CPU seconds (every thread) of the state change command. */
  commandCpuSeconds: number;
  /** CPU seconds (every thread) of aa-oidc serve, its worker delivering, from the command's start to the last delivery. */
  serverCpuSeconds: number;
  /** The server's CPU milliseconds per distinct delivery. */
  serverCpuMsPerDelivery: number;
  /**
   * CPU milliseconds of the local PostgreSQL backends of aa-oidc's database per distinct delivery,
   * the state change command's included (PostgreSQL on this machine only).
   */
  databaseCpuMsPerDelivery?: number;
  /** SQL statements the server ran per distinct delivery, in all and by text (`--count-statements`). */
  statementsPerDelivery?: { total: number; byText: Record<string, number> };
}

/**
 * The back-channel fan-out: one state change (`aa-oidc state grant-access STATE --revoke`, run as an
 * operator would) takes access from every user of the state; each held tokens at every fan-out
 * application, so each application must receive one logout token per user.
 */
export async function runFanout(options: {
  receivers: Receivers;
  clientIds: readonly string[];
  engine: RunningEngine;
  env: NodeJS.ProcessEnv;
  state: string;
  expected: number;
  /** Give up when nothing arrived for this long. */
  idleTimeoutSeconds?: number;
  /** Where the state change command's log lines go. */
  logFile: string;
  /** Extra node flags for the state change command (`--cpu-prof`, …). */
  nodeArgs?: readonly string[];
}): Promise<FanoutResult> {
  const { receivers, expected } = options;
  await receivers.trust(options.engine, options.clientIds);
  const started = performance.now();
  const serverCpuBefore = options.engine.cpuSeconds();
  let serverCpuAtLast = serverCpuBefore;
  const databaseCpuBefore = options.engine.databaseCpuSeconds?.();
  let databaseCpuAtLast = databaseCpuBefore;
  const statementsBefore = await options.engine.statements?.();
  let commandCpuSeconds = 0;
  const log = openSync(options.logFile, 'a');
  await new Promise<void>((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        ...(options.nodeArgs ?? []),
        path.join(ROOT, 'bin/aa-oidc.js'),
        'state',
        'grant-access',
        options.state,
        '--revoke',
      ],
      // Its log lines (an audit line per revoked token and queued logout) go to a file: a pipe that
      // this busy process drains late would make the command's synchronous stderr wait.
      { cwd: ROOT, env: options.env, stdio: ['ignore', 'ignore', log] },
    );
    // The command's CPU time, read while it runs (a process that exited has no /proc entry).
    const sampler = setInterval(() => {
      try {
        commandCpuSeconds = cpuOf(child.pid!);
      } catch {
        // exited meanwhile
      }
    }, 50);
    child.once('exit', (code) => {
      clearInterval(sampler);
      closeSync(log);
      if (code === 0) resolve();
      else reject(new Error(`state grant-access failed (${code}): ${tailOf(options.logFile)}`));
    });
  });
  const commandSeconds = (performance.now() - started) / 1000;
  const idleLimit = (options.idleTimeoutSeconds ?? 30) * 1000;
  let lastCount = -1;
  let lastChange = performance.now();
  while (receivers.stats.received < expected) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    if (receivers.stats.received !== lastCount) {
      lastCount = receivers.stats.received;
      lastChange = performance.now();
      serverCpuAtLast = options.engine.cpuSeconds();
      databaseCpuAtLast = options.engine.databaseCpuSeconds?.();
    } else if (performance.now() - lastChange > idleLimit) break;
  }
  // A moment for verification of the last tokens and for any duplicate still on its way.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const { stats } = receivers;
  const statementsAfter = await options.engine.statements?.();
  const spanSeconds = ((stats.lastAt ?? started) - (stats.firstAt ?? started)) / 1000;
  return {
    expected,
    delivered: stats.received,
    distinct: stats.distinct,
    duplicates: stats.duplicates,
    lost: Math.max(0, expected - stats.distinct),
    invalid: stats.invalid,
    commandSeconds,
    drainSeconds: ((stats.lastAt ?? started) - started) / 1000,
    deliveriesPerSecond: spanSeconds > 0 ? stats.distinct / spanSeconds : 0,
    commandCpuSeconds,
    serverCpuSeconds: serverCpuAtLast - serverCpuBefore,
    serverCpuMsPerDelivery:
      stats.distinct > 0 ? ((serverCpuAtLast - serverCpuBefore) * 1000) / stats.distinct : 0,
    ...(databaseCpuBefore !== undefined && databaseCpuAtLast !== undefined && stats.distinct > 0
      ? { databaseCpuMsPerDelivery: ((databaseCpuAtLast - databaseCpuBefore) * 1000) / stats.distinct }
      : {}),
    ...(statementsBefore && statementsAfter && stats.distinct > 0
      ? { statementsPerDelivery: perDelivery(statementsBefore, statementsAfter, stats.distinct) }
      : {}),
  };
}

/** The statements run between two counts, per delivery, most frequent first. */
function perDelivery(before: StatementCounts, after: StatementCounts, deliveries: number) {
  return {
    total: (after.total - before.total) / deliveries,
    byText: Object.fromEntries(
      Object.entries(after.byText)
        .map(([text, n]) => [text, (n - (before.byText[text] ?? 0)) / deliveries] as const)
        .filter(([, n]) => n > 0)
        .sort(([, a], [, b]) => b - a),
    ),
  };
}

function tailOf(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-20).join('\n');
  } catch {
    return '(no output)';
  }
}
