import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import type net from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { ConnectionPools } from '../../src/logout/connection-pools.ts';
import { createDeliveryPools, type PinnedTarget } from '../../src/logout/http-delivery.ts';
import { LANES_PER_APPLICATION } from '../../src/logout/worker.ts';
import { eventually } from '../helpers/eventually.ts';
import { guardedConnector } from './helpers.ts';

/**
 * One host serving several applications by path shares one pool: it must have a connection for
 * every delivery in flight to it (the worker bounds those), or one application's deliveries that
 * wait for an answer would hold up the others' in the pool's queue.
 */
describe('the delivery connection pool of a host that several applications share', () => {
  // More deliveries at once than one application may have: those of several applications.
  const IN_FLIGHT = 3 * LANES_PER_APPLICATION;
  let server: http.Server;
  let port: number;
  const held: http.ServerResponse[] = [];
  let holding = true;
  let connections = 0;
  let pools: ConnectionPools;
  let guarded: ReturnType<typeof guardedConnector>;

  before(async () => {
    server = http.createServer((request, response) => {
      request.resume();
      request.on('end', () => (holding ? held.push(response) : response.end()));
    });
    server.on('connection', () => (connections += 1));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as net.AddressInfo).port;
    guarded = guardedConnector({ '127.0.0.1': port });
    pools = createDeliveryPools({
      connector: guarded.connector,
      connectTimeoutMs: 2000,
      requestTimeoutMs: 10_000,
    });
  });
  after(async () => {
    holding = false;
    for (const response of held.splice(0)) response.end();
    await pools.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const target = (): PinnedTarget => ({
    address: '127.0.0.1',
    family: 4,
    port,
    protocol: 'http:',
    servername: null,
  });
  const deliver = async (index: number) => {
    const origin = `http://apps.example:${port}`;
    const pool = await pools.poolFor(origin, target());
    const response = await pool.request({ origin, method: 'POST', path: `/app-${index}/bcl`, body: 'x' });
    await response.body.dump();
    return response.statusCode;
  };

  it('opens a connection for each delivery in flight, none waiting behind another, and reuses them', async () => {
    const first = Array.from({ length: IN_FLIGHT }, (_, index) => deliver(index));
    await eventually(
      () => held.length === IN_FLIGHT,
      `all ${IN_FLIGHT} deliveries reach the host while none is answered`,
      5000,
    );
    assert.equal(connections, IN_FLIGHT);
    holding = false;
    for (const response of held.splice(0)) response.end();
    assert.deepEqual(new Set(await Promise.all(first)), new Set([200]));

    // The next round, once undici counts the connections free again (a tick after their answers
    // were read, as a worker's next attempt comes only after its gate check), finds them kept
    // alive: the pool opened no more than there were deliveries in flight at once.
    await new Promise((resolve) => setImmediate(resolve));
    const second = await Promise.all(Array.from({ length: IN_FLIGHT }, (_, index) => deliver(index)));
    assert.deepEqual(new Set(second), new Set([200]));
    assert.equal(connections, IN_FLIGHT, 'no connection beyond the deliveries that were in flight at once');
    assert.deepEqual(guarded.refused, []);
  });
});
