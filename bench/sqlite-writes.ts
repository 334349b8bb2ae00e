/**
 * What SQLite's durable write of a client_credentials token costs, apart from the server: the write
 * worker's statements for one token (its row, written at the change epoch, and its `token_issued`
 * audit event) in transactions of `--batch` tokens, on a database migrated by `aa-oidc migrate`, with
 * the server's pragmas (src/db/sqlite-settings.ts) and any `--pragma` added. Prints the CPU time per
 * token, user and system. A measurement, not a test: it never runs in `npm test`. See
 * docs/performance.md ("Where the remaining difference goes").
 *
 *   node bench/sqlite-writes.ts --tokens 40000 --batch 16 --pragma 'cache_size = -65536'
 */
import { execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { Command, InvalidArgumentError } from 'commander';
import { SQLITE_PRAGMAS } from '../src/db/sqlite-settings.ts';
import { ADAPTER_COLUMNS } from '../src/tokens/payload-rows.ts';
import { ROOT } from './engines.ts';

const positive = (name: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a positive integer`);
  return n;
};

const options = new Command('sqlite-writes')
  .description("CPU per client_credentials token of SQLite's durable write, apart from the server")
  .option('--tokens <n>', 'tokens written', positive('--tokens'), 40_000)
  .option('--batch <n>', 'tokens per transaction', positive('--batch'), 16)
  .option(
    '--pragma <setting>',
    "a pragma after the server's, e.g. 'cache_size = -65536' (repeatable)",
    (value: string, all: string[]) => [...all, value],
    [] as string[],
  )
  .option('--no-audit', 'the token rows without their audit events')
  .parse()
  .opts<{ tokens: number; batch: number; pragma: string[]; audit: boolean }>();

const folder = mkdtempSync(path.join(os.tmpdir(), 'aa-oidc-sqlite-writes-'));
try {
  execFileSync(process.execPath, [path.join(ROOT, 'bin/aa-oidc.js'), 'migrate'], {
    cwd: folder,
    stdio: 'ignore',
  });
  const db = new Database(path.join(folder, 'data', 'aa-oidc.sqlite'));
  for (const pragma of [...SQLITE_PRAGMAS, ...options.pragma]) db.pragma(pragma);

  // The statements of payload-rows.ts (`upsertAdapterRowAtEpoch`) and the audit store, as they compile.
  const columns = ADAPTER_COLUMNS.map((column) => `"${column}"`).join(', ');
  const token = db.prepare(
    `insert into "oidc_payload" (${columns}) select ${ADAPTER_COLUMNS.map(() => '?').join(', ')} ` +
      `where (select value from change_epoch where id = 1) = ? on conflict ("model", "id") do update set ` +
      ADAPTER_COLUMNS.slice(2)
        .map((column) => `"${column}" = "excluded"."${column}"`)
        .join(', '),
  );
  const event = db.prepare(
    'insert into "audit_event" ("recorded_at", "kind", "user_id", "client_id", "request_id", "payload") values (?, ?, ?, ?, ?, ?)',
  );
  const epoch = (db.prepare('select value from change_epoch where id = 1').get() as { value: number }).value;
  const begin = db.prepare('begin immediate');
  const commit = db.prepare('commit');

  const now = Date.now();
  const rows = Array.from({ length: options.tokens }, () => {
    const id = randomBytes(32).toString('base64url');
    const requestId = randomUUID();
    const payload = {
      iat: Math.floor(now / 1000),
      exp: Math.floor(now / 1000) + 3600,
      clientId: 'bench',
      kind: 'ClientCredentials',
      scope: 'api',
    };
    return {
      id,
      requestId,
      values: [
        'ClientCredentials',
        id,
        null,
        JSON.stringify(payload),
        null,
        null,
        'bench',
        null,
        null,
        now + 3_600_000,
        'opaque',
        null,
      ],
    };
  });
  const started = process.cpuUsage();
  for (let first = 0; first < rows.length; first += options.batch) {
    begin.run();
    for (const { id, requestId, values } of rows.slice(first, first + options.batch)) {
      token.run(...values, epoch);
      if (options.audit) {
        const record = {
          kind: 'token_issued',
          client_id: 'bench',
          user_id: null,
          grant_type: 'client_credentials',
          token_type: 'access_token',
          format: 'opaque',
          token_sha256: id,
          expires_at: now + 3_600_000,
        };
        event.run(Date.now(), 'token_issued', null, 'bench', requestId, JSON.stringify(record));
      }
    }
    commit.run();
  }
  const spent = process.cpuUsage(started);
  db.close();
  const perToken = (microseconds: number) => (microseconds / options.tokens).toFixed(1);
  console.log(
    `${options.tokens} tokens in transactions of ${options.batch}${options.audit ? ', each with its audit event' : ''}` +
      `${options.pragma.length > 0 ? ` (${options.pragma.join('; ')})` : ''}: ` +
      `${perToken(spent.user + spent.system)} µs of CPU per token (user ${perToken(spent.user)}, system ${perToken(spent.system)})`,
  );
} finally {
  rmSync(folder, { recursive: true, force: true });
}
