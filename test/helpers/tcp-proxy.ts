import net from 'node:net';

/**
 * A loopback TCP relay in front of a database server, which a test controls to play the failures of
 * a database connection path while aa-oidc runs:
 * - `cut()`: the database becomes unreachable (every connection dropped, new ones refused);
 * - `silence()`: connections are dropped, and new ones are accepted but never answered (a hung
 *   server, a dead route);
 * - `hold()`: answers on the open connections wait until `release()` (a slow database);
 * - `freeze()`: the route dies without a word: the open connections pass nothing either way and the
 *   relay never closes them, not even when the client closes its side (its goodbye is taken in, as a
 *   kernel takes it, and never answered), and new ones are accepted but never answered;
 * - `restore()`: it is back.
 */
export interface TcpProxy {
  port: number;
  /** `url` with its host and port replaced by the proxy's. */
  wrap(url: string): string;
  cut(): void;
  silence(): void;
  /** Connections accepted and left unanswered since the last `silence()`. */
  readonly silencedConnections: number;
  restore(): void;
  hold(): void;
  /** Answers waiting since `hold()` (more than 0 once a query asked meanwhile was answered upstream). */
  readonly heldAnswers: number;
  release(): void;
  freeze(): void;
  /**
   * Connections frozen by `freeze()` that the client has not been seen to close. A client that only
   * half-closed its socket looks the same from here as one that closed it: `knock()` tells them apart.
   */
  readonly frozenConnections: number;
  /**
   * Writes a byte into each frozen connection, then another once the first is sent: the kernel of a
   * client that closed its socket answers the first with a reset, which fails the second (the relay no
   * longer reads from a client that ended its side, so only a write sees it), and the connection
   * leaves `frozenConnections`. Knock once: a few bytes more would make a message that a client
   * still holding its socket open fails on, closing it.
   */
  knock(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>();
  let mode: 'open' | 'cut' | 'silent' = 'open';
  let frozen = false;
  /** Each relayed connection's way to stop passing anything on, for `freeze()`. */
  const relays = new Map<net.Socket, () => void>();
  const frozenClients = new Set<net.Socket>();
  let holding = false;
  let silencedConnections = 0;
  const held: Array<() => void> = [];
  const server = net.createServer((client) => {
    if (mode === 'cut') {
      client.destroy();
      return;
    }
    sockets.add(client);
    client.on('error', () => client.destroy()).on('close', () => sockets.delete(client));
    if (mode === 'silent' || frozen) {
      silencedConnections += 1;
      client.resume();
      return;
    }
    const upstream = net.connect(targetPort, targetHost);
    sockets.add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
      relays.delete(client);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    const answer = (chunk: Buffer) => {
      if (holding) held.push(() => client.write(chunk));
      else client.write(chunk);
    };
    upstream.on('data', answer);
    relays.set(client, () => {
      relays.delete(client);
      client.unpipe(upstream);
      upstream
        .off('data', answer)
        .off('close', drop)
        .on('error', () => undefined);
      // What either side sends is read and dropped; an end of input is neither passed on nor
      // answered with one. Only a reset (or `close()`) ends the client's side.
      for (const socket of [client, upstream]) {
        socket.allowHalfOpen = true;
        socket.resume();
      }
      frozenClients.add(client);
      client.on('close', () => frozenClients.delete(client));
    });
  });
  const dropAll = () => {
    for (const socket of sockets) socket.destroy();
    sockets.clear();
    relays.clear();
    frozenClients.clear();
    held.length = 0;
  };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    wrap(url) {
      const parsed = new URL(url);
      parsed.hostname = '127.0.0.1';
      parsed.port = String(port);
      return parsed.toString();
    },
    cut() {
      mode = 'cut';
      dropAll();
    },
    silence() {
      mode = 'silent';
      silencedConnections = 0;
      dropAll();
    },
    get silencedConnections() {
      return silencedConnections;
    },
    restore() {
      mode = 'open';
      holding = false;
      frozen = false;
    },
    freeze() {
      frozen = true;
      for (const stop of [...relays.values()]) stop();
    },
    get frozenConnections() {
      return frozenClients.size;
    },
    knock() {
      for (const client of frozenClients) {
        client.write(Buffer.of(0), () => client.write(Buffer.of(0), (error) => error && client.destroy()));
      }
    },
    hold() {
      holding = true;
    },
    get heldAnswers() {
      return held.length;
    },
    release() {
      holding = false;
      for (const write of held.splice(0)) write();
    },
    close() {
      mode = 'cut';
      dropAll();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
