import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { latestMigrationName } from '../../src/db/migrate.ts';
import { createTwoFactorService } from '../../src/two-factor/service.ts';
import { currentCode } from '../../src/two-factor/totp.ts';
import { cli, startCli } from '../helpers/cli.ts';
import { testEnv } from '../helpers/config.ts';
import { connect, createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';

/**
 * `aa-oidc check` prints findings whatever stops it from checking everything: a configuration that
 * cannot be loaded, a database it cannot open, pending migrations, signing keys that
 * AA_OIDC_SECRET_KEY cannot decrypt; with `--format json`, one JSON document every time, so that a
 * monitoring script always reads one. And a database a newer release migrated is reported.
 */

interface Finding {
  id: string;
  level: 'error' | 'warning';
  message: string;
  hint: string;
}

function findings(stdout: string): Finding[] {
  return JSON.parse(stdout) as Finding[];
}

async function run(database: TestDatabase, statement: string): Promise<void> {
  const handle = connect(database);
  try {
    await sql.raw(statement).execute(handle.db);
  } finally {
    await handle.close();
  }
}

describe(`aa-oidc check: every outcome is findings (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  before(async () => {
    database = await createTestDatabase({ migrated: true });
  });
  after(async () => database.drop());

  it('reports a configuration that cannot be loaded as E011, naming the setting, with exit code 2', async () => {
    const env = testEnv(database, { AA_OIDC_PORT: 'abc' });
    const json = await cli(['check', '--format', 'json'], env);
    assert.equal(json.code, 2, json.stderr);
    const [finding, ...others] = findings(json.stdout);
    assert.deepEqual(others, []);
    assert.equal(finding!.id, 'E011');
    assert.equal(finding!.level, 'error');
    assert.match(
      finding!.message,
      /^the configuration cannot be loaded, so no other check ran: AA_OIDC_PORT: expected an integer between 0 and 65535 \(got "abc"\)$/,
    );
    assert.match(finding!.hint, /^fix that setting /);
    // The one line every command writes on a configuration error stays.
    assert.equal(
      json.stderr,
      'aa-oidc: configuration error: AA_OIDC_PORT: expected an integer between 0 and 65535 (got "abc")\n',
    );
    const text = await cli(['check'], env);
    assert.equal(text.code, 2);
    assert.match(text.stdout, /^E011 error: the configuration cannot be loaded, .*AA_OIDC_PORT: /);
    assert.match(text.stdout, /^ {2}hint: fix that setting /m);
  });

  it('never shows a secret setting in E011', async () => {
    const secret = 'too-short-a-secret';
    const json = await cli(['check', '--format', 'json'], testEnv(database, { AA_OIDC_SECRET_KEY: secret }));
    assert.equal(json.code, 2, json.stderr);
    assert.deepEqual(
      findings(json.stdout).map((finding) => finding.id),
      ['E011'],
    );
    assert.match(json.stdout, /AA_OIDC_SECRET_KEY: must be at least 32 characters/);
    assert.ok(!json.stdout.includes(secret) && !json.stderr.includes(secret), 'no secret');
  });

  it('reports a development secret key file it cannot read as E011, as JSON with --format json', async () => {
    // A directory in its place (mode 000 reads the same, but not to root, who runs the tests).
    const dataDir = path.join(database.dataDir, 'unreadable-key');
    const keyFile = path.join(dataDir, 'secret.key');
    mkdirSync(keyFile, { recursive: true });
    const json = await cli(['check', '--format', 'json'], testEnv(database, { AA_OIDC_DATA_DIR: dataDir }));
    assert.equal(json.code, 2, json.stderr);
    const [finding, ...others] = findings(json.stdout);
    assert.deepEqual(others, []);
    assert.equal(finding!.id, 'E011');
    assert.equal(
      finding!.message,
      `the configuration cannot be loaded, so no other check ran: ${keyFile}: cannot read the development secret key file: it is a directory; remove it to have a new key generated, or set AA_OIDC_SECRET_KEY (at least 32 random characters)`,
    );
    assert.match(
      json.stderr,
      /^aa-oidc: configuration error: .*secret\.key: cannot read the development secret key file/,
    );
  });

  it("reports an Alliance Auth MariaDB URL's unknown ssl-mode as E011, before connecting", async () => {
    const json = await cli(
      ['check', '--format', 'json'],
      testEnv(database, {
        AA_OIDC_DIRECTORY: 'alliance-auth',
        // Nothing listens there: the configuration is refused before any connection is tried.
        AA_OIDC_AA_DATABASE_URL: 'mysql://aa:hunter2@127.0.0.1:9/alliance_auth?ssl-mode=SOMETIMES',
        AA_OIDC_AA_LOGIN_URL: 'http://localhost:8080/',
      }),
    );
    assert.equal(json.code, 2, json.stderr);
    const [finding, ...others] = findings(json.stdout);
    assert.deepEqual(others, []);
    assert.equal(finding!.id, 'E011');
    assert.equal(
      finding!.message,
      'the configuration cannot be loaded, so no other check ran: AA_OIDC_AA_DATABASE_URL: ssl-mode "SOMETIMES" is not one of DISABLED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY',
    );
    assert.ok(!json.stdout.includes('hunter2') && !json.stderr.includes('hunter2'), 'no password');
  });

  it('reports a database it cannot open as E009, with the checks of the configuration alone', async () => {
    const missing = path.join(database.dataDir, 'missing', 'aa-oidc.sqlite');
    const json = await cli(
      ['check', '--format', 'json'],
      testEnv(database, { AA_OIDC_DATABASE_URL: `sqlite:${missing}`, AA_OIDC_OIDC_SCOPES: 'profile,email' }),
    );
    assert.equal(json.code, 1, json.stderr);
    const [unread, ...rest] = findings(json.stdout);
    assert.equal(unread!.id, 'E009');
    assert.match(
      unread!.message,
      new RegExp(
        `^could not read the applications, the signing keys and the directory.*: the SQLite file ${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(AA_OIDC_DATABASE_URL\\) does not exist`,
      ),
    );
    // The checks of the configuration still ran.
    assert.deepEqual(
      rest.map((finding) => finding.id),
      ['E004'],
    );
    assert.match(json.stderr, /system check found 2 error\(s\): E009, E004/);
  });
});

describe(`aa-oidc check: migrations (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  before(async () => {
    database = await createTestDatabase({ migrated: true });
  });
  after(async () => database.drop());

  it('reports pending migrations as E012, as JSON with --format json, exit code 1', async () => {
    const latest = latestMigrationName();
    // As the release before the latest migration left it (only the record is gone: not migrated again).
    const behind = await createTestDatabase({ migrated: true });
    try {
      await run(behind, `delete from schema_migration where name = '${latest}'`);
      const json = await cli(['check', '--format', 'json'], testEnv(behind));
      assert.equal(json.code, 1, json.stderr);
      const reported = findings(json.stdout);
      assert.deepEqual(
        reported.map((finding) => finding.id),
        ['E012'],
      );
      assert.match(
        reported[0]!.message,
        new RegExp(
          `^the database has 1 pending migration\\(s\\) \\(${latest}\\), so the checks that read it report nothing`,
        ),
      );
      assert.match(reported[0]!.hint, /^aa-oidc migrate applies them/);
      assert.match(json.stderr, /system check found 1 error\(s\): E012/);
      const text = await cli(['check'], testEnv(behind));
      assert.equal(text.code, 1);
      assert.match(text.stdout, /^E012 error: the database has 1 pending migration\(s\)/);
    } finally {
      await behind.drop();
    }
  });

  it("reports a pending migration that would stop as E014, in migrate's dry run's words, and E012 alone once mended", async () => {
    const at0081 = await createTestDatabase({ migrated: true });
    try {
      // A database at 0081 (the index 0082 makes is gone, and its record), holding `Wiki` and `wiki`.
      await run(at0081, 'drop index application_client_id_folded_uq');
      await run(at0081, "delete from schema_migration where name = '0082_client_id_case_unique'");
      for (const clientId of ['wiki', 'Wiki', 'forum'])
        await run(
          at0081,
          `insert into application (client_id, name, redirect_uris, post_logout_redirect_uris, client_type, grant_types, created_at, updated_at)
            values ('${clientId}', '${clientId}', '[]', '[]', 'public', '[]', 1, 1)`,
        );
      const env = testEnv(at0081);
      const json = await cli(['check', '--format', 'json'], env);
      assert.equal(json.code, 1, json.stderr);
      const reported = findings(json.stdout);
      assert.deepEqual(
        reported.map((finding) => [finding.id, finding.level]),
        [
          ['E012', 'error'],
          ['E014', 'error'],
        ],
      );
      const [pending, wouldStop] = reported;
      assert.match(
        pending!.message,
        /^the database has 1 pending migration\(s\) \(0082_client_id_case_unique\)/,
      );
      assert.match(
        wouldStop!.message,
        /^migration 0082_client_id_case_unique would fail: cannot make client ids unique regardless of case: applications have client ids that differ only in case \("Wiki" and "wiki"\)\. Keep one application of each set/,
      );
      assert.match(
        wouldStop!.hint,
        /^aa-oidc migrate would stop at it, applying none of the pending migrations/,
      );
      assert.match(json.stderr, /system check found 2 error\(s\): E012, E014/);
      // The words of the dry run, which fails on it.
      const dryRun = await cli(['migrate', '--dry-run'], env);
      assert.equal(dryRun.code, 1);
      assert.equal(dryRun.stderr, `aa-oidc: ${wouldStop!.message}\n`);
      const text = await cli(['check'], env);
      assert.equal(text.code, 1);
      assert.match(text.stdout, /\nE014 error: migration 0082_client_id_case_unique would fail: /);

      // Once one of the twins is removed, as the message says, 0082 is only pending.
      await run(at0081, "delete from application where client_id = 'Wiki'");
      const mended = await cli(['check', '--format', 'json'], env);
      assert.equal(mended.code, 1, mended.stderr);
      assert.deepEqual(
        findings(mended.stdout).map((finding) => finding.id),
        ['E012'],
      );
    } finally {
      await at0081.drop();
    }
  });

  it('warns (W021) of a database a newer release migrated; a production serve logs a warning, and /readyz stays ready', async () => {
    await run(
      database,
      "insert into schema_migration (name, timestamp) values ('0099_future', '2099-01-01T00:00:00.000Z')",
    );
    const env = testEnv(database);
    const json = await cli(['check', '--format', 'json'], env);
    assert.equal(json.code, 0, json.stderr);
    // No signing key yet (W011): serve creates one below.
    const [finding, ...others] = findings(json.stdout);
    assert.deepEqual(
      others.map((other) => other.id),
      ['W011'],
    );
    assert.equal(finding!.id, 'W021');
    assert.equal(finding!.level, 'warning');
    assert.match(
      finding!.message,
      /^the database was migrated by a newer release of aa-oidc: it records 1 migration\(s\) this release does not have \(0099_future\)/,
    );
    assert.match(finding!.hint, /^run the newer release; .*additive \(docs\/upgrading\.md\)/);
    assert.match(
      (await cli(['check'], env)).stdout,
      /^W021 warning: the database was migrated by a newer release/,
    );
    // check reports it as a finding, not a warning line besides.
    assert.equal(json.stderr, '');
    // The administrative commands run on it, with one warning line on stderr: stdout stays their answer.
    const listed = await cli(['app', 'list', '--format', 'json'], env);
    assert.equal(listed.code, 0, listed.stderr);
    assert.deepEqual(JSON.parse(listed.stdout), []);
    assert.match(
      listed.stderr,
      /^aa-oidc: warning: the database was migrated by a newer release of aa-oidc: it records 1 migration\(s\) this release does not have \(0099_future\); .* \(W021; see aa-oidc check\)\n$/,
    );

    const serve = startCli(['serve'], {
      ...env,
      NODE_ENV: 'production',
      AA_OIDC_SECRET_KEY: 'a-test-secret-key-long-enough-0123456789',
      AA_OIDC_ISSUER: 'https://auth.example.org/o',
      AA_OIDC_TRUST_PROXY: 'true',
      AA_OIDC_HOST: '127.0.0.1',
      AA_OIDC_PORT: '0',
      AA_OIDC_METRICS_ENABLED: 'false',
    });
    try {
      const [, port] = await serve.waitFor(/ server on http:\/\/127\.0\.0\.1:(\d+) /);
      const warning = serve
        .stdout()
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as { level: number; msg: string; migrations?: string[] })
        .find((line) => line.msg.startsWith('the database was migrated by a newer release of aa-oidc'));
      assert.ok(warning, serve.stdout());
      assert.equal(warning.level, 40, 'warn');
      assert.deepEqual(warning.migrations, ['0099_future']);
      // Old instances may keep serving during an upgrade whose migrations are additive.
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
      assert.equal(ready.status, 200, await ready.text());
    } finally {
      assert.equal(await serve.stop(), 0);
    }
  });
});

describe(`aa-oidc check and two-factor secrets sealed under another AA_OIDC_SECRET_KEY (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  const secretKey = 'the-secret-key-of-this-install-long-enough-42';
  before(async () => {
    database = await createTestDatabase({ migrated: true });
  });
  after(async () => database.drop());

  it('warns (W023) naming the users whose confirmed enrolment it cannot decrypt, never a pending one, and exits 0', async () => {
    const handle = connect(database);
    try {
      const serviceUnder = (key: string) =>
        createTwoFactorService({
          db: handle.db,
          secretKey: key,
          logger: { warn: () => undefined },
          issuerName: 'Goon Fleet',
          audit: { publish: () => undefined },
        });
      const enrol = async (key: string, id: number, confirm: boolean) => {
        const service = serviceUnder(key);
        const user = { id, username: `user${id}` };
        const enrolment = await service.beginEnrolment(user);
        if (confirm)
          assert.ok((await service.confirmEnrolment(user, currentCode(enrolment.secret), enrolment.id)).ok);
      };
      const another = 'the-secret-key-of-another-install-long-enough';
      await enrol(secretKey, 101, true);
      await enrol(another, 102, true);
      await enrol(another, 103, false);
      await enrol(secretKey, 104, true);
      await handle.db
        .updateTable('totp_enrolment')
        .set({ secret_encrypted: 'v1.garbled.row' })
        .where('user_id', '=', 104)
        .execute();
    } finally {
      await handle.close();
    }

    const json = await cli(
      ['check', '--format', 'json'],
      testEnv(database, { AA_OIDC_SECRET_KEY: secretKey }),
    );
    assert.equal(json.code, 0, json.stderr);
    // W011 too: no serve has created a signing key in this database.
    const reported = findings(json.stdout).filter((finding) => finding.id !== 'W011');
    assert.deepEqual(
      reported.map((finding) => [finding.id, finding.level]),
      [['W023', 'warning']],
    );
    assert.match(
      reported[0]!.message,
      /^the two-factor secrets of 2 users \(user id 102, 104\) cannot be decrypted: AA_OIDC_SECRET_KEY is likely not the secret key they were stored under/,
    );
    assert.ok(!json.stdout.includes(secretKey), 'no secret');
  });
});

describe(`aa-oidc check and keys list with another AA_OIDC_SECRET_KEY (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  const otherSecret = 'another-secret-key-that-is-long-enough-42';
  before(async () => {
    database = await createTestDatabase({ migrated: true });
  });
  after(async () => database.drop());

  it('reports the keys it cannot decrypt as E013 and still runs the other checks; keys list lists them', async () => {
    const env = testEnv(database);
    const rotated = await cli(['keys', 'rotate', '--force'], env);
    assert.equal(rotated.code, 0, rotated.stderr);
    const active = /^active: (\S+)/m.exec(rotated.stdout)![1]!;
    const next = /^next: (\S+)/m.exec(rotated.stdout)![1]!;
    const wrong = testEnv(database, { AA_OIDC_SECRET_KEY: otherSecret, AA_OIDC_OIDC_SCOPES: 'profile' });

    const json = await cli(['check', '--format', 'json'], wrong);
    assert.equal(json.code, 1, json.stderr);
    const reported = findings(json.stdout);
    // E004: the other checks ran.
    assert.deepEqual(
      reported.map((finding) => finding.id),
      ['E013', 'E004'],
    );
    assert.equal(
      reported[0]!.message,
      `2 signing keys ${active} (active), ${next} (next) cannot be decrypted: AA_OIDC_SECRET_KEY is not the secret key they were encrypted with; ` +
        'serve and worker refuse to start, and the commands that load the signing keys refuse to run (aa-oidc keys list shows them)',
    );
    assert.match(reported[0]!.hint, /^configure the AA_OIDC_SECRET_KEY the keys were encrypted with again/);
    assert.match(json.stderr, /system check found 2 error\(s\): E013, E004/);
    assert.ok(!json.stdout.includes(otherSecret) && !json.stderr.includes(otherSecret), 'no secret');

    const listed = await cli(['keys', 'list', '--format', 'json'], wrong);
    assert.equal(listed.code, 0, listed.stderr);
    assert.deepEqual(
      (JSON.parse(listed.stdout) as Array<{ kid: string; status: string }>).map((key) => [
        key.kid,
        key.status,
      ]),
      [
        [active, 'active'],
        [next, 'next'],
      ],
    );
    assert.match(
      listed.stderr,
      /^aa-oidc: note: 2 signing keys .* cannot be decrypted: .* \(E013; see aa-oidc check\)$/m,
    );

    // What would write a key encrypted with another secret (or sign) still refuses.
    const refused = await cli(['keys', 'rotate', '--force'], wrong);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /cannot be decrypted: AA_OIDC_SECRET_KEY is not the secret key/);

    // With the right secret, nothing to report.
    assert.deepEqual(findings((await cli(['check', '--format', 'json'], env)).stdout), []);
    assert.equal((await cli(['keys', 'list'], env)).stderr, '');
  });
});
