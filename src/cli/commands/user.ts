import type { Command } from 'commander';
import type {
  ChangeOptions,
  DirectoryAdmin,
  NewUser,
  UserChange,
  UserRecord,
} from '../../directory/builtin/types.ts';
import { type Consequence, summarizeConsequences } from '../../db/unit-of-work.ts';
import { generatePassword } from '../../directory/builtin/passwords.ts';
import { toUserProfile } from '../../directory/builtin/profile.ts';
import type { UserProfile } from '../../directory/port.ts';
import { passesGlobalGate } from '../../policy/decide.ts';
import type { Services } from '../../services.ts';
import { type SessionListing, listUserSessions } from '../../tokens/listing.ts';
import { UnknownUserError } from '../../tokens/revocation.ts';
import { type CliIo, CliError, cliActor, isoTime, READS_ONLY, withServices } from '../context.ts';
import { filterOption } from '../option-values.ts';
import {
  type Column,
  formatOption,
  jsonDocument,
  lineWriter,
  type OutputFormat,
  renderRows,
  storedNameHelp,
} from '../output.ts';
import { readNewPassword } from '../prompt.ts';
import {
  describeMainCharacter,
  type MainCharacterOptions,
  mainCharacterFromOptions,
} from './user-main-character.ts';

/** The help of the `<username>` argument of every `user` subcommand that takes an existing user. */
const USERNAME_HELP = storedNameHelp('user');

/** Runs `work` with the directory admin interface of the services `serve` uses (see `withServices`). */
export function withDirectory<T>(
  io: CliIo,
  work: (directory: DirectoryAdmin, services: Services) => Promise<T>,
  options?: typeof READS_ONLY,
): Promise<T> {
  return withServices(io, (services) => work(services.directoryAdmin, services), options);
}

export function changeOptions(io: CliIo, dryRun = false, consequences?: Consequence[]): ChangeOptions {
  return { actor: cliActor(io), dryRun, ...(consequences ? { consequences } : {}) };
}

/** What a dry run found the change would cause, one line each (the admin UI shows the same). */
export function consequenceLines(consequences: readonly Consequence[]): string[] {
  const summary = summarizeConsequences(consequences);
  const tokens = [...summary.tokensRevoked]
    .filter(([clientId]) => clientId !== '')
    .map(([clientId, count]) => `${clientId} ${count}`);
  return [
    `  loses access to: ${summary.accessLost.join(', ') || '(no application)'}`,
    `  back-channel logout to: ${summary.logouts.join(', ') || '(no application)'}`,
    ...(summary.tokensRevokedTotal > 0
      ? [
          `  codes and tokens revoked: ${summary.tokensRevokedTotal}${tokens.length > 0 ? ` (${tokens.join(', ')})` : ''}`,
        ]
      : []),
    ...(summary.sessionsEnded > 0 ? [`  sessions ended: ${summary.sessionsEnded}`] : []),
  ];
}

function groupNames(profile: UserRecord): string[] {
  return profile.groups.map((group) => group.name);
}

function describe(profile: UserRecord): string {
  const groups = groupNames(profile);
  return `state ${profile.state?.name ?? '(none)'}; groups ${groups.length > 0 ? groups.join(', ') : '(none)'}; ${profile.user.active === 1 ? 'active' : 'inactive'}${profile.user.superuser === 1 ? '; superuser' : ''}${profile.user.oidc_access === 1 ? '; oidc_access' : ''}`;
}

/**
 * What else lets the user past the global gate once oidc_access held directly is gone (the policy's
 * own gate decides): being a superuser, the state's or a group's oidc_access; or that nothing does
 * (every application refuses them, as it does an inactive user).
 */
function remainingAccess(record: UserRecord): string {
  const profile: UserProfile = { ...toUserProfile(record), oidcAccess: false };
  if (!profile.active) return 'inactive: every application refuses them';
  if (!passesGlobalGate(profile)) return 'nothing else grants it: every application refuses them';
  const through = [
    ...(profile.superuser ? ['as a superuser'] : []),
    ...(profile.state?.oidcAccess ? [`through state ${profile.state.name}`] : []),
    ...profile.groups.filter((group) => group.oidcAccess).map((group) => `through group ${group.name}`),
  ];
  return `still past the global gate ${through.join(', ')}`;
}

const USER_COLUMNS: readonly Column<UserRecord>[] = [
  { header: 'username', value: (profile) => profile.user.username },
  { header: 'email', value: (profile) => profile.user.email },
  { header: 'state', value: (profile) => profile.state?.name ?? '' },
  { header: 'groups', value: (profile) => groupNames(profile) },
  { header: 'active', value: (profile) => profile.user.active === 1 },
  { header: 'superuser', value: (profile) => profile.user.superuser === 1 },
  { header: 'last login', value: (profile) => isoTime(profile.user.last_login_at) },
  // Held by the user directly (`user grant-access`; with Alliance Auth, its permission held by the
  // user): what `user show` prints as oidc_access, not whether a state or group grants it too, as
  // its name says. Last, so that a script reading the columns before it by position reads them as before.
  { header: 'direct oidc access', value: (profile) => profile.user.oidc_access === 1 },
];

/** A user as scripts see it: never the password hash. */
function userJson(profile: UserRecord): Record<string, unknown> {
  return {
    id: profile.user.id,
    username: profile.user.username,
    email: profile.user.email,
    email_verified: profile.user.email_verified === 1,
    state: profile.state?.name ?? null,
    groups: groupNames(profile),
    active: profile.user.active === 1,
    superuser: profile.user.superuser === 1,
    oidc_access: profile.user.oidc_access === 1,
    last_login_at: isoTime(profile.user.last_login_at),
  };
}

/**
 * `has_password`: the built-in directory holds a password for the user; with Alliance Auth, AA holds a
 * usable one (`keptElsewhere`), whether or not it signs in here. `password_signs_in_here`, for a
 * password another directory keeps, only where aa-oidc signs in with those (`keptPasswordSignIn`,
 * Alliance Auth's with `AA_OIDC_AA_PASSWORD_LOGIN`): whether this user's does (aa-oidc verifies its
 * hasher); null otherwise, where `has_password` says it all. `updated_at`: the record's last change,
 * null with Alliance Auth, which keeps no such time.
 */
function userDetailJson(profile: UserRecord, keptPasswordSignIn: boolean): Record<string, unknown> {
  const { user, keptElsewhere } = profile;
  return {
    ...userJson(profile),
    has_password: keptElsewhere ? keptElsewhere.password !== 'unusable' : user.password_hash !== null,
    password_signs_in_here:
      keptElsewhere && keptPasswordSignIn ? keptElsewhere.password === 'verifiable' : null,
    must_change_password: user.must_change_password === 1,
    character_id: user.character_id,
    character_name: user.character_name,
    corporation_id: user.corporation_id,
    corporation_name: user.corporation_name,
    corporation_ticker: user.corporation_ticker,
    alliance_id: user.alliance_id,
    alliance_name: user.alliance_name,
    alliance_ticker: user.alliance_ticker,
    faction_id: user.faction_id,
    faction_name: user.faction_name,
    locale: user.locale,
    created_at: isoTime(user.created_at),
    updated_at: keptElsewhere ? null : isoTime(user.updated_at),
  };
}

function sessionJson(session: SessionListing): Record<string, unknown> {
  return {
    signed_in_at: isoTime(session.signedInAt),
    expires_at: isoTime(session.expiresAt),
    amr: session.amr,
    client_ids: session.clientIds,
  };
}

/** One line per live session in the table form: when, until when, how, where. */
function sessionLine(session: SessionListing): string {
  const how = session.amr.length > 0 ? session.amr.join('+') : 'unknown';
  const where = session.clientIds.length > 0 ? session.clientIds.join(' ') : '(no application yet)';
  return `signed in ${isoTime(session.signedInAt) ?? 'at an unknown time'} (${how}), until ${isoTime(session.expiresAt) ?? 'unknown'}: ${where}`;
}

function renderUserDetail(
  profile: UserRecord,
  keptPasswordSignIn: boolean,
  sessions: SessionListing[],
  format: OutputFormat,
): string {
  const detail = userDetailJson(profile, keptPasswordSignIn);
  if (format === 'json') return jsonDocument({ ...detail, sessions: sessions.map(sessionJson) });
  const rows = [
    ...Object.entries(detail).map(([field, value]) => ({ field, value })),
    { field: 'live_sessions', value: sessions.length },
    ...sessions.map((session) => ({ field: 'session', value: sessionLine(session) })),
  ];
  return renderRows(
    rows,
    [
      { header: 'field', value: (row) => row.field },
      {
        header: 'value',
        value: (row) =>
          Array.isArray(row.value)
            ? (row.value as string[])
            : (row.value as string | number | boolean | null),
      },
    ],
    format,
    (row) => row,
  );
}

/** The group as the directory spells it (`add-group alice pilots` adds to `Pilots`), else as typed. */
async function storedGroupName(directory: DirectoryAdmin, typed: string): Promise<string> {
  return (await directory.findGroupByName(typed))?.name ?? typed;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function registerUser(program: Command, io: CliIo): void {
  const user = program.command('user').description('users of the built-in directory');
  const say = lineWriter(io.stdout);
  /** What a profile change did, or with `dryRun` would do (and what that would cause). */
  const sayProfileChange = (
    result: UserChange,
    describe: (user: UserRecord['user']) => string,
    dryRun = false,
    consequences: readonly Consequence[] = [],
  ) => {
    const { user: changed } = result.profile;
    const now = describe(changed);
    if (!result.changed) say(`${changed.username} already has ${now}; nothing changed`);
    else if (dryRun) {
      say(`dry run: would give ${changed.username} ${now}; nothing changed`);
      consequenceLines(consequences).forEach(say);
    } else say(`${changed.username} now has ${now}`);
  };

  user
    .command('create')
    .description(
      'create a user; the password is prompted for once the username, state and groups are checked, or read from stdin (never from argv)',
    )
    .argument('<username>', '1–150 letters, digits and @ . + - _')
    .option('--email <email>', 'email address')
    .option(
      '--email-verified',
      'the address is known to be the user’s (released as email_verified: true; default: unverified)',
    )
    .option('--state <name>', 'the state')
    .option('--group <name>', 'a group (repeatable)', collect, [])
    .option('--superuser', 'make the user a superuser')
    .option(
      '--oidc-access',
      'grant the user the oidc_access permission directly (default: only through the state or a group)',
    )
    .option(
      '--password-stdin',
      'read the password from standard input, a pipe or a file, not a terminal (one line)',
    )
    .action(
      async (
        username: string,
        options: {
          email?: string;
          emailVerified?: boolean;
          state?: string;
          group: string[];
          superuser?: boolean;
          oidcAccess?: boolean;
          passwordStdin?: boolean;
        },
      ) => {
        if (options.emailVerified === true && !options.email)
          throw new CliError('--email-verified needs an address (--email)');
        const newUser: NewUser = {
          username,
          ...(options.email !== undefined && { email: options.email }),
          ...(options.emailVerified === true && { emailVerified: true }),
          state: options.state ?? null,
          groups: options.group,
          superuser: options.superuser === true,
          oidcAccess: options.oidcAccess === true,
        };
        // Refuse an invalid or taken username (or email, state, group) before the operator types a
        // password at the prompt: the creation run dry, without one.
        if (options.passwordStdin !== true && io.stdin.isTTY === true)
          await withDirectory(io, (directory) => directory.createUser(newUser, changeOptions(io, true)));
        const password = await readNewPassword(io, username, options.passwordStdin === true);
        const profile = await withDirectory(io, (directory) =>
          directory.createUser({ ...newUser, password }, changeOptions(io)),
        );
        say(`created user ${profile.user.username} (id ${profile.user.id}; ${describe(profile)})`);
      },
    );

  user
    .command('list')
    .description(
      'list users, by username; the last column, direct oidc access (oidc_access in JSON), is the permission held by the user directly, false for one who has it only through the state or a group',
    )
    .addOption(filterOption('--state <name>', 'only users in this state', 'the name of a state'))
    .addOption(filterOption('--group <name>', 'only members of this group', 'the name of a group'))
    .addOption(
      filterOption('--search <text>', 'only users whose username or email contains this text', 'some text'),
    )
    .addOption(formatOption())
    .action(async (options: { state?: string; group?: string; search?: string; format: OutputFormat }) => {
      const users = await withDirectory(
        io,
        (directory) =>
          directory.listUsers({
            ...(options.state !== undefined && { state: options.state }),
            ...(options.group !== undefined && { group: options.group }),
            ...(options.search !== undefined && { search: options.search }),
          }),
        READS_ONLY,
      );
      io.stdout.write(renderRows(users, USER_COLUMNS, options.format, userJson));
    });

  user
    .command('show')
    .description('show one user: state, groups, main character, live browser sessions')
    .argument('<username>', USERNAME_HELP)
    .addOption(formatOption())
    .action(async (username: string, options: { format: OutputFormat }) => {
      const { profile, keptPasswordSignIn, sessions } = await withDirectory(
        io,
        async (directory, services) => {
          const found = await directory.getUserProfile({ username });
          return {
            profile: found,
            keptPasswordSignIn: services.config.directory.allianceAuth.passwordLogin,
            sessions: await listUserSessions(services.database.db, found.user.id),
          };
        },
        READS_ONLY,
      );
      io.stdout.write(renderUserDetail(profile, keptPasswordSignIn, sessions, options.format));
    });

  user
    .command('sign-out')
    .description(
      'sign a user out everywhere, in one transaction: end their browser sessions, remove their grants, revoke their codes and tokens, and queue back-channel logout (user_revoked) to each app',
    )
    .argument('<username>', USERNAME_HELP)
    .option('--dry-run', 'show what would end, change nothing')
    .action(async (username: string, options: { dryRun?: boolean }) => {
      const dryRun = options.dryRun === true;
      const result = await withServices(io, async (services) => {
        try {
          return await services.tokens.signOutUser(username, { dryRun, actor: cliActor(io) });
        } catch (error) {
          if (error instanceof UnknownUserError) throw new CliError(error.message);
          throw error;
        }
      });
      const counts = `${result.sessionsEnded} browser session(s), ${result.grantsRemoved} grant(s), ${result.revoked.length} code(s) and token(s)`;
      say(
        dryRun
          ? `dry run: would sign ${result.username} out: ${counts}; nothing changed`
          : `signed ${result.username} out: ended ${counts}`,
      );
    });

  user
    .command('set-password')
    .description(
      'set a user’s password and end their browser sessions (the apps signed in through them get a back-channel logout); prompted for, or read from stdin (never from argv)',
    )
    .argument('<username>', USERNAME_HELP)
    .option(
      '--password-stdin',
      'read the password from standard input, a pipe or a file, not a terminal (one line)',
    )
    .option(
      '--dry-run',
      'show the sessions it would end and the apps told, change nothing; asks for no password (one given with --password-stdin is checked)',
    )
    .action(async (username: string, options: { passwordStdin?: boolean; dryRun?: boolean }) => {
      const dryRun = options.dryRun === true;
      const fromStdin = options.passwordStdin === true;
      // Refuse an unknown user, or a directory that sets no password (Alliance Auth's), before asking
      // for one: the change run dry, with a password nobody knows.
      if (!fromStdin && !dryRun)
        await withDirectory(io, (directory) =>
          directory.setPassword({ username }, generatePassword(), changeOptions(io, true)),
        );
      // A dry run asks for none: the change runs with a password nobody knows, and is rolled back.
      const password =
        dryRun && !fromStdin ? generatePassword() : await readNewPassword(io, username, fromStdin);
      const consequences: Consequence[] = [];
      const result = await withDirectory(io, (directory) =>
        directory.setPassword({ username }, password, changeOptions(io, dryRun, consequences)),
      );
      const name = result.profile.user.username;
      if (dryRun) {
        say(`dry run: would set the password of ${name} and end their browser sessions; nothing changed`);
        consequenceLines(consequences).forEach(say);
      } else say(`password of ${name} changed; their browser sessions ended`);
    });

  user
    .command('set-email')
    .description(
      'set a user’s email address ("" for none); it is unverified (email_verified: false) unless --verified',
    )
    .argument('<username>', USERNAME_HELP)
    .argument('<address>', 'the email address ("" for none)')
    .option('--verified', 'the address is known to be the user’s (released as email_verified: true)')
    .option('--dry-run', 'show what would change, change nothing')
    .action(async (username: string, address: string, options: { verified?: boolean; dryRun?: boolean }) => {
      const verified = options.verified === true;
      const dryRun = options.dryRun === true;
      if (verified && address === '') throw new CliError('--verified needs an address, not ""');
      const consequences: Consequence[] = [];
      const result = await withDirectory(io, (directory) =>
        directory.updateUser(
          { username },
          { email: address, emailVerified: verified },
          changeOptions(io, dryRun, consequences),
        ),
      );
      sayProfileChange(
        result,
        (changed) =>
          changed.email === ''
            ? 'no email address'
            : `email ${changed.email} (${changed.email_verified === 1 ? 'verified' : 'unverified'})`,
        dryRun,
        consequences,
      );
    });

  user
    .command('set-main-character')
    .description(
      'set the EVE character a user is known by, with its corporation, alliance and faction: the name, picture and eve_* claims (eve_affiliation adds the state); it replaces the whole main character, so a part left out is removed',
    )
    .argument('<username>', USERNAME_HELP)
    .option('--character-id <id>', 'the character’s EVE id (required, with --character-name)')
    .option('--character-name <name>', 'the character’s name, released as the name claim')
    .option('--corporation-id <id>', 'the corporation’s EVE id (with --corporation-name)')
    .option('--corporation-name <name>', 'the corporation’s name')
    .option('--corporation-ticker <ticker>', 'the corporation’s ticker')
    .option('--alliance-id <id>', 'the alliance’s EVE id (with --alliance-name; needs the corporation)')
    .option('--alliance-name <name>', 'the alliance’s name')
    .option('--alliance-ticker <ticker>', 'the alliance’s ticker')
    .option('--faction-id <id>', 'the faction’s EVE id (with --faction-name)')
    .option('--faction-name <name>', 'the faction’s name')
    .option('--clear', 'remove the main character, corporation, alliance and faction')
    .option('--dry-run', 'show what would change, change nothing')
    .action(async (username: string, options: MainCharacterOptions & { dryRun?: boolean }) => {
      const dryRun = options.dryRun === true;
      const fields = mainCharacterFromOptions(options);
      const consequences: Consequence[] = [];
      const result = await withDirectory(io, (directory) =>
        directory.updateUser({ username }, fields, changeOptions(io, dryRun, consequences)),
      );
      sayProfileChange(result, describeMainCharacter, dryRun, consequences);
    });

  user
    .command('set-locale')
    .description('set the language a user prefers ("" for none), released as the locale claim')
    .argument('<username>', USERNAME_HELP)
    .argument('<locale>', 'a language tag such as en, de or pt-BR ("" for none)')
    .option('--dry-run', 'show what would change, change nothing')
    .action(async (username: string, locale: string, options: { dryRun?: boolean }) => {
      const dryRun = options.dryRun === true;
      const consequences: Consequence[] = [];
      const result = await withDirectory(io, (directory) =>
        directory.updateUser(
          { username },
          { locale: locale === '' ? null : locale },
          changeOptions(io, dryRun, consequences),
        ),
      );
      sayProfileChange(
        result,
        (changed) => (changed.locale === null ? 'no locale' : `locale ${changed.locale}`),
        dryRun,
        consequences,
      );
    });

  user
    .command('reset-two-factor')
    .description(
      'remove a user’s two-factor enrolment and recovery codes (a lost authenticator); they can enrol again on their account page',
    )
    .argument('<username>', USERNAME_HELP)
    .option('--dry-run', 'say whether there is one to remove, change nothing')
    .action(async (username: string, options: { dryRun?: boolean }) => {
      const dryRun = options.dryRun === true;
      const { name, removed } = await withDirectory(io, async (directory, services) => {
        const { user: found } = await directory.getUserProfile({ username });
        const target = { id: found.id, username: found.username };
        return {
          name: found.username,
          removed: await services.twoFactor.reset(target, { actor: cliActor(io), dryRun }),
        };
      });
      if (!removed) say(`${name} has no two-factor enrolment; nothing changed`);
      else if (dryRun)
        say(`dry run: would remove ${name}’s two-factor enrolment and recovery codes; nothing changed`);
      else
        say(
          `${name}’s two-factor enrolment and recovery codes removed; they can enrol again on their account page`,
        );
    });

  user
    .command('set-state')
    .description('move a user to another state')
    .argument('<username>', USERNAME_HELP)
    .argument('<state>', storedNameHelp('state'))
    .option('--dry-run', 'show what would change, change nothing')
    .action(async (username: string, state: string, options: { dryRun?: boolean }) => {
      const dryRun = options.dryRun === true;
      const consequences: Consequence[] = [];
      const result = await withDirectory(io, (directory) =>
        directory.setState({ username }, state, changeOptions(io, dryRun, consequences)),
      );
      const name = result.profile.user.username;
      const stateName = result.profile.state?.name;
      if (!result.changed) say(`${name} is already in state ${stateName}; nothing changed`);
      else if (dryRun) {
        say(`dry run: would move ${name} to state ${stateName}; nothing changed`);
        consequenceLines(consequences).forEach(say);
      } else say(`${name} is now in state ${stateName}`);
    });

  user
    .command('add-group')
    .description('add a user to a group')
    .argument('<username>', USERNAME_HELP)
    .argument('<group>', storedNameHelp('group'))
    .action(async (username: string, typedGroup: string) => {
      const { result, group } = await withDirectory(io, async (directory) => ({
        result: await directory.addGroup({ username }, typedGroup, changeOptions(io)),
        group: await storedGroupName(directory, typedGroup),
      }));
      const name = result.profile.user.username;
      say(
        result.changed
          ? `added ${name} to group ${group} (groups: ${groupNames(result.profile).join(', ')})`
          : `${name} is already in group ${group}; nothing changed`,
      );
    });

  user
    .command('remove-group')
    .description('remove a user from a group')
    .argument('<username>', USERNAME_HELP)
    .argument('<group>', storedNameHelp('group'))
    .option('--dry-run', 'show what would change, change nothing')
    .action(async (username: string, typedGroup: string, options: { dryRun?: boolean }) => {
      const dryRun = options.dryRun === true;
      const consequences: Consequence[] = [];
      const { result, group } = await withDirectory(io, async (directory) => ({
        result: await directory.removeGroup(
          { username },
          typedGroup,
          changeOptions(io, dryRun, consequences),
        ),
        group: await storedGroupName(directory, typedGroup),
      }));
      const name = result.profile.user.username;
      if (!result.changed) say(`${name} is not in group ${group}; nothing changed`);
      else if (dryRun) {
        say(`dry run: would remove ${name} from group ${group}; nothing changed`);
        consequenceLines(consequences).forEach(say);
      } else say(`removed ${name} from group ${group}`);
    });

  user
    .command('grant-superuser')
    .description(
      'make a user a superuser (or with --revoke, take it away; refused for the only active superuser)',
    )
    .argument('<username>', USERNAME_HELP)
    .option('--revoke', 'take superuser away')
    .option('--dry-run', 'show what would change, change nothing')
    .action(async (username: string, options: { revoke?: boolean; dryRun?: boolean }) => {
      const superuser = options.revoke !== true;
      const dryRun = options.dryRun === true;
      const consequences: Consequence[] = [];
      const result = await withDirectory(io, (directory) =>
        directory.updateUser({ username }, { superuser }, changeOptions(io, dryRun, consequences)),
      );
      const name = result.profile.user.username;
      if (!result.changed) say(`${name} ${superuser ? 'is already' : 'is not'} a superuser; nothing changed`);
      else if (dryRun) {
        say(
          `dry run: would ${superuser ? `make ${name} a superuser` : `take superuser away from ${name}`}; nothing changed`,
        );
        consequenceLines(consequences).forEach(say);
      } else say(superuser ? `${name} is now a superuser` : `${name} is no longer a superuser`);
    });

  user
    .command('grant-access')
    .description(
      'grant a user the oidc_access permission directly (or with --revoke, take it away; what their state, groups or superuser grant stays)',
    )
    .argument('<username>', USERNAME_HELP)
    .option('--revoke', 'take the permission held directly away')
    .option('--dry-run', 'show what would change, change nothing')
    .action(async (username: string, options: { revoke?: boolean; dryRun?: boolean }) => {
      const oidcAccess = options.revoke !== true;
      const dryRun = options.dryRun === true;
      const consequences: Consequence[] = [];
      const result = await withDirectory(io, (directory) =>
        directory.updateUser({ username }, { oidcAccess }, changeOptions(io, dryRun, consequences)),
      );
      const name = result.profile.user.username;
      if (!result.changed)
        say(
          `${name} ${oidcAccess ? 'already holds' : 'does not hold'} oidc_access directly; nothing changed`,
        );
      else if (dryRun) {
        say(
          oidcAccess
            ? `dry run: would grant oidc_access to ${name} directly; nothing changed`
            : `dry run: would take oidc_access held directly away from ${name} (${remainingAccess(result.profile)}); nothing changed`,
        );
        consequenceLines(consequences).forEach(say);
      } else
        say(
          oidcAccess
            ? `${name} now holds oidc_access directly`
            : `${name} no longer holds oidc_access directly (${remainingAccess(result.profile)})`,
        );
    });

  user
    .command('deactivate')
    .description(
      'deactivate a user: their browser sessions end, every app refuses them from the next request, and back-channel logout tells each app',
    )
    .argument('<username>', USERNAME_HELP)
    .option('--dry-run', 'show what would change, change nothing')
    .action(async (username: string, options: { dryRun?: boolean }) => {
      const dryRun = options.dryRun === true;
      const consequences: Consequence[] = [];
      const result = await withDirectory(io, (directory) =>
        directory.deactivate({ username }, changeOptions(io, dryRun, consequences)),
      );
      const name = result.profile.user.username;
      if (!result.changed) say(`${name} is already inactive; nothing changed`);
      else if (dryRun) {
        say(`dry run: would deactivate ${name}; nothing changed`);
        consequenceLines(consequences).forEach(say);
      } else say(`deactivated ${name}`);
    });

  user
    .command('activate')
    .description('activate a deactivated user')
    .argument('<username>', USERNAME_HELP)
    .action(async (username: string) => {
      const result = await withDirectory(io, (directory) =>
        directory.activate({ username }, changeOptions(io)),
      );
      const name = result.profile.user.username;
      say(result.changed ? `activated ${name}` : `${name} is already active; nothing changed`);
    });

  user
    .command('delete')
    .description('delete a user and their memberships (back-channel logout tells each app)')
    .argument('<username>', USERNAME_HELP)
    .option('--dry-run', 'show what would change, change nothing')
    .action(async (username: string, options: { dryRun?: boolean }) => {
      const dryRun = options.dryRun === true;
      const consequences: Consequence[] = [];
      const result = await withDirectory(io, (directory) =>
        directory.deleteUser({ username }, changeOptions(io, dryRun, consequences)),
      );
      const name = result.profile.user.username;
      say(
        dryRun
          ? `dry run: would delete ${name} (${describe(result.profile)}); nothing changed`
          : `deleted ${name} (was: ${describe(result.profile)})`,
      );
      if (dryRun) consequenceLines(consequences).forEach(say);
    });
}
