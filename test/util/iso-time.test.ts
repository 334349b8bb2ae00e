import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isoNowOncePerMillisecond } from '../../src/util/iso-time.ts';

describe('isoNowOncePerMillisecond', () => {
  it('gives the ISO time of the current millisecond, formatted again when the millisecond changes', () => {
    let clock = Date.UTC(2026, 11, 2, 18, 0, 0, 5);
    const isoNow = isoNowOncePerMillisecond(() => clock);
    assert.equal(isoNow(), '2026-12-02T18:00:00.005Z');
    assert.equal(isoNow(), '2026-12-02T18:00:00.005Z');
    clock += 1;
    assert.equal(isoNow(), '2026-12-02T18:00:00.006Z');
    clock -= 1;
    assert.equal(isoNow(), '2026-12-02T18:00:00.005Z');
  });
});
