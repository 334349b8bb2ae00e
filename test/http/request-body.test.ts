import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import v8 from 'node:v8';
import vm from 'node:vm';
import { readBodyBytes, RequestBodyTooLarge } from '../../src/http/request-body.ts';

v8.setFlagsFromString('--expose-gc');
const collectGarbage = vm.runInNewContext('gc') as () => void;

/** A request whose body arrives as the chunks pushed into it. */
function trickledRequest(): Readable & IncomingMessage {
  return Object.assign(new Readable({ read() {} }), { headers: {} }) as unknown as Readable & IncomingMessage;
}

describe('readBodyBytes', () => {
  it('keeps a body that comes a byte at a time in about its own size, not a Buffer a byte', async () => {
    const limit = 56 * 1024;
    const req = trickledRequest();
    const reading = readBodyBytes(req, limit);
    collectGarbage();
    const before = process.memoryUsage().heapUsed;
    for (let sent = 0; sent < 50_000; sent += 1) {
      req.push(Buffer.from([0x61]));
      if (sent % 1000 === 0) await nextTurn();
    }
    await nextTurn();
    collectGarbage();
    const held = process.memoryUsage().heapUsed - before;
    req.push(null);
    const body = await reading;
    assert.equal(body.length, 50_000);
    assert.equal(body.toString('latin1'), 'a'.repeat(50_000));
    // 50,000 Buffers kept until the end would be several megabytes of heap.
    assert.ok(held < 1024 * 1024, `the body being read held ${held} bytes of heap`);
  });

  it('refuses a body past the limit, however it comes', async () => {
    const req = trickledRequest();
    const reading = readBodyBytes(req, 10);
    for (let sent = 0; sent < 11; sent += 1) req.push(Buffer.from([0x61]));
    req.push(null);
    await assert.rejects(reading, RequestBodyTooLarge);
  });

  it('gives back a body sent in large chunks unchanged', async () => {
    const req = trickledRequest();
    const reading = readBodyBytes(req, 100_000);
    const sent = Buffer.from(Array.from({ length: 30_000 }, (_, i) => i % 251));
    req.push(sent.subarray(0, 5));
    req.push(sent.subarray(5, 20_000));
    req.push(sent.subarray(20_000));
    req.push(null);
    assert.deepEqual(await reading, sent);
  });
});
