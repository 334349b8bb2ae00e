import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { displayWidth, padToWidth } from '../../src/util/display-width.ts';

describe('displayWidth', () => {
  it('counts two columns for East Asian wide and full-width characters', () => {
    for (const [text, width] of [
      ['漢字グループ', 12],
      ['Ｆｕｌｌ', 8],
      ['한국어', 6],
      ['ひらがな', 8],
      ['カタカナー', 10],
      ['　', 2], // the ideographic space
      ['「引用」', 8],
      ['ａ１！', 6],
      ['\u{20b9f}', 2], // 𠮟, an ideograph of plane 2
      ['\u{2a6d6}', 2],
      ['ｶﾀｶﾅ', 4], // half-width katakana stay narrow
      ['abc', 3],
    ] as const) {
      assert.equal(displayWidth(text), width, text);
    }
  });

  it('counts a character outside the BMP once, not once per UTF-16 unit', () => {
    assert.equal(displayWidth('\u{1d400}\u{1d401}'), 2, 'mathematical bold A and B');
    assert.equal(displayWidth('\u{10348}'), 1, 'Gothic hwair');
    assert.equal(displayWidth('\u{1f600}'), 2, 'an emoji: two columns, counted once');
  });

  it('counts no columns for combining marks and joiners', () => {
    assert.equal(displayWidth('e\u0301'), 1, 'é as e and a combining acute accent');
    assert.equal(displayWidth('Zoe\u0308'), 3);
    assert.equal(displayWidth('a\u200db'), 2, 'a zero-width joiner between letters');
    assert.equal(displayWidth('葛\u{e0100}'), 2, 'an ideographic variation sequence');
    assert.equal(displayWidth('\u1100\u1161\u11a8'), 2, 'a Hangul syllable of conjoining jamo');
    assert.equal(displayWidth('\u0600'), 1, 'a prepended concatenation mark is drawn');
  });

  it('counts an emoji picture as two columns, however many characters make it', () => {
    for (const text of [
      '\u{1f469}\u200d\u{1f4bb}', // woman technologist (ZWJ sequence)
      '\u{1f44d}\u{1f3fd}', // thumbs up, medium skin tone
      '\u{1f1e9}\u{1f1ea}', // the flag of Germany (regional indicators)
      '\u{1f3f4}\u{e0067}\u{e0062}\u{e0073}\u{e0063}\u{e0074}\u{e007f}', // Scotland's flag (tags)
      '\u2764\ufe0f', // red heart, emoji presentation asked for
      '1\ufe0f\u20e3', // keycap 1
      '\u231a', // watch: emoji presentation by default
    ]) {
      assert.equal(displayWidth(text), 2, JSON.stringify(text));
    }
    assert.equal(displayWidth('\u2764'), 1, 'the heart without U+FE0F is text');
  });

  it('pads to a width in columns', () => {
    assert.equal(padToWidth('漢字', 6), '漢字  ');
    assert.equal(padToWidth('ab', 6), 'ab    ');
    assert.equal(padToWidth('漢字グループ', 6), '漢字グループ');
  });
});
