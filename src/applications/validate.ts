import { ACCOUNT_CONSOLE_CLIENT_ID } from './account-console.ts';
import type { Mode } from '../config/load.ts';
import { ApplicationError, type ApplicationIssue, quote } from './errors.ts';
import {
  hasUnsafeUriCharacter,
  hiddenUriCharacterProblem,
  hostNameProblem,
  percentEscapeProblem,
  uriEscapeOrPortProblem,
  withJoinersShown,
} from './text.ts';
import { unfitNameCharacter } from '../util/hidden-characters.ts';
import { listedNameHint } from '../util/listed-name.ts';
import { lookalikeHint, lookalikeKey } from '../util/lookalike-names.ts';
import { nameKey } from '../util/name-key.ts';
import { urlHasCredentials } from '../util/url-credentials.ts';
import { visibleText } from '../util/visible-text.ts';
import {
  ACCESS_TOKEN_FORMAT_SETTINGS,
  type AccessTokenFormatSetting,
  type ApplicationInput,
  type BackchannelTargetCheck,
  CLIENT_TYPES,
  type ClientType,
  DEFAULT_GRANT_TYPES,
  GRANT_TYPES,
  type GrantType,
} from './types.ts';

export const NAME_MAX = 100;
export const URI_MAX = 2000;
export const URIS_MAX = 50;
export const WHITELIST_MAX = 200;
// Starts with a letter or digit: a leading `-` would read as an option on the command line.
const CLIENT_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._~-]{2,99}$/;
/** Pages of the admin UI at `/admin/apps/<segment>`, behind which an application of that id would hide. */
const ADMIN_PAGE_SEGMENTS: ReadonlySet<string> = new Set(['new', 'test-logout']);
const LOOPBACK_HOSTS: ReadonlySet<string> = new Set(['127.0.0.1', '[::1]', 'localhost']);

/** The names a directory has (a set of names, or the keys of a map from names). */
export type DirectoryNames = Pick<ReadonlySet<string>, 'keys'>;

/** What validation needs besides the input: the mode, the directory's names, the SSRF gate. */
export interface ValidationContext {
  mode: Mode;
  /** Every state the directory has. */
  states: DirectoryNames;
  /** Every group the directory has. */
  groups: DirectoryNames;
  backchannelTargetCheck: BackchannelTargetCheck;
  /**
   * On an update, the name stored: kept unchanged, it is not refused for a character names may no
   * longer be given (a line separator, say), nor for a NUL (stored on SQLite by another tool), so
   * that an application named so before stays editable.
   */
  storedName?: string;
  /**
   * On an update, the logo URL stored: kept unchanged, an http one (accepted before logos had to be
   * https) is not refused, so that an edit of something else still goes through; it is not shown.
   */
  storedLogoUrl?: string | null;
  /**
   * On an update, the redirect URIs stored: one kept unchanged in its list is not refused for a `*`
   * in its host (taken before such URIs were refused), so that an edit of something else (narrowing
   * the whitelists, above all) still goes through; a new one is.
   */
  storedRedirectUris?: readonly string[];
  /** On an update, the post-logout redirect URIs stored: kept unchanged like `storedRedirectUris`. */
  storedPostLogoutRedirectUris?: readonly string[];
  /**
   * On an update, the back-channel logout URI stored: kept unchanged, it is not refused for a hidden
   * character, a malformed percent-escape or a host no DNS name can be (refused since), as a logo URL is not.
   */
  storedBackchannelLogoutUri?: string | null;
}

/** A complete, checked application, ready to be written. */
export interface ValidApplication {
  clientId: string;
  name: string;
  logoUrl: string | null;
  redirectUris: string[];
  postLogoutRedirectUris: string[];
  clientType: ClientType;
  grantTypes: GrantType[];
  skipAuthorization: boolean;
  /** Whitelisted state names, as the directory spells them, sorted. */
  states: string[];
  /** Whitelisted group names, as the directory spells them, sorted. */
  groups: string[];
  active: boolean;
  debugMode: boolean;
  pkceRequired: boolean;
  accessTokenFormat: AccessTokenFormatSetting;
  backchannelLogoutUri: string | null;
  backchannelLogoutOnRevokeOnly: boolean;
  idTokenClaims: boolean;
}

/**
 * The one validating function every application write goes through (create and update alike:
 * update merges its patch into the stored application and validates the whole result). Applies
 * the defaults, collects every problem, and throws one `ApplicationError` naming them all.
 */
export async function validateApplicationInput(
  input: ApplicationInput,
  context: ValidationContext,
): Promise<ValidApplication> {
  const issues: ApplicationIssue[] = [];
  const problem = (field: string, message: string) => issues.push({ field, message });

  const clientId = input.clientId;
  if (typeof clientId !== 'string') problem('client_id', 'is required');
  else if (clientId.includes('\0')) problem('client_id', 'must not contain NUL bytes');
  else if (!CLIENT_ID_PATTERN.test(clientId))
    problem(
      'client_id',
      'must be 3–100 characters from A–Z a–z 0–9 . _ ~ -, starting with a letter or digit',
    );
  else if (clientId.toLowerCase() === ACCOUNT_CONSOLE_CLIENT_ID)
    problem('client_id', 'is reserved for the built-in account console');
  else if (ADMIN_PAGE_SEGMENTS.has(clientId))
    problem('client_id', `${quote(clientId)} is reserved: /admin/apps/${clientId} is a page of the admin UI`);

  const name = checkName(input.name, context.storedName, problem);

  const clientType = input.clientType ?? 'confidential';
  if (!CLIENT_TYPES.includes(clientType))
    problem('client_type', `${quote(clientType)} is not valid; use ${CLIENT_TYPES.join(' or ')}`);

  const logoUrl = checkLogoUrl(input.logoUrl, context.storedLogoUrl, problem);

  const grantTypes = checkGrantTypes(input.grantTypes, clientType, problem);

  const uriRules = { mode: context.mode, clientType };
  const redirectUris = checkUriList(
    'redirect_uris',
    input.redirectUris,
    { ...uriRules, stored: context.storedRedirectUris },
    problem,
  );
  const redirectUrisReported = issues.some((issue) => issue.field.startsWith('redirect_uris'));
  if (grantTypes.includes('authorization_code') && redirectUris.length === 0 && !redirectUrisReported)
    problem('redirect_uris', 'at least one redirect URI is required for the authorization_code grant');
  const postLogoutRedirectUris = checkUriList(
    'post_logout_redirect_uris',
    input.postLogoutRedirectUris,
    { ...uriRules, stored: context.storedPostLogoutRedirectUris },
    problem,
  );

  const skipAuthorization = checkFlag('skip_authorization', input.skipAuthorization, false, problem);
  const active = checkFlag('active', input.active, true, problem);
  const debugMode = checkFlag('debug_mode', input.debugMode, false, problem);
  const pkceRequired = checkFlag('pkce_required', input.pkceRequired, true, problem);
  if (clientType === 'public' && !pkceRequired)
    problem('pkce_required', 'public clients must require PKCE (they have no secret to protect the code)');
  const backchannelLogoutOnRevokeOnly = checkFlag(
    'backchannel_logout_on_revoke_only',
    input.backchannelLogoutOnRevokeOnly,
    false,
    problem,
  );
  const idTokenClaims = checkFlag('id_token_claims', input.idTokenClaims, false, problem);

  const accessTokenFormat = input.accessTokenFormat ?? 'inherit';
  if (!ACCESS_TOKEN_FORMAT_SETTINGS.includes(accessTokenFormat))
    problem(
      'access_token_format',
      `${quote(accessTokenFormat)} is not valid; use one of ${ACCESS_TOKEN_FORMAT_SETTINGS.join(', ')}`,
    );

  const states = checkWhitelist('states', 'state', input.states, context.states, problem);
  const groups = checkWhitelist('groups', 'group', input.groups, context.groups, problem);

  const backchannelLogoutUri = await checkBackchannelUri(
    input.backchannelLogoutUri,
    context.storedBackchannelLogoutUri,
    context.backchannelTargetCheck,
    problem,
  );

  if (issues.length > 0) throw new ApplicationError('invalid_input', issues);
  return {
    clientId: clientId as string,
    name,
    logoUrl,
    redirectUris,
    postLogoutRedirectUris,
    clientType,
    grantTypes,
    skipAuthorization,
    states,
    groups,
    active,
    debugMode,
    pkceRequired,
    accessTokenFormat,
    backchannelLogoutUri,
    backchannelLogoutOnRevokeOnly,
    idTokenClaims,
  };
}

type Problem = (field: string, message: string) => void;

function checkName(value: unknown, storedName: string | undefined, problem: Problem): string {
  if (typeof value !== 'string') {
    problem('name', 'is required (1–100 characters)');
    return '';
  }
  if (value.includes('\0') && value !== storedName) {
    problem('name', 'must not contain NUL bytes');
    return '';
  }
  const name = value.trim();
  if (name.length === 0 || name.length > NAME_MAX) problem('name', `must be 1–${NAME_MAX} characters`);
  else if (name !== storedName) {
    const unfit = unfitNameCharacter(name);
    if (unfit)
      problem(
        'name',
        `must not contain ${unfit} (it can make the name show as something else, or break its line)`,
      );
  }
  return name;
}

function checkFlag(field: string, value: unknown, fallback: boolean, problem: Problem): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') {
    problem(field, 'must be true or false');
    return fallback;
  }
  return value;
}

/**
 * Text checks shared by every URI field; returns a reason or null. `kept`: the URI stored, unchanged,
 * is not judged by the hidden characters (refused since), which are named before the white space
 * they may be (U+FEFF).
 */
function uriTextProblem(value: unknown, kept: boolean): string | null {
  if (typeof value !== 'string') return 'must be a string';
  if (value.includes('\0')) return 'must not contain NUL bytes';
  if (value.length > URI_MAX) return `must be at most ${URI_MAX} characters`;
  const hidden = kept ? null : hiddenCharacterProblem(value);
  if (hidden !== null) return hidden;
  if (hasUnsafeUriCharacter(value))
    return `${quote(value)} is malformed: it contains whitespace, control characters or backslashes`;
  return null;
}

/**
 * A character of a URI that does not show (a bidirectional control, an invisible character), told
 * with the URI; refused since: a stored URI kept unchanged is not judged by it.
 */
function hiddenCharacterProblem(text: string): string | null {
  const hidden = hiddenUriCharacterProblem(text);
  return hidden === null ? null : `${withJoinersShown(quote(text))} ${hidden}`;
}

function schemeOf(value: string): string | undefined {
  return /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(value)?.[1]?.toLowerCase();
}

/** The authority of `scheme://authority/…`, or undefined when the URI has no `//` part. */
function authorityOf(value: string): string | undefined {
  return /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*)/.exec(value)?.[1];
}

/**
 * Whether a logo URL can be shown: the pages' Content-Security-Policy (`img-src 'self' https: data:`)
 * loads an application's logo over https only, so an http one (stored before logos had to be https)
 * would be a broken image.
 */
export function isShownLogoUrl(value: string | null | undefined): value is string {
  return typeof value === 'string' && schemeOf(value) === 'https';
}

function checkLogoUrl(
  value: unknown,
  storedLogoUrl: string | null | undefined,
  problem: Problem,
): string | null {
  if (value === undefined || value === null || value === '') return null;
  if (typeof value === 'string' && value === storedLogoUrl) return value;
  const textProblem = uriTextProblem(value, false);
  if (textProblem !== null) {
    problem('logo_url', textProblem);
    return null;
  }
  const text = value as string;
  const scheme = schemeOf(text);
  if (scheme !== 'https') {
    problem(
      'logo_url',
      scheme === undefined
        ? `${quote(text)} must be an absolute https URL such as https://app.example.com/logo.png`
        : scheme === 'http'
          ? `${quote(text)} must use https: the pages load images over https only (their Content-Security-Policy), so an http logo would not show`
          : `must be an https URL, not ${quote(`${scheme}:`)}`,
    );
    return null;
  }
  if (!authorityOf(text) || !URL.canParse(text)) {
    problem('logo_url', `${quote(text)} is malformed: expected https://host/path`);
    return null;
  }
  // Every page showing the logo would hand the credentials to whoever reads its source.
  if (urlHasCredentials(text)) {
    problem('logo_url', `${quote(text)} must not contain credentials (user:password@)`);
    return null;
  }
  const url = new URL(text);
  const unusable = uriEscapeOrPortProblem(url, text) ?? hostNameProblem(url.hostname);
  if (unusable !== null) {
    problem('logo_url', `${quote(text)} ${unusable}`);
    return null;
  }
  return text;
}

interface UriRules {
  mode: Mode;
  clientType: ClientType;
  /** The URIs of this list stored before: a `*` in their host, taken then, is not refused now. */
  stored?: readonly string[] | undefined;
}

/**
 * A redirect or post-logout redirect URI, matched later as an exact string: absolute, no fragment;
 * https, http only on loopback (or in development), private-use reverse-domain schemes only for
 * public (native) clients (RFC 8252).
 */
export function redirectUriProblem(value: unknown, rules: UriRules): string | null {
  const textProblem = uriTextProblem(value, rules.stored?.includes(value as string) === true);
  if (textProblem !== null) return textProblem;
  const text = value as string;
  const scheme = schemeOf(text);
  if (scheme === undefined)
    return `${quote(text)} must be an absolute URI such as https://app.example.com/callback`;
  if (text.includes('#')) return `${quote(text)} must not contain a fragment (#…)`;
  if (!URL.canParse(text)) return `${quote(text)} is not a valid URI`;
  if (scheme === 'https' || scheme === 'http') {
    const authority = authorityOf(text);
    if (!authority) return `${quote(text)} is malformed: expected ${scheme}://host/path`;
    const url = new URL(text);
    if (urlHasCredentials(text) || url.username !== '' || url.password !== '')
      return `${quote(text)} must not contain credentials (user:password@)`;
    if (url.hostname === '') return `${quote(text)} is malformed: the host is empty`;
    const unusable = unusableUriProblem(text, rules, true);
    if (unusable !== null) return unusable;
    if (hostHasWildcard(url) && !rules.stored?.includes(text))
      return `${quote(text)} has a * in its host: redirect URIs are matched exactly, with no wildcards; register each host's URI`;
    if (scheme === 'http' && rules.mode !== 'development' && !LOOPBACK_HOSTS.has(url.hostname))
      return `${quote(text)} must use https (http is allowed only for the loopback hosts 127.0.0.1, [::1] and localhost, or in development mode)`;
    return null;
  }
  if (!scheme.includes('.'))
    return `scheme ${quote(`${scheme}:`)} is not allowed: use https, http on a loopback host, or (public clients only) a reverse-domain private-use scheme such as com.example.app:/callback`;
  if (rules.clientType !== 'public')
    return `private-use scheme ${quote(`${scheme}:`)} is allowed for public clients only; a confidential client needs https (or http on a loopback host)`;
  return unusableUriProblem(text, rules, false);
}

/**
 * `uriEscapeOrPortProblem` of a URI that parses, and for an http(s) one (`dnsHost`) `hostNameProblem`
 * of its host, told with the URI; refused since, but one stored before is kept, as a wildcard host is,
 * so that the application's other settings can be changed.
 */
function unusableUriProblem(text: string, rules: UriRules, dnsHost: boolean): string | null {
  if (rules.stored?.includes(text)) return null;
  const url = new URL(text);
  const problem = uriEscapeOrPortProblem(url, text) ?? (dnsHost ? hostNameProblem(url.hostname) : null);
  return problem === null ? null : `${quote(text)} ${problem}`;
}

// A URL parser takes `*` as a host's letter, and DNS never answers for it: a wildcard meant.
function hostHasWildcard(url: URL): boolean {
  return url.hostname.includes('*');
}

/**
 * What a stored URI (a redirect, post-logout redirect, logo or back-channel logout URI) would be
 * refused for now by a rule that came after it could be stored, or null: a hidden character, a
 * malformed percent-escape, port 0, an http(s) host no DNS name can be. Such a URI is kept by an edit
 * that leaves it; `aa-oidc check` names it (W022). Said after the URI (`contains …`, `has …`).
 */
export function refusedSinceUriProblem(uri: string): string | null {
  const hidden = hiddenUriCharacterProblem(uri);
  if (hidden !== null || !URL.canParse(uri)) return hidden;
  const url = new URL(uri);
  const scheme = schemeOf(uri);
  return (
    uriEscapeOrPortProblem(url, uri) ??
    (scheme === 'https' || scheme === 'http' ? hostNameProblem(url.hostname) : null)
  );
}

/**
 * Whether an http(s) redirect URI has a `*` in its host: refused since, but one stored before is kept
 * (and matches only itself, exactly, never a host under it). `aa-oidc check` names such (W013).
 */
export function hasWildcardHost(uri: string): boolean {
  const scheme = schemeOf(uri);
  return (scheme === 'https' || scheme === 'http') && URL.canParse(uri) && hostHasWildcard(new URL(uri));
}

function checkUriList(field: string, value: unknown, rules: UriRules, problem: Problem): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) {
    problem(field, 'must be a list of URIs');
    return [];
  }
  // Past the limit, the count alone is the problem: each of thousands of URIs checked against the
  // ones before it took seconds.
  if (value.length > URIS_MAX) {
    problem(field, `at most ${URIS_MAX} URIs are allowed (${value.length} given)`);
    return [];
  }
  const uris: string[] = [];
  value.forEach((item: unknown, index) => {
    const reason = redirectUriProblem(item, rules);
    if (reason !== null) problem(`${field}[${index}]`, reason);
    else if (!uris.includes(item as string)) uris.push(item as string);
  });
  return uris;
}

function checkGrantTypes(value: unknown, clientType: ClientType, problem: Problem): GrantType[] {
  if (value === undefined) return [...DEFAULT_GRANT_TYPES];
  const valid = GRANT_TYPES.join(', ');
  if (!Array.isArray(value)) {
    problem('grant_types', `must be a list of ${valid}`);
    return [];
  }
  const chosen = new Set<GrantType>();
  for (const item of value as unknown[]) {
    if (typeof item === 'string' && (GRANT_TYPES as readonly string[]).includes(item))
      chosen.add(item as GrantType);
    else problem('grant_types', `unknown grant type ${quote(item)}; valid: ${valid}`);
  }
  if (value.length === 0) problem('grant_types', `at least one is required (${valid})`);
  if (chosen.has('refresh_token') && !chosen.has('authorization_code'))
    problem(
      'grant_types',
      'refresh_token requires authorization_code (refresh tokens come from code exchanges)',
    );
  if (chosen.has('client_credentials') && clientType === 'public')
    problem(
      'grant_types',
      'client_credentials is for confidential clients only (a public client cannot authenticate)',
    );
  // Stored in a canonical order so that equal sets compare equal.
  return GRANT_TYPES.filter((grant) => chosen.has(grant));
}

/**
 * The whitelisted names, each as the directory spells it, sorted and without duplicates: a name typed
 * in another case (or Unicode form) finds the directory's one, unless the directory has several
 * such (Alliance Auth on PostgreSQL may hold `Directors` and `directors`): then only the exact
 * spelling names one. An unknown or ambiguous name is a problem naming the ones that exist.
 */
function checkWhitelist(
  field: 'states' | 'groups',
  noun: 'state' | 'group',
  value: unknown,
  existing: DirectoryNames,
  problem: Problem,
): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) {
    problem(field, `must be a list of ${noun} names`);
    return [];
  }
  // Past the limit, the count alone is the problem: each of thousands of names compared with every
  // name the directory has (for the hint of an unknown one) took seconds.
  if (value.length > WHITELIST_MAX) {
    problem(field, `at most ${WHITELIST_MAX} ${field} are allowed (${value.length} given)`);
    return [];
  }
  const spellingsOf = directorySpellings(existing);
  const found = new Set<string>();
  const unknown: string[] = [];
  for (const item of value as unknown[]) {
    if (typeof item !== 'string' || item.includes('\0')) {
      problem(field, `${quote(item)} is not a valid ${noun} name (a string without NUL bytes)`);
      continue;
    }
    const spellings = spellingsOf(item);
    if (spellings.length === 1) found.add(spellings[0]!);
    else if (spellings.length > 1)
      problem(
        field,
        `${quote(item)} could be the ${noun} ${spellings.map((spelling) => quote(spelling)).join(' or ')}, which differ only in case or Unicode form: give the exact name`,
      );
    else if (!unknown.includes(item)) unknown.push(item);
  }
  if (unknown.length > 0) {
    const names = [...existing.keys()].sort();
    const known =
      names.length === 0
        ? `no ${field} exist yet (create one with \`aa-oidc ${noun} create\`)`
        : `existing ${field}: ${names.join(', ')}`;
    // Each unknown name is compared with the names a listing shows as it only, found once: with every
    // name the directory has, 200 unknown ones took 0.2 s among 5,000 groups.
    const listedAs = namesBy(names, (name) => visibleText(name).toLowerCase());
    const lookingAlike = namesBy(names, lookalikeKey);
    problem(
      field,
      `unknown ${unknown.length === 1 ? noun : field} ${unknown.map((item) => quote(item)).join(', ')}; ${known}${unknown.map((item) => listedNameHint(noun, item, listedAs.get(item.toLowerCase()) ?? [])).join('')}${unknown.map((item) => lookalikeHint(noun, item, lookingAlike.get(lookalikeKey(item)) ?? [])).join('')}`,
    );
  }
  return [...found].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * The directory's spellings a whitelisted name may mean: the name itself when the directory has it
 * exactly, else those that differ from it only in case or Unicode form (`nameKey`): none, one (the
 * one it means), or several (it is ambiguous).
 */
export function directorySpellings(existing: DirectoryNames): (name: string) => string[] {
  const byKey = new Map<string, string[]>();
  for (const name of existing.keys()) {
    const key = nameKey(name);
    const spellings = byKey.get(key);
    if (spellings) spellings.push(name);
    else byKey.set(key, [name]);
  }
  return (name) => {
    const spellings = byKey.get(nameKey(name)) ?? [];
    return spellings.includes(name) ? [name] : spellings;
  };
}

/**
 * `names` by `key`: how a listing shows each (`visibleText`), lower case as `listedNameHint` compares
 * them, or the Latin letters each looks like (`lookalikeKey`).
 */
function namesBy(names: readonly string[], key: (name: string) => string): Map<string, string[]> {
  const byKey = new Map<string, string[]>();
  for (const name of names) {
    const nameKey = key(name);
    const same = byKey.get(nameKey);
    if (same) same.push(name);
    else byKey.set(nameKey, [name]);
  }
  return byKey;
}

/**
 * The back-channel logout URI: the text checks, those refused since (kept for the stored URI
 * unchanged), then `check` (the SSRF gate, which resolves the host: never for a host no DNS name can be).
 */
async function checkBackchannelUri(
  value: unknown,
  stored: string | null | undefined,
  check: BackchannelTargetCheck,
  problem: Problem,
): Promise<string | null> {
  if (value === undefined || value === null || value === '') return null;
  const kept = value === stored;
  const textProblem =
    uriTextProblem(value, kept) ?? (kept ? null : newBackchannelUriProblem(value as string));
  if (textProblem !== null) {
    problem('backchannel_logout_uri', textProblem);
    return null;
  }
  const verdict = await check(value as string);
  if (!verdict.ok) {
    problem('backchannel_logout_uri', `${quote(value)} ${verdict.reason}`);
    return null;
  }
  return value as string;
}

/**
 * What a new back-channel logout URI is refused for (since) beyond its text and the gate's checks: see
 * `checkBackchannelUri`.
 */
function newBackchannelUriProblem(text: string): string | null {
  const scheme = schemeOf(text);
  // Any other URI is refused by the gate, naming what it needs.
  if ((scheme !== 'https' && scheme !== 'http') || !URL.canParse(text)) return null;
  const unusable = percentEscapeProblem(text) ?? hostNameProblem(new URL(text).hostname);
  return unusable === null ? null : `${quote(text)} ${unusable}`;
}
