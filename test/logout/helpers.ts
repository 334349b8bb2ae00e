import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import type { Connector, PinnedTarget } from '../../src/logout/http-delivery.ts';
import type { ResolvedAddress, Resolver } from '../../src/logout/ssrf/resolver.ts';

/**
 * Test plumbing for back-channel logout. Nothing here ever reaches real DNS or any address outside
 * 127.0.0.0/8 and ::1: names resolve only through `tableResolver`, and connections go only through
 * `guardedConnector`, which maps addresses to loopback ports and refuses everything else.
 */

/** A public unicast address used in resolver answers; it is judged, never contacted. */
export const PUBLIC_V4 = '93.184.215.14';
export const PUBLIC_V6 = '2606:2800:21f:cb07:6820:80da:af6b:8b2c';

export type Answer =
  | ResolvedAddress[]
  /** Each lookup of the name takes the next entry (the last one repeats). */
  | { sequence: ResolvedAddress[][] }
  | { throws: string }
  | 'hang';

export const v4 = (address: string): ResolvedAddress => ({ address, family: 4 });
export const v6 = (address: string): ResolvedAddress => ({ address, family: 6 });

/** A resolver answering only from `table`; an unknown name fails like NXDOMAIN. Counts lookups. */
export function tableResolver(table: Record<string, Answer>): Resolver & { lookups: string[] } {
  const lookups: string[] = [];
  const calls = new Map<string, number>();
  const resolver = async (hostname: string, options: { signal: AbortSignal }) => {
    lookups.push(hostname);
    const answer = table[hostname];
    if (answer === undefined)
      throw Object.assign(new Error(`queryA ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
    if (answer === 'hang') {
      await new Promise((_resolve, reject) => {
        options.signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
      });
      throw new Error('unreachable');
    }
    if (Array.isArray(answer)) return answer;
    if ('throws' in answer)
      throw Object.assign(new Error(`lookup failed: ${answer.throws}`), { code: answer.throws });
    const index = calls.get(hostname) ?? 0;
    calls.set(hostname, index + 1);
    return answer.sequence[Math.min(index, answer.sequence.length - 1)]!;
  };
  return Object.assign(resolver, { lookups });
}

function isLoopback(address: string): boolean {
  return net.isIPv4(address) ? address.startsWith('127.') : address === '::1';
}

/**
 * A connector that maps each expected address to a port on 127.0.0.1 and refuses any other
 * address: the refusal is recorded in `refused` (tests assert it stays empty) and the connect
 * fails, so no packet leaves the machine.
 */
export function guardedConnector(mapping: Record<string, number> = {}): {
  connector: Connector;
  attempts: PinnedTarget[];
  refused: PinnedTarget[];
} {
  const attempts: PinnedTarget[] = [];
  const refused: PinnedTarget[] = [];
  const connector: Connector = (target, signal) => {
    attempts.push(target);
    const port = mapping[target.address];
    if (port === undefined) {
      refused.push(target);
      return Promise.reject(new Error(`test connector: refused to connect to ${target.address}`));
    }
    const host = '127.0.0.1';
    assert.ok(isLoopback(host));
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port });
      signal.addEventListener('abort', () => socket.destroy(), { once: true });
      socket.once('connect', () => resolve(socket));
      socket.once('error', reject);
    });
  };
  return { connector, attempts, refused };
}

/** Refuses to hand any address but loopback to `inner` (for tests that use the real connector). */
export function loopbackOnly(inner: Connector): { connector: Connector; refused: PinnedTarget[] } {
  const refused: PinnedTarget[] = [];
  return {
    refused,
    connector: (target, signal) => {
      if (!isLoopback(target.address)) {
        refused.push(target);
        return Promise.reject(new Error(`test connector: refused to connect to ${target.address}`));
      }
      return inner(target, signal);
    },
  };
}

export interface ReceivedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface Receiver {
  port: number;
  url: (path?: string) => string;
  requests: ReceivedRequest[];
  close: () => Promise<void>;
}

/** A relying-party receiver on 127.0.0.1 (ephemeral port) that records what it got. */
export async function startReceiver(
  respond: (request: http.IncomingMessage, response: http.ServerResponse, body: string) => void,
): Promise<Receiver> {
  const requests: ReceivedRequest[] = [];
  const sockets = new Set<net.Socket>();
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      requests.push({ method: request.method ?? '', url: request.url ?? '', headers: request.headers, body });
      respond(request, response, body);
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    url: (path = '/bcl') => `http://127.0.0.1:${port}${path}`,
    requests,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
