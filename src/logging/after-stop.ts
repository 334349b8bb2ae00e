import type { Logger } from './logger.ts';

/** A failure's line: its level while the process runs, and whether the stop had begun by then. */
export interface FailureWhen {
  level: 'warn' | 'error';
  stopped: boolean;
}

/**
 * Logs a failure at `level`, or at `debug` with `stopped: true` when it came after the stop began:
 * the stop gives up on the work still in flight, and closing the database's connections then cuts
 * it, which is the stop's doing, not a fault (the step that gave up says so at `warn`).
 * `stoppedMessage` is the line's message then, when it says so itself (default `message`).
 */
export function logFailure(
  log: Logger,
  { level, stopped }: FailureWhen,
  fields: object,
  message: string,
  stoppedMessage: string = message,
): void {
  if (stopped) log.debug({ ...fields, stopped: true }, stoppedMessage);
  else log[level](fields, message);
}

/**
 * The `failed` of a purge's rounds (src/db/bounded-purge.ts `startPurgeRounds`): at `warn`, the
 * error's name and message only; a round cut by the stop (the database closed under it) at `debug`.
 */
export function purgeRoundFailed(
  log: Logger,
  message: string,
): (error: Error, when: { stopped: boolean }) => void {
  return (error, { stopped }) =>
    logFailure(
      log,
      { level: 'warn', stopped },
      { err: { name: error.name, message: error.message } },
      message,
    );
}
