import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { App } from '../../src/app.ts';
import { drainable } from '../../src/http/graceful-shutdown.ts';
import { createLogger } from '../../src/logging/logger.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { eventually } from '../helpers/eventually.ts';
import { createLeakHarness, type LeakHarness } from '../helpers/leak-harness.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

const WAITING = 'waiting for the requests in flight whose clients have gone';
const GRACE_OVER = 'shutdown grace period over: closing the connections still open';
const SETTLING = 'waiting for the requests still running to end before closing the services';
const SETTLED = 'the requests still running at the end of the grace period have ended';
const GAVE_UP = 'requests still running past the grace period: closing the services under them';

/** A connection that sent `GET path` and stays open, its client waiting for the answer. */
async function requestHeldOpen(origin: string, path: string): Promise<net.Socket> {
  const { host, port } = new URL(origin);
  const socket = net.connect(Number(port), '127.0.0.1');
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  socket.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
  return socket;
}

/** The parsed log lines whose message starts with `message`. */
function logged(lines: readonly string[], message: string): Array<Record<string, unknown>> {
  return lines
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((line) => typeof line.msg === 'string' && line.msg.startsWith(message));
}

/** A handler's hold: it says it runs (`entered`) and goes on once the test calls `release()`. */
interface Hold {
  entered: Promise<void>;
  enter(): void;
  released: Promise<void>;
  release(): void;
}

function hold(): Hold {
  let enter!: () => void;
  const entered = new Promise<void>((resolve) => (enter = resolve));
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  return { entered, enter, released, release };
}

/**
 * How long the app waits past the grace period for a held handler: longer than any test runs, so
 * that the handler ends when the test lets it go, however slow the machine, and not at a deadline.
 */
const SETTLE_UNTIL_RELEASED_MS = 10 * 60_000;

/** A server whose `/held-change` handler is held, and the app's close as a test starts it. */
interface HeldServer {
  server: TestServer;
  harness: LeakHarness;
  held: Hold;
  /** Starts closing the app, as a stop does. */
  startClosing(): Promise<void>;
  /** Whether the app has closed (its services included). */
  closed(): boolean;
  /** Lets the handler go, and ends the close the test started or closes the server; drops the database. */
  stop(): Promise<void>;
}

/**
 * A server with a handler of the test's own, first of all (the console answers a path it does not
 * know), held until the test lets it go, that then does `afterRelease` (what an admin change does).
 * Past the grace period, the app waits for it until it is let go, or (`settle: 'default'`) as long as
 * a stop does.
 */
async function startHeldServer(
  overrides: Record<string, unknown>,
  afterRelease: (app: App) => Promise<void> | void,
  settle: 'until released' | 'default' = 'until released',
): Promise<HeldServer> {
  const harness = createLeakHarness({ level: 'info' });
  const held = hold();
  const server = await startServer(overrides, {
    harness,
    handlersSettleMs: settle === 'default' ? undefined : SETTLE_UNTIL_RELEASED_MS,
    beforeListen: (app) =>
      app.koa.middleware.unshift(async (ctx, next) => {
        if (ctx.path !== '/held-change') return next();
        held.enter();
        await held.released;
        await afterRelease(app);
        ctx.body = 'done';
      }),
  });
  let closing: Promise<void> | undefined;
  let closed = false;
  return {
    server,
    harness,
    held,
    startClosing: () => (closing ??= server.app.close().finally(() => (closed = true))),
    closed: () => closed,
    async stop() {
      held.release();
      if (closing) {
        await closing;
        await server.database.drop();
      } else await server.close();
    },
  };
}

describe(`closing the app with a request in flight (${testDatabaseKind})`, () => {
  it('waits for a handler whose client has gone before it closes the services, so its audit event is kept', async () => {
    const { server, harness, held, startClosing, closed, stop } = await startHeldServer({}, (app) =>
      app.audit.publish({
        kind: 'admin_change',
        entity: 'group',
        action: 'created',
        entity_id: 42,
        name: 'published-after-client-left',
        actor: 'cli',
        changed_fields: [],
        details: {},
      }),
    );
    try {
      const socket = await requestHeldOpen(server.origin, '/held-change');
      await held.entered;
      // The client goes away while its handler runs: its connection closes, its handler does not end.
      socket.destroy();
      const closing = startClosing();

      // Either the services closed already (the handler's event would be dropped), or the app waits.
      await eventually(
        () => closed() || harness.logLines.some((line) => line.includes(WAITING)),
        'the app closed or said it waits for the request in flight',
      );
      assert.equal(closed(), false, 'the app closed its services while a handler still ran');
      held.release();
      await closing;

      assert.ok(
        harness.auditRecords.some(
          (record) => record.kind === 'admin_change' && record.name === 'published-after-client-left',
        ),
        'the audit event of the handler is recorded',
      );
      assert.deepEqual(
        harness.logLines.filter((line) => line.includes('dropped')),
        [],
        'no audit event was dropped',
      );
      const waiting = JSON.parse(harness.logLines.find((line) => line.includes(WAITING))!) as {
        requests: number;
      };
      assert.equal(waiting.requests, 1);
    } finally {
      await stop();
    }
  });

  it('past the grace period, closes the connection of a request still running but waits for its handler before it closes the services, so its change and audit event are kept', async () => {
    // A handler held (as one waiting on the database is) until the test lets it go, past the grace
    // period, its client still waiting; then it writes, as an admin change does: a group created.
    const { server, harness, held, startClosing, closed, stop } = await startHeldServer(
      { http: { shutdownGraceSeconds: 1 } },
      async (app) => {
        await app.directoryAdmin.createGroup('created-past-the-grace-period');
      },
    );
    try {
      const socket = await requestHeldOpen(server.origin, '/held-change');
      const socketClosed = once(socket, 'close');
      await held.entered;
      const closing = startClosing();

      // Either the services closed already (the handler's change would fail), or the app waits.
      await eventually(
        () => closed() || harness.logLines.some((line) => line.includes(SETTLING)),
        'the app closed or said it waits for the request still running',
      );
      assert.equal(closed(), false, 'the app closed its services while a handler still ran');
      await socketClosed;
      const [graceOver] = logged(harness.logLines, GRACE_OVER);
      assert.deepEqual(
        [graceOver?.level, graceOver?.connections, graceOver?.requests],
        [40, 1, 1],
        'the connection closed at the end of the grace period, logged at warn',
      );
      const [settling] = logged(harness.logLines, SETTLING);
      assert.deepEqual(
        [settling?.level, settling?.requests, settling?.settle_seconds],
        [30, 1, SETTLE_UNTIL_RELEASED_MS / 1000],
      );
      held.release();
      await closing;

      assert.ok(
        harness.auditRecords.some(
          (record) => record.kind === 'admin_change' && record.name === 'created-past-the-grace-period',
        ),
        'the change of the handler is committed and its audit event recorded',
      );
      assert.deepEqual(
        logged(harness.logLines, SETTLED).map((line) => [line.level, line.requests]),
        [[30, 1]],
      );
      assert.deepEqual(logged(harness.logLines, GAVE_UP), []);
      assert.deepEqual(
        harness.logLines.filter((line) => line.includes('"level":50') || line.includes('dropped')),
        [],
        'no request failed, no audit event was dropped',
      );
    } finally {
      await stop();
    }
  });

  it('past the grace period, waits for the handlers still running as long as a stop does when no other wait is given', async () => {
    const { server, harness, held, startClosing, stop } = await startHeldServer(
      { http: { shutdownGraceSeconds: 1 } },
      () => undefined,
      'default',
    );
    try {
      await requestHeldOpen(server.origin, '/held-change');
      await held.entered;
      const closing = startClosing();

      // Only what the app says it waits for is checked: the handler is let go as soon as it says so.
      await eventually(
        () => harness.logLines.some((line) => line.includes(SETTLING)),
        'the app said it waits for the request still running',
      );
      held.release();
      await closing;
      const [settling] = logged(harness.logLines, SETTLING);
      assert.deepEqual(
        [settling?.requests, settling?.settle_seconds],
        [1, 5],
        'the app waits HANDLERS_SETTLE_MS, the 5 s README and docs/deployment.md name',
      );
    } finally {
      await stop();
    }
  });

  it('waits past the grace period no longer than its bound for a handler that goes on, and says it closes the services under it', async () => {
    const harness = createLeakHarness({ level: 'info' });
    const logger = createLogger({ logging: { level: 'info', maskedSecrets: false } }, harness.loggerOptions);
    const held = hold();
    let handlerEnded = false;
    const requests = drainable(async (_req, res) => {
      held.enter();
      await held.released;
      handlerEnded = true;
      res.end('late');
    });
    const server = http.createServer(requests.listener);
    requests.watch(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const { port } = server.address() as AddressInfo;
      const socket = await requestHeldOpen(`http://127.0.0.1:${port}`, '/');
      const socketClosed = once(socket, 'close');
      await held.entered;
      // The handler is never let go while the drain runs: a grace period of 50 ms, then 50 ms more.
      await requests.drain(server, 50, logger, 50);
      assert.equal(handlerEnded, false, 'the drain ended while the handler still ran');
      await socketClosed;
      assert.deepEqual(
        logged(harness.logLines, GAVE_UP).map((line) => [line.level, line.requests, line.settle_seconds]),
        [[40, 1, 0.05]],
      );
      assert.deepEqual(logged(harness.logLines, SETTLED), []);
    } finally {
      held.release();
      server.close();
    }
  });
});

/** Everything a raw connection received, as text, and whether it has closed (reset or not). */
function recorded(socket: net.Socket): { text(): string; closed(): boolean; error(): string | undefined } {
  let text = '';
  let closed = false;
  let error: string | undefined;
  socket.setEncoding('latin1').on('data', (chunk: string) => (text += chunk));
  socket.on('error', (failure: NodeJS.ErrnoException) => (error = failure.code));
  socket.on('close', () => (closed = true));
  return { text: () => text, closed: () => closed, error: () => error };
}

const TOKEN_REQUEST = 'POST /o/token/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n';

/** A server of `drainable` answering every request with its method and path. */
async function answeringServer() {
  const harness = createLeakHarness({ level: 'info' });
  const logger = createLogger({ logging: { level: 'info', maskedSecrets: false } }, harness.loggerOptions);
  const requests = drainable(async (req, res) => {
    res.end(`${req.method} ${req.url}`);
  });
  const server = http.createServer(requests.listener);
  requests.watch(server);
  let accepted = 0;
  server.on('connection', () => (accepted += 1));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { requests, server, logger, port: (server.address() as AddressInfo).port, accepted: () => accepted };
}

/** A grace longer than any test runs: what a test waits for ends by itself, not at a deadline. */
const LONGER_THAN_THE_TEST_MS = 10 * 60_000;

describe('stopping with connections that have not sent their request yet', () => {
  it('answers a request arriving during the stop on a connection accepted before it, fresh or kept alive idle, with Connection: close rather than resetting it', async () => {
    const { requests, server, logger, port, accepted } = await answeringServer();
    const sockets: net.Socket[] = [];
    try {
      // A connection kept alive after its first answer, idle at the stop, as a proxy keeps its own
      // (nginx with `keepalive`, Caddy, Traefik) between requests.
      const kept = net.connect(port, '127.0.0.1');
      sockets.push(kept);
      const keptReceived = recorded(kept);
      kept.write('GET /first HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      await eventually(() => keptReceived.text().endsWith('GET /first'), 'the first request was answered');
      assert.match(keptReceived.text(), /\r\nConnection: keep-alive\r\n/i);
      // A connection accepted, its request not sent yet (as nginx's, between its connect and its write).
      const fresh = net.connect(port, '127.0.0.1');
      sockets.push(fresh);
      const freshReceived = recorded(fresh);
      await eventually(() => accepted() === 2, 'the server accepted the second connection');

      const draining = requests.drain(server, LONGER_THAN_THE_TEST_MS, logger, 50, LONGER_THAN_THE_TEST_MS);
      const before = keptReceived.text().length;
      kept.write(TOKEN_REQUEST);
      fresh.write(TOKEN_REQUEST);
      for (const [name, received] of [
        ['kept alive', keptReceived],
        ['fresh', freshReceived],
      ] as const) {
        await eventually(received.closed, `the ${name} connection closed`);
        const answer = received.text().slice(name === 'kept alive' ? before : 0);
        assert.equal(received.error(), undefined, `the ${name} connection was reset: ${answer}`);
        assert.match(answer, /^HTTP\/1\.1 200 OK\r\n/, `the ${name} connection's request was answered`);
        assert.match(answer, /\r\nConnection: close\r\n/i);
        assert.ok(answer.endsWith('POST /o/token/'), answer);
      }
      await draining;
    } finally {
      for (const socket of sockets) socket.destroy();
      server.close();
    }
  });

  it('closes a connection kept alive that stays idle once the idle grace is over', async () => {
    const { requests, server, logger, port } = await answeringServer();
    const kept = net.connect(port, '127.0.0.1');
    try {
      const received = recorded(kept);
      kept.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      await eventually(() => received.text().endsWith('GET /'), 'the request was answered');
      await requests.drain(server, LONGER_THAN_THE_TEST_MS, logger, 50, 50);
      await eventually(received.closed, 'the idle connection was closed');
      assert.equal(received.error(), undefined);
    } finally {
      kept.destroy();
      server.close();
    }
  });

  it('accepts, before it stops listening, a connection the kernel completed while the server was busy, and answers its request rather than resetting it', async () => {
    const { requests, server, logger, port } = await answeringServer();
    const folder = mkdtempSync(path.join(tmpdir(), 'aa-oidc-drain-'));
    const sent = path.join(folder, 'sent');
    // A client in a process of its own: it connects, sends a request, says so in a file, and prints
    // what it receives (or how its connection failed) when the connection closes.
    const client = spawn(
      process.execPath,
      [
        '--import',
        fileURLToPath(new URL('../helpers/network-guard.ts', import.meta.url)),
        '-e',
        `const net = require('node:net');
         const fs = require('node:fs');
         const [port, sent, request] = process.argv.slice(1);
         let received = '';
         const socket = net.connect(Number(port), '127.0.0.1', () =>
           socket.write(request, () => fs.writeFileSync(sent, '')));
         socket.setEncoding('latin1').on('data', (chunk) => (received += chunk));
         socket.on('error', (error) => (received += 'failed: ' + error.code));
         socket.on('close', () => process.stdout.write(received));`,
        String(port),
        sent,
        TOKEN_REQUEST,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let output = '';
    client.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    const exited = once(client, 'exit');
    try {
      // The server is busy (this test holds the event loop) while the client connects and sends:
      // the kernel completes the connection and holds it, unaccepted, with the request.
      const pause = new Int32Array(new SharedArrayBuffer(4));
      const giveUpAt = Date.now() + 60_000;
      while (!existsSync(sent)) {
        assert.ok(Date.now() < giveUpAt, 'the client sent its request');
        Atomics.wait(pause, 0, 0, 10);
      }
      await requests.drain(server, LONGER_THAN_THE_TEST_MS, logger, 50, 50);
      await exited;
      assert.match(output, /^HTTP\/1\.1 200 OK\r\n/, output);
      assert.match(output, /\r\nConnection: close\r\n/i);
      assert.ok(output.endsWith('POST /o/token/'), output);
    } finally {
      client.kill();
      server.close();
      rmSync(folder, { recursive: true, force: true });
    }
  });
});
