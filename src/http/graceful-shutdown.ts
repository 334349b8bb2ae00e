import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import net, { type Socket } from 'node:net';
import type { Logger } from '../logging/logger.ts';

/** The handler of every request (Koa's callback): settles once the request's middleware has ended. */
export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => Promise<unknown>;

/** A server's request listener that can be drained: `serve`'s shutdown waits on it. */
export interface Drainable {
  /** The listener to create the server with. */
  listener: (req: IncomingMessage, res: ServerResponse) => void;
  /** Counts the server's connections, so that a shutdown can close those still open at its deadline. */
  watch(server: Server): void;
  /**
   * Stops `server` accepting connections once it has accepted those the kernel holds for it, and
   * closes its idle ones after `idleGraceMs` (IDLE_CONNECTIONS_GRACE_MS); answers the requests in
   * flight, and those arriving meanwhile on connections already open, with `Connection: close`, each
   * connection closed after its answer; waits until every connection has closed and every handler has
   * ended (one whose client has gone still writes its tokens and
   * publishes its audit events). Past `graceMs` it closes the connections still open, logs how many
   * at `warn`, then waits up to `settleMs` (HANDLERS_SETTLE_MS) more for the handlers still running
   * (one waiting on the database goes on once it has its answer, and would otherwise fail against a
   * closed database, its change and audit event lost); it logs whether they ended, and resolves.
   */
  drain(
    server: Server,
    graceMs: number,
    logger: Logger,
    settleMs?: number,
    idleGraceMs?: number,
  ): Promise<void>;
}

/**
 * How long a stop leaves a keep-alive connection with nothing in flight open. Closing it at once races
 * with the request its client may be sending on it at that moment: one that arrives on a closed
 * connection is reset, and a proxy that keeps its upstream connections alive (nginx with `keepalive`,
 * Caddy, Traefik) answers a POST so reset with a 502, as it must not send it again. Within this, a
 * request on such a connection is answered with `Connection: close` instead; a connection in steady
 * use (a proxy's, under load, several requests a second) brings one, so only a connection that stays
 * idle is still closed under its client. 1 s: a stop with idle connections takes that much longer,
 * well within the keep-alive timeout (5 s, HTTP_SERVER_TIMEOUTS) and the grace period (1 s or more).
 */
export const IDLE_CONNECTIONS_GRACE_MS = 1000;

/**
 * How long a stop waits, past the grace period, for the handlers whose connections it closed: as long
 * as a handler waits for SQLite's write lock (`busy_timeout`) or for a PostgreSQL connection (the
 * default connect timeout), both 5 s, after which it has its answer or its error. With the default
 * grace of 25 s a stop takes at most about 30 s before the services close: well inside the units'
 * `TimeoutStopSec=70` and systemd's default of 90 s. A handler still running then (a query on a
 * network gone silent) is not waited for: the services close under it, and that is logged.
 */
export const HANDLERS_SETTLE_MS = 5000;

/**
 * Node's `server.close()` resets the connections the kernel completed that the event loop has not
 * accepted yet (Linux resets its accept queue when the listener closes), closes the idle keep-alive
 * connections at once (see IDLE_CONNECTIONS_GRACE_MS), keeps answering keep-alive connections with
 * `Connection: keep-alive` and waits for their keep-alive timeout, no longer enforces the request
 * timeouts (its checking interval is cleared with it), and resolves when the connections have closed,
 * whatever their handlers still do. This closes the gaps: a connection completed before the stop is
 * answered, not reset after its client sent its request (behind nginx, a POST it would not retry: a
 * 502); a client trickling a body directly to the port holds the shutdown no longer than the grace
 * period; and no handler outlives the services it uses (past the grace period, none that ends within
 * HANDLERS_SETTLE_MS of its connection being closed).
 */
export function drainable(handle: RequestHandler): Drainable {
  const answering = new Set<ServerResponse>();
  const sockets = new Set<Socket>();
  let closing: Server | undefined;
  // Once past IDLE_CONNECTIONS_GRACE_MS, a connection idle again is closed at once.
  let idleGraceOver = false;
  // Per request: a count, a set entry and one listener, with functions made once, not per request.
  let running = 0;
  let allEnded: (() => void) | undefined;
  const ended = () => {
    running -= 1;
    if (running === 0) allEnded?.();
  };
  function answered(this: ServerResponse) {
    answering.delete(this);
  }

  /** A response answered while closing ends its connection, rather than keeping it alive. */
  const closeAfterAnswer = (server: Server, res: ServerResponse) => {
    if (!res.headersSent) res.shouldKeepAlive = false;
    // Headers sent with keep-alive already: the connection is closed once it is idle again (at the
    // end of the idle grace, or at once past it).
    else res.once('close', () => idleGraceOver && server.closeIdleConnections());
  };

  const listener = (req: IncomingMessage, res: ServerResponse) => {
    if (closing) closeAfterAnswer(closing, res);
    answering.add(res);
    res.on('close', answered);
    running += 1;
    let handled: Promise<unknown>;
    try {
      handled = handle(req, res);
    } catch (error) {
      // Koa answers its own errors; one thrown before it could still ends the count.
      ended();
      throw error;
    }
    handled.then(ended, ended);
  };

  const handlersEnded = () =>
    running === 0 ? Promise.resolve() : new Promise<void>((resolve) => (allEnded = resolve));

  return {
    listener,
    watch(server) {
      server.on('connection', (socket: Socket) => {
        sockets.add(socket);
        socket.once('close', () => sockets.delete(socket));
      });
    },
    async drain(
      server,
      graceMs,
      logger,
      settleMs = HANDLERS_SETTLE_MS,
      idleGraceMs = IDLE_CONNECTIONS_GRACE_MS,
    ) {
      closing = server;
      for (const res of answering) closeAfterAnswer(server, res);
      await acceptQueuedConnections();
      // net's close, not http's: it stops listening and leaves the connections as they are (http's
      // would close the idle ones at once and stop enforcing the request timeouts).
      const connectionsClosed = new Promise<void>((resolve) =>
        net.Server.prototype.close.call(server, () => resolve()),
      );
      const closeIdle = () => {
        idleGraceOver = true;
        server.closeIdleConnections();
      };
      const idleTimer = setTimeout(closeIdle, idleGraceMs);
      try {
        await drainConnections(server, connectionsClosed, graceMs, logger, settleMs);
      } finally {
        clearTimeout(idleTimer);
        // http's close, once the listener is closed, clears the request timeouts' checking interval.
        server.close();
      }
    },
  };

  async function drainConnections(
    server: Server,
    connectionsClosed: Promise<void>,
    graceMs: number,
    logger: Logger,
    settleMs: number,
  ): Promise<void> {
    let pastDeadline = false;
    const drained = connectionsClosed.then(() => {
      if (running > 0 && !pastDeadline)
        logger.info({ requests: running }, 'waiting for the requests in flight whose clients have gone');
      return handlersEnded();
    });
    if ((await drainedWithin(drained, graceMs)) === 'drained') return;
    pastDeadline = true;
    logger.warn(
      { connections: sockets.size, requests: running, grace_seconds: graceMs / 1000 },
      'shutdown grace period over: closing the connections still open',
    );
    for (const socket of sockets) socket.destroy();
    await connectionsClosed;
    // The handlers of the connections just closed go on (Koa does not stop a middleware whose
    // client has gone): `drained` now waits for them alone, for a while.
    const cut = running;
    if (cut === 0) return;
    logger.info(
      { requests: cut, settle_seconds: settleMs / 1000 },
      'waiting for the requests still running to end before closing the services',
    );
    if ((await drainedWithin(drained, settleMs)) === 'drained') {
      logger.info({ requests: cut }, 'the requests still running at the end of the grace period have ended');
      return;
    }
    logger.warn(
      { requests: running, settle_seconds: settleMs / 1000 },
      'requests still running past the grace period: closing the services under them (what they still read or write fails)',
    );
  }
}

/**
 * Lets the event loop poll once more before the listener closes: Node then accepts every connection
 * the kernel completed before the stop began (it accepts until none is left), which closing the
 * listener would reset. Two turns of `setImmediate`: one called while the loop polls runs before the
 * next poll, the second after it. A connection completed during that poll, after Node's accepts,
 * is still reset: nothing in Node stops the kernel completing connections while the listener stays
 * open; docs/deployment.md has the operator take an instance out of nginx before stopping it.
 */
async function acceptQueuedConnections(): Promise<void> {
  for (let turn = 0; turn < 2; turn += 1) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** Whether `drained` settled within `ms`; the timer is cleared either way, holding no exit. */
async function drainedWithin(drained: Promise<void>, ms: number): Promise<'drained' | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), ms);
  });
  try {
    return await Promise.race([drained.then(() => 'drained' as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
