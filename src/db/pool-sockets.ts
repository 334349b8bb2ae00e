import type pg from 'pg';
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
 * The sockets of a database pool's connections, so that closing the pool has a deadline. A pool's
 * end says goodbye on each connection (PostgreSQL's Terminate, MariaDB's COM_QUIT) and leaves the
 * socket for the server to close: over a route that died without a reset (a relay or firewall that
 * passes nothing any more and closes nothing), that close never comes, or comes at TCP's retry
 * timeout (about 15 minutes), and each socket still open keeps the process alive after shutdown.
 */
export interface PoolSockets {
  /** Follows `socket` until it closes. */
  track(socket: PooledSocket | undefined): void;
  /**
   * Runs `end` (the pool's) and waits for it and for every socket followed to close, at most
   * `deadlineMs`; then destroys the sockets still open. Resolves with how many it destroyed (0 when
   * all closed in time); rejects with `end`'s error when it failed in time.
   */
  closeWithin(end: () => Promise<void>, deadlineMs: number): Promise<number>;
}

export function poolSockets(): PoolSockets {
  const open = new Set<PooledSocket>();
  let lastClosed: (() => void) | undefined;
  const allClosed = () =>
    new Promise<void>((resolve) => {
      if (open.size === 0) resolve();
      else lastClosed = resolve;
    });
  return {
    track(socket) {
      if (!socket || socket.destroyed || open.has(socket)) return;
      open.add(socket);
      socket.once('close', () => {
        open.delete(socket);
        if (open.size === 0) lastClosed?.();
      });
    },
    async closeWithin(end, deadlineMs) {
      const ending = end();
      const settled = ending.then(allClosed, allClosed);
      if (
        await within(
          settled.then(() => true),
          deadlineMs,
          false,
        )
      ) {
        await ending;
        return 0;
      }
      // Past the deadline the pool's end no longer matters: its error, if any, is the dead route's.
      ending.catch(() => undefined);
      const abandoned = open.size;
      for (const socket of open) socket.destroy();
      open.clear();
      return abandoned;
    },
  };
}
