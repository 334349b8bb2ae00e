import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { logFailure, purgeRoundFailed } from '../../src/logging/after-stop.ts';
import { createLogger } from '../../src/logging/logger.ts';

/** A logger from `debug` up, and the lines it wrote without their time and service. */
function capture() {
  const lines: string[] = [];
  const logger = createLogger(
    { logging: { level: 'info', maskedSecrets: false } },
    { level: 'debug', destination: { write: (chunk: string) => void lines.push(chunk) } },
  );
  const logged = () =>
    lines.map((line) => {
      const { time: _time, service: _service, ...rest } = JSON.parse(line) as Record<string, unknown>;
      return rest;
    });
  return { logger, logged };
}

/**
 * A failure after the process's stop began is the stop's doing (the database closed under the work
 * it gave up on): at debug, saying `stopped: true`; before, at the level its site chose, as it was.
 */
describe('a failure logged before and after the stop', () => {
  it('keeps its level, fields and message while the process runs, and says nothing of a stop', () => {
    const { logger, logged } = capture();
    logFailure(
      logger,
      { level: 'warn', stopped: false },
      { err: 'gone', more: 1 },
      'it failed',
      'it stopped',
    );
    logFailure(logger, { level: 'error', stopped: false }, { err: 'gone' }, 'it failed');
    assert.deepEqual(logged(), [
      { level: 40, err: 'gone', more: 1, msg: 'it failed' },
      { level: 50, err: 'gone', msg: 'it failed' },
    ]);
  });

  it('is at debug with stopped: true once the stop began, under its message for the stop when it has one', () => {
    const { logger, logged } = capture();
    logFailure(
      logger,
      { level: 'error', stopped: true },
      { err: 'gone', more: 1 },
      'it failed',
      'it stopped',
    );
    logFailure(logger, { level: 'warn', stopped: true }, { err: 'gone' }, 'it failed');
    assert.deepEqual(logged(), [
      { level: 20, err: 'gone', more: 1, stopped: true, msg: 'it stopped' },
      { level: 20, err: 'gone', stopped: true, msg: 'it failed' },
    ]);
  });

  it("logs a purge round's failure at warn, or one cut by the stop at debug: the error's name and message only", () => {
    const { logger, logged } = capture();
    const failed = purgeRoundFailed(logger, 'purge failed');
    const error = Object.assign(new Error('Connection terminated unexpectedly'), { detail: 'not logged' });
    failed(error, { stopped: false });
    failed(error, { stopped: true });
    const err = { name: 'Error', message: 'Connection terminated unexpectedly' };
    assert.deepEqual(logged(), [
      { level: 40, err, msg: 'purge failed' },
      { level: 20, err, stopped: true, msg: 'purge failed' },
    ]);
  });
});
