import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import pino from 'pino';
import { startMemoryRelease } from '../../src/cli/memory-release.ts';
import { eventually } from '../helpers/eventually.ts';

/** A logger whose lines this test reads. */
function capturingLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean))
        lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: 'info' }, destination), lines };
}

const released = (lines: ReadonlyArray<Record<string, unknown>>) =>
  lines.filter((line) => line.msg === 'memory released after a burst');

/** Objects of about 100 bytes each, kept until the caller lets go of the array. */
function allocate(count: number, into: unknown[][]): void {
  const chunk: unknown[] = [];
  for (let index = 0; index < count; index += 1) chunk.push({ index, text: `burst ${index}` });
  into.push(chunk);
}

describe('memory release after a burst (serve, worker)', () => {
  it('waits while the process is busy, then releases what the burst left once it is quiet', async () => {
    const { log, lines } = capturingLogger();
    const release = startMemoryRelease({
      log,
      intervalMs: 100,
      growthBytes: 16 * 2 ** 20,
      afterStartup: false,
    });
    try {
      const startMark = release.mark();
      // Busy: the event loop is used throughout while the heap grows past the threshold.
      let kept: unknown[][] = [];
      const busyUntil = Date.now() + 1500;
      while (Date.now() < busyUntil) {
        const sliceEnd = Date.now() + 50;
        while (Date.now() < sliceEnd) allocate(20_000, kept);
        await new Promise((resolve) => setImmediate(resolve));
      }
      const peak = process.memoryUsage.rss();
      assert.ok(
        peak - startMark > 16 * 2 ** 20,
        `the burst grew the resident set (${peak - startMark} bytes)`,
      );
      assert.deepEqual(released(lines), [], 'nothing is collected while the event loop is busy');

      // Quiet, the burst's objects garbage: one memory-reducing collection gives the pages back.
      kept = [];
      await eventually(() => released(lines).length > 0, 'the memory was released');
      const [line] = released(lines);
      assert.equal(line!.after, 'burst');
      assert.ok(Number(line!.releasedMb) >= 16, `released ${String(line!.releasedMb)} MB`);
      assert.ok(release.mark() < peak, 'the next release waits for growth over what is left now');

      // Quiet without new growth: nothing more.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      assert.equal(released(lines).length, 1);
    } finally {
      release.stop();
    }
  });

  it('releases what start-up left at the first quiet interval, whatever the growth, then waits for growth', async () => {
    const { log, lines } = capturingLogger();
    // What a start-up leaves: a young generation grown by allocation that survived, then garbage.
    {
      const kept: unknown[][] = [];
      for (let slice = 0; slice < 20; slice += 1) allocate(20_000, kept);
    }
    const release = startMemoryRelease({ log, intervalMs: 100, growthBytes: 1024 * 2 ** 20 });
    try {
      await eventually(() => released(lines).length > 0, 'the start-up memory was released');
      const [line] = released(lines);
      assert.equal(line!.after, 'start-up');
      assert.ok(Number.isInteger(line!.releasedMb), 'the line says how much went');
      assert.ok(
        release.mark() <= (Number(line!.rssMb) + 1) * 2 ** 20,
        'the next release counts growth from what this one left',
      );

      // Quiet, and far below the growth that makes a later release: nothing more.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      assert.equal(released(lines).length, 1, 'one release for start-up, the next waits for growth');
    } finally {
      release.stop();
    }
  });
});
