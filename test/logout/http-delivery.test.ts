import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { after, afterEach, before, describe, it } from 'node:test';
import {
  type Connector,
  createDeliveryPools,
  deliverLogoutToken,
  type DeliveryOutcome,
  type DeliveryRequest,
  directConnector,
  isRetryable,
} from '../../src/logout/http-delivery.ts';
import type { GateOptions } from '../../src/logout/ssrf/target-gate.ts';
import {
  guardedConnector,
  loopbackOnly,
  PUBLIC_V4,
  PUBLIC_V6,
  type Receiver,
  startReceiver,
  tableResolver,
  v4,
  v6,
} from './helpers.ts';
import { eventually } from '../helpers/eventually.ts';
import { type RefusedPort, refusedPort } from '../helpers/refused-port.ts';
import { HOSTILE_TARGETS, hostileResolver, TEST_DNS_TIMEOUT_MS } from './hostile-targets.ts';

// Not a real token: the shape of one, with the characters a JWT uses.
const TOKEN = 'eyJhbGciOiJSUzI1NiIsInR5cCI6ImxvZ291dCtqd3QifQ.eyJzdWIiOiJ0ZXN0In0.c2lnbmF0dXJlLV8';

const development = (overrides: Partial<GateOptions> = {}): GateOptions => ({
  mode: 'development',
  allowPrivateTargets: false,
  resolver: hostileResolver(),
  dnsTimeoutMs: TEST_DNS_TIMEOUT_MS,
  ...overrides,
});

/**
 * A time limit no loopback exchange comes near, even on a loaded machine: the limits a test does not
 * mean to reach (a deadline while the test waits for the status or the connect timeout; a connect
 * timeout while it waits for the deadline). An attempt that reached one ends with its kind (a
 * `request_timeout` for the deadline), which the outcome tells apart: the tests assert what ended an
 * attempt, never how long it took.
 */
const FAR_LIMIT_MS = 10_000;

/** Every connection attempt in this file goes through one of these; none may be refused. */
const refusals: Array<{ address: string }> = [];
afterEach(() => {
  assert.deepEqual(refusals, [], 'a delivery tried to connect to an address outside the test mapping');
});

/** The real connector, but only ever to loopback (allowPrivateTargets tests). */
function realLoopbackConnector() {
  const guarded = loopbackOnly(directConnector);
  return {
    connector: guarded.connector,
    check: () => refusals.push(...guarded.refused),
  };
}

async function deliverToLoopback(receiver: Receiver, overrides: Partial<DeliveryRequest> = {}) {
  const guarded = realLoopbackConnector();
  try {
    return await deliverLogoutToken({
      url: receiver.url(),
      logoutToken: TOKEN,
      gate: development({ allowPrivateTargets: true }),
      connector: guarded.connector,
      ...overrides,
    });
  } finally {
    guarded.check();
  }
}

function expectOutcome<K extends DeliveryOutcome['outcome']>(
  outcome: DeliveryOutcome,
  kind: K,
): Extract<DeliveryOutcome, { outcome: K }> {
  assert.equal(outcome.outcome, kind, JSON.stringify(outcome));
  return outcome as Extract<DeliveryOutcome, { outcome: K }>;
}

/**
 * A worker's pools over `connector`, and a delivery through them to the receiver at `PUBLIC_V4`,
 * each within `requestTimeoutMs`.
 */
function pooledDeliveries(connector: Connector, requestTimeoutMs: number) {
  const pools = createDeliveryPools({ connector, connectTimeoutMs: FAR_LIMIT_MS, requestTimeoutMs });
  const deliver = () =>
    deliverLogoutToken({
      url: `http://${PUBLIC_V4}/bcl`,
      logoutToken: TOKEN,
      gate: development(),
      pools,
      requestTimeoutMs,
    });
  return { pools, deliver };
}

describe('deliverLogoutToken against a loopback receiver', () => {
  let receiver: Receiver;
  let status = 200;
  const respond = { status: () => status };

  before(async () => {
    receiver = await startReceiver((_request, response) => {
      response.statusCode = respond.status();
      response.end('ok');
    });
  });
  after(async () => receiver.close());

  it('POSTs exactly logout_token=<token>, form-encoded, and reports 2xx as success', async () => {
    status = 200;
    receiver.requests.length = 0;
    const outcome = expectOutcome(await deliverToLoopback(receiver), 'success');
    assert.equal(outcome.status, 200);
    assert.equal(outcome.address, '127.0.0.1');
    assert.ok(outcome.elapsedMs >= 0, `elapsedMs ${outcome.elapsedMs}`);
    assert.equal(receiver.requests.length, 1);
    const [received] = receiver.requests;
    assert.equal(received!.method, 'POST');
    assert.equal(received!.url, '/bcl');
    assert.equal(received!.headers['content-type'], 'application/x-www-form-urlencoded');
    assert.equal(received!.body, `logout_token=${TOKEN}`);
    assert.deepEqual([...new URLSearchParams(received!.body)], [['logout_token', TOKEN]]);
    assert.equal(isRetryable(outcome), false);
  });

  it('form-encodes characters that need it', async () => {
    status = 204;
    receiver.requests.length = 0;
    const token = 'a+b/c=d&e f';
    expectOutcome(await deliverToLoopback(receiver, { logoutToken: token }), 'success');
    assert.equal(receiver.requests[0]!.body, 'logout_token=a%2Bb%2Fc%3Dd%26e+f');
  });

  for (const [code, kind, retryable] of [
    [500, 'server_error', true],
    [503, 'server_error', true],
    [404, 'rp_client_error', false],
    [400, 'rp_client_error', false],
  ] as const) {
    it(`reports ${code} as ${kind}`, async () => {
      status = code;
      const outcome = expectOutcome(await deliverToLoopback(receiver), kind);
      assert.equal(outcome.status, code);
      assert.equal(isRetryable(outcome), retryable);
    });
  }

  it('refuses the loopback receiver when private targets are not allowed, without connecting', async () => {
    receiver.requests.length = 0;
    const { connector, attempts } = guardedConnector();
    const outcome = await deliverLogoutToken({
      url: receiver.url(),
      logoutToken: TOKEN,
      gate: development(),
      connector,
    });
    const refused = expectOutcome(outcome, 'unsafe_target_ip');
    assert.equal(refused.addressClass, 'loopback');
    assert.deepEqual(attempts, []);
    assert.equal(receiver.requests.length, 0);
  });
});

describe('deliverLogoutToken never follows a redirect', () => {
  let redirecting: Receiver;
  let target: Receiver;
  before(async () => {
    target = await startReceiver((_request, response) => response.end('should never be reached'));
    redirecting = await startReceiver((_request, response) => {
      response.statusCode = 302;
      response.setHeader('location', target.url('/stolen'));
      response.end();
    });
  });
  after(async () => {
    await redirecting.close();
    await target.close();
  });

  for (const code of [301, 302, 303, 307, 308]) {
    it(`reports ${code} as redirect_blocked and never requests the Location`, async () => {
      const receiver = await startReceiver((_request, response) => {
        response.statusCode = code;
        response.setHeader('location', target.url('/stolen'));
        response.end();
      });
      try {
        const outcome = expectOutcome(await deliverToLoopback(receiver), 'redirect_blocked');
        assert.equal(outcome.status, code);
        assert.equal(isRetryable(outcome), false);
        assert.equal(receiver.requests.length, 1);
        assert.equal(target.requests.length, 0);
      } finally {
        await receiver.close();
      }
    });
  }

  it('leaves the second server untouched after a 302 with Location', async () => {
    expectOutcome(await deliverToLoopback(redirecting), 'redirect_blocked');
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(redirecting.requests.length, 1);
    assert.equal(target.requests.length, 0);
  });
});

describe('deliverLogoutToken is bounded in time and never reads the body', () => {
  it('gives up on a receiver that never answers (request timeout)', async () => {
    const silent = await startReceiver((_request, response) => {
      // Reads the request, never responds; hangs up only long after, so that an attempt with no
      // request timeout ends as connection_failed (a failure here) instead of never.
      response.socket!.setTimeout(FAR_LIMIT_MS, () => response.socket!.destroy());
    });
    try {
      const outcome = expectOutcome(
        await deliverToLoopback(silent, { requestTimeoutMs: 300, connectTimeoutMs: FAR_LIMIT_MS }),
        'network_error',
      );
      assert.equal(outcome.failure, 'request_timeout');
      assert.equal(outcome.detail, 'no response within 300 ms');
      assert.equal(outcome.address, '127.0.0.1');
      assert.equal(isRetryable(outcome), true);
      await eventually(() => silent.requests.length === 1, 'the receiver got the request');
    } finally {
      await silent.close();
    }
  });

  it('gives up on a connection that never completes (connect timeout)', async () => {
    const abandoned: AbortSignal[] = [];
    const connector: Connector = (_target, signal) => {
      abandoned.push(signal);
      return new Promise<net.Socket>(() => {});
    };
    // The overall deadline far above the connect timeout: only the connect timeout can end this.
    const outcome = expectOutcome(
      await deliverLogoutToken({
        url: `http://${PUBLIC_V4}/bcl`,
        logoutToken: TOKEN,
        gate: development(),
        connector,
        connectTimeoutMs: 150,
        requestTimeoutMs: FAR_LIMIT_MS,
      }),
      'network_error',
    );
    assert.equal(outcome.failure, 'connect_timeout');
    assert.equal(outcome.detail, 'no connection within 150 ms');
    assert.equal(abandoned.length, 1);
    assert.equal(abandoned[0]!.aborted, true, 'the connector was not told to give up');
  });

  it('ends a slow connect at the overall deadline when that comes first', async () => {
    const abandoned: AbortSignal[] = [];
    const connector: Connector = (_target, signal) => {
      abandoned.push(signal);
      return new Promise<net.Socket>(() => {});
    };
    const outcome = expectOutcome(
      await deliverLogoutToken({
        url: `http://${PUBLIC_V4}/bcl`,
        logoutToken: TOKEN,
        gate: development(),
        connector,
        connectTimeoutMs: FAR_LIMIT_MS,
        requestTimeoutMs: 150,
      }),
      'network_error',
    );
    assert.equal(outcome.failure, 'request_timeout');
    assert.equal(outcome.detail, 'no response within 150 ms');
    assert.equal(abandoned[0]?.aborted, true, 'the connector was not told to give up');
  });

  it('counts the gate in the total time: a resolver slower than the whole attempt ends it at the deadline', async () => {
    const { connector, attempts } = guardedConnector();
    // slow.rp.test never answers; the resolver's own limit far above the attempt's.
    const outcome = expectOutcome(
      await deliverLogoutToken({
        url: 'https://slow.rp.test/bcl',
        logoutToken: TOKEN,
        gate: development({ dnsTimeoutMs: FAR_LIMIT_MS }),
        connector,
        requestTimeoutMs: 200,
      }),
      'dns_resolve_failed',
    );
    assert.equal(outcome.detail, 'slow.rp.test was still resolving when the delivery ran out of time');
    assert.deepEqual(attempts, []);
    assert.equal(isRetryable(outcome), true);
  });

  it('measures elapsed time with the injected clock', async () => {
    let now = 1000;
    const clock = () => (now += 7);
    const outcome = await deliverLogoutToken({
      url: 'http://10.0.0.1/bcl',
      logoutToken: TOKEN,
      gate: development(),
      connector: guardedConnector().connector,
      clock,
    });
    assert.equal(outcome.outcome, 'unsafe_target_ip');
    assert.equal(outcome.elapsedMs, 7);
  });

  it('reports a refused connection as a retryable network error', async () => {
    const refused = await refusedPort();
    const guarded = realLoopbackConnector();
    const delivered = await deliverLogoutToken({
      url: `http://127.0.0.1:${refused.port}/bcl`,
      logoutToken: TOKEN,
      gate: development({ allowPrivateTargets: true }),
      connector: guarded.connector,
    }).finally(() => refused.close());
    const outcome = expectOutcome(delivered, 'network_error');
    guarded.check();
    assert.equal(outcome.failure, 'connection_failed');
    assert.match(outcome.detail, /ECONNREFUSED/);
    assert.equal(isRetryable(outcome), true);
  });

  it('does not read a huge streamed body: it returns on the status and closes the connection', async () => {
    let bytesWritten = 0;
    let closedByClient = false;
    const chunk = Buffer.alloc(64 * 1024, 'x');
    const streaming = await startReceiver((_request, response) => {
      response.writeHead(200, { 'content-type': 'application/octet-stream' });
      // Up to 1 GiB, written as fast as the client reads it.
      const pump = () => {
        while (bytesWritten < 1024 ** 3) {
          bytesWritten += chunk.length;
          if (!response.write(chunk)) return void response.once('drain', pump);
        }
        response.end();
      };
      response.on('close', () => (closedByClient = true));
      pump();
    });
    try {
      const outcome = expectOutcome(await deliverToLoopback(streaming), 'success');
      assert.equal(outcome.status, 200);
      await eventually(() => closedByClient, 'the client closes the connection');
      // Read after the close: all the server could ever push. A client that read the body would
      // have taken the whole GiB.
      assert.ok(bytesWritten < 64 * 1024 * 1024, `the server could push ${bytesWritten} bytes`);
    } finally {
      await streaming.close();
    }
  });
});

describe('deliverLogoutToken ends on the status of a receiver that never ends its body', () => {
  /** What the receiver's side of each connection saw: closed by the client, or still open. */
  interface Stalling {
    receiver: Receiver;
    /** One entry per request: whether the connection it came on has closed. */
    closed: boolean[];
  }
  /** Answers `status` and its headers (a body announced, or chunked), then writes nothing more. */
  async function stallingReceiver(status: number, framing: 'content-length' | 'chunked'): Promise<Stalling> {
    const closed: boolean[] = [];
    const receiver = await startReceiver((_request, response) => {
      const index = closed.push(false) - 1;
      response.socket!.once('close', () => (closed[index] = true));
      if (status >= 300 && status < 400) response.setHeader('location', 'http://127.0.0.1:9/elsewhere');
      if (framing === 'content-length') {
        response.writeHead(status, { 'content-length': '4096' });
        response.write('the first bytes of a short body that never comes');
      } else {
        response.writeHead(status, { 'content-type': 'text/plain' });
        response.flushHeaders();
      }
    });
    return { receiver, closed };
  }

  /** Timers and sockets of this process, by kind (what a finished attempt must not leave behind). */
  const resources = () => {
    const counts = new Map<string, number>();
    for (const kind of process.getActiveResourcesInfo()) counts.set(kind, (counts.get(kind) ?? 0) + 1);
    return { timers: counts.get('Timeout') ?? 0, sockets: counts.get('TCPSocketWrap') ?? 0 };
  };

  for (const [status, kind] of [
    [200, 'success'],
    [202, 'success'],
    [302, 'redirect_blocked'],
    [404, 'rp_client_error'],
    [503, 'server_error'],
  ] as const) {
    for (const framing of ['content-length', 'chunked'] as const) {
      it(`reports ${status} as ${kind} at once and closes the connection (${framing} body that never ends)`, async () => {
        const { receiver, closed } = await stallingReceiver(status, framing);
        try {
          const before = resources();
          const outcome = expectOutcome(
            await deliverToLoopback(receiver, { requestTimeoutMs: FAR_LIMIT_MS }),
            kind,
          );
          assert.equal(outcome.status, status);
          await eventually(() => closed[0] === true, 'the stalled connection is closed');
          assert.equal(receiver.requests.length, 1, 'never retried nor followed');
          await eventually(
            () => resources().sockets <= before.sockets && resources().timers <= before.timers,
            `no socket or timer left behind (${JSON.stringify(resources())} after, ${JSON.stringify(before)} before)`,
          );
        } finally {
          await receiver.close();
        }
      });
    }
  }

  it("through a worker's pools: closes the stalled connection instead of reusing it, and keeps one whose response arrived whole", async () => {
    let stall = true;
    const closed: boolean[] = [];
    const receiver = await startReceiver((_request, response) => {
      const index = closed.push(false) - 1;
      response.socket!.once('close', () => (closed[index] = true));
      if (stall) {
        response.writeHead(200, { 'content-length': '100' });
        response.write('partial');
      } else response.end('ok');
    });
    let connections = 0;
    const guarded = guardedConnector({ [PUBLIC_V4]: receiver.port });
    const counting: Connector = (target, signal) => {
      connections += 1;
      return guarded.connector(target, signal);
    };
    const { pools, deliver } = pooledDeliveries(counting, FAR_LIMIT_MS);
    try {
      expectOutcome(await deliver(), 'success');
      await eventually(() => closed[0] === true, 'the stalled connection is closed');

      stall = false;
      expectOutcome(await deliver(), 'success');
      assert.equal(connections, 2, 'the half-read connection was reused');
      await new Promise((resolve) => setImmediate(resolve));
      expectOutcome(await deliver(), 'success');
      assert.equal(connections, 2, 'a connection whose response arrived whole is kept for the next delivery');
      assert.deepEqual(closed, [true, false, false]);
      assert.equal(receiver.requests.length, 3);
      refusals.push(...guarded.refused);
    } finally {
      await pools.close();
      await receiver.close();
    }
  });
});

describe('deliverLogoutToken names an answer that is not an HTTP/1.1 response to the POST', () => {
  /**
   * A receiver on 127.0.0.1 that writes `reply` as raw bytes once the whole request has arrived; it
   * records whether each connection was closed (by the client, or by itself).
   */
  async function rawReceiver(reply: (socket: net.Socket) => void) {
    const sockets = new Set<net.Socket>();
    const server = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => undefined);
      let received = '';
      socket.on('data', (chunk: Buffer) => {
        const before = received.length;
        received += chunk.toString('latin1');
        if (before < received.length && received.endsWith(`logout_token=${TOKEN}`)) reply(socket);
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return {
      port: (server.address() as net.AddressInfo).port,
      open: () => sockets.size,
      close: async () => {
        for (const socket of sockets) socket.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      },
    };
  }

  const cases: ReadonlyArray<{
    what: string;
    reply: (socket: net.Socket) => void;
    failure: 'bad_response' | 'connection_failed';
    detail: string;
  }> = [
    {
      what: 'a 101 upgrade',
      reply: (socket) =>
        socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n'),
      failure: 'bad_response',
      detail: 'the receiver switched protocols (101) instead of answering the POST (UND_ERR_SOCKET)',
    },
    {
      what: 'a 100 Continue nobody asked for, then 200',
      reply: (socket) =>
        socket.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n'),
      failure: 'bad_response',
      detail:
        'the receiver sent 100 Continue, which a POST without Expect: 100-continue does not accept (UND_ERR_SOCKET)',
    },
    {
      what: 'an HTTP/0.9 answer (a body with no status line)',
      reply: (socket) => socket.end(`<html>${TOKEN}</html>\n`),
      failure: 'bad_response',
      detail: 'the response is not valid HTTP/1.1 (HTTPParserError)',
    },
    {
      what: 'binary garbage',
      reply: (socket) => socket.write(Buffer.from([0, 1, 2, 0xff, 0xfe, 13, 10, 13, 10])),
      failure: 'bad_response',
      detail: 'the response is not valid HTTP/1.1 (HTTPParserError)',
    },
    {
      what: 'two Content-Lengths that disagree',
      reply: (socket) => socket.write('HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab'),
      failure: 'bad_response',
      detail: 'the response is not valid HTTP/1.1 (UND_ERR_RES_CONTENT_LENGTH_MISMATCH)',
    },
    {
      what: 'headers of 1 MB',
      reply: (socket) => socket.write(`HTTP/1.1 200 OK\r\nx-padding: ${'a'.repeat(1024 * 1024)}\r\n\r\n`),
      failure: 'bad_response',
      detail: 'the response headers are too large (UND_ERR_HEADERS_OVERFLOW)',
    },
    {
      // RFC 9110 §15: three digits, but no HTTP status; not a server error.
      what: 'a status outside 100–599 (742)',
      reply: (socket) => socket.end('HTTP/1.1 742 Odd\r\ncontent-length: 0\r\n\r\n'),
      failure: 'bad_response',
      detail: 'the receiver answered with status 742, which is no HTTP status (100–599)',
    },
    {
      // Not an interim answer (1xx) to wait past for the final one.
      what: 'a status below 100 (099) on a connection it keeps open',
      reply: (socket) => socket.write('HTTP/1.1 099 Odd\r\ncontent-length: 0\r\n\r\n'),
      failure: 'bad_response',
      detail: 'the receiver answered with status 99, which is no HTTP status (100–599)',
    },
    {
      what: 'a close without an answer',
      reply: (socket) => socket.end(),
      failure: 'connection_failed',
      detail: 'the receiver closed the connection without answering (UND_ERR_SOCKET)',
    },
  ];

  for (const pooled of [false, true]) {
    for (const { what, reply, failure, detail } of cases) {
      it(`reports ${what} as a retryable ${failure} that says so${pooled ? " (a worker's pools)" : ''}`, async () => {
        const receiver = await rawReceiver(reply);
        const guarded = guardedConnector({ [PUBLIC_V4]: receiver.port });
        const pools = pooled
          ? createDeliveryPools({
              connector: guarded.connector,
              connectTimeoutMs: FAR_LIMIT_MS,
              requestTimeoutMs: FAR_LIMIT_MS,
            })
          : undefined;
        try {
          const outcome = expectOutcome(
            await deliverLogoutToken({
              url: `http://${PUBLIC_V4}/bcl`,
              logoutToken: TOKEN,
              gate: development(),
              connector: guarded.connector,
              requestTimeoutMs: FAR_LIMIT_MS,
              ...(pools ? { pools } : {}),
            }),
            'network_error',
          );
          assert.equal(outcome.failure, failure);
          assert.equal(outcome.detail, detail);
          assert.equal(isRetryable(outcome), true);
          assert.ok(!JSON.stringify(outcome).includes(TOKEN), 'the outcome carries the token');
          await eventually(() => receiver.open() === 0, 'the connection is closed');
          refusals.push(...guarded.refused);
        } finally {
          await pools?.close();
          await receiver.close();
        }
      });
    }
  }

  it("through a worker's pools: closes a connection whose answer had no HTTP status, even one that arrived whole", async () => {
    // Each connection's requests, in the order they arrived; 742 first, whole and with the
    // connection kept open, then proper answers.
    const requests = new Map<net.Socket, number>();
    let closedFirst = false;
    const receiver = await rawReceiver((socket) => {
      if (requests.size === 0) socket.once('close', () => (closedFirst = true));
      requests.set(socket, (requests.get(socket) ?? 0) + 1);
      const first = [...requests.values()].reduce((sum, count) => sum + count, 0) === 1;
      socket.write(`HTTP/1.1 ${first ? '742 Odd' : '200 OK'}\r\ncontent-length: 0\r\n\r\n`);
    });
    const guarded = guardedConnector({ [PUBLIC_V4]: receiver.port });
    const { pools, deliver } = pooledDeliveries(guarded.connector, FAR_LIMIT_MS);
    try {
      const refused = expectOutcome(await deliver(), 'network_error');
      assert.equal(refused.failure, 'bad_response');
      await new Promise((resolve) => setImmediate(resolve));
      expectOutcome(await deliver(), 'success');
      assert.deepEqual(
        [...requests.values()],
        [1, 1],
        'the connection that answered 742 carried the next delivery',
      );
      await eventually(() => closedFirst, 'the connection that answered 742 is closed');
      refusals.push(...guarded.refused);
    } finally {
      await pools.close();
      await receiver.close();
    }
  });
});

describe('deliverLogoutToken connects only to the address the gate just checked', () => {
  let receiver: Receiver;
  before(async () => {
    receiver = await startReceiver((_request, response) => response.end());
  });
  after(async () => receiver.close());

  it('connects to the public address a name resolved to (mapped to loopback), with the name as Host and server name', async () => {
    receiver.requests.length = 0;
    const resolver = tableResolver({ 'rp.public.test': [v4(PUBLIC_V4)] });
    const { connector, attempts, refused } = guardedConnector({ [PUBLIC_V4]: receiver.port });
    const outcome = expectOutcome(
      await deliverLogoutToken({
        url: 'http://rp.public.test:8080/backchannel?tenant=1',
        logoutToken: TOKEN,
        gate: development({ resolver }),
        connector,
      }),
      'success',
    );
    refusals.push(...refused);
    assert.equal(outcome.address, PUBLIC_V4);
    assert.deepEqual(attempts, [
      { address: PUBLIC_V4, family: 4, port: 8080, protocol: 'http:', servername: 'rp.public.test' },
    ]);
    assert.deepEqual(resolver.lookups, ['rp.public.test']);
    assert.equal(receiver.requests[0]!.headers.host, 'rp.public.test:8080');
    assert.equal(receiver.requests[0]!.url, '/backchannel?tenant=1');
    assert.equal(receiver.requests[0]!.body, `logout_token=${TOKEN}`);
  });

  it('pins an IPv6 answer and an IP literal (no server name for a literal)', async () => {
    const { connector, attempts, refused } = guardedConnector({ [PUBLIC_V6]: receiver.port });
    expectOutcome(
      await deliverLogoutToken({
        url: `https://[${PUBLIC_V6}]/bcl`,
        logoutToken: TOKEN,
        gate: development(),
        connector: (target, signal) =>
          // The receiver speaks plain HTTP; the pinned target still says https.
          connector({ ...target, protocol: 'http:' }, signal),
      }),
      'success',
    );
    refusals.push(...refused);
    assert.equal(attempts.length, 1);
    assert.equal(attempts[0]!.address, PUBLIC_V6);
    assert.equal(attempts[0]!.servername, null);
    assert.equal(attempts[0]!.port, 443);
  });

  it('refuses with unsafe_target_ip, and does not connect, when the name rebinds to a private address after the write', async () => {
    const resolver = tableResolver({ 'rebind.rp.test': { sequence: [[v4(PUBLIC_V4)], [v4('127.0.0.1')]] } });
    const gate = development({ resolver });
    const { connector, attempts } = guardedConnector({
      [PUBLIC_V4]: receiver.port,
      '127.0.0.1': receiver.port,
    });
    receiver.requests.length = 0;

    const { checkBackchannelTarget } = await import('../../src/logout/ssrf/target-gate.ts');
    const atWrite = await checkBackchannelTarget('http://rebind.rp.test/bcl', gate);
    assert.ok(atWrite.ok, 'the first answer is public: the write is accepted');

    const outcome = expectOutcome(
      await deliverLogoutToken({ url: 'http://rebind.rp.test/bcl', logoutToken: TOKEN, gate, connector }),
      'unsafe_target_ip',
    );
    assert.equal(outcome.gateReason, 'unsafe_target_ip');
    assert.equal(outcome.addressClass, 'loopback');
    assert.deepEqual(attempts, [], 'connected although the gate refused');
    assert.equal(receiver.requests.length, 0);
    assert.deepEqual(resolver.lookups, ['rebind.rp.test', 'rebind.rp.test']);
    assert.equal(isRetryable(outcome), false);
  });

  it('resolves exactly once per delivery: the connection uses the answer the gate judged', async () => {
    // A second lookup would now answer loopback; the delivery must not make one.
    const resolver = tableResolver({ 'once.rp.test': { sequence: [[v4(PUBLIC_V4)], [v4('127.0.0.1')]] } });
    const { connector, attempts, refused } = guardedConnector({ [PUBLIC_V4]: receiver.port });
    expectOutcome(
      await deliverLogoutToken({
        url: 'http://once.rp.test/bcl',
        logoutToken: TOKEN,
        gate: development({ resolver }),
        connector,
      }),
      'success',
    );
    refusals.push(...refused);
    assert.deepEqual(resolver.lookups, ['once.rp.test']);
    assert.deepEqual(
      attempts.map((attempt) => attempt.address),
      [PUBLIC_V4],
    );
  });

  it('with private targets allowed, refuses a name that rebinds to a metadata service inside link-local or CGNAT space', async () => {
    for (const metadata of ['169.254.170.2', '169.254.170.23', '100.100.100.200']) {
      const resolver = tableResolver({
        'lan-rp.test': { sequence: [[v4('10.0.0.5')], [v4(metadata)]] },
      });
      const gate = development({ allowPrivateTargets: true, resolver });
      // The receiver stands in for the metadata service: a delivery that reaches it is a finding.
      const { connector, attempts } = guardedConnector({
        '10.0.0.5': receiver.port,
        [metadata]: receiver.port,
      });
      receiver.requests.length = 0;
      const { checkBackchannelTarget } = await import('../../src/logout/ssrf/target-gate.ts');
      assert.ok((await checkBackchannelTarget('http://lan-rp.test/bcl', gate)).ok, 'the write is accepted');

      const outcome = expectOutcome(
        await deliverLogoutToken({ url: 'http://lan-rp.test/bcl', logoutToken: TOKEN, gate, connector }),
        'unsafe_target_ip',
      );
      assert.equal(outcome.addressClass, 'cloud_metadata', metadata);
      assert.deepEqual(attempts, [], `connected to ${metadata}`);
      assert.equal(receiver.requests.length, 0);
    }
  });

  it('refuses an http URI in production at delivery time (scheme changed since the write)', async () => {
    const { connector, attempts } = guardedConnector({ [PUBLIC_V4]: receiver.port });
    const outcome = expectOutcome(
      await deliverLogoutToken({
        url: `http://${PUBLIC_V4}/bcl`,
        logoutToken: TOKEN,
        gate: development({ mode: 'production' }),
        connector,
      }),
      'unsafe_target_ip',
    );
    assert.equal(outcome.gateReason, 'scheme_not_allowed');
    assert.deepEqual(attempts, []);
  });
});

describe('deliverLogoutToken tries the next checked address only when the one before could not be reached', () => {
  const SECOND_V4 = '93.184.215.15';
  let receiver: Receiver;
  let other: Receiver;
  /** A loopback port nothing listens on: a connection to it is refused. */
  let closedPort: number;
  let refused: RefusedPort;
  before(async () => {
    receiver = await startReceiver((_request, response) => response.end());
    other = await startReceiver((_request, response) => response.end());
    refused = await refusedPort();
    closedPort = refused.port;
  });
  after(async () => {
    refused.close();
    await receiver.close();
    await other.close();
  });

  const dual = (answers: ReturnType<typeof v4>[]) =>
    development({ resolver: tableResolver({ 'dual.rp.test': answers }) });
  /** One delivery to `http://dual.rp.test/bcl`, the name resolving to `answers`. */
  const deliverDual = (
    answers: ReturnType<typeof v4>[],
    connector: Connector,
    options: Partial<Parameters<typeof deliverLogoutToken>[0]> = {},
  ) =>
    deliverLogoutToken({
      url: 'http://dual.rp.test/bcl',
      logoutToken: TOKEN,
      gate: dual(answers),
      connector,
      ...options,
    });
  /** Addresses mapped to loopback ports; `hang` ones never connect (a dropped SYN). */
  function connectorFor(mapping: Record<string, number>, hang: string[] = []) {
    const guarded = guardedConnector(mapping);
    const connector: Connector = (target, signal) => {
      if (!hang.includes(target.address)) return guarded.connector(target, signal);
      guarded.attempts.push(target);
      return new Promise<net.Socket>(() => {});
    };
    return { connector, attempts: guarded.attempts, check: () => refusals.push(...guarded.refused) };
  }

  for (const pooled of [false, true]) {
    it(`delivers to the IPv4 address when the IPv6 one refuses the connection${pooled ? " (a worker's pools)" : ''}`, async () => {
      receiver.requests.length = 0;
      const { connector, attempts, check } = connectorFor({
        [PUBLIC_V6]: closedPort,
        [PUBLIC_V4]: receiver.port,
      });
      const pools = pooled
        ? createDeliveryPools({
            connector,
            connectTimeoutMs: FAR_LIMIT_MS,
            requestTimeoutMs: FAR_LIMIT_MS,
          })
        : undefined;
      try {
        const outcome = expectOutcome(
          await deliverDual([v6(PUBLIC_V6), v4(PUBLIC_V4)], connector, pools ? { pools } : {}),
          'success',
        );
        check();
        assert.equal(outcome.address, PUBLIC_V4);
        assert.deepEqual(
          attempts.map((attempt) => [attempt.address, attempt.servername]),
          [
            [PUBLIC_V6, 'dual.rp.test'],
            [PUBLIC_V4, 'dual.rp.test'],
          ],
        );
        assert.equal(receiver.requests.length, 1);
        assert.equal(receiver.requests[0]!.headers.host, 'dual.rp.test');
      } finally {
        await pools?.close();
      }
    });
  }

  it('moves on after the connect timeout of an address that never connects, within the deadline', async () => {
    receiver.requests.length = 0;
    const { connector, attempts, check } = connectorFor({ [PUBLIC_V4]: receiver.port }, [PUBLIC_V6]);
    // The deadline far above the connect timeout: only the connect timeout can move the attempt on
    // (at the deadline it would end as a request_timeout instead).
    const outcome = expectOutcome(
      await deliverDual([v6(PUBLIC_V6), v4(PUBLIC_V4)], connector, {
        connectTimeoutMs: 150,
        requestTimeoutMs: FAR_LIMIT_MS,
      }),
      'success',
    );
    check();
    assert.equal(outcome.address, PUBLIC_V4);
    assert.deepEqual(
      attempts.map((attempt) => attempt.address),
      [PUBLIC_V6, PUBLIC_V4],
    );
    assert.equal(receiver.requests.length, 1);
  });

  it("through a worker's pools, tries an address that could not be reached lately after the others, until that is forgotten", async () => {
    receiver.requests.length = 0;
    const { connector, attempts, check } = connectorFor({ [PUBLIC_V4]: receiver.port }, [PUBLIC_V6]);
    let now = 0;
    const pools = createDeliveryPools({
      connector,
      connectTimeoutMs: 150,
      requestTimeoutMs: 2000,
      unreachableForgetMs: 60_000,
      clock: () => now,
    });
    const deliverOnce = async () => {
      attempts.length = 0;
      const outcome = expectOutcome(
        await deliverDual([v6(PUBLIC_V6), v4(PUBLIC_V4)], connector, { pools }),
        'success',
      );
      check();
      assert.equal(outcome.address, PUBLIC_V4);
      return attempts.map((attempt) => attempt.address);
    };
    try {
      assert.deepEqual(await deliverOnce(), [PUBLIC_V6, PUBLIC_V4]);
      // Connections to IPv4 may be kept alive or opened anew; IPv6 is not tried first.
      const neverV6 = (tried: string[]) => assert.ok(!tried.includes(PUBLIC_V6), tried.join(', '));
      neverV6(await deliverOnce());
      now += 59_000;
      neverV6(await deliverOnce());
      now += 2_000;
      const forgotten = await deliverOnce();
      assert.equal(forgotten[0], PUBLIC_V6, 'forgotten after a minute: tried first again');
      assert.equal(receiver.requests.length, 4);
    } finally {
      await pools.close();
    }
  });

  it('ends at the deadline when no address connects: the time is bounded, not multiplied', async () => {
    const hanging = ['93.184.215.20', '93.184.215.21', '93.184.215.22'];
    const { connector, attempts, check } = connectorFor({}, hanging);
    // Three connect timeouts would outlast the deadline, which ends the attempt: usually during the
    // second address's connect, but on a loaded machine it may fire before the first one's timeout
    // (two timers; their order is the machine's), so one or two addresses are tried, never all.
    const outcome = expectOutcome(
      await deliverDual(hanging.map(v4), connector, { connectTimeoutMs: 200, requestTimeoutMs: 300 }),
      'network_error',
    );
    check();
    const tried = attempts.map((attempt) => attempt.address);
    assert.equal(outcome.failure, 'request_timeout');
    assert.ok(tried.length >= 1 && tried.length < hanging.length, `tried ${tried.join(', ')}`);
    assert.deepEqual(tried, hanging.slice(0, tried.length));
    assert.equal(outcome.address, tried.at(-1));
    const said = tried.map((address, index) =>
      index < tried.length - 1
        ? `${address}: no connection within 200 ms`
        : `${address}: no response within 300 ms`,
    );
    assert.equal(outcome.detail, tried.length === 1 ? 'no response within 300 ms' : said.join('; '));
  });

  it('tries at most four addresses, and says why each failed', async () => {
    const refusing = ['93.184.215.30', '93.184.215.31', '93.184.215.32', '93.184.215.33', '93.184.215.34'];
    const { connector, attempts, check } = connectorFor(
      Object.fromEntries(refusing.map((address) => [address, closedPort])),
    );
    const outcome = expectOutcome(await deliverDual(refusing.map(v4), connector), 'network_error');
    check();
    assert.equal(outcome.failure, 'connection_failed');
    assert.equal(outcome.address, refusing[3]);
    assert.deepEqual(
      attempts.map((attempt) => attempt.address),
      refusing.slice(0, 4),
    );
    assert.equal(
      outcome.detail,
      refusing
        .slice(0, 4)
        .map((address) => `${address}: connection failed (ECONNREFUSED)`)
        .join('; '),
    );
    assert.equal(isRetryable(outcome), true);
  });

  it('never sends twice: a request sent to the first address that got no answer is not sent to the second', async () => {
    const dropping = await startReceiver((request) => request.socket.destroy());
    try {
      other.requests.length = 0;
      const { connector, attempts, check } = connectorFor({
        [PUBLIC_V4]: dropping.port,
        [SECOND_V4]: other.port,
      });
      const outcome = expectOutcome(
        await deliverDual([v4(PUBLIC_V4), v4(SECOND_V4)], connector),
        'network_error',
      );
      check();
      assert.equal(outcome.failure, 'connection_failed');
      assert.equal(outcome.address, PUBLIC_V4);
      assert.equal(dropping.requests.length, 1);
      assert.deepEqual(
        attempts.map((attempt) => attempt.address),
        [PUBLIC_V4],
      );
      assert.equal(other.requests.length, 0);
    } finally {
      await dropping.close();
    }
  });

  it('never sends twice: an answer of the first address, even 503, is the outcome', async () => {
    const failing = await startReceiver((_request, response) => {
      response.statusCode = 503;
      response.end();
    });
    try {
      other.requests.length = 0;
      const { connector, attempts, check } = connectorFor({
        [PUBLIC_V4]: failing.port,
        [SECOND_V4]: other.port,
      });
      const outcome = expectOutcome(
        await deliverDual([v4(PUBLIC_V4), v4(SECOND_V4)], connector),
        'server_error',
      );
      check();
      assert.equal(outcome.address, PUBLIC_V4);
      assert.equal(attempts.length, 1);
      assert.equal(other.requests.length, 0);
    } finally {
      await failing.close();
    }
  });

  it('does not move on after a TLS failure (the host was reached)', async () => {
    other.requests.length = 0;
    const { connector: mapped, attempts, check } = connectorFor({ [SECOND_V4]: other.port });
    const connector: Connector = (target, signal) =>
      target.address === PUBLIC_V4
        ? (attempts.push(target),
          Promise.reject(
            Object.assign(new Error('certificate mismatch'), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' }),
          ))
        : mapped(target, signal);
    const outcome = expectOutcome(
      await deliverDual([v4(PUBLIC_V4), v4(SECOND_V4)], connector),
      'network_error',
    );
    check();
    assert.equal(outcome.failure, 'tls_failed');
    assert.equal(attempts.length, 1);
    assert.equal(other.requests.length, 0);
  });

  it('still refuses the whole delivery, connecting nowhere, when any answer is unsafe', async () => {
    const { connector, attempts, check } = connectorFor({
      [PUBLIC_V6]: closedPort,
      [PUBLIC_V4]: receiver.port,
    });
    const outcome = expectOutcome(
      await deliverDual([v6(PUBLIC_V6), v4(PUBLIC_V4), v4('10.0.0.1')], connector),
      'unsafe_target_ip',
    );
    check();
    assert.equal(outcome.addressClass, 'private');
    assert.deepEqual(attempts, []);
  });
});

describe('deliverLogoutToken refuses every hostile target at delivery, without connecting', () => {
  for (const target of HOSTILE_TARGETS) {
    it(`refuses ${target.what} (${target.uri}) with ${target.reason}`, async () => {
      const { connector, attempts } = guardedConnector();
      const outcome = await deliverLogoutToken({
        url: target.uri,
        logoutToken: TOKEN,
        gate: development(),
        connector,
      });
      assert.equal(outcome.outcome, target.reason, JSON.stringify(outcome));
      if (outcome.outcome === 'unsafe_target_ip') {
        assert.equal(outcome.gateReason, 'unsafe_target_ip');
        assert.equal(outcome.addressClass, target.addressClass);
      }
      assert.deepEqual(attempts, [], `tried to connect to ${JSON.stringify(attempts)}`);
      // An unsafe target is final; a host that did not resolve may resolve later (a resolver outage).
      assert.equal(isRetryable(outcome), target.reason === 'dns_resolve_failed');
      assert.ok(!JSON.stringify(outcome).includes(TOKEN), 'the outcome carries the token');
    });
  }
});
