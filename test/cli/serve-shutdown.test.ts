import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { cli, startCliProcess } from '../helpers/cli.ts';
import { testEnv } from '../helpers/config.ts';
import { createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';
import { eventually } from '../helpers/eventually.ts';
import { heldConnection } from '../http/held-connections.ts';

/** Everything a raw connection received, as text, and whether the server has closed it. */
function recorded(socket: net.Socket): { text(): string; closed(): boolean } {
  let text = '';
  let closed = false;
  socket.setEncoding('latin1').on('data', (chunk: string) => (text += chunk));
  socket.on('error', () => undefined);
  socket.on('close', () => (closed = true));
  return { text: () => text, closed: () => closed };
}

/** Whether a new connection to `port` is refused (rather than accepted). */
function refusesConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'));
  });
}

/**
 * SIGTERM, as `systemctl stop` sends it (deploy/systemd): the server stops accepting connections,
 * closes the idle ones, answers the requests in flight whole, then exits 0.
 */
describe(`aa-oidc serve stopped by SIGTERM (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  before(async () => {
    database = await createTestDatabase();
  });
  after(async () => database.drop());

  it('answers a request still arriving at SIGTERM in full, refusing new connections meanwhile, then exits 0', async () => {
    const serve = startCliProcess(
      ['serve'],
      testEnv(database, {
        AA_OIDC_PORT: '0',
        AA_OIDC_HOST: '127.0.0.1',
        AA_OIDC_METRICS_ENABLED: 'false',
        AA_OIDC_LOG_LEVEL: 'info',
      }),
    );
    const sockets: net.Socket[] = [];
    try {
      const port = Number((await serve.waitFor(/ server on http:\/\/127\.0\.0\.1:(\d+) /))[1]);
      const created = await cli(
        ['app', 'create', '--name', 'Machine', '--grant-type', 'client_credentials', '--format', 'json'],
        testEnv(database),
      );
      assert.equal(created.code, 0, created.stderr);
      const machine = JSON.parse(created.stdout) as { client_id: string; client_secret: string };
      // A keep-alive connection with nothing in flight: closed at SIGTERM.
      const idle = await heldConnection(`http://127.0.0.1:${port}`);
      sockets.push(idle);
      const idleClosed = once(idle, 'close');

      // A token request whose body is still on its way: `Expect: 100-continue` has the server say
      // that it holds the request (the 100) before the client sends the body, half of it here. Its
      // answer needs the database (the token is stored), closed only after the request. The client
      // asks for `Connection: close`, as nginx does (deploy/nginx: no upstream keepalive).
      const body = 'grant_type=client_credentials';
      const credentials = Buffer.from(`${machine.client_id}:${machine.client_secret}`).toString('base64');
      const inFlight = net.connect(port, '127.0.0.1');
      sockets.push(inFlight);
      const received = recorded(inFlight);
      await once(inFlight, 'connect');
      inFlight.write(
        `POST /o/token/ HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Basic ${credentials}\r\n` +
          'Content-Type: application/x-www-form-urlencoded\r\n' +
          `Content-Length: ${body.length}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`,
      );
      await eventually(
        () => received.text() === 'HTTP/1.1 100 Continue\r\n\r\n',
        'the server held the request',
      );
      inFlight.write(body.slice(0, body.length / 2));

      serve.process.kill('SIGTERM');
      await serve.waitFor(/"shutting down"/);
      await idleClosed;
      assert.equal(await refusesConnections(port), true, 'a new connection is refused');
      assert.equal(serve.process.exitCode, null, 'the server still runs for the request in flight');
      assert.equal(received.closed(), false, 'the connection of the request in flight is open');

      inFlight.write(body.slice(body.length / 2));
      await eventually(received.closed, 'the server answered and closed the connection');
      const answer = received.text().slice('HTTP/1.1 100 Continue\r\n\r\n'.length);
      assert.match(answer, /^HTTP\/1\.1 200 OK\r\n/, answer.split('\r\n')[0]);
      assert.match(answer, /\r\ncontent-type: application\/json; charset=utf-8\r\n/i);
      const token = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as Record<string, unknown>;
      assert.equal(token.token_type, 'Bearer');
      assert.equal(typeof token.access_token, 'string');

      assert.equal(await serve.exited, 0, serve.stderr());
    } finally {
      for (const socket of sockets) socket.destroy();
      await serve.stop('SIGTERM');
    }
  });
});
