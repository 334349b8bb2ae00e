import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  BIDI_CONTROL,
  escapeHiddenCharacters,
  escapeUnshownInJson,
  INVISIBLE_CHARACTER,
  MAY_BE_UNFIT_NAME_CHARACTER,
  unfitNameCharacter,
  unfitNameCharacters,
} from '../../src/util/hidden-characters.ts';
import { nameKey } from '../../src/util/name-key.ts';

/** `text` as tag characters (U+E0020–U+E007E): `tags('gbsct')`. */
function tags(text: string): string {
  return [...text].map((char) => String.fromCodePoint(0xe0000 + char.codePointAt(0)!)).join('');
}

const CANCEL_TAG = '\u{e007f}';
const BLACK_FLAG = '\u{1f3f4}';
const SCOTLAND = `${BLACK_FLAG}${tags('gbsct')}${CANCEL_TAG}`;

/**
 * What `escapeUnshownInJson` is to return, by the plain algorithm it had before its quick checks: DEL,
 * the C1 controls, the line and paragraph separators and the hidden characters, each UTF-16 unit as its
 * \u escape.
 */
const UNSHOWN_IN_JSON = new RegExp(
  `[\\u007f-\\u009f\\u2028\\u2029]|${BIDI_CONTROL.source}|${INVISIBLE_CHARACTER.source}`,
  'gu',
);
function escapeUnshownByRegExp(text: string): string {
  return text.replace(UNSHOWN_IN_JSON, (char) =>
    char
      .split('')
      .map((unit) => `\\u${unit.charCodeAt(0).toString(16).padStart(4, '0')}`)
      .join(''),
  );
}

describe('hidden characters', () => {
  it('names the blank-looking characters that make two names look the same, as invisible ones', () => {
    for (const [char, code] of [
      ['\u034f', 'U+034F'],
      ['\u17b4', 'U+17B4'],
      ['\u2800', 'U+2800'],
      ['\ufff0', 'U+FFF0'],
      ['\ufff8', 'U+FFF8'],
      ['\ufff9', 'U+FFF9'],
      ['\ufffb', 'U+FFFB'],
      ['\u{1bca0}', 'U+1BCA0'],
      ['\u{1bca3}', 'U+1BCA3'],
      ['\u{1d159}', 'U+1D159'],
      ['\u{1d173}', 'U+1D173'],
      ['\u{1d17a}', 'U+1D17A'],
      ['\u{e0001}', 'U+E0001'],
      ['\u{e0041}', 'U+E0041'],
      [CANCEL_TAG, 'U+E007F'],
      ['\u{e0080}', 'U+E0080'],
      ['\u{e00ff}', 'U+E00FF'],
      ['\u{e0100}', 'U+E0100'],
      ['\u{e01ef}', 'U+E01EF'],
      ['\u{e01f0}', 'U+E01F0'],
      ['\u{e0fff}', 'U+E0FFF'],
    ] as const) {
      assert.equal(unfitNameCharacter(`adm${char}in`), `${code}, an invisible character`, code);
      const escaped = char
        .split('')
        .map((unit) => `\\u${unit.charCodeAt(0).toString(16).padStart(4, '0')}`)
        .join('');
      assert.equal(escapeHiddenCharacters(`adm${char}in`), `adm${escaped}in`, code);
      const json = escapeUnshownInJson(JSON.stringify({ name: `adm${char}in` }));
      assert.equal(json, `{"name":"adm${escaped}in"}`, code);
      assert.equal((JSON.parse(json) as { name: string }).name, `adm${char}in`, code);
    }
  });

  it('keeps the tags of a flag, and names the tags outside one', () => {
    const wales = `${BLACK_FLAG}${tags('gbwls')}${CANCEL_TAG}`;
    // Subdivision codes run from 3 to 7 digits and small letters (CLDR): `usca` is California.
    for (const flagged of [
      SCOTLAND,
      `Highlands ${SCOTLAND} Wing`,
      `${SCOTLAND}${wales}`,
      `${BLACK_FLAG}${tags('usca')}${CANCEL_TAG}`,
      `${BLACK_FLAG}${tags('fr75c')}${CANCEL_TAG}`,
    ]) {
      assert.equal(unfitNameCharacter(flagged), undefined, flagged);
      assert.equal(escapeHiddenCharacters(flagged), flagged);
      assert.equal(escapeUnshownInJson(JSON.stringify(flagged)), JSON.stringify(flagged));
    }
    for (const [unflagged, code] of [
      [`Scot${tags('gbsct')}${CANCEL_TAG}`, 'U+E0067'],
      [`${BLACK_FLAG}${tags('gbsct')}`, 'U+E0067'],
      [`${BLACK_FLAG}${tags('GBSCT')}${CANCEL_TAG}`, 'U+E0047'],
      [`${BLACK_FLAG}${tags('gb')}${CANCEL_TAG}`, 'U+E0067'],
      [`${BLACK_FLAG}${tags('gbabcdef')}${CANCEL_TAG}`, 'U+E0067'],
      [`${BLACK_FLAG}${CANCEL_TAG}`, 'U+E007F'],
      [`${SCOTLAND}${CANCEL_TAG}`, 'U+E007F'],
      [`${SCOTLAND}${tags('x')}`, 'U+E0078'],
      [`${BLACK_FLAG}\u{e0001}${tags('gbsct')}${CANCEL_TAG}`, 'U+E0001'],
    ] as const) {
      assert.equal(unfitNameCharacter(unflagged), `${code}, an invisible character`, unflagged);
    }
    assert.equal(
      escapeHiddenCharacters(`${SCOTLAND}${tags('x')}`),
      `${SCOTLAND}\\udb40\\udc78`,
      'the flag stays, the tag after it is escaped',
    );
  });

  it('keeps a variation selector of the supplement after an ideograph, and names one anywhere else', () => {
    // 葛 with U+E0100: a registered form of the kanji (ideographic variation sequence), drawn as one.
    for (const selected of ['葛\u{e0100}城', '\u{20b9f}\u{e0101}', '辻\u{e01ef}']) {
      assert.equal(unfitNameCharacter(selected), undefined, selected);
      assert.equal(escapeHiddenCharacters(selected), selected);
      assert.equal(escapeUnshownInJson(JSON.stringify(selected)), JSON.stringify(selected));
    }
    for (const [unselected, code] of [
      ['admin\u{e0100}', 'U+E0100'],
      ['\u{e0100}葛', 'U+E0100'],
      ['葛\u{e0100}\u{e0101}', 'U+E0101'],
      ['葛 \u{e0102}', 'U+E0102'],
    ] as const) {
      assert.equal(unfitNameCharacter(unselected), `${code}, an invisible character`, unselected);
    }
    assert.equal(escapeHiddenCharacters('葛\u{e0100}a\u{e0100}'), '葛\u{e0100}a\\udb40\\udd00');
  });

  it('leaves the spaces of fixed width, which show as spaces and compare as U+0020', () => {
    for (const space of ['\u2000', '\u2003', '\u200a', '\u202f', '\u205f']) {
      assert.equal(unfitNameCharacter(`Bob${space}Smith`), undefined);
      assert.equal(
        escapeUnshownInJson(JSON.stringify(`Bob${space}Smith`)),
        JSON.stringify(`Bob${space}Smith`),
      );
      assert.equal(nameKey(`Bob${space}Smith`), nameKey('Bob Smith'));
    }
  });

  it('escapes in a log line what the plain escape by the character classes does, for every code point', () => {
    const line = (text: string) => `{"level":30,"msg":"request completed","name":"a${text}b"}`;
    const chunk: string[] = [];
    for (let point = 0; point <= 0x10ffff; point += 1) {
      // A surrogate alone (U+D800–U+DFFF) is a lone UTF-16 unit, which a string may hold.
      const char = String.fromCodePoint(point);
      const alone = line(char);
      assert.equal(escapeUnshownInJson(alone), escapeUnshownByRegExp(alone), `U+${point.toString(16)}`);
      chunk.push(char);
      if (chunk.length === 512 || point === 0x10ffff) {
        const many = line(chunk.join(''));
        assert.equal(escapeUnshownInJson(many), escapeUnshownByRegExp(many), `up to U+${point.toString(16)}`);
        chunk.length = 0;
      }
    }
  });

  it('escapes lone surrogates and pairs as the plain escape does', () => {
    const tagA = '\u{e0041}';
    // Apart: Node's type stripper refuses a lone surrogate's escape followed by a \u{…} one.
    const selector = '\u{e0100}';
    for (const text of [
      '\ud800',
      '\udfff',
      '\udb40',
      '\udc41',
      '\udc41\udb40',
      `\udb40${tagA}`,
      `${tagA}\udc41`,
      `\udb40x${tagA}`,
      `\ud834\udd59\ud834`,
      `\ud83c\udff4${tags('gbsct')}\udb40`,
      `\udb43\udfff\udb44\udc00`,
      `\u{e0fff}\u{e1000}`,
      `\ud82f\udca3\ud82f\udca4`,
      '\u007f',
      'é\u007f',
      `葛\ud840${selector}`,
    ]) {
      for (const json of [text, `{"name":"${text}"}`, JSON.stringify({ name: text })]) {
        assert.equal(escapeUnshownInJson(json), escapeUnshownByRegExp(json), JSON.stringify(json));
      }
    }
    assert.equal(escapeUnshownInJson('{"name":"\udb40\udc41"}'), '{"name":"\\udb40\\udc41"}');
    assert.equal(
      escapeUnshownInJson('{"name":"\udb40"}'),
      '{"name":"\udb40"}',
      'a lone surrogate is no character',
    );
  });

  it('leaves the ideographic space, which shows as a wide space', () => {
    assert.equal(unfitNameCharacter('東京\u3000支部'), undefined);
    assert.equal(escapeHiddenCharacters('東京\u3000支部'), '東京\u3000支部');
  });

  it('holds in MAY_BE_UNFIT_NAME_CHARACTER every code point a name may be refused for, and no other', () => {
    const wrong: string[] = [];
    for (let code = 0; code <= 0x10ffff; code += 1) {
      if (code >= 0xd800 && code <= 0xdfff) continue;
      const char = String.fromCodePoint(code);
      // Tag characters and the supplement's selectors are refused but where they stand in a flag or
      // after an ideograph: alone, they are.
      const refused = unfitNameCharacters(`a${char}`).length > 0;
      const listed = MAY_BE_UNFIT_NAME_CHARACTER.some(([first, last]) => code >= first && code <= last);
      if (refused !== listed) wrong.push(code.toString(16));
    }
    assert.deepEqual(wrong, []);
  });
});
