import net from 'node:net';
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import type { Client, Dispatcher } from 'undici';
import { loadUndici } from '../util/undici.ts';
import { assertNever } from '../util/assert-never.ts';
import {
  ConnectFailure,
  type ConnectionPoolOptions,
  type ConnectionPools,
  createConnectionPools,
} from './connection-pools.ts';
import type { AddressClass } from './ssrf/address-classes.ts';
import {
  type CheckedAddress,
  checkBackchannelTarget,
  type GateOptions,
  type GateVerdict,
} from './ssrf/target-gate.ts';

/**
 * One HTTP attempt of a back-channel logout delivery: the SSRF gate again, then a POST
 * over a connection pinned to an address the gate just checked (the next one only when no
 * connection to the one before could be opened). No second DNS lookup, no redirect followed, no
 * response body read. Retries and the delivery-attempt table are upstream.
 */

export const DEFAULT_CONNECT_TIMEOUT_MS = 5000;
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;

/** Where a pinned connection goes: the checked address, never a name. */
export interface PinnedTarget {
  address: string;
  family: 4 | 6;
  port: number;
  protocol: 'http:' | 'https:';
  /**
   * The TLS server name (SNI and certificate check): the URL's host without the trailing dot of a
   * fully qualified name (RFC 6066 §3; Go's TLS servers refuse a ClientHello with one), or null for
   * an IP host.
   */
  servername: string | null;
}

/** Where a connection to `checked`, one of the addresses the gate let through for `gate`'s URL, goes. */
export function pinnedTarget(
  gate: Extract<GateVerdict, { ok: true }>,
  checked: CheckedAddress,
): PinnedTarget {
  return {
    address: checked.address,
    family: checked.family,
    port: gate.port,
    protocol: gate.url.protocol as 'http:' | 'https:',
    servername: gate.literal ? null : gate.host.replace(/\.+$/, ''),
  };
}

/**
 * Opens the connection for one delivery. The default opens TCP (and TLS) to `target.address`;
 * tests inject one that maps an address judged public to a loopback receiver. Must give up, and
 * close what it opened, when `signal` aborts (the connect timeout).
 */
export type Connector = (target: PinnedTarget, signal: AbortSignal) => Promise<net.Socket>;

export type NetworkFailure =
  | 'connect_timeout'
  | 'request_timeout'
  | 'connection_failed'
  | 'tls_failed'
  /** The receiver answered, but not with an HTTP/1.1 response to a POST (garbage, an upgrade, a 100). */
  | 'bad_response';

interface Timing {
  /** Milliseconds from the start of the attempt (gate included) to its outcome. */
  elapsedMs: number;
}
interface Reached extends Timing {
  /** The address the request went to. */
  address: string;
  status: number;
}

export type DeliveryOutcome =
  | ({ outcome: 'success' } & Reached)
  | ({ outcome: 'redirect_blocked' } & Reached)
  | ({ outcome: 'rp_client_error' } & Reached)
  | ({ outcome: 'server_error' } & Reached)
  | ({ outcome: 'network_error'; address: string; failure: NetworkFailure; detail: string } & Timing)
  | ({ outcome: 'dns_resolve_failed'; detail: string } & Timing)
  | ({
      outcome: 'unsafe_target_ip';
      /** What the gate refused: an unsafe address, or (when the URI or mode changed) its form. */
      gateReason: 'unsafe_target_ip' | 'invalid_uri' | 'scheme_not_allowed';
      detail: string;
      addressClass?: AddressClass;
    } & Timing);

export type DeliveryOutcomeKind = DeliveryOutcome['outcome'];

/**
 * The retry policy (delivery.ts's `finalOf` follows it): 5xx and network failures (at the end:
 * `retries_exhausted`), and a host that did not resolve (a resolver outage, a timeout, SERVFAIL, a
 * record briefly gone, must not lose the logout; at the end: `dns_resolve_failed`). Nothing was
 * connected to for the last: the gate still fails closed.
 */
export function isRetryable(outcome: DeliveryOutcome): boolean {
  switch (outcome.outcome) {
    case 'server_error':
    case 'network_error':
    case 'dns_resolve_failed':
      return true;
    case 'success':
    case 'redirect_blocked':
    case 'rp_client_error':
    case 'unsafe_target_ip':
      return false;
    default:
      return assertNever(outcome);
  }
}

export interface DeliveryRequest {
  /** The stored back-channel logout URI. */
  url: string;
  /** The signed logout token; sent as the form field `logout_token`, nowhere else. */
  logoutToken: string;
  gate: GateOptions;
  connector?: Connector;
  /** Default 5000 ms. */
  connectTimeoutMs?: number;
  /** The whole attempt, gate included, up to the response status; default 10 000 ms. */
  requestTimeoutMs?: number;
  /** Milliseconds, monotonic; default performance.now. */
  clock?: () => number;
  /** Keep-alive connections shared by deliveries (a worker's); default one connection per attempt. */
  pools?: ConnectionPools;
}

/** Delivers one logout token; never throws, never reads the response body (it ends on the status). */
export async function deliverLogoutToken(request: DeliveryRequest): Promise<DeliveryOutcome> {
  const clock = request.clock ?? (() => performance.now());
  const started = clock();
  const elapsed = () => Math.max(0, Math.round(clock() - started));
  const connectTimeoutMs = request.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const requestTimeoutMs = request.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const connector = request.connector ?? directConnector;

  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), requestTimeoutMs);
  try {
    const gate = await checkBackchannelTarget(request.url, request.gate, deadline.signal);
    if (!gate.ok) {
      if (gate.reason === 'dns_resolve_failed')
        return { outcome: 'dns_resolve_failed', detail: gate.detail, elapsedMs: elapsed() };
      return {
        outcome: 'unsafe_target_ip',
        gateReason: gate.reason,
        detail: gate.detail,
        ...(gate.addressClass === undefined ? {} : { addressClass: gate.addressClass }),
        elapsedMs: elapsed(),
      };
    }

    // Pinned: each connection goes to an address the gate just checked and nowhere else; `origin`
    // only names the host for the Host header and the TLS server name. The next address is tried
    // only when no connection to this one could be opened (the request was not sent: never twice),
    // all of them within the attempt's deadline. A worker's pools put an address that could not be
    // reached lately after the others.
    const candidates = (request.pools?.ordered(gate.addresses, gate.port) ?? gate.addresses).slice(
      0,
      MAX_ADDRESSES_TRIED,
    );
    const unreachable: string[] = [];
    for (const [index, checked] of candidates.entries()) {
      const target = pinnedTarget(gate, checked);
      const sent = await sendPinned(request, gate.url, target, deadline.signal, {
        connector,
        connectTimeoutMs,
        requestTimeoutMs,
      });
      if ('status' in sent) {
        request.pools?.noteConnect(target, true);
        return classifyStatus(sent.status, checked.address, elapsed());
      }
      if (sent.connectFailed) request.pools?.noteConnect(target, false);
      const last = index === candidates.length - 1;
      if (sent.connectFailed && !last && !deadline.signal.aborted) {
        unreachable.push(`${checked.address}: ${sent.detail}`);
        continue;
      }
      return {
        outcome: 'network_error',
        address: checked.address,
        failure: sent.failure,
        detail:
          unreachable.length === 0
            ? sent.detail
            : [...unreachable, `${checked.address}: ${sent.detail}`].join('; '),
        elapsedMs: elapsed(),
      };
    }
    throw new Error('unreachable: the gate returns at least one address');
  } finally {
    clearTimeout(timer);
  }
}

/**
 * At most this many of a host's addresses are tried by one attempt, each only after no connection
 * to the one before it could be opened (a dual-stack host with two of each family).
 */
export const MAX_ADDRESSES_TRIED = 4;

type Sent =
  | { status: number }
  | {
      failure: NetworkFailure;
      detail: string;
      /** No connection could be opened (refused, unreachable, connect timeout): nothing was sent. */
      connectFailed: boolean;
    };

/** The POST to one pinned address: its response status, or why there is none. */
async function sendPinned(
  request: DeliveryRequest,
  url: URL,
  target: PinnedTarget,
  deadline: AbortSignal,
  limits: { connector: Connector; connectTimeoutMs: number; requestTimeoutMs: number },
): Promise<Sent> {
  // A kept-alive connection of the pool for this very address (the pool composed its interceptor
  // when it was made), or one connection for this attempt, closed when it ends.
  const pooled = await request.pools?.poolFor(url.origin, target);
  let dispatcher: Dispatcher;
  let attemptClient: Client | undefined;
  if (pooled) dispatcher = pooled;
  else {
    const { Client } = await loadUndici();
    attemptClient = new Client(url.origin, {
      connect: (_options, callback) => {
        openPinned(limits.connector, target, limits.connectTimeoutMs, deadline).then(
          (socket) => callback(null, socket),
          (error: Error) => callback(error, null),
        );
      },
      pipelining: 1,
      headersTimeout: limits.requestTimeoutMs,
      bodyTimeout: limits.requestTimeoutMs,
    });
    dispatcher = attemptClient.compose(endConnectionWithoutHttpStatus);
  }
  try {
    const response = await dispatcher.request({
      origin: url.origin,
      method: 'POST',
      path: `${url.pathname}${url.search}`,
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        'user-agent': 'aa-oidc back-channel logout',
        accept: '*/*',
      },
      body: new URLSearchParams({ logout_token: request.logoutToken }).toString(),
      signal: deadline,
    });
    // The status is all a delivery needs: the attempt ends here, whatever the body does. A body
    // that arrived whole with the headers leaves its connection to the next delivery (undici had
    // finished the response; unless the status was none, `endConnectionWithoutHttpStatus`); any
    // other closes the connection now, so that a receiver that answers and then never ends its
    // body holds neither this attempt nor a half-read connection.
    response.body.on('error', () => undefined).destroy();
    return { status: response.statusCode };
  } catch (error) {
    if (error instanceof NoHttpStatus) return { status: error.status };
    if (deadline.aborted)
      return {
        failure: 'request_timeout',
        detail: `no response within ${limits.requestTimeoutMs} ms`,
        connectFailed: false,
      };
    // Only the connect of a new connection fails with ConnectFailure, before the request is
    // written; a failure on a kept-alive connection, or after TLS began, is not a reason to move on.
    if (error instanceof ConnectFailure)
      return {
        failure: error.failure,
        detail: error.detail,
        connectFailed: error.failure === 'connection_failed' || error.failure === 'connect_timeout',
      };
    return { ...describeRequestError(error, deadline, limits.requestTimeoutMs), connectFailed: false };
  } finally {
    await attemptClient?.destroy().catch(() => undefined);
  }
}

/** A response whose status is no HTTP status (`classifyStatus`); its connection was ended. */
class NoHttpStatus extends Error {
  override name = 'NoHttpStatus';
  readonly status: number;
  constructor(status: number) {
    super(`status ${status}, which is no HTTP status`);
    this.status = status;
  }
}

/**
 * Ends the connection of a response whose status is outside 100–599 as soon as its head arrives:
 * a receiver that does not answer in HTTP gets no second request on that connection, as undici
 * closes it after garbage. Ending the body would be too late for one that arrived whole with the
 * head: undici has handed the connection back to the pool by then. The request fails with
 * `NoHttpStatus`; a status below 100, which undici reads as an interim (1xx) one, would otherwise
 * fail it on an assertion inside undici (`the request failed (ERR_ASSERTION)`).
 */
function endConnectionWithoutHttpStatus(dispatch: Dispatcher.Dispatch): Dispatcher.Dispatch {
  return (options, handler) =>
    dispatch(options, {
      onRequestStart: (controller, context: unknown) => handler.onRequestStart?.(controller, context),
      onRequestUpgrade: (controller, statusCode, headers, socket) =>
        handler.onRequestUpgrade?.(controller, statusCode, headers, socket),
      onResponseStart: (controller, statusCode, headers, statusMessage) => {
        if (statusCode < 100 || statusCode > 599) return controller.abort(new NoHttpStatus(statusCode));
        handler.onResponseStart?.(controller, statusCode, headers, statusMessage);
      },
      onResponseData: (controller, chunk) => handler.onResponseData?.(controller, chunk),
      onResponseEnd: (controller, trailers) => handler.onResponseEnd?.(controller, trailers),
      onResponseError: (controller, error) => handler.onResponseError?.(controller, error),
    });
}

/**
 * Keep-alive connection pools for the deliveries of one worker: every connection opened by the
 * pinned connector under the connect timeout, a failure described as a `ConnectFailure`.
 */
export function createDeliveryPools(
  options: Omit<ConnectionPoolOptions, 'connector'> & { connector?: Connector },
): ConnectionPools {
  return createConnectionPools(
    { ...options, connector: options.connector ?? directConnector },
    (connector, target, timeoutMs) => openPinned(connector, target, timeoutMs),
    endConnectionWithoutHttpStatus,
  );
}

/**
 * `connectPinned`, its failure described for the delivery outcome (`ConnectFailure`). Also how EVE
 * SSO's requests connect (src/alliance-auth/eve-sso.ts): the same pinned connection for every
 * outbound request that passed the gate.
 */
export async function openPinned(
  connector: Connector,
  target: PinnedTarget,
  timeoutMs: number,
  deadline?: AbortSignal,
): Promise<net.Socket> {
  try {
    return await connectPinned(connector, target, timeoutMs, deadline);
  } catch (error) {
    const described = describeConnectError(error, timeoutMs);
    throw new ConnectFailure(described.failure, described.detail, { cause: error });
  }
}

/**
 * What a response's status means for the delivery. A status outside 100–599 is no HTTP status
 * (RFC 9110 §15): the receiver did not answer in HTTP, as with garbage (`bad_response`), not with a
 * server error; it is retried as any answer that is not HTTP is.
 */
function classifyStatus(status: number, address: string, elapsedMs: number): DeliveryOutcome {
  if (status < 100 || status > 599)
    return {
      outcome: 'network_error',
      address,
      failure: 'bad_response',
      detail: `the receiver answered with status ${status}, which is no HTTP status (100–599)`,
      elapsedMs,
    };
  const reached = { status, address, elapsedMs };
  if (status >= 200 && status < 300) return { outcome: 'success', ...reached };
  if (status >= 300 && status < 400) return { outcome: 'redirect_blocked', ...reached };
  if (status >= 400 && status < 500) return { outcome: 'rp_client_error', ...reached };
  return { outcome: 'server_error', ...reached };
}

function aborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}

class ConnectTimeout extends Error {
  override name = 'ConnectTimeout';
}

/** Runs the connector under the connect timeout (and the overall deadline); a late socket is closed. */
async function connectPinned(
  connector: Connector,
  target: PinnedTarget,
  timeoutMs: number,
  deadline?: AbortSignal,
): Promise<net.Socket> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new ConnectTimeout()), timeoutMs);
  const onDeadline = () => controller.abort(new ConnectTimeout());
  deadline?.addEventListener('abort', onDeadline, { once: true });
  try {
    const connecting = connector(target, controller.signal);
    const result = await Promise.race([
      connecting,
      aborted(controller.signal).then(() => {
        connecting.then((late) => late.destroy()).catch(() => undefined);
        throw new ConnectTimeout(`no connection within ${timeoutMs} ms`);
      }),
    ]);
    return result;
  } finally {
    clearTimeout(timer);
    deadline?.removeEventListener('abort', onDeadline);
  }
}

function describeConnectError(
  error: unknown,
  timeoutMs: number,
): { failure: NetworkFailure; detail: string } {
  if (error instanceof ConnectTimeout)
    return { failure: 'connect_timeout', detail: `no connection within ${timeoutMs} ms` };
  const code = errorCode(error);
  if (code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL') || /CERT|SELF_SIGNED|UNABLE_TO/.test(code))
    return { failure: 'tls_failed', detail: `TLS failed (${code})` };
  return { failure: 'connection_failed', detail: `connection failed (${code})` };
}

/** Who was asked, and how, for the words of a failure: `the receiver` and `POST` for a delivery. */
export interface RequestAsked {
  peer: string;
  method: string;
}

const DELIVERY_ASKED: RequestAsked = { peer: 'the receiver', method: 'POST' };

/**
 * Why a request on a connection that was opened got no usable answer, in fixed words and undici's
 * error code: never the error's own message, which is library text and may carry what the peer
 * sent. Also what EVE SSO's requests report (src/alliance-auth/eve-sso.ts).
 */
export function describeRequestError(
  error: unknown,
  deadline: AbortSignal,
  timeoutMs: number,
  asked: RequestAsked = DELIVERY_ASKED,
): { failure: NetworkFailure; detail: string } {
  const code = errorCode(error);
  if (deadline.aborted || code === 'UND_ERR_HEADERS_TIMEOUT')
    return { failure: 'request_timeout', detail: `no response within ${timeoutMs} ms` };
  const described = describeAnswerRefused(error, code, asked);
  if (described !== undefined) return { failure: described.failure, detail: `${described.words} (${code})` };
  return { failure: 'connection_failed', detail: `the request failed (${code})` };
}

/**
 * What undici's refusal of a receiver's answer (or of its silence) means, in an operator's words:
 * otherwise an upgrade, a 100 and a hang-up all read as UND_ERR_SOCKET, and garbage as
 * `HTTPParserError`. undici tells its socket errors apart only by their message, a fixed text,
 * never repeated here: the received bytes it may carry stay out of the detail.
 */
function describeAnswerRefused(
  error: unknown,
  code: string,
  { peer, method }: RequestAsked,
): { failure: NetworkFailure; words: string } | undefined {
  const message = error instanceof Error ? error.message : '';
  const bad = (words: string) => ({ failure: 'bad_response' as const, words });
  if (code === 'UND_ERR_SOCKET' && message === 'bad upgrade')
    return bad(`${peer} switched protocols (101) instead of answering the ${method}`);
  if (code === 'UND_ERR_SOCKET' && message === 'bad response')
    return bad(`${peer} sent 100 Continue, which a ${method} without Expect: 100-continue does not accept`);
  if (code === 'UND_ERR_SOCKET' && message === 'other side closed')
    return { failure: 'connection_failed', words: `${peer} closed the connection without answering` };
  if (code === 'UND_ERR_HEADERS_OVERFLOW') return bad('the response headers are too large');
  if (code === 'HTTPParserError' || code.startsWith('HPE_') || code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH')
    return bad('the response is not valid HTTP/1.1');
  return undefined;
}

function errorCode(error: unknown): string {
  if (typeof error === 'object' && error !== null) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && /^[A-Za-z0-9_]{1,60}$/.test(code)) return code;
    const name = (error as { name?: unknown }).name;
    if (typeof name === 'string' && /^[A-Za-z0-9_]{1,60}$/.test(name)) return name;
  }
  return 'unknown error';
}

/**
 * The production connector: TCP to the checked address (an IP, so no lookup happens; the lookup
 * function refuses, should one ever be attempted), TLS with the URL's host as server name.
 */
export const directConnector: Connector = createDirectConnector();

/** The production connector with extra trust anchors (a private CA for an internal RP; tests). */
export function createDirectConnector(trust: { ca?: string | Buffer } = {}): Connector {
  return (target, signal) => connectDirectly(target, signal, trust);
}

function connectDirectly(target: PinnedTarget, signal: AbortSignal, trust: { ca?: string | Buffer }) {
  return new Promise<net.Socket>((resolve, reject) => {
    const refuseLookup: net.LookupFunction = (_hostname, _options, callback) =>
      callback(
        Object.assign(new Error('a pinned connection never resolves names'), { code: 'EPINNED' }),
        '',
        4,
      );
    const socket =
      target.protocol === 'https:'
        ? tls.connect({
            host: target.address,
            port: target.port,
            lookup: refuseLookup,
            ...(target.servername === null ? {} : { servername: target.servername }),
            ALPNProtocols: ['http/1.1'],
            ...(trust.ca === undefined ? {} : { ca: trust.ca }),
          })
        : net.connect({ host: target.address, port: target.port, lookup: refuseLookup });
    const onAbort = () => {
      socket.destroy();
      reject(signal.reason instanceof Error ? signal.reason : new ConnectTimeout());
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once(target.protocol === 'https:' ? 'secureConnect' : 'connect', () => {
      signal.removeEventListener('abort', onAbort);
      resolve(socket);
    });
    socket.once('error', (error) => {
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      reject(error);
    });
  });
}
