import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type PurgeRound, purgeRound, startPurgeRounds } from '../../src/db/bounded-purge.ts';

/** A table of `rows` rows past their retention, deleted `limit` at a time; the limits asked, in order. */
function table(rows: number) {
  const asked: number[] = [];
  return {
    asked,
    left: () => rows,
    deleteBatch: async (limit: number) => {
      asked.push(limit);
      const deleted = Math.min(limit, rows);
      rows -= deleted;
      return deleted;
    },
  };
}

describe('one round of a retention purge', () => {
  it('deletes at most its statements of its rows each, and says whether some may remain', async () => {
    const backlog = table(2500);
    const bounds = { rows: 100, statements: 10 };
    assert.deepEqual(await purgeRound(backlog.deleteBatch, bounds), { deleted: 1000, more: true });
    assert.equal(backlog.left(), 1500);
    assert.deepEqual(backlog.asked, Array(10).fill(100));
    assert.deepEqual(await purgeRound(backlog.deleteBatch, bounds), { deleted: 1000, more: true });
    assert.deepEqual(await purgeRound(backlog.deleteBatch, bounds), { deleted: 500, more: false });
    assert.equal(backlog.asked.length, 10 + 10 + 6, 'the round ends at the first statement that is not full');
    assert.deepEqual(await purgeRound(backlog.deleteBatch, bounds), { deleted: 0, more: false });
  });

  it('stops after the statement under way once the server is closing', async () => {
    const backlog = table(2500);
    const closing = new AbortController();
    const deleteThenClose = async (limit: number) => {
      closing.abort();
      return backlog.deleteBatch(limit);
    };
    assert.deepEqual(await purgeRound(deleteThenClose, { rows: 100, statements: 10 }, closing.signal), {
      deleted: 100,
      more: true,
    });
  });

  it('pauses pauseMs between its statements, and makes none after a pause once the server is closing', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const backlog = table(2500);
    const closing = new AbortController();
    const round = purgeRound(backlog.deleteBatch, { rows: 100, statements: 10, pauseMs: 10 }, closing.signal);
    const settle = async () => {
      for (let turn = 0; turn < 20; turn += 1) await Promise.resolve();
    };
    await settle();
    assert.equal(backlog.asked.length, 1, 'the first statement at once');
    t.mock.timers.tick(9);
    await settle();
    assert.equal(backlog.asked.length, 1, 'the next one not before the pause is over');
    t.mock.timers.tick(1);
    await settle();
    assert.equal(backlog.asked.length, 2);
    closing.abort();
    t.mock.timers.tick(10);
    assert.deepEqual(await round, { deleted: 200, more: true });
    assert.equal(backlog.asked.length, 2, 'none after the pause in which the server began closing');
  });
});

describe('the rounds of a retention purge', () => {
  it('come at the interval, sooner while a round leaves rows behind, and stop when told', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const backlog = table(2500);
    const rounds: PurgeRound[] = [];
    const failures: Error[] = [];
    const purge = startPurgeRounds(
      async () => {
        const round = await purgeRound(backlog.deleteBatch, { rows: 100, statements: 10 });
        rounds.push(round);
        return round;
      },
      { intervalMs: 600_000, catchUpMs: 1000, failed: (error) => failures.push(error) },
    );
    /** Moves the clock on by `ms`, then lets the round it started (if any) run to its end. */
    const pass = async (ms: number) => {
      t.mock.timers.tick(ms);
      for (let turn = 0; turn < 50; turn += 1) await Promise.resolve();
    };

    await pass(599_999);
    assert.equal(rounds.length, 0, 'nothing before the interval');
    await pass(1);
    assert.deepEqual(rounds, [{ deleted: 1000, more: true }]);
    await pass(999);
    assert.equal(rounds.length, 1);
    await pass(1);
    assert.equal(rounds.length, 2, 'a round that left rows is followed after catchUpMs, not the interval');
    await pass(1000);
    assert.deepEqual(rounds.at(-1), { deleted: 500, more: false });
    assert.equal(backlog.left(), 0);
    await pass(1000);
    await pass(598_999);
    assert.equal(rounds.length, 3, 'once caught up, the rounds go back to the interval');
    await pass(1);
    assert.equal(rounds.length, 4);
    await purge.stop();
    await pass(600_000);
    assert.equal(rounds.length, 4, 'no round after stop()');
    assert.deepEqual(failures, []);
  });

  it('gives a round that fails to `failed`, and tries again at the interval', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    let calls = 0;
    const failures: string[] = [];
    const purge = startPurgeRounds(
      async () => {
        calls += 1;
        throw new Error('database is locked');
      },
      {
        intervalMs: 600_000,
        catchUpMs: 1000,
        failed: (error, { stopped }) => failures.push(stopped ? 'after the stop' : error.message),
      },
    );
    const pass = async (ms: number) => {
      t.mock.timers.tick(ms);
      for (let turn = 0; turn < 50; turn += 1) await Promise.resolve();
    };
    await pass(600_000);
    assert.deepEqual(failures, ['database is locked']);
    await pass(599_999);
    assert.equal(calls, 1, 'not again at catchUpMs');
    await pass(1);
    assert.equal(calls, 2);
    await purge.stop();
  });
  it('tells the round under way to stop, and waits for it at most stopWithinMs', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    let signal: AbortSignal | undefined;
    let release: (() => void) | undefined;
    const purge = startPurgeRounds(
      (given) => {
        signal = given;
        return new Promise<PurgeRound>((resolve) => {
          release = () => resolve({ deleted: 0, more: false });
        });
      },
      { intervalMs: 1000, catchUpMs: 1000, failed: () => undefined, stopWithinMs: 5000 },
    );
    t.mock.timers.tick(1000);
    assert.equal(signal?.aborted, false, 'a round under way');
    let stopped = false;
    const stopping = purge.stop().then(() => {
      stopped = true;
    });
    for (let turn = 0; turn < 20; turn += 1) await Promise.resolve();
    assert.equal(signal.aborted, true, 'the round is told to make no further statement');
    assert.equal(stopped, false, 'and waited for, within stopWithinMs');
    t.mock.timers.tick(5000);
    await stopping;
    assert.equal(stopped, true, 'no longer than stopWithinMs');
    release?.();
  });

  it('says of a round that fails after stop() that it was stopped', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    let fail: (() => void) | undefined;
    const failures: Array<{ message: string; stopped: boolean }> = [];
    const purge = startPurgeRounds(
      () =>
        new Promise<PurgeRound>((_, reject) => {
          fail = () => reject(new Error('Connection terminated unexpectedly'));
        }),
      {
        intervalMs: 1000,
        catchUpMs: 1000,
        failed: (error, { stopped }) => failures.push({ message: error.message, stopped }),
        stopWithinMs: 5000,
      },
    );
    t.mock.timers.tick(1000);
    const stopping = purge.stop();
    t.mock.timers.tick(5000);
    await stopping;
    fail?.();
    for (let turn = 0; turn < 20; turn += 1) await Promise.resolve();
    assert.deepEqual(failures, [{ message: 'Connection terminated unexpectedly', stopped: true }]);
  });
});
