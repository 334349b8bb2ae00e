import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { runCli as runCliWith } from '../../src/cli/main.ts';
import { openDatabase } from '../../src/db/connect.ts';
import { createDirectory } from '../../src/directory/builtin/create.ts';
import { captureIo, cli as runCli, type CliResult } from '../helpers/cli.ts';
import { testConfig, testEnv } from '../helpers/config.ts';
import { createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';
import { createLeakHarness } from '../helpers/leak-harness.ts';

describe(`aa-oidc user, state, group (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  const harness = createLeakHarness();
  const password = 'Tr0ub4dor & 3 horses';

  before(async () => {
    database = await createTestDatabase();
  });
  after(async () => database.drop());

  /** Runs the CLI as an operator would, stdin a pipe (never a terminal); scans its output for leaks. */
  async function cli(args: string[], input = ''): Promise<CliResult> {
    const result = await runCli(args, testEnv(database, { AA_OIDC_LOG_LEVEL: 'info' }), { stdin: input });
    harness.scanText(`stdout of aa-oidc ${args.join(' ')}`, result.stdout);
    harness.scanText(`stderr of aa-oidc ${args.join(' ')}`, result.stderr);
    return result;
  }

  function assertFailsWithOneLine(result: CliResult, message: string | RegExp): void {
    assert.notEqual(result.code, 0);
    assert.equal(result.stdout, '');
    // Log lines (JSON) may accompany the failure; the reason itself is one plain line.
    const lines = result.stderr.split('\n').filter((line) => line.length > 0 && !line.startsWith('{'));
    assert.equal(lines.length, 1, result.stderr);
    if (typeof message === 'string') assert.equal(lines[0], `aa-oidc: ${message}`);
    else assert.match(lines[0]!, message);
  }

  it('creates states, groups and users, lists them as table, JSON and CSV, and fails in one line', async () => {
    harness.registerSecret(password, 'alice password');
    const unmigrated = await cli(['user', 'list']);
    // PostgreSQL: an empty database; SQLite: no file yet, which a command other than migrate never creates.
    assertFailsWithOneLine(
      unmigrated,
      /^aa-oidc: (the database has \d+ pending migration\(s\); run `aa-oidc migrate` first|the SQLite file \S+ \(AA_OIDC_DATABASE_URL\) does not exist; .*)$/,
    );
    assert.equal((await cli(['migrate'])).code, 0);

    const state = await cli(['state', 'create', 'Member', '--priority', '100', '--oidc-access']);
    assert.equal(state.code, 0, state.stderr);
    assert.equal(state.stdout, 'created state Member (priority 100; oidc_access granted)\n');
    const group = await cli(['group', 'create', 'Pilots']);
    assert.equal(group.code, 0, group.stderr);
    const priority = await cli(['state', 'set-priority', 'Member', '--priority', '110']);
    assert.equal(priority.stdout, 'state Member now has priority 110\n', priority.stderr);
    // Spaces around a number are a quoting slip, read as the configuration reads AA_OIDC_PORT=" 8080".
    const back = await cli(['state', 'set-priority', 'Member', '--priority', ' 100 ']);
    assert.equal(back.stdout, 'state Member now has priority 100\n', back.stderr);
    const created = await cli(
      [
        'user',
        'create',
        'alice',
        '--email',
        'alice@example.org',
        '--state',
        'Member',
        '--group',
        'Pilots',
        '--password-stdin',
      ],
      `${password}\n`,
    );
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /^created user alice \(id \d+; state Member; groups Pilots; active\)\n$/);

    // One after the other: in one process, two SQLite connections writing at once would wait on
    // each other's lock while holding the only thread.
    const json = await cli(['user', 'list', '--format', 'json']);
    const csv = await cli(['user', 'list', '--format', 'csv', '--state', 'Member']);
    const table = await cli(['user', 'list', '--group', 'Pilots']);
    const show = await cli(['user', 'show', 'alice', '--format', 'json']);
    const typo = await cli(['user', 'set-state', 'alice', 'Membr']);
    const noPassword = await cli(['user', 'create', 'bob']);
    const badPriority = await cli(['state', 'create', 'Blue', '--priority', 'high']);
    const hugePriority = await cli(['state', 'create', 'Blue', '--priority', '99999999999']);
    const twoLines = await cli(
      ['user', 'set-password', 'alice', '--password-stdin'],
      `${password}\nsecond\n`,
    );
    const twoLinesCreate = await cli(['user', 'create', 'carol', '--password-stdin'], `${password}\r\n\n`);
    const tooShort = await cli(['user', 'set-password', 'alice', '--password-stdin'], 'short\n');
    // 513 emoji are 513 characters, but 1026 UTF-16 units: more than sign-in compares.
    const tooLong = await cli(['user', 'set-password', 'alice', '--password-stdin'], `${'😀'.repeat(513)}\n`);
    const tooLongCreate = await cli(['user', 'create', 'dave', '--password-stdin'], `${'😀'.repeat(513)}\n`);
    const emptyCreate = await cli(['user', 'create', 'ellen', '--password-stdin'], '');
    const emptyLine = await cli(['user', 'set-password', 'alice', '--password-stdin'], '\n');
    const dryRun = await cli(['user', 'deactivate', 'alice', '--dry-run']);

    assert.equal(json.code, 0, json.stderr);
    const users = JSON.parse(json.stdout) as Array<Record<string, unknown>>;
    assert.equal(users.length, 1);
    assert.deepEqual(
      { ...users[0], id: undefined },
      {
        id: undefined,
        username: 'alice',
        email: 'alice@example.org',
        email_verified: false,
        state: 'Member',
        groups: ['Pilots'],
        active: true,
        superuser: false,
        oidc_access: false,
        last_login_at: null,
      },
    );
    assert.equal(
      csv.stdout,
      'username,email,state,groups,active,superuser,last login,direct oidc access\r\nalice,alice@example.org,Member,Pilots,true,false,,false\r\n',
    );
    assert.deepEqual(table.stdout.split('\n'), [
      'USERNAME  EMAIL              STATE   GROUPS  ACTIVE  SUPERUSER  LAST LOGIN  DIRECT OIDC ACCESS',
      'alice     alice@example.org  Member  Pilots  true    false                  false',
      '',
    ]);
    const detail = JSON.parse(show.stdout) as Record<string, unknown>;
    assert.equal(detail.has_password, true);
    // The built-in directory's password is aa-oidc's own: has_password says it all.
    assert.equal(detail.password_signs_in_here, null);
    assert.ok(!('password_hash' in detail));
    assert.ok(!show.stdout.includes('argon2'));

    assertFailsWithOneLine(typo, 'unknown state "Membr"; existing states: Member');
    assertFailsWithOneLine(
      noPassword,
      'no password: standard input is not a terminal, so there is no prompt; write the password to standard input and pass --password-stdin',
    );
    assertFailsWithOneLine(
      badPriority,
      '--priority must be a whole number from -2147483648 to 2147483647 (got "high")',
    );
    assertFailsWithOneLine(
      hugePriority,
      '--priority must be a whole number from -2147483648 to 2147483647 (got "99999999999")',
    );
    for (const result of [twoLines, twoLinesCreate]) {
      assertFailsWithOneLine(
        result,
        '--password-stdin: standard input holds more than one line; write the password alone on one line (one trailing newline is dropped)',
      );
    }
    assert.equal(dryRun.code, 0, dryRun.stderr);
    assert.equal(
      dryRun.stdout,
      'dry run: would deactivate alice; nothing changed\n  loses access to: (no application)\n  back-channel logout to: (no application)\n',
    );

    assertFailsWithOneLine(tooShort, 'the password is too short; at least 8 characters are required');
    assertFailsWithOneLine(
      emptyCreate,
      `--password-stdin: standard input was empty; pipe the password to it, on one line (printf '%s\\n' "$PASSWORD" | aa-oidc …)`,
    );
    assertFailsWithOneLine(
      emptyLine,
      `--password-stdin: standard input was empty (one empty line); pipe the password to it, on one line (printf '%s\\n' "$PASSWORD" | aa-oidc …)`,
    );
    for (const result of [tooLong, tooLongCreate])
      assertFailsWithOneLine(
        result,
        'the password is too long: at most 1024 characters are accepted, an emoji counting as two',
      );
    const deactivated = await cli(['user', 'deactivate', 'alice']);
    assert.equal(deactivated.stdout, 'deactivated alice\n');

    // What the commands did, seen through the directory itself.
    const handle = openDatabase(testConfig(database).database);
    try {
      const directory = createDirectory(handle.db);
      assert.equal((await directory.verifyPassword('alice', password)).outcome, 'inactive');
      assert.equal((await directory.findUserByUsername('bob')) ?? null, null);
      assert.equal((await directory.findUserByUsername('carol')) ?? null, null);
      assert.deepEqual(
        (await directory.listStates()).map((row) => row.name),
        ['Member'],
      );
      const actors = await handle.db
        .selectFrom('lifecycle_event')
        .select(['kind', 'actor'])
        .orderBy('id')
        .execute();
      assert.deepEqual(
        actors.map((row) => row.kind),
        [
          'state_created',
          'group_created',
          'state_priority_changed',
          'state_priority_changed',
          'user_created',
          'user_deactivated',
        ],
      );
      assert.ok(actors.every((row) => row.actor?.startsWith('cli')));
    } finally {
      await handle.close();
    }
    await harness.assertNoLeaks();
  });

  it('grants and revokes oidc_access on states and groups, with --dry-run changing nothing', async () => {
    assert.equal((await cli(['state', 'create', 'Alumni', '--priority', '5'])).code, 0);
    assert.equal((await cli(['group', 'create', 'Scouts'])).code, 0);
    const dryRun = await cli(['state', 'grant-access', 'Alumni', '--dry-run']);
    assert.equal(
      dryRun.stdout,
      'dry run: oidc_access would be granted to state Alumni; nothing changed\n  loses access to: (no application)\n  back-channel logout to: (no application)\n',
    );
    const granted = await cli(['state', 'grant-access', 'alumni']);
    assert.equal(
      granted.stdout,
      'oidc_access granted to state Alumni\n',
      'names are matched regardless of case',
    );
    const again = await cli(['state', 'grant-access', 'Alumni']);
    assert.equal(again.stdout, 'oidc_access already granted to state Alumni; nothing changed\n');
    const groupGranted = await cli(['group', 'grant-access', 'Scouts']);
    assert.equal(groupGranted.stdout, 'oidc_access granted to group Scouts\n');
    const groupRevoked = await cli(['group', 'grant-access', 'Scouts', '--revoke']);
    assert.equal(groupRevoked.stdout, 'oidc_access revoked from group Scouts\n');
    assertFailsWithOneLine(await cli(['group', 'grant-access', 'Nobody']), /unknown group "Nobody"/);

    const states = JSON.parse((await cli(['state', 'list', '--format', 'json'])).stdout) as Array<{
      name: string;
      oidc_access: boolean;
    }>;
    assert.equal(states.find((state) => state.name === 'Alumni')?.oidc_access, true);
    const groups = JSON.parse((await cli(['group', 'list', '--format', 'json'])).stdout) as Array<{
      name: string;
      oidc_access: boolean;
    }>;
    assert.equal(groups.find((group) => group.name === 'Scouts')?.oidc_access, false);
  });

  it('records whether an address is verified: user create --email-verified and user set-email [--verified]', async () => {
    /** The address and whether it is verified, as `user show --format json` prints them. */
    const emailOf = async (username: string) => {
      const shown = JSON.parse((await cli(['user', 'show', username, '--format', 'json'])).stdout) as {
        email: string;
        email_verified: boolean;
      };
      return { email: shown.email, verified: shown.email_verified };
    };
    const created = await cli(
      ['user', 'create', 'erin', '--email', 'erin@example.org', '--email-verified', '--password-stdin'],
      `${password}\n`,
    );
    assert.equal(created.code, 0, created.stderr);
    assert.deepEqual(await emailOf('erin'), { email: 'erin@example.org', verified: true });
    assertFailsWithOneLine(
      await cli(['user', 'create', 'frank', '--email-verified', '--password-stdin'], `${password}\n`),
      '--email-verified needs an address (--email)',
    );
    assert.equal((await cli(['user', 'show', 'frank'])).code, 1, 'nobody was created');

    // A new address is unverified unless the operator says otherwise, every time.
    const moved = await cli(['user', 'set-email', 'erin', 'erin@corp.example.org']);
    assert.equal(moved.stdout, 'erin now has email erin@corp.example.org (unverified)\n', moved.stderr);
    assert.deepEqual(await emailOf('erin'), { email: 'erin@corp.example.org', verified: false });
    const verified = await cli(['user', 'set-email', 'Erin', 'erin@corp.example.org', '--verified']);
    assert.equal(verified.stdout, 'erin now has email erin@corp.example.org (verified)\n', verified.stderr);
    const again = await cli(['user', 'set-email', 'erin', 'erin@corp.example.org', '--verified']);
    assert.equal(again.stdout, 'erin already has email erin@corp.example.org (verified); nothing changed\n');
    assert.deepEqual(await emailOf('erin'), { email: 'erin@corp.example.org', verified: true });

    assertFailsWithOneLine(
      await cli(['user', 'set-email', 'erin', 'not an address']),
      /invalid email "not an address": expected an address like name@example\.org/,
    );
    // It would show as erin@corp.example.org, to relying parties that may match accounts by it.
    assertFailsWithOneLine(
      await cli(['user', 'set-email', 'erin', 'erin\u200b@corp.example.org']),
      'invalid email "erin\\u200b@corp.example.org": it contains U+200B, an invisible character, which can make the address show as something else; remove it',
    );
    assertFailsWithOneLine(
      await cli(
        ['user', 'create', 'gina', '--email', 'gina@example.org\u202e', '--password-stdin'],
        `${password}\n`,
      ),
      'invalid email "gina@example.org\\u202e": it contains U+202E, a bidirectional control character, which can make the address show as something else; remove it',
    );
    assert.equal((await cli(['user', 'show', 'gina'])).code, 1, 'nobody was created');
    assertFailsWithOneLine(
      await cli(['user', 'set-email', 'erin', '', '--verified']),
      '--verified needs an address, not ""',
    );
    assertFailsWithOneLine(
      await cli(['user', 'set-email', 'nobody', 'a@example.org']),
      /unknown user "nobody"/,
    );
    assert.deepEqual(
      await emailOf('erin'),
      { email: 'erin@corp.example.org', verified: true },
      'the refused changes changed nothing',
    );

    // A dry run says what would change (a new address is unverified) and writes nothing, no event either.
    const updatesOfErin = async () =>
      (
        JSON.parse(
          (await cli(['audit', 'list', '--kind', 'admin_change', '--username', 'erin', '--format', 'json']))
            .stdout,
        ) as Array<{ action: string }>
      ).filter((event) => event.action === 'updated').length;
    const updatesBefore = await updatesOfErin();
    const dryRun = await cli(['user', 'set-email', 'erin', 'erin@wing.example.org', '--dry-run']);
    assert.equal(dryRun.code, 0, dryRun.stderr);
    assert.equal(
      dryRun.stdout,
      'dry run: would give erin email erin@wing.example.org (unverified); nothing changed\n  loses access to: (no application)\n  back-channel logout to: (no application)\n',
      dryRun.stderr,
    );
    assert.deepEqual(
      await emailOf('erin'),
      { email: 'erin@corp.example.org', verified: true },
      'the dry run changed nothing',
    );
    assert.equal(await updatesOfErin(), updatesBefore, 'the dry run is no admin_change');

    const cleared = await cli(['user', 'set-email', 'erin', '']);
    assert.equal(cleared.stdout, 'erin now has no email address\n', cleared.stderr);
    assert.deepEqual(await emailOf('erin'), { email: '', verified: false });
  });

  it('makes a user a superuser and takes it away (user grant-superuser [--revoke]), never from the only active one', async () => {
    for (const [name, extra] of [
      ['gina', ['--superuser']],
      ['hank', []],
    ] as const) {
      const created = await cli(['user', 'create', name, ...extra, '--password-stdin'], `${password}\n`);
      assert.equal(created.code, 0, created.stderr);
    }
    const superuserOf = async (username: string) =>
      (
        JSON.parse((await cli(['user', 'show', username, '--format', 'json'])).stdout) as {
          superuser: boolean;
        }
      ).superuser;

    assertFailsWithOneLine(
      await cli(['user', 'grant-superuser', 'gina', '--revoke']),
      'refusing to remove superuser from "gina": it is the only active superuser; make another user a superuser first',
    );
    assertFailsWithOneLine(await cli(['user', 'grant-superuser', 'nobody']), /unknown user "nobody"/);
    const dryRun = await cli(['user', 'grant-superuser', 'hank', '--dry-run']);
    assert.equal(
      dryRun.stdout,
      'dry run: would make hank a superuser; nothing changed\n  loses access to: (no application)\n  back-channel logout to: (no application)\n',
      dryRun.stderr,
    );
    assert.equal(await superuserOf('hank'), false, 'the dry run changed nothing');
    const granted = await cli(['user', 'grant-superuser', 'Hank']);
    assert.equal(granted.stdout, 'hank is now a superuser\n', granted.stderr);
    const again = await cli(['user', 'grant-superuser', 'hank']);
    assert.equal(again.stdout, 'hank is already a superuser; nothing changed\n', again.stderr);

    const revokeDryRun = await cli(['user', 'grant-superuser', 'gina', '--revoke', '--dry-run']);
    assert.equal(
      revokeDryRun.stdout,
      'dry run: would take superuser away from gina; nothing changed\n  loses access to: (no application)\n  back-channel logout to: (no application)\n',
      revokeDryRun.stderr,
    );
    assert.equal(await superuserOf('gina'), true, 'the dry run changed nothing');
    const revoked = await cli(['user', 'grant-superuser', 'gina', '--revoke']);
    assert.equal(revoked.stdout, 'gina is no longer a superuser\n', revoked.stderr);
    const revokedAgain = await cli(['user', 'grant-superuser', 'gina', '--revoke']);
    assert.equal(revokedAgain.stdout, 'gina is not a superuser; nothing changed\n', revokedAgain.stderr);
    assert.deepEqual([await superuserOf('gina'), await superuserOf('hank')], [false, true]);
    assertFailsWithOneLine(
      await cli(['user', 'grant-superuser', 'hank', '--revoke']),
      'refusing to remove superuser from "hank": it is the only active superuser; make another user a superuser first',
    );

    // Each change is an admin_change in the audit log, by the CLI's actor; the dry runs and the
    // refusals are not.
    const events = JSON.parse(
      (await cli(['audit', 'list', '--kind', 'admin_change', '--format', 'json'])).stdout,
    ) as Array<{ name: string; action: string; changed_fields: string[]; actor: string }>;
    const superuserChanges = events.filter((event) => event.changed_fields.includes('superuser'));
    assert.deepEqual(
      superuserChanges.map((event) => [event.name, event.action, event.changed_fields]),
      [
        ['gina', 'updated', ['superuser']],
        ['hank', 'updated', ['superuser']],
      ],
    );
    for (const event of superuserChanges) assert.match(event.actor, /^cli/);
  });

  it('grants a user oidc_access directly and takes it away (user create --oidc-access, user grant-access [--revoke])', async () => {
    const created = await cli(
      ['user', 'create', 'iris', '--oidc-access', '--password-stdin'],
      `${password}\n`,
    );
    assert.equal(created.code, 0, created.stderr);
    assert.match(
      created.stdout,
      /^created user iris \(id \d+; state \(none\); groups \(none\); active; oidc_access\)\n$/,
    );
    assert.equal(
      (await cli(['user', 'create', 'jack', '--password-stdin'], `${password}\n`)).code,
      0,
      'jack, without it',
    );
    const accessOf = async (username: string) =>
      (
        JSON.parse((await cli(['user', 'show', username, '--format', 'json'])).stdout) as {
          oidc_access: boolean;
        }
      ).oidc_access;
    assert.deepEqual([await accessOf('iris'), await accessOf('jack')], [true, false]);
    /** What `user list` says of the user's oidc_access held directly: in the table, the CSV and the JSON. */
    const listedAccess = async (username: string) => {
      const list = (format: string) => cli(['user', 'list', '--search', username, '--format', format]);
      const table = (await list('table')).stdout.split('\n');
      const column = table[0]!.indexOf('DIRECT OIDC ACCESS');
      assert.notEqual(column, -1, table[0]);
      const tableRow = table.find((line) => line.startsWith(`${username} `))!;
      const [csvHeader, ...csvRows] = (await list('csv')).stdout.split('\r\n');
      const csvRow = csvRows.find((line) => line.startsWith(`${username},`))!.split(',');
      const json = JSON.parse((await list('json')).stdout) as Array<{
        username: string;
        oidc_access: boolean;
      }>;
      return [
        tableRow.slice(column).split(' ')[0],
        csvRow[csvHeader!.split(',').indexOf('direct oidc access')],
        json.find((listed) => listed.username === username)?.oidc_access,
      ];
    };
    assert.deepEqual(await listedAccess('iris'), ['true', 'true', true], 'as user show says');
    assert.deepEqual(await listedAccess('jack'), ['false', 'false', false], 'as user show says');

    const dryRun = await cli(['user', 'grant-access', 'jack', '--dry-run']);
    assert.equal(
      dryRun.stdout,
      'dry run: would grant oidc_access to jack directly; nothing changed\n  loses access to: (no application)\n  back-channel logout to: (no application)\n',
      dryRun.stderr,
    );
    assert.equal(await accessOf('jack'), false, 'the dry run changed nothing');
    const granted = await cli(['user', 'grant-access', 'Jack']);
    assert.equal(granted.stdout, 'jack now holds oidc_access directly\n', granted.stderr);
    const again = await cli(['user', 'grant-access', 'jack']);
    assert.equal(again.stdout, 'jack already holds oidc_access directly; nothing changed\n', again.stderr);
    assert.equal(await accessOf('jack'), true);

    const revokeDryRun = await cli(['user', 'grant-access', 'iris', '--revoke', '--dry-run']);
    assert.equal(
      revokeDryRun.stdout,
      'dry run: would take oidc_access held directly away from iris (nothing else grants it: every application refuses them); nothing changed\n  loses access to: (no application)\n  back-channel logout to: (no application)\n',
      revokeDryRun.stderr,
    );
    assert.equal(await accessOf('iris'), true, 'the dry run changed nothing');
    const revoked = await cli(['user', 'grant-access', 'iris', '--revoke']);
    assert.equal(
      revoked.stdout,
      'iris no longer holds oidc_access directly (nothing else grants it: every application refuses them)\n',
      revoked.stderr,
    );
    const revokedAgain = await cli(['user', 'grant-access', 'iris', '--revoke']);
    assert.equal(revokedAgain.stdout, 'iris does not hold oidc_access directly; nothing changed\n');
    assert.equal(await accessOf('iris'), false);
    // What else grants it is named: here the state Member (oidc_access) jack is moved to.
    assert.equal((await cli(['user', 'set-state', 'jack', 'Member'])).code, 0);
    const kept = await cli(['user', 'grant-access', 'jack', '--revoke']);
    assert.equal(
      kept.stdout,
      'jack no longer holds oidc_access directly (still past the global gate through state Member)\n',
      kept.stderr,
    );
    assertFailsWithOneLine(await cli(['user', 'grant-access', 'nobody']), /unknown user "nobody"/);

    // Each change is an admin_change naming the field, by the CLI's actor; the dry runs and the
    // changes that changed nothing are not.
    const events = JSON.parse(
      (await cli(['audit', 'list', '--kind', 'admin_change', '--format', 'json'])).stdout,
    ) as Array<{ name: string; action: string; changed_fields: string[]; actor: string }>;
    const accessChanges = events.filter((event) => event.changed_fields.includes('oidcAccess'));
    assert.deepEqual(accessChanges.map((event) => [event.name, event.action, event.changed_fields]).sort(), [
      ['iris', 'updated', ['oidcAccess']],
      ['jack', 'updated', ['oidcAccess']],
      ['jack', 'updated', ['oidcAccess']],
    ]);
    for (const event of accessChanges) assert.match(event.actor, /^cli/);
  });

  it('adds a user to a group and removes them (dry run first), and activates a deactivated user', async () => {
    /** Groups and whether active, as `user show --format json` prints them. */
    const shown = async (username: string) => {
      const detail = JSON.parse((await cli(['user', 'show', username, '--format', 'json'])).stdout) as {
        groups: string[];
        active: boolean;
      };
      return { groups: detail.groups, active: detail.active };
    };
    assert.equal((await cli(['user', 'create', 'kate', '--password-stdin'], `${password}\n`)).code, 0);

    const added = await cli(['user', 'add-group', 'kate', 'Pilots']);
    assert.equal(added.stdout, 'added kate to group Pilots (groups: Pilots)\n', added.stderr);
    // The group named as the directory spells it, not as typed.
    const addedAgain = await cli(['user', 'add-group', 'Kate', 'PILOTS']);
    assert.equal(addedAgain.stdout, 'kate is already in group Pilots; nothing changed\n', addedAgain.stderr);
    assertFailsWithOneLine(await cli(['user', 'add-group', 'kate', 'Nowhere']), /unknown group "Nowhere"/);
    assertFailsWithOneLine(await cli(['user', 'add-group', 'nobody', 'Pilots']), /unknown user "nobody"/);
    assert.deepEqual(await shown('kate'), { groups: ['Pilots'], active: true });

    const dryRun = await cli(['user', 'remove-group', 'kate', 'pilots', '--dry-run']);
    assert.equal(
      dryRun.stdout,
      'dry run: would remove kate from group Pilots; nothing changed\n  loses access to: (no application)\n  back-channel logout to: (no application)\n',
      dryRun.stderr,
    );
    assert.deepEqual(
      await shown('kate'),
      { groups: ['Pilots'], active: true },
      'the dry run changed nothing',
    );
    const removed = await cli(['user', 'remove-group', 'kate', 'Pilots']);
    assert.equal(removed.stdout, 'removed kate from group Pilots\n', removed.stderr);
    const removedAgain = await cli(['user', 'remove-group', 'kate', 'ＰＩＬＯＴＳ']);
    assert.equal(removedAgain.stdout, 'kate is not in group Pilots; nothing changed\n', removedAgain.stderr);
    assert.deepEqual(await shown('kate'), { groups: [], active: true });

    assert.equal((await cli(['user', 'deactivate', 'kate'])).stdout, 'deactivated kate\n');
    assert.deepEqual(await shown('kate'), { groups: [], active: false });
    const activated = await cli(['user', 'activate', 'kate']);
    assert.equal(activated.stdout, 'activated kate\n', activated.stderr);
    const activatedAgain = await cli(['user', 'activate', 'kate']);
    assert.equal(activatedAgain.stdout, 'kate is already active; nothing changed\n', activatedAgain.stderr);
    assertFailsWithOneLine(await cli(['user', 'activate', 'nobody']), /unknown user "nobody"/);
    assert.deepEqual(await shown('kate'), { groups: [], active: true });
  });

  it('refuses a taken or invalid username, or an unknown state, before asking for a password', async () => {
    /** `user create ARGS` at a terminal that answers each password prompt as it appears. */
    async function createAtTerminal(args: string[]): Promise<CliResult & { prompted: boolean }> {
      const stdin = new PassThrough() as PassThrough & {
        isTTY: boolean;
        setRawMode: (mode: boolean) => void;
      };
      stdin.isTTY = true;
      stdin.setRawMode = () => undefined;
      const captured = captureIo(testEnv(database), { overrides: { stdin } });
      let prompts = 0;
      captured.onOutput(() => {
        const seen = (captured.stderr().match(/New password for|Repeat the password/g) ?? []).length;
        for (; prompts < seen; prompts += 1) setImmediate(() => stdin.write(`${password}\r`));
      });
      const code = await runCliWith(['user', 'create', ...args], captured.io);
      return { code, stdout: captured.stdout(), stderr: captured.stderr(), prompted: prompts > 0 };
    }
    const taken = await createAtTerminal(['ERIN']);
    assert.equal(taken.prompted, false, taken.stderr);
    assertFailsWithOneLine(taken, /^aa-oidc: username "ERIN" is taken by "erin"/);
    const invalid = await createAtTerminal(['no spaces']);
    assert.equal(invalid.prompted, false, invalid.stderr);
    assertFailsWithOneLine(invalid, /^aa-oidc: invalid username "no spaces"/);
    const unknownState = await createAtTerminal(['ivy', '--state', 'Nowhere']);
    assert.equal(unknownState.prompted, false, unknownState.stderr);
    assertFailsWithOneLine(unknownState, /^aa-oidc: unknown state "Nowhere"/);
    assert.equal((await cli(['user', 'show', 'ivy'])).code, 1, 'nobody was created');

    const created = await createAtTerminal(['ivy']);
    assert.equal(created.prompted, true);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /^created user ivy /);
    assert.ok(!created.stderr.includes(password));
  });

  it('finds a state `state list` shows with an escape when given the character, not the escape', async () => {
    // Stored before such names were refused, or by another tool.
    const handle = openDatabase(testConfig(database).database);
    try {
      await handle.db
        .insertInto('state')
        .values({
          name: 'Esc\u001b',
          name_key: 'esc\u001b',
          priority: 4321,
          oidc_access: 0,
          created_at: Date.now(),
        })
        .execute();
    } finally {
      await handle.close();
    }
    const listed = await cli(['state', 'list']);
    assert.match(listed.stdout, /^Esc\\x1b +4321 /m, listed.stdout);
    const asShown = await cli(['state', 'set-priority', 'Esc\\x1b', '--priority', '4322']);
    // The escape typed names no state: the message says which one it shows, and how to give it.
    assertFailsWithOneLine(
      asShown,
      /^aa-oidc: unknown state "Esc\\\\x1b"; existing states: .*Esc\\x1b.*; a listing shows the state \$'Esc\\x1b' as Esc\\x1b: give it as \$'Esc\\x1b' \(\$'…' is the quoting of bash and zsh\)$/,
    );
    const whitelisted = await cli([
      'app',
      'create',
      '--name',
      'Esc app',
      '--redirect-uri',
      'https://rp.example.org/cb',
      '--state',
      'Esc\\x1b',
    ]);
    assertFailsWithOneLine(
      whitelisted,
      /; a listing shows the state \$'Esc\\x1b' as Esc\\x1b: give it as \$'Esc\\x1b' \(\$'…' is the quoting of bash and zsh\)$/,
    );
    // Another name that only looks escaped gets no such hint.
    const other = await cli(['state', 'set-priority', 'Esc\\x1c', '--priority', '4322']);
    assertFailsWithOneLine(other, /^aa-oidc: unknown state "Esc\\\\x1c"; existing states: [^;]*$/);
    // As bash gives $'Esc\x1b': the character itself, as the help says.
    const given = await cli(['state', 'set-priority', 'Esc\u001b', '--priority', '4322']);
    assert.equal(given.code, 0, given.stderr);
    assert.equal(given.stdout, 'state Esc\\x1b now has priority 4322\n');
  });
});
