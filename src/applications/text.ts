import { domainToASCII, domainToUnicode } from 'node:url';
import {
  LINE_BREAKING,
  quotedName,
  unfitUriCharacters,
  ZERO_WIDTH_JOINERS,
} from '../util/hidden-characters.ts';

/**
 * True when `text` holds a control character: C0 (NUL included), DEL or C1 (U+0080–U+009F, where
 * U+009B starts a terminal escape sequence as ESC [ does).
 */
export function hasControlCharacter(text: string): boolean {
  for (let index = 0; index < text.length; index += 1) {
    const code = text.charCodeAt(index);
    if (code < 0x20 || (code >= 0x7f && code <= 0x9f)) return true;
  }
  return false;
}

/** True when a URI text is malformed before parsing: whitespace, control characters, backslashes. */
export function hasUnsafeUriCharacter(text: string): boolean {
  return /[\s\\]/.test(text) || hasControlCharacter(text);
}

/**
 * What makes a URI that parses unusable, or a reason none: a `%` not followed by two hexadecimal
 * digits (`%zz`), which a URL parser keeps as it is but no server reads as one character, and port 0,
 * which no server listens on.
 */
export function uriEscapeOrPortProblem(url: URL, text: string): string | null {
  const escape = percentEscapeProblem(text);
  if (escape !== null) return escape;
  if (url.port === '0')
    return 'has port 0, which nothing listens on: give the port the application listens on, or none';
  return null;
}

/** A `%` of `text` not followed by two hexadecimal digits (`%zz`), named, or null when there is none. */
export function percentEscapeProblem(text: string): string | null {
  const escape = /%(?![0-9A-Fa-f]{2})(.{0,2})/su.exec(text);
  return escape === null
    ? null
    : `has an invalid percent-escape ${quotedName(`%${escape[1]}`)}: a % must be followed by two hexadecimal digits (write a % itself as %25)`;
}

/**
 * A quoted URI (`quote` of errors.ts: a JSON string) with the zero-width (non-)joiners as their JSON
 * escapes too, which `quote` leaves as they are (a name may need them; a message refusing a URI for
 * one must show it).
 */
export function withJoinersShown(quoted: string): string {
  return quoted.replace(ZERO_WIDTH_JOINERS, (char) => `\\u${char.charCodeAt(0).toString(16)}`);
}

/**
 * The first character of a URI that does not show yet changes what an operator reads, named with its
 * code point, or null when there is none: a bidirectional control (U+202E, which shows the rest of the
 * URI reversed), an invisible character (U+200B, U+00AD, U+FEFF) or a zero-width (non-)joiner, as
 * `unfitUriCharacters` finds them (control characters and white space are refused before).
 * Meant in a path or a query, such a character is written percent-encoded, which shows.
 */
export function hiddenUriCharacterProblem(text: string): string | null {
  // Control characters and line breaks (`LINE_BREAKING`) are refused before, by `hasUnsafeUriCharacter`.
  const found = unfitUriCharacters(text).find(({ char }) => !LINE_BREAKING.test(char));
  if (found === undefined) return null;
  return `contains ${found.description}, which does not show: the URI would read as something other than it is (remove it; where one belongs in the path or the query, write it percent-encoded, ${encodeURIComponent(found.char)})`;
}

/** RFC 1035's limits, counted on the ASCII (punycode) form a URL parser gives the host in. */
export const HOST_NAME_MAX = 253;
export const HOST_LABEL_MAX = 63;

/**
 * What makes the host of an http(s) URI, as `URL.hostname` gives it (lower case, international names
 * in punycode), one no DNS name can be, or null: an empty label (`a..b`, `.`; one trailing dot, a fully
 * qualified name, is none), a name longer than 253 characters or a label longer than 63 (WHATWG
 * parsing checks neither), or a label starting `xn--` that is no punycode of a name (`xn--`, `xn--zz`:
 * WHATWG keeps them as they are). An IP address is none of these.
 */
export function hostNameProblem(hostname: string): string | null {
  if (hostname.startsWith('[')) return null;
  const name = hostname.endsWith('.') ? hostname.slice(0, -1) : hostname;
  const labels = name.split('.');
  if (labels.includes(''))
    return `has the host ${quotedName(hostname)}, with an empty label: a host name is labels joined by single dots`;
  if (name.length > HOST_NAME_MAX)
    return `has a host name of ${name.length} characters, where DNS allows at most ${HOST_NAME_MAX} (counted in punycode)`;
  const longest = labels.reduce((longer, label) => (label.length > longer.length ? label : longer));
  if (longest.length > HOST_LABEL_MAX)
    return `has a label of ${longest.length} characters in its host, where DNS allows at most ${HOST_LABEL_MAX} (counted in punycode)`;
  const undecodable = labels.find((label) => label.startsWith('xn--') && !isPunycodeLabel(label));
  if (undecodable !== undefined)
    return `has the host label ${quotedName(undecodable)}, which is no valid punycode: a label starting with xn-- must be the ASCII form of an international name (xn--bcher-kva is bücher); write the name as it reads, or the punycode an IDNA converter gives for it`;
  return null;
}

/**
 * Whether a label starting `xn--` is the punycode of an international label: it decodes (Node's
 * `domainToUnicode` gives an undecodable label back as it is, or '' for the whole name), and its
 * decoded form encodes to it again.
 */
function isPunycodeLabel(label: string): boolean {
  const unicode = domainToUnicode(label);
  return unicode !== '' && unicode !== label && domainToASCII(unicode) === label;
}
