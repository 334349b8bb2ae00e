/**
 * The bidirectional controls that reorder text: the embeddings, overrides and isolates (U+202A–U+202E,
 * U+2066–U+2069). The web pages show them as `[U+202E]` (pages/layout.ts).
 */
export const BIDI_FORMATTING = /[\u202a-\u202e\u2066-\u2069]/u;

/**
 * Characters that change how the text around them is shown without showing themselves: the
 * bidirectional controls (marks, embeddings, overrides and isolates: what lets a name display as
 * something else, "Trojan Source"), and the invisible ones, which make two names that look the same
 * differ (`admin` and `adm\u200bin`). The zero-width joiner and non-joiner (U+200D, U+200C) are not
 * among them: emoji sequences and several scripts need them; nor are the variation selectors
 * (U+FE00–U+FE0F, and those of the supplement after an ideograph), which only choose how the
 * character before them is drawn.
 * The bidirectional ones are `BIDI_FORMATTING` and the marks (U+061C, U+200E, U+200F).
 */
export const BIDI_CONTROL = new RegExp(`[\\u061c\\u200e\\u200f${BIDI_FORMATTING.source.slice(1, -1)}]`, 'u');

/** The tag characters of a subdivision code in a flag: digits and small letters (U+E0030–U+E007A). */
const FLAG_TAG = '[\\u{e0030}-\\u{e0039}\\u{e0061}-\\u{e007a}]';

/**
 * A tag character (U+E0000–U+E007F) that is not part of a flag's emoji tag sequence (UTS #51: U+1F3F4,
 * the 3 to 7 tags of a subdivision code, U+E007F; U+1F3F4 `gbsct` U+E007F is Scotland's flag): there
 * the tags choose the flag drawn, anywhere else they draw nothing. The look-behind reaches back at most
 * 9 characters and the look-ahead in it 8: linear in the text.
 */
const UNFLAGGED_TAG = `[\\u{e0000}-\\u{e007f}](?<!\\u{1f3f4}(?=${FLAG_TAG}{3,7}\\u{e007f})${FLAG_TAG}{0,7}(?:${FLAG_TAG}|\\u{e007f}))`;

/**
 * A selector of the variation selectors supplement (U+E0100–U+E01EF) that does not follow a unified
 * ideograph: after one it chooses the glyph drawn (an ideographic variation sequence, UTS #37: the
 * registered forms of a family name's kanji, `葛` and U+E0100), anywhere else it draws nothing. The
 * look-behind reaches back one character: linear in the text.
 */
const UNSELECTING_VARIATION_SELECTOR =
  '[\\u{e0100}-\\u{e01ef}](?<!\\p{Unified_Ideograph}[\\u{e0100}-\\u{e01ef}])';

/**
 * The invisible characters that are not bidirectional controls (a character, or an alternative
 * matching one character: compose with `|`, not inside a `[…]`): the soft hyphen (U+00AD, shown only
 * where a line breaks), the combining grapheme joiner (U+034F), the Hangul fillers (U+115F, U+1160,
 * U+3164, U+FFA0, drawn blank), the Khmer inherent vowels (U+17B4, U+17B5), the Mongolian vowel
 * separator (U+180E), the zero-width space (U+200B), the word joiner, invisible operators and
 * deprecated format characters (U+2060–U+2065, U+206A–U+206F), the blank braille pattern (U+2800, a
 * favourite of "invisible" names), the byte order mark (U+FEFF), the unassigned U+FFF0–U+FFF8 and the
 * interlinear annotation controls (U+FFF9–U+FFFB), the shorthand format controls (U+1BCA0–U+1BCA3),
 * the musical null notehead and format controls (U+1D159, U+1D173–U+1D17A), the tag characters but in
 * a flag (`UNFLAGGED_TAG`), the variation selectors supplement but after an ideograph
 * (`UNSELECTING_VARIATION_SELECTOR`), and the unassigned rest of plane 14 (U+E0080–U+E00FF,
 * U+E01F0–U+E0FFF). The unassigned ones are default-ignorable (Unicode's DerivedCoreProperties): a
 * font draws nothing for them today, nor once they are given a meaning.
 * U+034F, U+17B4 and U+17B5 are apart: a combining mark in a `[…]` reads as joined to the one before.
 * The ideographic space (U+3000) is not among them: it shows as a wide space; nor are the spaces of
 * fixed width (U+2000–U+200A, U+202F, U+205F), which show as spaces and which NFKC folds to U+0020
 * where names are compared (`nameKey`), so that `Bob\u2003Smith` is `Bob Smith`'s name. The web pages
 * show them as `[U+200B]` (pages/layout.ts).
 */
export const INVISIBLE_CHARACTER = new RegExp(
  `[\\u00ad\\u115f\\u1160\\u180e\\u200b\\u2060-\\u2065\\u206a-\\u206f\\u2800\\u3164\\ufeff\\uffa0\\ufff0-\\ufffb\\u{1bca0}-\\u{1bca3}\\u{1d159}\\u{1d173}-\\u{1d17a}\\u{e0080}-\\u{e00ff}\\u{e01f0}-\\u{e0fff}]|\\u034f|\\u17b4|\\u17b5|${UNFLAGGED_TAG}|${UNSELECTING_VARIATION_SELECTOR}`,
  'u',
);

const HIDDEN = new RegExp(`${BIDI_CONTROL.source}|${INVISIBLE_CHARACTER.source}`, 'u');
const HIDDEN_ALL = new RegExp(HIDDEN.source, 'gu');

/** The character as `U+202E`, `U+1BCA0`. */
export function codePoint(char: string): string {
  return `U+${char.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
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

/** Control characters (C0, DEL, C1) and the line and paragraph separators. */
// eslint-disable-next-line no-control-regex
export const LINE_BREAKING = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/u;

/**
 * The first character of `text` a name must not be given, named for a message (`U+2028, a line
 * separator`), or undefined when there is none: a control character (C0, DEL, C1: U+009B starts a
 * terminal's escape sequence, U+0085 ends a line for some readers), the line or paragraph separator
 * (a log reader or an editor starts a new line there), or a hidden format character.
 */
export function unfitNameCharacter(text: string): string | undefined {
  const found = LINE_BREAKING.exec(text)?.[0];
  if (found === undefined) return hiddenCharacter(text);
  return `${codePoint(found)}, ${lineBreakingKind(found)}`;
}

function lineBreakingKind(char: string): string {
  return char === '\u2028'
    ? 'a line separator'
    : char === '\u2029'
      ? 'a paragraph separator'
      : 'a control character';
}

const UNFIT_NAME_CHARACTERS = new RegExp(`${LINE_BREAKING.source}|${HIDDEN.source}`, 'gu');
/**
 * The zero-width non-joiner and joiner (U+200C, U+200D): a name may hold them (emoji sequences and
 * several scripts need them), a URI has no use for either that its percent-encoded form would not serve.
 */
export const ZERO_WIDTH_JOINERS = /[\u200c\u200d]/gu;
const UNFIT_URI_CHARACTERS = new RegExp(`${UNFIT_NAME_CHARACTERS.source}|${ZERO_WIDTH_JOINERS.source}`, 'gu');

/** One character a name must not be given, where it is in the name. */
export interface UnfitCharacter {
  char: string;
  /** Its offset in the string (UTF-16 units). */
  index: number;
  /** Its place for a reader: 1 for the first character, counting characters (code points). */
  position: number;
  /** Named for a message: `U+202E, a bidirectional control character`. */
  description: string;
}

/**
 * Every character of `text` that `unfitNameCharacter` refuses, in order, with its position: what a
 * name stored before such names were refused has (`aa-oidc check`, W015).
 */
export function unfitNameCharacters(text: string): UnfitCharacter[] {
  return unfitCharacters(text, UNFIT_NAME_CHARACTERS);
}

/**
 * `unfitNameCharacters` for a URI: the zero-width non-joiner and joiner as well, which a name may
 * hold but a URI, where its percent-encoded form serves, must show (W022, the application validator).
 */
export function unfitUriCharacters(text: string): UnfitCharacter[] {
  return unfitCharacters(text, UNFIT_URI_CHARACTERS);
}

function unfitCharacters(text: string, pattern: RegExp): UnfitCharacter[] {
  return [...text.matchAll(pattern)].map((match) => {
    const char = match[0];
    const kind = LINE_BREAKING.test(char)
      ? lineBreakingKind(char)
      : BIDI_CONTROL.test(char)
        ? 'a bidirectional control character'
        : char === '\u200c'
          ? 'a zero-width non-joiner'
          : char === '\u200d'
            ? 'a zero-width joiner'
            : 'an invisible character';
    return {
      char,
      index: match.index,
      position: [...text.slice(0, match.index)].length + 1,
      description: `${codePoint(char)}, ${kind}`,
    };
  });
}

/**
 * The characters of `unfitNameCharacters` whatever stands around them, as code point ranges: control
 * characters (C0, DEL, C1), the line and paragraph separators, the bidirectional controls and the
 * invisible characters (`BIDI_CONTROL`, `INVISIBLE_CHARACTER`). Left out are the two kinds that are
 * hidden only where they stand (a tag character outside a flag, a selector of the variation selectors
 * supplement after no ideograph): no regular expression both servers run can tell where (W017's
 * queries of Alliance Auth). The test compares it with `unfitNameCharacters` for every code point.
 */
export const UNFIT_IN_ANY_PLACE: ReadonlyArray<readonly [number, number]> = [
  [0x0000, 0x001f],
  [0x007f, 0x009f],
  [0x00ad, 0x00ad],
  [0x034f, 0x034f],
  [0x061c, 0x061c],
  [0x115f, 0x1160],
  [0x17b4, 0x17b5],
  [0x180e, 0x180e],
  [0x200b, 0x200b],
  [0x200e, 0x200f],
  [0x2028, 0x202e],
  [0x2060, 0x2065],
  [0x2066, 0x2069],
  [0x206a, 0x206f],
  [0x2800, 0x2800],
  [0x3164, 0x3164],
  [0xfeff, 0xfeff],
  [0xffa0, 0xffa0],
  [0xfff0, 0xfffb],
  [0x1bca0, 0x1bca3],
  [0x1d159, 0x1d159],
  [0x1d173, 0x1d17a],
  [0xe0080, 0xe00ff],
  [0xe01f0, 0xe0fff],
];

/**
 * The code point ranges every character `unfitNameCharacters` may find is in, whatever stands around
 * it: `UNFIT_IN_ANY_PLACE`, and all of the tag characters and of the variation selectors supplement
 * (hidden but in a flag or after an ideograph). A query looks for them to find the few stored texts
 * worth judging (`aa-oidc check`, W015 of users); the test compares them with `unfitNameCharacters`
 * for every code point.
 */
export const MAY_BE_UNFIT_NAME_CHARACTER: ReadonlyArray<readonly [number, number]> = [
  ...UNFIT_IN_ANY_PLACE.filter(([first]) => first < 0xe0000),
  [0xe0000, 0xe0fff],
];

/** `\u009b`, `\ud82f\udca0`: the JSON escape of a character (of each half of a surrogate pair). */
function unicodeEscape(char: string): string {
  let escaped = '';
  for (let index = 0; index < char.length; index += 1)
    escaped += `\\u${char.charCodeAt(index).toString(16).padStart(4, '0')}`;
  return escaped;
}

/**
 * What JSON.stringify leaves as it is although a terminal or a log reader acts on it instead of
 * showing it: DEL, the C1 controls (U+0080–U+009F: U+009B is the CSI that starts a terminal's escape
 * sequence, U+0085 ends a line for some readers), the line and paragraph separators, and the hidden
 * format characters.
 */
const UNSHOWN_IN_JSON_ALL = new RegExp(`[\\u007f-\\u009f\\u2028\\u2029]|${HIDDEN.source}`, 'gu');
/**
 * Every character `UNSHOWN_IN_JSON_ALL` can match, whatever stands around it (the tags and the
 * supplement's variation selectors, which it matches only outside a flag or after no ideograph, are
 * all here): one class, which a line is scanned for much faster than for the alternation with its
 * look-behinds. Keep it in step with `BIDI_CONTROL` and `INVISIBLE_CHARACTER`: the test compares
 * `escapeUnshownInJson` with an escape by them for every code point.
 */
const MAY_BE_UNSHOWN_IN_JSON =
  // eslint-disable-next-line no-misleading-character-class -- escaped, U+034F and U+17B4/5 are members alone
  /[\u007f-\u009f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b\u200e\u200f\u2028-\u202e\u2060-\u206f\u2800\u3164\ufeff\uffa0\ufff0-\ufffb\u{1bca0}-\u{1bca3}\u{1d159}\u{1d173}-\u{1d17a}\u{e0000}-\u{e0fff}]/u;

/**
 * A JSON text with each character of `UNSHOWN_IN_JSON_ALL` as its \u escape: the same JSON value (outside
 * its strings JSON holds none of them; inside one, the escape stands for the character), which no
 * longer rewrites the terminal a log is followed in, nor starts a line of its own there.
 */
export function escapeUnshownInJson(json: string): string {
  // Most lines are printable ASCII, which settles them: their UTF-8 has as many bytes as they have
  // UTF-16 units (any other unit takes more), a count Node makes with SIMD about 3 times faster than a
  // regular expression's scan, and DEL is the one ASCII character escaped.
  if (Buffer.byteLength(json, 'utf8') === json.length && !json.includes('\u007f')) return json;
  return MAY_BE_UNSHOWN_IN_JSON.test(json) ? json.replace(UNSHOWN_IN_JSON_ALL, unicodeEscape) : json;
}

/** `text` with each hidden format character as its JSON escape (`\u202e`), valid inside a JSON string. */
export function escapeHiddenCharacters(text: string): string {
  return text.replace(HIDDEN_ALL, unicodeEscape);
}

/** A name in double quotes, each character a terminal or a page would act on or hide as its \u escape. */
export function quotedName(name: string): string {
  return escapeUnshownInJson(JSON.stringify(name));
}
