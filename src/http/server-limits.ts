import http, { type RequestListener, type Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Config } from '../config/load.ts';
import { addressKey } from '../util/address-key.ts';
import { answerConnectRequests } from './connect-request.ts';
import { isTrustedPeer, trustedProxyRanges } from './forwarded-headers.ts';

/**
 * How long and how many connections the HTTP server holds for its clients. Node's own defaults let a
 * client that trickles a request (a header or a form body a byte a second) hold its connection for up
 * to five minutes, and take any number of connections, each with what it has sent so far.
 */
export interface HttpServerLimits {
  /** A request's headers must have arrived within this (else 408 and the connection is closed). */
  headersTimeoutMs: number;
  /** The whole request, headers and body, must have arrived within this (else 408, closed). */
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutMs: number;
  /** How often the two request deadlines are looked at: a slow request is cut at most this late. */
  connectionsCheckingIntervalMs: number;
  /** Connections open at once; one more is closed as soon as it is accepted. 0: no limit. */
  maxConnections: number;
  /**
   * Connections open at once from one client address (an IPv6 client: its /64), so that one client
   * cannot take every place; the configured proxies (with `trustProxy`) are not counted. 0: no limit.
   */
  maxConnectionsPerAddress: number;
}

/** The connection caps are configured (`http.*`); these are not. */
type HttpServerTimeouts = Omit<HttpServerLimits, 'maxConnections' | 'maxConnectionsPerAddress'>;

/**
 * A reverse proxy (deploy/nginx) reads a request whole before passing it on, so these only matter
 * to a client that reaches the port itself; they are generous to any client that is not hostile.
 */
export const HTTP_SERVER_TIMEOUTS: HttpServerTimeouts = {
  headersTimeoutMs: 20_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  connectionsCheckingIntervalMs: 2_000,
};

/**
 * The HTTP server of `serve`: HTTP_SERVER_TIMEOUTS and the configured connection caps (`http.*`),
 * unless a test narrows them with `limits`. With `trustProxy`, connections from the `trustedProxies`
 * are held without a per-address limit: every client behind the proxy comes from its address. A
 * `CONNECT` request gets a 400 (connect-request.ts).
 */
export function createHttpServer(
  handler: RequestListener,
  config: Pick<Config, 'trustProxy' | 'trustedProxies' | 'http'>,
  limits: Partial<HttpServerLimits> = {},
): Server {
  const chosen: HttpServerLimits = { ...HTTP_SERVER_TIMEOUTS, ...config.http, ...limits };
  const server = http.createServer(
    {
      headersTimeout: chosen.headersTimeoutMs,
      requestTimeout: chosen.requestTimeoutMs,
      keepAliveTimeout: chosen.keepAliveTimeoutMs,
      connectionsCheckingInterval: chosen.connectionsCheckingIntervalMs,
    },
    handler,
  );
  answerConnectRequests(server, chosen.keepAliveTimeoutMs);
  if (chosen.maxConnections > 0) server.maxConnections = chosen.maxConnections;
  if (chosen.maxConnectionsPerAddress === 0) return server;
  const proxies = trustedProxyRanges(config);
  const open = new Map<string, number>();
  server.on('connection', (socket: Socket) => {
    const peer = socket.remoteAddress;
    if (peer === undefined || isTrustedPeer(peer, proxies)) return;
    const key = addressKey(peer);
    const count = (open.get(key) ?? 0) + 1;
    if (count > chosen.maxConnectionsPerAddress) {
      socket.destroy();
      return;
    }
    open.set(key, count);
    socket.once('close', () => {
      const left = (open.get(key) ?? 1) - 1;
      if (left > 0) open.set(key, left);
      else open.delete(key);
    });
  });
  return server;
}
