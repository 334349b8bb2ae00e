import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type ChangeEpochs, EpochCache, epochCached } from '../../src/oidc/change-epoch-cache.ts';

/** Epochs as a test sets them: what a request sees, and what a read right before saving finds. */
function epochs(state: { request: number; save: number }): ChangeEpochs {
  return {
    note: () => undefined,
    ofRequest: async () => state.request,
    atSave: async () => state.save,
  };
}

function loader() {
  const calls: string[] = [];
  let version = 0;
  return {
    calls,
    bump: () => (version += 1),
    load: async (key: string) => {
      calls.push(key);
      return `${key}@${version}`;
    },
  };
}

describe('applications kept while the change epoch stands', () => {
  it('answers from memory while the epoch stands, and loads again once it moved', async () => {
    const state = { request: 1, save: 1 };
    const source = loader();
    const cache = new EpochCache<string, string>();
    const request = {};
    const find = epochCached(source.load, epochs(state), cache, 'request', () => request);
    assert.equal(await find('rp'), 'rp@0');
    assert.equal(await find('rp'), 'rp@0');
    assert.deepEqual(source.calls, ['rp']);

    source.bump();
    state.request = 2;
    assert.equal(await find('rp'), 'rp@1');
    assert.deepEqual(source.calls, ['rp', 'rp']);
  });

  it('checks the epoch afresh right before saving: a change committed during the request is seen there', async () => {
    const state = { request: 5, save: 5 };
    const source = loader();
    const cache = new EpochCache<string, string>();
    const request = {};
    const find = epochCached(source.load, epochs(state), cache, 'request', () => request);
    const atSave = epochCached(source.load, epochs(state), cache, 'save', () => request);
    assert.equal(await find('rp'), 'rp@0');
    // Deactivated elsewhere while this request runs.
    source.bump();
    state.save = 6;
    assert.equal(await find('rp'), 'rp@0', 'the request goes on with what it saw');
    assert.equal(await atSave('rp'), 'rp@1', 'but the save stage sees the change');
  });

  it('keeps nothing outside a provider request, and no failed load', async () => {
    const state = { request: 1, save: 1 };
    const source = loader();
    const cache = new EpochCache<string, string>();
    const outside = epochCached(source.load, epochs(state), cache, 'request', () => undefined);
    await outside('rp');
    await outside('rp');
    assert.deepEqual(source.calls, ['rp', 'rp']);

    let fail = true;
    const flaky = epochCached(
      async (key: string) => {
        if (fail) throw new Error('database unavailable');
        return key;
      },
      epochs(state),
      new EpochCache<string, string>(),
      'request',
      () => ({}),
    );
    await assert.rejects(flaky('rp'), /database unavailable/);
    fail = false;
    assert.equal(await flaky('rp'), 'rp');
  });

  it('never goes back to an older epoch: a request that saw an older one uses what is newer', async () => {
    const cache = new EpochCache<string, string>();
    assert.equal(await cache.get(3, 'rp', async () => 'new'), 'new');
    assert.equal(await cache.get(2, 'rp', async () => 'old'), 'new');
    assert.equal(await cache.get(4, 'rp', async () => 'newer'), 'newer');
  });
});
