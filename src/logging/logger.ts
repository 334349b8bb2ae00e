import pino, { type Logger } from 'pino';
import type { Config } from '../config/load.ts';

export type { Logger };

export interface LoggerOptions {
  /** Where lines go; defaults to stdout. Tests pass a capturing stream. */
  destination?: pino.DestinationStream;
}

/** The process logger. Redaction rules live here so that every child logger inherits them. */
export function createLogger(config: Pick<Config, 'logging'>, options: LoggerOptions = {}): Logger {
  return pino(
    {
      level: config.logging.level,
      base: { service: 'aa-oidc' },
      redact: {
        paths: ['password', '*.password', 'secret', '*.secret', 'token', '*.token', 'code', '*.code'],
        censor: '[redacted]',
      },
    },
    options.destination ?? pino.destination({ dest: 1, sync: false }),
  );
}
