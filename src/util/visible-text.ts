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
 * (`shownName`).
 */
const SHOWN_NAME_MAX = 80;

/** `text` cut after its first `max` characters (code points, never half of one), or undefined when it is no longer. */
function cutText(text: string, max = SHOWN_NAME_MAX): string | undefined {
  let end = 0;
  let count = 0;
  for (const char of text) {
    if (count === max) return text.slice(0, end);
    end += char.length;
    count += 1;
  }
  return undefined;
}

/**
 * A name given in a query or a form (up to 64 KiB), as a page's heading shows it: `visibleText`, cut
 * after its first 80 characters with `…`, as messages quote one (`quotedInput`), so that the heading
 * neither fills the page nor says more of the name than its refusal does.
 */
export function shownName(name: string): string {
  const cut = cutText(name);
  return cut === undefined ? visibleText(name) : `${visibleText(cut)}…`;
}

/**
 * A value someone gave (an argument, an option, a form field), as every message that names it quotes
 * it: in double quotes, so that an empty or blank value (`"   "`) shows as one; control, bidirectional
 * and zero-width characters as JSON escapes (`"\u202eevil"`); and one longer than 80 characters cut
 * after them with `…` and its length (`"xxx…" (3000 characters)`), so that a 3,000-character argument
 * does not fill the screen, yet the message still says it was long. `max` is for a value whose
 * fault may be at its end (a URI's fragment, in the applications' messages: 120).
 */
export function quotedInput(value: string, max = SHOWN_NAME_MAX): string {
  const cut = cutText(value, max);
  if (cut === undefined) return escapeUnshownInJson(JSON.stringify(value));
  return `${escapeUnshownInJson(JSON.stringify(`${cut}…`))} (${[...value].length} characters)`;
}
