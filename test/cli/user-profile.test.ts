import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { cli, type CliResult } from '../helpers/cli.ts';
import { testEnv } from '../helpers/config.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { authorize, type Client, codeFrom, login, userinfo } from '../helpers/flows.ts';
import { Browser, PASSWORD, seedApp, seedUser, startServer, type TestServer } from '../helpers/server.ts';
import { logoutJobs } from '../logout/jobs.ts';

/**
 * The `aa-oidc user` commands that change what a user is known by (main character, locale) and
 * `user set-password --dry-run`, run as an operator would while a real server serves the same
 * database: what the relying party then sees at userinfo, and what stays alive.
 */
describe(`aa-oidc user set-main-character, set-locale [--dry-run], set-password --dry-run (${testDatabaseKind})`, () => {
  let server: TestServer;
  let client: Client;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    server = await startServer({ logout: { allowPrivateTargets: true } });
    await server.app.directoryAdmin.createState('Member', 100, true);
    const created = await seedApp(server, {
      name: 'Wiki',
      // Never reached: the test delivers nothing, it only looks at the queue.
      backchannelLogoutUri: 'http://127.0.0.1:9/logout',
    });
    client = { clientId: created.clientId, clientSecret: created.clientSecret! };
    env = testEnv(server.database);
  });
  after(async () => server.close());

  function assertFailsWithOneLine(result: CliResult, message: string): void {
    assert.notEqual(result.code, 0);
    assert.equal(result.stdout, '');
    const lines = result.stderr.split('\n').filter((line) => line.length > 0 && !line.startsWith('{'));
    assert.deepEqual(lines, [`aa-oidc: ${message}`]);
  }

  /** What userinfo releases for `accessToken` besides `sub`, `preferred_username` and `groups`. */
  async function profileClaims(accessToken: string): Promise<Record<string, unknown>> {
    const answer = await userinfo(server, accessToken);
    assert.equal(answer.status, 200, answer.body);
    const { sub, preferred_username, groups, ...rest } = JSON.parse(answer.body) as Record<string, unknown>;
    assert.ok(sub && preferred_username && groups);
    return rest;
  }

  const KAELEN = [
    '--character-id',
    '95465499',
    '--character-name',
    'Kaelen Voss',
    '--corporation-id',
    '98712345',
    '--corporation-name',
    'Obsidian Frontier Logistics',
    '--corporation-ticker',
    'OBFL',
    '--alliance-id',
    '99011223',
    '--alliance-name',
    'Silent Meridian Coalition',
    '--alliance-ticker',
    'SMRC',
    '--faction-id',
    '500001',
    '--faction-name',
    'Caldari State',
  ];

  it('set-main-character and set-locale give the name, picture, locale and eve_* claims, at once for a token already issued', async () => {
    const user = await seedUser(server, { state: 'Member' });
    const { accessToken } = await login(server, client, user.username, { scope: 'openid profile' });
    assert.deepEqual(
      await profileClaims(accessToken),
      { eve_affiliation: { state: 'Member' } },
      'no main character, no locale yet',
    );

    const set = await cli(['user', 'set-main-character', user.username, ...KAELEN], env);
    assert.equal(
      set.stdout,
      `${user.username} now has main character Kaelen Voss (95465499); corporation Obsidian Frontier Logistics [OBFL] (98712345); alliance Silent Meridian Coalition [SMRC] (99011223); faction Caldari State (500001)\n`,
      set.stderr,
    );
    const locale = await cli(['user', 'set-locale', user.username, 'pt-BR'], env);
    assert.equal(locale.stdout, `${user.username} now has locale pt-BR\n`, locale.stderr);
    assert.deepEqual(await profileClaims(accessToken), {
      name: 'Kaelen Voss',
      picture: 'https://images.evetech.net/characters/95465499/portrait?size=128',
      locale: 'pt-BR',
      eve_character_id: 95465499,
      eve_main_character_id: 95465499,
      eve_corporation_id: 98712345,
      eve_corporation_name: 'Obsidian Frontier Logistics',
      eve_corporation_ticker: 'OBFL',
      eve_alliance_id: 99011223,
      eve_alliance_name: 'Silent Meridian Coalition',
      eve_alliance_ticker: 'SMRC',
      eve_faction_id: 500001,
      eve_faction_name: 'Caldari State',
      eve_affiliation: {
        corp: { id: 98712345, name: 'Obsidian Frontier Logistics', ticker: 'OBFL' },
        alliance: { id: 99011223, name: 'Silent Meridian Coalition', ticker: 'SMRC' },
        faction: { id: 500001, name: 'Caldari State' },
        state: 'Member',
      },
    });
    const again = await cli(['user', 'set-main-character', user.username.toUpperCase(), ...KAELEN], env);
    assert.match(
      again.stdout,
      /^\S+ already has main character Kaelen Voss .*; nothing changed\n$/,
      again.stderr,
    );

    // A new main character replaces the whole one: what is left out (alliance, faction, tickers) goes.
    const moved = await cli(
      [
        'user',
        'set-main-character',
        user.username,
        '--character-id',
        '2115552211',
        '--character-name',
        'Ysolde Marrak',
        '--corporation-id',
        '98654321',
        '--corporation-name',
        'Crimson Lattice Industries',
      ],
      env,
    );
    assert.equal(
      moved.stdout,
      `${user.username} now has main character Ysolde Marrak (2115552211); corporation Crimson Lattice Industries (98654321)\n`,
      moved.stderr,
    );
    assert.deepEqual(await profileClaims(accessToken), {
      name: 'Ysolde Marrak',
      picture: 'https://images.evetech.net/characters/2115552211/portrait?size=128',
      locale: 'pt-BR',
      eve_character_id: 2115552211,
      eve_main_character_id: 2115552211,
      eve_corporation_id: 98654321,
      eve_corporation_name: 'Crimson Lattice Industries',
      eve_affiliation: { corp: { id: 98654321, name: 'Crimson Lattice Industries' }, state: 'Member' },
    });

    const cleared = await cli(['user', 'set-main-character', user.username, '--clear'], env);
    assert.equal(cleared.stdout, `${user.username} now has no main character\n`, cleared.stderr);
    const noLocale = await cli(['user', 'set-locale', user.username, ''], env);
    assert.equal(noLocale.stdout, `${user.username} now has no locale\n`, noLocale.stderr);
    assert.deepEqual(await profileClaims(accessToken), { eve_affiliation: { state: 'Member' } });

    // Each change is an admin_change naming the fields, by the CLI's actor.
    const audited = await cli(
      ['audit', 'list', '--kind', 'admin_change', '--username', user.username, '--format', 'json'],
      env,
    );
    const events = (
      JSON.parse(audited.stdout) as Array<{ action: string; changed_fields: string[]; actor: string }>
    ).filter((event) => event.action === 'updated');
    assert.deepEqual(
      events.map((event) => event.changed_fields),
      [
        [
          'allianceId',
          'allianceName',
          'allianceTicker',
          'characterId',
          'characterName',
          'corporationId',
          'corporationName',
          'corporationTicker',
          'factionId',
          'factionName',
        ],
        ['locale'],
        [
          'allianceId',
          'allianceName',
          'allianceTicker',
          'characterId',
          'characterName',
          'corporationId',
          'corporationName',
          'corporationTicker',
          'factionId',
          'factionName',
        ],
        ['characterId', 'characterName', 'corporationId', 'corporationName'],
        ['locale'],
      ].reverse(),
    );
    for (const event of events) assert.match(event.actor, /^cli/);
  });

  it('set-main-character and set-locale refuse bad input in one line naming the option or the field, and change nothing', async () => {
    const user = await seedUser(server);
    await cli(['user', 'set-main-character', user.username, ...KAELEN], env);
    await cli(['user', 'set-locale', user.username, 'de'], env);
    const set = (...options: string[]) => cli(['user', 'set-main-character', user.username, ...options], env);
    const character = ['--character-id', '90000001', '--character-name', 'Ari Venn'];

    assertFailsWithOneLine(
      await set(),
      'a main character needs both --character-id and --character-name (or --clear to remove it)',
    );
    assertFailsWithOneLine(
      await set('--character-id', '90000001'),
      'a main character needs both --character-id and --character-name (or --clear to remove it)',
    );
    const idRange = 'a whole number from 1 to 9007199254740991';
    // A number past 2^53 - 1 would be rounded to another id (99999999999999999999 to 1e20).
    for (const id of [
      'ninety',
      '-90000001',
      '-0',
      '0',
      '4.5',
      '1e3',
      '9007199254740992',
      '99999999999999999999',
    ])
      assertFailsWithOneLine(
        await set('--character-id', id, '--character-name', 'Ari Venn'),
        `--character-id must be the character’s EVE id, ${idRange} (got "${id}")`,
      );
    assertFailsWithOneLine(
      await set(...character, '--alliance-id', '18446744073709551616', '--alliance-name', 'A'),
      `--alliance-id must be the alliance’s EVE id, ${idRange} (got "18446744073709551616")`,
    );
    assertFailsWithOneLine(
      await set('--character-id', '90000001', '--character-name', ' Ari Venn'),
      'invalid character name " Ari Venn": use 1–254 characters without control characters or surrounding spaces, or none',
    );
    // The name claim would show as another name ("Ari Venn" reversed after the override).
    assertFailsWithOneLine(
      await set('--character-id', '90000001', '--character-name', 'Ari \u202eVenn'),
      'invalid character name "Ari \\u202eVenn": it contains U+202E, a bidirectional control character, which can make the name show as something else; remove it',
    );
    assertFailsWithOneLine(
      await set(...character, '--corporation-id', '98000001', '--corporation-name', 'C\u200borp'),
      'invalid corporation name "C\\u200borp": it contains U+200B, an invisible character, which can make the name show as something else; remove it',
    );
    assertFailsWithOneLine(
      await set(...character, '--corporation-id', '98000001'),
      '--corporation-id and --corporation-name go together: give both, or neither',
    );
    assertFailsWithOneLine(
      await set(...character, '--corporation-ticker', 'ABC'),
      '--corporation-ticker needs --corporation-id and --corporation-name',
    );
    assertFailsWithOneLine(
      await set(
        ...character,
        '--corporation-id',
        '98000001',
        '--corporation-name',
        'C',
        '--corporation-ticker',
        'TWELVE-CHARS',
      ),
      'invalid corporation ticker "TWELVE-CHARS": use 1–10 characters without control characters or surrounding spaces, or none',
    );
    assertFailsWithOneLine(
      await set(...character, '--alliance-id', '99000001', '--alliance-name', 'A'),
      '--alliance-id needs the corporation too (--corporation-id and --corporation-name): a character is in an alliance through its corporation',
    );
    assertFailsWithOneLine(
      await set('--clear', '--faction-id', '500001'),
      '--clear removes the whole main character and takes no other option; leave out --faction-id',
    );
    assertFailsWithOneLine(
      await cli(['user', 'set-main-character', 'nobody', ...character], env),
      'unknown user "nobody": no user has this username',
    );
    assertFailsWithOneLine(
      await cli(['user', 'set-locale', user.username, 'Deutsch!'], env),
      'invalid locale "Deutsch!": expected a language tag such as en, de or pt-BR, or none',
    );

    const shown = JSON.parse(
      (await cli(['user', 'show', user.username, '--format', 'json'], env)).stdout,
    ) as {
      character_id: number;
      corporation_ticker: string;
      locale: string;
    };
    assert.deepEqual(
      [shown.character_id, shown.corporation_ticker, shown.locale],
      [95465499, 'OBFL', 'de'],
      'the refused changes changed nothing',
    );
  });

  it('set-main-character --dry-run and set-locale --dry-run say what would change and change nothing', async () => {
    const user = await seedUser(server, { state: 'Member' });
    const { accessToken } = await login(server, client, user.username, { scope: 'openid profile' });
    await cli(['user', 'set-locale', user.username, 'de'], env);
    const before = await profileClaims(accessToken);
    const updates = async () =>
      (
        JSON.parse(
          (
            await cli(
              ['audit', 'list', '--kind', 'admin_change', '--username', user.username, '--format', 'json'],
              env,
            )
          ).stdout,
        ) as Array<{ action: string }>
      ).filter((event) => event.action === 'updated').length;
    const updatesBefore = await updates();
    const consequences = '  loses access to: (no application)\n  back-channel logout to: (no application)\n';

    const character = await cli(['user', 'set-main-character', user.username, ...KAELEN, '--dry-run'], env);
    assert.equal(character.code, 0, character.stderr);
    assert.equal(
      character.stdout,
      `dry run: would give ${user.username} main character Kaelen Voss (95465499); corporation Obsidian Frontier Logistics [OBFL] (98712345); alliance Silent Meridian Coalition [SMRC] (99011223); faction Caldari State (500001); nothing changed\n${consequences}`,
      character.stderr,
    );
    const locale = await cli(['user', 'set-locale', user.username, '', '--dry-run'], env);
    assert.equal(locale.code, 0, locale.stderr);
    assert.equal(
      locale.stdout,
      `dry run: would give ${user.username} no locale; nothing changed\n${consequences}`,
      locale.stderr,
    );
    // What is already so is said as without --dry-run.
    const same = await cli(['user', 'set-locale', user.username, 'de', '--dry-run'], env);
    assert.equal(same.stdout, `${user.username} already has locale de; nothing changed\n`, same.stderr);
    // Bad input is refused as without it.
    assertFailsWithOneLine(
      await cli(
        ['user', 'set-main-character', user.username, '--clear', '--faction-id', '1', '--dry-run'],
        env,
      ),
      '--clear removes the whole main character and takes no other option; leave out --faction-id',
    );

    assert.deepEqual(await profileClaims(accessToken), before, 'the dry runs changed nothing');
    assert.equal(await updates(), updatesBefore, 'a dry run is no admin_change');
  });

  it('set-password --dry-run names the sessions it would end and the apps told, asks for no password and changes nothing', async () => {
    const user = await seedUser(server);
    const browser = new Browser();
    codeFrom((await authorize(server, browser, client, user.username)).response);
    const silentCode = async () =>
      codeFrom((await authorize(server, browser, client, undefined, { prompt: 'none' })).response);
    const expected =
      `dry run: would set the password of ${user.username} and end their browser sessions; nothing changed\n` +
      '  loses access to: (no application)\n' +
      `  back-channel logout to: ${client.clientId}\n` +
      '  sessions ended: 1\n';

    // Standard input is a pipe, not a terminal: without --dry-run this would fail for want of a password.
    const dry = await cli(['user', 'set-password', user.username, '--dry-run'], env);
    assert.equal(dry.stdout, expected, dry.stderr);
    // A password given with --password-stdin is checked, and still nothing changes.
    assertFailsWithOneLine(
      await cli(['user', 'set-password', user.username, '--dry-run', '--password-stdin'], env, {
        stdin: 'short\n',
      }),
      'the password is too short; at least 8 characters are required',
    );
    const checked = await cli(['user', 'set-password', user.username, '--dry-run', '--password-stdin'], env, {
      stdin: 'a brand new passphrase 42\n',
    });
    assert.equal(checked.stdout, expected, checked.stderr);
    assertFailsWithOneLine(
      await cli(['user', 'set-password', 'nobody', '--dry-run'], env),
      'unknown user "nobody": no user has this username',
    );

    await silentCode();
    assert.equal((await server.app.directoryAdmin.verifyPassword(user.username, PASSWORD)).outcome, 'valid');
    assert.deepEqual(await logoutJobs(server.app.database, { userId: user.id }), []);
    const audited = await cli(['audit', 'list', '--username', user.username, '--format', 'json'], env);
    const kinds = (JSON.parse(audited.stdout) as Array<{ kind: string; action?: string }>).map(
      (event) => `${event.kind}${event.action ? `:${event.action}` : ''}`,
    );
    assert.ok(
      !kinds.includes('sessions_ended') && !kinds.includes('admin_change:password_changed'),
      kinds.join(),
    );

    // The change itself does what the dry run said.
    const done = await cli(['user', 'set-password', user.username, '--password-stdin'], env, {
      stdin: 'a brand new passphrase 42\n',
    });
    assert.equal(
      done.stdout,
      `password of ${user.username} changed; their browser sessions ended\n`,
      done.stderr,
    );
    const jobs = await logoutJobs(server.app.database, { userId: user.id });
    assert.deepEqual(
      jobs.map((job) => [job.client_id, job.trigger]),
      [[client.clientId, 'password_changed']],
    );
    const { response } = await authorize(server, browser, client, undefined, { prompt: 'none' });
    assert.equal(new URL(response.headers.get('location')!).searchParams.get('error'), 'login_required');
  });
});
