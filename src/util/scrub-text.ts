import { isIPv6 } from 'node:net';

/**
 * Redaction rules shared by the logger, the request serializer, the audit log (`logging/redact.ts`)
 * and the configuration's messages (`config/load.ts`, which hides at least what a log line hides).
 * Two mechanisms, so that a secret needs to slip past both to reach a line:
 *
 * - by key: the value of any key that names a credential is replaced, at any depth (`isSensitiveKey`);
 * - by shape: inside every string, `Bearer …`/`Basic …` credentials, sensitive URL parameters
 *   (`?code=…`, `#access_token=…`, `;code="…"`), URL passwords (`//user:…@`, through spaces in a
 *   quoted URL) and compact JWTs are replaced (`scrubString`). A credential written as JSON inside a
 *   string (`"password":"…"` in a message) is none of these shapes and is kept: an object logged as
 *   a field is redacted by key.
 *
 * Numbers, booleans and null are never secrets here and are kept, so that `client_secret_expires_at`
 * or a count stays readable.
 */

export const REDACTED = '[redacted]';

// `pwd` as the drivers and the configuration's `redactUrl` read it (`?pwd=…`, ODBC's `PWD=…`). A
// value is redacted, never a name: `$PWD/aa-oidc.yaml` or the `amr` value `pwd` stay as they are.
const CONTAINS = [
  'password',
  'passwd',
  'pwd',
  'secret',
  'cookie',
  'authorization',
  'privatekey',
  'apikey',
  'credential',
];
const ENDS_WITH = ['token', 'tokens', 'tokenhint', 'assertion', 'verifier', 'jwt'];
// A session id is the value of the session cookie, so it is as sensitive as the cookie.
const EXACT = new Set(['code', 'authcode', 'usercode', 'devicecode', 'otp', 'sessionid', 'sessionkey']);

function normalizeKey(key: string): string {
  return key.toLowerCase().replace(/[^a-z0-9]/g, '');
}

/**
 * The names of our cookies, whose values are sessions or what proves them: oidc-provider's
 * (`_session`, `_interaction`, `_interaction_resume`, with their `.legacy` and `.sig` variants) and
 * ours (`_aa_oidc_console`, `_aa_oidc_console_sign_out`, `_aa_oidc_csrf`, …: all `_aa_oidc_`), each
 * also with the `__Host-` prefix of a Secure one (util/host-cookie.ts). As written: normalized,
 * `_session` would be any `session`.
 */
const COOKIE_NAME =
  /^(?:__Host-)?(?:_session|_interaction|_interaction_resume|_aa_oidc_[a-z0-9_]+)(?:\.legacy)?(?:\.sig)?$/i;

/** True for a key whose value is a credential: `password`, `db_pwd`, `clientSecret`, `access_token`, `Cookie`, … */
export function isSensitiveKey(key: string): boolean {
  if (COOKIE_NAME.test(key)) return true;
  const normalized = normalizeKey(key);
  if (normalized === '') return false;
  if (EXACT.has(normalized)) return true;
  if (CONTAINS.some((part) => normalized.includes(part))) return true;
  return ENDS_WITH.some((suffix) => normalized.endsWith(suffix));
}

/**
 * An error code such as `ECONNREFUSED`, `ERR_INVALID_URL`, `UND_ERR_CONNECT_TIMEOUT` or an SQLSTATE:
 * upper-case letters, digits and underscores. Authorization codes are long mixed-case base64url and
 * never match, so `err.code` stays readable while `{ code }` from a request is redacted.
 */
const ERROR_CODE = /^[A-Z0-9_]{1,40}$/;

/** What a sensitive key's value becomes: scalars that cannot carry a secret are kept. */
export function censorValue(value: unknown, key = ''): unknown {
  if (value === null || value === undefined) return value;
  if (typeof value === 'number' || typeof value === 'boolean') return value;
  if (typeof value === 'string' && normalizeKey(key) === 'code' && ERROR_CODE.test(value)) return value;
  return REDACTED;
}

/**
 * A parameter's name and its `=`, in a query, a fragment, a form body or free text: the name starts
 * the text or follows `?`, `&`, `#`, `;` (a matrix parameter, a cookie), `,` (a list: `x=1,code=…`),
 * white space or a quote (`'code=…'` in a message). Whether the value is a credential is the name's
 * to say, read as the server reads it (percent-decoded: `access%5Ftoken=` is `access_token=` to the
 * provider) and judged as a key is (`isSensitiveKey`: `access_token`, `code`, `new_password`,
 * `client_secret`, `_session`, …).
 */
const PARAM_NAME = /(?<=^|[?&#;,\s"'])[^=&#;,?\s"']{1,64}=/g;

/** A parameter's name as a server decodes it, or as written when it is not valid percent-encoding. */
function decodedName(name: string): string {
  if (!name.includes('%') && !name.includes('+')) return name;
  try {
    return decodeURIComponent(name.replace(/\+/g, ' '));
  } catch {
    return name;
  }
}

/** A value in double or single quotes, backslash escapes included, up to its closing quote. */
const QUOTED_VALUE = /"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/y;
/**
 * Where a server stops reading a parameter's value in a query: the next parameter, the fragment,
 * ASCII white space. Not the rest of Unicode's (`\s`): a URL parser percent-encodes a no-break space
 * (U+00A0) or an ideographic one (U+3000) as part of the value, and a password holding one showed
 * what followed it.
 */
const UNQUOTED_VALUE_END = /[&#\t\n\v\f\r ]/g;

/**
 * Where a credential's value ends. A quoted one (`code="…"`, in a message or a header's parameter)
 * at its closing quote, or with the text when the quote is never closed. Any other where a server's
 * reading of a query ends it, at `&`, `#` or ASCII white space: `;`, `?`, quotes and commas are part
 * of the value (`?code=ab;cd` is the code `ab;cd`), and a value cut at one of them showed the rest of it.
 */
function endOfValue(text: string, start: number): number {
  const first = text[start];
  if (first === '"' || first === "'") {
    QUOTED_VALUE.lastIndex = start;
    return QUOTED_VALUE.test(text) ? QUOTED_VALUE.lastIndex : text.length;
  }
  UNQUOTED_VALUE_END.lastIndex = start;
  return UNQUOTED_VALUE_END.exec(text)?.index ?? text.length;
}

/**
 * The text with the value of every credential parameter replaced. The search goes on right after
 * each harmless parameter's `=`, not after its value: whatever a value runs into (`?next=/x?code=…`,
 * `state=s;code=…`) is searched for parameters too.
 */
function redactParameters(text: string, isSecret: (name: string) => boolean = isSensitiveKey): string {
  let redacted = '';
  let copied = 0;
  PARAM_NAME.lastIndex = 0;
  for (let found = PARAM_NAME.exec(text); found !== null; found = PARAM_NAME.exec(text)) {
    if (!isSecret(decodedName(found[0].slice(0, -1)))) continue;
    const start = PARAM_NAME.lastIndex;
    const end = endOfValue(text, start);
    redacted += `${text.slice(copied, start)}${REDACTED}`;
    copied = end;
    PARAM_NAME.lastIndex = end;
  }
  return copied === 0 ? text : redacted + text.slice(copied);
}

/**
 * The text with the values of the parameters `names` replaced, read as `scrubString` reads a
 * credential parameter's (the name decoded, the value up to `&`, `#` or white space): for a
 * parameter that is secret on one route only, and harmless elsewhere (`state`).
 */
export function redactNamedParameters(text: string, names: ReadonlySet<string>): string {
  return text.includes('=') ? redactParameters(text, (name) => names.has(name)) : text;
}

/**
 * Where a URL's user information may hold a password: `//`, a user's name, its `:`. A URL in free
 * text ends at ASCII white space only: a URL parser percent-encodes any other (a no-break space,
 * U+3000) as part of the URL, and `//aa:pa\u00a0ss@db` cut there showed the password. A `[` may start
 * a user's name (`postgres://[aa:PASSWORD@db`, read so by the drivers) or be anywhere in it; only a
 * real IPv6 literal (`ipv6Host`) after the `//` is a host.
 */
const USERINFO_START = /\/\/[^\t\n\v\f\r /?#@:]*:/g;
const USERINFO_CANDIDATE = /\/\/[^\t\n\v\f\r /?#@:]*:/;
/**
 * An IPv6 literal as a URL's host: `[`, an address (perhaps its zone, `%25eth0`), `]`, perhaps a port,
 * then the path, query or fragment, or the end of the URL. The characters are bounded: an address is
 * at most 45 of them, so each `//[` reads a few characters, and `net.isIPv6` has the last word.
 */
const IPV6_HOST = /\[([0-9A-Fa-f:.]{2,45})(?:%(?:25)?[\w.~-]{1,32})?\](?::\d{0,5})?(?=[/?#\t\n\v\f\r ]|$)/y;
const WHITE_SPACE = /[\t\n\v\f\r ]/g;

/** Whether an IPv6 literal host (`[::1]`, `[2001:db8::1]:8080`, then `/`, `?`, `#` or the end) is at `index`. */
function ipv6Host(text: string, index: number): boolean {
  IPV6_HOST.lastIndex = index;
  const address = IPV6_HOST.exec(text)?.[1];
  return address !== undefined && isIPv6(address);
}

/**
 * What ends the search for the character that closes a URL opened by a quote or an angle bracket
 * (RFC 3986, appendix C): that character, or another `<`, which opens the next URL searched from.
 */
const CLOSING = new Map([
  ['"', /"/g],
  ["'", /'/g],
  ['`', /`/g],
  ['<', /[<>]/g],
]);
const SCHEME_CHARACTER = /[A-Za-z0-9+.-]/;
const LINE_BREAK = /[\n\v\f\r]/;

/**
 * Where the password of a URL written in quotes or angle brackets ends (`"postgres://aa:pa ss@db/aa"`,
 * a message quoting a connection string; `'//aa:pa ss@db'` without a scheme too): at the last `@`
 * before the closing quote, on the same line; -1 for a URL not so written, or none there. A password
 * may hold a space as it may an `@`, and the quote says where the URL ends where white space cannot.
 * A URL without them ends at white space still: in free text, `postgres://aa:pa ss@db` cannot be
 * told from `http://api:v2 then ask bob@example.org`, and an `@` a few words on is too often a mail
 * address. Linear: the scheme walked back over holds no `/`, so no two URLs share it,
 * and a search for a closing quote stops at the next quote of its kind (or `<`), which opens the
 * next URL a search is made for.
 */
function quotedPasswordEnd(text: string, slashes: number, start: number): number {
  let opening = slashes - 1;
  if (text[opening] === ':') {
    const colon = opening;
    while (opening > 0 && SCHEME_CHARACTER.test(text[opening - 1]!)) opening -= 1;
    if (opening === colon || !/[A-Za-z]/.test(text[opening]!)) return -1;
    opening -= 1;
  }
  const closing = CLOSING.get(text[opening] ?? '');
  if (closing === undefined) return -1;
  closing.lastIndex = start;
  const close = closing.exec(text)?.index ?? -1;
  if (close === -1 || text[close] === '<') return -1;
  const quoted = text.slice(start, close);
  const at = quoted.lastIndexOf('@');
  return at === -1 || LINE_BREAK.test(quoted.slice(0, at)) ? -1 : start + at;
}

/**
 * The text with the password of every URL's user information replaced (`postgres://aa:PASSWORD@db/aa`,
 * a request's absolute target `http://user:PASSWORD@host/…`). The password runs from the `:` after
 * `//` and a user's name to the last `@` of the URL (up to ASCII white space), as the
 * configuration's `redactUrl` reads it: generated passwords hold an
 * unencoded `@`, `/`, `?`, `#` or `[` often enough, and `p@ss:w/rd` cut at its first `@` showed
 * `ss:w/rd`. No password is taken for a port: `https://u:1234/5678@host` is written like
 * `https://host:8443/x@y`, and the drivers read `postgres://aa:1234?x@db/aa` as the host `aa` and
 * the port 1234; both lose what lies between the `:` and the `@`. Where the text is ambiguous this
 * redacts too much rather than leak: an `@` in the path or the query (`http://u:pw@host/a?mail=b@c`,
 * `https://host:8443/x?mail=a@b`) takes the host with it. A URL in quotes or angle brackets
 * (`"postgres://aa:pa ss@db/aa"`, `<…>`) runs to the closing one, white space included
 * (`quotedPasswordEnd`). Linear: the end of each run of text and its last `@` are found once.
 */
function redactUserinfoPasswords(text: string): string {
  let redacted = '';
  let copied = 0;
  let runEnd = -1;
  let lastAt = -1;
  USERINFO_START.lastIndex = 0;
  for (let found = USERINFO_START.exec(text); found !== null; found = USERINFO_START.exec(text)) {
    const start = USERINFO_START.lastIndex;
    if (text[found.index + 2] === '[' && ipv6Host(text, found.index + 2)) continue;
    if (start > runEnd) {
      WHITE_SPACE.lastIndex = start;
      runEnd = WHITE_SPACE.exec(text)?.index ?? text.length;
      const at = text.slice(start, runEnd).lastIndexOf('@');
      lastAt = at === -1 ? -1 : start + at;
    }
    const end = Math.max(lastAt, quotedPasswordEnd(text, found.index, start));
    if (end < start) continue;
    redacted += `${text.slice(copied, start)}${REDACTED}`;
    copied = end;
    USERINFO_START.lastIndex = end;
  }
  return copied === 0 ? text : redacted + text.slice(copied);
}

const AUTH_SCHEME_PATTERN = /\b(Bearer|Basic|DPoP)(\s+)[A-Za-z0-9._~+/=-]+/gi;
/**
 * A compact JWT (`eyJ…` header, payload, signature) inside a run of base64url characters, the run's
 * part before it kept (`$1`). In linear time: a match is tried only where a run starts, and each
 * segment is taken whole (a lookahead's capture, consumed by its back-reference: nothing to
 * backtrack into). `\beyJ…` tried at every position scanned the rest of a run again from each
 * `eyJ` in it: a 16 KB user agent of `eyJ-eyJ-…` held the event loop for a sixth of a second in
 * the access line of one request. A JWT starts at a word boundary or right after a percent-escape:
 * a URL carried, encoded, in another's parameter (`next=%2Fo%2Fauthorize%3Fid_token_hint%3DeyJ…`;
 * encoding keeps the dots) puts the escape's hex digits right before the `eyJ`.
 */
const JWT_PATTERN =
  /(?<![A-Za-z0-9_-])(?=([A-Za-z0-9_-]*?)(?:\b|(?<=%[0-9A-Fa-f]{2}))eyJ[A-Za-z0-9_-]{4})\1(?=([A-Za-z0-9_-]+))\2\.(?=([A-Za-z0-9_-]{4,}))\3\.[A-Za-z0-9_-]*/g;

/**
 * What every one of the patterns needs somewhere in the text: a parameter's `=`, a JWT's `eyJ`, an
 * authorization scheme and the space after it; or an `@` and a URL's `//user:`. Most URLs, user agents
 * and messages have none of them (a bare space, in "request completed" or a browser's user agent, is
 * not enough).
 */
const MAY_HOLD_CREDENTIAL = /=|eyJ|(?:Bearer|Basic|DPoP)\s/i;

/** Replaces credentials recognisable by their shape inside free text (messages, URLs, stacks). */
export function scrubString(text: string): string {
  if (
    text.length < 4 ||
    !(MAY_HOLD_CREDENTIAL.test(text) || (text.includes('@') && USERINFO_CANDIDATE.test(text)))
  )
    return text;
  // The JWT pattern tries every run of base64url characters: only for a text that holds an `eyJ`.
  const withoutJwts = text.includes('eyJ')
    ? text.replace(JWT_PATTERN, (_match, before: string) => `${before}[redacted-jwt]`)
    : text;
  return redactParameters(
    redactUserinfoPasswords(
      withoutJwts.replace(
        AUTH_SCHEME_PATTERN,
        (_match, scheme: string, space: string) => `${scheme}${space}${REDACTED}`,
      ),
    ),
  );
}
