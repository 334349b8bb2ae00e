/**
 * The East Asian Wide and Fullwidth characters (UAX #11, Unicode 17) that are not emoji (those are
 * `EMOJI_PRESENTATION`'s) nor combining marks (`ZERO_WIDTH`'s): each pair the first and last code
 * point of a range, in order. A range runs across the unassigned code points between two wide ones
 * (the unassigned rest of the CJK blocks is wide by default). Hangul syllables and the leading jamo,
 * CJK ideographs, kana, the CJK symbols, full-width forms (`Ｆｕｌｌ`), the enclosed ideographs and
 * the ideographs of planes 2 and 3.
 */
// prettier-ignore
const WIDE_RANGES: readonly number[] = [
  0x1100, 0x115f, 0x2329, 0x232a, 0x2630, 0x2637, 0x268a, 0x268f, 0x2e80, 0x3029, 0x3030, 0x303e,
  0x3041, 0x3096, 0x309b, 0x3163, 0x3165, 0x3247, 0x3250, 0xa4c6, 0xa960, 0xa97c, 0xac00, 0xd7a3,
  0xf900, 0xfaff, 0xfe10, 0xfe19, 0xfe30, 0xfe6b, 0xff01, 0xff60, 0xffe0, 0xffe6, 0x16fe0, 0x16fe3,
  0x16ff2, 0x1b2fb, 0x1d300, 0x1d376, 0x1f200, 0x1f200, 0x1f202, 0x1f219, 0x1f21b, 0x1f22e,
  0x1f230, 0x1f231, 0x1f237, 0x1f237, 0x1f23b, 0x1f248, 0x1f260, 0x1f265, 0x20000, 0x3fffd,
];

/**
 * What a terminal draws over the character before it, or not at all: combining and enclosing marks,
 * format characters (the joiners, the variation selectors' kin, a flag's tags), control characters,
 * and the Hangul vowel and trailing consonant jamo, which join the leading consonant into one
 * syllable two columns wide. Not the format characters that are drawn (`DRAWN_FORMAT`).
 */
const ZERO_WIDTH = /^[\p{Mn}\p{Me}\p{Cf}\p{Cc}\u1160-\u11ff\ud7b0-\ud7ff]$/u;

/**
 * The format characters a terminal draws one column wide: the soft hyphen (as glibc's `wcwidth`
 * counts it) and the prepended concatenation marks (the Arabic number sign U+0600, U+06DD, …), signs
 * drawn over the digits that follow them.
 */
const DRAWN_FORMAT = /^[\u00ad\u0600-\u0605\u06dd\u070f\u0890\u0891\u08e2\u{110bd}\u{110cd}]$/u;

/**
 * An emoji drawn as a picture, two columns wide: a character whose default is emoji presentation
 * (`😀`, a regional indicator of a flag) or one asking for it with U+FE0F (`❤️`, the keycap `1️⃣`).
 * A sequence joined by U+200D, a skin tone or a flag's tags are one picture: `displayWidth` reads
 * the picture as a whole (one grapheme) and counts it once.
 */
const EMOJI_PRESENTATION = /^(?:\p{Emoji_Presentation}|\p{Emoji}\ufe0f)/u;

const graphemes = new Intl.Segmenter('en', { granularity: 'grapheme' });

function isWide(codePoint: number): boolean {
  let low = 0;
  let high = WIDE_RANGES.length / 2 - 1;
  while (low <= high) {
    const middle = (low + high) >> 1;
    if (codePoint < WIDE_RANGES[middle * 2]!) high = middle - 1;
    else if (codePoint > WIDE_RANGES[middle * 2 + 1]!) low = middle + 1;
    else return true;
  }
  return false;
}

function characterWidth(char: string): number {
  if (ZERO_WIDTH.test(char) && !DRAWN_FORMAT.test(char)) return 0;
  return isWide(char.codePointAt(0)!) ? 2 : 1;
}

/**
 * How many columns of a terminal `text` takes: two for an East Asian wide or full-width character
 * (`漢`, `Ｆ`, `한`) and for an emoji, none for a combining mark or a joiner, one for any other
 * character, a character outside the BMP (two UTF-16 code units) included. Characters of ambiguous
 * width (`±`, Greek, Cyrillic) count one, as a terminal outside a CJK locale draws them. For the
 * aligned columns of the CLI's tables, where `String.length` would count `漢字` as two columns and
 * `𝐀` as two.
 */
export function displayWidth(text: string): number {
  let width = 0;
  for (const { segment } of graphemes.segment(text)) {
    if (EMOJI_PRESENTATION.test(segment)) {
      width += 2;
      continue;
    }
    for (const char of segment) width += characterWidth(char);
  }
  return width;
}

/** `text` followed by spaces up to `width` columns (`displayWidth`), as `padEnd` does by code units. */
export function padToWidth(text: string, width: number): string {
  return text + ' '.repeat(Math.max(0, width - displayWidth(text)));
}
