import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parseTime } from '../../src/cli/commands/audit.ts';
import { cli as runCli, type CliResult } from '../helpers/cli.ts';
import { testEnv } from '../helpers/config.ts';
import { createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';

describe(`aa-oidc audit list (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  const cli = (...args: string[]): Promise<CliResult> => runCli(args, testEnv(database));
  async function ok(...args: string[]): Promise<string> {
    const result = await cli(...args);
    assert.equal(result.code, 0, `aa-oidc ${args.join(' ')} failed: ${result.stderr}`);
    return result.stdout;
  }

  before(async () => {
    database = await createTestDatabase();
    await ok('migrate');
    // Operator changes through the CLI: each is an admin_change event, stored in the database.
    await ok('state', 'create', 'Member', '--priority', '100', '--oidc-access');
    await ok('group', 'create', 'Pilots');
  });
  after(async () => database.drop());

  it('lists the events of earlier commands as JSON, filtered by kind and time', async () => {
    const events = JSON.parse(
      await ok('audit', 'list', '--kind', 'admin_change', '--since', '1h', '--format', 'json'),
    ) as Array<Record<string, unknown>>;
    assert.deepEqual(
      events.map((event) => [event.kind, event.entity, event.name, event.action]),
      [
        ['admin_change', 'group', 'Pilots', 'created'],
        ['admin_change', 'state', 'Member', 'created'],
      ],
    );
    for (const event of events) {
      assert.equal(typeof event.id, 'number');
      assert.match(String(event.time), /^\d{4}-\d{2}-\d{2}T/);
      assert.match(String(event.actor), /^cli/);
    }
    const none = JSON.parse(
      await ok('audit', 'list', '--kind', 'policy_denied', '--format', 'json'),
    ) as unknown[];
    assert.deepEqual(none, []);
    const future = JSON.parse(
      await ok('audit', 'list', '--since', '2999-01-01', '--format', 'json'),
    ) as unknown[];
    assert.deepEqual(future, []);
  });

  it('prints a table with one line per event saying what happened', async () => {
    const table = await ok('audit', 'list', '--limit', '1');
    const lines = table.trim().split('\n');
    assert.equal(lines.length, 2);
    assert.match(lines[0]!, /^TIME\s+KIND\s+USER_ID\s+CLIENT_ID\s+WHAT$/);
    assert.match(lines[1]!, /admin_change\s+group Pilots created by cli/);
  });

  it('says so when a kind asked for is one the database does not keep (audit.databaseExclude)', async () => {
    const excluded = await cli('audit', 'list', '--kind', 'token_introspected', '--format', 'json');
    assert.equal(excluded.code, 0, excluded.stderr);
    assert.deepEqual(JSON.parse(excluded.stdout), []);
    assert.match(
      excluded.stderr,
      /note: the database does not keep token_introspected events \(audit\.databaseExclude\); they go to the log/,
    );
    const kept = await runCli(['audit', 'list', '--kind', 'token_introspected', '--format', 'json'], {
      ...testEnv(database),
      AA_OIDC_AUDIT_DATABASE_EXCLUDE: '',
    });
    assert.equal(kept.code, 0, kept.stderr);
    assert.doesNotMatch(kept.stderr, /does not keep/);
    const others = await cli('audit', 'list', '--kind', 'admin_change', '--limit', '1');
    assert.doesNotMatch(others.stderr, /does not keep/);
  });

  it('says so when the database keeps no audit events at all (audit.database false)', async () => {
    const off = await runCli(['audit', 'list', '--limit', '1', '--format', 'json'], {
      ...testEnv(database),
      AA_OIDC_AUDIT_DATABASE: 'false',
    });
    assert.equal(off.code, 0, off.stderr);
    // What was kept before is still listed.
    assert.equal((JSON.parse(off.stdout) as unknown[]).length, 1);
    assert.match(off.stderr, /note: the database keeps no audit events \(audit\.database is false\)/);
    const on = await cli('audit', 'list', '--limit', '1');
    assert.doesNotMatch(on.stderr, /keeps no audit events/);
  });

  it('refuses an unknown kind, a malformed time and a bad limit, naming the option', async () => {
    const kind = await cli('audit', 'list', '--kind', 'token_stolen');
    assert.notEqual(kind.code, 0);
    assert.match(kind.stderr, /--kind "token_stolen" is not an audit event kind; valid: token_issued/);
    const since = await cli('audit', 'list', '--since', 'yesterday');
    assert.notEqual(since.code, 0);
    assert.match(since.stderr, /--since "yesterday" is not a time/);
    // Date.parse would run on into March: a time nobody wrote.
    for (const day of ['2024-02-30', '2023-02-29T12:00:00Z', '2024-04-31']) {
      const missing = await cli('audit', 'list', '--since', day);
      assert.equal(missing.code, 1, day);
      assert.match(missing.stderr, new RegExp(`--since "${day}" is not a time: use an ISO 8601 date`));
    }
    assert.equal((await cli('audit', 'list', '--since', '2024-02-29')).code, 0, 'a leap day exists');
    const limit = await cli('audit', 'list', '--limit', '0');
    assert.match(limit.stderr, /--limit must be an integer from 1 to 1000/);
    // An empty range (--since at or after --until) is refused rather than listed as nothing.
    for (const [sinceValue, untilValue] of [
      ['0m', '1d'],
      ['2024-05-02T00:00:00Z', '2024-05-01T00:00:00Z'],
      ['2024-05-01T00:00:00Z', '2024-05-01T00:00:00Z'],
    ]) {
      const empty = await cli('audit', 'list', '--until', untilValue!, '--since', sinceValue!);
      assert.equal(empty.code, 1);
      assert.equal(empty.stdout, '');
      assert.match(
        empty.stderr,
        /^aa-oidc: --since "[^"]+" \([^)]+\) is not before --until "[^"]+" \([^)]+\): no event can match; /,
      );
    }
    assert.equal((await cli('audit', 'list', '--since', '1d', '--until', '0m')).code, 0);
  });

  it('shows in --help the forms of --since and --until as they are typed, each accepted', async () => {
    const help = (await ok('audit', 'list', '--help')).replace(/\s+/g, ' ');
    // "ago: 30m" read as an `ago:` prefix, which is refused.
    assert.doesNotMatch(help, /ago:/);
    const since = /--since <time> only events at or after this time: (.*?) --until/.exec(help)?.[1];
    assert.ok(since, help);
    const examples = [...since.matchAll(/\(([^)]*)\)/g)].flatMap((match) => match[1]!.split(', '));
    assert.deepEqual(examples, ['2024-05-01', '2024-05-01T12:00:00Z', '30m', '24h', '7d', '2w']);
    for (const example of examples) {
      for (const option of ['--since', '--until']) {
        const listed = await cli('audit', 'list', option, example);
        assert.equal(listed.code, 0, `${option} ${example}: ${listed.stderr}`);
      }
    }
    assert.match(help, /--until <time> only events before this time \(the same forms as --since\)/);
  });

  it('refuses an empty filter, naming the option, in every listing that has one', async () => {
    // A script's unset variable (`--client-id "$CLIENT"`) would list nothing, or everything.
    for (const [args, option, valid] of [
      [['audit', 'list'], '--client-id', 'a client_id'],
      [['audit', 'list'], '--username', 'a username'],
      [['tokens', 'audit'], '--client-id', 'a client_id'],
      [['tokens', 'audit'], '--username', 'a username'],
      [['user', 'list'], '--state', 'the name of a state'],
      [['user', 'list'], '--group', 'the name of a group'],
      [['user', 'list'], '--search', 'some text'],
      [['app', 'list'], '--search', 'some text'],
    ] as const) {
      const empty = await cli(...args, option, '', '--format', 'json');
      assert.equal(empty.code, 1, `${args.join(' ')} ${option} "": ${empty.stdout}`);
      assert.equal(empty.stdout, '');
      assert.equal(empty.stderr, `aa-oidc: ${option} is empty; give ${valid}, or leave ${option} out\n`);
    }
  });

  it('refuses a blank filter (white space only) as an empty one, showing it quoted', async () => {
    // `--client-id "   "` listed nothing, as if the application had no events.
    for (const [args, option, valid] of [
      [['audit', 'list'], '--client-id', 'a client_id'],
      [['audit', 'list'], '--username', 'a username'],
      [['tokens', 'audit'], '--client-id', 'a client_id'],
      [['bcl', 'list'], '--client-id', 'a client_id'],
      [['user', 'list'], '--state', 'the name of a state'],
      [['user', 'list'], '--group', 'the name of a group'],
      [['app', 'list'], '--search', 'some text'],
    ] as const) {
      for (const [blank, quoted] of [
        ['   ', '"   "'],
        ['\t', '"\\t"'],
        ['\u3000', '"\u3000"'],
      ]) {
        const refused = await cli(...args, option, blank!, '--format', 'json');
        assert.equal(refused.code, 1, `${args.join(' ')} ${option} ${quoted}: ${refused.stdout}`);
        assert.equal(refused.stdout, '');
        assert.equal(
          refused.stderr,
          `aa-oidc: ${option} is blank (${quoted}); give ${valid}, or leave ${option} out\n`,
        );
      }
    }
    const revoke = await cli('tokens', 'revoke-user', '--username', '  ');
    assert.equal(revoke.code, 1);
    assert.match(revoke.stderr, /^aa-oidc: --username is blank \(" {2}"\); give the username of the user/);
  });

  it('refuses an empty --username where the command needs one, naming the option and what to give', async () => {
    for (const [args, valid] of [
      [['tokens', 'revoke-user'], 'the username of the user whose tokens to revoke (see aa-oidc user list)'],
      [
        ['policy', 'show', 'some-client'],
        'the username of the user to explain the decision for (see aa-oidc user list)',
      ],
    ] as const) {
      const empty = await cli(...args, '--username', '', '--format', 'json');
      assert.equal(empty.code, 1, `${args.join(' ')} --username "": ${empty.stdout}`);
      assert.equal(empty.stdout, '');
      assert.equal(empty.stderr, `aa-oidc: --username is empty; give ${valid}\n`);
      const missing = await cli(...args);
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /^aa-oidc: required option '--username <username>' not specified; see /);
    }
  });

  it('reads a --limit with spaces around it, as the configuration reads a number', async () => {
    const events = JSON.parse(await ok('audit', 'list', '--limit', ' 1 ', '--format', 'json')) as unknown[];
    assert.equal(events.length, 1);
    for (const limit of ['1.0', '+1', '1e1', '0x1', '']) {
      const refused = await cli('audit', 'list', '--limit', limit);
      assert.equal(refused.code, 1, `--limit ${JSON.stringify(limit)}`);
      assert.match(refused.stderr, /--limit must be an integer from 1 to 1000/);
    }
  });

  it('reads relative and absolute times', () => {
    const now = Date.parse('2024-05-10T12:00:00Z');
    assert.equal(parseTime('--since', '24h', now), Date.parse('2024-05-09T12:00:00Z'));
    assert.equal(parseTime('--since', '7d', now), Date.parse('2024-05-03T12:00:00Z'));
    assert.equal(parseTime('--since', '2024-05-01T00:00:00Z', now), Date.parse('2024-05-01T00:00:00Z'));
  });
});
