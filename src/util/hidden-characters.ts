/**
 * Format characters (Unicode Cf) that change how the text around them is shown without showing
 * themselves: the bidirectional controls (marks, embeddings, overrides and isolates: what lets a name
 * display as something else, "Trojan Source"), and the zero-width ones (zero-width space, word
 * joiner, invisible operators, byte order mark), which make two names that look the same differ.
 * The zero-width joiner and non-joiner (U+200D, U+200C) are not among them: emoji sequences and
 * several scripts need them.
 */
const BIDI_CONTROL = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;
const HIDDEN = /[\u061c\u180e\u200b\u200e\u200f\u202a-\u202e\u2060-\u206f\ufeff]/;
const HIDDEN_ALL = new RegExp(HIDDEN.source, 'g');

/** The character as `U+202E`. */
function codePoint(char: string): string {
  return `U+${char.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`;
}

/**
 * The first hidden format character of `text`, named for a message (`U+202E, a bidirectional
 * control character`), or undefined when there is none.
 */
export function hiddenCharacter(text: string): string | undefined {
  const found = HIDDEN.exec(text)?.[0];
  if (found === undefined) return undefined;
  return `${codePoint(found)}, ${BIDI_CONTROL.test(found) ? 'a bidirectional control character' : 'an invisible character'}`;
}

/** `text` with each hidden format character as its JSON escape (`\u202e`), valid inside a JSON string. */
export function escapeHiddenCharacters(text: string): string {
  return text.replace(HIDDEN_ALL, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
