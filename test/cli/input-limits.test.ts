import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { runCli } from '../../src/cli/main.ts';
import { openDatabase } from '../../src/db/connect.ts';
import { matchPassword } from '../../src/directory/builtin/passwords.ts';
import { captureIo, cli as runCliCaptured, type CliResult } from '../helpers/cli.ts';
import { testConfig, testEnv } from '../helpers/config.ts';
import { createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';

describe(`aa-oidc input limits: --pem and --password-stdin (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  const cli = (args: string[], stdin = ''): Promise<CliResult> =>
    runCliCaptured(args, testEnv(database), { stdin });

  /** How `password` matches the password `username` has in the database (`matchPassword`). */
  async function storedPasswordMatches(username: string, password: string): Promise<string> {
    const handle = openDatabase(testConfig(database).database);
    try {
      const row = await handle.db
        .selectFrom('app_user')
        .select('password_hash')
        .where('username', '=', username)
        .executeTakeFirstOrThrow();
      return await matchPassword(row.password_hash!, password);
    } finally {
      await handle.close();
    }
  }

  before(async () => {
    database = await createTestDatabase({ migrated: true });
  });
  after(() => database?.drop());

  it('refuses a --pem file over 64 KiB, and /dev/zero at once, naming the option and the limit', async () => {
    const key = generateKeyPairSync('rsa', { modulusLength: 2048 })
      .privateKey.export({ format: 'pem', type: 'pkcs8' })
      .toString();
    // A key the parser would take, with 64 KiB of text after it.
    const padded = path.join(database.dataDir, 'padded.pem');
    writeFileSync(padded, `${key}${'# padding\n'.repeat(6554)}`);
    const big = await cli(['keys', 'import', '--pem', padded, '--dry-run']);
    assert.equal(big.code, 1, big.stdout);
    assert.equal(
      big.stderr.trim(),
      `aa-oidc: --pem ${padded}: larger than 64 KiB; a PEM private key is a few kilobytes`,
    );

    const started = Date.now();
    const zero = await cli(['keys', 'import', '--pem', '/dev/zero', '--dry-run']);
    assert.equal(zero.code, 1);
    assert.match(zero.stderr, /^aa-oidc: --pem \/dev\/zero: larger than 64 KiB/);
    assert.ok(Date.now() - started < 5_000, 'refused without reading the endless file');

    // The key alone still imports.
    const plain = path.join(database.dataDir, 'plain.pem');
    writeFileSync(plain, key);
    const dry = await cli(['keys', 'import', '--pem', plain, '--dry-run']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /^dry run, nothing changed; would import: \S+ as active$/m);
  });

  it('refuses a --pem that looks like an option (a file name forgotten before the next option)', async () => {
    for (const [args, value] of [
      [['--pem', '--dry-run'], '--dry-run'],
      [['--pem', '-k.pem', '--dry-run'], '-k.pem'],
    ] as const) {
      const refused = await cli(['keys', 'import', ...args]);
      assert.equal(refused.code, 1, refused.stdout);
      assert.equal(
        refused.stderr,
        `aa-oidc: --pem ${JSON.stringify(value)} looks like an option, not a file; to name a file whose name starts with "-", write ${JSON.stringify(`./${value}`)}\n`,
      );
    }
  });

  it('refuses arguments and --password-stdin input that were not UTF-8, naming them, and writes nothing', async () => {
    // Node.js decodes argv as UTF-8, a byte that is not (Latin-1 \xe9) becoming U+FFFD.
    for (const args of [
      ['state', 'create', 'Caf\uFFFD', '--priority', '7'],
      ['group', 'create', '\uFFFD\uFFFD'],
      ['user', 'show', 'ren\uFFFD'],
    ]) {
      const result = await cli(args);
      assert.equal(result.code, 1, `aa-oidc ${args.join(' ')}: ${result.stdout}`);
      assert.equal(result.stdout, '');
      assert.equal(
        result.stderr,
        `aa-oidc: argument 3 (${JSON.stringify(args[2]).replace(/\uFFFD/g, '\\ufffd')}) holds bytes that are not UTF-8 (each shown here as \\ufffd); use a UTF-8 terminal or script (LANG, LC_ALL)\n`,
      );
    }
    const states = JSON.parse((await cli(['state', 'list', '--format', 'json'])).stdout) as unknown[];
    assert.deepEqual(states, []);
    const groups = JSON.parse((await cli(['group', 'list', '--format', 'json'])).stdout) as unknown[];
    assert.deepEqual(groups, []);

    const latin1 = await runCliCaptured(['user', 'create', 'latin1', '--password-stdin'], testEnv(database), {
      stdin: Buffer.from('mot de passe \xe9t\xe9\n', 'latin1'),
    });
    assert.equal(latin1.code, 1, latin1.stdout);
    assert.equal(
      latin1.stderr,
      'aa-oidc: --password-stdin: standard input holds bytes that are not UTF-8; write the password as UTF-8 text (a password no one can type again is never set)\n',
    );
    const users = JSON.parse((await cli(['user', 'list', '--format', 'json'])).stdout) as unknown[];
    assert.deepEqual(users, []);
  });

  it('refuses --password-stdin input over 8192 bytes, an endless pipe included, and takes the longest password', async () => {
    const long = await cli(['user', 'create', 'alice', '--password-stdin'], `${'a'.repeat(100_000)}\n`);
    assert.equal(long.code, 1);
    assert.equal(
      long.stderr.trim(),
      'aa-oidc: --password-stdin: standard input is longer than 8192 bytes; a password has at most 1024 characters',
    );

    // A pipe that never ends (`yes | aa-oidc user create …`): refused after the limit, not read on.
    let produced = 0;
    const endless = new Readable({
      read() {
        produced += 16_384;
        this.push(Buffer.alloc(16_384, 'y'));
      },
    });
    const captured = captureIo(testEnv(database), { overrides: { stdin: endless } });
    const code = await runCli(['user', 'create', 'bob', '--password-stdin'], captured.io);
    assert.equal(code, 1);
    assert.match(captured.stderr(), /--password-stdin: standard input is longer than 8192 bytes/);
    assert.ok(produced <= 64 * 1024, `read ${produced} bytes of an endless pipe`);

    const users = await cli(['user', 'list', '--format', 'json']);
    assert.deepEqual(JSON.parse(users.stdout), [], 'nobody was created');

    // 1024 characters of 3 UTF-8 bytes each (one UTF-16 unit, as sign-in counts), and the newline:
    // within the limit.
    const longest = '\u20ac'.repeat(1024);
    const created = await cli(['user', 'create', 'carol', '--password-stdin'], `${longest}\n`);
    assert.equal(created.code, 0, created.stderr);
  });

  it('drops one CRLF line end from --password-stdin and refuses a stray carriage return or other control character, writing nothing', async () => {
    // A file written on Windows ends its line in CRLF: the password is the text before it.
    const crlf = await cli(['user', 'create', 'windows-file', '--password-stdin'], 'correct horse\r\n');
    assert.equal(crlf.code, 0, crlf.stderr);
    assert.equal(await storedPasswordMatches('windows-file', 'correct horse'), 'normalized');

    for (const [stdin, named] of [
      ['correct horse\r', 'a control character at its end: U+000D, a carriage return'],
      ['correct horse\r\r\n', 'a control character at its end: U+000D, a carriage return'],
      ['correct\rhorse\n', 'a control character: U+000D, a carriage return'],
      ['correct\thorse\n', 'a control character: U+0009, a tab;'],
      ['correct horse\u001b[A\n', 'a control character: U+001B, an escape'],
      ['correct\u0085horse\n', 'a control character: U+0085;'],
    ] as const) {
      for (const args of [
        ['user', 'create', 'stray', '--password-stdin'],
        ['user', 'set-password', 'windows-file', '--password-stdin'],
      ]) {
        const refused = await cli(args, stdin);
        assert.equal(refused.code, 1, `${JSON.stringify(stdin)}: ${refused.stdout}`);
        assert.equal(refused.stdout, '');
        assert.ok(
          refused.stderr.startsWith(`aa-oidc: --password-stdin: the password holds ${named}`),
          `${JSON.stringify(stdin)}: ${refused.stderr}`,
        );
        assert.ok(!refused.stderr.includes('horse'), 'the message never repeats the password');
      }
    }
    const users = JSON.parse((await cli(['user', 'list', '--format', 'json'])).stdout) as Array<{
      username: string;
    }>;
    assert.ok(!users.some((user) => user.username === 'stray'), 'nobody was created');
    assert.equal(await storedPasswordMatches('windows-file', 'correct horse'), 'normalized', 'unchanged');
  });

  it('refuses a bidirectional control or an invisible character in --password-stdin, naming it, and drops the byte order mark a file starts with', async () => {
    const created = await cli(['user', 'create', 'bom-file', '--password-stdin'], '\ufeffcorrect horse\n');
    assert.equal(created.code, 0, created.stderr);
    assert.equal(await storedPasswordMatches('bom-file', 'correct horse'), 'normalized');

    for (const [stdin, named] of [
      ['correct\u202ehorse\n', 'U+202E, a bidirectional control character'],
      ['correct horse\u200f\n', 'U+200F, a bidirectional control character'],
      ['correct\u200bhorse\n', 'U+200B, an invisible character'],
      ['correct\ufeffhorse\n', 'U+FEFF, an invisible character'],
    ] as const) {
      for (const args of [
        ['user', 'create', 'hidden', '--password-stdin'],
        ['user', 'set-password', 'bom-file', '--password-stdin'],
      ]) {
        const refused = await cli(args, stdin);
        assert.equal(refused.code, 1, `${JSON.stringify(stdin)}: ${refused.stdout}`);
        assert.equal(refused.stdout, '');
        assert.ok(
          refused.stderr.startsWith(
            `aa-oidc: --password-stdin: the password holds a hidden character: ${named};`,
          ),
          `${JSON.stringify(stdin)}: ${refused.stderr}`,
        );
        assert.ok(!refused.stderr.includes('horse'), 'the message never repeats the password');
      }
    }
    const users = JSON.parse((await cli(['user', 'list', '--format', 'json'])).stdout) as Array<{
      username: string;
    }>;
    assert.ok(!users.some((user) => user.username === 'hidden'), 'nobody was created');
    assert.equal(await storedPasswordMatches('bom-file', 'correct horse'), 'normalized', 'unchanged');
  });
});
