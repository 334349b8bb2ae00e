import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { cli, startCliProcess } from '../helpers/cli.ts';
import { testEnv } from '../helpers/config.ts';
import { createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';
import { eventually } from '../helpers/eventually.ts';
import { refusesConnections } from '../helpers/refused-port.ts';
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

/** A request to the token endpoint, its head written and held by the server (its 100 Continue). */
async function heldTokenRequest(
  port: number,
  credentials: string,
  body: string,
  connection: 'close' | 'keep-alive',
): Promise<{ socket: net.Socket; received: ReturnType<typeof recorded> }> {
  const socket = net.connect(port, '127.0.0.1');
  const received = recorded(socket);
  await once(socket, 'connect');
  socket.write(
    `POST /o/token/ HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Basic ${credentials}\r\n` +
      'Content-Type: application/x-www-form-urlencoded\r\n' +
      `Content-Length: ${body.length}\r\nExpect: 100-continue\r\nConnection: ${connection}\r\n\r\n`,
  );
  await eventually(() => received.text() === CONTINUE, 'the server held the request');
  return { socket, received };
}

const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n';

/** The token answer on a held request's connection, checked to be a 200 with a bearer token. */
function assertTokenAnswer(received: ReturnType<typeof recorded>): string {
  const answer = received.text().slice(CONTINUE.length);
  assert.match(answer, /^HTTP\/1\.1 200 OK\r\n/, answer.split('\r\n')[0]);
  assert.match(answer, /\r\ncontent-type: application\/json; charset=utf-8\r\n/i);
  const token = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as Record<string, unknown>;
  assert.equal(token.token_type, 'Bearer');
  assert.equal(typeof token.access_token, 'string');
  return answer;
}

/**
 * SIGTERM, as `systemctl stop` sends it (deploy/systemd): the server stops accepting connections,
 * closes the idle ones (after IDLE_CONNECTIONS_GRACE_MS), answers the requests in flight whole (their connections closed after the
 * answer), then exits 0; within http.shutdownGraceSeconds, past which it closes what is still open.
 */
describe(`aa-oidc serve stopped by SIGTERM (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  before(async () => {
    database = await createTestDatabase();
  });
  after(async () => database.drop());

  /** `aa-oidc serve` with `env`, on a free port; its port, and a client_credentials application. */
  async function startServe(env: Record<string, string> = {}) {
    const serve = startCliProcess(
      ['serve'],
      testEnv(database, {
        AA_OIDC_PORT: '0',
        AA_OIDC_HOST: '127.0.0.1',
        AA_OIDC_METRICS_ENABLED: 'false',
        AA_OIDC_LOG_LEVEL: 'info',
        ...env,
      }),
    );
    try {
      const port = Number((await serve.waitFor(/ server on http:\/\/127\.0\.0\.1:(\d+) /))[1]);
      const created = await cli(
        ['app', 'create', '--name', 'Machine', '--grant-type', 'client_credentials', '--format', 'json'],
        testEnv(database),
      );
      assert.equal(created.code, 0, created.stderr);
      const machine = JSON.parse(created.stdout) as { client_id: string; client_secret: string };
      const credentials = Buffer.from(`${machine.client_id}:${machine.client_secret}`).toString('base64');
      return { serve, port, credentials };
    } catch (error) {
      await serve.stop('SIGTERM');
      throw error;
    }
  }

  it('answers the requests still arriving at SIGTERM in full with Connection: close, refusing new connections meanwhile, then exits 0', async () => {
    const { serve, port, credentials } = await startServe();
    const sockets: net.Socket[] = [];
    try {
      // A keep-alive connection with nothing in flight: closed at SIGTERM (once idle for 1 s more).
      const idle = await heldConnection(`http://127.0.0.1:${port}`);
      sockets.push(idle);
      const idleClosed = once(idle, 'close');

      // Token requests whose body is still on its way: `Expect: 100-continue` has the server say
      // that it holds the request (the 100) before the client sends the body, half of it here. Their
      // answers need the database (the token is stored), closed only after the requests. One asks
      // for `Connection: close`, as nginx does (deploy/nginx: no upstream keepalive); the other
      // would keep its connection alive, as a client reaching the port itself may.
      const body = 'grant_type=client_credentials';
      const closing = await heldTokenRequest(port, credentials, body, 'close');
      const keptAlive = await heldTokenRequest(port, credentials, body, 'keep-alive');
      sockets.push(closing.socket, keptAlive.socket);
      for (const { socket } of [closing, keptAlive]) socket.write(body.slice(0, body.length / 2));

      serve.process.kill('SIGTERM');
      await serve.waitFor(/"shutting down"/);
      await idleClosed;
      assert.equal(await refusesConnections(port), true, 'a new connection is refused');
      assert.equal(serve.process.exitCode, null, 'the server still runs for the requests in flight');
      assert.equal(closing.received.closed(), false, 'the connection of a request in flight is open');
      assert.equal(keptAlive.received.closed(), false, 'the connection of a request in flight is open');

      closing.socket.write(body.slice(body.length / 2));
      await eventually(closing.received.closed, 'the server answered and closed the connection');
      assertTokenAnswer(closing.received);

      // The keep-alive request is answered as the last on its connection, which the server closes.
      keptAlive.socket.write(body.slice(body.length / 2));
      await eventually(() => keptAlive.received.text().length > CONTINUE.length, 'the server answered');
      await eventually(keptAlive.received.closed, 'the server closed the kept-alive connection');
      const answer = assertTokenAnswer(keptAlive.received);
      assert.match(answer, /\r\nconnection: close\r\n/i, answer.slice(0, answer.indexOf('\r\n\r\n')));

      assert.equal(await serve.exited, 0, serve.stderr());
    } finally {
      for (const socket of sockets) socket.destroy();
      await serve.stop('SIGTERM');
    }
  });

  it('closes a connection still trickling its request past http.shutdownGraceSeconds, logs it, flushes and exits 0', async () => {
    const { serve, port, credentials } = await startServe({ AA_OIDC_HTTP_SHUTDOWN_GRACE_SECONDS: '1' });
    const sockets: net.Socket[] = [];
    try {
      // Half of a body, the rest never sent: Node no longer enforces its request timeout once the
      // server has stopped listening.
      const body = 'grant_type=client_credentials';
      const trickling = await heldTokenRequest(port, credentials, body, 'close');
      sockets.push(trickling.socket);
      trickling.socket.write(body.slice(0, body.length / 2));

      serve.process.kill('SIGTERM');
      const warned = await serve.waitFor(
        /^.*"shutdown grace period over: closing the connections still open".*$/m,
      );
      const line = JSON.parse(warned[0]) as Record<string, unknown>;
      assert.equal(line.level, 40, 'logged at warn');
      assert.equal(line.connections, 1);
      assert.equal(line.grace_seconds, 1);
      await eventually(trickling.received.closed, 'the server closed the trickling connection');
      assert.equal(trickling.received.text(), CONTINUE, 'the request was not answered');
      assert.equal(await serve.exited, 0, serve.stderr());
    } finally {
      for (const socket of sockets) socket.destroy();
      await serve.stop('SIGTERM');
    }
  });

  it('closes the metrics listener at SIGTERM with every connection on it, a scraper kept alive and a request half sent alike, so that neither holds the exit', async () => {
    const { serve } = await startServe({ AA_OIDC_METRICS_ENABLED: 'true' });
    const sockets: net.Socket[] = [];
    try {
      const metricsPort = Number(
        (await serve.waitFor(/, metrics on http:\/\/127\.0\.0\.1:(\d+)\/metrics/))[1],
      );
      // A scraper's connection, kept alive after its scrape, as Prometheus keeps it between scrapes.
      const scraper = await heldConnection(`http://127.0.0.1:${metricsPort}`, '/metrics');
      sockets.push(scraper);
      const scraperClosed = once(scraper, 'close');
      // A request whose headers have not all arrived: once the listener stops listening, Node no
      // longer cuts it at its headers deadline.
      const halfSent = net.connect(metricsPort, '127.0.0.1');
      sockets.push(halfSent);
      const received = recorded(halfSent);
      await once(halfSent, 'connect');
      halfSent.write(`GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:${metricsPort}\r\n`);

      serve.process.kill('SIGTERM');
      await serve.waitFor(/"shutting down"/);
      await scraperClosed;
      await eventually(
        received.closed,
        'the metrics listener closed the connection of the request half sent',
      );
      assert.equal(received.text(), '', 'the request half sent was not answered');
      assert.equal(await serve.exited, 0, serve.stderr());
      assert.equal(await refusesConnections(metricsPort), true, 'the metrics port is closed');
    } finally {
      for (const socket of sockets) socket.destroy();
      await serve.stop('SIGTERM');
    }
  });
});
