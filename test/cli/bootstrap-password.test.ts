import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { prepareBootstrapPassword } from '../../src/cli/bootstrap-password.ts';
import { CliError } from '../../src/cli/context.ts';
import { temporaryFolders } from '../helpers/temporary-folders.ts';

const temporaryFolder = temporaryFolders('aa-oidc-bootstrap-password-');
const login = { username: 'admin', password: 'one-time-secret-password' };

/** The one temporary file `prepareBootstrapPassword` wrote beside the bootstrap password file. */
function temporaryFileIn(dataDir: string): string {
  const names = readdirSync(dataDir).filter((name) =>
    /^bootstrap-password\.\d+\.[0-9a-f]{12}\.tmp$/.test(name),
  );
  assert.equal(names.length, 1, 'one temporary file');
  return path.join(dataDir, names[0]!);
}

describe('a bootstrap password whose temporary file was removed before it was put in place', () => {
  it('is written again in place (mode 0600) once its superuser is committed: the password is not lost', () => {
    const dataDir = path.join(temporaryFolder(), 'data');
    const prepared = prepareBootstrapPassword({ dataDir, origins: {} }, login);
    // What a start sharing the data directory does to a file it takes for a killed start's.
    rmSync(temporaryFileIn(dataDir));
    const file = prepared.publish();
    assert.equal(file, path.join(dataDir, 'bootstrap-password'));
    assert.match(readFileSync(file, 'utf8'), /^username: admin\npassword: one-time-secret-password$/m);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(readdirSync(dataDir), ['bootstrap-password'], 'no temporary file left');
  });

  it('stops with an error naming both files and how to set a password, without the password, when it cannot be written again', () => {
    const dataDir = path.join(temporaryFolder(), 'data');
    const prepared = prepareBootstrapPassword({ dataDir, origins: {} }, login);
    const temporary = temporaryFileIn(dataDir);
    rmSync(dataDir, { recursive: true });
    assert.throws(
      () => prepared.publish(),
      (error: unknown) => {
        assert.ok(error instanceof CliError);
        assert.ok(
          error.message.startsWith(
            `the superuser admin was created, but its one-time password file ${temporary} was removed before it could be moved to ${path.join(dataDir, 'bootstrap-password')}, and writing it there again failed (ENOENT`,
          ),
          error.message,
        );
        assert.ok(
          error.message.endsWith('; set a password with aa-oidc user set-password admin'),
          error.message,
        );
        assert.ok(!error.message.includes(login.password));
        return true;
      },
    );
  });
});
