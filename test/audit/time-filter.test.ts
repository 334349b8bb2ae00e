import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseTimeFilter } from '../../src/audit/time-filter.ts';

describe('parseTimeFilter', () => {
  it('takes the days that exist, in every year, and refuses the others', () => {
    assert.equal(parseTimeFilter('2024-02-29'), Date.parse('2024-02-29'));
    // Year 0 is a leap year; Date.UTC would have read it as 1900, which is not.
    assert.equal(parseTimeFilter('0000-02-29'), Date.parse('0000-02-29'));
    assert.equal(parseTimeFilter('0096-02-29T12:00:00Z'), Date.parse('0096-02-29T12:00:00Z'));
    for (const day of ['2024-02-30', '2023-02-29', '0001-02-29', '2024-04-31', '2024-13-01', '2024-00-10'])
      assert.equal(parseTimeFilter(day), undefined, day);
  });
});
