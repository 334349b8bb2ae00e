import { createHash, timingSafeEqual } from 'node:crypto';
import {
  createServer,
  type IncomingMessage,
  type RequestListener,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import type Koa from 'koa';
import type { Logger } from '../logging/logger.ts';
import type { Metrics } from './registry.ts';

export const METRICS_PATH = '/metrics';

/** The exposition text and its content type. */
export async function renderMetrics(
  metrics: Pick<Metrics, 'registry'>,
): Promise<{ contentType: string; body: string }> {
  return { contentType: metrics.registry.contentType, body: await metrics.registry.metrics() };
}

/**
 * Compares an `Authorization` header with `Bearer <expected>` in constant time: both sides are
 * hashed first, so neither the length nor a common prefix of the expected token shows in timing.
 */
export function bearerTokenMatches(authorization: string | undefined, expected: string): boolean {
  const presented = /^Bearer[ ]+(\S+)\s*$/i.exec(authorization ?? '')?.[1] ?? '';
  const left = createHash('sha256').update(presented).digest();
  const right = createHash('sha256').update(expected).digest();
  return timingSafeEqual(left, right) && presented.length > 0;
}

/**
 * `/metrics` on the main port, only when `metrics.bearerToken` is configured (otherwise the path is
 * left to the rest of the app, which answers 404). A missing or wrong token gets 401; another method
 * than GET or HEAD, 405.
 */
export function metricsRoute(metrics: Metrics, bearerToken: string | undefined): Koa.Middleware {
  if (bearerToken === undefined) return (_ctx, next) => next();
  const answer: Koa.Middleware = async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    if (!bearerTokenMatches(ctx.get('authorization') || undefined, bearerToken)) {
      ctx.status = 401;
      ctx.set('WWW-Authenticate', 'Bearer realm="metrics"');
      ctx.body = { error: 'unauthorized', error_description: 'a valid metrics bearer token is required' };
      return;
    }
    const { contentType, body } = await renderMetrics(metrics);
    ctx.type = contentType;
    ctx.body = body;
  };
  return (ctx, next) => {
    if (ctx.path !== METRICS_PATH) return next();
    if (ctx.method === 'GET' || ctx.method === 'HEAD') return answer(ctx, next);
    ctx.status = 405;
    ctx.set('Allow', 'GET, HEAD');
    ctx.set('Cache-Control', 'no-store');
    ctx.body = {
      error: 'invalid_request',
      error_description: 'This endpoint takes GET, HEAD requests only.',
    };
  };
}

export interface MetricsListener {
  address: AddressInfo;
  /** `http://host:port/metrics`, for the startup line. */
  url: string;
  /** Stops listening and closes every connection, idle or not; resolves once all have closed. */
  close(): Promise<void>;
}

/**
 * The dedicated metrics listener (`metrics.host`:`metrics.port`, loopback by default): answers
 * `GET /metrics` without authentication, 404 elsewhere, 405 for other methods; every answer with
 * `X-Content-Type-Options: nosniff`, as on the main port. `createServer` builds its HTTP server
 * (Node's own by default); the commands pass the main port's, with its deadlines and connection
 * caps, since the listener shares the process, and its file descriptors, with everything else.
 */
export function startMetricsListener(
  metrics: Pick<Metrics, 'registry'>,
  options: { host: string; port: number; createServer?: (handler: RequestListener) => Server },
  logger?: Logger,
): Promise<MetricsListener> {
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    // What `declaredTypesOnly` (http/) sets on every answer of the main port, set here by hand:
    // metrics/ may not import http/. Before any answer is written, so 404, 405 and 500 carry it too.
    res.setHeader('X-Content-Type-Options', 'nosniff');
    const path = (req.url ?? '/').split('?')[0];
    if (path !== METRICS_PATH) {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('not found\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res
        .writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' })
        .end('method not allowed: /metrics takes GET and HEAD only\n');
      return;
    }
    renderMetrics(metrics).then(
      ({ contentType, body }) => {
        res.writeHead(200, { 'Content-Type': contentType, 'Cache-Control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      (error: unknown) => {
        logger?.error({ err: error }, 'rendering metrics failed');
        res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' }).end('metrics unavailable\n');
      },
    );
  };
  return new Promise((resolve, reject) => {
    const server: Server = (options.createServer ?? createServer)(handle);
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      const address = server.address() as AddressInfo;
      const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      resolve({
        address,
        url: `http://${host}:${address.port}${METRICS_PATH}`,
        // Every connection is closed at once, a scrape in flight with them (one missed scrape of a
        // process that is stopping): once closed, Node no longer enforces the request deadlines, so
        // a client half-way through its request would otherwise hold the exit for good, and one
        // answered meanwhile would be kept alive for its keep-alive timeout.
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}
