import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Worker } from 'node:worker_threads';
import BetterSqlite3 from 'better-sqlite3';
import { type DatabaseHandle, openDatabase } from '../../src/db/connect.ts';
import { raiseChangeEpoch, readChangeEpoch } from '../../src/db/change-epoch.ts';
import { isDatabaseUnavailable } from '../../src/db/errors.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import { workerWrites, type WorkerWritesOptions } from '../../src/db/write-worker.ts';
import { sha256Hex } from '../../src/logging/secrets.ts';
import { createIssuedCodes } from '../../src/tokens/issued-codes.ts';
import {
  type AdapterRow,
  type PayloadRow,
  payloadConsumes,
  payloadRowWrites,
  payloadRowWritesAtEpoch,
  storageId,
  writePayloadRows,
} from '../../src/tokens/store.ts';

function row(id: string, model = 'ClientCredentials'): PayloadRow & AdapterRow {
  return {
    model,
    id,
    consumed_at: null,
    payload: '{}',
    grant_id: null,
    user_id: null,
    client_id: 'worker-client',
    uid: null,
    user_code: null,
    expires_at: Date.now() + 60_000,
    format: 'opaque',
    value_sha256: null,
  };
}

/**
 * On a SQLite file the write batch commits on a worker thread with a connection of its own (whatever
 * database the suite runs on: the worker exists only for SQLite files).
 */
describe('the SQLite write worker', () => {
  let dir: string;
  let file: string;
  let handle: DatabaseHandle;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'aa-oidc-write-worker-'));
    file = path.join(dir, 'worker.sqlite');
    handle = openDatabase({ kind: 'sqlite', path: file });
    await migrateToLatest(handle.db, 'sqlite');
  });
  after(async () => {
    await handle?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A worker batch whose flush runs when the test says so, and the workers it started. */
  function manualWorker(options: WorkerWritesOptions = {}) {
    const flushes: Array<() => void> = [];
    const workers: Worker[] = [];
    const writes = workerWrites(handle.db, file, {
      ...options,
      schedule: (flush) => void flushes.push(flush),
      onWorkerStart: (worker) => workers.push(worker),
    });
    return { writes, workers, flush: () => flushes.splice(0).forEach((flush) => flush()) };
  }

  const stored = async (ids: string[]) =>
    (
      await handle.db.selectFrom('oidc_payload').select('id').where('id', 'in', ids).orderBy('id').execute()
    ).map((found) => found.id);

  it('answers each write once it is committed: the main connection and any other then read it', async () => {
    const { writes, workers, flush } = manualWorker();
    try {
      const epoch = await readChangeEpoch(handle.db);
      await writePayloadRows(handle.db, [row('commit-used', 'RefreshToken')]);
      const results = [
        payloadRowWrites(writes)([row('commit-a'), row('commit-b')]),
        payloadRowWritesAtEpoch(writes)([row('commit-c')], epoch),
        // Decided at an epoch that has moved on since: not written.
        payloadRowWritesAtEpoch(writes)([row('commit-d')], epoch - 1),
        payloadConsumes(writes)({ model: 'RefreshToken', id: 'commit-used', at: Date.now() }),
        payloadConsumes(writes)({ model: 'RefreshToken', id: 'commit-used', at: Date.now() }),
      ];
      flush();
      assert.deepEqual(await Promise.all(results), [undefined, true, false, true, false]);
      assert.equal(workers.length, 1);
      assert.deepEqual(await stored(['commit-a', 'commit-b', 'commit-c', 'commit-d']), [
        'commit-a',
        'commit-b',
        'commit-c',
      ]);
      const other = new BetterSqlite3(file, { readonly: true });
      try {
        const consumed = other
          .prepare(`select consumed_at from oidc_payload where model = 'RefreshToken' and id = 'commit-used'`)
          .get() as { consumed_at: number | null };
        assert.notEqual(consumed.consumed_at, null);
      } finally {
        other.close();
      }
      // The epoch moves on the main connection: the worker's next write at the old one sees it.
      await handle.db.transaction().execute((trx) => raiseChangeEpoch(trx));
      const late = payloadRowWritesAtEpoch(writes)([row('commit-e')], epoch);
      flush();
      assert.equal(await late, false);
    } finally {
      await writes.close();
    }
  });

  it('consumes and records codes, and stores the tokens of code exchanges, revoked for a replayed code', async () => {
    const { writes, flush } = manualWorker();
    const codes = createIssuedCodes({
      db: handle.db,
      config: { tokens: { refreshTokenTtl: 3600 } } as never,
      audit: { publish: () => undefined } as never,
      metrics: { codeReuseAuditMisses: { inc: () => undefined } } as never,
      logger: { error: () => undefined, warn: () => undefined } as never,
      writes,
    });
    try {
      const code = (value: string) => ({
        ...row(storageId(value), 'AuthorizationCode'),
        grant_id: `grant-${value}`,
      });
      await writePayloadRows(handle.db, [code('code-kept'), code('code-replayed')]);
      const at = Date.now();
      const consumed = [
        codes.consumeCode('code-kept', storageId('code-kept'), at),
        codes.consumeCode('code-replayed', storageId('code-replayed'), at),
        codes.consumeCode('code-kept', storageId('code-kept'), at),
        codes.consumeCode('code-missing', storageId('code-missing'), at),
      ];
      flush();
      assert.deepEqual(await Promise.all(consumed), [true, true, false, false]);
      const recorded = await handle.db
        .selectFrom('issued_code')
        .select(['code_hash', 'client_id', 'grant_id', 'created_at', 'expires_at'])
        .where('code_hash', 'in', ['code-kept', 'code-replayed', 'code-missing'].map(sha256Hex))
        .orderBy('grant_id')
        .execute();
      assert.deepEqual(
        recorded.map((found) => ({
          ...found,
          created_at: Number(found.created_at),
          expires_at: Number(found.expires_at),
        })),
        ['code-kept', 'code-replayed'].map((value) => ({
          code_hash: sha256Hex(value),
          client_id: 'worker-client',
          grant_id: `grant-${value}`,
          created_at: at,
          expires_at: at + 3_600_000,
        })),
      );

      // One code is presented again after its redemption, before its tokens are stored.
      await codes.judgeRefusedCode('code-replayed', 'worker-client');
      const tokens = (value: string) => [
        { ...row(`access-${value}`, 'AccessToken'), grant_id: `grant-${value}` },
        { ...row(`refresh-${value}`, 'RefreshToken'), grant_id: `grant-${value}` },
      ];
      const stored = [
        codes.storeExchangedTokens('code-kept', tokens('code-kept')),
        codes.storeExchangedTokens('code-replayed', tokens('code-replayed')),
      ];
      flush();
      assert.deepEqual(await Promise.all(stored), [false, true]);
      const written = await handle.db
        .selectFrom('oidc_payload')
        .select(['id', 'revoked_reason'])
        .where('grant_id', 'in', ['grant-code-kept', 'grant-code-replayed'])
        .where('model', 'in', ['AccessToken', 'RefreshToken'])
        .orderBy('id')
        .execute();
      assert.deepEqual(written, [
        { id: 'access-code-kept', revoked_reason: null },
        { id: 'access-code-replayed', revoked_reason: 'code_reuse' },
        { id: 'refresh-code-kept', revoked_reason: null },
        { id: 'refresh-code-replayed', revoked_reason: 'code_reuse' },
      ]);
      const ids = await handle.db
        .selectFrom('issued_code')
        .select(['access_token_id', 'refresh_token_id'])
        .where('code_hash', '=', sha256Hex('code-kept'))
        .executeTakeFirst();
      assert.deepEqual(ids, { access_token_id: 'access-code-kept', refresh_token_id: 'refresh-code-kept' });
    } finally {
      await writes.close();
    }
  });

  it('fails only the write the database refuses; the others of its batch are committed', async () => {
    const { writes, flush } = manualWorker();
    try {
      const write = payloadRowWrites(writes);
      // A row without its payload (NOT NULL): a fault of this write alone, not of the database.
      const settled = Promise.allSettled([
        write([row('refused-a')]),
        write([{ ...row('refused-b'), payload: null as unknown as string }]),
        write([row('refused-c'), row('refused-d')]),
      ]);
      flush();
      const [first, failed, third] = await settled;
      assert.equal(first!.status, 'fulfilled');
      assert.equal(third!.status, 'fulfilled');
      assert.equal(failed!.status, 'rejected');
      const reason = (failed as PromiseRejectedResult).reason as Error & { code?: string };
      assert.equal(isDatabaseUnavailable(reason), false);
      assert.match(reason.message, /NOT NULL/);
      assert.deepEqual(await stored(['refused-a', 'refused-b', 'refused-c', 'refused-d']), [
        'refused-a',
        'refused-c',
        'refused-d',
      ]);
    } finally {
      await writes.close();
    }
  });

  it('waits for a write of the main connection to commit, then commits its own', async () => {
    const { writes, flush } = manualWorker();
    try {
      handle.sqlite!.prepare('begin immediate').run();
      let answered = false;
      const written = payloadRowWrites(writes)([row('busy-a')]).then(() => (answered = true));
      flush();
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(answered, false);
      handle.sqlite!.prepare('commit').run();
      await written;
      assert.deepEqual(await stored(['busy-a']), ['busy-a']);
    } finally {
      if (handle.sqlite!.inTransaction) handle.sqlite!.prepare('rollback').run();
      await writes.close();
    }
  });

  it('lets a transaction of the main connection read, then write, while the worker commits', async () => {
    const { writes, flush } = manualWorker();
    try {
      let written: Promise<void> | undefined;
      await handle.db.transaction().execute(async (trx) => {
        await trx.selectFrom('oidc_payload').select('id').where('id', '=', 'snapshot-b').execute();
        written = payloadRowWrites(writes)([row('snapshot-a')]);
        flush();
        // The worker's batch is under way meanwhile (it waits for this transaction's lock).
        await new Promise((resolve) => setTimeout(resolve, 50));
        await writePayloadRows(trx, [row('snapshot-b')]);
      });
      await written;
      assert.deepEqual(await stored(['snapshot-a', 'snapshot-b']), ['snapshot-a', 'snapshot-b']);
    } finally {
      await writes.close();
    }
  });

  it('fails the writes of a worker that dies, with a database error, and starts another for the next write', async () => {
    const lost: Error[] = [];
    const { writes, workers, flush } = manualWorker({ onWorkerLost: (error) => lost.push(error) });
    try {
      const first = payloadRowWrites(writes)([row('death-a')]);
      flush();
      await first;
      // The worker waits for the lock the main connection holds, and dies before it commits.
      handle.sqlite!.prepare('begin immediate').run();
      const dying = payloadRowWrites(writes)([row('death-b')]);
      flush();
      void workers[0]!.terminate();
      handle.sqlite!.prepare('commit').run();
      await assert.rejects(dying, (error: Error) => {
        assert.ok(isDatabaseUnavailable(error));
        assert.match(error.message, /the SQLite write worker stopped/);
        return true;
      });
      assert.equal(lost.length, 1);
      // Its connection went with it (no lock left behind): a new worker commits the next write.
      const next = payloadRowWrites(writes)([row('death-c')]);
      flush();
      await next;
      assert.equal(workers.length, 2);
      assert.deepEqual(await stored(['death-a', 'death-b', 'death-c']), ['death-a', 'death-c']);
    } finally {
      if (handle.sqlite!.inTransaction) handle.sqlite!.prepare('rollback').run();
      await writes.close();
    }
  });

  it('on close, commits the writes already asked for, then stops the worker; later writes fail', async () => {
    const lost: Error[] = [];
    const { writes, workers, flush } = manualWorker({ onWorkerLost: (error) => lost.push(error) });
    const started = payloadRowWrites(writes)([row('close-a')]);
    flush();
    await started;
    // Asked for in the turn the server closes, before the batch went out.
    const last = payloadRowWrites(writes)([row('close-b')]);
    const exited = new Promise<number>((resolve) => workers[0]!.once('exit', resolve));
    await writes.close();
    await last;
    await exited;
    assert.deepEqual(await stored(['close-a', 'close-b']), ['close-a', 'close-b']);
    const after = payloadRowWrites(writes)([row('close-c')]);
    flush();
    await assert.rejects(after, (error: Error) => isDatabaseUnavailable(error));
    assert.equal(workers.length, 1);
    assert.deepEqual(lost, []);
  });

  it('lets a process end once closed: the worker closes its connection first', () => {
    // A command (or `serve`) closes its services and has nothing else to wait for.
    const script = `
      const { openDatabase } = await import(${JSON.stringify(new URL('../../src/db/connect.ts', import.meta.url).href)});
      const { workerWrites } = await import(${JSON.stringify(new URL('../../src/db/write-worker.ts', import.meta.url).href)});
      const { payloadRowWrites } = await import(${JSON.stringify(new URL('../../src/tokens/store.ts', import.meta.url).href)});
      const handle = openDatabase({ kind: 'sqlite', path: ${JSON.stringify(file)} });
      const writes = workerWrites(handle.db, ${JSON.stringify(file)});
      await payloadRowWrites(writes)([${JSON.stringify(row('process-a'))}]);
      const last = payloadRowWrites(writes)([${JSON.stringify(row('process-b'))}]);
      await writes.close();
      await last;
      await handle.close();
      console.log('closed');
    `;
    const output = execFileSync(process.execPath, ['--input-type=module', '--eval', script], {
      encoding: 'utf8',
    });
    assert.equal(output.trim(), 'closed');
  });
});
