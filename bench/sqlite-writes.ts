/**
 * What SQLite's durable write of a client_credentials token costs, apart from the server: the write
 * worker's statements for one token (its row, written at the change epoch, and its `token_issued`
 * audit event) in transactions of `--batch` tokens, on a database migrated by `aa-oidc migrate`, with
 * the server's connection and pragmas (src/db/connect.ts) and any `--pragma` added. Prints the CPU time per
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
import type BetterSqlite3 from 'better-sqlite3';
import { Command } from 'commander';
import { sqliteInsertOf } from '../src/audit/store.ts';
import { readChangeEpoch } from '../src/db/change-epoch.ts';
import { openDatabase } from '../src/db/connect.ts';
import type { PlannedStatement } from '../src/db/write-batch.ts';
import { type AdapterRow, rowsAtEpochPlan } from '../src/tokens/payload-rows.ts';
import { ROOT } from './engines.ts';
import { numberOption } from './options.ts';

const positive = (name: string) => numberOption(name, { integer: true, positive: true });

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
  // The server's connection (its pragmas) and, compiled before the clock starts as the main thread
  // compiles them, the statements its write worker runs: each token's row at the change epoch
  // (payload-rows.ts) and its audit event (the audit store's INSERT of one event).
  const database = openDatabase({ kind: 'sqlite', path: path.join(folder, 'data', 'aa-oidc.sqlite') });
  const sqlite = database.sqlite!;
  for (const pragma of options.pragma) sqlite.pragma(pragma);
  const epoch = await readChangeEpoch(database.db);
  const now = Date.now();
  const writes = Array.from({ length: options.tokens }, () => {
    const id = randomBytes(32).toString('base64url');
    const row: AdapterRow = {
      model: 'ClientCredentials',
      id,
      consumed_at: null,
      payload: JSON.stringify({
        iat: Math.floor(now / 1000),
        exp: Math.floor(now / 1000) + 3600,
        clientId: 'bench',
        kind: 'ClientCredentials',
        scope: 'api',
      }),
      grant_id: null,
      user_id: null,
      client_id: 'bench',
      uid: null,
      user_code: null,
      expires_at: now + 3_600_000,
      format: 'opaque',
      value_sha256: null,
    };
    const event = JSON.stringify({
      kind: 'token_issued',
      client_id: 'bench',
      user_id: null,
      grant_type: 'client_credentials',
      token_type: 'access_token',
      format: 'opaque',
      token_sha256: id,
      expires_at: now + 3_600_000,
    });
    return {
      token: rowsAtEpochPlan(database.db, { rows: [row], epoch }).statements[0]!,
      event: [now, 'token_issued', null, 'bench', randomUUID(), event],
    };
  });
  const statements = new Map<string, BetterSqlite3.Statement>();
  const run = ({ sql, parameters }: PlannedStatement) => {
    let statement = statements.get(sql);
    if (!statement) statements.set(sql, (statement = sqlite.prepare(sql)));
    statement.run(...parameters);
  };
  const eventText = sqliteInsertOf(1);
  const begin = sqlite.prepare('begin immediate');
  const commit = sqlite.prepare('commit');

  const started = process.cpuUsage();
  for (let first = 0; first < writes.length; first += options.batch) {
    begin.run();
    for (const { token, event } of writes.slice(first, first + options.batch)) {
      run(token);
      if (options.audit) run({ sql: eventText, parameters: event });
    }
    commit.run();
  }
  const spent = process.cpuUsage(started);
  await database.close();
  const perToken = (microseconds: number) => (microseconds / options.tokens).toFixed(1);
  console.log(
    `${options.tokens} tokens in transactions of ${options.batch}${options.audit ? ', each with its audit event' : ''}` +
      `${options.pragma.length > 0 ? ` (${options.pragma.join('; ')})` : ''}: ` +
      `${perToken(spent.user + spent.system)} µs of CPU per token (user ${perToken(spent.user)}, system ${perToken(spent.system)})`,
  );
} finally {
  rmSync(folder, { recursive: true, force: true });
}
