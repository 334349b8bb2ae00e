import { once } from 'node:events';
import net from 'node:net';

/** A loopback port where every connection is refused (ECONNREFUSED) until `close()`. */
export interface RefusedPort {
  port: number;
  close(): void;
}

/**
 * A port on 127.0.0.1 that nothing listens on and nothing can start listening on while the test uses
 * it: a server that is down. Not a port bound and let go, which another test file running at the same
 * time may listen on before the test connects (a listen on port 0 is given one from the same range):
 * the port is the local end of a connection this process holds open, so a bind to it fails
 * (EADDRINUSE), and Linux answers a connection to a port with no listener with a reset.
 */
export async function refusedPort(): Promise<RefusedPort> {
  const listener = net.createServer();
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(0, '127.0.0.1', resolve);
  });
  const accepted = once(listener, 'connection') as Promise<[net.Socket]>;
  const holder = net.connect((listener.address() as net.AddressInfo).port, '127.0.0.1');
  holder.on('error', () => holder.destroy());
  await once(holder, 'connect');
  const [peer] = await accepted;
  peer.on('error', () => peer.destroy());
  // Stops listening on the listener's own port; the connection it accepted stays open.
  listener.close();
  return {
    port: holder.localPort!,
    close() {
      holder.destroy();
      peer.destroy();
    },
  };
}

/**
 * Whether a new connection to the loopback `port` is refused (ECONNREFUSED) rather than accepted: a
 * server that has stopped listening there.
 */
export function refusesConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'));
  });
}
