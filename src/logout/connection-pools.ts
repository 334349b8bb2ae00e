import type net from 'node:net';
import type { Dispatcher, Pool } from 'undici';
import { loadUndici } from '../util/undici.ts';
import type { Connector, NetworkFailure, PinnedTarget } from './http-delivery.ts';

/**
 * Keep-alive connections for back-channel deliveries: one undici pool per checked target (the
 * application's origin and the address the SSRF gate approved for it), each connection opened by
 * the pinned connector. A delivery runs the gate first and then borrows a connection of the pool
 * for an address the gate just returned, so a connection is only ever reused for a delivery whose
 * own gate check approved the very address it is connected to. A delivery ends on the response
 * status: a connection whose response had not arrived whole by then, or whose status is no HTTP
 * status, is closed, never reused (http-delivery.ts). Closes pools that stayed idle.
 *
 * A pool has no cap of its own: it opens a connection only when every one it has is busy, so it
 * holds at most as many as there were deliveries in flight to its target at once, which the worker
 * bounds (its concurrency in all, `LANES_PER_APPLICATION` for one application: worker.ts). A cap
 * below the worker's concurrency would queue deliveries in the pool behind those of whichever
 * application shares the target: applications that share a host by path (`/wiki`, `/grafana`)
 * share its pool, and one that hangs would hold up the other's logouts.
 */
export interface ConnectionPools {
  /**
   * The pool for this origin and pinned target (created on first use), with the deliveries'
   * interceptor composed onto it once, when it was created.
   */
  poolFor(origin: string, target: PinnedTarget): Promise<Dispatcher>;
  /**
   * The addresses a gate just checked, in the order to try them: one to which no connection could
   * be opened within the last `unreachableForgetMs` goes after the others (their order kept). A
   * host whose first address drops every SYN then costs one connect timeout, not one per delivery.
   */
  ordered<T extends { address: string }>(addresses: readonly T[], port: number): T[];
  /** Remembers that no connection to `target` could be opened, or forgets that when it answered. */
  noteConnect(target: PinnedTarget, opened: boolean): void;
  /** Closes every pool (the worker stops). */
  close(): Promise<void>;
}

export interface ConnectionPoolOptions {
  connector: Connector;
  connectTimeoutMs: number;
  requestTimeoutMs: number;
  /** A pool unused this long is closed (default 60 s). */
  idleCloseMs?: number;
  /** How long an address no connection could be opened to is tried last (default 60 s). */
  unreachableForgetMs?: number;
  /** Milliseconds, monotonic (tests). */
  clock?: () => number;
}

/** Why a pooled connection could not be opened: what the delivery reports. */
export class ConnectFailure extends Error {
  override name = 'ConnectFailure';
  readonly failure: NetworkFailure;
  readonly detail: string;
  constructor(failure: NetworkFailure, detail: string, options?: { cause?: unknown }) {
    super(detail, options);
    this.failure = failure;
    this.detail = detail;
  }
}

const DEFAULT_IDLE_CLOSE_MS = 60_000;
const DEFAULT_UNREACHABLE_FORGET_MS = 60_000;
/** Addresses remembered as unreachable at most; the oldest is forgotten first. */
const MAX_UNREACHABLE_REMEMBERED = 1024;

export function createConnectionPools(
  options: ConnectionPoolOptions,
  open: (connector: Connector, target: PinnedTarget, timeoutMs: number) => Promise<net.Socket>,
  intercept: Dispatcher.DispatcherComposeInterceptor,
): ConnectionPools {
  const clock = options.clock ?? (() => performance.now());
  const idleCloseMs = options.idleCloseMs ?? DEFAULT_IDLE_CLOSE_MS;
  const unreachableForgetMs = options.unreachableForgetMs ?? DEFAULT_UNREACHABLE_FORGET_MS;
  /** `pool` is closed; `composed` (the same pool behind `intercept`) is what deliveries send on. */
  const pools = new Map<string, { pool: Pool; composed: Dispatcher; usedAt: number }>();
  /** `address port` → when a connection to it last failed to open (insertion order: oldest first). */
  const unreachable = new Map<string, number>();
  let sweptAt = clock();

  const sweep = (now: number) => {
    if (now - sweptAt < idleCloseMs / 2) return;
    sweptAt = now;
    for (const [key, entry] of pools) {
      if (now - entry.usedAt < idleCloseMs) continue;
      pools.delete(key);
      entry.pool.close().catch(() => undefined);
    }
  };

  return {
    async poolFor(origin, target) {
      const { Pool } = await loadUndici();
      const now = clock();
      sweep(now);
      const key = `${origin} ${target.address} ${target.port} ${target.servername ?? ''}`;
      let entry = pools.get(key);
      if (!entry) {
        const pool = new Pool(origin, {
          // As many as the deliveries in flight to this target (see above).
          connections: null,
          pipelining: 1,
          headersTimeout: options.requestTimeoutMs,
          bodyTimeout: options.requestTimeoutMs,
          connect: (_connectOptions, callback) => {
            open(options.connector, target, options.connectTimeoutMs).then(
              (socket) => callback(null, socket),
              (error: unknown) =>
                callback(error instanceof Error ? error : new Error('connect failed'), null),
            );
          },
        });
        entry = { pool, composed: pool.compose(intercept), usedAt: now };
        pools.set(key, entry);
      }
      entry.usedAt = now;
      return entry.composed;
    },
    ordered(addresses, port) {
      if (unreachable.size === 0) return [...addresses];
      const now = clock();
      const failedLately = (address: string) => {
        const key = `${address} ${port}`;
        const at = unreachable.get(key);
        if (at === undefined) return false;
        if (now - at < unreachableForgetMs) return true;
        unreachable.delete(key);
        return false;
      };
      const reachable = addresses.filter((candidate) => !failedLately(candidate.address));
      return reachable.length === addresses.length
        ? reachable
        : [...reachable, ...addresses.filter((candidate) => !reachable.includes(candidate))];
    },
    noteConnect(target, opened) {
      const key = `${target.address} ${target.port}`;
      unreachable.delete(key);
      if (opened) return;
      unreachable.set(key, clock());
      if (unreachable.size > MAX_UNREACHABLE_REMEMBERED) {
        const oldest = unreachable.keys().next();
        if (!oldest.done) unreachable.delete(oldest.value);
      }
    },
    async close() {
      const open = [...pools.values()];
      pools.clear();
      await Promise.all(open.map((entry) => entry.pool.destroy().catch(() => undefined)));
    },
  };
}
