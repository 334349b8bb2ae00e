import { IMPORTED_SECRET_MAX_ITERATIONS, importedSecretHash } from '../applications/secret.ts';
import type { Application } from '../applications/types.ts';
import { quote } from '../applications/errors.ts';
import { withJoinersShown } from '../applications/text.ts';
import { hasWildcardHost, refusedSinceUriProblem } from '../applications/validate.ts';
import type { Config } from '../config/load.ts';
import { describeBinding, type DirectoryBindingStatus } from '../directory/binding.ts';
import type { StoredUserText } from '../directory/builtin/types.ts';
import { hasSpacesInARow, singleSpaced, validateNewName } from '../directory/builtin/validation.ts';
import {
  importBoundsProblems,
  MAXIMUM_IMPORTED_BITS,
  MINIMUM_IMPORTED_BITS,
  PUBLIC_EXPONENT,
} from '../keys/crypto.ts';
import type { SigningKeySummary, UnloadableSigningKey } from '../keys/types.ts';
import { quotedName, type UnfitCharacter, unfitNameCharacters } from '../util/hidden-characters.ts';
import { nameKey } from '../util/name-key.ts';
import { ANSI_C_QUOTING_NOTE, hasAnsiCWord, NUL_NOTE, shellWord, uriShellWord } from '../util/shell-word.ts';

/**
 * System checks: pure functions of the configuration, the registered applications, the signing
 * keys and the names the directory has. `aa-oidc check` prints the findings; `serve` refuses to
 * start on any error.
 */

export type CheckId =
  | 'E001'
  | 'E004'
  | 'E006'
  | 'E007'
  | 'W001'
  | 'W003'
  | 'W004'
  | 'W005'
  | 'W007'
  | 'W008'
  | 'W009'
  | 'W010'
  | 'W011'
  | 'W013'
  | 'W022';

export type Finding =
  | {
      id: 'E001' | 'E004' | 'E006' | 'E007' | 'E008' | 'E009' | 'E010' | 'E011' | 'E012' | 'E013' | 'E014';
      level: 'error';
      message: string;
      hint: string;
    }
  | {
      id:
        | 'W001'
        | 'W003'
        | 'W004'
        | 'W005'
        | 'W006'
        | 'W007'
        | 'W008'
        | 'W009'
        | 'W010'
        | 'W011'
        | 'W012'
        | 'W013'
        | 'W014'
        | 'W015'
        | 'W016'
        | 'W017'
        | 'W018'
        | 'W019'
        | 'W020'
        | 'W021'
        | 'W022'
        | 'W023';
      level: 'warning';
      message: string;
      hint: string;
    };

/** The checks of the configuration and the applications (`runChecks`). */
export const CHECK_IDS: readonly CheckId[] = [
  'E001',
  'E004',
  'E006',
  'E007',
  'W001',
  'W003',
  'W004',
  'W005',
  'W007',
  'W008',
  'W009',
  'W010',
  'W011',
  'W013',
  'W022',
];

/** The states and groups the directory has now (for `whitelistChecks`). */
export interface DirectoryNames {
  states: readonly string[];
  groups: readonly string[];
}

/**
 * W006: an application whitelists a state or group the directory no longer has (deleted or renamed
 * where aa-oidc could not follow, in another directory). Names match exactly, as the policy matches
 * them; one the directory spells in another case (after a move to another directory) is named in the
 * hint. Only active applications count: a deactivated one admits nobody anyway. The message quotes
 * each name as W015's does (`quotedName`), so that the dashboard shows a control character (`\u0085`)
 * as the command line does, not as U+FFFD.
 */
export function whitelistChecks(
  apps: ReadonlyArray<Pick<Application, 'clientId' | 'active' | 'states' | 'groups'>>,
  directory: DirectoryNames,
): Finding[] {
  const known = { state: new Set(directory.states), group: new Set(directory.groups) };
  const spelt = (kind: 'state' | 'group', name: string) =>
    (kind === 'state' ? directory.states : directory.groups).filter(
      (candidate) => nameKey(candidate) === nameKey(name),
    );
  const findings: Finding[] = [];
  for (const app of apps) {
    if (!app.active) continue;
    for (const [kind, names] of [
      ['state', app.states],
      ['group', app.groups],
    ] as const) {
      for (const name of names) {
        if (known[kind].has(name)) continue;
        const others = spelt(kind, name);
        const word = shellWord(name);
        // A name no word can carry is left out of the whole list given again, each kept name named.
        const kept = word === undefined ? names.filter((other) => other !== name).map(shellWord) : [];
        const command =
          word !== undefined
            ? `aa-oidc app update ${app.clientId} --remove-${kind} ${word}`
            : kept.includes(undefined)
              ? `untick it on the application's page of the admin console (${NUL_NOTE}, nor in another ${kind} it whitelists)`
              : `aa-oidc app update ${app.clientId} ${kept.length === 0 ? `--clear-${kind}s` : kept.map((keptWord) => `--${kind} ${keptWord}`).join(' ')} (its ${kind}s but this one: ${NUL_NOTE})`;
        findings.push({
          id: 'W006',
          level: 'warning',
          message: `application ${app.clientId} whitelists the ${kind} ${quotedName(name)}, which the directory does not have${others.length > 0 ? ` (it has ${others.map(quotedName).join(', ')}: names match exactly, and on Alliance Auth over PostgreSQL that may be another ${kind})` : ''}`,
          // Never a ready-made --add: a name spelt otherwise may be another group that anyone can join.
          hint: `${command} (or restore the ${kind} in the directory; whitelist what should admit people instead first: an application whose whitelists are empty admits everyone past the global gate${hasAnsiCWord(word, ...kept) ? `; ${ANSI_C_QUOTING_NOTE}` : ''})`,
        });
      }
    }
  }
  return findings;
}

/**
 * W014: a state or group of the built-in directory whose name has spaces in a row, stored before new
 * names refused them (`validateNewName`): a web page shows `Bob  Smith` as `Bob Smith`, yet it is
 * another name, which a whitelist or a lookup typed with one space misses. The hint renames it to its
 * single-spaced spelling (application whitelists follow), unless that is another state's or group's
 * name. The message quotes the names as W015's does (`quotedName`). Alliance Auth's names are
 * Alliance Auth's: aa-oidc only reads them, so they are not judged.
 */
export function spacedNameChecks(
  source: Config['directory']['source'],
  directory: DirectoryNames,
): Finding[] {
  if (source !== 'builtin') return [];
  return storedNameFindings(directory, (kind, name, taken) => {
    if (!hasSpacesInARow(name)) return undefined;
    const shown = singleSpaced(name);
    const shownTaken = taken(shown);
    const [word, shownWord] = [shellWord(name), shellWord(shown)];
    const follow = `application whitelists follow${hasAnsiCWord(word, shownWord) ? `; ${ANSI_C_QUOTING_NOTE}` : ''}`;
    return {
      id: 'W014',
      level: 'warning',
      message: `the ${kind} ${quotedName(name)} has spaces in a row (stored before new names refused them): a web page shows it as ${quotedName(shown)}, ${shownTaken ? `the name of another ${kind}` : 'yet that is another name'}, which a whitelist or a lookup typed with one space misses`,
      hint:
        word === undefined
          ? unnameableHint(kind)
          : shownTaken
            ? `give it a name of its own: aa-oidc ${kind} rename ${word} NEW-NAME (${follow})`
            : `aa-oidc ${kind} rename ${word} ${shownWord ?? 'NEW-NAME'} (${follow})`,
    };
  });
}

/**
 * The findings of `judge` over every stored state and group name, states first. `taken` says whether
 * a name of the same kind has `candidate`'s name key (`nameKey`), the name judged included: whether
 * a rename to `candidate` would be refused as another's name.
 */
function storedNameFindings(
  directory: DirectoryNames,
  judge: (
    kind: 'state' | 'group',
    name: string,
    taken: (candidate: string) => boolean,
  ) => Finding | undefined,
): Finding[] {
  const findings: Finding[] = [];
  for (const [kind, names] of [
    ['state', directory.states],
    ['group', directory.groups],
  ] as const) {
    const keys = new Set(names.map(nameKey));
    const taken = (candidate: string) => keys.has(nameKey(candidate));
    for (const name of names) {
      const finding = judge(kind, name, taken);
      if (finding) findings.push(finding);
    }
  }
  return findings;
}

/** How many of a name's unfit characters a W015 message names; it counts the rest. */
const UNFIT_CHARACTERS_NAMED = 3;

/**
 * W015: a state or group of the built-in directory, or an active application, whose name has a
 * character new names refuse (`unfitNameCharacter`: a control character, a line or paragraph
 * separator, a bidirectional control, an invisible character), stored before they were refused or
 * by an older aa-oidc. aa-oidc's own pages show such a character as `[U+202E]`, but a relying party
 * shows the `groups` claim (states and groups) as it is, where `Admins\u202e` can read as another
 * name. The message shows the name with each such character as its \u escape and says where each
 * is; the hint renames it to the name without them, unless that is no valid name or, for a state or
 * group, another's name. The stored name in a rename is in ANSI-C quoting (`$'…'`, bash, zsh, ksh)
 * with each such character as the \x escapes of its UTF-8 bytes (`shellWord`), which read alike in
 * any locale. Alliance Auth's names are Alliance
 * Auth's, which aa-oidc only reads: not judged, as for W014.
 */
export function unfitCharacterNameChecks(
  source: Config['directory']['source'],
  directory: DirectoryNames,
  apps: ReadonlyArray<Pick<Application, 'clientId' | 'name' | 'active'>>,
): Finding[] {
  const findings: Finding[] = [];
  if (source === 'builtin') {
    findings.push(
      ...storedNameFindings(directory, (kind, name, taken) => {
        const unfit = unfitNameCharacters(name);
        if (unfit.length === 0) return undefined;
        const cleaned = withoutUnfitCharacters(name, unfit);
        const renamed = isValidNewName(kind, cleaned) && !taken(cleaned) ? cleaned : undefined;
        const word = shellWord(name);
        return {
          id: 'W015',
          level: 'warning',
          message: `the ${kind} ${quotedName(name)} contains ${unfitList(unfit)} (stored before new names refused them): where it is shown as it is, as a relying party may show the groups claim, it can read as another name`,
          hint:
            word === undefined
              ? unnameableHint(kind)
              : `aa-oidc ${kind} rename ${word} ${(renamed === undefined ? undefined : shellWord(renamed)) ?? 'NEW-NAME'} (application whitelists follow; ${ANSI_C_QUOTING_NOTE})`,
        };
      }),
    );
  }
  for (const app of apps) {
    if (!app.active) continue;
    const unfit = unfitNameCharacters(app.name);
    if (unfit.length === 0) continue;
    const cleaned = withoutUnfitCharacters(app.name, unfit).trim();
    findings.push({
      id: 'W015',
      level: 'warning',
      message: `application ${app.clientId} is named ${quotedName(app.name)}, which contains ${unfitList(unfit)} (stored before new names refused them): where it is shown as it is, it can read as another name`,
      // The name without its unfit characters has no NUL (a control character) for shellWord to refuse.
      hint: `aa-oidc app update ${app.clientId} --name ${(cleaned === '' ? undefined : shellWord(cleaned)) ?? 'NEW-NAME'}`,
    });
  }
  return findings;
}

/** How many users a W015 finding of users' texts names; it counts the rest. */
const USERS_NAMED = 5;

/** The users' texts W015 judges, with how a message names each. */
const USER_TEXTS = [
  {
    field: 'email',
    message: (count: number) =>
      `${count === 1 ? 'a built-in user has an email address' : `${count} built-in users have email addresses`} with a character new addresses refuse (stored before they were refused): where it is shown as it is, as a relying party may show the email claim, it can read as another address`,
    hint: 'aa-oidc user set-email USERNAME ADDRESS for each, with the address without the character (the address is then unverified: add --verified when it is known to be theirs)',
  },
  {
    field: 'characterName',
    message: (count: number) =>
      `${count === 1 ? "a built-in user's main character has a name" : `${count} built-in users' main characters have names`} with a character new names refuse (stored before they were refused): where it is shown as it is, as a relying party may show the name claim, it can read as another name`,
    hint: 'aa-oidc user set-main-character USERNAME --character-id ID --character-name NAME for each, with the name without the character and the rest of the main character (the command replaces the whole main character)',
  },
] as const;

/**
 * W015 of the built-in directory's users: email addresses and main characters' names with a character
 * new ones refuse (`validateEmail`, `MAIN_CHARACTER_FIELDS`), stored before they were refused. One
 * finding a field, naming the first users by username and id, each text escaped as W015 quotes a
 * name, with where its characters are; it counts the rest. `users` may hold others (a tag character
 * in a flag is no finding): each text is judged here.
 */
export function unfitUserTextChecks(users: readonly StoredUserText[]): Finding[] {
  const findings: Finding[] = [];
  for (const text of USER_TEXTS) {
    const found = users.flatMap((user) => {
      const value = user[text.field];
      const unfit = value === null ? [] : unfitNameCharacters(value);
      return unfit.length === 0 ? [] : [{ user, value: value!, unfit }];
    });
    if (found.length === 0) continue;
    const named = found
      .slice(0, USERS_NAMED)
      .map(
        ({ user, value, unfit }) =>
          `${quotedName(user.username)} (id ${user.id}): ${quotedName(value)} contains ${unfitList(unfit)}`,
      );
    const rest = found.length - named.length;
    findings.push({
      id: 'W015',
      level: 'warning',
      message: `${text.message(found.length)}: ${named.join('; ')}${rest > 0 ? `; and ${rest} more` : ''}`,
      hint: text.hint,
    });
  }
  return findings;
}

/**
 * The hint for a stored state or group name with a NUL character: no command is given, as none can
 * name it (`NUL_NOTE`; bash would rename the state or group the NUL cuts its name to), nor can the
 * admin console, which refuses a NUL in an address.
 */
function unnameableHint(kind: 'state' | 'group'): string {
  return `aa-oidc cannot rename it: ${NUL_NOTE}, and the admin console refuses one in an address; rename the ${kind} in the database, where it was written, and in the whitelists of the applications that name it, then run aa-oidc check again`;
}

function unfitList(unfit: readonly UnfitCharacter[]): string {
  const named = unfit
    .slice(0, UNFIT_CHARACTERS_NAMED)
    .map((found) => `${found.description}, at character ${found.position}`);
  const rest = unfit.length - named.length;
  if (rest > 0) named.push(`${rest} more`);
  return named.length === 1 ? named[0]! : `${named.slice(0, -1).join('; ')} and ${named.at(-1)!}`;
}

function withoutUnfitCharacters(name: string, unfit: readonly UnfitCharacter[]): string {
  let kept = '';
  let from = 0;
  for (const found of unfit) {
    kept += name.slice(from, found.index);
    from = found.index + found.char.length;
  }
  return kept + name.slice(from);
}

function isValidNewName(kind: 'state' | 'group', name: string): boolean {
  try {
    validateNewName(kind, name);
    return true;
  } catch {
    return false;
  }
}

/** What the checks read from the configuration. */
export type CheckedConfig = Pick<
  Config,
  'mode' | 'issuerExplicit' | 'logging' | 'logout' | 'trustProxy' | 'readableConfigFile'
> & {
  oidc: Pick<Config['oidc'], 'scopes'>;
  metrics: Pick<Config['metrics'], 'enabled' | 'host'>;
};

/**
 * A listen address only this host reaches. Not util/loopback.ts's `isLoopbackHost`, which judges a
 * URL's host as a browser resolves it: it takes every name under `localhost` (`app.localhost`) as
 * loopback, while a listen address is resolved by the system resolver, which may ask DNS for one.
 */
function isLoopbackListenAddress(host: string): boolean {
  return /^(127\.\d+\.\d+\.\d+|::1|\[::1\]|localhost)$/i.test(host);
}

/** What the checks read from an application. */
export type CheckedApplication = Pick<
  Application,
  | 'clientId'
  | 'name'
  | 'active'
  | 'backchannelLogoutUri'
  | 'clientSecretPbkdf2'
  | 'redirectUris'
  | 'postLogoutRedirectUris'
> &
  Partial<Pick<Application, 'logoUrl'>>;

/** What the checks read from a signing key. */
export type CheckedSigningKey = Pick<SigningKeySummary, 'kid' | 'status' | 'modulusBits' | 'publicExponent'>;

export function runChecks(
  config: CheckedConfig,
  /**
   * The registered applications; undefined when they could not be read (`aa-oidc check`'s E009): the
   * checks of the applications then report nothing, those of the configuration and the keys still do.
   */
  applications: readonly CheckedApplication[] | undefined,
  /** The signing keys; omitted when they could not be read (a database with pending migrations). */
  keys?: readonly CheckedSigningKey[],
): Finding[] {
  const findings: Finding[] = [];
  const apps = applications ?? [];
  const withUri = apps.filter((app) => app.backchannelLogoutUri !== null);
  const production = config.mode === 'production';

  if (withUri.length > 0 && !config.issuerExplicit)
    findings.push({
      id: 'E001',
      level: 'error',
      message: `${countApps(withUri)} a back-channel logout URI, but no issuer is configured`,
      hint: 'set AA_OIDC_ISSUER to the public issuer URL: logout tokens carry it as `iss`',
    });
  if (!config.oidc.scopes.includes('openid'))
    findings.push({
      id: 'E004',
      level: 'error',
      message: `the configured scopes (${config.oidc.scopes.join(', ')}) lack openid`,
      hint: 'add openid to AA_OIDC_OIDC_SCOPES',
    });
  if (
    production &&
    config.logout.allowPrivateTargets &&
    withUri.length > 0 &&
    !config.logout.allowPrivateTargetsInProduction
  )
    findings.push({
      id: 'E006',
      level: 'error',
      message: `private back-channel targets are allowed in production and ${countApps(withUri)} a back-channel logout URI`,
      hint:
        'unset AA_OIDC_LOGOUT_ALLOW_PRIVATE_TARGETS, or, if internal targets are intended, ' +
        'set AA_OIDC_LOGOUT_ALLOW_PRIVATE_TARGETS_IN_PRODUCTION=true',
    });
  // aa-oidc listens over plain HTTP: in production (an https issuer, Secure cookies) it must sit
  // behind a TLS-terminating proxy whose X-Forwarded-Proto it believes, or no sign-in can work.
  if (production && !config.trustProxy)
    findings.push({
      id: 'E007',
      level: 'error',
      message:
        'production mode without AA_OIDC_TRUST_PROXY: every sign-in would fail (secure cookies over plain HTTP)',
      hint:
        'run aa-oidc behind a TLS-terminating reverse proxy and set AA_OIDC_TRUST_PROXY=true ' +
        '(and AA_OIDC_TRUSTED_PROXIES to its addresses, if not loopback)',
    });
  // Masked secrets are a development aid (logging/secrets.ts): production names every token and code
  // by its digest whatever the setting says, so the setting there is a development one carried over,
  // which would show fragments of tokens again if the instance ran in development mode.
  if (production && config.logging.maskedSecrets)
    findings.push({
      id: 'W001',
      level: 'warning',
      message:
        'masked-secret logging is set in production, where it is ignored: tokens and codes are logged by digest only',
      hint:
        'unset AA_OIDC_LOGGING_MASKED_SECRETS (logging.maskedSecrets): it is for development, where audit lines ' +
        'in the log show the first and last 4 characters of tokens and codes',
    });
  if (!config.logout.rpInitiated && withUri.length > 0)
    findings.push({
      id: 'W003',
      level: 'warning',
      message: `RP-initiated logout is off while ${countApps(withUri)} a back-channel logout URI`,
      hint: 'set AA_OIDC_LOGOUT_RP_INITIATED=true so that signing out reaches those applications',
    });
  if (production) {
    for (const app of apps) {
      if (app.active && app.backchannelLogoutUri?.toLowerCase().startsWith('http://'))
        findings.push({
          id: 'W004',
          level: 'warning',
          message: `application ${app.clientId} has an http:// back-channel logout URI in production`,
          hint: `aa-oidc app update ${app.clientId} --backchannel-logout-uri https://…`,
        });
    }
  }
  // Without the applications, whether one has a back-channel URI (E006 rather than W005) is unknown.
  if (production && config.logout.allowPrivateTargets && applications !== undefined && withUri.length === 0)
    findings.push({
      id: 'W005',
      level: 'warning',
      message: 'private back-channel targets are allowed in production',
      hint: 'unset AA_OIDC_LOGOUT_ALLOW_PRIVATE_TARGETS: it is a development escape hatch',
    });
  // The metrics listener has no authentication: beyond loopback, whoever reaches the port reads it.
  if (production && config.metrics.enabled && !isLoopbackListenAddress(config.metrics.host))
    findings.push({
      id: 'W007',
      level: 'warning',
      message: `the metrics listener (no authentication) listens on ${config.metrics.host} in production`,
      hint:
        'set AA_OIDC_METRICS_HOST=127.0.0.1 and scrape from this host, or scrape /metrics on the main port ' +
        'with AA_OIDC_METRICS_BEARER_TOKEN; otherwise let a firewall keep the port to Prometheus',
    });
  // The config file holds secrets that any user of the host reads (a file written under the usual
  // umask): the environment file of docs/deployment.md is kept to root and the aa-oidc group.
  if (production && config.readableConfigFile) {
    const { path, mode, secrets } = config.readableConfigFile;
    findings.push({
      id: 'W010',
      level: 'warning',
      message: `the config file ${path} (mode ${mode.toString(8).padStart(4, '0')}) holds secrets (${secrets.join(', ')}) and every user of this host can read it`,
      hint: `chmod o-rwx ${path} (like the environment file: mode 0640, owner root, group aa-oidc)`,
    });
  }
  // Keys imported before `keys import` had its bounds keep signing (the active key) or will (the
  // next key): a huge key makes every signature slow, another exponent is refused by some relying
  // parties' libraries. Retired keys only verify, and go when their tokens expire.
  // Nothing signs ID tokens without an active key (logout tokens are signed with another published
  // key: logout/jobs.ts `logoutSigningKey`): `serve` and `worker` create one at their start, but a
  // running server whose active key went (a restored backup) keeps failing.
  if (keys && !keys.some((key) => key.status === 'active')) {
    const next = keys.find((key) => key.status === 'next');
    findings.push({
      id: 'W011',
      level: 'warning',
      message: next
        ? `there is no active signing key, only the next key ${next.kid}: a running server signs no ID token until one is active, and signs logout tokens with another published key meanwhile (serve and worker activate the next key at their start)`
        : 'there is no active signing key (nor a next key): a running server signs no ID token until one is active, and signs logout tokens with another published key meanwhile, if any (serve and worker create one at their start)',
      hint: next
        ? `aa-oidc keys rotate activates the next key ${next.kid} now; running servers load it within seconds`
        : 'aa-oidc keys rotate creates an active key (and a next key) now; running servers load it within seconds',
    });
  }
  for (const key of keys ?? []) {
    if (key.status !== 'active' && key.status !== 'next') continue;
    const problems = importBoundsProblems(key.modulusBits, key.publicExponent);
    if (problems.length === 0) continue;
    findings.push({
      id: 'W008',
      level: 'warning',
      message: `the ${key.status} signing key ${key.kid} has ${problems.join(' and ')}: keys import accepts RSA keys of ${MINIMUM_IMPORTED_BITS} to ${MAXIMUM_IMPORTED_BITS} bits with public exponent ${PUBLIC_EXPONENT} only (a larger key makes every signature slow; some relying parties refuse another exponent)`,
      hint:
        key.status === 'active'
          ? 'aa-oidc keys rotate, once the next key has been published for keys.jwksCacheSeconds (aa-oidc keys rotate --dry-run says when; ' +
            'without a next key, aa-oidc keys prepare-next first): the key then stops signing and stays published while its tokens live'
          : `aa-oidc keys retire ${key.kid}, then aa-oidc keys prepare-next, before a rotation makes it sign`,
    });
  }
  // Secrets imported from the Python plugin as PBKDF2 hashes, still held (read with the applications,
  // no query of its own). A deactivated application is not found by client authentication: no cost.
  for (const app of apps) {
    const imported = app.active ? importedSecretHash(app) : null;
    if (!imported) continue;
    const which = `application ${JSON.stringify(app.name)} (${app.clientId})`;
    findings.push(
      imported.checked
        ? {
            id: 'W009',
            level: 'warning',
            message: `${which} still holds a client secret imported from the Python plugin as a PBKDF2 hash (${imported.iterations} iterations): each authentication with it, right secret or wrong, costs a PBKDF2 run until the relying party's first success`,
            hint: `aa-oidc app rotate-secret ${app.clientId} and give the relying party the new secret, or let the relying party sign in once (its first success replaces the hash); see docs/migrating-from-the-plugin.md`,
          }
        : {
            id: 'W009',
            level: 'warning',
            message: `${which} holds a client secret imported from the Python plugin as ${imported.iterations === null ? 'a hash aa-oidc cannot read' : `a PBKDF2 hash of ${imported.iterations} iterations, more than the ${IMPORTED_SECRET_MAX_ITERATIONS} aa-oidc checks`}: it authenticates nobody`,
            hint: `aa-oidc app rotate-secret ${app.clientId} and give the relying party the new secret`,
          },
    );
  }
  // Redirect URIs with a * in the host, taken before such URIs were refused and kept by edits since:
  // matched exactly, they admit no host under them, only that literal string (which no host has).
  for (const app of apps) {
    if (!app.active) continue;
    for (const [list, uris] of [
      ['redirect', app.redirectUris],
      ['post-logout-redirect', app.postLogoutRedirectUris],
    ] as const) {
      for (const uri of uris) {
        if (!hasWildcardHost(uri)) continue;
        const noun = list === 'redirect' ? 'redirect URI' : 'post-logout redirect URI';
        const word = shellWord(uri);
        // A URI no word can carry is left out of the whole list given again, each kept URI named.
        const kept = word === undefined ? uris.filter((other) => other !== uri).map(shellWord) : [];
        findings.push({
          id: 'W013',
          level: 'warning',
          message: `application ${app.clientId} has the ${noun} ${JSON.stringify(uri)}, with a * in its host (stored before such URIs were refused): it matches exactly, that string only, never a host under it`,
          hint:
            word !== undefined
              ? `aa-oidc app update ${app.clientId} --remove-${list}-uri ${word} --add-${list}-uri https://… for each host's URI it was meant for`
              : kept.includes(undefined)
                ? `replace it on the application's page of the admin console with each host's URI it was meant for (${NUL_NOTE}, nor in another ${noun} it has)`
                : `aa-oidc app update ${app.clientId} ${kept.map((keptWord) => `--${list}-uri ${keptWord} `).join('')}--${list}-uri https://… for each host's URI it was meant for (its ${noun}s but this one: ${NUL_NOTE}${hasAnsiCWord(...kept) ? `; ${ANSI_C_QUOTING_NOTE}` : ''})`,
        });
      }
    }
  }
  findings.push(...refusedSinceUriChecks(apps));
  return findings;
}

/** W022's URI fields: its noun, and the options of `aa-oidc app update` that remove it and give another. */
const URI_FIELDS = [
  ['redirect URI', '--remove-redirect-uri', '--add-redirect-uri'],
  ['post-logout redirect URI', '--remove-post-logout-redirect-uri', '--add-post-logout-redirect-uri'],
  ['logo URL', undefined, '--logo-url'],
  ['back-channel logout URI', undefined, '--backchannel-logout-uri'],
] as const;

/**
 * W022: an active application has a URI stored before a rule that now refuses it (a hidden character,
 * a malformed percent-escape, port 0, a host no DNS name can be), kept by every edit that leaves it.
 * The message quotes it as the applications' messages do (hidden characters as `\u` escapes).
 */
function refusedSinceUriChecks(apps: readonly CheckedApplication[]): Finding[] {
  const findings: Finding[] = [];
  for (const app of apps) {
    if (!app.active) continue;
    const stored = [
      app.redirectUris,
      app.postLogoutRedirectUris,
      app.logoUrl ? [app.logoUrl] : [],
      app.backchannelLogoutUri ? [app.backchannelLogoutUri] : [],
    ];
    URI_FIELDS.forEach(([noun, remove, give], index) => {
      for (const uri of stored[index]!) {
        const problem = refusedSinceUriProblem(uri);
        if (problem === null) continue;
        // A stored URI is put in a command as one shell word the shell expands nothing in, or not at all.
        const word = remove === undefined ? '' : uriShellWord(uri);
        findings.push({
          id: 'W022',
          level: 'warning',
          message: `application ${app.clientId} has the ${noun} ${withJoinersShown(quote(uri))} (stored before such URIs were refused), which ${problem}`,
          hint:
            word === undefined
              ? `replace it on the application's page of the admin console with the URI as it should read (${NUL_NOTE})`
              : `aa-oidc app update ${app.clientId} ${remove === undefined ? '' : `${remove} ${word} `}${give} https://… with the URI as it should read (or on the application's page of the admin console${hasAnsiCWord(word) ? `; ${ANSI_C_QUOTING_NOTE}` : ''})`,
        });
      }
    });
  }
  return findings;
}

function countApps(apps: readonly unknown[]): string {
  return apps.length === 1 ? '1 application has' : `${apps.length} applications have`;
}

/**
 * E010: the configured directory is not the one this database's user ids belong to (another
 * directory, or another Alliance Auth database). Every session, grant, token and two-factor
 * enrolment is keyed by the numeric user id alone, so each would pass to whoever has the same id
 * in the configured directory: another person. `serve` refuses to start on it.
 */
export function directoryBindingChecks(status: DirectoryBindingStatus): Finding[] {
  if (status.kind !== 'differs') return [];
  const since = new Date(status.recorded.boundAt).toISOString();
  return [
    {
      id: 'E010',
      level: 'error',
      message:
        `this database's user ids belong to ${describeBinding(status.recorded)} (bound ${since}), but the configured directory is ${describeBinding(status.current)}: ` +
        'its sessions, grants, tokens and two-factor enrolments would pass to whoever has the same user id there, other people',
      hint:
        'configure the directory the database is bound to again (AA_OIDC_DIRECTORY, AA_OIDC_AA_DATABASE_URL); or, to move to the configured one, ' +
        'stop every serve and worker and run aa-oidc directory rebind --dry-run, then aa-oidc directory rebind --yes ' +
        '(it signs everyone out, revokes every token and grant with back-channel logout, removes two-factor enrolments, and binds the database to the configured directory)',
    },
  ];
}

/**
 * E011: the configuration could not be loaded (`ConfigError`: its message names the setting and
 * what would be valid, never a secret's value). Every command, `serve` and `worker` refuse it; no
 * other check could run, as each judges the configuration or reads the database it names.
 */
export function configurationChecks(problem: string): Finding[] {
  return [
    {
      id: 'E011',
      level: 'error',
      message: `the configuration cannot be loaded, so no other check ran: ${problem}`,
      hint: 'fix that setting (in the environment or the file AA_OIDC_CONFIG names), then run aa-oidc check again; serve, worker and every other command refuse to start until then',
    },
  ];
}

/** How many migration names a finding shows before it counts the rest. */
const MIGRATIONS_NAMED = 5;

function migrationList(names: readonly string[]): string {
  const shown = names.slice(0, MIGRATIONS_NAMED).join(', ');
  return names.length > MIGRATIONS_NAMED ? `${shown} and ${names.length - MIGRATIONS_NAMED} more` : shown;
}

/**
 * E012: migrations this release ships that the database lacks (the checks that read the database
 * then report nothing: its tables are not what they expect). E014: each of those that would stop on
 * the database as it is (data it cannot migrate, as its precheck finds), in the words `aa-oidc
 * migrate --dry-run` fails with. W021: migrations the database records that this release does not
 * ship, a newer release's: `aa-oidc migrate` refuses the database, but `serve` and `worker` run on it
 * (old instances may, during an upgrade whose migrations are additive; docs/upgrading.md), writing
 * to a schema this release does not know.
 */
export function migrationChecks(migrations: {
  pending: readonly string[];
  /** Of `pending`, those that would stop, with what they would stop with. */
  wouldStop?: readonly { name: string; reason: string }[];
  unknown: readonly string[];
}): Finding[] {
  const findings: Finding[] = [];
  const { pending, wouldStop = [], unknown } = migrations;
  if (pending.length > 0)
    findings.push({
      id: 'E012',
      level: 'error',
      message: `the database has ${pending.length} pending migration(s) (${migrationList(pending)}), so the checks that read it report nothing: only those of the configuration alone ran`,
      hint: 'aa-oidc migrate applies them (aa-oidc migrate --dry-run lists them; docs/upgrading.md); until then a production serve answers /readyz with 503, and worker and the other commands refuse to run',
    });
  for (const { name, reason } of wouldStop)
    findings.push({
      id: 'E014',
      level: 'error',
      message: `migration ${name} would fail: ${reason}`,
      hint: 'aa-oidc migrate would stop at it, applying none of the pending migrations: mend what it names as it says, then run aa-oidc check again (aa-oidc migrate --dry-run foresees it too)',
    });
  if (unknown.length > 0)
    findings.push({
      id: 'W021',
      level: 'warning',
      message: `the database was migrated by a newer release of aa-oidc: it records ${unknown.length} migration(s) this release does not have (${migrationList(unknown)}); aa-oidc migrate refuses it, but serve, worker and the other commands of this release run on it and write to a schema they do not know`,
      hint: 'run the newer release; keep this one running meanwhile only if the newer release notes say its migrations are additive (docs/upgrading.md), or restore the backup taken before that upgrade to go back to this release',
    });
  return findings;
}

/**
 * E013: published signing keys whose private part cannot be loaded, with the configured
 * AA_OIDC_SECRET_KEY (not the one they were encrypted with, one finding for all such keys) or at all
 * (a damaged row, one finding each). `serve` and `worker` refuse to start on the first such key,
 * as do the commands that load the keys; `aa-oidc keys list` still lists them. No private material,
 * nor the secret key, is named.
 */
export function signingKeyLoadChecks(unloadable: readonly UnloadableSigningKey[]): Finding[] {
  const findings: Finding[] = [];
  const wrongSecret = unloadable.filter((key) => key.problem === 'secret_key');
  const refused =
    'serve and worker refuse to start, and the commands that load the signing keys refuse to run (aa-oidc keys list shows them)';
  if (wrongSecret.length > 0)
    findings.push({
      id: 'E013',
      level: 'error',
      message: `${wrongSecret.length === 1 ? 'the signing key' : `${wrongSecret.length} signing keys`} ${wrongSecret.map((key) => `${key.kid} (${key.status})`).join(', ')} cannot be decrypted: AA_OIDC_SECRET_KEY is not the secret key ${wrongSecret.length === 1 ? 'it was' : 'they were'} encrypted with; ${refused}`,
      hint: 'configure the AA_OIDC_SECRET_KEY the keys were encrypted with again (in development it is kept in the data folder as secret.key; a backup of the database does not hold it), then run aa-oidc check again',
    });
  for (const key of unloadable) {
    if (key.problem !== 'damaged') continue;
    findings.push({
      id: 'E013',
      level: 'error',
      message: `the ${key.status} signing key cannot be loaded: ${key.reason}; ${refused}`,
      hint: "restore the table signing_key from a backup taken with this AA_OIDC_SECRET_KEY: the key's row is not as aa-oidc wrote it",
    });
  }
  return findings;
}

/** How many user ids W023 names before it counts the rest. */
const TWO_FACTOR_USERS_NAMED = 10;

/**
 * W023: users whose confirmed two-factor enrolment AA_OIDC_SECRET_KEY cannot decrypt (stored under
 * another secret key: one replaced since, a backup of another install; or a row not as aa-oidc wrote
 * it), by user id (`usersWithUnreadableTwoFactorSecrets`). A warning: the server runs, and those
 * users sign in with a recovery code (kept as digests) or after an administrator's reset; codes from
 * their app are refused, saying why. Nothing of a secret is named.
 */
export function twoFactorSecretChecks(userIds: readonly number[]): Finding[] {
  if (userIds.length === 0) return [];
  const shown = userIds.slice(0, TWO_FACTOR_USERS_NAMED).join(', ');
  const named =
    userIds.length > TWO_FACTOR_USERS_NAMED
      ? `${shown} and ${userIds.length - TWO_FACTOR_USERS_NAMED} more`
      : shown;
  return [
    {
      id: 'W023',
      level: 'warning',
      message: `${userIds.length === 1 ? 'the two-factor secret of 1 user' : `the two-factor secrets of ${userIds.length} users`} (user id ${named}) cannot be decrypted: AA_OIDC_SECRET_KEY is likely not the secret key ${userIds.length === 1 ? 'it was' : 'they were'} stored under (or ${userIds.length === 1 ? 'its row was' : 'their rows were'} changed); sign-in refuses codes from ${userIds.length === 1 ? 'that user’s' : 'those users’'} authenticator app, and only a recovery code lets ${userIds.length === 1 ? 'them' : 'each'} in`,
      hint: "configure the AA_OIDC_SECRET_KEY they were stored under again, if it was replaced (E013 names the signing keys it cannot decrypt alike); otherwise reset their two-factor sign-in so that they set it up again: on the admin console's user page /admin/users/ID (ID a user id above), or with aa-oidc user reset-two-factor USERNAME, with the username that page shows",
    },
  ];
}

export function hasError(findings: readonly Finding[]): boolean {
  return findings.some((finding) => finding.level === 'error');
}

/** One line per finding: `E006 error: message (hint: …)`. */
export function formatFindings(findings: readonly Finding[]): string {
  if (findings.length === 0) return 'System check identified no issues.\n';
  return `${findings.map((finding) => `${finding.id} ${finding.level}: ${finding.message}\n  hint: ${finding.hint}`).join('\n')}\n`;
}
