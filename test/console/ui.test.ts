import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkboxGroup } from '../../src/console/ui.ts';

/** How many times `Array.prototype.includes` is called while `run` runs. */
function includesCallsDuring<T>(run: () => T): { result: T; calls: number } {
  const includes = Object.getOwnPropertyDescriptor(Array.prototype, 'includes')!;
  const original = includes.value as (this: unknown[], item: unknown) => boolean;
  let calls = 0;
  Object.defineProperty(Array.prototype, 'includes', {
    ...includes,
    value(this: unknown[], item: unknown) {
      calls += 1;
      return original.call(this, item);
    },
  });
  try {
    return { result: run(), calls };
  } finally {
    Object.defineProperty(Array.prototype, 'includes', includes);
  }
}

describe('checkboxGroup', () => {
  it('ticks the posted values and adds the missing ones, without comparing each with each choice', () => {
    const choices = Array.from({ length: 2_000 }, (_, index) => `Group ${index}`);
    // What a 64 KiB form may post: thousands of values, most of them no choice.
    const posted = ['Group 7', ...Array.from({ length: 4_000 }, (_, index) => `Gone ${index}`)];
    const { result, calls } = includesCallsDuring(() =>
      checkboxGroup('Groups allowed', 'groups', choices, posted, { missing: 'no longer in the directory' }),
    );
    assert.match(result.html, /<input[^>]*value="Group 7"[^>]*checked/);
    assert.doesNotMatch(result.html, /<input[^>]*value="Group 8"[^>]*checked/);
    assert.match(result.html, /Gone 3999 \(no longer in the directory\)/);
    // Set lookups: before, 6,001 `includes` over the other list, 16 million comparisons.
    assert.ok(calls < 1_000, `${calls} calls of Array#includes`);
  });
});
