import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type ChangeEpochs,
  EpochCache,
  epochCached,
  sharedEpochReads,
} from '../../src/oidc/change-epoch-cache.ts';

/** Epochs as a test sets them: what a request sees, and what a read right before saving finds. */
function epochs(state: { request: number; save: number }): ChangeEpochs {
  return {
    note: () => undefined,
    ofRequest: async () => state.request,
    known: () => undefined,
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

/**
 * `find` answers `rp` from memory while the request's epoch stands (one load for two asks), and loads
 * again once the application changed and the epoch moved to 2.
 */
async function answersFromMemoryUntilTheEpochMoves(
  find: (key: string) => Promise<string>,
  source: ReturnType<typeof loader>,
  state: { request: number },
): Promise<void> {
  assert.equal(await find('rp'), 'rp@0');
  assert.equal(await find('rp'), 'rp@0');
  assert.deepEqual(source.calls, ['rp']);

  source.bump();
  state.request = 2;
  assert.equal(await find('rp'), 'rp@1');
  assert.deepEqual(source.calls, ['rp', 'rp']);
}

describe('applications kept while the change epoch stands', () => {
  it('answers from memory while the epoch stands, and loads again once it moved', async () => {
    const state = { request: 1, save: 1 };
    const source = loader();
    const cache = new EpochCache<string, string>();
    const request = {};
    const find = epochCached(source.load, epochs(state), cache, 'request', () => request);
    await answersFromMemoryUntilTheEpochMoves(find, source, state);
  });

  it('answers a request that already knows its epoch at that epoch, and loads again once it moved', async () => {
    const state = { request: 1, save: 1 };
    const source = loader();
    const cache = new EpochCache<string, string>();
    const request = {};
    const asked: string[] = [];
    const knowing: ChangeEpochs = {
      note: () => undefined,
      ofRequest: async () => {
        asked.push('ofRequest');
        return state.request;
      },
      known: () => state.request,
      atSave: async () => {
        asked.push('atSave');
        return state.save;
      },
    };
    const find = epochCached(source.load, knowing, cache, 'request', () => request);
    const atSave = epochCached(source.load, knowing, cache, 'save', () => request);
    await answersFromMemoryUntilTheEpochMoves(find, source, state);
    // The save stage still reads the epoch afresh, whatever the request knows.
    source.bump();
    state.save = 3;
    assert.equal(await atSave('rp'), 'rp@2');
    assert.deepEqual(asked, ['atSave']);
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

describe('epoch reads shared by the requests of one turn', () => {
  /** A read of the epoch as stored now, counted; `run()` runs the scheduled reads. */
  function setup() {
    const stored = { epoch: 1, reads: 0, fail: false };
    const scheduled: Array<() => void> = [];
    const read = sharedEpochReads(
      async () => {
        stored.reads += 1;
        if (stored.fail) throw new Error('database gone');
        return stored.epoch;
      },
      (run) => void scheduled.push(run),
    );
    const run = () => {
      for (const next of scheduled.splice(0)) next();
    };
    return { stored, read, run };
  }

  it('reads once for the requests that ask in one turn, after they all asked', async () => {
    const { stored, read, run } = setup();
    const first = read();
    // Committed by another process after the first request asked, before the read ran.
    stored.epoch = 2;
    const second = read();
    run();
    assert.deepEqual(await Promise.all([first, second]), [2, 2]);
    assert.equal(stored.reads, 1);
  });

  it('reads again for a request that asks once the shared read has started', async () => {
    const { stored, read, run } = setup();
    const first = read();
    run();
    stored.epoch = 3;
    const later = read();
    run();
    assert.equal(await first, 1);
    assert.equal(await later, 3, 'a change committed before the later request asked is seen');
    assert.equal(stored.reads, 2);
  });

  it('shares one read, started once the running read answers, among the requests that ask meanwhile', async () => {
    const stored = { epoch: 1 };
    const answers: Array<() => void> = [];
    const scheduled: Array<() => void> = [];
    // A read that finds the epoch stored when it is sent and answers when the test says (a round trip).
    const read = sharedEpochReads(
      () =>
        new Promise<number>((resolve) => {
          const found = stored.epoch;
          answers.push(() => resolve(found));
        }),
      (run) => void scheduled.push(run),
    );
    const first = read();
    for (const next of scheduled.splice(0)) next();
    // Committed while the first read is on its way: the requests asking from now on must see it.
    stored.epoch = 2;
    const second = read();
    const third = read();
    assert.equal(scheduled.length, 0, 'nothing is scheduled while a read runs');
    assert.equal(answers.length, 1);
    answers[0]!();
    assert.equal(await first, 1);
    assert.equal(answers.length, 2, 'the next read is sent once the running one has answered');
    answers[1]!();
    assert.deepEqual(await Promise.all([second, third]), [2, 2]);
    assert.equal(answers.length, 2, 'one read for both');
  });

  it('fails the requests of a failed read, and reads afresh for the next', async () => {
    const { stored, read, run } = setup();
    stored.fail = true;
    const failed = Promise.allSettled([read(), read()]);
    run();
    assert.deepEqual(
      (await failed).map((outcome) => outcome.status),
      ['rejected', 'rejected'],
    );
    stored.fail = false;
    const next = read();
    run();
    assert.equal(await next, 1);
    assert.equal(stored.reads, 2);
  });
});
