import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import { poolSockets, type PooledSocket } from '../../src/db/pool-sockets.ts';

/** A connection's socket that closes when `closeNow()` is called (the server's close) or destroyed. */
class FakeSocket extends EventEmitter implements PooledSocket {
  destroyed = false;
  destroy(): void {
    this.closeNow();
  }
  closeNow(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.emit('close');
  }
}

const LONG = 60_000;

/**
 * How closing a pool waits: for the work in flight (bounded by `workMs`), then for the goodbyes
 * (bounded by `goodbyeMs`). The deadlines bound failures only: nothing here asserts a duration.
 */
describe('closing the sockets of a pool', () => {
  it('tells every close waiting at once when the sockets have closed', async () => {
    const sockets = poolSockets();
    const socket = new FakeSocket();
    sockets.track(socket);
    const deadlines = { goodbyeMs: LONG, workMs: LONG };
    const first = sockets.closeWithin(async () => undefined, deadlines);
    const second = sockets.closeWithin(async () => undefined, deadlines);
    setImmediate(() => socket.closeNow());
    assert.deepEqual(await Promise.all([first, second]), [undefined, undefined]);
  });

  it('waits for a connection lent out before the goodbye deadline starts', async () => {
    const sockets = poolSockets();
    const idle = new FakeSocket();
    const busy = new FakeSocket();
    sockets.track(idle);
    sockets.track(busy);
    sockets.lent();
    // The idle connection's goodbye is answered: the route is alive, the work goes on past goodbyeMs.
    const closing = sockets.closeWithin(
      async () => {
        idle.closeNow();
      },
      { goodbyeMs: 20, workMs: LONG },
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(busy.destroyed, false, 'the connection at work is left alone');
    sockets.returned();
    busy.closeNow();
    assert.equal(await closing, undefined);
  });

  it('cuts work in flight at once when the idle connections go unanswered', async () => {
    const sockets = poolSockets();
    const idle = new FakeSocket();
    const busy = new FakeSocket();
    sockets.track(idle);
    sockets.track(busy);
    sockets.lent();
    const abandoned = await sockets.closeWithin(async () => undefined, { goodbyeMs: 20, workMs: LONG });
    assert.deepEqual(abandoned, { kind: 'dead_route', connections: 2, inUse: 1, waitedMs: 20 });
    assert.ok(idle.destroyed && busy.destroyed);
  });

  it('cuts work in flight past workMs, naming it, when nothing shows the route dead', async () => {
    const sockets = poolSockets();
    const busy = new FakeSocket();
    sockets.track(busy);
    sockets.lent();
    const abandoned = await sockets.closeWithin(async () => undefined, { goodbyeMs: 20, workMs: 50 });
    assert.deepEqual(abandoned, { kind: 'work', connections: 1, inUse: 1, waitedMs: 50 });
    assert.ok(busy.destroyed);
  });

  it('with no connection idle, cuts work in flight once the probe goes unanswered', async () => {
    const sockets = poolSockets();
    const busy = new FakeSocket();
    sockets.track(busy);
    sockets.lent();
    let probed = 0;
    const abandoned = await sockets.closeWithin(async () => undefined, {
      goodbyeMs: 20,
      workMs: LONG,
      probe: () => {
        probed += 1;
        return new Promise<boolean>(() => undefined);
      },
    });
    assert.equal(probed, 1);
    assert.deepEqual(abandoned, { kind: 'dead_route', connections: 1, inUse: 1, waitedMs: 20 });
    assert.ok(busy.destroyed);
  });

  it('with no connection idle, lets work in flight go on past goodbyeMs when the probe is answered', async () => {
    const sockets = poolSockets();
    const busy = new FakeSocket();
    sockets.track(busy);
    sockets.lent();
    const closing = sockets.closeWithin(async () => undefined, {
      goodbyeMs: 20,
      workMs: LONG,
      probe: async () => true,
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(busy.destroyed, false, 'the connection at work is left alone');
    sockets.returned();
    busy.closeNow();
    assert.equal(await closing, undefined);
  });

  it('does not probe when a connection is idle or none is at work', async () => {
    const sockets = poolSockets();
    const idle = new FakeSocket();
    sockets.track(idle);
    const probe = async () => assert.fail('probed');
    const closing = sockets.closeWithin(async () => idle.closeNow(), { goodbyeMs: 20, workMs: LONG, probe });
    assert.equal(await closing, undefined);
  });
});
