import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { openDatabase } from '../../src/db/connect.ts';
import { WAL_CHECKPOINT_PAGES } from '../../src/db/sqlite-settings.ts';
import { startChild } from '../helpers/child-process.ts';

/**
 * Another process writing a new file (not in WAL mode yet) under the write lock, as one switching it
 * to WAL or creating the tables does: it says `locked`, then commits a moment later.
 */
const HOLDER = `
  const [driver, file] = process.argv.slice(1);
  const sqlite = new (require(driver))(file);
  sqlite.exec('begin immediate');
  sqlite.exec('create table held (x)');
  console.log('locked');
  setTimeout(() => { sqlite.exec('commit'); sqlite.close(); }, 500);
`;

describe('a SQLite database as aa-oidc opens it', () => {
  it('logs writes ahead, syncs at checkpoints, checkpoints every few thousand pages, and zeroes what it deletes', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'aa-oidc-sqlite-settings-'));
    const handle = openDatabase({ kind: 'sqlite', path: path.join(dir, 'db.sqlite') });
    try {
      const sqlite = handle.sqlite!;
      assert.equal(sqlite.pragma('journal_mode', { simple: true }), 'wal');
      // NORMAL: commits append to the log, checkpoints sync it.
      assert.equal(sqlite.pragma('synchronous', { simple: true }), 1);
      assert.equal(sqlite.pragma('wal_autocheckpoint', { simple: true }), WAL_CHECKPOINT_PAGES);
      assert.ok(WAL_CHECKPOINT_PAGES > 1000 && WAL_CHECKPOINT_PAGES <= 10_000);
      assert.equal(sqlite.pragma('foreign_keys', { simple: true }), 1);
      // FAST (2): what a statement deletes is overwritten with zeros in the pages it writes anyway.
      assert.equal(sqlite.pragma('secure_delete', { simple: true }), 2);
    } finally {
      await handle.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('waits for another process writing a new file, then switches it to WAL, instead of failing at once', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'aa-oidc-sqlite-settings-'));
    const file = path.join(dir, 'db.sqlite');
    const driver = createRequire(import.meta.url).resolve('better-sqlite3');
    const holder = startChild(process.execPath, ['-e', HOLDER, driver, file]);
    try {
      await holder.waitFor(/^locked$/m, 'the write lock');
      const handle = openDatabase({ kind: 'sqlite', path: file });
      try {
        const sqlite = handle.sqlite!;
        assert.equal(sqlite.pragma('journal_mode', { simple: true }), 'wal');
        assert.deepEqual(sqlite.prepare(`select name from sqlite_master`).pluck().all(), ['held']);
      } finally {
        await handle.close();
      }
      assert.equal(await holder.exited, 0, holder.stderr());
    } finally {
      await holder.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
