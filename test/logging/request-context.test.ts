import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { App } from '../../src/app.ts';
import { createLeakHarness, type LeakHarness } from '../helpers/leak-harness.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

describe('request id and access log', () => {
  let server: TestServer;
  let harness: LeakHarness;
  let base: string;
  before(async () => {
    harness = createLeakHarness();
    server = await startServer(
      {},
      {
        harness,
        beforeListen: (app) =>
          app.koa.use(async (ctx, next) => {
            if (ctx.path === '/test/boom') throw new Error('exploded while handling the request');
            if (ctx.path === '/test/log') {
              (ctx.state as { log: App['logger'] }).log.info('inside the handler');
              ctx.body = 'ok';
              return;
            }
            return next();
          }),
      },
    );
    base = server.origin;
  });
  after(async () => server.close());

  const linesFor = (requestId: string) =>
    harness.logLines
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => line.requestId === requestId);

  it('generates a different id for each request and echoes it', async () => {
    const first = await fetch(`${base}/healthz`);
    const second = await fetch(`${base}/healthz`);
    const firstId = first.headers.get('x-request-id');
    const secondId = second.headers.get('x-request-id');
    assert.match(firstId ?? '', /^[0-9a-f-]{36}$/);
    assert.match(secondId ?? '', /^[0-9a-f-]{36}$/);
    assert.notEqual(firstId, secondId);
  });

  it('keeps a sane incoming X-Request-Id and binds it to every line of the request', async () => {
    const response = await fetch(`${base}/test/log`, { headers: { 'X-Request-Id': 'lb-7f3a.2026:42' } });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('x-request-id'), 'lb-7f3a.2026:42');
    const lines = linesFor('lb-7f3a.2026:42');
    assert.deepEqual(
      lines.map((line) => line.msg),
      ['inside the handler', 'request completed'],
    );
    const access = lines[1]!;
    assert.equal((access.req as { method: string }).method, 'GET');
    assert.equal((access.res as { status: number }).status, 200);
    assert.equal(typeof access.durationMs, 'number');
  });

  it('replaces an incoming id that is too long or carries unsafe characters', async () => {
    for (const bad of ['x'.repeat(200), 'id with spaces', '"quoted"', '-leading-dash']) {
      const response = await fetch(`${base}/healthz`, { headers: { 'X-Request-Id': bad } });
      const echoed = response.headers.get('x-request-id');
      assert.notEqual(echoed, bad);
      assert.match(echoed ?? '', /^[0-9a-f-]{36}$/);
    }
  });

  it('keeps the id on error responses and logs the failure with it', async () => {
    const response = await fetch(`${base}/test/boom`, { headers: { 'X-Request-Id': 'boom-1' } });
    assert.equal(response.status, 500);
    assert.equal(response.headers.get('x-request-id'), 'boom-1');
    const lines = linesFor('boom-1');
    assert.ok(lines.some((line) => line.msg === 'request failed' && line.level === 50));
    assert.ok(
      lines.some(
        (line) => line.msg === 'request completed' && (line.res as { status: number }).status === 500,
      ),
    );
  });

  it("logs a client's malformed or broken-off request at debug, not as a failure of the server", async () => {
    const url = new URL(base);
    const send = (request: string, end: 'wait' | 'reset') =>
      new Promise<string>((resolve) => {
        const socket = connect(Number(url.port), url.hostname);
        let answer = '';
        socket.setEncoding('utf8');
        socket.on('data', (chunk: string) => (answer += chunk));
        socket.on('error', () => undefined);
        socket.on('close', () => resolve(answer));
        socket.write(request, () => {
          if (end === 'reset') setTimeout(() => socket.resetAndDestroy(), 100);
          else setTimeout(() => socket.end(), 200);
        });
      });
    const before = harness.logLines.length;
    const head = (path: string, headers: string) =>
      `POST ${path} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/x-www-form-urlencoded\r\n${headers}\r\n`;
    // A chunk size that is not hexadecimal: Node answers 400 itself.
    const malformed = await send(`${head('/o/token/', 'Transfer-Encoding: chunked\r\n')}zz\r\n`, 'wait');
    assert.match(malformed, /^HTTP\/1\.1 400/);
    // A body cut off, then the connection reset.
    await send(`${head('/o/introspect/', 'Content-Length: 100\r\n')}token=abc`, 'reset');
    // One that is answered without its body being read: no error at all.
    await send(`${head('/nowhere', 'Content-Length: 100\r\n')}partial`, 'wait');
    // The server hears of each closed connection on its own turn: wait (at most 5 s) for both.
    await fetch(`${base}/healthz`);
    const parsed = () =>
      harness.logLines.slice(before).map((line) => JSON.parse(line) as Record<string, unknown>);
    for (let waited = 0; waited < 5000; waited += 50) {
      if (parsed().filter((line) => line.msg === 'client connection error' || line.level === 50).length >= 2)
        break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const lines = parsed();
    assert.deepEqual(
      lines.filter((line) => (line.level as number) >= 50).map((line) => line.msg),
      [],
      'nothing at error level',
    );
    const debug = lines.filter((line) => line.msg === 'client connection error');
    assert.equal(debug.length, 2, JSON.stringify(lines.map((line) => [line.level, line.msg])));
    assert.ok(debug.every((line) => line.level === 20));
    assert.ok(debug.some((line) => (line.err as { code: string }).code === 'HPE_INVALID_CHUNK_SIZE'));
  });

  it('writes no credential of the URL, headers or cookies into the access log', async () => {
    const code = 'SplxlOBeZQQYbYS6WxSbIA-authorization-code';
    const bearer = 'access-token-2YotnFZFEjr1zCsicMWpAA';
    const cookie = 'session-cookie-value-8xLOxBtZp8';
    const clientSecret = 'client-secret-7Fjfp0ZBr1KtDRbnfVdmIw';
    for (const [value, label] of [
      [code, 'authorization code'],
      [bearer, 'access token'],
      [cookie, 'session cookie'],
      [clientSecret, 'client secret'],
    ] as const) {
      harness.registerSecret(value, label);
    }
    const response = await fetch(`${base}/o/token?code=${code}&state=abc&client_secret=${clientSecret}`, {
      headers: {
        Authorization: `Bearer ${bearer}`,
        Cookie: `_session=${cookie}`,
        'X-Request-Id': 'leaky-1',
      },
    });
    await response.arrayBuffer();
    const [access] = linesFor('leaky-1');
    assert.equal(
      (access!.req as { url: string }).url,
      '/o/token?code=[redacted]&state=abc&client_secret=[redacted]',
    );
    await harness.assertNoLeaks();
  });
});
