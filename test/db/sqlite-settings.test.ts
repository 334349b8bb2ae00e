import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { openDatabase } from '../../src/db/connect.ts';
import { WAL_CHECKPOINT_PAGES } from '../../src/db/sqlite-settings.ts';

describe('a SQLite database as aa-oidc opens it', () => {
  it('logs writes ahead, syncs at checkpoints, and checkpoints every few thousand pages', async () => {
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
    } finally {
      await handle.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
