import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

const DESCRIPTION = 'This server is not a proxy: it takes no CONNECT requests.';

/**
 * A `CONNECT` request (a tunnel through a proxy, RFC 9110 §9.3.6) is answered with a 400 and the
 * connection closed, as Node answers a method it does not know: with no 'connect' listener Node
 * would close the connection without a word. The same JSON refusal as the main port's others
 * (`refusal.ts`). The socket is no longer the HTTP server's (no request deadline holds it): one whose
 * client neither reads nor closes is cut after `closeAfterMs`.
 */
export function answerConnectRequests(server: Server, closeAfterMs: number): void {
  const body = JSON.stringify({ error: 'invalid_request', error_description: DESCRIPTION });
  const answer = [
    'HTTP/1.1 400 Bad Request',
    'Content-Type: application/json; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Cache-Control: no-store',
    'X-Content-Type-Options: nosniff',
    'Connection: close',
    '',
    body,
  ].join('\r\n');
  server.on('connect', (_request, connection: Duplex) => {
    // The connection's own socket (typed as any Duplex for servers that wrap theirs).
    const socket = connection as Socket;
    // Node no longer handles this socket's errors (a client gone before the answer): ignored here.
    socket.on('error', () => socket.destroy());
    socket.setTimeout(closeAfterMs, () => socket.destroy());
    socket.end(answer);
  });
}
