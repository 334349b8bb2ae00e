import { unfitNameCharacters, unfitUriCharacters } from './hidden-characters.ts';

/** Says what `$'…'` is, for a hint with such a word in it. */
export const ANSI_C_QUOTING_NOTE = "$'…' is the quoting of bash and zsh";

/**
 * Why a hint gives no command for a value holding a NUL character (`shellWord` is undefined): a
 * command line is C strings, each ended by a NUL, so bash reads `$'a\x00b'` as `a`, another name.
 */
export const NUL_NOTE = 'no command line can carry the NUL character in it';

/**
 * `value` as one shell word an operator can paste into a command, which the shell reads back as
 * `value` and expands nothing in (`$(…)`, a backtick, `$NAME`, `!`, a glob): stored names and URIs are
 * whatever an older aa-oidc, or anyone with the database, stored. Single quotes (`'…'`, with each `'`
 * as `'\''`), which every POSIX shell reads byte for byte in any locale; a value with a character
 * new names refuse (`unfitNameCharacters`: a control character, a bidirectional control, an
 * invisible character) is in ANSI-C quoting (`$'…'`, bash, zsh, ksh) instead, with each such
 * character as the \x escapes of its UTF-8 bytes, so the hint shows none of them as they are (bash
 * reads `\u202e` as the character only in a UTF-8 locale, `\xe2\x80\xae` in any). Undefined for a
 * value with a NUL character, which no word can carry (`NUL_NOTE`): a hint then gives no command that
 * would act on the name the NUL cuts it to, and says what to do instead.
 */
export function shellWord(value: string): string | undefined {
  return quotedWord(value, unfitNameCharacters);
}

/**
 * `shellWord` for a stored URI: the zero-width non-joiner and joiner (U+200C, U+200D) are written as
 * escapes too, which a name may need but a URI refused for one (W022) must show.
 */
export function uriShellWord(value: string): string | undefined {
  return quotedWord(value, unfitUriCharacters);
}

/** `value` as one shell word, the characters `escaped` finds in it as the \x escapes of their bytes. */
function quotedWord(
  value: string,
  escaped: (text: string) => ReadonlyArray<{ char: string; index: number }>,
): string | undefined {
  if (value.includes('\0')) return undefined;
  const unfit = escaped(value);
  if (unfit.length === 0) return `'${value.replaceAll("'", "'\\''")}'`;
  const plain = (text: string) => text.replace(/[\\']/g, (char) => `\\${char}`);
  let quoted = '';
  let from = 0;
  for (const found of unfit) {
    quoted += plain(value.slice(from, found.index));
    for (const byte of new TextEncoder().encode(found.char))
      quoted += `\\x${byte.toString(16).padStart(2, '0')}`;
    from = found.index + found.char.length;
  }
  return `$'${quoted}${plain(value.slice(from))}'`;
}

/** Whether a hint has a `$'…'` word of `shellWord`, which `ANSI_C_QUOTING_NOTE` then explains. */
export function hasAnsiCWord(...words: ReadonlyArray<string | undefined>): boolean {
  return words.some((word) => word?.startsWith("$'") === true);
}
