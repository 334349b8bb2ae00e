import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startCommandMetricsListener } from '../../src/cli/metrics-listener.ts';
import { loadConfig } from '../../src/config/load.ts';
import type { HttpServerLimits } from '../../src/http/server-limits.ts';
import { createLogger } from '../../src/logging/logger.ts';
import { bearerTokenMatches, type MetricsListener, startMetricsListener } from '../../src/metrics/http.ts';
import { createMetrics, METRIC_NAMES } from '../../src/metrics/registry.ts';
import { createLeakHarness } from '../helpers/leak-harness.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { heldConnection, sendAndWaitForClose } from '../http/held-connections.ts';

const SECTION_I = {
  aa_oidc_tokens_issued_total: 'counter',
  aa_oidc_authorize_denied_total: 'counter',
  aa_oidc_policy_rejections_total: 'counter',
  aa_oidc_code_reuse_audit_misses_total: 'counter',
  aa_oidc_audit_receiver_failures_total: 'counter',
  aa_oidc_bcl_dispatches_total: 'counter',
  aa_oidc_bcl_delivery_seconds: 'histogram',
  aa_oidc_imported_secret_checks_total: 'counter',
  aa_oidc_client_auth_failures_total: 'counter',
  aa_oidc_aa_poll_cycles_total: 'counter',
  aa_oidc_aa_poll_last_success_timestamp_seconds: 'gauge',
} as const;

function assertExposesSectionI(text: string) {
  for (const [name, type] of Object.entries(SECTION_I)) {
    assert.match(text, new RegExp(`^# HELP ${name} \\S.*$`, 'm'), `HELP line for ${name}`);
    assert.match(text, new RegExp(`^# TYPE ${name} ${type}$`, 'm'), `TYPE line for ${name}`);
  }
}

/** The labels of each metric: the spec's sets, bounded values only, never a user identifier. */
const LABELS: Record<keyof typeof SECTION_I, readonly string[]> = {
  aa_oidc_tokens_issued_total: ['client_id', 'grant_type', 'format'],
  aa_oidc_authorize_denied_total: ['reason'],
  aa_oidc_policy_rejections_total: ['stage', 'reason'],
  aa_oidc_code_reuse_audit_misses_total: ['client_id'],
  aa_oidc_audit_receiver_failures_total: ['signal', 'receiver'],
  aa_oidc_bcl_dispatches_total: ['client_id', 'outcome'],
  aa_oidc_bcl_delivery_seconds: ['outcome'],
  aa_oidc_imported_secret_checks_total: ['client_id', 'outcome'],
  aa_oidc_client_auth_failures_total: ['endpoint', 'client_id'],
  aa_oidc_aa_poll_cycles_total: ['outcome'],
  aa_oidc_aa_poll_last_success_timestamp_seconds: [],
};

describe('metrics', () => {
  it('defines exactly the metrics aa-oidc exports', () => {
    assert.deepEqual([...METRIC_NAMES].sort(), Object.keys(SECTION_I).sort());
  });

  it('labels each metric with its bounded set only, never a user identifier', () => {
    const { registry } = createMetrics({ defaultMetrics: false });
    for (const name of METRIC_NAMES) {
      const metric = registry.getSingleMetric(name) as unknown as { labelNames: readonly string[] };
      assert.deepEqual([...metric.labelNames], LABELS[name], name);
    }
  });

  describe('dedicated listener', () => {
    let listener: MetricsListener;
    const metrics = createMetrics();
    before(async () => {
      listener = await startMetricsListener(metrics, { host: '127.0.0.1', port: 0 });
    });
    after(async () => listener.close());

    it('serves HELP and TYPE for every metric aa-oidc exports before any is used, plus process metrics', async () => {
      const response = await fetch(`http://127.0.0.1:${listener.address.port}/metrics`);
      assert.equal(response.status, 200);
      assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
      const text = await response.text();
      assertExposesSectionI(text);
      assert.match(text, /^process_cpu_user_seconds_total \d/m);
      assert.match(text, /^nodejs_heap_size_used_bytes \d/m);
      assert.equal(listener.url, `http://127.0.0.1:${listener.address.port}/metrics`);
    });

    it('shows samples with their labels once used', async () => {
      metrics.tokensIssued.inc({ client_id: 'wiki', grant_type: 'authorization_code', format: 'jwt' });
      metrics.bclDispatches.inc({ client_id: 'wiki', outcome: 'success' });
      metrics.bclDeliverySeconds.observe({ outcome: 'success' }, 0.2);
      const text = await (await fetch(`http://127.0.0.1:${listener.address.port}/metrics`)).text();
      assert.match(
        text,
        /^aa_oidc_tokens_issued_total\{client_id="wiki",grant_type="authorization_code",format="jwt"\} 1$/m,
      );
      assert.match(text, /^aa_oidc_bcl_dispatches_total\{client_id="wiki",outcome="success"\} 1$/m);
      assert.match(text, /^aa_oidc_bcl_delivery_seconds_bucket\{le="0\.25",outcome="success"\} 1$/m);
    });

    it('answers 404 elsewhere and 405 for other methods', async () => {
      const base = `http://127.0.0.1:${listener.address.port}`;
      assert.equal((await fetch(`${base}/`)).status, 404);
      assert.equal((await fetch(`${base}/metrics`, { method: 'POST' })).status, 405);
    });

    it('answers 405 with a line naming the methods it takes, and Allow', async () => {
      const base = `http://127.0.0.1:${listener.address.port}`;
      for (const method of ['POST', 'PUT', 'DELETE']) {
        const answer = await fetch(`${base}/metrics`, { method });
        assert.equal(answer.status, 405, method);
        assert.equal(answer.headers.get('allow'), 'GET, HEAD', method);
        assert.equal(answer.headers.get('content-type'), 'text/plain; charset=utf-8', method);
        assert.equal(await answer.text(), 'method not allowed: /metrics takes GET and HEAD only\n', method);
      }
    });

    it('answers every request with X-Content-Type-Options: nosniff, as the main port does', async () => {
      const base = `http://127.0.0.1:${listener.address.port}`;
      const answers = [
        await fetch(`${base}/metrics`),
        await fetch(`${base}/metrics`, { method: 'HEAD' }),
        await fetch(`${base}/`),
        await fetch(`${base}/metrics`, { method: 'POST' }),
      ];
      assert.deepEqual(
        answers.map((answer) => answer.status),
        [200, 200, 404, 405],
      );
      for (const answer of answers) {
        assert.equal(answer.headers.get('x-content-type-options'), 'nosniff', `${answer.status}`);
        await answer.body?.cancel();
      }
    });
  });

  it('answers 500 with X-Content-Type-Options: nosniff when the metrics cannot be rendered', async () => {
    const failing = {
      registry: { contentType: 'text/plain', metrics: () => Promise.reject(new Error('registry broke')) },
    } as unknown as ReturnType<typeof createMetrics>;
    const listener = await startMetricsListener(failing, { host: '127.0.0.1', port: 0 });
    try {
      const answer = await fetch(`http://127.0.0.1:${listener.address.port}/metrics`);
      assert.equal(answer.status, 500);
      assert.equal(answer.headers.get('x-content-type-options'), 'nosniff');
      await answer.body?.cancel();
    } finally {
      await listener.close();
    }
  });

  it('keeps two apps in one process apart (one registry each)', async () => {
    const first = createMetrics();
    const second = createMetrics();
    first.authorizeDenied.inc({ reason: 'policy_denied' });
    const [firstText, secondText] = await Promise.all([first.registry.metrics(), second.registry.metrics()]);
    assert.match(firstText, /^aa_oidc_authorize_denied_total\{reason="policy_denied"\} 1$/m);
    assert.doesNotMatch(secondText, /^aa_oidc_authorize_denied_total\{/m);
  });

  describe("serve's and worker's listener, reached by a client that holds on", () => {
    const cwd = mkdtempSync(path.join(tmpdir(), 'aa-oidc-metrics-limits-'));
    after(() => rmSync(cwd, { recursive: true, force: true }));

    /** The listener `serve` starts, on a port of its own, with `limits` narrowing the main port's. */
    const commandListener = async (limits: Partial<HttpServerLimits>) => {
      const config = loadConfig({
        env: {},
        cwd,
        overrides: { dataDir: cwd, logging: { level: 'silent' }, metrics: { host: '127.0.0.1', port: 0 } },
      });
      const listener = await startCommandMetricsListener(createMetrics(), config, createLogger(config), {
        limits,
      });
      assert.ok(listener);
      return { listener, origin: `http://127.0.0.1:${listener.address.port}` };
    };

    it('answers 408 and closes the connection when its headers never end, as the main port does', async () => {
      const { listener, origin } = await commandListener({
        headersTimeoutMs: 300,
        requestTimeoutMs: 400,
        connectionsCheckingIntervalMs: 50,
      });
      try {
        const closed = await sendAndWaitForClose(
          origin,
          'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a',
        );
        assert.equal(closed.closedByServer, true);
        assert.match(closed.answer, /^HTTP\/1\.1 408 /);
      } finally {
        await listener.close();
      }
    });

    it('answers a CONNECT request 400 and closes its connection, as the main port does', async () => {
      const { listener, origin } = await commandListener({});
      try {
        const closed = await sendAndWaitForClose(
          origin,
          'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n',
        );
        assert.equal(closed.closedByServer, true);
        assert.match(closed.answer, /^HTTP\/1\.1 400 Bad Request\r\n/);
        assert.match(closed.answer, /^Connection: close$/im);
      } finally {
        await listener.close();
      }
    });

    it('closes a connection beyond the limit of one client address unanswered', async () => {
      const { listener, origin } = await commandListener({
        maxConnections: 10,
        maxConnectionsPerAddress: 2,
        keepAliveTimeoutMs: 60_000,
      });
      const held = [await heldConnection(origin, '/metrics'), await heldConnection(origin, '/metrics')];
      try {
        const closed = await sendAndWaitForClose(
          origin,
          'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n',
        );
        assert.equal(closed.closedByServer, true);
        assert.equal(closed.answer, '');
      } finally {
        for (const socket of held) socket.destroy();
        await listener.close();
      }
    });
  });

  describe('on the main port behind a bearer token', () => {
    const token = 'metrics-scrape-token-0123456789';
    let server: TestServer;
    let base: string;
    const harness = createLeakHarness();
    before(async () => {
      server = await startServer({ metrics: { enabled: false, bearerToken: token } }, { harness });
      base = server.origin;
    });
    after(async () => server.close());

    it('refuses a request without a token or with a wrong one (401)', async () => {
      for (const authorization of [
        undefined,
        `Bearer ${token}x`,
        `Bearer ${token.slice(0, -1)}`,
        `Basic ${token}`,
        'Bearer',
      ]) {
        const response = await fetch(`${base}/metrics`, {
          headers: authorization === undefined ? {} : { Authorization: authorization },
        });
        assert.equal(response.status, 401, `authorization ${authorization ?? '(none)'}`);
        assert.equal(response.headers.get('www-authenticate'), 'Bearer realm="metrics"');
        assert.doesNotMatch(await response.text(), /aa_oidc_/);
      }
    });

    it('logs a refused scrape at info, where a served one stays at debug', async () => {
      const accessLines = async (authorization: string) => {
        const before = harness.logLines.length;
        await (await fetch(`${base}/metrics`, { headers: { Authorization: authorization } })).text();
        return harness.logLines
          .slice(before)
          .map((line) => JSON.parse(line) as { level: number; msg: string; res?: { status: number } })
          .filter((line) => line.msg === 'request completed');
      };
      const refused = await accessLines(`Bearer ${token}x`);
      assert.deepEqual(
        refused.map((line) => [line.level, line.res?.status]),
        [[30, 401]],
      );
      const served = await accessLines(`Bearer ${token}`);
      assert.deepEqual(
        served.map((line) => [line.level, line.res?.status]),
        [[20, 200]],
      );
    });

    it('serves every metric aa-oidc exports with the right token (200)', async () => {
      const response = await fetch(`${base}/metrics`, { headers: { Authorization: `Bearer ${token}` } });
      assert.equal(response.status, 200);
      assertExposesSectionI(await response.text());
    });

    it('answers 405 naming GET and HEAD to another method, with the token or without', async () => {
      for (const headers of [{}, { Authorization: `Bearer ${token}` }]) {
        const response = await fetch(`${base}/metrics`, { method: 'POST', headers });
        assert.equal(response.status, 405);
        assert.equal(response.headers.get('allow'), 'GET, HEAD');
        assert.doesNotMatch(await response.text(), /aa_oidc_/);
      }
    });
  });

  it('does not serve /metrics on the main port when no bearer token is configured', async () => {
    const server = await startServer();
    try {
      assert.equal((await fetch(`${server.origin}/metrics`)).status, 404);
    } finally {
      await server.close();
    }
  });

  it('compares bearer tokens exactly', () => {
    assert.equal(bearerTokenMatches('Bearer abcdefghijklmnop', 'abcdefghijklmnop'), true);
    assert.equal(bearerTokenMatches('bearer abcdefghijklmnop', 'abcdefghijklmnop'), true);
    assert.equal(bearerTokenMatches('Bearer abcdefghijklmnoq', 'abcdefghijklmnop'), false);
    assert.equal(bearerTokenMatches(undefined, 'abcdefghijklmnop'), false);
    assert.equal(bearerTokenMatches('Bearer ', ''), false);
  });
});
