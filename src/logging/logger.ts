import type { IncomingMessage } from 'node:http';
import pino, { type Logger } from 'pino';
import type { Config } from '../config/load.ts';
import type { LOG_LEVELS } from '../config/schema.ts';
import { redactUrl, scrubString, scrubValue } from './redact.ts';
import { escapeUnshownInJson } from '../util/hidden-characters.ts';
import { isoNowOncePerMillisecond } from '../util/iso-time.ts';

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

/**
 * Marks a log object whose every field was made safe where it was built: the URL through
 * `redactUrl`, free text through `scrubString`, secrets never put in (only their digests). The
 * logger writes such objects as they are; any other object is deep-scrubbed first (`scrubValue`).
 * This is how the lines written for every request (the access line, audit events) stay cheap.
 */
const VETTED = Symbol('aa-oidc vetted log fields');

export function vetted<T extends object>(fields: T): T {
  Object.defineProperty(fields, VETTED, { value: true });
  return fields;
}

/**
 * The base of the classes of vetted objects made for every request (the access line): the mark sits
 * on their prototype once, where `vetted()` defines it on each object, a slow property definition
 * per object and per request. Only the instances' own fields are written, in the order they are set.
 */
export class VettedFields {}
Object.defineProperty(VettedFields.prototype, VETTED, { value: true });

function isVetted(value: unknown): boolean {
  return typeof value === 'object' && value !== null && (value as { [VETTED]?: boolean })[VETTED] === true;
}

/**
 * The process logger. Redaction lives here so that every child logger inherits it: each logged
 * object that is not `vetted` is deep-scrubbed (sensitive keys at any depth, credentials in strings,
 * errors serialized), the message is scrubbed, bindings of child loggers too. Every line is written
 * with its invisible and control characters escaped (`escapeUnshownInJson`). Lines are written
 * asynchronously; `flushLogger` writes out what is buffered (on shutdown).
 */
export function createLogger(config: Pick<Config, 'logging'>, options: LoggerOptions = {}): Logger {
  const logger = pino(
    {
      level: options.level ?? config.logging.level,
      base: { service: 'aa-oidc' },
      timestamp: isoTimeOncePerMillisecond(),
      serializers: {
        req: (req: unknown) => (isVetted(req) ? req : serializeRequest(req)),
        // Errors were already serialized and scrubbed by `formatters.log`; serializing again would
        // lose their type name.
        err: (error: unknown) => (error instanceof Error ? scrubValue(error) : error),
        msg: (message: unknown) => (typeof message === 'string' ? scrubString(message) : message),
      },
      formatters: {
        log: (object) =>
          isVetted(object)
            ? object
            : (scrubValue(
                'req' in object ? { ...object, req: serializeRequest(object.req) } : object,
              ) as Record<string, unknown>),
        bindings: (bindings) =>
          isVetted(bindings) ? bindings : (scrubValue(bindings) as Record<string, unknown>),
      },
      // A user agent (read as Latin-1: a byte 0x9b is the C1 CSI), a username from Alliance Auth or a
      // note can hold characters that pino's JSON leaves raw and a terminal following the log obeys
      // (`\u009b31m`) or shows as a line break (U+2028): they are written as escapes, in every line.
      hooks: { streamWrite: escapeUnshownInJson },
    },
    options.destination ?? batchedLines(pino.destination({ dest: 1, sync: false })),
  );
  // pino applies `formatters.bindings` to the root's bindings only; children (which inherit this
  // property) get theirs scrubbed here, once, when they are made.
  const child = logger.child;
  logger.child = function scrubbedChild(this: Logger, bindings, childOptions) {
    return child.call(
      this,
      isVetted(bindings) ? bindings : (scrubValue(bindings) as typeof bindings),
      childOptions,
    );
  } as typeof child;
  return logger;
}

/**
 * pino's `isoTime` (`,"time":"2026-…Z"`), formatted once per millisecond (`isoNowOncePerMillisecond`):
 * a busy server writes several lines in the same millisecond.
 */
export function isoTimeOncePerMillisecond(now: () => number = Date.now): () => string {
  const isoNow = isoNowOncePerMillisecond(now);
  let iso = '';
  let formatted = '';
  return () => {
    const time = isoNow();
    if (time !== iso) {
      iso = time;
      formatted = `,"time":"${time}"`;
    }
    return formatted;
  };
}

/** The part of an asynchronous destination (a SonicBoom) that `batchedLines` uses. */
export interface AsyncDestination {
  write(chunk: string): unknown;
  flushSync(): void;
}

/** How long a line may wait for others before `batchedLines` hands it over. */
export const LINE_BATCH_DELAY_MS = 10;
/** Pending characters past which `batchedLines` hands the lines over at once. */
export const LINE_BATCH_MAX_CHARS = 64 * 1024;

/**
 * Hands the lines written within a few milliseconds (`LINE_BATCH_DELAY_MS`) to `target` in one
 * write, at once when they pass `LINE_BATCH_MAX_CHARS`. Each write of the asynchronous destination
 * is a system call on a thread of libuv's pool, with a thread wake-up each way and the completion's
 * callback on the event loop: per turn of the event loop, a busy server still wrote about once per
 * request, which cost more than the line itself. The lines keep their order; `flushSync` (shutdown,
 * or pino's own flush of `target` when the process exits) writes what is pending first. The timer
 * does not keep the process alive.
 */
export function batchedLines<T extends AsyncDestination>(
  target: T,
  schedule: (handOver: () => void) => void = (handOver) => {
    setTimeout(handOver, LINE_BATCH_DELAY_MS).unref();
  },
): AsyncDestination {
  let pending: string[] = [];
  let pendingChars = 0;
  let scheduled = false;
  const handOver = () => {
    if (pending.length === 0) return;
    const lines = pending.length === 1 ? pending[0]! : pending.join('');
    pending = [];
    pendingChars = 0;
    target.write(lines);
  };
  // pino flushes the destination it made synchronously on exit: the pending lines go first.
  const targetFlushSync = target.flushSync.bind(target);
  target.flushSync = () => {
    handOver();
    targetFlushSync();
  };
  return {
    write(line: string) {
      pending.push(line);
      pendingChars += line.length;
      if (pendingChars >= LINE_BATCH_MAX_CHARS) {
        handOver();
        return;
      }
      if (!scheduled) {
        scheduled = true;
        schedule(() => {
          scheduled = false;
          handOver();
        });
      }
    },
    flushSync: () => target.flushSync(),
  };
}

/**
 * Writes out the lines still buffered by the asynchronous destination (at shutdown, so that the last
 * lines are not lost when the process exits). A destination without a buffer has nothing to do.
 */
export function flushLogger(logger: Logger): void {
  const stream = (logger as unknown as Record<symbol, unknown>)[pino.symbols.streamSym] as
    { flushSync?: () => void } | undefined;
  try {
    stream?.flushSync?.();
  } catch {
    // Not open yet, or already closed: nothing buffered can be written.
  }
}
