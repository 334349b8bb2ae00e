import assert from 'node:assert/strict';
import { chmodSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { createPrivateFileExclusively, createPrivateFileOnce } from '../../src/util/private-files.ts';
import { temporaryFolders } from '../helpers/temporary-folders.ts';

const temporaryFolder = temporaryFolders('aa-oidc-private-files-');

describe('createPrivateFileOnce', () => {
  it('creates the file whole with mode 0600 and returns its content', () => {
    const folder = temporaryFolder();
    const file = path.join(folder, 'secret.key');
    assert.equal(createPrivateFileOnce(file, 'first\n'), 'first\n');
    assert.equal(readFileSync(file, 'utf8'), 'first\n');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(readdirSync(folder), ['secret.key'], 'no temporary file left');
  });

  it("keeps what a process starting at the same moment created first, and returns it (a second key would not read the first's data)", () => {
    const folder = temporaryFolder();
    const file = path.join(folder, 'secret.key');
    writeFileSync(file, 'the winner\n', { mode: 0o600 });
    assert.equal(createPrivateFileOnce(file, 'the loser\n'), 'the winner\n');
    assert.equal(readFileSync(file, 'utf8'), 'the winner\n');
    assert.deepEqual(readdirSync(folder), ['secret.key'], 'no temporary file left');
  });

  /** A filesystem whose `link` fails as those without hard links do. */
  const withoutHardLinks = (code: string) => ({
    linkSync() {
      throw Object.assign(new Error(`${code}: operation not permitted, link`), { code });
    },
  });

  for (const code of ['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EXDEV', 'ENOSYS'])
    it(`creates the file whole with mode 0600 where link fails with ${code} (a filesystem without hard links)`, () => {
      const folder = temporaryFolder();
      const file = path.join(folder, 'secret.key');
      assert.equal(createPrivateFileOnce(file, 'first\n', withoutHardLinks(code)), 'first\n');
      assert.equal(readFileSync(file, 'utf8'), 'first\n');
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.deepEqual(readdirSync(folder), ['secret.key'], 'no temporary file left');
    });

  it('never overwrites a file that is there already where hard links fail, and returns what it holds', () => {
    const folder = temporaryFolder();
    const file = path.join(folder, 'secret.key');
    writeFileSync(file, 'the winner\n', { mode: 0o600 });
    assert.equal(createPrivateFileOnce(file, 'the loser\n', withoutHardLinks('EPERM')), 'the winner\n');
    assert.equal(readFileSync(file, 'utf8'), 'the winner\n');
    assert.deepEqual(readdirSync(folder), ['secret.key'], 'no temporary file left');
  });

  it('passes on any other failure of link, leaving no file behind', () => {
    const folder = temporaryFolder();
    const file = path.join(folder, 'secret.key');
    assert.throws(() => createPrivateFileOnce(file, 'first\n', withoutHardLinks('EIO')), /EIO/);
    assert.deepEqual(readdirSync(folder), [], 'neither the file nor a temporary one');
  });

  it('creates a file exclusively, and names the cause when the folder may not be written', () => {
    const folder = temporaryFolder();
    const file = path.join(folder, 'secret.key');
    assert.equal(createPrivateFileExclusively(file, 'first\n'), 'first\n');
    assert.equal(createPrivateFileExclusively(file, 'second\n'), 'first\n', 'kept, not overwritten');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    if (process.getuid?.() !== 0) {
      const locked = temporaryFolder();
      chmodSync(locked, 0o500);
      try {
        assert.throws(
          () => createPrivateFileExclusively(path.join(locked, 'secret.key'), 'first\n'),
          /EACCES/,
        );
      } finally {
        chmodSync(locked, 0o700);
      }
    }
  });
});
