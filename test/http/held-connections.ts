/** Raw connections for the tests of what a listener holds for its clients (server-limits, metrics). */
import net from 'node:net';

/** What came back on a raw connection before the server closed it ('' for nothing). */
export interface Closed {
  answer: string;
  closedByServer: boolean;
}

/**
 * Opens a connection, sends `sent` and nothing more, and resolves once the server closes it; a
 * connection still open after `giveUpMs` is closed here and reported as not closed by the server.
 */
export function sendAndWaitForClose(origin: string, sent: string, giveUpMs = 20_000): Promise<Closed> {
  const { hostname, port } = new URL(origin);
  return new Promise((resolve) => {
    const socket = net.connect(Number(port), hostname);
    let answer = '';
    let gaveUp = false;
    const giveUp = setTimeout(() => {
      gaveUp = true;
      socket.destroy();
    }, giveUpMs);
    socket.on('connect', () => socket.write(sent));
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(giveUp);
      resolve({ answer, closedByServer: !gaveUp });
    });
  });
}

/** A keep-alive connection that has had one answer from the server (to GET `path`), and stays open. */
export async function heldConnection(origin: string, path = '/healthz'): Promise<net.Socket> {
  const { hostname, port } = new URL(origin);
  const socket = net.connect(Number(port), hostname);
  socket.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`));
    socket.once('data', () => resolve());
    socket.once('close', () => reject(new Error('the server closed a connection within the limit')));
  });
  return socket;
}
