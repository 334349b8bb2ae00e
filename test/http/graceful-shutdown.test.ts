import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { describe, it } from 'node:test';
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
