import { quotedName } from '../util/hidden-characters.ts';

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
