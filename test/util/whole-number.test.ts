import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseWholeNumber } from '../../src/util/whole-number.ts';

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
