import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { METRIC_NAMES } from '../../src/metrics/registry.ts';
import { cli, startCli } from '../helpers/cli.ts';
import { testEnv } from '../helpers/config.ts';
import { createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';

describe(`aa-oidc serve with the metrics listener (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  before(async () => {
    database = await createTestDatabase({ migrated: true });
  });
  after(async () => database.drop());

  it('starts the metrics listener, names it on the startup line, and stops it on SIGTERM', async () => {
    const serve = startCli(
      ['serve'],
      testEnv(database, {
        AA_OIDC_PORT: '0',
        AA_OIDC_HOST: '127.0.0.1',
        AA_OIDC_METRICS_PORT: '0',
        AA_OIDC_METRICS_HOST: '127.0.0.1',
      }),
    );
    let metricsUrl: string;
    try {
      const startup = await serve.waitFor(
        /^aa-oidc development server on http:\/\/127\.0\.0\.1:\d+ \(issuer \S+\), metrics on (http:\/\/127\.0\.0\.1:\d+\/metrics)$/m,
      );
      metricsUrl = startup[1]!;
      const response = await fetch(metricsUrl);
      assert.equal(response.status, 200);
      const text = await response.text();
      for (const name of METRIC_NAMES) assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), name);
    } finally {
      await serve.stop();
    }
    assert.equal(await serve.exited, 0, serve.stderr());
    await assert.rejects(fetch(metricsUrl), 'the listener is closed after shutdown');
  });

  it('refuses to start on a metrics port in use, naming the setting', async () => {
    const holder = createServer();
    holder.listen(0, '127.0.0.1');
    await once(holder, 'listening');
    const { port } = holder.address() as AddressInfo;
    try {
      const serve = await cli(
        ['serve'],
        testEnv(database, {
          AA_OIDC_PORT: '0',
          AA_OIDC_HOST: '127.0.0.1',
          AA_OIDC_METRICS_HOST: '127.0.0.1',
          AA_OIDC_METRICS_PORT: String(port),
        }),
      );
      assert.equal(serve.code, 1, serve.stdout);
      assert.match(
        serve.stderr,
        new RegExp(
          `^aa-oidc: the metrics listener cannot bind 127\\.0\\.0\\.1:${port}: the port is already in use .*` +
            'a metrics port of its own with AA_OIDC_METRICS_PORT, or turn this listener off with AA_OIDC_METRICS_ENABLED=false$',
          'm',
        ),
      );
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
  });
});
