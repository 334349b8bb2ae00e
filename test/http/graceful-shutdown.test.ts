import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { describe, it } from 'node:test';
import { testDatabaseKind } from '../helpers/database.ts';
import { eventually } from '../helpers/eventually.ts';
import { createLeakHarness } from '../helpers/leak-harness.ts';
import { startServer } from '../helpers/server.ts';

const WAITING = 'waiting for the requests in flight whose clients have gone';

describe(`closing the app with a request in flight (${testDatabaseKind})`, () => {
  it('waits for a handler whose client has gone before it closes the services, so its audit event is kept', async () => {
    const harness = createLeakHarness({ level: 'info' });
    let entered!: () => void;
    const handlerEntered = new Promise<void>((resolve) => (entered = resolve));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    // A handler of the test's own, first of all (the console answers a path it does not know), held
    // until the test lets it go, that then records a change as a handler of the admin UI does.
    const server = await startServer(
      {},
      {
        harness,
        beforeListen: (app) =>
          app.koa.middleware.unshift(async (ctx, next) => {
            if (ctx.path !== '/held-change') return next();
            entered();
            await released;
            app.audit.publish({
              kind: 'admin_change',
              entity: 'group',
              action: 'created',
              entity_id: 42,
              name: 'published-after-client-left',
              actor: 'cli',
              changed_fields: [],
              details: {},
            });
            ctx.body = 'recorded';
          }),
      },
    );
    let closed = false;
    let closing: Promise<void> | undefined;
    try {
      const socket = net.connect(Number(new URL(server.origin).port), '127.0.0.1');
      socket.on('error', () => undefined);
      await once(socket, 'connect');
      socket.write(`GET /held-change HTTP/1.1\r\nHost: ${new URL(server.origin).host}\r\n\r\n`);
      await handlerEntered;
      // The client goes away while its handler runs: its connection closes, its handler does not end.
      socket.destroy();
      closing = server.app.close().finally(() => (closed = true));

      // Either the services closed already (the handler's event would be dropped), or the app waits.
      await eventually(
        () => closed || harness.logLines.some((line) => line.includes(WAITING)),
        'the app closed or said it waits for the request in flight',
      );
      assert.equal(closed, false, 'the app closed its services while a handler still ran');
      release();
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
      release();
      if (closing) {
        await closing;
        await server.database.drop();
      } else await server.close();
    }
  });
});
