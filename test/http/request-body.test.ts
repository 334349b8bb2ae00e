import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import v8 from 'node:v8';
import vm from 'node:vm';
import {
  readBodyBytes,
  repeatedField,
  repeatedFieldMessage,
  RequestBodyTooLarge,
} from '../../src/http/request-body.ts';

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

describe('repeatedField', () => {
  it('names the first field given twice that takes one value, and lets a group of checkboxes repeat', () => {
    const groups = new Set(['groups']);
    for (const [body, multiValued, expected] of [
      ['decision=allow&decision=deny', undefined, 'decision'],
      ['csrf_token=a&name=x&csrf_token=b', undefined, 'csrf_token'],
      ['name=x&decision=allow&name=y&decision=deny', undefined, 'name'],
      ['csrf_token=a&decision=allow', undefined, undefined],
      ['', undefined, undefined],
      ['groups=Blue&groups=Red&name=x', groups, undefined],
      ['groups=Blue&groups=Red&name=x&name=y', groups, 'name'],
      // An empty value given twice is given twice all the same.
      ['pkce_required&pkce_required=', undefined, 'pkce_required'],
    ] as const) {
      assert.equal(repeatedField(new URLSearchParams(body), multiValued), expected, body);
    }
  });

  it('names a field as sent only when it is a plain name, never echoing other text', () => {
    assert.match(repeatedFieldMessage('new_password'), /gives the field new_password more than once/);
    for (const name of ['<script>', 'a b', 'x'.repeat(65), '']) {
      const message = repeatedFieldMessage(name);
      assert.match(message, /gives one of its fields more than once/);
      if (name !== '') assert.equal(message.includes(name), false, name);
    }
  });
});
