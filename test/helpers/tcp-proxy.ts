import net from 'node:net';

/**
 * A loopback TCP relay in front of a database server, which a test controls to play the failures of
 * a database connection path while aa-oidc runs:
 * - `cut()`: the database becomes unreachable (every connection dropped, new ones refused);
 * - `silence()`: connections are dropped, and new ones are accepted but never answered (a hung
 *   server, a dead route);
 * - `hold()`: answers on the open connections wait until `release()` (a slow database);
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
  close(): Promise<void>;
}

export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>();
  let mode: 'open' | 'cut' | 'silent' = 'open';
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
    if (mode === 'silent') {
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
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.on('data', (chunk: Buffer) => {
      if (holding) held.push(() => client.write(chunk));
      else client.write(chunk);
    });
  });
  const dropAll = () => {
    for (const socket of sockets) socket.destroy();
    sockets.clear();
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
