import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Provider } from 'oidc-provider';
import { testDatabaseKind } from '../helpers/database.ts';
import { eventually } from '../helpers/eventually.ts';
import { createLeakHarness } from '../helpers/leak-harness.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { rawRequest } from '../http/raw-request.ts';

/** Headers that differ between any two answers, whoever makes them. */
const PER_REQUEST = new Set(['date', 'x-request-id', 'connection', 'keep-alive']);

interface Answer {
  status: number;
  headers: Array<[string, string]>;
  body: Buffer;
}

describe(`discovery and JWKS answered from the engine's first answer (${testDatabaseKind})`, () => {
  let server: TestServer;
  const harness = createLeakHarness();
  /** Requests that entered each provider instance's own middleware, by path. */
  const entered = new WeakMap<Provider, string[]>();

  const watchEngine = () => {
    const provider = server.app.oidc.current();
    if (entered.has(provider)) return entered.get(provider)!;
    const paths: string[] = [];
    entered.set(provider, paths);
    provider.use(async (ctx, next) => {
      paths.push(`${ctx.method} ${ctx.path}`);
      await next();
    });
    return paths;
  };

  const get = async (path: string, init: RequestInit = {}): Promise<Answer> => {
    const response = await fetch(`${server.issuer}${path}`, init);
    return {
      status: response.status,
      headers: [...response.headers].filter(([name]) => !PER_REQUEST.has(name)),
      body: Buffer.from(await response.arrayBuffer()),
    };
  };

  const kidsIn = (answer: Answer) =>
    (JSON.parse(answer.body.toString('utf8')) as { keys: Array<{ kid: string }> }).keys.map((key) => key.kid);

  before(async () => {
    // keys.reloadIntervalMs: how soon the server notices a rotation written to the database by others.
    server = await startServer({ keys: { reloadIntervalMs: 200 } }, { harness });
  });
  after(async () => server.close());

  for (const path of ['/.well-known/openid-configuration', '/.well-known/jwks.json']) {
    it(`answers GET and HEAD of ${path} with the engine's bytes and headers, the engine running once`, async () => {
      const watched = watchEngine();
      const engine = () => watched.filter((entry) => entry.endsWith(` ${path}`));
      const first = await get(path, { headers: { origin: 'https://rp.example.org' } });
      assert.equal(first.status, 200);
      assert.deepEqual(engine(), [`GET ${path}`], 'the first GET is the engine’s');

      for (const variant of [path, `${path}/`, `${path}?ignored=1`]) {
        for (const headers of [{}, { origin: 'https://elsewhere.example' }]) {
          const again = await get(variant, { headers });
          assert.deepEqual(again, first, `GET ${variant} ${JSON.stringify(headers)}`);
        }
      }
      const head = await get(path, { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.deepEqual(head.headers, first.headers, 'HEAD: the same headers, Content-Length included');
      assert.equal(head.body.length, 0);
      assert.deepEqual(engine(), [`GET ${path}`], 'later GETs and HEADs did not enter the engine');

      // A CORS preflight and other methods are still the engine's.
      const preflight = await fetch(`${server.issuer}${path}`, {
        method: 'OPTIONS',
        headers: { origin: 'https://rp.example.org', 'access-control-request-method': 'GET' },
      });
      assert.equal(preflight.status, 204);
      assert.equal(preflight.headers.get('access-control-allow-methods'), 'GET');
      const post = await fetch(`${server.issuer}${path}`, { method: 'POST' });
      assert.equal(post.status, 405);
      assert.equal(post.headers.get('allow'), 'GET, HEAD, OPTIONS');
      assert.deepEqual(engine().slice(1), [`OPTIONS ${path}`, `POST ${path}`]);
    });
  }

  it('sends a kept answer as the engine sends its own: the head and the body in one write', async () => {
    // The same application behind a server of the test's, whose sockets count the writes of each answer
    // (one connection per request).
    const writes: number[] = [];
    const counting = createServer(server.app.koa.callback());
    counting.on('connection', (socket: Socket) => {
      const index = writes.push(0) - 1;
      const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
      socket.write = ((...args: unknown[]) => {
        writes[index]! += 1;
        return write(...args);
      }) as Socket['write'];
    });
    await new Promise<void>((resolve) => counting.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = counting.address() as AddressInfo;
      for (const path of ['/.well-known/openid-configuration', '/.well-known/jwks.json']) {
        // The first GET prepares the answer if no earlier test did; the later ones are answered from it.
        await get(path);
        for (const method of ['GET', 'GET', 'HEAD']) {
          const response = await rawRequest(`http://127.0.0.1:${port}/o${path}`, { method });
          assert.equal(response.status, 200);
          assert.equal(writes.at(-1), 1, `${method} ${path}: one write`);
        }
      }
    } finally {
      counting.closeAllConnections();
      await new Promise((resolve) => counting.close(resolve));
    }
  });

  it('keeps the request id and the access line of every answer', async () => {
    for (const [method, id] of [
      ['GET', 'prepared-answer-get'],
      ['HEAD', 'prepared-answer-head'],
    ] as const) {
      const response = await fetch(`${server.issuer}/.well-known/jwks.json?from=test`, {
        method,
        headers: { 'x-request-id': id, 'user-agent': 'prepared-answers-test' },
      });
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('x-request-id'), id);
      const line = harness.logLines
        .map((text) => JSON.parse(text) as Record<string, unknown>)
        .find((entry) => entry.msg === 'request completed' && entry.requestId === id);
      assert.ok(line, `an access line for ${method}`);
      assert.deepEqual(line.req, {
        method,
        url: '/o/.well-known/jwks.json?from=test',
        remoteAddress: '127.0.0.1',
        userAgent: 'prepared-answers-test',
      });
      assert.deepEqual(line.res, { status: 200 });
    }
  });

  it('serves the new keys after a rotation in this process, then answers from them again', async () => {
    const before = await get('/.well-known/jwks.json');
    const rotation = await server.app.keys.rotate({ force: true });
    assert.ok(!kidsIn(before).includes(rotation.nextKid!));
    await server.app.keyStore.reload();

    const engine = watchEngine();
    const rotated = await get('/.well-known/jwks.json');
    assert.ok(kidsIn(rotated).includes(rotation.nextKid!), 'the new next key is published');
    assert.deepEqual(engine, ['GET /.well-known/jwks.json'], 'the new provider instance answered first');
    assert.deepEqual(await get('/.well-known/jwks.json'), rotated);
    assert.deepEqual(engine, ['GET /.well-known/jwks.json'], 'and its answer is kept');
  });

  it('serves the new keys after a rotation this process learns of from the database only', async () => {
    const before = await get('/.well-known/jwks.json');
    // The key service writes the rotation and tells no one: as a rotation by another instance or
    // the CLI, it reaches this server through its periodic look at the database.
    const rotation = await server.app.keys.rotate({ force: true });
    await eventually(
      async () => kidsIn(await get('/.well-known/jwks.json')).includes(rotation.nextKid!),
      'the JWKS publishes the key the rotation created',
    );
    const after = await get('/.well-known/jwks.json');
    assert.notDeepEqual(after.body, before.body);
    assert.ok(kidsIn(after).includes(rotation.activatedKid!));
  });
});
