import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { quotedInput } from '../../src/util/visible-text.ts';
import { cli as runCli, type CliResult } from '../helpers/cli.ts';
import { testEnv } from '../helpers/config.ts';
import { createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';

/** 3,000 characters: what a hostile or broken script may pass for a name. */
const LONG = 'x'.repeat(3000);
/** How every message quotes `LONG`: its first and last 40 characters around an ellipsis, and its length. */
const LONG_QUOTED = `"${'x'.repeat(40)}…${'x'.repeat(40)}" (3000 characters)`;

describe('quotedInput', () => {
  it('quotes a value so that blanks and control characters show, and cuts a long one with its length', () => {
    assert.equal(quotedInput('   '), '"   "');
    assert.equal(quotedInput(''), '""');
    assert.equal(quotedInput('a\u001b[2J\u202e'), '"a\\u001b[2J\\u202e"');
    assert.equal(quotedInput('x'.repeat(80)), `"${'x'.repeat(80)}"`);
    assert.equal(quotedInput(LONG), LONG_QUOTED);
    // Cut by characters, never inside one written as two UTF-16 units.
    assert.equal(quotedInput('𠀀'.repeat(81)), `"${'𠀀'.repeat(40)}…${'𠀀'.repeat(40)}" (81 characters)`);
    // Cut in the middle: the end, where a URI's fault often is, stays in sight.
    assert.equal(
      quotedInput(`https://rp.example/${'p'.repeat(200)}/cb#\u001b`),
      `"https://rp.example/${'p'.repeat(21)}…${'p'.repeat(35)}/cb#\\u001b" (224 characters)`,
    );
  });
});

describe(`aa-oidc: the values a command's error names (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  const cli = (args: string[], extra: Record<string, string> = {}): Promise<CliResult> =>
    runCli(args, testEnv(database, extra));
  async function ok(...args: string[]): Promise<string> {
    const result = await cli(args);
    assert.equal(result.code, 0, `aa-oidc ${args.join(' ')} failed: ${result.stderr}`);
    return result.stdout;
  }
  async function refused(...args: string[]): Promise<string> {
    const result = await cli(args);
    assert.equal(result.code, 1, `aa-oidc ${args.join(' ')}: ${result.stdout}`);
    return result.stderr;
  }

  before(async () => {
    database = await createTestDatabase();
    await ok('migrate');
    await ok('state', 'create', 'Member', '--priority', '10');
    await ok('group', 'create', 'Pilots');
    const created = await runCli(['user', 'create', 'alice', '--password-stdin'], testEnv(database), {
      stdin: 'correct horse battery staple\n',
    });
    assert.equal(created.code, 0, created.stderr);
    await ok(
      'app',
      'create',
      '--name',
      'Wiki',
      '--client-id',
      'wiki',
      '--redirect-uri',
      'https://wiki.test/cb',
    );
  });
  after(() => database?.drop());

  it('bcl test quotes the client_ids that failed, and refuses a blank one up front', async () => {
    const failed = await cli(['bcl', 'test', ' wiki', 'no-such\tapp']);
    assert.equal(failed.code, 1);
    assert.equal(
      failed.stderr,
      'aa-oidc: 2 of 2 test deliveries did not succeed: " wiki", "no-such\\tapp"\n',
    );
    assert.equal(
      await refused('bcl', 'test', 'wiki', '   '),
      'aa-oidc: client_id: a blank client_id ("   ") names no application; give the client_id of each application to test (see aa-oidc app list)\n',
    );
  });

  it('names a 3,000-character value by its first and last 40 characters and its length, wherever it is refused', async () => {
    for (const [args, expected] of [
      [['bcl', 'test', LONG], `aa-oidc: 1 of 1 test deliveries did not succeed: ${LONG_QUOTED}\n`],
      [
        ['bcl', 'list', '--user-id', LONG],
        `aa-oidc: --user-id must be a user's id, a whole number from 1 to ${Number.MAX_SAFE_INTEGER} (got ${LONG_QUOTED})\n`,
      ],
      [
        ['bcl', 'list', '--limit', LONG],
        `aa-oidc: --limit must be an integer from 1 to 1000 (got ${LONG_QUOTED})\n`,
      ],
      [['audit', 'list', '--since', LONG], { startsWith: `aa-oidc: --since ${LONG_QUOTED} is not a time: ` }],
      [
        ['audit', 'list', '--kind', LONG],
        { startsWith: `aa-oidc: --kind ${LONG_QUOTED} is not an audit event kind` },
      ],
      [
        ['tokens', 'audit', '--username', LONG],
        `aa-oidc: no user named ${LONG_QUOTED} (see 'aa-oidc user list')\n`,
      ],
      [
        ['tokens', 'revoke-user', '--username', LONG],
        `aa-oidc: no user named ${LONG_QUOTED} (see 'aa-oidc user list')\n`,
      ],
      // The applications' messages too: a redirect URI's fault, often at its end, stays in sight.
      [['app', 'show', LONG], `aa-oidc: client_id: no application with client_id ${LONG_QUOTED}\n`],
      [['keys', 'retire', LONG], { startsWith: `aa-oidc: ${LONG_QUOTED} is not a key id` }],
      [['user', 'show', LONG], { startsWith: `aa-oidc: invalid username ${LONG_QUOTED}: ` }],
      [['state', 'delete', LONG], { startsWith: `aa-oidc: invalid state name ${LONG_QUOTED}: ` }],
    ] as const) {
      const stderr = await refused(...args);
      if (typeof expected === 'string') assert.equal(stderr, expected);
      else assert.ok(stderr.startsWith(expected.startsWith), stderr);
      assert.ok(stderr.length < 400, `${args.slice(0, 2).join(' ')}: ${stderr.length} characters`);
    }
  });

  it('hints at the name a looked-up one differs from only in look-alike letters, matching none', async () => {
    const differs = (given: string, entity: string, name: string, detail: string) =>
      `"${given}" differs only in characters that look alike from the ${entity} "${name}" (${detail})`;
    const cyrillicA = '"а" U+0430 where it has "a" U+0061';
    for (const [args, expected] of [
      [
        ['user', 'show', 'аlice'],
        `unknown user "аlice": no user has this username; ${differs('аlice', 'user', 'alice', cyrillicA)}`,
      ],
      [
        ['user', 'set-locale', 'аlice', 'de'],
        `unknown user "аlice": no user has this username; ${differs('аlice', 'user', 'alice', cyrillicA)}`,
      ],
      [
        ['tokens', 'revoke-user', '--username', 'аlice'],
        `no user named "аlice" (see 'aa-oidc user list'); ${differs('аlice', 'user', 'alice', cyrillicA)}`,
      ],
      [
        ['tokens', 'audit', '--username', 'аlice'],
        `no user named "аlice" (see 'aa-oidc user list'); ${differs('аlice', 'user', 'alice', cyrillicA)}`,
      ],
      [
        ['state', 'rename', 'MEМBER', 'Members'],
        `unknown state "MEМBER"; existing states: Member; ${differs('MEМBER', 'state', 'Member', '"М" U+041C where it has "m" U+006D')}`,
      ],
      [
        ['user', 'add-group', 'alice', 'Рilots'],
        `unknown group "Рilots"; existing groups: Pilots; ${differs('Рilots', 'group', 'Pilots', '"Р" U+0420 where it has "P" U+0050')}`,
      ],
      [
        ['app', 'show', 'wіki'],
        `client_id: no application with client_id "wіki"; ${differs('wіki', 'application', 'wiki', '"і" U+0456 where it has "i" U+0069')}`,
      ],
      [
        ['app', 'update', 'wіki', '--name', 'Wiki 2'],
        `client_id: no application with client_id "wіki"; ${differs('wіki', 'application', 'wiki', '"і" U+0456 where it has "i" U+0069')}`,
      ],
      [
        ['policy', 'show', 'wіki', '--username', 'alice'],
        `no application with client_id "wіki" (see aa-oidc app list); ${differs('wіki', 'application', 'wiki', '"і" U+0456 where it has "i" U+0069')}`,
      ],
      [
        ['app', 'create', '--name', 'Forum', '--redirect-uri', 'https://forum.test/cb', '--state', 'Mеmber'],
        `states: unknown state "Mеmber"; existing states: Member; ${differs('Mеmber', 'state', 'Member', '"е" U+0435 where it has "e" U+0065')}`,
      ],
    ] as const) {
      assert.equal(await refused(...args), `aa-oidc: ${expected}\n`);
    }
    // A name that differs otherwise gets no hint.
    assert.equal(
      await refused('user', 'show', 'alicе2'),
      'aa-oidc: unknown user "alicе2": no user has this username\n',
    );
  });

  it('lists and shows under an AA_OIDC_SECRET_KEY that cannot decrypt the signing keys; changes still stop', async () => {
    await ok('keys', 'rotate');
    const otherSecretKey = { AA_OIDC_SECRET_KEY: 'another-secret-key-of-at-least-32-characters' };
    for (const args of [
      ['app', 'list'],
      ['app', 'show', 'wiki'],
      ['user', 'list'],
      ['user', 'show', 'alice'],
      ['state', 'list'],
      ['group', 'list'],
      ['audit', 'list'],
      ['bcl', 'list'],
      ['tokens', 'audit'],
      ['policy', 'show', 'wiki', '--username', 'alice'],
    ]) {
      const listed = await cli([...args, '--format', 'json'], otherSecretKey);
      assert.equal(listed.code, 0, `${args.join(' ')}: ${listed.stderr}`);
      assert.equal(listed.stderr, '');
      JSON.parse(listed.stdout);
    }
    const changed = await cli(['user', 'set-locale', 'alice', 'de'], otherSecretKey);
    assert.equal(changed.code, 1);
    assert.match(
      changed.stderr,
      /cannot be decrypted: AA_OIDC_SECRET_KEY is not the secret key it was encrypted with/,
    );
  });
});
