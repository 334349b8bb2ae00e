import type { IncomingMessage } from 'node:http';
import pino, { type Logger } from 'pino';
import type { Config } from '../config/load.ts';
import type { LOG_LEVELS } from '../config/schema.ts';
import { censorValue, redactUrl, scrubString, scrubValue, SENSITIVE_KEY_NAMES } from './redact.ts';

export type { Logger };
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface LoggerOptions {
  /** Where lines go; defaults to stdout. Tests pass a capturing stream (see test/helpers/leak-harness.ts). */
  destination?: pino.DestinationStream;
  /** Overrides `logging.level` (the leak harness captures at `trace`). */
  level?: LogLevel;
}

/** What the `req` serializer emits: never headers, never credentials in the query string. */
export interface SerializedRequest {
  method: string | undefined;
  url: string | undefined;
  remoteAddress?: string | undefined;
  userAgent?: string | undefined;
}

/**
 * Serializes a Node request or a plain `{ method, url, … }` object for a log line: the URL keeps its
 * path and harmless parameters; `code`, `access_token`, `id_token_hint`, … become `[redacted]`.
 */
export function serializeRequest(req: unknown): SerializedRequest | unknown {
  if (typeof req !== 'object' || req === null) return req;
  const candidate = req as Partial<IncomingMessage> & {
    originalUrl?: string;
    remoteAddress?: string;
    userAgent?: string;
  };
  const url = candidate.originalUrl ?? candidate.url;
  const headers = candidate.headers;
  return {
    method: candidate.method,
    url: typeof url === 'string' ? redactUrl(url) : undefined,
    remoteAddress: candidate.remoteAddress ?? candidate.socket?.remoteAddress,
    userAgent:
      candidate.userAgent ??
      (typeof headers?.['user-agent'] === 'string' ? scrubString(headers['user-agent']) : undefined),
  };
}

/** `password`, `*.password`, `*.*.password`, … for pino's own redaction (a second layer under `scrubValue`). */
function redactPaths(): string[] {
  const paths: string[] = [];
  for (const name of SENSITIVE_KEY_NAMES) {
    const key = /^[A-Za-z_$][\w$]*$/.test(name) ? name : `["${name}"]`;
    const join = (prefix: string) => (key.startsWith('[') ? `${prefix}${key}` : `${prefix}.${key}`);
    paths.push(key.startsWith('[') ? key.slice(2, -2) : key, join('*'), join('*.*'));
  }
  return paths;
}

/**
 * The process logger. Redaction lives here so that every child logger inherits it: each logged
 * object is deep-scrubbed (sensitive keys at any depth, credentials in strings, errors serialized),
 * the message is scrubbed, bindings of child loggers too, and pino's `redact` paths cover the common
 * names again at the first three levels.
 */
export function createLogger(config: Pick<Config, 'logging'>, options: LoggerOptions = {}): Logger {
  return pino(
    {
      level: options.level ?? config.logging.level,
      base: { service: 'aa-oidc' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: redactPaths(),
        censor: (value: unknown, path: string[]) => censorValue(value, path[path.length - 1] ?? ''),
      },
      serializers: {
        req: serializeRequest,
        // Errors were already serialized and scrubbed by `formatters.log`; serializing again would
        // lose their type name.
        err: (error: unknown) => (error instanceof Error ? scrubValue(error) : error),
        msg: (message: unknown) => (typeof message === 'string' ? scrubString(message) : message),
      },
      formatters: {
        log: (object) =>
          scrubValue('req' in object ? { ...object, req: serializeRequest(object.req) } : object) as Record<
            string,
            unknown
          >,
        bindings: (bindings) => scrubValue(bindings) as Record<string, unknown>,
      },
    },
    options.destination ?? pino.destination({ dest: 1, sync: false }),
  );
}
