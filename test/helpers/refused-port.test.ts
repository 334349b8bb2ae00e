import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { describe, it } from 'node:test';
import { refusedPort } from './refused-port.ts';

/** The error code of a connection to 127.0.0.1:`port`, or 'connected'. */
async function connectOutcome(port: number): Promise<string> {
  const socket = net.connect(port, '127.0.0.1');
  try {
    await once(socket, 'connect');
    return 'connected';
  } catch (error) {
    return (error as NodeJS.ErrnoException).code ?? String(error);
  } finally {
    socket.destroy();
  }
}

/** The error code of a listen on `port` of `host`, or 'listening'. */
async function listenOutcome(port: number, host?: string): Promise<string> {
  const server = net.createServer();
  try {
    server.listen(port, host);
    await once(server, 'listening');
    return 'listening';
  } catch (error) {
    return (error as NodeJS.ErrnoException).code ?? String(error);
  } finally {
    server.close();
  }
}

describe('refusedPort: a port of a server that is down, which no other test can take meanwhile', () => {
  it('refuses connections, and no one can listen on it until it is closed', async () => {
    const refused = await refusedPort();
    try {
      assert.equal(await connectOutcome(refused.port), 'ECONNREFUSED');
      assert.equal(await listenOutcome(refused.port, '127.0.0.1'), 'EADDRINUSE');
      assert.equal(await listenOutcome(refused.port), 'EADDRINUSE', 'every address');
      assert.equal(await connectOutcome(refused.port), 'ECONNREFUSED', 'still refused');
    } finally {
      refused.close();
    }
  });
});
