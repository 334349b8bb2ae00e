import { escapeHiddenCharacters } from './hidden-characters.ts';

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

/** How many characters of a given name `shownName` shows, as the directory's messages quote one. */
const SHOWN_NAME_MAX = 80;

/**
 * A name given in a query or a form (up to 64 KiB), as a page's heading shows it: `visibleText`, cut
 * after its first 80 characters with `…`, as the directory's messages show one (`quote`), so that the
 * heading neither fills the page nor says more of the name than its refusal does.
 */
export function shownName(name: string): string {
  let end = 0;
  let count = 0;
  for (const char of name) {
    if (count === SHOWN_NAME_MAX) return `${visibleText(name.slice(0, end))}…`;
    end += char.length;
    count += 1;
  }
  return visibleText(name);
}
