import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { createPrivateFileOnce } from '../../src/util/private-files.ts';
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
});
