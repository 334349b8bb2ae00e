import assert from 'node:assert/strict';
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
