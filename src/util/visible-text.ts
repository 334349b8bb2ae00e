import { escapeHiddenCharacters, escapeUnshownInJson } from './hidden-characters.ts';

// C0 controls, DEL and C1 controls: ESC (\x1b) and CSI (\u009b) start terminal escape sequences;
// the line and paragraph separators (U+2028, U+2029), which a log reader or an editor takes for a
// line break, as it does NEL (U+0085).
// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;
const NAMED_ESCAPES: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * Text with every control character shown as an escape (`\n`, `\x1b`, `\u009b`, `\u2028`), so that a
 * name or note from a database cannot move the cursor, rewrite the screen or retitle the operator's
 * terminal, nor start a line of its own; bidirectional controls and zero-width characters too
 * (`\u202e`), so that it cannot show as something else (an Alliance Auth group named with U+202E).
 */
export function visibleText(text: string): string {
  return escapeHiddenCharacters(
    text.replace(CONTROL_CHARACTERS, (char) => {
      const code = char.charCodeAt(0);
      return (
        NAMED_ESCAPES[char] ??
        (code < 0x7f ? `\\x${code.toString(16).padStart(2, '0')}` : unicodeEscape(char))
      );
    }),
  );
}

/** `\u009b`: the JSON escape of a character, a valid one inside a JSON string. */
function unicodeEscape(char: string): string {
  return `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`;
}

/**
 * How many characters of a given value a message quotes (`quotedInput`) and a page's heading shows
 * (`shownName`): a longer one is cut in the middle, its first and last 40 kept, since a value's fault
 * is as often at its end (a redirect URI's fragment, a name's trailing control character) as at its
 * start.
 */
const SHOWN_NAME_MAX = 80;

/**
 * `text` cut in the middle to its first and last `SHOWN_NAME_MAX / 2` characters (code points, never
 * half of one) with `…` between, or undefined when it is no longer than `SHOWN_NAME_MAX`.
 */
function cutText(text: string): string | undefined {
  const chars = [...text];
  if (chars.length <= SHOWN_NAME_MAX) return undefined;
  const kept = SHOWN_NAME_MAX / 2;
  return `${chars.slice(0, kept).join('')}…${chars.slice(-kept).join('')}`;
}

/**
 * A name given in a query or a form (up to 64 KiB), as a page's heading shows it: `visibleText`, cut
 * in the middle to its first and last 40 characters around `…`, as messages quote one (`quotedInput`),
 * so that the heading neither fills the page nor says more of the name than its refusal does.
 */
export function shownName(name: string): string {
  return visibleText(cutText(name) ?? name);
}

/**
 * A value someone gave (an argument, an option, a form field), as every message that names it quotes
 * it: in double quotes, so that an empty or blank value (`"   "`) shows as one; control, bidirectional
 * and zero-width characters as JSON escapes (`"\u202eevil"`); and one longer than 80 characters cut
 * in the middle, its first and last 40 kept around `…`, with its length (`"xxx…xxx" (3000
 * characters)`), so that a 3,000-character argument does not fill the screen, yet the message still
 * says it was long, and shows its end, where a URI's fault often is (`#fragment`).
 */
export function quotedInput(value: string): string {
  const cut = cutText(value);
  if (cut === undefined) return escapeUnshownInJson(JSON.stringify(value));
  return `${escapeUnshownInJson(JSON.stringify(cut))} (${[...value].length} characters)`;
}
