import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import v8 from 'node:v8';
import vm from 'node:vm';
import { testDatabaseKind } from '../helpers/database.ts';
import { createLeakHarness } from '../helpers/leak-harness.ts';
import { seedApp, startServer, type TestServer } from '../helpers/server.ts';
import { rawRequest } from '../http/raw-request.ts';

v8.setFlagsFromString('--expose-gc');
const collectGarbage = vm.runInNewContext('gc') as () => void;

/** A POST on a raw connection whose body is sent a byte a packet, by `send`. */
interface Trickle {
  /** Sends the body's byte `index` (in its chunk, when chunked); false once all are sent. */
  send(index: number): boolean;
  /** Sends these bytes as they are. */
  write(raw: string): void;
  /** What the server answered, once it closed the connection. */
  answer: Promise<string>;
}

async function trickle(origin: string, path: string, body: Buffer, chunked: boolean): Promise<Trickle> {
  const { hostname, port } = new URL(origin);
  const socket = net.connect(Number(port), hostname);
  socket.setNoDelay(true);
  socket.on('error', () => undefined);
  const answer = new Promise<string>((resolve) => {
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
    socket.on('close', () => resolve(text));
  });
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  const length = chunked ? 'Transfer-Encoding: chunked' : `Content-Length: ${body.length}`;
  socket.write(
    `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n` +
      `Content-Type: application/x-www-form-urlencoded\r\n${length}\r\n\r\n`,
  );
  return {
    send(index) {
      if (index >= body.length) return false;
      const byte = body.subarray(index, index + 1);
      socket.write(chunked ? Buffer.concat([Buffer.from('1\r\n'), byte, Buffer.from('\r\n')]) : byte);
      if (chunked && index === body.length - 1) socket.write('0\r\n\r\n');
      return true;
    },
    write: (raw) => socket.write(raw),
    answer,
  };
}

/** `fields`, padded with an unknown parameter (which the provider ignores) to `size` bytes. */
function paddedForm(fields: Record<string, string>, size: number): Buffer {
  const head = `${new URLSearchParams(fields).toString()}&padding=`;
  return Buffer.from(head + 'a'.repeat(size - head.length));
}

/** The status line and the body of a raw answer. */
function statusAndBody(answer: string): { status: number; body: string } {
  const [head = '', body = ''] = answer.split('\r\n\r\n');
  return { status: Number(head.split(' ')[1]), body };
}

/**
 * The provider reads the bodies of its token, introspection and revocation endpoints (and userinfo,
 * logout confirmation) itself, keeping a Buffer per chunk: one trickled a byte a packet is gathered
 * first, and the provider answers it as any other.
 */
describe(`provider endpoints reading a trickled body (${testDatabaseKind})`, () => {
  let server: TestServer;
  let machine: { clientId: string; clientSecret: string };

  before(async () => {
    // 50,000 turns of the event loop per body: on a loaded machine that can outlast serve's 30 s
    // deadline for a whole request, which this test is not about (test/http/server-limits.test.ts is).
    server = await startServer({}, { limits: { requestTimeoutMs: 10 * 60_000 } });
    const created = await seedApp(server, {
      name: 'Cron',
      grantTypes: ['client_credentials'],
      redirectUris: [],
    });
    machine = { clientId: created.clientId, clientSecret: created.clientSecret! };
  });
  after(async () => server.close());

  it('keeps form bodies that come a byte at a time in about their own size, and answers them as sent at once', async () => {
    const size = 50_000;
    const credentials = { client_id: machine.clientId, client_secret: machine.clientSecret };
    const tokenForm = paddedForm({ grant_type: 'client_credentials', ...credentials }, size);
    const introspectForm = paddedForm({ token: 'not-a-token', ...credentials }, size);
    const revokeForm = paddedForm({ token: 'not-a-token', ...credentials }, size);
    const trickles = [
      await trickle(server.origin, '/o/token/', tokenForm, false),
      await trickle(server.origin, '/o/token/', tokenForm, true),
      await trickle(server.origin, '/o/introspect/', introspectForm, false),
      await trickle(server.origin, '/o/revoke_token/', revokeForm, true),
    ];
    for (let turn = 0; turn < 10; turn += 1) await nextTurn();
    collectGarbage();
    const before = process.memoryUsage().heapUsed;
    // All but the last byte, each its own packet: the server reads each as it comes.
    for (let index = 0; index < size - 1; index += 1) {
      for (const each of trickles) each.send(index);
      await nextTurn();
    }
    for (let turn = 0; turn < 10; turn += 1) await nextTurn();
    collectGarbage();
    const held = process.memoryUsage().heapUsed - before;
    for (const each of trickles) each.send(size - 1);
    const [token, chunkedToken, introspection, revocation] = (
      await Promise.all(trickles.map((each) => each.answer))
    ).map(statusAndBody);

    for (const [name, answer] of [
      ['Content-Length', token],
      ['chunked', chunkedToken],
    ] as const) {
      assert.equal(answer!.status, 200, `token, ${name}: ${answer!.body}`);
      assert.equal(typeof (JSON.parse(answer!.body) as { access_token?: unknown }).access_token, 'string');
    }
    const sentAtOnce = (path: string, body: Buffer) =>
      rawRequest(`${server.origin}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body,
      });
    const introspectedAtOnce = await sentAtOnce('/o/introspect/', introspectForm);
    assert.deepEqual(introspection, { status: introspectedAtOnce.status, body: introspectedAtOnce.body });
    assert.deepEqual(JSON.parse(introspection!.body), { active: false });
    const revokedAtOnce = await sentAtOnce('/o/revoke_token/', revokeForm);
    assert.deepEqual(revocation, { status: revokedAtOnce.status, body: revokedAtOnce.body });
    assert.equal(revocation!.status, 200);
    // Four bodies kept as 50,000 Buffers of a byte each would be some 50 MB of heap until answered.
    assert.ok(held < 8 * 1024 * 1024, `the bodies being read held ${held} bytes of heap`);
  });

  it('answers a chunked body whose end comes after its headers as one sent at once: empty, or in a few pieces', async (t) => {
    // Handed a stream already ended, the provider would read `req.body` instead and say so, once.
    const warn = t.mock.method(console, 'warn');
    const credentials = { client_id: machine.clientId, client_secret: machine.clientSecret };
    const pieces = (body: string) => [body.slice(0, 5), body.slice(5, 40), body.slice(40)];
    for (const body of ['', new URLSearchParams({ grant_type: 'password', ...credentials }).toString()]) {
      const label = `body ${JSON.stringify(body.slice(0, 10))}`;
      const atOnce = await rawRequest(`${server.origin}/o/token/`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body,
      });
      const late = await trickle(server.origin, '/o/token/', Buffer.alloc(0), true);
      for (let turn = 0; turn < 10; turn += 1) await nextTurn();
      for (const piece of body === '' ? [] : pieces(body)) {
        late.write(`${Buffer.byteLength(piece).toString(16)}\r\n${piece}\r\n`);
        for (let turn = 0; turn < 10; turn += 1) await nextTurn();
      }
      late.write('0\r\n\r\n');
      const answer = statusAndBody(await late.answer);
      assert.equal(answer.status, 400, answer.body);
      assert.deepEqual(answer, { status: atOnce.status, body: atOnce.body }, label);
      // Its end in the same packet as the headers.
      const { hostname, port } = new URL(server.origin);
      const socket = net.connect(Number(port), hostname);
      const whole =
        (body === '' ? '' : `${Buffer.byteLength(body).toString(16)}\r\n${body}\r\n`) + '0\r\n\r\n';
      socket.write(
        'POST /o/token/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n' +
          `Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n${whole}`,
      );
      const chunks: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      await new Promise((resolve) => socket.on('close', resolve));
      assert.deepEqual(
        statusAndBody(Buffer.concat(chunks).toString('utf8')),
        answer,
        `${label}, in one packet`,
      );
    }
    assert.deepEqual(
      warn.mock.calls
        .map((call) => String(call.arguments[0]))
        .filter((text) => text.includes('oidc-provider')),
      [],
    );
  });

  it('logs a body that never ends, its request closed 408, as the provider answers a body it cannot read, and its timeout at debug, not as a failure', async (t) => {
    const warn = t.mock.method(console, 'warn');
    const harness = createLeakHarness();
    const slow = await startServer(
      {},
      {
        harness,
        limits: { headersTimeoutMs: 300, requestTimeoutMs: 400, connectionsCheckingIntervalMs: 50 },
      },
    );
    try {
      const body = paddedForm({ grant_type: 'client_credentials' }, 1000);
      const never = await trickle(slow.origin, '/o/token/', body, false);
      for (let index = 0; index < 100; index += 1) never.send(index);
      const answer = statusAndBody(await never.answer);
      assert.equal(answer.status, 408);
      const lines = harness.logLines.map(
        (line) =>
          JSON.parse(line) as {
            level: number;
            msg?: string;
            req?: { url?: string };
            res?: { status?: number };
            err?: { code?: string };
          },
      );
      assert.deepEqual(
        lines
          .filter((line) => line.msg === 'request completed' && line.req?.url === '/o/token/')
          .map((line) => line.res?.status),
        [400],
      );
      // The client's time is up, not the server's: at error level, anyone could fill the log with it.
      assert.deepEqual(
        lines.filter((line) => line.level >= 50).map((line) => line.msg),
        [],
        'nothing at error level',
      );
      assert.ok(
        lines.some(
          (line) => line.msg === 'client connection error' && line.err?.code === 'ERR_HTTP_REQUEST_TIMEOUT',
        ),
        'the timeout at debug',
      );
    } finally {
      await slow.close();
    }
    assert.deepEqual(
      warn.mock.calls
        .map((call) => String(call.arguments[0]))
        .filter((text) => text.includes('oidc-provider')),
      [],
    );
  });
});
