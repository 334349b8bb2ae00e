import { randomUUID } from 'node:crypto';
import type Koa from 'koa';
import { type Logger, vetted, VettedFields } from './logger.ts';
import { redactUrl, scrubString } from './redact.ts';

export const REQUEST_ID_HEADER = 'X-Request-Id';
/** `REQUEST_ID_HEADER` as Node's `IncomingMessage.headers` names it. */
const REQUEST_ID_FIELD = 'x-request-id';

/**
 * An incoming request id is kept only when it is short and made of characters that cannot break a
 * log line or a header (proxies send UUIDs, hex, or `host/123-…`-like ids); anything else is replaced.
 */
const SANE_REQUEST_ID = /^[A-Za-z0-9][A-Za-z0-9._:/@+=-]{0,127}$/;

/** What `requestContext` puts on `ctx.state` for every later middleware. */
export interface RequestLogState {
  /** The id echoed in the `X-Request-Id` response header and bound to every line of this request. */
  requestId: string;
  /** A child of the process logger bound to `requestId`. */
  log: Logger;
}

export function acceptRequestId(incoming: string | undefined): string {
  return incoming !== undefined && SANE_REQUEST_ID.test(incoming) ? incoming : randomUUID();
}

/**
 * Paths probed by load balancers and scrapers: their access lines are logged at `debug`, except a
 * refusal (4xx): a scraper left with an old bearer token, or someone probing `/metrics` on the
 * public port, shows at `info` like any other refused request.
 */
const QUIET_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

/**
 * `ctx.state` of a request: its id, and its child logger, made the first time a line of the
 * request needs it (most requests write only the access line, which carries the id itself).
 */
class RequestState implements RequestLogState {
  readonly requestId: string;
  readonly #logger: Logger;
  #child: Logger | undefined;

  constructor(requestId: string, logger: Logger) {
    this.requestId = requestId;
    this.#logger = logger;
  }

  get log(): Logger {
    return (this.#child ??= this.#logger.child(vetted({ requestId: this.requestId })));
  }

  /** The child logger if a line of the request made it, else undefined. */
  get childIfMade(): Logger | undefined {
    return this.#child;
  }
}

export interface RequestContextOptions {
  /**
   * Query parameters that the access line hides on one path only, beside the credentials it hides
   * everywhere: path (as `ctx.path` reads it) to names. The state of an identity provider's callback
   * is ours; the authorization endpoint's is the relying party's, kept readable.
   */
  secretQueryParameters?: ReadonlyMap<string, ReadonlySet<string>>;
}

/**
 * The first middleware: assigns the request id (a sane incoming `X-Request-Id` or a fresh UUID),
 * echoes it, binds a child logger on `ctx.state.log`, and writes one access line per request with
 * method, redacted URL, status and duration.
 */
export function requestContext(logger: Logger, options: RequestContextOptions = {}): Koa.Middleware {
  const secretQueryParameters = options.secretQueryParameters ?? new Map<string, ReadonlySet<string>>();
  return async (ctx, next) => {
    const started = performance.now();
    // The header read and written on Node's objects: Koa's `get` lower-cases the name and its `set`
    // builds four arrays, per call, for what is one plain string here.
    const incoming = ctx.req.headers[REQUEST_ID_FIELD];
    const requestId = acceptRequestId(typeof incoming === 'string' && incoming !== '' ? incoming : undefined);
    const state = new RequestState(requestId, logger);
    // Whatever an earlier middleware put on the state stays.
    ctx.state = Object.assign(state, ctx.state);
    ctx.res.setHeader(REQUEST_ID_HEADER, requestId);
    let status: number | undefined;
    try {
      await next();
      status = ctx.status;
    } catch (error) {
      status = httpStatusOf(error);
      // Koa drops every header before writing an error response, except the error's own headers.
      if (typeof error === 'object' && error !== null) {
        const withHeaders = error as { headers?: Record<string, string> };
        withHeaders.headers = { ...withHeaders.headers, [REQUEST_ID_HEADER]: requestId };
      }
      throw error;
    } finally {
      const child = state.childIfMade;
      writeAccessLine(
        ctx,
        child ?? logger,
        child ? undefined : requestId,
        status,
        started,
        secretQueryParameters,
      );
    }
  };
}

/** The client's address, or undefined when it cannot be read (the socket already gone). */
function remoteAddressOf(ctx: Koa.Context): string | undefined {
  try {
    return ctx.ip;
  } catch {
    try {
      return ctx.req.socket?.remoteAddress;
    } catch {
      return undefined;
    }
  }
}

function userAgentOf(ctx: Koa.Context): string | undefined {
  try {
    return ctx.get('user-agent');
  } catch {
    return undefined;
  }
}

/** The access line's `req`: its fields already made safe (see `writeAccessLine`). */
class AccessRequest extends VettedFields {
  readonly method: string;
  readonly url: string;
  readonly remoteAddress: string | undefined;
  readonly userAgent: string | undefined;

  constructor(method: string, url: string, remoteAddress: string | undefined, userAgent: string | undefined) {
    super();
    this.method = method;
    this.url = url;
    this.remoteAddress = remoteAddress;
    this.userAgent = userAgent;
  }
}

/** The access line written through the request's child logger, which carries the id itself. */
class AccessLine extends VettedFields {
  readonly req: AccessRequest;
  readonly res: { status: number | undefined };
  readonly durationMs: number;

  constructor(req: AccessRequest, status: number | undefined, durationMs: number) {
    super();
    this.req = req;
    this.res = { status };
    this.durationMs = durationMs;
  }
}

/** The access line written through the process logger: the request id comes first. */
class AccessLineWithId extends VettedFields {
  readonly requestId: string;
  readonly req: AccessRequest;
  readonly res: { status: number | undefined };
  readonly durationMs: number;

  constructor(requestId: string, req: AccessRequest, status: number | undefined, durationMs: number) {
    super();
    this.requestId = requestId;
    this.req = req;
    this.res = { status };
    this.durationMs = durationMs;
  }
}

/**
 * The access line of one request. Never throws: whatever state the request ended in (its socket
 * already gone, a header unreadable), the line is written with what can still be read.
 */
function writeAccessLine(
  ctx: Koa.Context,
  log: Logger,
  requestId: string | undefined,
  status: number | undefined,
  started: number,
  secretQueryParameters: ReadonlyMap<string, ReadonlySet<string>>,
): void {
  const durationMs = performance.now() - started;
  try {
    const answered = status ?? 500;
    const level = !isQuiet(ctx)
      ? answered >= 500
        ? 'warn'
        : 'info'
      : answered >= 400 && answered < 500
        ? 'info'
        : 'debug';
    if (!log.isLevelEnabled(level)) return;
    const userAgent = userAgentOf(ctx);
    // Safe by construction: the URL and the user agent are scrubbed here, and nothing else in the
    // line can carry a credential.
    const req = new AccessRequest(
      ctx.method,
      redactUrl(ctx.originalUrl, routeSecrets(ctx, secretQueryParameters)),
      remoteAddressOf(ctx),
      userAgent ? scrubString(userAgent) : userAgent,
    );
    const rounded = Math.round(durationMs * 1000) / 1000;
    log[level](
      requestId === undefined
        ? new AccessLine(req, status, rounded)
        : new AccessLineWithId(requestId, req, status, rounded),
      'request completed',
    );
  } catch {
    // The line could not be built (a getter threw): the bare facts still go out.
    log.warn(
      requestId === undefined ? { res: { status } } : { requestId, res: { status } },
      'request completed',
    );
  }
}

/**
 * The parameters secret on the request's path. Koa's parser is asked only about an origin-form
 * target, as sent or as `refuseUnreadableTarget` made it (an absolute form it could read): the one
 * the routes matched the path of.
 */
function routeSecrets(
  ctx: Koa.Context,
  secretQueryParameters: ReadonlyMap<string, ReadonlySet<string>>,
): ReadonlySet<string> | undefined {
  if (secretQueryParameters.size === 0 || ctx.req.url?.charCodeAt(0) !== SLASH) return undefined;
  return secretQueryParameters.get(ctx.path);
}

/**
 * A load balancer's or scraper's probe. Only an origin-form target (`/healthz`) is one: Koa's parser
 * is not asked about another, which it may not read (a malformed absolute form, see request-target.ts).
 */
function isQuiet(ctx: Koa.Context): boolean {
  return ctx.originalUrl.charCodeAt(0) === SLASH && QUIET_PATHS.has(ctx.path);
}
const SLASH = '/'.charCodeAt(0);

function httpStatusOf(error: unknown): number {
  if (typeof error === 'object' && error !== null) {
    const { status, statusCode } = error as { status?: unknown; statusCode?: unknown };
    if (typeof status === 'number') return status;
    if (typeof statusCode === 'number') return statusCode;
  }
  return 500;
}

/** `{ requestId }` of the request, for `audit.publish(event, publishContext(ctx))`. */
export function publishContext(ctx: Koa.Context): { requestId?: string } {
  const { requestId } = ctx.state as Partial<RequestLogState>;
  return requestId === undefined ? {} : { requestId };
}

/** The request's logger, or the fallback outside `requestContext` (background work, tests). */
export function requestLog(ctx: Koa.Context, fallback: Logger): Logger {
  return (ctx.state as Partial<RequestLogState>).log ?? fallback;
}

/**
 * What a client's connection does to a request: it broke off, sent what is not HTTP, or did not
 * send all of it in time (Node's `requestTimeout`, answered 408 by Node itself: a body trickled, or
 * one that never ends).
 */
const CLIENT_CONNECTION_CODES = new Set([
  'ECONNRESET',
  'EPIPE',
  'ECONNABORTED',
  'ERR_STREAM_PREMATURE_CLOSE',
  'ERR_HTTP_REQUEST_TIMEOUT',
]);

/**
 * An error of the client's connection rather than of the server: Koa reports it once the response
 * can no longer be written (`headerSent`), and its code is a socket's, Node's HTTP parser's
 * (`HPE_INVALID_CHUNK_SIZE`: a malformed body, answered 400 by Node itself) or Node's request
 * timeout. An error thrown while handling a request (a database connection reset, an outbound
 * request's parser) comes before anything is sent, and stays a failure.
 */
function isClientConnectionError(error: unknown): error is { code: string; message?: unknown } {
  if (typeof error !== 'object' || error === null) return false;
  const { code, headerSent } = error as { code?: unknown; headerSent?: unknown };
  return (
    headerSent === true &&
    typeof code === 'string' &&
    (code.startsWith('HPE_') || CLIENT_CONNECTION_CODES.has(code))
  );
}

/**
 * Routes Koa's `error` events to the structured log instead of Koa's default `console.error` (which
 * would print unredacted messages). Client errors (4xx exposed to the caller) are logged at `debug`,
 * and so are those of a client's connection (it broke off, sent a malformed body, or ran out of
 * time): at `error`, anyone could fill the log with failures and set off alerts on them.
 */
export function logKoaErrors(koa: Koa, logger: Logger): void {
  koa.on('error', (error: unknown, ctx?: Koa.Context) => {
    const log = ctx ? requestLog(ctx, logger) : logger;
    if (isClientConnectionError(error)) {
      log.debug({ err: { code: error.code, message: error.message } }, 'client connection error');
      return;
    }
    const status = httpStatusOf(error);
    const exposed =
      typeof error === 'object' && error !== null && (error as { expose?: unknown }).expose === true;
    if (status < 500 && exposed) log.debug({ err: error, status }, 'request error');
    else log.error({ err: error, status }, 'request failed');
  });
}
