import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { stripPythonWhitespace } from '../../src/util/python-strip.ts';

/** What Python 3 (`[c for c in map(chr, range(0x110000)) if c.isspace()]`) holds to be whitespace. */
const PYTHON_WHITESPACE = [
  ...[0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680],
  ...[0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a],
  ...[0x2028, 0x2029, 0x202f, 0x205f, 0x3000],
];

describe("stripping a typed name as Django's form fields do (Python's str.strip())", () => {
  it('removes exactly the characters Python holds to be whitespace, at either end only', () => {
    const stripped: number[] = [];
    for (let code = 0; code <= 0x10ffff; code += 1) {
      if (code >= 0xd800 && code <= 0xdfff) continue;
      const c = String.fromCodePoint(code);
      const result = stripPythonWhitespace(`${c}${c}a${c}b${c}${c}`);
      if (result === `a${c}b`) stripped.push(code);
      else assert.equal(result, `${c}${c}a${c}b${c}${c}`, `U+${code.toString(16)}`);
    }
    assert.deepEqual(stripped, PYTHON_WHITESPACE);
  });

  it('leaves U+FEFF, which JavaScript trims and Python does not, and strips U+0085, which JavaScript leaves', () => {
    assert.equal(stripPythonWhitespace('\ufeffpilot3\ufeff'), '\ufeffpilot3\ufeff');
    assert.equal(stripPythonWhitespace('\u0085\u3000pilot3\u001c\u0085'), 'pilot3');
    assert.equal(stripPythonWhitespace(' \u2028\t'), '');
  });
});
