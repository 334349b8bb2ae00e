import type pg from 'pg';
import { assertNever } from '../util/assert-never.ts';
import { within } from '../util/within.ts';

/** A pooled connection's socket, as much of node:net's Socket as closing it needs. */
export interface PooledSocket {
  readonly destroyed: boolean;
  destroy(): void;
  once(event: 'close', listener: () => void): unknown;
}

/** The socket under a node-postgres client, which pg's types do not show; undefined before it has one. */
export function pgClientSocket(
  client: pg.Client,
): (PooledSocket & { cork?: () => void; uncork?: () => void }) | undefined {
  return (client as unknown as { connection?: { stream?: PooledSocket } }).connection?.stream;
}

/**
 * Why closing a pool closed connections without the server's goodbye, and how many. `goodbye`: the
 * work on them had ended, the goodbye went out, and the server's close did not come within the
 * deadline (a dead route, or a server that no longer answers). `dead_route`: work was still in flight,
 * and the goodbye on the idle connections (or, none being idle, a probe's new connection) went
 * unanswered within the deadline: the route is dead, and that work could not have ended either. `work`: work was still in flight past the longest it may take
 * (its statement timeout), and was cut.
 */
export type AbandonedConnections =
  | { kind: 'goodbye'; connections: number; waitedMs: number }
  | { kind: 'dead_route'; connections: number; inUse: number; waitedMs: number }
  | { kind: 'work'; connections: number; inUse: number; waitedMs: number };

/** How long closing a pool waits; see `PoolSockets.closeWithin`. */
export interface CloseDeadlines {
  /** For the server's close after each goodbye (a server on a live route answers at once). */
  goodbyeMs: number;
  /** For the work in flight (statements, transactions) to end: at least the longest a statement may take. */
  workMs: number;
  /**
   * Opens a connection of its own to the server and closes it again, resolving whether the server
   * answered within `goodbyeMs`. Asked when work is in flight and no connection is idle, whose
   * goodbye would show the route dead: without it, such a close waits the whole `workMs` over a
   * dead route.
   */
  probe?: () => Promise<boolean>;
}

/**
 * The sockets of a database pool's connections, so that closing the pool has a deadline. A pool's
 * end says goodbye on each connection (PostgreSQL's Terminate, MariaDB's COM_QUIT) and leaves the
 * socket for the server to close: over a route that died without a reset (a relay or firewall that
 * passes nothing any more and closes nothing), that close never comes, or comes at TCP's retry
 * timeout (about 15 minutes), and each socket still open keeps the process alive after shutdown.
 * On a connection with work in flight (a statement, a transaction), the goodbye waits for that work:
 * the server reads it only once the statement has ended. So the deadline for the goodbye starts once
 * no work is in flight any more; the work itself is bounded by its statement timeout, and cut only
 * past that, or when the route is shown dead (the idle connections' goodbyes go unanswered).
 */
export interface PoolSockets {
  /** Follows `socket` until it closes. */
  track(socket: PooledSocket | undefined): void;
  /** A connection was handed out for work (a checkout, or reads in flight on a connection of its own). */
  lent(): void;
  /** A connection lent is back (its work ended, successfully or not). */
  returned(): void;
  /**
   * Runs `end` (the pool's), waits for the work in flight to end (at most `workMs`; no longer than
   * `goodbyeMs` when none of the idle connections' goodbyes is answered in that time, or, with no
   * connection idle, when the server does not answer the `probe` in that time), then for `end`
   * and every socket followed to close, at most `goodbyeMs`; then destroys the sockets still open.
   * Resolves with what it destroyed and why (undefined when all closed in time); rejects with `end`'s
   * error when it failed in time.
   */
  closeWithin(end: () => Promise<void>, deadlines: CloseDeadlines): Promise<AbandonedConnections | undefined>;
}

export function poolSockets(): PoolSockets {
  const open = new Set<PooledSocket>();
  // Every socket close seen: one since the close began shows that the route still carries answers.
  let closes = 0;
  let lentOut = 0;
  // Everyone waiting for the sockets to close, and for the lent connections to come back.
  const closedWaiters = new Set<() => void>();
  const returnedWaiters = new Set<() => void>();
  const wake = (waiters: Set<() => void>) => {
    for (const resolve of waiters) resolve();
    waiters.clear();
  };
  const waitFor = (done: () => boolean, waiters: Set<() => void>) =>
    new Promise<void>((resolve) => {
      if (done()) resolve();
      else waiters.add(resolve);
    });
  const allClosed = () => waitFor(() => open.size === 0, closedWaiters);
  const allReturned = () => waitFor(() => lentOut === 0, returnedWaiters);
  return {
    track(socket) {
      if (!socket || socket.destroyed || open.has(socket)) return;
      open.add(socket);
      socket.once('close', () => {
        closes += 1;
        open.delete(socket);
        if (open.size === 0) wake(closedWaiters);
      });
    },
    lent() {
      lentOut += 1;
    },
    returned() {
      lentOut = Math.max(0, lentOut - 1);
      if (lentOut === 0) wake(returnedWaiters);
    },
    async closeWithin(end, { goodbyeMs, workMs, probe }) {
      // The connections with nothing in flight: their goodbye goes out as the pool ends.
      const idle = Math.max(0, open.size - lentOut);
      const closesBefore = closes;
      // With every connection at work, none says goodbye: a connection of the probe's own asks
      // whether the server still answers, alongside the wait.
      const answered =
        lentOut > 0 && idle === 0 && probe
          ? within(
              probe().catch(() => false),
              goodbyeMs,
              false,
            )
          : undefined;
      const ending = end();
      // Past a deadline the pool's end no longer matters: its error, if any, is the dead route's.
      ending.catch(() => undefined);
      let gaveUp: 'dead_route' | 'work' | undefined;
      let waitedMs = goodbyeMs;
      if (lentOut > 0) {
        const returned = allReturned().then(() => true);
        if (!(await within(returned, Math.min(goodbyeMs, workMs), false))) {
          const routeDead = idle > 0 ? closes === closesBefore : answered !== undefined && !(await answered);
          if (routeDead) gaveUp = 'dead_route';
          else if (!(await within(returned, Math.max(0, workMs - goodbyeMs), false))) {
            gaveUp = 'work';
            waitedMs = workMs;
          }
        }
      }
      if (gaveUp === undefined) {
        const settled = ending.then(allClosed, allClosed);
        if (
          await within(
            settled.then(() => true),
            goodbyeMs,
            false,
          )
        ) {
          await ending;
          return undefined;
        }
      }
      const connections = open.size;
      const inUse = Math.min(lentOut, connections);
      for (const socket of open) socket.destroy();
      open.clear();
      wake(closedWaiters);
      if (connections === 0) return undefined;
      return gaveUp === undefined
        ? { kind: 'goodbye', connections, waitedMs }
        : { kind: gaveUp, connections, inUse, waitedMs };
    },
  };
}

/**
 * The warning for connections closed without the server's goodbye, `subject` naming them
 * ("database connection(s)"): what was waited for, how long, and what it says about the route.
 */
export function describeAbandonedConnections(subject: string, abandoned: AbandonedConnections): string {
  const seconds = abandoned.waitedMs / 1000;
  switch (abandoned.kind) {
    case 'goodbye':
      return `closed ${abandoned.connections} ${subject} without the server's goodbye: it did not come within ${seconds} s, no work being in flight on them any more (a dead route to the server, or a server that no longer answers?)`;
    case 'dead_route':
      return `closed ${abandoned.connections} ${subject} without the server's goodbye, ${abandoned.inUse} of them with work in flight that was cut: ${abandoned.inUse < abandoned.connections ? 'the goodbye on the idle ones' : 'none being idle, a new connection to the server'} went unanswered for ${seconds} s (a dead route to the server, or a server that no longer answers?)`;
    case 'work':
      return `closed ${abandoned.connections} ${subject} without the server's goodbye, ${abandoned.inUse} of them with work still in flight after ${seconds} s, longer than a statement may take: that work was cut`;
    default:
      return assertNever(abandoned);
  }
}

/** The fields of that warning's log line. */
export function abandonedFields(abandoned: AbandonedConnections): Record<string, number | string> {
  return {
    connections: abandoned.connections,
    ...(abandoned.kind !== 'goodbye' && { in_use: abandoned.inUse }),
    waited_for: abandoned.kind === 'work' ? 'work' : 'goodbye',
    wait_seconds: abandoned.waitedMs / 1000,
  };
}
