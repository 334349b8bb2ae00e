import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseDecimalNumber, parseWholeNumber } from '../../src/util/whole-number.ts';

describe('parseWholeNumber', () => {
  it('reads a decimal whole number, spaces around it ignored', () => {
    for (const [text, value] of [
      ['42', 42],
      [' 42', 42],
      ['42 \t', 42],
      ['-5', -5],
      ['007', 7],
      ['0', 0],
    ] as const) {
      assert.equal(parseWholeNumber(text), value, JSON.stringify(text));
    }
  });

  it('reads nothing else as a number', () => {
    for (const text of ['', '  ', '4.5', '4.0', '1e3', '0x10', '+5', '4 2', '- 5', 'five', 'Infinity']) {
      assert.equal(parseWholeNumber(text), undefined, JSON.stringify(text));
    }
  });
});

describe('parseDecimalNumber', () => {
  it('reads a number in decimal digits, with or without a fraction, spaces around it ignored', () => {
    for (const [text, value] of [
      ['5', 5],
      [' 5.0 ', 5],
      ['-2.5', -2.5],
      ['007', 7],
      ['0', 0],
    ] as const) {
      assert.equal(parseDecimalNumber(text), value, JSON.stringify(text));
    }
  });

  it('reads no other way of writing a number (Number() reads 0x10 as 16, 1e1 as 10)', () => {
    for (const text of [
      '',
      '  ',
      '0x10',
      '1e1',
      '0b1',
      '0o10',
      '+5',
      '.5',
      '5.',
      '4 2',
      'Infinity',
      'NaN',
      'five',
    ]) {
      assert.equal(parseDecimalNumber(text), undefined, JSON.stringify(text));
    }
  });
});
