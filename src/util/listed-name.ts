import { ANSI_C_QUOTING_NOTE, hasAnsiCWord, shellWord } from './shell-word.ts';
import { visibleText } from './visible-text.ts';

/** The escapes `visibleText` writes: `\x1b`, `\u202e` (a character outside the BMP as two), `\n`, `\r`, `\t`. */
const LISTED_ESCAPE = /\\(?:x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|([nrt]))/g;
const NAMED: Readonly<Record<string, string>> = { n: '\n', r: '\r', t: '\t' };

/**
 * The name a listing would show as `listed` (`Esc\x1b` for `Esc` ESC: `visibleText`), to look up when
 * `listed` names nothing; undefined when `listed` holds no such escape.
 */
function storedFormOf(listed: string): string | undefined {
  const stored = listed.replace(LISTED_ESCAPE, (_escape, hex?: string, unit?: string, named?: string) =>
    named !== undefined ? NAMED[named]! : String.fromCharCode(Number.parseInt(hex ?? unit!, 16)),
  );
  return stored === listed ? undefined : stored;
}

/**
 * The username of the user `given` stands for when it names none but is how a listing shows one
 * (`Esc\x1b` typed for `Esc` ESC, a username from Alliance Auth): looked up with `find` by its
 * stored form, for `listedNameHint`. Empty when `given` holds no escape, or its stored form names no
 * user either.
 */
export async function usernamesListedAs(
  given: string,
  find: (username: string) => Promise<{ username: string } | null | undefined>,
): Promise<string[]> {
  const stored = storedFormOf(given);
  const listed = stored === undefined ? undefined : await find(stored);
  return listed ? [listed.username] : [];
}

/**
 * What a "no such user, state or group" message adds when `given` names none but is how a listing
 * shows one of `names` (`visibleText`, case aside as the lookups do): the escape was typed, not the
 * character. It names that one in bash's `$'…'` quoting (`shellWord`), the form to give it in:
 * `; a listing shows the state $'Esc\x1b' as Esc\x1b: give it as $'Esc\x1b' (…)`. Empty otherwise,
 * and for a name no command line can carry (a NUL).
 */
export function listedNameHint(
  entity: 'user' | 'state' | 'group',
  given: string,
  names: Iterable<string>,
): string {
  const wanted = given.toLowerCase();
  const words: string[] = [];
  for (const name of names) {
    if (name === given || visibleText(name).toLowerCase() !== wanted) continue;
    const word = shellWord(name);
    if (word !== undefined && !words.includes(word)) words.push(word);
  }
  if (words.length === 0) return '';
  const shown = words.join(' or ');
  const note = hasAnsiCWord(...words) ? ` (${ANSI_C_QUOTING_NOTE})` : '';
  return `; a listing shows the ${entity} ${shown} as ${given}: give it as ${shown}${note}`;
}
