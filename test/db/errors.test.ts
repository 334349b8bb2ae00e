import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { pgDumpCommand } from '../../src/db/backup.ts';
import { describeDatabase, explainPostgresConnectError } from '../../src/db/errors.ts';

/**
 * How an error names a PostgreSQL database whose port is read from PGPORT or a `port` parameter: as
 * written when it is no port, never a number the operator did not write.
 */
describe('the PostgreSQL address in error messages', () => {
  const saved = process.env.PGPORT;
  afterEach(() => {
    if (saved === undefined) delete process.env.PGPORT;
    else process.env.PGPORT = saved;
  });
  const target = (url: string) => ({ kind: 'postgres', url }) as const;

  it('shows a PGPORT or a port parameter that is no port as written, not as 5432 or 16', () => {
    process.env.PGPORT = '5433';
    assert.equal(
      describeDatabase(target('postgres://aa@db.example.org/aa_oidc')),
      'PostgreSQL at db.example.org:5433 (database aa_oidc)',
    );
    assert.equal(
      describeDatabase(target('postgres://aa@db.example.org:6000/aa_oidc')),
      'PostgreSQL at db.example.org:6000 (database aa_oidc)',
    );
    for (const port of ['54x2', '0x10', '0']) {
      process.env.PGPORT = port;
      assert.equal(
        describeDatabase(target('postgres://aa@db.example.org/aa_oidc')),
        `PostgreSQL at db.example.org:"${port}" (database aa_oidc)`,
      );
      assert.match(pgDumpCommand('postgres://aa@db.example.org/aa_oidc'), new RegExp(`--port="${port}" `));
    }
    delete process.env.PGPORT;
    assert.equal(
      describeDatabase(target('postgres://aa@db.example.org/aa_oidc?port=0x10')),
      'PostgreSQL at db.example.org:"0x10" (database aa_oidc)',
    );
    // The driver takes a parameter's last value.
    assert.equal(
      describeDatabase(target('postgres://aa@db.example.org/aa_oidc?port=5433&port=5434')),
      'PostgreSQL at db.example.org:5434 (database aa_oidc)',
    );
    assert.match(
      explainPostgresConnectError(
        Object.assign(new Error('connect ENOENT'), { code: 'ENOENT', syscall: 'connect' }),
        'postgres://aa@/aa_oidc?host=/run/postgresql&port=54x2',
        { setting: 'AA_OIDC_DATABASE_URL', timeoutMs: 5000, timeoutSetting: 'x' },
      ),
      /is \/run\/postgresql one of its unix_socket_directories \(and "54x2" its port\)/,
    );
  });

  it('names the host and user the driver connects with when the URL gives a parameter twice: the last one', () => {
    // pg-connection-string keeps a parameter's last value; an empty one leaves the URL's own.
    const url =
      'postgres://aa@db.example.org:6000/aa_oidc?host=first.example.org&host=second.example.org&user=one&user=two';
    assert.equal(describeDatabase(target(url)), 'PostgreSQL at second.example.org:6000 (database aa_oidc)');
    assert.match(
      explainPostgresConnectError(
        Object.assign(new Error('password authentication failed for user "two"'), { code: '28P01' }),
        url,
        { setting: 'AA_OIDC_DATABASE_URL', timeoutMs: 5000, timeoutSetting: 'x' },
      ),
      /^the server refused user "two" /,
    );
    assert.match(pgDumpCommand(url), /--host=second\.example\.org --port=6000 --username=two /);
    assert.equal(
      describeDatabase(target('postgres://aa@db.example.org:6000/aa_oidc?host=/run/postgresql&host=')),
      'PostgreSQL at db.example.org:6000 (database aa_oidc)',
    );
  });
});
